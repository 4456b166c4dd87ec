//! vCards as WhatsApp shares them (WAHA's `vCards`, Baileys' `contactMessage.vcard`): the display
//! name and phone numbers (with the `waid` WhatsApp adds) read out, the card kept whole.

use crate::model::{ContactPhone, SharedContact};

/// The display name and phone numbers of a vCard, with the card kept whole.
pub(crate) fn parse(card: &str) -> SharedContact {
    let mut contact = SharedContact {
        vcard: Some(card.to_owned()),
        ..SharedContact::default()
    };
    for line in card.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut params = key.split(';');
        let name = params
            .next()
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default();
        match name.to_ascii_uppercase().as_str() {
            "FN" if !value.trim().is_empty() => contact.name = Some(value.trim().to_owned()),
            "TEL" => {
                let wa_id = params
                    .find_map(|p| p.strip_prefix("waid="))
                    .map(str::to_owned);
                contact.phones.push(ContactPhone {
                    phone: Some(value.trim().to_owned()),
                    wa_id,
                    kind: None,
                });
            }
            _ => {}
        }
    }
    contact
}
