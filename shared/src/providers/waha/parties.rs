//! Who a WhatsApp id is: message parties (phone number or non-phone user id) and customer
//! profiles from JIDs.

use crate::model::ContactProfile;
use crate::providers::chat_id::{ChatId, ChatKind};

/// One side of a message, split into phone number and non-phone user id.
#[derive(Debug, Clone, Default)]
pub(super) struct Party {
    pub(super) phone: Option<String>,
    pub(super) user_id: Option<String>,
}

impl Party {
    pub(super) fn from_chat(id: &ChatId) -> Self {
        match id.phone_number() {
            Some(phone) => Self {
                phone: Some(phone.to_owned()),
                user_id: None,
            },
            None => Self {
                phone: None,
                user_id: Some(id.to_string()),
            },
        }
    }
}

/// The customer behind a user JID (`…@c.us`, `…@lid`); `None` for groups, channels, broadcasts.
pub(super) fn customer_profile(jid: &str) -> Option<ContactProfile> {
    let id = ChatId::parse(jid).ok()?;
    if !matches!(id.kind(), ChatKind::User | ChatKind::Lid) {
        return None;
    }
    let party = Party::from_chat(&id);
    Some(ContactProfile {
        wa_id: party.phone,
        user_id: party.user_id,
        ..ContactProfile::default()
    })
}

/// Digits of a phone-number JID.
pub(super) fn phone_of(jid: &str) -> Option<String> {
    ChatId::parse(jid)
        .ok()
        .and_then(|id| id.phone_number().map(str::to_owned))
}
