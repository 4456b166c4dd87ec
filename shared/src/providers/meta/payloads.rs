//! The typed payloads of a message as Meta sends them (`text`, media, `contacts`,
//! `interactive`, `reaction`, `order`, `system`, `unsupported`, `edit`, `revoke`) and its
//! `context` and `referral`, with their conversions to the model.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::object;
use crate::model::{
    ContactPhone, EditData, InteractiveData, MediaData, MessageContext, OrderData, OrderItem,
    Referral, ReferredProduct, ReplyTo, SharedContact, SystemData,
};
use crate::providers::lenient::{
    opt_bool, opt_f64, opt_nonempty_string, opt_string, value_to_string,
};

/// `text` of a message, read where it stands in the message (a long body is not scanned a
/// second time) and as forgiving as a separate decode: anything but an object with one `body`
/// (a string, a number or a bool) gives no body.
#[derive(Default)]
pub(super) struct TextIn {
    pub(super) body: Option<String>,
}

impl<'de> Deserialize<'de> for TextIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        /// Whether a key is `body`, without allocating it.
        struct IsBody(bool);
        impl<'de> Deserialize<'de> for IsBody {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Key;
                impl Visitor<'_> for Key {
                    type Value = IsBody;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E>(self, v: &str) -> Result<IsBody, E> {
                        Ok(IsBody(v == "body"))
                    }
                }
                d.deserialize_str(Key)
            }
        }
        #[derive(Deserialize)]
        struct Body(#[serde(deserialize_with = "opt_string")] Option<String>);

        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = TextIn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a text object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<TextIn, M::Error> {
                let (mut body, mut bodies) = (None, 0);
                while let Some(IsBody(is_body)) = map.next_key()? {
                    if is_body {
                        body = map.next_value::<Body>()?.0;
                        bodies += 1;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                // Two `body` keys: ambiguous, so none (as a strict decode refuses them).
                Ok(TextIn {
                    body: body.filter(|_| bodies == 1),
                })
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<TextIn, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextIn::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
            fn visit_unit<E>(self) -> Result<TextIn, E> {
                Ok(TextIn::default())
            }
        }
        d.deserialize_any(Text)
    }
}

#[derive(Deserialize)]
pub(super) struct MediaIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    mime_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    sha256: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    filename: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    caption: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    voice: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    animated: Option<bool>,
}

impl MediaIn {
    pub(super) fn into_model(self) -> MediaData {
        MediaData {
            id: self.id,
            url: self.url,
            mime_type: self.mime_type,
            sha256: self.sha256,
            filename: self.filename,
            caption: self.caption,
            file_size: None,
            duration_seconds: None,
            voice: self.voice,
            animated: self.animated,
            error: None,
            media: None,
        }
    }
}

/// A shared contact card as Meta sends it (and Gupshup's v2 format forwards it).
#[derive(Deserialize)]
pub(crate) struct ContactIn {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    phones: Vec<ContactPhone>,
    #[serde(default)]
    emails: Vec<Value>,
    #[serde(default)]
    addresses: Vec<Value>,
    #[serde(default)]
    urls: Vec<Value>,
    #[serde(default)]
    org: Option<Value>,
    #[serde(default, deserialize_with = "opt_string")]
    birthday: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    vcard: Option<String>,
}

impl ContactIn {
    /// The card in the model; a `null` name or organisation stays absent (as `Some(Null)` it
    /// would read back as `None` after the queue).
    pub(crate) fn into_model(self) -> SharedContact {
        let display = self
            .name
            .as_ref()
            .and_then(|n| n.get("formatted_name"))
            .cloned()
            .and_then(value_to_string);
        SharedContact {
            name: display,
            name_parts: self.name.filter(|n| !n.is_null()),
            phones: self.phones,
            emails: self.emails,
            addresses: self.addresses,
            urls: self.urls,
            org: self.org.filter(|o| !o.is_null()),
            birthday: self.birthday,
            vcard: self.vcard,
        }
    }
}

/// `interactive`: a reply to a button, list row, flow or call-permission request.
pub(super) fn interactive(raw: &RawValue) -> Option<InteractiveData> {
    let mut v = object(raw)?;
    let kind = v.get("type").cloned().and_then(value_to_string)?;
    let reply = v.remove(&kind).unwrap_or(Value::Null);
    let s = |k: &str| reply.get(k).cloned().and_then(value_to_string);
    let mut data = InteractiveData {
        kind: kind.clone(),
        id: s("id"),
        title: s("title"),
        description: s("description"),
        name: s("name"),
        body: s("body"),
        response: None,
        raw: None,
    };
    // A missing or `null` object stays absent: `Some(Null)` would serialize as `null` and read
    // back as `None`, changing the event on its way through the queue.
    match kind.as_str() {
        "button_reply" | "list_reply" => {}
        "nfm_reply" => {
            // `response_json` is JSON inside a string; keep the string if it does not decode.
            data.response = reply
                .get("response_json")
                .map(|r| match r {
                    Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| r.clone()),
                    other => other.clone(),
                })
                .filter(|r| !r.is_null());
        }
        _ => data.raw = Some(reply).filter(|r| !r.is_null()),
    }
    Some(data)
}

#[derive(Deserialize)]
pub(super) struct ReactionIn {
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) message_id: Option<String>,
    /// Removal is `"emoji": ""` or no `emoji` at all.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    pub(super) emoji: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct OrderIn {
    #[serde(default, deserialize_with = "opt_string")]
    catalog_id: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    text: Option<String>,
    #[serde(default)]
    product_items: Vec<OrderItemIn>,
}

#[derive(Deserialize)]
#[serde(from = "OrderItemRepr")]
struct OrderItemIn(OrderItem);

#[derive(Deserialize)]
struct OrderItemRepr {
    #[serde(default, deserialize_with = "opt_string")]
    product_retailer_id: Option<String>,
    #[serde(default, deserialize_with = "opt_f64")]
    quantity: Option<f64>,
    #[serde(default, deserialize_with = "opt_f64")]
    item_price: Option<f64>,
    #[serde(default, deserialize_with = "opt_string")]
    currency: Option<String>,
}

impl From<OrderItemRepr> for OrderItemIn {
    fn from(r: OrderItemRepr) -> Self {
        Self(OrderItem {
            product_retailer_id: r.product_retailer_id,
            quantity: r.quantity,
            item_price: r.item_price,
            currency: r.currency,
        })
    }
}

impl From<OrderItemIn> for OrderItem {
    fn from(i: OrderItemIn) -> Self {
        i.0
    }
}

impl OrderIn {
    pub(super) fn into_model(self) -> OrderData {
        OrderData {
            catalog_id: self.catalog_id,
            text: self.text,
            product_items: self
                .product_items
                .into_iter()
                .map(OrderItem::from)
                .collect(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct SystemIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    body: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    new_wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    identity: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    customer: Option<String>,
}

impl SystemIn {
    pub(super) fn into_model(self) -> SystemData {
        SystemData {
            kind: self.kind,
            body: self.body,
            // v11 and older say `new_wa_id`; later versions put the new number in `wa_id`.
            new_wa_id: self.new_wa_id.or(self.wa_id),
            new_user_id: self.user_id,
            identity: self.identity,
            customer: self.customer,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct UnsupportedIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    pub(super) kind: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EditIn {
    #[serde(default, deserialize_with = "opt_string")]
    original_message_id: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

impl EditIn {
    pub(super) fn into_model(self) -> EditData {
        // The new content is a nested message: text body, or the caption of edited media.
        let body = self.message.as_ref().and_then(|m| {
            let kind = m.get("type")?.as_str()?;
            let inner = m.get(kind)?;
            inner
                .get("body")
                .or_else(|| inner.get("caption"))
                .cloned()
                .and_then(value_to_string)
        });
        EditData {
            edited_message_id: self.original_message_id,
            body,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RevokeIn {
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) original_message_id: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ContextIn {
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    forwarded: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    frequently_forwarded: Option<bool>,
    #[serde(default)]
    referred_product: Option<ReferredProduct>,
}

impl ContextIn {
    pub(super) fn into_model(self) -> MessageContext {
        MessageContext {
            reply_to: self.id.map(|id| ReplyTo {
                message_id: Some(id),
                from: self.from,
                body: None,
            }),
            forwarded: self.forwarded,
            frequently_forwarded: self.frequently_forwarded,
            referred_product: self.referred_product,
        }
    }
}

/// `referral`: the documented fields typed, anything else kept in `extra`.
pub(super) fn referral(raw: &RawValue) -> Option<Referral> {
    let mut v = object(raw)?;
    let mut take = |k: &str| v.remove(k).and_then(value_to_string);
    let referral = Referral {
        source_url: take("source_url"),
        source_id: take("source_id"),
        source_type: take("source_type"),
        headline: take("headline"),
        body: take("body"),
        media_type: take("media_type"),
        image_url: take("image_url"),
        video_url: take("video_url"),
        thumbnail_url: take("thumbnail_url"),
        ctwa_clid: take("ctwa_clid"),
        extra: None,
    };
    Some(Referral {
        extra: (!v.is_empty()).then_some(Value::Object(v)),
        ..referral
    })
}
