//! WAHA: the endpoint and body for each message type (`/api/sendText`, `/api/sendImage`, …,
//! `PUT /api/reaction`, `/api/sendSeen`, `/api/startTyping`), the chat id of a recipient, the
//! message id in each engine's answer (WEBJS, NOWEB, GOWS), and WAHA's error answers.
//!
//! Owns: WAHA's wire format and what its answers mean for wagate's API. Must not: call, retry or
//! log; or send what WAHA cannot (templates, media by id, stickers): those are refused with
//! `unsupported_by_provider` naming the field.

use serde_json::{Map, Value, json};

use super::api::{ApiAnswer, ApiMethod};
use super::error::{ProviderFailure, SendError, scrub};
use super::message::{
    HeaderKind, InteractiveKind, MarkRead, Recipient, SendContact, SendMedia, SendMessage,
    SendType, recipient,
};
use super::settings::{WahaSend, is_session_name};
use super::{Delivered, Outcome, PreparedCall, SentRecipient};
use crate::model::Provider;

fn unsupported(field: &str, reason: &str) -> SendError {
    SendError::Unsupported {
        provider: Provider::Waha,
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The session a call uses: the request's `from`, else the settings' session.
fn session(settings: &WahaSend, from: Option<&str>) -> Result<String, SendError> {
    let name = from.unwrap_or(&settings.session);
    if is_session_name(name) {
        Ok(name.to_owned())
    } else {
        Err(SendError::invalid(
            "from",
            "is not a WAHA session name (letters, digits, `_`, `-`)",
        ))
    }
}

/// The WAHA chat id of a recipient: `{digits}@c.us` for a phone number (also written
/// `…@s.whatsapp.net`), `{digits}@lid` kept. A Meta business-scoped user id has none.
pub fn chat_id(r: &Recipient) -> Result<String, SendError> {
    match r {
        Recipient::Phone(digits) => Ok(format!("{digits}@c.us")),
        Recipient::Lid(lid) => Ok(format!("{lid}@lid")),
        Recipient::UserId(_) => Err(unsupported(
            "user_id",
            "WAHA addresses users by phone number or `…@lid` id, not by a Meta business-scoped \
             user id",
        )),
    }
}

/// The chat a WAHA message id names: `false_{chat}_{id}` (a group message adds
/// `_{participant}`).
pub fn chat_of_message_id(id: &str) -> Option<&str> {
    let rest = id
        .strip_prefix("true_")
        .or_else(|| id.strip_prefix("false_"))?;
    let (chat, _) = rest.split_once('_')?;
    chat.contains('@').then_some(chat)
}

fn call(
    settings: &WahaSend,
    method: ApiMethod,
    path: &str,
    body: &Value,
    idempotent: bool,
) -> PreparedCall {
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    if let Some(key) = &settings.api_key {
        headers.push((
            "X-Api-Key".to_owned(),
            String::from_utf8_lossy(key.expose()).into_owned(),
        ));
    }
    PreparedCall {
        method,
        url: format!("{}{path}", settings.base_url),
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
        idempotent,
        private_network: settings.allow_private_network,
    }
}

/// A MIME type for a media link, from its file extension, else the kind's usual type. WAHA
/// wants one with every file; WhatsApp checks the bytes it downloads anyway.
pub fn mime_type(kind: &str, link: &str) -> &'static str {
    let path = url::Url::parse(link)
        .map(|u| u.path().to_ascii_lowercase())
        .unwrap_or_default();
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "mov" => "video/quicktime",
        "ogg" | "oga" | "opus" => "audio/ogg; codecs=opus",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "zip" => "application/zip",
        _ => match kind {
            "image" => "image/jpeg",
            "video" => "video/mp4",
            "audio" => "audio/ogg; codecs=opus",
            _ => "application/octet-stream",
        },
    }
}

/// WAHA's `file` object for media given by link; media by id is Meta's.
fn remote_file(field: &str, kind: &str, m: &SendMedia) -> Result<Value, SendError> {
    let Some(link) = &m.link else {
        return Err(unsupported(
            &format!("{field}.id"),
            "WAHA sends media by `link` only (media ids are Meta's)",
        ));
    };
    let mut file = json!({"url": link, "mimetype": mime_type(kind, link)});
    if let Some(name) = &m.filename {
        file["filename"] = json!(name);
    }
    Ok(file)
}

/// Escapes a vCard value (RFC 6350 section 3.4).
fn vcard_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A vCard `type=` parameter value: letters only.
fn vcard_type(kind: Option<&str>) -> Option<String> {
    kind.map(|k| {
        k.chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
    })
    .filter(|k| !k.is_empty())
}

/// A vCard 3.0 for a contact card, with `waid` on numbers that have one (WhatsApp shows a
/// "Message" button for those).
pub fn vcard(c: &SendContact) -> String {
    let e = |v: &Option<String>| v.as_deref().map(vcard_escape).unwrap_or_default();
    let n = &c.name;
    let mut lines = vec![
        "BEGIN:VCARD".to_owned(),
        "VERSION:3.0".to_owned(),
        format!(
            "N:{};{};{};{};{}",
            e(&n.last_name),
            e(&n.first_name),
            e(&n.middle_name),
            e(&n.prefix),
            e(&n.suffix)
        ),
        format!("FN:{}", vcard_escape(&n.formatted_name)),
    ];
    if let Some(org) = &c.org {
        if org.company.is_some() || org.department.is_some() {
            lines.push(format!("ORG:{};{}", e(&org.company), e(&org.department)));
        }
        if org.title.is_some() {
            lines.push(format!("TITLE:{}", e(&org.title)));
        }
    }
    for p in &c.phones {
        let mut line = "TEL".to_owned();
        if let Some(t) = vcard_type(p.kind.as_deref()) {
            line.push_str(&format!(";type={t}"));
        }
        if let Some(wa_id) = &p.wa_id {
            line.push_str(&format!(";waid={}", vcard_escape(wa_id)));
        }
        let number = p
            .phone
            .clone()
            .or_else(|| p.wa_id.clone())
            .unwrap_or_default();
        line.push_str(&format!(":{}", vcard_escape(&number)));
        lines.push(line);
    }
    for m in &c.emails {
        let t = vcard_type(m.kind.as_deref())
            .map(|t| format!(";type={t}"))
            .unwrap_or_default();
        lines.push(format!("EMAIL{t}:{}", vcard_escape(&m.email)));
    }
    for a in &c.addresses {
        let t = vcard_type(a.kind.as_deref())
            .map(|t| format!(";type={t}"))
            .unwrap_or_default();
        lines.push(format!(
            "ADR{t}:;;{};{};{};{};{}",
            e(&a.street),
            e(&a.city),
            e(&a.state),
            e(&a.zip),
            e(&a.country)
        ));
    }
    for u in &c.urls {
        let t = vcard_type(u.kind.as_deref())
            .map(|t| format!(";type={t}"))
            .unwrap_or_default();
        lines.push(format!("URL{t}:{}", vcard_escape(&u.url)));
    }
    if let Some(b) = &c.birthday {
        lines.push(format!("BDAY:{b}"));
    }
    lines.push("END:VCARD".to_owned());
    lines.join("\n")
}

/// The WAHA method, path and body that send `msg` to `chat` from `session`.
pub fn send_body(
    msg: &SendMessage,
    session: &str,
    chat: &str,
) -> Result<(ApiMethod, &'static str, Value), SendError> {
    let mut body = Map::new();
    body.insert("session".into(), json!(session));
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    let (method, path) = match msg.kind {
        SendType::Text => {
            let t = msg
                .text
                .as_ref()
                .ok_or_else(|| SendError::invalid("text", "is required by `type`"))?;
            put("chatId", json!(chat));
            put("text", json!(t.body));
            put("linkPreview", json!(t.preview_url));
            (ApiMethod::Post, "/api/sendText")
        }
        SendType::Template => {
            return Err(unsupported(
                "template",
                "templates are a Meta Cloud API feature",
            ));
        }
        SendType::Sticker => {
            return Err(unsupported(
                "sticker",
                "WAHA has no endpoint that sends stickers",
            ));
        }
        SendType::Image | SendType::Video | SendType::Audio | SendType::Document => {
            let (kind, media, path) = match msg.kind {
                SendType::Image => ("image", &msg.image, "/api/sendImage"),
                SendType::Video => ("video", &msg.video, "/api/sendVideo"),
                SendType::Audio => ("audio", &msg.audio, "/api/sendVoice"),
                _ => ("document", &msg.document, "/api/sendFile"),
            };
            let m = media
                .as_ref()
                .ok_or_else(|| SendError::invalid(kind, "is required by `type`"))?;
            let file = remote_file(kind, kind, m)?;
            put("chatId", json!(chat));
            match kind {
                "video" => {
                    put("convert", json!(false));
                    put("asNote", json!(false));
                }
                // WhatsApp plays Opus in OGG as a voice note; WAHA converts anything else.
                "audio" => {
                    let opus = file["mimetype"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("audio/ogg"));
                    put("convert", json!(!opus));
                }
                _ => {}
            }
            put("file", file);
            if let Some(caption) = &m.caption {
                put("caption", json!(caption));
            }
            (ApiMethod::Post, path)
        }
        SendType::Location => {
            let l = msg
                .location
                .as_ref()
                .ok_or_else(|| SendError::invalid("location", "is required by `type`"))?;
            put("chatId", json!(chat));
            put("latitude", json!(l.latitude));
            put("longitude", json!(l.longitude));
            let title = match (&l.name, &l.address) {
                (Some(n), Some(a)) => Some(format!("{n}\n{a}")),
                (Some(t), None) | (None, Some(t)) => Some(t.clone()),
                (None, None) => None,
            };
            if let Some(title) = title {
                put("title", json!(title));
            }
            (ApiMethod::Post, "/api/sendLocation")
        }
        SendType::Contacts => {
            let cards: Vec<Value> = msg
                .contacts
                .iter()
                .flatten()
                .map(|c| json!({"vcard": vcard(c)}))
                .collect();
            put("chatId", json!(chat));
            put("contacts", Value::Array(cards));
            (ApiMethod::Post, "/api/sendContactVcard")
        }
        SendType::Interactive => {
            let i = msg
                .interactive
                .as_ref()
                .ok_or_else(|| SendError::invalid("interactive", "is required by `type`"))?;
            put("chatId", json!(chat));
            match i.kind {
                InteractiveKind::List => {
                    let mut list = json!({
                        "description": i.body.text,
                        "button": i.action.button,
                        "sections": i.action.sections.iter().flatten().map(|s| {
                            let mut section = json!({
                                "rows": s.rows.iter().map(|r| {
                                    let mut row = json!({"title": r.title, "rowId": r.id});
                                    if let Some(d) = &r.description {
                                        row["description"] = json!(d);
                                    }
                                    row
                                }).collect::<Vec<_>>(),
                            });
                            if let Some(t) = &s.title {
                                section["title"] = json!(t);
                            }
                            section
                        }).collect::<Vec<_>>(),
                    });
                    if let Some(title) = i.header.as_ref().and_then(|h| h.text.as_ref()) {
                        list["title"] = json!(title);
                    }
                    if let Some(footer) = &i.footer {
                        list["footer"] = json!(footer.text);
                    }
                    put("message", list);
                    (ApiMethod::Post, "/api/sendList")
                }
                InteractiveKind::Button | InteractiveKind::CtaUrl => {
                    if msg.reply_to.is_some() {
                        return Err(unsupported(
                            "reply_to",
                            "WAHA's buttons message cannot quote another message",
                        ));
                    }
                    put("body", json!(i.body.text));
                    if let Some(footer) = &i.footer {
                        put("footer", json!(footer.text));
                    }
                    if let Some(h) = &i.header {
                        match h.kind {
                            HeaderKind::Text => put("header", json!(h.text)),
                            HeaderKind::Image => {
                                let m = h.image.as_ref().ok_or_else(|| {
                                    SendError::invalid(
                                        "interactive.header.image",
                                        "is required by the header's `type`",
                                    )
                                })?;
                                put(
                                    "headerImage",
                                    remote_file("interactive.header.image", "image", m)?,
                                );
                            }
                            HeaderKind::Video | HeaderKind::Document => {
                                return Err(unsupported(
                                    "interactive.header.type",
                                    "WAHA's buttons take a text or image header",
                                ));
                            }
                        }
                    }
                    let buttons: Vec<Value> = if i.kind == InteractiveKind::Button {
                        i.action
                            .buttons
                            .iter()
                            .flatten()
                            .map(|b| json!({"type": "reply", "text": b.reply.title, "id": b.reply.id}))
                            .collect()
                    } else {
                        i.action
                            .parameters
                            .iter()
                            .map(|p| json!({"type": "url", "text": p.display_text, "url": p.url}))
                            .collect()
                    };
                    put("buttons", Value::Array(buttons));
                    (ApiMethod::Post, "/api/sendButtons")
                }
            }
        }
        SendType::Reaction => {
            let r = msg
                .reaction
                .as_ref()
                .ok_or_else(|| SendError::invalid("reaction", "is required by `type`"))?;
            put("messageId", json!(r.message_id));
            put("reaction", json!(r.emoji));
            (ApiMethod::Put, "/api/reaction")
        }
    };
    if let Some(reply_to) = &msg.reply_to {
        body.insert("reply_to".into(), json!(reply_to));
    }
    Ok((method, path, Value::Object(body)))
}

/// The call that sends `msg`, and the chat id it goes to.
pub(super) fn send_call(
    settings: &WahaSend,
    msg: &SendMessage,
) -> Result<(PreparedCall, String, String), SendError> {
    let session = session(settings, msg.from.as_deref())?;
    let chat = chat_id(&msg.recipient()?)?;
    let (method, path, body) = send_body(msg, &session, &chat)?;
    // Setting the same reaction twice leaves the same state: safe to repeat after a timeout.
    let idempotent = msg.kind == SendType::Reaction;
    Ok((
        call(settings, method, path, &body, idempotent),
        session,
        chat,
    ))
}

/// The calls that mark `req.message_id` as read (`/api/sendSeen`) and, when asked, show
/// "typing…" (`/api/startTyping`); repeating them is harmless.
pub(super) fn mark_read_calls(
    settings: &WahaSend,
    req: &MarkRead,
) -> Result<Vec<PreparedCall>, SendError> {
    let session = session(settings, req.from.as_deref())?;
    let chat = if req.to.is_some() || req.user_id.is_some() {
        chat_id(&recipient(req.to.as_deref(), req.user_id.as_deref())?)?
    } else {
        chat_of_message_id(&req.message_id)
            .map(str::to_owned)
            .ok_or_else(|| {
                SendError::invalid("to", "is required: the message id does not name its chat")
            })?
    };
    let mut calls = vec![call(
        settings,
        ApiMethod::Post,
        "/api/sendSeen",
        &json!({"session": session, "chatId": chat, "messageIds": [req.message_id]}),
        true,
    )];
    if req.typing_indicator {
        calls.push(call(
            settings,
            ApiMethod::Post,
            "/api/startTyping",
            &json!({"session": session, "chatId": chat}),
            true,
        ));
    }
    Ok(calls)
}

/// A chat id as WAHA serialises it in message ids: `@s.whatsapp.net` becomes `@c.us`.
fn cus(jid: &str) -> String {
    match jid.strip_suffix("@s.whatsapp.net") {
        Some(user) => format!("{user}@c.us"),
        None => jid.to_owned(),
    }
}

/// `{fromMe}_{chat}_{id}` from an engine's key parts.
fn compose(key: &Map<String, Value>, remote_field: &str) -> Option<String> {
    let id = key
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let remote = match key.get(remote_field)? {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("_serialized").and_then(Value::as_str)?.to_owned(),
        _ => return None,
    };
    let from_me = key.get("fromMe").and_then(Value::as_bool).unwrap_or(true);
    Some(format!("{from_me}_{}_{id}", cus(&remote)))
}

/// The message id in a send's answer, whichever engine made it: GOWS answers `{"id": "true_…",
/// "_data": …}`; WEBJS the message with `id: {"_serialized": "true_…", "fromMe", "remote",
/// "id"}`; NOWEB Baileys' message with `key: {"remoteJid", "fromMe", "id"}`, from which WAHA's
/// own form `true_{chat}_{id}` is built as its webhooks spell it.
pub fn message_id(answer: &Value) -> Option<String> {
    fn find(v: &Value, depth: u8) -> Option<String> {
        let o = v.as_object()?;
        match o.get("id") {
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(Value::Object(id)) => {
                if let Some(s) = id
                    .get("_serialized")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    return Some(s.to_owned());
                }
                if let Some(s) = compose(id, "remote") {
                    return Some(s);
                }
            }
            _ => {}
        }
        if let Some(Value::Object(key)) = o.get("key")
            && let Some(s) = compose(key, "remoteJid")
        {
            return Some(s);
        }
        if depth == 0 {
            return o.get("_data").and_then(|d| find(d, 1));
        }
        None
    }
    find(answer, 0)
}

/// Reads a send's answer.
pub(super) fn read_sent(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
    chat: &str,
    named_session: bool,
) -> Outcome<Delivered> {
    if !(200..300).contains(&answer.status) {
        return classify(answer, retry_after, named_session);
    }
    // WEBJS answers a reaction with an empty body: the reaction is set, it has no id.
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let id = message_id(&v);
    if id.is_none() {
        tracing::warn!(
            status = answer.status,
            "WAHA accepted a send without naming a message id"
        );
    }
    Outcome::Done(Delivered {
        message_id: id,
        provider_status: None,
        recipient: SentRecipient {
            wa_id: chat.strip_suffix("@c.us").map(str::to_owned),
            user_id: chat.ends_with("@lid").then(|| chat.to_owned()),
            chat_id: Some(chat.to_owned()),
        },
    })
}

/// Reads a mark-as-read or typing answer.
pub(super) fn read_marked(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
    named_session: bool,
) -> Outcome<()> {
    if (200..300).contains(&answer.status) {
        Outcome::Done(())
    } else {
        classify(answer, retry_after, named_session)
    }
}

/// WAHA's explanation in an error answer: NestJS's `message` (a string or a list of validation
/// messages), `error`, or the engine exception's `message`.
fn explanation(v: &Value) -> Option<String> {
    let text = match v.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(list)) => Some(
            list.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    text.or_else(|| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            v.get("exception")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .map(|s| scrub(&s))
}

/// Classifies a WAHA error answer. `named_session`: the request chose the session (`from`), so
/// an unknown session is the caller's mistake rather than the configuration's.
pub(super) fn classify<T>(
    answer: &ApiAnswer,
    retry_after: Option<std::time::Duration>,
    named_session: bool,
) -> Outcome<T> {
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let details = explanation(&v);
    let session_status = v.get("status").and_then(Value::as_str);
    let lower = details.as_deref().unwrap_or_default().to_ascii_lowercase();
    let (status, code, words, retryable) = match answer.status {
        401 | 403 => (
            502,
            "provider_auth_failed",
            "WAHA refused the configured API key",
            false,
        ),
        404 if named_session => (
            422,
            "unknown_sender",
            "WAHA has no session named in `from`",
            false,
        ),
        404 => (
            502,
            "provider_misconfigured",
            "WAHA has no session of the configured name",
            false,
        ),
        // "Session status is not as expected": the engine is not connected to WhatsApp.
        422 if session_status.is_some() => {
            let starting = session_status == Some("STARTING");
            (
                503,
                "provider_session_unavailable",
                if starting {
                    "the WAHA session is starting; retry shortly"
                } else {
                    "the WAHA session is not connected to WhatsApp (scan the QR code or restart it)"
                },
                starting,
            )
        }
        422 | 501
            if lower.contains("not implemented")
                || lower.contains("plus version")
                || answer.status == 501 =>
        {
            (
                422,
                "unsupported_by_provider",
                "this WAHA engine or edition cannot send this message",
                false,
            )
        }
        429 => (
            429,
            "rate_limited",
            "WAHA is rate limiting sends; retry later",
            true,
        ),
        // The engine raised an error: on the paths known (unknown recipient, bad id) nothing
        // was sent, and the same request would fail the same way.
        500 if v.get("exception").is_some() => {
            (502, "provider_error", "WAHA's engine failed to send", false)
        }
        // A gateway in front of WAHA stopped waiting: WAHA may have sent.
        504 => {
            return Outcome::Lost(
                "the gateway in front of WAHA timed out waiting for it".to_owned(),
            );
        }
        500..=599 => (
            503,
            "provider_unavailable",
            "WAHA is unavailable; retry later",
            true,
        ),
        _ => (422, "provider_rejected", "WAHA refused the request", false),
    };
    Outcome::Failed(ProviderFailure {
        status,
        code,
        message: words.to_owned(),
        provider_status: answer.status,
        provider_code: None,
        provider_details: details,
        trace_id: None,
        retryable,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: Value) -> SendMessage {
        let m: SendMessage = serde_json::from_value(json).unwrap();
        m.validate().unwrap();
        m
    }

    fn body(json: Value) -> (ApiMethod, &'static str, Value) {
        send_body(&msg(json), "default", "15551234567@c.us").unwrap()
    }

    #[test]
    fn chat_ids_come_from_numbers_chat_ids_and_lids() {
        let cases = [
            (json!({"to": "+1 555 123 4567"}), "15551234567@c.us"),
            (
                json!({"to": "15551234567@s.whatsapp.net"}),
                "15551234567@c.us",
            ),
            (json!({"to": "15551234567@c.us"}), "15551234567@c.us"),
            (json!({"to": "123456789012345@lid"}), "123456789012345@lid"),
            (
                json!({"user_id": "123456789012345@lid"}),
                "123456789012345@lid",
            ),
        ];
        for (who, chat) in cases {
            let r = recipient(
                who.get("to").and_then(Value::as_str),
                who.get("user_id").and_then(Value::as_str),
            )
            .unwrap();
            assert_eq!(chat_id(&r).unwrap(), chat, "{who}");
        }
        let bsuid = recipient(None, Some("US.13491208655302741918")).unwrap();
        assert_eq!(
            chat_id(&bsuid).unwrap_err().code(),
            "unsupported_by_provider"
        );
        assert_eq!(
            chat_of_message_id("false_15551234567@c.us_3EB0ABC"),
            Some("15551234567@c.us")
        );
        assert_eq!(chat_of_message_id("wamid.X"), None);
    }

    #[test]
    fn text_image_and_voice_bodies_follow_waha_s_api() {
        let (m, path, b) = body(
            json!({"source_id": "s", "to": "15551234567", "type": "text",
            "text": {"body": "Hi", "preview_url": true}, "reply_to": "false_1@c.us_A"}),
        );
        assert_eq!((m, path), (ApiMethod::Post, "/api/sendText"));
        assert_eq!(
            b,
            json!({"session": "default", "chatId": "15551234567@c.us", "text": "Hi",
            "linkPreview": true, "reply_to": "false_1@c.us_A"})
        );
        let (_, path, b) = body(
            json!({"source_id": "s", "to": "15551234567", "type": "image",
            "image": {"link": "https://cdn.example/p/cat.PNG", "caption": "cat"}}),
        );
        assert_eq!(path, "/api/sendImage");
        assert_eq!(
            b["file"],
            json!({"url": "https://cdn.example/p/cat.PNG", "mimetype": "image/png"})
        );
        assert_eq!(b["caption"], "cat");
        let (_, path, b) = body(
            json!({"source_id": "s", "to": "15551234567", "type": "audio",
            "audio": {"link": "https://cdn.example/a.mp3"}}),
        );
        assert_eq!(path, "/api/sendVoice");
        assert_eq!(b["convert"], true);
    }

    #[test]
    fn templates_media_ids_and_stickers_are_refused_naming_the_field() {
        for (json, field) in [
            (
                json!({"type": "template", "template": {"name": "hello", "language": {"code": "en"}}}),
                "template",
            ),
            (
                json!({"type": "image", "image": {"id": "1234"}}),
                "image.id",
            ),
            (
                json!({"type": "sticker", "sticker": {"link": "https://x/s.webp"}}),
                "sticker",
            ),
        ] {
            let mut j = json;
            j["source_id"] = json!("s");
            j["to"] = json!("15551234567");
            let e = send_body(&msg(j), "default", "1@c.us").unwrap_err();
            assert_eq!(e.code(), "unsupported_by_provider");
            assert_eq!(e.details().unwrap()["field"], field);
        }
    }

    #[test]
    fn vcards_escape_values_and_carry_waid() {
        let c: SendContact = serde_json::from_value(json!({
            "name": {"formatted_name": "Doe, Jane", "first_name": "Jane", "last_name": "Doe"},
            "phones": [{"phone": "+1 555 123 4567", "type": "CELL", "wa_id": "15551234567"}],
            "org": {"company": "A;B"}}))
        .unwrap();
        let v = vcard(&c);
        assert!(v.contains("FN:Doe\\, Jane"), "{v}");
        assert!(v.contains("N:Doe;Jane;;;"), "{v}");
        assert!(
            v.contains("TEL;type=CELL;waid=15551234567:+1 555 123 4567"),
            "{v}"
        );
        assert!(v.contains("ORG:A\\;B;"), "{v}");
        assert!(v.starts_with("BEGIN:VCARD\nVERSION:3.0"));
    }

    #[test]
    fn engine_answers_all_yield_waha_s_message_id() {
        let gows = json!({"id": "true_15551234567@c.us_3EB0A", "_data": {}});
        let webjs = json!({"id": {"fromMe": true, "remote": "15551234567@c.us", "id": "3EB0B",
            "_serialized": "true_15551234567@c.us_3EB0B"}, "body": "Hi"});
        let noweb = json!({"key": {"remoteJid": "15551234567@s.whatsapp.net", "fromMe": true,
            "id": "BAE5C"}, "message": {}, "status": "PENDING"});
        let nested = json!({"_data": {"id": {"fromMe": true, "remote": {"_serialized": "123@lid"},
            "id": "D"}}});
        assert_eq!(
            message_id(&gows).as_deref(),
            Some("true_15551234567@c.us_3EB0A")
        );
        assert_eq!(
            message_id(&webjs).as_deref(),
            Some("true_15551234567@c.us_3EB0B")
        );
        assert_eq!(
            message_id(&noweb).as_deref(),
            Some("true_15551234567@c.us_BAE5C")
        );
        assert_eq!(message_id(&nested).as_deref(), Some("true_123@lid_D"));
        assert_eq!(message_id(&json!({})), None);
        assert_eq!(message_id(&Value::Null), None);
    }

    #[test]
    fn waha_errors_are_classified() {
        let a = |status: u16, body: Value| ApiAnswer {
            status,
            retry_after: None,
            body: serde_json::to_vec(&body).unwrap(),
            truncated: false,
        };
        let cases = [
            (
                a(401, json!({"statusCode": 401, "message": "Unauthorized"})),
                false,
                502,
                "provider_auth_failed",
                false,
            ),
            (
                a(
                    404,
                    json!({"statusCode": 404, "message": "Session not found"}),
                ),
                true,
                422,
                "unknown_sender",
                false,
            ),
            (
                a(404, json!({"statusCode": 404})),
                false,
                502,
                "provider_misconfigured",
                false,
            ),
            (
                a(
                    422,
                    json!({"error": "Session status is not as expected.", "session": "default",
                "status": "STARTING", "expected": ["WORKING"]}),
                ),
                false,
                503,
                "provider_session_unavailable",
                true,
            ),
            (
                a(
                    422,
                    json!({"error": "Session status is not as expected.", "status": "SCAN_QR_CODE"}),
                ),
                false,
                503,
                "provider_session_unavailable",
                false,
            ),
            (
                a(
                    422,
                    json!({"statusCode": 422, "message": "The method is not implemented by the engine."}),
                ),
                false,
                422,
                "unsupported_by_provider",
                false,
            ),
            (
                a(
                    500,
                    json!({"statusCode": 500, "exception": {"message": "No LID for user 15551234567"},
                "request": {"body": {"text": "secret text"}}}),
                ),
                false,
                502,
                "provider_error",
                false,
            ),
            (
                a(502, json!(null)),
                false,
                503,
                "provider_unavailable",
                true,
            ),
            (
                a(
                    400,
                    json!({"statusCode": 400, "message": ["chatId must be a string"]}),
                ),
                false,
                422,
                "provider_rejected",
                false,
            ),
        ];
        for (answer, named, status, code, retryable) in cases {
            let Outcome::Failed(f) = classify::<()>(&answer, None, named) else {
                panic!("{code}")
            };
            assert_eq!(
                (f.status, f.code, f.retryable),
                (status, code, retryable),
                "{code}"
            );
            let d = f.provider_details.unwrap_or_default();
            assert!(
                !d.contains("15551234567") && !d.contains("secret text"),
                "{d}"
            );
        }
        assert!(matches!(
            classify::<()>(&a(504, json!(null)), None, false),
            Outcome::Lost(_)
        ));
    }
}
