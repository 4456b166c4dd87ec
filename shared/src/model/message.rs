//! The normalized message: what every `whatsapp.message.*` event carries in `data.message`,
//! whichever provider sent it.
//!
//! Owns: message content per `message_type`, reply/forward context, referral, status, pricing and
//! errors. Must not: hold provider envelopes (parsers map those) or conversation state (track adds
//! it). Fields a provider did not send stay `None` and are left out of the JSON, never invented.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::vocab::open_vocabulary;

/// Whether the business received the message or sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Customer → business.
    Inbound,
    /// Business → customer (sent through the API, or from a phone/app linked to the number).
    Outbound,
}

open_vocabulary!(
    /// Delivery status of an outbound message. `sent < delivered < read`; `failed` is terminal.
    MessageStatus {
        /// Accepted by the provider, not yet on WhatsApp's servers (WAHA ack 0).
        Pending => "pending",
        /// On WhatsApp's servers.
        Sent => "sent",
        /// On the recipient's device.
        Delivered => "delivered",
        /// Opened by the recipient.
        Read => "read",
        /// A voice note or video was played (WAHA ack 4); counts as read for ordering.
        Played => "played",
        /// Could not be delivered; see `error`.
        Failed => "failed",
        /// Deleted by the sender.
        Deleted => "deleted",
        /// The provider accepted the message with a warning.
        Warning => "warning",
    }
);

impl MessageStatus {
    /// Position in the monotonic order `pending < sent < delivered < read`, where `played`
    /// ranks with `read` and `failed`/`deleted` are terminal. `None` for values with no rank.
    pub fn rank(&self) -> Option<u8> {
        match self {
            Self::Pending => Some(0),
            Self::Sent | Self::Warning => Some(1),
            Self::Delivered => Some(2),
            Self::Read | Self::Played => Some(3),
            Self::Failed | Self::Deleted => Some(4),
            Self::Other(_) => None,
        }
    }
}

/// One normalized message (or a status update about one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// The provider's message id (Meta `wamid.…`, WAHA `true_…`/`false_…`, Gupshup's own id for
    /// messages the business sent through Gupshup).
    pub id: String,
    /// The WhatsApp message id (`wamid.…`) when `id` is the provider's own id and the provider
    /// named both (Gupshup): WhatsApp's replies and reactions refer to the message by this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_message_id: Option<String>,
    /// Inbound (from the customer) or outbound (from the business).
    pub direction: Direction,
    /// Sender's phone number / WhatsApp id, when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Sender's user id when it is not a phone number (Meta business-scoped user id, WAHA `@lid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// Recipient's phone number / WhatsApp id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Recipient's user id when it is not a phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
    /// The chat the message belongs to, as the provider names it (WAHA `…@c.us`, `…@g.us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Set when the chat is a group: the group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// When the provider says the message was sent or its status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    /// `message_type` and `message_type_data`; absent on pure status updates.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Reply and forward information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<MessageContext>,
    /// Click-to-WhatsApp ad or other entry point the customer came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Box<Referral>>,
    /// Delivery status, on status events and on outbound messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// The first (usually only) error the provider reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<MessageError>>,
    /// Further errors, when the provider reported more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_errors: Vec<MessageError>,
    /// Meta pricing information on status updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Meta's billing conversation (not wagate's conversation) on status updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_conversation: Option<BillingConversation>,
    /// Opaque data the business attached when sending (Meta `biz_opaque_callback_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// The campaign the message was sent in (messages sent through `POST /v1/messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// The `metadata` given when it was sent through `POST /v1/messages`, returned as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Delivered on Meta's `standby` channel: another app (Meta Business Agent, another
    /// partner) owns the thread under Conversation Routing. Context to keep, not to answer:
    /// replying takes the thread over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
}

impl Message {
    /// A message with only its id and direction set; parsers fill in the rest.
    pub fn new(id: impl Into<String>, direction: Direction) -> Self {
        Self {
            id: id.into(),
            whatsapp_message_id: None,
            direction,
            from: None,
            from_user_id: None,
            to: None,
            to_user_id: None,
            chat_id: None,
            group_id: None,
            timestamp: None,
            content: None,
            context: None,
            referral: None,
            status: None,
            error: None,
            more_errors: Vec::new(),
            pricing: None,
            billing_conversation: None,
            biz_opaque_callback_data: None,
            campaign_id: None,
            metadata: None,
            standby: false,
        }
    }

    /// Sets the first error as `error` and the rest as `more_errors`.
    pub fn set_errors(&mut self, errors: Vec<MessageError>) {
        let mut errors = errors.into_iter();
        self.error = errors.next().map(Box::new);
        self.more_errors = errors.collect();
    }

    /// The `message_type` string, if the message has content.
    pub fn message_type(&self) -> Option<&'static str> {
        self.content.as_ref().map(MessageContent::type_name)
    }
}

/// The content of a message: serialised as `message_type` plus `message_type_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "message_type",
    content = "message_type_data",
    rename_all = "snake_case"
)]
pub enum MessageContent {
    /// Plain text.
    Text(TextData),
    /// A picture, optionally with a caption.
    Image(MediaData),
    /// A video, optionally with a caption.
    Video(MediaData),
    /// Audio; `voice: true` for a recorded voice note.
    Audio(MediaData),
    /// A file.
    Document(MediaData),
    /// A sticker; `animated` when the provider says so.
    Sticker(MediaData),
    /// A shared location.
    Location(LocationData),
    /// One or more shared contact cards.
    Contacts(ContactsData),
    /// A reply to an interactive message (button, list, flow).
    Interactive(InteractiveData),
    /// A quick-reply button press on a template.
    Button(ButtonData),
    /// A reaction to another message, or its removal.
    Reaction(ReactionData),
    /// A cart sent from a catalog.
    Order(OrderData),
    /// A template message (outbound echoes).
    Template(TemplateMessageData),
    /// A poll created in the chat.
    Poll(PollData),
    /// A system notice (number or identity change).
    System(SystemData),
    /// The customer opened the chat for the first time (Meta `request_welcome`).
    RequestWelcome,
    /// A new text for an earlier message.
    Edit(EditData),
    /// An earlier message was deleted for everyone.
    Revoke(RevokeData),
    /// The provider says it cannot represent this message.
    Unsupported(UnsupportedData),
    /// A type this version of wagate does not know: the provider's type name and raw object.
    Unknown(UnknownData),
}

impl MessageContent {
    /// The `message_type` string this content serialises with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Audio(_) => "audio",
            Self::Document(_) => "document",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Contacts(_) => "contacts",
            Self::Interactive(_) => "interactive",
            Self::Button(_) => "button",
            Self::Reaction(_) => "reaction",
            Self::Order(_) => "order",
            Self::Template(_) => "template",
            Self::Poll(_) => "poll",
            Self::System(_) => "system",
            Self::RequestWelcome => "request_welcome",
            Self::Edit(_) => "edit",
            Self::Revoke(_) => "revoke",
            Self::Unsupported(_) => "unsupported",
            Self::Unknown(_) => "unknown",
        }
    }

    /// The media this content carries, by reference (image, video, audio, document, sticker).
    pub fn media_ref(&self) -> Option<super::MediaRef> {
        match self {
            Self::Image(m)
            | Self::Video(m)
            | Self::Audio(m)
            | Self::Document(m)
            | Self::Sticker(m) => Some(super::MediaRef {
                id: m.id.clone(),
                url: m.url.clone(),
                mime_type: m.mime_type.clone(),
                filename: m.filename.clone(),
                stored: m.media.clone(),
            }),
            _ => None,
        }
    }

    /// A short plain-text rendering for conversation context (body, caption, emoji, title…).
    pub fn preview(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(&t.body),
            Self::Image(m)
            | Self::Video(m)
            | Self::Audio(m)
            | Self::Document(m)
            | Self::Sticker(m) => m.caption.as_deref().or(m.filename.as_deref()),
            Self::Location(l) => l.name.as_deref().or(l.address.as_deref()),
            Self::Interactive(i) => i.title.as_deref().or(i.body.as_deref()),
            Self::Button(b) => b.text.as_deref(),
            Self::Reaction(r) => r.emoji.as_deref(),
            Self::Order(o) => o.text.as_deref(),
            Self::Poll(p) => p.name.as_deref(),
            Self::System(s) => s.body.as_deref(),
            Self::Edit(e) => e.body.as_deref(),
            Self::Template(t) => t.name.as_deref(),
            Self::Contacts(_)
            | Self::RequestWelcome
            | Self::Revoke(_)
            | Self::Unsupported(_)
            | Self::Unknown(_) => None,
        }
    }
}

/// `message_type: text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextData {
    /// The text as sent.
    pub body: String,
}

/// Media of any kind. Meta sends an `id` to download through the Graph API (and sometimes a
/// short-lived `url`); WAHA sends a `url` on its own file server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MediaData {
    /// Provider media id (Meta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where to download the media, when the provider gave a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Base64 SHA-256 of the file (Meta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Original file name (documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Caption typed with the media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Size of the file in bytes, as the provider reported it (Evolution API `fileLength`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Length of an audio or video in seconds, as the provider reported it (Evolution API
    /// `seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    /// Audio recorded as a voice note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Animated sticker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
    /// The provider could not fetch the media (WAHA `media.error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// wagate's stored copy of the file: a URL that downloads it without provider credentials
    /// (absent when the media stage is off or the provider named no file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Box<super::StoredMedia>>,
}

/// `message_type: location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LocationData {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Place name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Link for the place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Free-text description (WAHA, often name and address in one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A live location share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<bool>,
}

/// `message_type: contacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactsData {
    /// The shared cards, in order.
    pub contacts: Vec<SharedContact>,
}

/// One shared contact card. Meta sends structured fields; WAHA sends vCard text, of which the
/// name and phone numbers are extracted and the full text kept in `vcard`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SharedContact {
    /// Display name (`formatted_name` / vCard `FN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Structured name parts, as sent (Meta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_parts: Option<Value>,
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactPhone>,
    /// E-mail addresses, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Value>,
    /// Postal addresses, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Value>,
    /// Web sites, as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<Value>,
    /// Organisation, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Value>,
    /// Birthday, as sent (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    /// The raw vCard (WAHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
}

/// A phone number on a shared contact card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactPhone {
    /// The number as written on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The WhatsApp id behind it, when the provider resolved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// `CELL`, `HOME`, `WORK`…
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `message_type: interactive`: the customer answered an interactive message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InteractiveData {
    /// `button_reply`, `list_reply`, `nfm_reply` (flow) or a newer kind, as sent.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the chosen button or row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The title of the chosen button or row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The description of the chosen row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Flow reply: the flow's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Flow reply: the body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Flow reply: `response_json` decoded (kept as a string when it is not valid JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// The whole reply object, for kinds wagate does not know and for replies that carry more
    /// than the fields above (Gupshup's `reply` and the developer's `postbackText`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// `message_type: button`: a template quick-reply button was pressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ButtonData {
    /// The developer payload of the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The button label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `message_type: reaction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReactionData {
    /// The message reacted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The emoji; absent when the reaction was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// True when this removes an earlier reaction.
    pub removed: bool,
}

/// `message_type: order`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderData {
    /// Catalog the products come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// Text sent with the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The items of the cart.
    #[serde(default)]
    pub product_items: Vec<OrderItem>,
}

/// One line of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderItem {
    /// The product's retailer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    /// How many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<f64>,
    /// ISO 4217 currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `message_type: template` (a template the business sent, seen as an echo).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateMessageData {
    /// Template name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Template language code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The template object as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// `message_type: poll`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PollData {
    /// The question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The options, in order.
    #[serde(default)]
    pub options: Vec<String>,
    /// How many options one voter may choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectable_count: Option<u32>,
}

/// `message_type: system`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemData {
    /// `customer_changed_number`, `customer_identity_changed`, … as sent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The notice text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The customer's new WhatsApp id after a number change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_wa_id: Option<String>,
    /// The customer's new user id after a user-id change (Meta `user_changed_user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_user_id: Option<String>,
    /// The customer's new identity hash after an identity change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The customer the notice is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

/// `message_type: edit`: the earlier message `edited_message_id` now reads `body`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EditData {
    /// The message that was edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_message_id: Option<String>,
    /// Its new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `message_type: revoke`: the earlier message was deleted for everyone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeData {
    /// The message that was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_message_id: Option<String>,
    /// What the message said before, when the provider still had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
}

/// `message_type: unsupported`: the provider could not represent the message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnsupportedData {
    /// The provider's name for the real type (Meta `unsupported.type`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
}

/// `message_type: unknown`: a type newer than this version of wagate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnknownData {
    /// The provider's type name.
    pub provider_type: String,
    /// The provider's object for that type, unchanged.
    #[serde(default)]
    pub raw: Value,
}

/// Reply and forward information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageContext {
    /// The message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
    /// Forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// Forwarded many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    /// The catalog product the customer asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<ReferredProduct>,
}

/// The message replied to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplyTo {
    /// Its provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Its text, when the provider includes it (WAHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A catalog product referenced from a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReferredProduct {
    /// Catalog id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// Product retailer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
}

/// Where the customer came from (Meta `referral`, e.g. a click-to-WhatsApp ad), as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Referral {
    /// Ad or post URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Ad or post id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad`, `post`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Ad headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// Ad body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `image` or `video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Ad image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Ad video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    /// Ad video thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Click id for conversion tracking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// The rest of the referral object, as sent (welcome message and newer fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// An error the provider reported about a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageError {
    /// Numeric error code (Meta `code`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Short title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer explanation (Meta `error_data.details`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Documentation link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

/// Meta pricing information on a status update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pricing {
    /// Whether the message is billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    /// `CBP` (conversation-based) or `PMP` (per-message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
    /// `marketing`, `utility`, `authentication`, `service`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// PMP price type: `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Meta's billing conversation a status belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BillingConversation {
    /// Meta's conversation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What opened it: `service`, `marketing`, `utility`, `authentication`, `referral_conversion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_type: Option<String>,
    /// When it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub expires_at: Option<DateTime<Utc>>,
}
