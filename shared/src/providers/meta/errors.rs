//! Meta error objects: the `errors[]` of a message or status, and value-level `errors[]`
//! items (a problem not tied to one message).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ValueCtx, decode, decode_owned, raw_value};
use crate::model::{
    EventBody, EventType, InboundEvent, MessageError, NotificationData, Subject, SubjectKind,
};
use crate::providers::lenient::{opt_i64, opt_string};

impl ValueCtx<'_> {
    /// A value-level `errors[]` item: a problem not tied to one message.
    pub(super) fn value_error(&self, raw: &RawValue) -> Option<InboundEvent> {
        let e: ErrorIn = decode_owned(raw)?;
        let error = e.into_model();
        let mut n = NotificationData::new(self.field, raw_value(raw));
        n.kind = error.error_code.map(|c| c.to_string());
        n.reason = error.details.or(error.error_message);
        n.subject = Some(Subject::new(
            SubjectKind::PhoneNumber,
            self.source.business_id.clone(),
        ));
        let key = self.content_key("errors", raw);
        self.emit(
            EventType::ProviderError,
            key,
            self.entry.time,
            EventBody::notification(n),
        )
    }
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_string")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorDataIn>,
    #[serde(default, deserialize_with = "opt_string")]
    href: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDataIn {
    #[serde(default, deserialize_with = "opt_string")]
    details: Option<String>,
}

impl ErrorIn {
    fn into_model(self) -> MessageError {
        MessageError {
            error_code: self.code,
            error_message: self.message.or_else(|| self.title.clone()),
            title: self.title,
            details: self.error_data.and_then(|d| d.details),
            href: self.href,
        }
    }
}

/// `errors[]` of a message or status; unreadable items are skipped (the raw item stays in the
/// provider's retry, and the status itself still goes out).
pub(super) fn errors(raw: Option<&RawValue>) -> Vec<MessageError> {
    raw.and_then(decode::<Vec<&RawValue>>)
        .unwrap_or_default()
        .into_iter()
        .filter_map(decode_owned::<ErrorIn>)
        .map(ErrorIn::into_model)
        .collect()
}
