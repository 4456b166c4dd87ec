//! The Graph fake's request validation: `POST /{phone_number_id}/messages` bodies checked the way
//! the Cloud API documents them, with the error Graph answers for each violation.
//!
//! Owns: pure checks over the parsed JSON. Must not: do I/O or keep state.
//!
//! Codes: a missing or mistyped parameter, a value too long or out of its set is code 100 (as
//! Graph words it: "The parameter X is required.", "Param X must be at most N characters
//! long."); a well-formed value that breaks a documented rule (button count, one of id/link,
//! duplicate ids) is 131009 "Parameter value is not valid" with the rule in `details`.

use serde_json::{Map, Value};

use super::graph::GraphError;

/// A valid request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// A message to send.
    Send(Outbound),
    /// Mark an inbound message as read (with or without a typing indicator).
    MarkRead,
}

/// What a valid send says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// `to` (or `recipient`) as given: `contacts[].input` of the answer.
    pub input: String,
    /// The phone number, digits only, when sent to one.
    pub wa_id: Option<String>,
    /// The business-scoped user id, when sent to one (and not to a phone number).
    pub user_id: Option<String>,
    /// `type`.
    pub kind: String,
    /// `biz_opaque_callback_data`, echoed in status webhooks.
    pub biz_opaque_callback_data: Option<String>,
}

const TYPES: [&str; 11] = [
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
];

/// Checks a `/messages` body. `templates`: the `name` or `name:language` pairs that exist
/// (empty: every template exists).
pub(crate) fn check(body: Option<&Value>, templates: &[String]) -> Result<Checked, GraphError> {
    let Some(Value::Object(root)) = body else {
        return Err(GraphError::required("messaging_product"));
    };
    match root.get("messaging_product") {
        None | Some(Value::Null) => return Err(GraphError::required("messaging_product")),
        Some(Value::String(p)) if p == "whatsapp" => {}
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )));
        }
    }
    if root.get("status").and_then(Value::as_str) == Some("read") {
        return mark_read(root);
    }
    if let Some(kind) = root.get("recipient_type")
        && kind.as_str() != Some("individual")
    {
        return Err(GraphError::invalid_parameter(format!(
            "Param recipient_type must be one of {{INDIVIDUAL}} - got {kind}."
        )));
    }
    let (input, wa_id, user_id) = recipient(root)?;
    let kind = match root.get("type") {
        // Graph's default type is text.
        None => "text".to_owned(),
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return Err(GraphError::invalid_parameter(format!(
                "Param type must be one of {{AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, \
                 LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}} - got {other}."
            )));
        }
    };
    if kind == "contacts" {
        // The one type whose object is an array.
        contacts(root)?;
    } else {
        let object = req_obj(root, &kind, &kind)?;
        match kind.as_str() {
            "text" => text(object)?,
            "template" => template(object, templates)?,
            "image" | "video" | "audio" | "document" | "sticker" => media(object, &kind)?,
            "location" => location(object)?,
            "interactive" => interactive(object)?,
            "reaction" => reaction(object)?,
            _ => {}
        }
    }
    if let Some(context) = root.get("context") {
        let Value::Object(context) = context else {
            return Err(type_error("context", "an object"));
        };
        let id = req_str(context, "message_id", "context['message_id']")?;
        if id.is_empty() {
            return Err(GraphError::required("context['message_id']"));
        }
    }
    let biz_opaque_callback_data =
        opt_str(root, "biz_opaque_callback_data", "biz_opaque_callback_data")?.map(str::to_owned);
    if let Some(data) = &biz_opaque_callback_data {
        max_len(data, 512, "biz_opaque_callback_data")?;
    }
    Ok(Checked::Send(Outbound {
        input,
        wa_id,
        user_id,
        kind,
        biz_opaque_callback_data,
    }))
}

fn mark_read(root: &Map<String, Value>) -> Result<Checked, GraphError> {
    let id = req_str(root, "message_id", "message_id")?;
    if id.is_empty() {
        return Err(GraphError::required("message_id"));
    }
    if let Some(indicator) = root.get("typing_indicator") {
        let Value::Object(indicator) = indicator else {
            return Err(type_error("typing_indicator", "an object"));
        };
        let kind = req_str(indicator, "type", "typing_indicator['type']")?;
        if kind != "text" {
            return Err(GraphError::invalid_parameter(format!(
                "Param typing_indicator['type'] must be one of {{TEXT}} - got \"{kind}\"."
            )));
        }
    }
    Ok(Checked::MarkRead)
}

/// `to` (a phone number, which wins when both are given) or `recipient` (a BSUID:
/// `CC.` + up to 128 alphanumerics, or a parent BSUID `CC.ENT.…`).
fn recipient(
    root: &Map<String, Value>,
) -> Result<(String, Option<String>, Option<String>), GraphError> {
    if let Some(to) = opt_str(root, "to", "to")? {
        let digits: String = to
            .chars()
            .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(GraphError::invalid_parameter(
                "Invalid value for parameter 'to': not a phone number in international format."
                    .to_owned(),
            ));
        }
        return Ok((to.to_owned(), Some(digits), None));
    }
    if let Some(user) = opt_str(root, "recipient", "recipient")? {
        if !is_bsuid(user) {
            return Err(GraphError::invalid_parameter(
                "Invalid value for parameter 'recipient': not a business-scoped user ID."
                    .to_owned(),
            ));
        }
        return Ok((user.to_owned(), None, Some(user.to_owned())));
    }
    Err(GraphError::required("to"))
}

/// `US.13491208655302741918`, `US.ENT.11815799212886844830`.
pub(crate) fn is_bsuid(text: &str) -> bool {
    let mut parts = text.split('.');
    let country = parts.next().unwrap_or_default();
    let mut rest = parts.next().unwrap_or_default();
    if rest == "ENT" {
        rest = parts.next().unwrap_or_default();
    }
    parts.next().is_none()
        && country.len() == 2
        && country.chars().all(|c| c.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.chars().all(|c| c.is_ascii_alphanumeric())
}

fn text(object: &Map<String, Value>) -> Result<(), GraphError> {
    let body = req_str(object, "body", "text['body']")?;
    if body.trim().is_empty() {
        return Err(GraphError::required("text['body']"));
    }
    max_len(body, 4096, "text['body']")?;
    opt_bool(object, "preview_url", "text['preview_url']")?;
    Ok(())
}

fn template(object: &Map<String, Value>, templates: &[String]) -> Result<(), GraphError> {
    let name = req_str(object, "name", "template['name']")?;
    if name.is_empty() {
        return Err(GraphError::required("template['name']"));
    }
    max_len(name, 512, "template['name']")?;
    let language = req_obj(object, "language", "template['language']")?;
    let code = req_str(language, "code", "template['language']['code']")?;
    if let Some(policy) = opt_str(language, "policy", "template['language']['policy']")?
        && policy != "deterministic"
    {
        return Err(GraphError::invalid_parameter(format!(
            "Param template['language']['policy'] must be one of {{DETERMINISTIC}} - got \"{policy}\"."
        )));
    }
    if !templates.is_empty()
        && !templates
            .iter()
            .any(|t| t == name || *t == format!("{name}:{code}"))
    {
        return Err(GraphError::template_not_found(name, code));
    }
    let Some(components) = object.get("components") else {
        return Ok(());
    };
    let Value::Array(components) = components else {
        return Err(type_error("template['components']", "an array"));
    };
    for (i, component) in components.iter().enumerate() {
        let path = format!("template['components'][{i}]");
        let Value::Object(component) = component else {
            return Err(type_error(&path, "an object"));
        };
        let kind = req_str(component, "type", &format!("{path}['type']"))?;
        match kind {
            "header" | "body" | "footer" | "carousel" | "limited_time_offer" => {}
            "button" => {
                req_str(component, "sub_type", &format!("{path}['sub_type']"))?;
                match component.get("index") {
                    Some(Value::Number(_)) => {}
                    Some(Value::String(s)) if s.parse::<u8>().is_ok() => {}
                    None => return Err(GraphError::required(&format!("{path}['index']"))),
                    Some(_) => return Err(type_error(&format!("{path}['index']"), "a number")),
                }
            }
            other => {
                return Err(GraphError::invalid_parameter(format!(
                    "Param {path}['type'] must be one of {{BODY, BUTTON, CAROUSEL, FOOTER, \
                     HEADER, LIMITED_TIME_OFFER}} - got \"{other}\"."
                )));
            }
        }
        if let Some(parameters) = component.get("parameters") {
            let Value::Array(parameters) = parameters else {
                return Err(type_error(&format!("{path}['parameters']"), "an array"));
            };
            for (j, parameter) in parameters.iter().enumerate() {
                template_parameter(parameter, &format!("{path}['parameters'][{j}]"))?;
            }
        }
    }
    Ok(())
}

fn template_parameter(parameter: &Value, path: &str) -> Result<(), GraphError> {
    let Value::Object(parameter) = parameter else {
        return Err(type_error(path, "an object"));
    };
    let kind = req_str(parameter, "type", &format!("{path}['type']"))?;
    match kind {
        "text" => {
            req_str(parameter, "text", &format!("{path}['text']"))?;
        }
        "payload" => {
            req_str(parameter, "payload", &format!("{path}['payload']"))?;
        }
        "coupon_code" => {
            req_str(parameter, "coupon_code", &format!("{path}['coupon_code']"))?;
        }
        "currency" => {
            let currency = req_obj(parameter, "currency", &format!("{path}['currency']"))?;
            req_str(
                currency,
                "fallback_value",
                &format!("{path}['currency']['fallback_value']"),
            )?;
            req_str(currency, "code", &format!("{path}['currency']['code']"))?;
            if !currency.get("amount_1000").is_some_and(Value::is_number) {
                return Err(GraphError::required(&format!(
                    "{path}['currency']['amount_1000']"
                )));
            }
        }
        "date_time" => {
            let date = req_obj(parameter, "date_time", &format!("{path}['date_time']"))?;
            req_str(
                date,
                "fallback_value",
                &format!("{path}['date_time']['fallback_value']"),
            )?;
        }
        "image" | "video" | "document" => {
            let media = req_obj(parameter, kind, &format!("{path}['{kind}']"))?;
            one_of_id_or_link(media, &format!("{path}['{kind}']"))?;
        }
        "location" | "action" | "order_status" | "limited_time_offer" | "ttl" | "product" => {
            req_obj(parameter, kind, &format!("{path}['{kind}']"))?;
        }
        other => {
            return Err(GraphError::invalid_parameter(format!(
                "Param {path}['type'] must be one of {{ACTION, COUPON_CODE, CURRENCY, \
                 DATE_TIME, DOCUMENT, IMAGE, LOCATION, PAYLOAD, TEXT, VIDEO}} - got \"{other}\"."
            )));
        }
    }
    Ok(())
}

fn media(object: &Map<String, Value>, kind: &str) -> Result<(), GraphError> {
    one_of_id_or_link(object, kind)?;
    if let Some(caption) = opt_str(object, "caption", &format!("{kind}['caption']"))? {
        if matches!(kind, "audio" | "sticker") {
            return Err(GraphError::invalid_parameter(format!(
                "Param {kind}['caption'] is not a valid parameter: {kind} messages have no caption."
            )));
        }
        max_len(caption, 1024, &format!("{kind}['caption']"))?;
    }
    if object.contains_key("filename") {
        if kind != "document" {
            return Err(GraphError::invalid_parameter(format!(
                "Param {kind}['filename'] is not a valid parameter: only documents have a filename."
            )));
        }
        opt_str(object, "filename", "document['filename']")?;
    }
    if object.contains_key("voice") {
        if kind != "audio" {
            return Err(GraphError::invalid_parameter(format!(
                "Param {kind}['voice'] is not a valid parameter: only audio can be a voice message."
            )));
        }
        opt_bool(object, "voice", "audio['voice']")?;
    }
    Ok(())
}

fn one_of_id_or_link(object: &Map<String, Value>, path: &str) -> Result<(), GraphError> {
    let id = opt_str(object, "id", &format!("{path}['id']"))?;
    let link = opt_str(object, "link", &format!("{path}['link']"))?;
    match (id, link) {
        (Some(_), Some(_)) | (None, None) => Err(GraphError::invalid_value(format!(
            "{path}: exactly one of 'id' or 'link' must be set."
        ))),
        (Some(""), None) => Err(GraphError::required(&format!("{path}['id']"))),
        (None, Some(link)) => http_url(link, &format!("{path}['link']")),
        _ => Ok(()),
    }
}

fn http_url(text: &str, path: &str) -> Result<(), GraphError> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(GraphError::invalid_value(format!(
            "{path} is not a valid http(s) URL."
        ))),
    }
}

fn location(object: &Map<String, Value>) -> Result<(), GraphError> {
    for (key, limit) in [("latitude", 90.0), ("longitude", 180.0)] {
        let path = format!("location['{key}']");
        let value = match object.get(key) {
            None | Some(Value::Null) => return Err(GraphError::required(&path)),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        match value {
            Some(v) if (-limit..=limit).contains(&v) => {}
            Some(_) => {
                return Err(GraphError::invalid_value(format!(
                    "{path} must be between -{limit} and {limit}."
                )));
            }
            None => return Err(type_error(&path, "a number")),
        }
    }
    opt_str(object, "name", "location['name']")?;
    opt_str(object, "address", "location['address']")?;
    Ok(())
}

fn contacts(root: &Map<String, Value>) -> Result<(), GraphError> {
    let list = match root.get("contacts") {
        None | Some(Value::Null) => return Err(GraphError::required("contacts")),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(type_error("contacts", "an array")),
    };
    if list.is_empty() {
        return Err(GraphError::required("contacts[0]"));
    }
    for (i, contact) in list.iter().enumerate() {
        let path = format!("contacts[{i}]");
        let Value::Object(contact) = contact else {
            return Err(type_error(&path, "an object"));
        };
        let name = req_obj(contact, "name", &format!("{path}['name']"))?;
        let formatted = req_str(
            name,
            "formatted_name",
            &format!("{path}['name']['formatted_name']"),
        )?;
        if formatted.is_empty() {
            return Err(GraphError::required(&format!(
                "{path}['name']['formatted_name']"
            )));
        }
        for list_key in ["phones", "emails", "urls", "addresses"] {
            if let Some(v) = contact.get(list_key)
                && !v.is_array()
            {
                return Err(type_error(&format!("{path}['{list_key}']"), "an array"));
            }
        }
    }
    Ok(())
}

fn interactive(object: &Map<String, Value>) -> Result<(), GraphError> {
    let kind = req_str(object, "type", "interactive['type']")?;
    let known = [
        "button",
        "list",
        "cta_url",
        "product",
        "product_list",
        "catalog_message",
        "flow",
        "location_request_message",
        "address_message",
        "call_permission_request",
        "voice_call",
    ];
    if !known.contains(&kind) {
        return Err(GraphError::invalid_parameter(format!(
            "Param interactive['type'] must be one of {{BUTTON, CATALOG_MESSAGE, CTA_URL, FLOW, \
             LIST, LOCATION_REQUEST_MESSAGE, PRODUCT, PRODUCT_LIST, …}} - got \"{kind}\"."
        )));
    }
    let action = req_obj(object, "action", "interactive['action']")?;
    let body = opt_obj(object, "body", "interactive['body']")?;
    match body {
        Some(body) => {
            let text = req_str(body, "text", "interactive['body']['text']")?;
            max_len(text, 1024, "interactive['body']['text']")?;
        }
        None if kind != "product" => return Err(GraphError::required("interactive['body']")),
        None => {}
    }
    if let Some(footer) = opt_obj(object, "footer", "interactive['footer']")? {
        let text = req_str(footer, "text", "interactive['footer']['text']")?;
        max_len(text, 60, "interactive['footer']['text']")?;
    }
    if let Some(header) = opt_obj(object, "header", "interactive['header']")? {
        let header_kind = req_str(header, "type", "interactive['header']['type']")?;
        match header_kind {
            "text" => {
                let text = req_str(header, "text", "interactive['header']['text']")?;
                max_len(text, 60, "interactive['header']['text']")?;
            }
            "image" | "video" | "document" if kind != "list" => {
                let media = req_obj(
                    header,
                    header_kind,
                    &format!("interactive['header']['{header_kind}']"),
                )?;
                one_of_id_or_link(media, &format!("interactive['header']['{header_kind}']"))?;
            }
            other => {
                return Err(GraphError::invalid_value(format!(
                    "interactive['header']['type'] \"{other}\" is not allowed for {kind} messages."
                )));
            }
        }
    }
    match kind {
        "button" => reply_buttons(action),
        "list" => list(action),
        "cta_url" => cta_url(action),
        _ => Ok(()),
    }
}

fn reply_buttons(action: &Map<String, Value>) -> Result<(), GraphError> {
    let Some(Value::Array(buttons)) = action.get("buttons") else {
        return Err(GraphError::required("interactive['action']['buttons']"));
    };
    if !(1..=3).contains(&buttons.len()) {
        return Err(GraphError::invalid_value(format!(
            "Number of buttons is invalid: {}. Min: 1, Max: 3.",
            buttons.len()
        )));
    }
    let (mut ids, mut titles) = (Vec::new(), Vec::new());
    for (i, button) in buttons.iter().enumerate() {
        let path = format!("interactive['action']['buttons'][{i}]");
        let Value::Object(button) = button else {
            return Err(type_error(&path, "an object"));
        };
        let kind = req_str(button, "type", &format!("{path}['type']"))?;
        if kind != "reply" {
            return Err(GraphError::invalid_parameter(format!(
                "Param {path}['type'] must be one of {{REPLY}} - got \"{kind}\"."
            )));
        }
        let reply = req_obj(button, "reply", &format!("{path}['reply']"))?;
        let id = req_str(reply, "id", &format!("{path}['reply']['id']"))?;
        let title = req_str(reply, "title", &format!("{path}['reply']['title']"))?;
        max_len(id, 256, &format!("{path}['reply']['id']"))?;
        if title.trim().is_empty() || title.chars().count() > 20 {
            return Err(GraphError::invalid_value(
                "Button title length invalid. Min length: 1, Max length: 20.".to_owned(),
            ));
        }
        if ids.contains(&id) || titles.contains(&title) {
            return Err(GraphError::invalid_value(
                "Buttons must have unique ids and titles.".to_owned(),
            ));
        }
        ids.push(id);
        titles.push(title);
    }
    Ok(())
}

fn list(action: &Map<String, Value>) -> Result<(), GraphError> {
    let button = req_str(action, "button", "interactive['action']['button']")?;
    if button.trim().is_empty() || button.chars().count() > 20 {
        return Err(GraphError::invalid_value(
            "List button text length invalid. Min length: 1, Max length: 20.".to_owned(),
        ));
    }
    let Some(Value::Array(sections)) = action.get("sections") else {
        return Err(GraphError::required("interactive['action']['sections']"));
    };
    if !(1..=10).contains(&sections.len()) {
        return Err(GraphError::invalid_value(format!(
            "Number of sections is invalid: {}. Min: 1, Max: 10.",
            sections.len()
        )));
    }
    let mut ids = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let path = format!("interactive['action']['sections'][{i}]");
        let Value::Object(section) = section else {
            return Err(type_error(&path, "an object"));
        };
        match opt_str(section, "title", &format!("{path}['title']"))? {
            Some(title) => max_len(title, 24, &format!("{path}['title']"))?,
            None if sections.len() > 1 => {
                return Err(GraphError::invalid_value(
                    "Each section needs a title when there is more than one section.".to_owned(),
                ));
            }
            None => {}
        }
        let Some(Value::Array(rows)) = section.get("rows") else {
            return Err(GraphError::required(&format!("{path}['rows']")));
        };
        if rows.is_empty() {
            return Err(GraphError::invalid_value(format!(
                "{path}['rows'] must have at least one row."
            )));
        }
        for (j, row) in rows.iter().enumerate() {
            let row_path = format!("{path}['rows'][{j}]");
            let Value::Object(row) = row else {
                return Err(type_error(&row_path, "an object"));
            };
            let id = req_str(row, "id", &format!("{row_path}['id']"))?;
            max_len(id, 200, &format!("{row_path}['id']"))?;
            let title = req_str(row, "title", &format!("{row_path}['title']"))?;
            max_len(title, 24, &format!("{row_path}['title']"))?;
            if let Some(d) = opt_str(row, "description", &format!("{row_path}['description']"))? {
                max_len(d, 72, &format!("{row_path}['description']"))?;
            }
            if ids.contains(&id) {
                return Err(GraphError::invalid_value(format!(
                    "Row ids must be unique; \"{id}\" is used twice."
                )));
            }
            ids.push(id);
        }
    }
    if ids.len() > 10 {
        return Err(GraphError::invalid_value(format!(
            "Total row count exceeded: {}. Max: 10.",
            ids.len()
        )));
    }
    Ok(())
}

fn cta_url(action: &Map<String, Value>) -> Result<(), GraphError> {
    let name = req_str(action, "name", "interactive['action']['name']")?;
    if name != "cta_url" {
        return Err(GraphError::invalid_parameter(format!(
            "Param interactive['action']['name'] must be one of {{CTA_URL}} - got \"{name}\"."
        )));
    }
    let parameters = req_obj(action, "parameters", "interactive['action']['parameters']")?;
    let text = req_str(
        parameters,
        "display_text",
        "interactive['action']['parameters']['display_text']",
    )?;
    if text.trim().is_empty() || text.chars().count() > 20 {
        return Err(GraphError::invalid_value(
            "Display text length invalid. Min length: 1, Max length: 20.".to_owned(),
        ));
    }
    let link = req_str(
        parameters,
        "url",
        "interactive['action']['parameters']['url']",
    )?;
    http_url(link, "interactive['action']['parameters']['url']")
}

fn reaction(object: &Map<String, Value>) -> Result<(), GraphError> {
    let id = req_str(object, "message_id", "reaction['message_id']")?;
    if id.is_empty() {
        return Err(GraphError::required("reaction['message_id']"));
    }
    // An empty emoji removes a reaction.
    let emoji = req_str(object, "emoji", "reaction['emoji']")?;
    if emoji.chars().count() > 10 {
        return Err(GraphError::invalid_value(
            "reaction['emoji'] must be a single emoji.".to_owned(),
        ));
    }
    Ok(())
}

fn type_error(path: &str, what: &str) -> GraphError {
    GraphError::invalid_parameter(format!("Param {path} must be {what}."))
}

fn req_obj<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, GraphError> {
    opt_obj(object, key, path)?.ok_or_else(|| GraphError::required(path))
}

fn opt_obj<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, GraphError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(type_error(path, "an object")),
    }
}

fn req_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, GraphError> {
    opt_str(object, key, path)?.ok_or_else(|| GraphError::required(path))
}

fn opt_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, GraphError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(type_error(path, "a string")),
    }
}

fn opt_bool(object: &Map<String, Value>, key: &str, path: &str) -> Result<(), GraphError> {
    match object.get(key) {
        None | Some(Value::Null | Value::Bool(_)) => Ok(()),
        Some(_) => Err(type_error(path, "a boolean")),
    }
}

fn max_len(text: &str, max: usize, path: &str) -> Result<(), GraphError> {
    if text.chars().count() > max {
        return Err(GraphError::too_long(path, max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(body: &Value) -> GraphError {
        check(Some(body), &[]).unwrap_err()
    }

    #[test]
    fn a_text_to_a_phone_number_reports_its_digits_as_wa_id() {
        let body = json!({"messaging_product": "whatsapp", "to": "+1 (555) 000-1111",
            "type": "text", "text": {"body": "hi"}, "biz_opaque_callback_data": "t=1"});
        let Checked::Send(out) = check(Some(&body), &[]).unwrap() else {
            panic!("a send");
        };
        assert_eq!(out.wa_id.as_deref(), Some("15550001111"));
        assert_eq!(out.input, "+1 (555) 000-1111");
        assert_eq!(out.biz_opaque_callback_data.as_deref(), Some("t=1"));
    }

    #[test]
    fn business_scoped_ids_are_recipients_and_a_phone_number_wins_over_them() {
        assert!(is_bsuid("US.13491208655302741918"));
        assert!(is_bsuid("US.ENT.11815799212886844830"));
        assert!(!is_bsuid("us.1349"));
        assert!(!is_bsuid("US."));
        assert!(!is_bsuid("US.1.2"));
        let body = json!({"messaging_product": "whatsapp", "recipient": "US.13491208655302741918",
            "type": "text", "text": {"body": "hi"}});
        let Checked::Send(out) = check(Some(&body), &[]).unwrap() else {
            panic!("a send");
        };
        assert_eq!(out.user_id.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(out.wa_id, None);
        let both = json!({"messaging_product": "whatsapp", "recipient": "US.1", "to": "15550001111",
            "text": {"body": "hi"}});
        let Checked::Send(out) = check(Some(&both), &[]).unwrap() else {
            panic!("a send");
        };
        assert_eq!(
            (out.wa_id.as_deref(), out.user_id),
            (Some("15550001111"), None)
        );
    }

    #[test]
    fn missing_and_overlong_fields_name_the_parameter() {
        let e = err(&json!({"to": "15550001111", "text": {"body": "x"}}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (100, "(#100) The parameter messaging_product is required.")
        );
        let e = err(
            &json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "text", "text": {}}),
        );
        assert_eq!(e.message, "(#100) The parameter text['body'] is required.");
        let long = "x".repeat(4097);
        let e = err(
            &json!({"messaging_product": "whatsapp", "to": "15550001111", "text": {"body": long}}),
        );
        assert_eq!(
            e.message,
            "(#100) Param text['body'] must be at most 4096 characters long."
        );
    }

    #[test]
    fn broken_rules_are_131009_with_the_rule_in_the_details() {
        let e = err(
            &json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "image",
            "image": {"id": "1", "link": "https://x.example/a.jpg"}}),
        );
        assert_eq!(e.code, 131_009);
        assert!(
            e.details.contains("exactly one of 'id' or 'link'"),
            "{}",
            e.details
        );
    }
}
