//! WhatsApp JIDs (`15550001111@c.us`, `…@lid`, `…@g.us`, device forms like `1555…:12@s.whatsapp.net`)
//! and WAHA serialized message ids (`false_15550001111@c.us_3EB0…[_participant]`), parsed into
//! their parts rather than string-sliced.
//!
//! Must not: guess phone numbers from ids that are not phone-number JIDs (`@lid` is opaque).

use std::fmt;

/// What a JID's server part says the id is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// A user addressed by phone number (`@c.us`, `@s.whatsapp.net`).
    User,
    /// A user addressed by a hidden linked id (`@lid`).
    Lid,
    /// A group (`@g.us`).
    Group,
    /// A channel (`@newsletter`).
    Newsletter,
    /// The status (stories) feed, `status@broadcast`.
    Status,
    /// A broadcast list (`…@broadcast`).
    Broadcast,
    /// A bot (`@bot`).
    Bot,
    /// A server this version does not know.
    Other(String),
}

/// A parsed JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatId {
    user: String,
    device: Option<u32>,
    kind: ChatKind,
}

/// Why a string is not a JID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WhatsApp id: expected `user@server`")]
pub struct InvalidChatId;

impl ChatId {
    /// Parses `user[:device]@server`. The user part must be non-empty and free of `@`.
    pub fn parse(s: &str) -> Result<Self, InvalidChatId> {
        let (user_part, server) = s.split_once('@').ok_or(InvalidChatId)?;
        if user_part.is_empty() || server.is_empty() || server.contains('@') {
            return Err(InvalidChatId);
        }
        let (user, device) = match user_part.split_once(':') {
            Some((user, device)) => (
                user,
                Some(device.parse::<u32>().map_err(|_| InvalidChatId)?),
            ),
            None => (user_part, None),
        };
        if user.is_empty() {
            return Err(InvalidChatId);
        }
        let kind = match server {
            "c.us" | "s.whatsapp.net" => ChatKind::User,
            "lid" => ChatKind::Lid,
            "g.us" => ChatKind::Group,
            "newsletter" => ChatKind::Newsletter,
            "broadcast" if user == "status" => ChatKind::Status,
            "broadcast" => ChatKind::Broadcast,
            "bot" => ChatKind::Bot,
            other => ChatKind::Other(other.to_owned()),
        };
        Ok(Self {
            user: user.to_owned(),
            device,
            kind,
        })
    }

    /// The kind of id.
    pub fn kind(&self) -> &ChatKind {
        &self.kind
    }

    /// The user part, without device suffix.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The device number of a device JID (`…:12@s.whatsapp.net`).
    pub fn device(&self) -> Option<u32> {
        self.device
    }

    /// The phone number (digits, no `+`) when this is a phone-number user JID.
    pub fn phone_number(&self) -> Option<&str> {
        let digits = !self.user.is_empty() && self.user.bytes().all(|b| b.is_ascii_digit());
        (self.kind == ChatKind::User && digits).then_some(self.user.as_str())
    }

    /// True for group chats.
    pub fn is_group(&self) -> bool {
        self.kind == ChatKind::Group
    }
}

impl fmt::Display for ChatId {
    /// The canonical WAHA form: `@c.us` for phone users, device suffix dropped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = match &self.kind {
            ChatKind::User => "c.us",
            ChatKind::Lid => "lid",
            ChatKind::Group => "g.us",
            ChatKind::Newsletter => "newsletter",
            ChatKind::Status | ChatKind::Broadcast => "broadcast",
            ChatKind::Bot => "bot",
            ChatKind::Other(s) => s,
        };
        write!(f, "{}@{server}", self.user)
    }
}

/// A WAHA serialized message id: `{fromMe}_{chat}_{id}[_{participant}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WahaMessageId {
    /// Whether the business's account sent the message.
    pub from_me: bool,
    /// The chat (remote JID) the message is in, as written in the id.
    pub chat: String,
    /// The bare message id (what `editedMessageId`, `revokedMessageId`, `replyTo.id` use).
    pub id: String,
    /// The group/status member who sent it, when present.
    pub participant: Option<String>,
}

impl WahaMessageId {
    /// Parses a serialized id; `None` when it does not have 3 or 4 `_`-separated parts with a
    /// `true`/`false` first part (older engines send bare ids in places).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, '_');
        let from_me = match parts.next()? {
            "true" => true,
            "false" => false,
            _ => return None,
        };
        let chat = parts.next().filter(|c| !c.is_empty())?;
        let id = parts.next().filter(|i| !i.is_empty())?;
        let participant = parts.next().filter(|p| !p.is_empty()).map(str::to_owned);
        Some(Self {
            from_me,
            chat: chat.to_owned(),
            id: id.to_owned(),
            participant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_user_ids_expose_their_number() {
        let id = ChatId::parse("15550001111@c.us").unwrap();
        assert_eq!(id.kind(), &ChatKind::User);
        assert_eq!(id.phone_number(), Some("15550001111"));
        assert_eq!(id.to_string(), "15550001111@c.us");
    }

    #[test]
    fn device_jids_are_normalized_to_the_user() {
        let id = ChatId::parse("15550009999:12@s.whatsapp.net").unwrap();
        assert_eq!(id.device(), Some(12));
        assert_eq!(id.phone_number(), Some("15550009999"));
        assert_eq!(id.to_string(), "15550009999@c.us");
        let lid = ChatId::parse("123456789012345:31@lid").unwrap();
        assert_eq!(lid.to_string(), "123456789012345@lid");
    }

    #[test]
    fn linked_ids_groups_and_broadcasts_have_no_phone_number() {
        for (s, kind) in [
            ("123456789012345@lid", ChatKind::Lid),
            ("120363025246125486@g.us", ChatKind::Group),
            ("15550001111-1612345678@g.us", ChatKind::Group),
            ("120363000000000000@newsletter", ChatKind::Newsletter),
            ("status@broadcast", ChatKind::Status),
            ("1234567@broadcast", ChatKind::Broadcast),
        ] {
            let id = ChatId::parse(s).unwrap();
            assert_eq!(id.kind(), &kind, "{s}");
            assert_eq!(id.phone_number(), None, "{s}");
        }
    }

    #[test]
    fn rejects_strings_that_are_not_jids() {
        for s in [
            "",
            "15550001111",
            "@c.us",
            "155@",
            "a@b@c",
            "155:x@c.us",
            ":1@c.us",
            "me",
        ] {
            assert_eq!(ChatId::parse(s), Err(InvalidChatId), "{s}");
        }
    }

    #[test]
    fn waha_message_ids_split_into_parts() {
        let id = WahaMessageId::parse("false_15550001111@c.us_3EB0C767D26A1D2F5A1E").unwrap();
        assert!(!id.from_me);
        assert_eq!(id.chat, "15550001111@c.us");
        assert_eq!(id.id, "3EB0C767D26A1D2F5A1E");
        assert_eq!(id.participant, None);
        let group = WahaMessageId::parse(
            "true_120363025246125486@g.us_3EB0B6F646127B8BBC42_123456789012345@lid",
        )
        .unwrap();
        assert!(group.from_me);
        assert_eq!(group.participant.as_deref(), Some("123456789012345@lid"));
        assert_eq!(WahaMessageId::parse("3EB0C767D26A1D2F5A1E"), None);
        assert_eq!(WahaMessageId::parse("maybe_x@c.us_1"), None);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC*") {
            let _ = ChatId::parse(&s);
            let _ = WahaMessageId::parse(&s);
        }

        #[test]
        fn canonical_user_ids_round_trip(user in "[0-9]{6,15}", device in proptest::option::of(0u32..100)) {
            let text = match device {
                Some(d) => format!("{user}:{d}@s.whatsapp.net"),
                None => format!("{user}@c.us"),
            };
            let id = ChatId::parse(&text).unwrap();
            prop_assert_eq!(id.phone_number(), Some(user.as_str()));
            prop_assert_eq!(ChatId::parse(&id.to_string()).unwrap().to_string(), format!("{user}@c.us"));
        }
    }
}
