//! Who a Baileys message key names: the chat, and the person behind a `@s.whatsapp.net` phone JID
//! and/or an opaque `@lid` JID, gathered from every spelling the key carries.
//!
//! One person appears under either JID depending on the chat's addressing mode and on the
//! Evolution and Baileys versions: `remoteJid` with `remoteJidAlt` (Baileys 7), `senderPn` /
//! `senderLid` (Baileys 6.7), `previousRemoteJid` (Evolution 2.3.2-2.3.3, which rewrote
//! `remoteJid` to the phone JID). Whichever is present, the phone number is the digits of the
//! phone JID and the user id is the `@lid` JID; neither is ever guessed from the other.

use serde::Deserialize;

use crate::model::ContactProfile;
use crate::providers::chat_id::{ChatId, ChatKind};
use crate::providers::lenient::{opt_bool, opt_nonempty_string};

/// A Baileys `WAMessageKey`, with the alternative-JID fields of every version.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct KeyIn {
    #[serde(
        rename = "remoteJid",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    pub(super) remote_jid: Option<String>,
    #[serde(rename = "fromMe", default, deserialize_with = "opt_bool")]
    pub(super) from_me: Option<bool>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    pub(super) id: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    pub(super) participant: Option<String>,
    #[serde(
        rename = "remoteJidAlt",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    remote_jid_alt: Option<String>,
    #[serde(
        rename = "participantAlt",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    participant_alt: Option<String>,
    #[serde(rename = "senderPn", default, deserialize_with = "opt_nonempty_string")]
    sender_pn: Option<String>,
    #[serde(
        rename = "senderLid",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    sender_lid: Option<String>,
    #[serde(
        rename = "participantPn",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    participant_pn: Option<String>,
    #[serde(
        rename = "participantLid",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    participant_lid: Option<String>,
    #[serde(
        rename = "previousRemoteJid",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    previous_remote_jid: Option<String>,
}

/// A person as WhatsApp named them: phone number digits and/or `@lid` user id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Person {
    pub(super) phone: Option<String>,
    pub(super) lid: Option<String>,
}

impl Person {
    /// The phone number and lid among `jids` (first of each wins), ignoring JIDs that are not
    /// user JIDs and the phone number `not` (the business's own, which an alternative field may
    /// carry on the business's messages).
    pub(super) fn from_jids<'a>(
        jids: impl IntoIterator<Item = Option<&'a str>>,
        not: Option<&str>,
    ) -> Self {
        let mut person = Self::default();
        for id in jids
            .into_iter()
            .flatten()
            .filter_map(|j| ChatId::parse(j).ok())
        {
            match id.kind() {
                ChatKind::User => {
                    let phone = id.phone_number().filter(|p| Some(*p) != not);
                    if person.phone.is_none() {
                        person.phone = phone.map(str::to_owned);
                    }
                }
                ChatKind::Lid if person.lid.is_none() => person.lid = Some(jid_text(&id)),
                _ => {}
            }
        }
        person
    }

    /// The business's own account, from the envelope's `sender`.
    pub(super) fn business(sender: Option<&str>) -> Self {
        Self::from_jids([sender], None)
    }

    pub(super) fn is_known(&self) -> bool {
        self.phone.is_some() || self.lid.is_some()
    }

    /// The person's chat JID: the phone JID when the number is known, else the lid.
    pub(super) fn jid(&self) -> Option<String> {
        self.phone
            .as_ref()
            .map(|p| format!("{p}@s.whatsapp.net"))
            .or_else(|| self.lid.clone())
    }

    /// The person as a customer profile carrying both ids, so that the contact stage links them.
    pub(super) fn profile(&self, name: Option<String>) -> Option<ContactProfile> {
        self.is_known().then(|| ContactProfile {
            wa_id: self.phone.clone(),
            user_id: self.lid.clone(),
            username: None,
            name,
        })
    }
}

/// A JID as Baileys spells it, without a device suffix: `…@s.whatsapp.net` for phone users.
pub(super) fn jid_text(id: &ChatId) -> String {
    match id.kind() {
        ChatKind::User => format!("{}@s.whatsapp.net", id.user()),
        _ => id.to_string(),
    }
}

/// A JID string in its canonical spelling, or as given when it does not parse.
pub(super) fn canonical_jid(jid: &str) -> String {
    ChatId::parse(jid).map_or_else(|_| jid.to_owned(), |id| jid_text(&id))
}

/// The chat of a message key and the person on the other side of it.
#[derive(Debug, Clone)]
pub(super) struct Chat {
    /// The chat JID: for one-to-one chats the customer's phone JID when known, else the lid.
    pub(super) id: String,
    pub(super) kind: ChatKind,
    /// In a one-to-one chat the customer; in a group, status or broadcast the member who sent
    /// the message (unknown when the key names none).
    pub(super) person: Person,
}

impl Chat {
    /// One-to-one with a user (phone or lid), as opposed to a group, status feed or channel.
    pub(super) fn is_direct(&self) -> bool {
        matches!(self.kind, ChatKind::User | ChatKind::Lid)
    }

    pub(super) fn is_group(&self) -> bool {
        self.kind == ChatKind::Group
    }

    /// The chat and its person from a message key; `None` when `remoteJid` is not a JID.
    /// `participant` is the top-level participant some payloads carry beside the key.
    pub(super) fn of(
        key: &KeyIn,
        participant: Option<&str>,
        business_phone: Option<&str>,
    ) -> Option<Self> {
        let remote = ChatId::parse(key.remote_jid.as_deref()?).ok()?;
        let kind = remote.kind().clone();
        if matches!(kind, ChatKind::User | ChatKind::Lid) {
            let mut person = Person::from_jids(
                [
                    key.remote_jid.as_deref(),
                    key.remote_jid_alt.as_deref(),
                    key.sender_pn.as_deref(),
                    key.sender_lid.as_deref(),
                    key.previous_remote_jid.as_deref(),
                ],
                business_phone,
            );
            // A chat with the business's own number ("message yourself") is still that chat.
            if !person.is_known() {
                person = Person::from_jids([key.remote_jid.as_deref()], None);
            }
            let id = person.jid().unwrap_or_else(|| jid_text(&remote));
            return Some(Self { id, kind, person });
        }
        let person = Person::from_jids(
            [
                key.participant.as_deref(),
                key.participant_alt.as_deref(),
                key.participant_pn.as_deref(),
                key.participant_lid.as_deref(),
                participant,
            ],
            None,
        );
        Some(Self {
            id: jid_text(&remote),
            kind,
            person,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: serde_json::Value) -> KeyIn {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_lid_chat_with_its_phone_alternative_is_the_phone_chat() {
        for k in [
            serde_json::json!({"remoteJid": "123456789012345@lid", "remoteJidAlt": "15550001111@s.whatsapp.net"}),
            serde_json::json!({"remoteJid": "15550001111@s.whatsapp.net", "remoteJidAlt": "123456789012345@lid"}),
            serde_json::json!({"remoteJid": "15550001111@s.whatsapp.net", "previousRemoteJid": "123456789012345@lid"}),
            serde_json::json!({"remoteJid": "123456789012345@lid", "senderPn": "15550001111@s.whatsapp.net"}),
        ] {
            let chat = Chat::of(&key(k.clone()), None, Some("15550009999")).unwrap();
            assert_eq!(chat.id, "15550001111@s.whatsapp.net", "{k}");
            assert_eq!(chat.person.phone.as_deref(), Some("15550001111"), "{k}");
            assert_eq!(
                chat.person.lid.as_deref(),
                Some("123456789012345@lid"),
                "{k}"
            );
        }
    }

    #[test]
    fn a_lid_alone_is_an_opaque_user_id_never_a_phone_number() {
        let chat = Chat::of(
            &key(serde_json::json!({"remoteJid": "555666777888999@lid"})),
            None,
            None,
        )
        .unwrap();
        assert_eq!(chat.id, "555666777888999@lid");
        assert_eq!(chat.person.phone, None);
    }

    #[test]
    fn the_business_number_in_an_alternative_field_is_not_the_customer() {
        let k = key(
            serde_json::json!({"remoteJid": "123456789012345@lid", "senderPn": "15550009999@s.whatsapp.net"}),
        );
        let chat = Chat::of(&k, None, Some("15550009999")).unwrap();
        assert_eq!(chat.person.phone, None);
        assert_eq!(chat.id, "123456789012345@lid");
    }

    #[test]
    fn group_keys_name_the_member_who_sent() {
        let k = key(serde_json::json!({
            "remoteJid": "120363025246125486@g.us",
            "participant": "987654321098765@lid",
            "participantAlt": "15550002222@s.whatsapp.net"
        }));
        let chat = Chat::of(&k, None, None).unwrap();
        assert!(chat.is_group());
        assert_eq!(chat.id, "120363025246125486@g.us");
        assert_eq!(chat.person.phone.as_deref(), Some("15550002222"));
        assert_eq!(chat.person.lid.as_deref(), Some("987654321098765@lid"));
    }

    #[test]
    fn device_suffixes_are_dropped() {
        assert_eq!(
            canonical_jid("15550009999:12@s.whatsapp.net"),
            "15550009999@s.whatsapp.net"
        );
        assert_eq!(
            canonical_jid("15550009999@c.us"),
            "15550009999@s.whatsapp.net"
        );
        assert_eq!(canonical_jid("not a jid"), "not a jid");
    }
}
