//! The send request (`POST /v1/messages`) and the mark-as-read request, shaped like Meta's Cloud
//! API so its users recognise them, and their checks against Meta's documented limits.
//!
//! Owns: the request types, their validation into a typed error naming the field, the recipient
//! forms, and the normalized content of what is sent. Must not: know a provider's wire format
//! (`meta`, `waha`) or make calls.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{
    ContactPhone, ContactsData, InteractiveData, LocationData, MediaData, MessageContent,
    ReactionData, SharedContact, TemplateMessageData, TextData,
};

/// Meta's limits, from the Cloud API messages reference.
pub mod limits {
    /// `text.body`.
    pub const TEXT_BODY: usize = 4096;
    /// `caption` of image, video and document.
    pub const CAPTION: usize = 1024;
    /// `filename` of a document.
    pub const FILENAME: usize = 240;
    /// `template.name`.
    pub const TEMPLATE_NAME: usize = 512;
    /// Components of a template.
    pub const TEMPLATE_COMPONENTS: usize = 20;
    /// Parameters of one template component.
    pub const TEMPLATE_PARAMETERS: usize = 100;
    /// `interactive.body.text`.
    pub const INTERACTIVE_BODY: usize = 1024;
    /// `interactive.header.text` and `interactive.footer.text`.
    pub const INTERACTIVE_HEADER_FOOTER: usize = 60;
    /// Reply buttons of a `button` message.
    pub const REPLY_BUTTONS: usize = 3;
    /// `reply.id` of a reply button.
    pub const BUTTON_ID: usize = 256;
    /// `reply.title` of a reply button.
    pub const BUTTON_TITLE: usize = 20;
    /// `action.button` of a list.
    pub const LIST_BUTTON: usize = 20;
    /// Sections of a list.
    pub const LIST_SECTIONS: usize = 10;
    /// Rows of a list, all sections together.
    pub const LIST_ROWS: usize = 10;
    /// `sections[].title`.
    pub const SECTION_TITLE: usize = 24;
    /// `rows[].id`.
    pub const ROW_ID: usize = 200;
    /// `rows[].title`.
    pub const ROW_TITLE: usize = 24;
    /// `rows[].description`.
    pub const ROW_DESCRIPTION: usize = 72;
    /// `parameters.display_text` of a call-to-action URL button.
    pub const CTA_DISPLAY_TEXT: usize = 20;
    /// Contact cards in one message.
    pub const CONTACTS: usize = 20;
    /// Any other free text (names, addresses, ids): a bound, not a Meta rule.
    pub const SHORT_TEXT: usize = 1024;
    /// A URL (`link`, `url`).
    pub const URL: usize = 2048;
    /// `metadata`, as compact JSON.
    pub const METADATA_BYTES: usize = 4096;
    /// A message id (`reply_to`, `reaction.message_id`).
    pub const MESSAGE_ID: usize = 256;
    /// `reaction.emoji`, in characters (an emoji with modifiers is several).
    pub const EMOJI_CHARS: usize = 16;
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The configured source to send through; its send settings name the provider account.
    pub source_id: String,
    /// The recipient's phone number in international format (`+15551234567`; spaces, dashes,
    /// dots and brackets are ignored). A WAHA chat id (`…@c.us`, `…@s.whatsapp.net`, `…@lid`)
    /// is accepted too. Exactly one of `to` and `user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The recipient's user id when the phone number is not known: a Meta business-scoped user
    /// id (`US.13491208655302741918`) or a WAHA `…@lid` id. Exactly one of `to` and `user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Who sends: a Meta phone number id or a WAHA session. Default: the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The message type; the object of the same name holds the content.
    #[serde(rename = "type")]
    pub kind: SendType,
    /// `type: text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<SendText>,
    /// `type: template` (Meta only): an approved template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SendTemplate>,
    /// `type: image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<SendMedia>,
    /// `type: video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<SendMedia>,
    /// `type: audio` (no caption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<SendMedia>,
    /// `type: document`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<SendMedia>,
    /// `type: sticker` (no caption; Meta only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<SendMedia>,
    /// `type: location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SendLocation>,
    /// `type: contacts`: contact cards, as Meta's `contacts` array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<SendContact>>,
    /// `type: interactive`: reply buttons, a list or a call-to-action URL button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<SendInteractive>,
    /// `type: reaction`: an emoji on an earlier message (`""` removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<SendReaction>,
    /// Reply to this message (its provider id): shown quoted. Not with `reaction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Count this send in a campaign (`cmp_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Free-form JSON object (at most 4 KiB) returned as given with the message's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// The message types wagate can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendType {
    /// Plain text.
    Text,
    /// An approved template (Meta).
    Template,
    /// A picture.
    Image,
    /// A video.
    Video,
    /// Audio.
    Audio,
    /// A file.
    Document,
    /// A sticker (Meta).
    Sticker,
    /// A location pin.
    Location,
    /// Contact cards.
    Contacts,
    /// Buttons, a list or a call-to-action URL.
    Interactive,
    /// A reaction.
    Reaction,
}

impl SendType {
    /// The name used on the wire and as the content object's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Template => "template",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contacts => "contacts",
            Self::Interactive => "interactive",
            Self::Reaction => "reaction",
        }
    }
}

/// Text content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendText {
    /// The text, 1 to 4096 characters; WhatsApp formatting (`*bold*`, `_italic_`) applies.
    pub body: String,
    /// Render a preview of the first URL in `body`.
    #[serde(default)]
    pub preview_url: bool,
}

/// An approved message template (Meta).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTemplate {
    /// The template's name (lowercase letters, digits and `_`).
    pub name: String,
    /// The template's language.
    pub language: TemplateLanguage,
    /// Parameters, as Meta's `components` array (`header`, `body`, `button`, `carousel`…): each
    /// an object with a `type`; `parameters` objects with a `type`; buttons with `sub_type` and
    /// `index`. Checked for that shape; Meta checks them against the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Map<String, Value>>,
}

/// A template language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateLanguage {
    /// Language code as approved (`en`, `en_US`, `pt_BR`).
    pub code: String,
}

/// Media by provider id or by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMedia {
    /// A media id from Meta's media upload (Meta only). Exactly one of `id` and `link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An http(s) URL the provider downloads the media from. Exactly one of `id` and `link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Caption, at most 1024 characters (image, video, document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// File name shown to the recipient (document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A location pin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendLocation {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
    /// Place name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A contact card (Meta's `contacts[]` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendContact {
    /// The name: `formatted_name` and at least one other part.
    pub name: ContactName,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactPhoneEntry>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ContactEmail>,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<ContactAddress>,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<ContactOrg>,
    /// Web sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<ContactUrl>,
    /// Birthday, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
}

/// The name on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactName {
    /// The full name as shown.
    pub formatted_name: String,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A phone number on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPhoneEntry {
    /// The number as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// `CELL`, `MAIN`, `IPHONE`, `HOME` or `WORK`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The WhatsApp id, for a "Message" button on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

/// An e-mail address on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactEmail {
    /// The address.
    pub email: String,
    /// `HOME` or `WORK`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A postal address on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactAddress {
    /// Street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// ZIP code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// Country name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Two-letter country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// `HOME` or `WORK`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The organisation on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactOrg {
    /// Company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A web site on a contact card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactUrl {
    /// The URL.
    pub url: String,
    /// `HOME` or `WORK`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInteractive {
    /// `button` (1 to 3 reply buttons), `list` (a menu of up to 10 rows) or `cta_url` (a button
    /// that opens a URL).
    #[serde(rename = "type")]
    pub kind: InteractiveKind,
    /// Header: text (at most 60 characters), or media for `button` and `cta_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<InteractiveHeader>,
    /// Body text, at most 1024 characters.
    pub body: InteractiveText,
    /// Footer text, at most 60 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<InteractiveText>,
    /// The buttons, the list, or the URL button.
    pub action: InteractiveAction,
}

/// Kinds of interactive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveKind {
    /// Reply buttons.
    Button,
    /// A list menu.
    List,
    /// A call-to-action URL button.
    CtaUrl,
}

impl InteractiveKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Button => "button",
            Self::List => "list",
            Self::CtaUrl => "cta_url",
        }
    }
}

/// The header of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveHeader {
    /// `text`, `image`, `video` or `document`; the field of that name holds it.
    #[serde(rename = "type")]
    pub kind: HeaderKind,
    /// The header text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The header image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<SendMedia>,
    /// The header video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<SendMedia>,
    /// The header document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<SendMedia>,
}

/// Kinds of interactive header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// Text.
    Text,
    /// An image.
    Image,
    /// A video.
    Video,
    /// A document.
    Document,
}

/// A text part (`body`, `footer`) of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveText {
    /// The text.
    pub text: String,
}

/// What an interactive message offers: `buttons` (button), `button` and `sections` (list), or
/// `name: "cta_url"` and `parameters` (cta_url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveAction {
    /// `button`: 1 to 3 reply buttons with distinct ids and titles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ReplyButton>>,
    /// `list`: the label of the button that opens the list, at most 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// `list`: 1 to 10 sections with 10 rows in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sections: Option<Vec<ListSection>>,
    /// `cta_url`: always `cta_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `cta_url`: the button label and URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<CtaParameters>,
}

/// A reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Always `reply`.
    #[serde(rename = "type")]
    pub kind: ReplyButtonKind,
    /// The button.
    pub reply: ButtonReply,
}

/// The kind of a reply button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyButtonKind {
    /// A quick reply.
    Reply,
}

/// A reply button's id and label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonReply {
    /// Returned in the customer's answer; at most 256 characters.
    pub id: String,
    /// The label, at most 20 characters.
    pub title: String,
}

/// A section of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    /// The section title, at most 24 characters; required when there are several sections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The rows.
    pub rows: Vec<ListRow>,
}

/// A row of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    /// Returned in the customer's answer; at most 200 characters, unique in the list.
    pub id: String,
    /// The row title, at most 24 characters.
    pub title: String,
    /// A line under the title, at most 72 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A call-to-action URL button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CtaParameters {
    /// The button label, at most 20 characters.
    pub display_text: String,
    /// The http(s) URL it opens.
    pub url: String,
}

/// A reaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendReaction {
    /// The message reacted to (its provider id).
    pub message_id: String,
    /// The emoji; `""` removes an earlier reaction.
    pub emoji: String,
}

/// Marks an inbound message (and the chat before it) as read, optionally showing "typing…".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The configured source the message came in on.
    pub source_id: String,
    /// The inbound message's provider id.
    pub message_id: String,
    /// WAHA: the chat, when `message_id` does not name it (phone number or chat id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// WAHA: the chat as a `…@lid` user id, when `message_id` does not name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The receiving phone number id or WAHA session. Default: the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Also show a typing indicator (Meta hides it after 25 s or at the next message).
    #[serde(default)]
    pub typing_indicator: bool,
}

/// Why a request is not valid: the field (a JSON path such as `interactive.action.buttons[1]`)
/// and a reason that quotes no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {reason}")]
pub struct InvalidMessage {
    /// The field at fault.
    pub field: String,
    /// What is wrong, without its value.
    pub reason: String,
}

impl InvalidMessage {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

type Check = Result<(), InvalidMessage>;

/// Where a message goes, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number, digits only (from `to`: a number, or a `…@c.us` / `…@s.whatsapp.net`
    /// chat id).
    Phone(String),
    /// A WAHA linked id, digits only (from a `…@lid` id in `to` or `user_id`).
    Lid(String),
    /// A Meta business-scoped user id (from `user_id`).
    UserId(String),
}

/// The digits of a phone number written with `+`, spaces, dashes, dots or brackets: 7 to 15 of
/// them (E.164 allows 15).
pub fn phone_digits(value: &str) -> Option<String> {
    let trimmed = value.trim();
    let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// Reads `to`/`user_id` (exactly one) into a [`Recipient`].
pub fn recipient(to: Option<&str>, user_id: Option<&str>) -> Result<Recipient, InvalidMessage> {
    match (to, user_id) {
        (Some(_), Some(_)) => Err(InvalidMessage::new(
            "to",
            "and `user_id` are exclusive: give one",
        )),
        (None, None) => Err(InvalidMessage::new("to", "is required (or `user_id`)")),
        (Some(to), None) => {
            if let Some((local, domain)) = to.split_once('@') {
                let digits =
                    local.bytes().all(|b| b.is_ascii_digit()) && (5..=20).contains(&local.len());
                match domain {
                    "c.us" | "s.whatsapp.net" if digits => Ok(Recipient::Phone(local.to_owned())),
                    "lid" if digits => Ok(Recipient::Lid(local.to_owned())),
                    "g.us" => Err(InvalidMessage::new(
                        "to",
                        "is a group; only individual chats are supported",
                    )),
                    _ => Err(InvalidMessage::new(
                        "to",
                        "is not a phone number or a `…@c.us`, `…@s.whatsapp.net` or `…@lid` chat id",
                    )),
                }
            } else {
                phone_digits(to).map(Recipient::Phone).ok_or_else(|| {
                    InvalidMessage::new(
                        "to",
                        "is not a phone number in international format (7 to 15 digits)",
                    )
                })
            }
        }
        (None, Some(user_id)) => {
            if let Some(local) = user_id.strip_suffix("@lid") {
                if !local.is_empty()
                    && local.len() <= 20
                    && local.bytes().all(|b| b.is_ascii_digit())
                {
                    return Ok(Recipient::Lid(local.to_owned()));
                }
                return Err(InvalidMessage::new("user_id", "is not a valid `…@lid` id"));
            }
            let ok = !user_id.is_empty()
                && user_id.len() <= 128
                && user_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if ok {
                Ok(Recipient::UserId(user_id.to_owned()))
            } else {
                Err(InvalidMessage::new(
                    "user_id",
                    "is not a business-scoped user id (letters, digits, `.`, `_`, `-`) or a `…@lid` id",
                ))
            }
        }
    }
}

fn chars(value: &str) -> usize {
    value.chars().count()
}

/// Text that must be present and not longer than `max` characters.
fn required_text(field: &str, value: &str, max: usize) -> Check {
    if value.trim().is_empty() {
        return Err(InvalidMessage::new(field, "is empty"));
    }
    optional_text(field, Some(value), max)
}

fn optional_text(field: &str, value: Option<&str>, max: usize) -> Check {
    match value {
        Some(v) if chars(v) > max => Err(InvalidMessage::new(
            field,
            format!("is longer than {max} characters"),
        )),
        Some(v) if v.chars().any(|c| c == '\0') => {
            Err(InvalidMessage::new(field, "contains a NUL character"))
        }
        _ => Ok(()),
    }
}

/// A configured source's id form (whether it exists is the caller's lookup).
fn source_id(value: &str) -> Check {
    crate::ids::SourceId::parse(value)
        .map(drop)
        .map_err(|e| InvalidMessage::new("source_id", e.to_string()))
}

/// An opaque provider id: printable, no whitespace, at most `max` bytes.
fn token(field: &str, value: &str, max: usize) -> Check {
    if value.is_empty() || value.len() > max {
        return Err(InvalidMessage::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidMessage::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// An absolute http(s) URL.
fn http_url(field: &str, value: &str) -> Check {
    if value.len() > limits::URL {
        return Err(InvalidMessage::new(
            field,
            format!("is longer than {} characters", limits::URL),
        ));
    }
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(InvalidMessage::new(field, "is not an absolute http(s) URL")),
    }
}

impl SendMessage {
    /// Checks the message against the documented shape and Meta's limits. Provider-specific
    /// refusals (a template through WAHA) come later, from the sender.
    pub fn validate(&self) -> Check {
        source_id(&self.source_id)?;
        recipient(self.to.as_deref(), self.user_id.as_deref())?;
        if let Some(from) = &self.from {
            token("from", from, 64)?;
        }
        self.validate_content()?;
        if let Some(reply_to) = &self.reply_to {
            if self.kind == SendType::Reaction {
                return Err(InvalidMessage::new(
                    "reply_to",
                    "does not apply to a reaction (it names its message)",
                ));
            }
            token("reply_to", reply_to, limits::MESSAGE_ID)?;
        }
        if let Some(campaign) = &self.campaign_id {
            let ok = campaign.strip_prefix("cmp_").is_some_and(|rest| {
                !rest.is_empty()
                    && campaign.len() <= 64
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !ok {
                return Err(InvalidMessage::new(
                    "campaign_id",
                    "is not a campaign id (`cmp_…`)",
                ));
            }
        }
        if let Some(metadata) = &self.metadata {
            let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
            if size > limits::METADATA_BYTES {
                return Err(InvalidMessage::new(
                    "metadata",
                    format!("is larger than {} bytes as JSON", limits::METADATA_BYTES),
                ));
            }
        }
        Ok(())
    }

    /// The recipient, once [`validate`](Self::validate) passed.
    pub fn recipient(&self) -> Result<Recipient, InvalidMessage> {
        recipient(self.to.as_deref(), self.user_id.as_deref())
    }

    /// The objects present for each type, so exactly the one named by `type` can be required.
    fn present(&self) -> [(SendType, bool); 11] {
        [
            (SendType::Text, self.text.is_some()),
            (SendType::Template, self.template.is_some()),
            (SendType::Image, self.image.is_some()),
            (SendType::Video, self.video.is_some()),
            (SendType::Audio, self.audio.is_some()),
            (SendType::Document, self.document.is_some()),
            (SendType::Sticker, self.sticker.is_some()),
            (SendType::Location, self.location.is_some()),
            (SendType::Contacts, self.contacts.is_some()),
            (SendType::Interactive, self.interactive.is_some()),
            (SendType::Reaction, self.reaction.is_some()),
        ]
    }

    fn validate_content(&self) -> Check {
        for (kind, present) in self.present() {
            if present && kind != self.kind {
                return Err(InvalidMessage::new(
                    kind.as_str(),
                    format!("is given but `type` is `{}`", self.kind.as_str()),
                ));
            }
            if !present && kind == self.kind {
                return Err(InvalidMessage::new(kind.as_str(), "is required by `type`"));
            }
        }
        if let Some(text) = &self.text {
            required_text("text.body", &text.body, limits::TEXT_BODY)?;
        }
        if let Some(template) = &self.template {
            validate_template(template)?;
        }
        for (kind, media) in [
            ("image", &self.image),
            ("video", &self.video),
            ("audio", &self.audio),
            ("document", &self.document),
            ("sticker", &self.sticker),
        ] {
            if let Some(media) = media {
                validate_media(kind, kind, media)?;
            }
        }
        if let Some(location) = &self.location {
            validate_location(location)?;
        }
        if let Some(contacts) = &self.contacts {
            validate_contacts(contacts)?;
        }
        if let Some(interactive) = &self.interactive {
            validate_interactive(interactive)?;
        }
        if let Some(reaction) = &self.reaction {
            token(
                "reaction.message_id",
                &reaction.message_id,
                limits::MESSAGE_ID,
            )?;
            let emoji = &reaction.emoji;
            if chars(emoji) > limits::EMOJI_CHARS
                || emoji
                    .chars()
                    .any(|c| c.is_ascii() || c.is_whitespace() || c.is_control())
            {
                return Err(InvalidMessage::new(
                    "reaction.emoji",
                    "must be one emoji, or \"\" to remove the reaction",
                ));
            }
        }
        Ok(())
    }

    /// What was sent, in wagate's event model (`data.message` of the outbound message).
    pub fn content(&self) -> MessageContent {
        let media = |m: &SendMedia| MediaData {
            id: m.id.clone(),
            url: m.link.clone(),
            caption: m.caption.clone(),
            filename: m.filename.clone(),
            ..MediaData::default()
        };
        // Only an unvalidated message lacks its content object: say what type it claimed.
        let empty_media = || {
            MessageContent::Unknown(crate::model::UnknownData {
                provider_type: self.kind.as_str().to_owned(),
                raw: Value::Null,
            })
        };
        match self.kind {
            SendType::Text => MessageContent::Text(TextData {
                body: self
                    .text
                    .as_ref()
                    .map(|t| t.body.clone())
                    .unwrap_or_default(),
            }),
            SendType::Template => {
                let t = self.template.as_ref();
                MessageContent::Template(TemplateMessageData {
                    name: t.map(|t| t.name.clone()),
                    language: t.map(|t| t.language.code.clone()),
                    raw: t.filter(|t| !t.components.is_empty()).map(|t| {
                        Value::Array(t.components.iter().cloned().map(Value::Object).collect())
                    }),
                })
            }
            SendType::Image => self
                .image
                .as_ref()
                .map_or_else(empty_media, |m| MessageContent::Image(media(m))),
            SendType::Video => self
                .video
                .as_ref()
                .map_or_else(empty_media, |m| MessageContent::Video(media(m))),
            SendType::Audio => self
                .audio
                .as_ref()
                .map_or_else(empty_media, |m| MessageContent::Audio(media(m))),
            SendType::Document => self
                .document
                .as_ref()
                .map_or_else(empty_media, |m| MessageContent::Document(media(m))),
            SendType::Sticker => self
                .sticker
                .as_ref()
                .map_or_else(empty_media, |m| MessageContent::Sticker(media(m))),
            SendType::Location => match &self.location {
                Some(l) => MessageContent::Location(LocationData {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    name: l.name.clone(),
                    address: l.address.clone(),
                    url: None,
                    description: None,
                    live: None,
                }),
                None => empty_media(),
            },
            SendType::Contacts => MessageContent::Contacts(ContactsData {
                contacts: self.contacts.iter().flatten().map(shared_contact).collect(),
            }),
            SendType::Interactive => match &self.interactive {
                Some(i) => MessageContent::Interactive(InteractiveData {
                    kind: i.kind.as_str().to_owned(),
                    id: None,
                    title: i.header.as_ref().and_then(|h| h.text.clone()),
                    description: None,
                    name: None,
                    body: Some(i.body.text.clone()),
                    response: None,
                    raw: serde_json::to_value(i).ok(),
                }),
                None => empty_media(),
            },
            SendType::Reaction => match &self.reaction {
                Some(r) => MessageContent::Reaction(ReactionData {
                    message_id: Some(r.message_id.clone()),
                    emoji: (!r.emoji.is_empty()).then(|| r.emoji.clone()),
                    removed: r.emoji.is_empty(),
                }),
                None => empty_media(),
            },
        }
    }
}

fn shared_contact(c: &SendContact) -> SharedContact {
    SharedContact {
        name: Some(c.name.formatted_name.clone()),
        name_parts: serde_json::to_value(&c.name).ok(),
        phones: c
            .phones
            .iter()
            .map(|p| ContactPhone {
                phone: p.phone.clone(),
                wa_id: p.wa_id.clone(),
                kind: p.kind.clone(),
            })
            .collect(),
        emails: c
            .emails
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect(),
        addresses: c
            .addresses
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .collect(),
        urls: c
            .urls
            .iter()
            .filter_map(|u| serde_json::to_value(u).ok())
            .collect(),
        org: c.org.as_ref().and_then(|o| serde_json::to_value(o).ok()),
        birthday: c.birthday.clone(),
        vcard: None,
    }
}

fn validate_template(t: &SendTemplate) -> Check {
    required_text("template.name", &t.name, limits::TEMPLATE_NAME)?;
    if !t
        .name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(InvalidMessage::new(
            "template.name",
            "may hold only lowercase letters, digits and `_`",
        ));
    }
    let code = &t.language.code;
    let (lang, region) = code
        .split_once('_')
        .map_or((code.as_str(), None), |(l, r)| (l, Some(r)));
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region
        .is_none_or(|r| (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphabetic()));
    if !lang_ok || !region_ok {
        return Err(InvalidMessage::new(
            "template.language.code",
            "is not a language code such as `en` or `en_US`",
        ));
    }
    if t.components.len() > limits::TEMPLATE_COMPONENTS {
        return Err(InvalidMessage::new(
            "template.components",
            format!("has more than {} components", limits::TEMPLATE_COMPONENTS),
        ));
    }
    for (i, component) in t.components.iter().enumerate() {
        validate_component(&format!("template.components[{i}]"), component, 0)?;
    }
    Ok(())
}

/// A template component: a `type`; `parameters` objects with a `type` (text ones with a string
/// `text`); buttons with `sub_type` and `index`; carousel `cards` with their own components.
fn validate_component(path: &str, c: &Map<String, Value>, depth: u8) -> Check {
    let kind = match c.get("type") {
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            s.as_str()
        }
        _ => {
            return Err(InvalidMessage::new(
                format!("{path}.type"),
                "must be a component type such as `header`, `body` or `button`",
            ));
        }
    };
    if kind == "button" {
        match c.get("sub_type") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => {}
            _ => {
                return Err(InvalidMessage::new(
                    format!("{path}.sub_type"),
                    "is required for a button (`quick_reply`, `url`, `copy_code`…)",
                ));
            }
        }
        let index_ok = match c.get("index") {
            Some(Value::Number(n)) => n.as_u64().is_some_and(|i| i <= 9),
            Some(Value::String(s)) => s.parse::<u8>().is_ok_and(|i| i <= 9),
            _ => false,
        };
        if !index_ok {
            return Err(InvalidMessage::new(
                format!("{path}.index"),
                "is required for a button: its position, 0 to 9",
            ));
        }
    }
    if let Some(parameters) = c.get("parameters") {
        let Value::Array(list) = parameters else {
            return Err(InvalidMessage::new(
                format!("{path}.parameters"),
                "must be an array",
            ));
        };
        if list.len() > limits::TEMPLATE_PARAMETERS {
            return Err(InvalidMessage::new(
                format!("{path}.parameters"),
                format!("has more than {} entries", limits::TEMPLATE_PARAMETERS),
            ));
        }
        for (j, p) in list.iter().enumerate() {
            let at = format!("{path}.parameters[{j}]");
            let Value::Object(p) = p else {
                return Err(InvalidMessage::new(at, "must be an object"));
            };
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() && t.len() <= 64 => {
                    if t == "text" {
                        match p.get("text") {
                            Some(Value::String(s)) => {
                                optional_text(&format!("{at}.text"), Some(s), limits::TEXT_BODY)?;
                            }
                            _ => {
                                return Err(InvalidMessage::new(
                                    format!("{at}.text"),
                                    "is required for a text parameter",
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(InvalidMessage::new(
                        format!("{at}.type"),
                        "must be a parameter type such as `text`, `currency` or `image`",
                    ));
                }
            }
        }
    }
    if let Some(cards) = c.get("cards") {
        let Value::Array(cards) = cards else {
            return Err(InvalidMessage::new(
                format!("{path}.cards"),
                "must be an array",
            ));
        };
        if depth > 0 || cards.len() > 10 {
            return Err(InvalidMessage::new(
                format!("{path}.cards"),
                "must be a carousel's 1 to 10 cards",
            ));
        }
        for (k, card) in cards.iter().enumerate() {
            let at = format!("{path}.cards[{k}]");
            let components = card
                .as_object()
                .and_then(|card| card.get("components"))
                .and_then(Value::as_array);
            let Some(components) = components else {
                return Err(InvalidMessage::new(
                    format!("{at}.components"),
                    "is required: the card's components",
                ));
            };
            for (m, inner) in components.iter().enumerate() {
                let inner_at = format!("{at}.components[{m}]");
                let Value::Object(inner) = inner else {
                    return Err(InvalidMessage::new(inner_at, "must be an object"));
                };
                validate_component(&inner_at, inner, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Media at `path` (`image`, `interactive.header.image`) of `kind` (`image`).
fn validate_media(path: &str, kind: &str, m: &SendMedia) -> Check {
    match (&m.id, &m.link) {
        (Some(_), Some(_)) => {
            return Err(InvalidMessage::new(
                format!("{path}.id"),
                "and `link` are exclusive: give one",
            ));
        }
        (None, None) => {
            return Err(InvalidMessage::new(
                format!("{path}.link"),
                "is required (or `id`)",
            ));
        }
        (Some(id), None) => token(&format!("{path}.id"), id, limits::MESSAGE_ID)?,
        (None, Some(link)) => http_url(&format!("{path}.link"), link)?,
    }
    if m.caption.is_some() && matches!(kind, "audio" | "sticker") {
        return Err(InvalidMessage::new(
            format!("{path}.caption"),
            format!("is not allowed on {kind}"),
        ));
    }
    optional_text(
        &format!("{path}.caption"),
        m.caption.as_deref(),
        limits::CAPTION,
    )?;
    if m.filename.is_some() && kind != "document" {
        return Err(InvalidMessage::new(
            format!("{path}.filename"),
            "is only allowed on a document",
        ));
    }
    if let Some(name) = &m.filename {
        required_text(&format!("{path}.filename"), name, limits::FILENAME)?;
        if name.contains(['/', '\\']) {
            return Err(InvalidMessage::new(
                format!("{path}.filename"),
                "must be a file name, not a path",
            ));
        }
    }
    Ok(())
}

fn validate_location(l: &SendLocation) -> Check {
    if !l.latitude.is_finite() || !(-90.0..=90.0).contains(&l.latitude) {
        return Err(InvalidMessage::new(
            "location.latitude",
            "must be -90 to 90",
        ));
    }
    if !l.longitude.is_finite() || !(-180.0..=180.0).contains(&l.longitude) {
        return Err(InvalidMessage::new(
            "location.longitude",
            "must be -180 to 180",
        ));
    }
    optional_text("location.name", l.name.as_deref(), limits::SHORT_TEXT)?;
    optional_text("location.address", l.address.as_deref(), limits::SHORT_TEXT)
}

fn validate_contacts(contacts: &[SendContact]) -> Check {
    if contacts.is_empty() || contacts.len() > limits::CONTACTS {
        return Err(InvalidMessage::new(
            "contacts",
            format!("must hold 1 to {} cards", limits::CONTACTS),
        ));
    }
    for (i, c) in contacts.iter().enumerate() {
        let at = |f: &str| format!("contacts[{i}].{f}");
        let n = &c.name;
        required_text(
            &at("name.formatted_name"),
            &n.formatted_name,
            limits::SHORT_TEXT,
        )?;
        let parts = [
            &n.first_name,
            &n.last_name,
            &n.middle_name,
            &n.suffix,
            &n.prefix,
        ];
        if parts
            .iter()
            .all(|p| p.as_deref().is_none_or(|s| s.trim().is_empty()))
        {
            return Err(InvalidMessage::new(
                at("name"),
                "needs a part besides `formatted_name` (e.g. `first_name`)",
            ));
        }
        for (name, part) in ["first_name", "last_name", "middle_name", "suffix", "prefix"]
            .iter()
            .zip(parts)
        {
            optional_text(
                &at(&format!("name.{name}")),
                part.as_deref(),
                limits::SHORT_TEXT,
            )?;
        }
        for (j, p) in c.phones.iter().enumerate() {
            optional_text(&at(&format!("phones[{j}].phone")), p.phone.as_deref(), 64)?;
            optional_text(&at(&format!("phones[{j}].type")), p.kind.as_deref(), 32)?;
            if let Some(wa_id) = &p.wa_id
                && phone_digits(wa_id).is_none()
            {
                return Err(InvalidMessage::new(
                    at(&format!("phones[{j}].wa_id")),
                    "is not a WhatsApp id (the number's digits)",
                ));
            }
        }
        for (j, e) in c.emails.iter().enumerate() {
            required_text(&at(&format!("emails[{j}].email")), &e.email, 320)?;
        }
        for (j, u) in c.urls.iter().enumerate() {
            http_url(&at(&format!("urls[{j}].url")), &u.url)?;
        }
        for (j, a) in c.addresses.iter().enumerate() {
            for (name, value) in [
                ("street", &a.street),
                ("city", &a.city),
                ("state", &a.state),
                ("zip", &a.zip),
                ("country", &a.country),
                ("country_code", &a.country_code),
                ("type", &a.kind),
            ] {
                optional_text(
                    &at(&format!("addresses[{j}].{name}")),
                    value.as_deref(),
                    limits::SHORT_TEXT,
                )?;
            }
        }
        if let Some(org) = &c.org {
            for (name, value) in [
                ("company", &org.company),
                ("department", &org.department),
                ("title", &org.title),
            ] {
                optional_text(
                    &at(&format!("org.{name}")),
                    value.as_deref(),
                    limits::SHORT_TEXT,
                )?;
            }
        }
        if let Some(birthday) = &c.birthday
            && chrono::NaiveDate::parse_from_str(birthday, "%Y-%m-%d").is_err()
        {
            return Err(InvalidMessage::new(at("birthday"), "must be YYYY-MM-DD"));
        }
    }
    Ok(())
}

fn validate_interactive(i: &SendInteractive) -> Check {
    required_text(
        "interactive.body.text",
        &i.body.text,
        limits::INTERACTIVE_BODY,
    )?;
    if let Some(footer) = &i.footer {
        required_text(
            "interactive.footer.text",
            &footer.text,
            limits::INTERACTIVE_HEADER_FOOTER,
        )?;
    }
    if let Some(h) = &i.header {
        let given = [
            (HeaderKind::Text, h.text.is_some()),
            (HeaderKind::Image, h.image.is_some()),
            (HeaderKind::Video, h.video.is_some()),
            (HeaderKind::Document, h.document.is_some()),
        ];
        let name = |k: HeaderKind| match k {
            HeaderKind::Text => "text",
            HeaderKind::Image => "image",
            HeaderKind::Video => "video",
            HeaderKind::Document => "document",
        };
        for (kind, present) in given {
            if present != (kind == h.kind) {
                return Err(InvalidMessage::new(
                    format!("interactive.header.{}", name(kind)),
                    if present {
                        "is given but the header's `type` differs"
                    } else {
                        "is required by the header's `type`"
                    },
                ));
            }
        }
        if i.kind == InteractiveKind::List && h.kind != HeaderKind::Text {
            return Err(InvalidMessage::new(
                "interactive.header.type",
                "must be `text` for a list",
            ));
        }
        if let Some(text) = &h.text {
            required_text(
                "interactive.header.text",
                text,
                limits::INTERACTIVE_HEADER_FOOTER,
            )?;
        }
        for (kind, media) in [
            ("image", &h.image),
            ("video", &h.video),
            ("document", &h.document),
        ] {
            if let Some(m) = media {
                validate_media(&format!("interactive.header.{kind}"), kind, m)?;
                if m.caption.is_some() {
                    return Err(InvalidMessage::new(
                        format!("interactive.header.{kind}.caption"),
                        "is not allowed in a header",
                    ));
                }
            }
        }
    }
    let a = &i.action;
    let stray = |field: &str, present: bool| -> Check {
        if present {
            Err(InvalidMessage::new(
                format!("interactive.action.{field}"),
                format!("does not apply to `{}`", i.kind.as_str()),
            ))
        } else {
            Ok(())
        }
    };
    match i.kind {
        InteractiveKind::Button => {
            stray("button", a.button.is_some())?;
            stray("sections", a.sections.is_some())?;
            stray("name", a.name.is_some())?;
            stray("parameters", a.parameters.is_some())?;
            let buttons = a.buttons.as_deref().unwrap_or_default();
            if buttons.is_empty() || buttons.len() > limits::REPLY_BUTTONS {
                return Err(InvalidMessage::new(
                    "interactive.action.buttons",
                    format!("must hold 1 to {} buttons", limits::REPLY_BUTTONS),
                ));
            }
            let mut ids = std::collections::HashSet::new();
            let mut titles = std::collections::HashSet::new();
            for (k, b) in buttons.iter().enumerate() {
                let at = format!("interactive.action.buttons[{k}].reply");
                required_text(&format!("{at}.id"), &b.reply.id, limits::BUTTON_ID)?;
                required_text(&format!("{at}.title"), &b.reply.title, limits::BUTTON_TITLE)?;
                if !ids.insert(b.reply.id.as_str()) {
                    return Err(InvalidMessage::new(
                        format!("{at}.id"),
                        "repeats another button's",
                    ));
                }
                if !titles.insert(b.reply.title.as_str()) {
                    return Err(InvalidMessage::new(
                        format!("{at}.title"),
                        "repeats another button's",
                    ));
                }
            }
        }
        InteractiveKind::List => {
            stray("buttons", a.buttons.is_some())?;
            stray("name", a.name.is_some())?;
            stray("parameters", a.parameters.is_some())?;
            required_text(
                "interactive.action.button",
                a.button.as_deref().unwrap_or_default(),
                limits::LIST_BUTTON,
            )?;
            let sections = a.sections.as_deref().unwrap_or_default();
            if sections.is_empty() || sections.len() > limits::LIST_SECTIONS {
                return Err(InvalidMessage::new(
                    "interactive.action.sections",
                    format!("must hold 1 to {} sections", limits::LIST_SECTIONS),
                ));
            }
            let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
            if rows > limits::LIST_ROWS {
                return Err(InvalidMessage::new(
                    "interactive.action.sections",
                    format!("hold more than {} rows in all", limits::LIST_ROWS),
                ));
            }
            let mut ids = std::collections::HashSet::new();
            for (k, s) in sections.iter().enumerate() {
                let at = format!("interactive.action.sections[{k}]");
                match &s.title {
                    Some(t) => required_text(&format!("{at}.title"), t, limits::SECTION_TITLE)?,
                    None if sections.len() > 1 => {
                        return Err(InvalidMessage::new(
                            format!("{at}.title"),
                            "is required when there are several sections",
                        ));
                    }
                    None => {}
                }
                if s.rows.is_empty() {
                    return Err(InvalidMessage::new(format!("{at}.rows"), "is empty"));
                }
                for (r, row) in s.rows.iter().enumerate() {
                    let row_at = format!("{at}.rows[{r}]");
                    required_text(&format!("{row_at}.id"), &row.id, limits::ROW_ID)?;
                    required_text(&format!("{row_at}.title"), &row.title, limits::ROW_TITLE)?;
                    optional_text(
                        &format!("{row_at}.description"),
                        row.description.as_deref(),
                        limits::ROW_DESCRIPTION,
                    )?;
                    if !ids.insert(row.id.as_str()) {
                        return Err(InvalidMessage::new(
                            format!("{row_at}.id"),
                            "repeats another row's",
                        ));
                    }
                }
            }
        }
        InteractiveKind::CtaUrl => {
            stray("buttons", a.buttons.is_some())?;
            stray("button", a.button.is_some())?;
            stray("sections", a.sections.is_some())?;
            if a.name.as_deref() != Some("cta_url") {
                return Err(InvalidMessage::new(
                    "interactive.action.name",
                    "must be `cta_url`",
                ));
            }
            let Some(p) = &a.parameters else {
                return Err(InvalidMessage::new(
                    "interactive.action.parameters",
                    "is required: `display_text` and `url`",
                ));
            };
            required_text(
                "interactive.action.parameters.display_text",
                &p.display_text,
                limits::CTA_DISPLAY_TEXT,
            )?;
            http_url("interactive.action.parameters.url", &p.url)?;
        }
    }
    Ok(())
}

impl MarkRead {
    /// Checks the ids; the chat, when given, must be a recipient form.
    pub fn validate(&self) -> Check {
        source_id(&self.source_id)?;
        token("message_id", &self.message_id, limits::MESSAGE_ID)?;
        if let Some(from) = &self.from {
            token("from", from, 64)?;
        }
        if self.to.is_some() || self.user_id.is_some() {
            recipient(self.to.as_deref(), self.user_id.as_deref())?;
        }
        Ok(())
    }
}
