//! Meta's Cloud API: the Graph `POST /{version}/{phone_number_id}/messages` body for each message
//! type and for mark-as-read, the success answer, and the error-code table.
//!
//! Owns: Meta's wire format and what its error codes mean for wagate's API. Must not: call,
//! retry or log (the [`Sender`](super::Sender) does), or put the token anywhere but the header.

use serde_json::{Value, json};

use super::api::{ApiAnswer, ApiMethod};
use super::error::{ProviderFailure, SendError, scrub};
use super::message::{MarkRead, Recipient, SendMessage, SendType};
use super::settings::{MetaSend, is_phone_number_id};
use super::{Delivered, Outcome, PreparedCall, SentRecipient};
use crate::model::Provider;

/// `biz_opaque_callback_data` may be at most this long (Meta: 512 characters).
pub const MAX_TAG_CHARS: usize = 512;

/// The phone number id a call goes from: the request's `from`, else the settings' default.
fn sender(settings: &MetaSend, from: Option<&str>) -> Result<String, SendError> {
    let id = from
        .or(settings.phone_number_id.as_deref())
        .ok_or_else(|| {
            SendError::invalid(
                "from",
                "is required: the source has no default phone_number_id",
            )
        })?;
    if !is_phone_number_id(id) {
        return Err(SendError::invalid(
            "from",
            "is not a Meta phone number id (digits)",
        ));
    }
    Ok(id.to_owned())
}

fn call(
    settings: &MetaSend,
    phone_number_id: &str,
    body: &Value,
    idempotent: bool,
) -> PreparedCall {
    let token = String::from_utf8_lossy(settings.access_token.expose());
    PreparedCall {
        method: ApiMethod::Post,
        url: format!(
            "{}/{}/{phone_number_id}/messages",
            settings.graph_url, settings.graph_version
        ),
        headers: vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ],
        body: serde_json::to_vec(body).unwrap_or_default(),
        idempotent,
        private_network: false,
    }
}

/// The Graph body of `msg`: `messaging_product`, `recipient_type`, `to` (phone) or `recipient`
/// (business-scoped user id), `type` and its object, `context` for a reply and
/// `biz_opaque_callback_data` for `tag`.
pub fn send_body(msg: &SendMessage, tag: Option<&str>) -> Result<Value, SendError> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": msg.kind.as_str(),
    });
    match msg.recipient()? {
        Recipient::Phone(digits) => body["to"] = json!(digits),
        Recipient::UserId(id) => body["recipient"] = json!(id),
        Recipient::Lid(_) => {
            return Err(SendError::Unsupported {
                provider: Provider::Meta,
                field: if msg.user_id.is_some() {
                    "user_id"
                } else {
                    "to"
                }
                .to_owned(),
                reason: "`…@lid` ids are WAHA's; Meta takes a phone number or a business-scoped \
                         user id"
                    .to_owned(),
            });
        }
    }
    // The request types serialise in Meta's own shape.
    let content = match msg.kind {
        SendType::Text => serde_json::to_value(&msg.text),
        SendType::Template => serde_json::to_value(&msg.template),
        SendType::Image => serde_json::to_value(&msg.image),
        SendType::Video => serde_json::to_value(&msg.video),
        SendType::Audio => serde_json::to_value(&msg.audio),
        SendType::Document => serde_json::to_value(&msg.document),
        SendType::Sticker => serde_json::to_value(&msg.sticker),
        SendType::Location => serde_json::to_value(&msg.location),
        SendType::Contacts => serde_json::to_value(&msg.contacts),
        SendType::Interactive => serde_json::to_value(&msg.interactive),
        SendType::Reaction => serde_json::to_value(&msg.reaction),
    }
    .unwrap_or(Value::Null);
    if content.is_null() {
        return Err(SendError::invalid(
            msg.kind.as_str(),
            "is required by `type`",
        ));
    }
    body[msg.kind.as_str()] = content;
    if let Some(reply_to) = &msg.reply_to {
        body["context"] = json!({"message_id": reply_to});
    }
    if let Some(tag) = tag {
        if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
            return Err(SendError::invalid(
                "biz_opaque_callback_data",
                format!("must be 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
        body["biz_opaque_callback_data"] = json!(tag);
    }
    Ok(body)
}

/// The call that sends `msg`.
pub(super) fn send_call(
    settings: &MetaSend,
    msg: &SendMessage,
    tag: Option<&str>,
) -> Result<(PreparedCall, String), SendError> {
    let from = sender(settings, msg.from.as_deref())?;
    let body = send_body(msg, tag)?;
    // Setting the same reaction twice leaves the same state: safe to repeat after a timeout.
    let idempotent = msg.kind == SendType::Reaction;
    Ok((call(settings, &from, &body, idempotent), from))
}

/// The body that marks a message as read (with a typing indicator when asked).
pub fn mark_read_body(req: &MarkRead) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": req.message_id,
    });
    if req.typing_indicator {
        body["typing_indicator"] = json!({"type": "text"});
    }
    body
}

/// The call that marks `req.message_id` as read; repeating it is harmless.
pub(super) fn mark_read_call(
    settings: &MetaSend,
    req: &MarkRead,
) -> Result<PreparedCall, SendError> {
    let from = sender(settings, req.from.as_deref())?;
    Ok(call(settings, &from, &mark_read_body(req), true))
}

/// Reads a send's answer: the message id, its `message_status` and the resolved contact.
pub(super) fn read_sent(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
) -> Outcome<Delivered> {
    if !(200..300).contains(&answer.status) {
        return classify(answer, retry_after);
    }
    let Ok(v) = serde_json::from_slice::<Value>(&answer.body) else {
        return Outcome::Lost(
            "the provider accepted the request but its answer is not JSON".into(),
        );
    };
    let message = v.get("messages").and_then(|m| m.get(0));
    let Some(id) = message.and_then(|m| m.get("id")).and_then(Value::as_str) else {
        return Outcome::Lost("the provider's answer names no message id".into());
    };
    let contact = v.get("contacts").and_then(|c| c.get(0));
    let text = |o: Option<&Value>, k: &str| {
        o.and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Outcome::Done(Delivered {
        message_id: Some(id.to_owned()),
        provider_status: text(message, "message_status"),
        recipient: SentRecipient {
            wa_id: text(contact, "wa_id"),
            user_id: text(contact, "user_id"),
            chat_id: None,
        },
    })
}

/// Reads a mark-as-read answer (`{"success": true}`).
pub(super) fn read_marked(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
) -> Outcome<()> {
    if (200..300).contains(&answer.status) {
        Outcome::Done(())
    } else {
        match classify::<Delivered>(answer, retry_after) {
            Outcome::Failed(f) => Outcome::Failed(f),
            Outcome::Lost(r) => Outcome::Lost(r),
            Outcome::Done(_) => Outcome::Done(()),
        }
    }
}

/// What a Graph error code means: wagate's status, code, words, and whether Meta certainly did
/// not act and may accept the same request later.
///
/// From Meta's "WhatsApp error codes" reference: throttling (4, 80007, 130429, 131048, 131056),
/// authorization (0, 190, 3, 10, 200–299), integrity and account (368, 130497, 131031, 131037,
/// 131042), the transient ones ("API Unknown" 1, "API Service" 2, 131000 "Something went wrong",
/// 131016 "Service unavailable", 131057 "Account in maintenance mode", 133004 "Server temporarily
/// unavailable") and the request, recipient, media and template errors.
pub fn error_class(code: i64) -> Option<(u16, &'static str, &'static str, bool)> {
    Some(match code {
        4 | 80007 | 130429 | 131056 => (
            429,
            "rate_limited",
            "the provider is rate limiting sends; retry later",
            true,
        ),
        131048 => (
            429,
            "spam_rate_limited",
            "the provider restricts this number's sending because of its quality rating",
            false,
        ),
        1 | 2 | 131000 | 131016 | 131057 | 133004 => (
            503,
            "provider_unavailable",
            "the provider reported a temporary error; retry later",
            true,
        ),
        0 | 190 => (
            502,
            "provider_auth_failed",
            "the provider refused the configured access token",
            false,
        ),
        3 | 10 | 131005 | 200..=299 => (
            502,
            "provider_permission_denied",
            "the configured access token lacks a permission this call needs",
            false,
        ),
        131047 => (
            422,
            "outside_customer_service_window",
            "more than 24 hours have passed since the customer last wrote: only a template can \
             be sent",
            false,
        ),
        131026 => (
            422,
            "undeliverable",
            "the provider cannot deliver to this recipient (not on WhatsApp, terms not \
             accepted, or an outdated app)",
            false,
        ),
        131049 => (
            422,
            "per_user_marketing_limit",
            "Meta held the message to keep the recipient's marketing messages in check",
            false,
        ),
        131050 => (
            422,
            "recipient_opted_out",
            "the recipient stopped marketing messages from this business",
            false,
        ),
        131021 => (
            422,
            "invalid_recipient",
            "the recipient cannot be the sender",
            false,
        ),
        131062 => (
            422,
            "unsupported_by_provider",
            "this message cannot be sent to a business-scoped user id",
            false,
        ),
        131052 | 131053 => (
            422,
            "media_rejected",
            "the provider could not fetch or process the media",
            false,
        ),
        132000..=132999 => (
            422,
            "template_rejected",
            "the provider refused the template or its parameters",
            false,
        ),
        33 | 100 | 131008 | 131009 | 131051 | 135000 => (
            422,
            "provider_rejected",
            "the provider refused the request",
            false,
        ),
        368 | 130497 | 131031 | 131037 => (
            403,
            "account_restricted",
            "the provider has restricted the sending account",
            false,
        ),
        131042 => (
            403,
            "payment_required",
            "the sending account has a payment issue",
            false,
        ),
        133010 => (
            403,
            "sender_not_registered",
            "the sending phone number is not registered with the Cloud API",
            false,
        ),
        _ => return None,
    })
}

/// The class of an answer without a known Graph code, by its HTTP status. A 504 is a gateway
/// that stopped waiting for Meta, which may have acted: the outcome is unknown.
fn status_class(status: u16) -> Option<(u16, &'static str, &'static str, bool)> {
    Some(match status {
        429 => (
            429,
            "rate_limited",
            "the provider is rate limiting sends; retry later",
            true,
        ),
        401 | 403 => (
            502,
            "provider_auth_failed",
            "the provider refused the configured credentials",
            false,
        ),
        504 => return None,
        500..=599 => (
            503,
            "provider_unavailable",
            "the provider reported a temporary error; retry later",
            true,
        ),
        _ => (
            422,
            "provider_rejected",
            "the provider refused the request",
            false,
        ),
    })
}

/// Classifies a Graph error answer `{"error": {"message", "type", "code", "error_subcode",
/// "error_data": {"details"}, "fbtrace_id"}}`.
pub(super) fn classify<T>(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
) -> Outcome<T> {
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let error = v.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let class = code
        .and_then(error_class)
        .or_else(|| status_class(answer.status));
    let Some((status, wagate_code, words, retryable)) = class else {
        return Outcome::Lost(format!(
            "the provider's gateway answered {} (timed out waiting for Meta)",
            answer.status
        ));
    };
    let text = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_str);
    let details = error
        .and_then(|e| e.get("error_data"))
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str);
    let provider_details = match (text("message"), details) {
        (Some(m), Some(d)) => Some(scrub(&format!("{m}: {d}"))),
        (Some(m), None) => Some(scrub(m)),
        (None, Some(d)) => Some(scrub(d)),
        (None, None) => None,
    };
    Outcome::Failed(ProviderFailure {
        status,
        code: wagate_code,
        message: words.to_owned(),
        provider_status: answer.status,
        provider_code: code,
        provider_details,
        trace_id: text("fbtrace_id").map(scrub),
        retryable,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::message::SendMessage;

    fn msg(json: Value) -> SendMessage {
        let m: SendMessage = serde_json::from_value(json).unwrap();
        m.validate().unwrap();
        m
    }

    fn answer(status: u16, body: &Value) -> ApiAnswer {
        ApiAnswer {
            status,
            retry_after: None,
            body: serde_json::to_vec(body).unwrap(),
            truncated: false,
        }
    }

    #[test]
    fn a_text_reply_carries_context_and_the_callback_tag() {
        let m = msg(
            json!({"source_id": "s", "to": "+1 (555) 123-4567", "type": "text",
            "text": {"body": "Hi"}, "reply_to": "wamid.ABC"}),
        );
        let body = send_body(&m, Some("del_01")).unwrap();
        assert_eq!(
            body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "15551234567", "type": "text", "text": {"body": "Hi", "preview_url": false},
                "context": {"message_id": "wamid.ABC"}, "biz_opaque_callback_data": "del_01"})
        );
    }

    #[test]
    fn a_business_scoped_user_id_goes_in_recipient_not_to() {
        let m = msg(
            json!({"source_id": "s", "user_id": "US.13491208655302741918",
            "type": "text", "text": {"body": "Hi"}}),
        );
        let body = send_body(&m, None).unwrap();
        assert_eq!(body["recipient"], "US.13491208655302741918");
        assert!(body.get("to").is_none());
        let lid = msg(
            json!({"source_id": "s", "user_id": "12345@lid", "type": "text",
            "text": {"body": "Hi"}}),
        );
        assert_eq!(
            send_body(&lid, None).unwrap_err().code(),
            "unsupported_by_provider"
        );
    }

    #[test]
    fn an_overlong_tag_is_refused() {
        let m = msg(
            json!({"source_id": "s", "to": "15551234567", "type": "text",
            "text": {"body": "Hi"}}),
        );
        let e = send_body(&m, Some(&"x".repeat(513))).unwrap_err();
        assert_eq!(e.code(), "validation_failed");
    }

    #[test]
    fn the_sender_is_the_request_s_from_else_the_default_and_must_be_digits() {
        let settings = MetaSend {
            access_token: "t".into(),
            phone_number_id: Some("111".into()),
            graph_url: "https://graph.facebook.com".into(),
            graph_version: "v23.0".into(),
        };
        assert_eq!(sender(&settings, None).unwrap(), "111");
        assert_eq!(sender(&settings, Some("222")).unwrap(), "222");
        assert!(sender(&settings, Some("../me")).is_err());
        let none = MetaSend {
            phone_number_id: None,
            ..settings
        };
        assert_eq!(sender(&none, None).unwrap_err().code(), "validation_failed");
    }

    #[test]
    fn mark_read_with_typing_indicator() {
        let req: MarkRead = serde_json::from_value(json!({"source_id": "s",
            "message_id": "wamid.X", "typing_indicator": true}))
        .unwrap();
        assert_eq!(
            mark_read_body(&req),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X",
                "typing_indicator": {"type": "text"}})
        );
    }

    #[test]
    fn a_success_answer_yields_id_status_and_resolved_contact() {
        let a = answer(
            200,
            &json!({"messaging_product": "whatsapp",
            "contacts": [{"input": "+15551234567", "wa_id": "15551234567"}],
            "messages": [{"id": "wamid.HBgL", "message_status": "accepted"}]}),
        );
        let Outcome::Done(d) = read_sent(&a, None) else {
            panic!()
        };
        assert_eq!(d.message_id.as_deref(), Some("wamid.HBgL"));
        assert_eq!(d.provider_status.as_deref(), Some("accepted"));
        assert_eq!(d.recipient.wa_id.as_deref(), Some("15551234567"));
        let lost = answer(200, &json!({"messages": []}));
        assert!(matches!(read_sent(&lost, None), Outcome::Lost(_)));
    }

    #[test]
    fn error_codes_map_to_documented_classes() {
        let cases = [
            (131047, 400, 422, "outside_customer_service_window", false),
            (131026, 400, 422, "undeliverable", false),
            (130429, 400, 429, "rate_limited", true),
            (131056, 400, 429, "rate_limited", true),
            (80007, 400, 429, "rate_limited", true),
            (131048, 400, 429, "spam_rate_limited", false),
            (131000, 500, 503, "provider_unavailable", true),
            (1, 400, 503, "provider_unavailable", true),
            (2, 503, 503, "provider_unavailable", true),
            (131016, 500, 503, "provider_unavailable", true),
            (190, 401, 502, "provider_auth_failed", false),
            (0, 401, 502, "provider_auth_failed", false),
            (10, 403, 502, "provider_permission_denied", false),
            (100, 400, 422, "provider_rejected", false),
            (131008, 400, 422, "provider_rejected", false),
            (131009, 400, 422, "provider_rejected", false),
            (131051, 400, 422, "provider_rejected", false),
            (132000, 400, 422, "template_rejected", false),
            (132001, 404, 422, "template_rejected", false),
            (131052, 400, 422, "media_rejected", false),
            (131053, 400, 422, "media_rejected", false),
            (131031, 403, 403, "account_restricted", false),
            (368, 403, 403, "account_restricted", false),
            (131042, 400, 403, "payment_required", false),
        ];
        for (code, http, status, name, retryable) in cases {
            let a = answer(
                http,
                &json!({"error": {"message": format!("(#{code}) Title"),
                "type": "OAuthException", "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": "to 15551234567"},
                "fbtrace_id": "AbC"}}),
            );
            let Outcome::Failed(f) = classify::<()>(&a, None) else {
                panic!("{code}")
            };
            assert_eq!(
                (f.status, f.code, f.retryable),
                (status, name, retryable),
                "{code}"
            );
            assert_eq!(f.provider_code, Some(code));
            assert_eq!(f.trace_id.as_deref(), Some("AbC"));
            let details = f.provider_details.unwrap();
            assert!(!details.contains("15551234567"), "{details}");
        }
    }

    #[test]
    fn answers_without_a_graph_error_are_classed_by_status() {
        let html = ApiAnswer {
            status: 502,
            retry_after: None,
            body: b"<html>Bad Gateway</html>".to_vec(),
            truncated: false,
        };
        let Outcome::Failed(f) = classify::<()>(&html, None) else {
            panic!()
        };
        assert_eq!((f.status, f.retryable), (503, true));
        let gateway_timeout = ApiAnswer {
            status: 504,
            ..html.clone()
        };
        assert!(matches!(
            classify::<()>(&gateway_timeout, None),
            Outcome::Lost(_)
        ));
        let teapot = ApiAnswer {
            status: 418,
            ..html
        };
        let Outcome::Failed(f) = classify::<()>(&teapot, None) else {
            panic!()
        };
        assert_eq!(
            (f.status, f.code, f.retryable),
            (422, "provider_rejected", false)
        );
    }
}
