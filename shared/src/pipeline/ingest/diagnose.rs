//! Signature diagnosis: why ingest accepts or refuses a captured provider request, precisely
//! enough to act on (`POST /v1/sources/{id}/diagnose`, `wagate diagnose`, the console).
//!
//! Owns: reading a captured request (a raw HTTP/1.1 message, or headers and body apart), asking
//! ingest's own check whether it would be accepted ([`Diagnosis::accepted`] is that answer, not
//! a second opinion), and explaining the outcome: which header or token place was read, which
//! configured secret matched (rotation), and for a refusal the likeliest cause, found by
//! re-checking the request under the changes that happen on the way (a hop that decoded Meta's
//! `\uXXXX` escapes or re-serialised the JSON, a dropped or added line break, a legacy SHA-1
//! header, an algorithm announced wrongly, Twilio signing another URL).
//!
//! Must not: put secrets, tokens or the body in the answer or in logs. The answer names secrets
//! by position only ("2 of 2").

use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::Sha256;

use super::{IngestRequest, Method, verify};
use crate::model::Provider;
use crate::ports::Source;
use crate::signature::{Secret, SignatureError, bearer_value, verify_token, verify_twilio};

/// A provider request as captured (from a proxy's log, `tcpdump`, a request bin): either `raw`,
/// the HTTP/1.1 message, or its `headers` and `body` apart.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapturedRequest {
    /// The request as sent: an optional request line (`POST /webhooks/meta?x=1 HTTP/1.1`), one
    /// `Name: value` header per line, a blank line, then the body exactly as received. Lines
    /// may end in CRLF or LF.
    #[serde(default)]
    pub raw: Option<String>,
    /// The headers, as an object of names to values or a list of `[name, value]` pairs.
    #[serde(default)]
    pub headers: Option<CapturedHeaders>,
    /// The body as text, byte for byte.
    #[serde(default)]
    pub body: Option<String>,
    /// The body as base64, for bodies that are not UTF-8.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// The URL the provider called (Twilio signs it), with its query string. Without it, the
    /// URL is what ingest would rebuild from the request line and `Host`.
    #[serde(default)]
    pub url: Option<String>,
}

/// Captured headers: `{"Name": "value"}` or `[["Name", "value"], …]` (repeated names kept).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CapturedHeaders {
    /// Names to values.
    Map(std::collections::BTreeMap<String, String>),
    /// `[name, value]` pairs, in order.
    Pairs(Vec<(String, String)>),
}

/// The outcome of a diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The signature or token checks out over the bytes as captured.
    Verified,
    /// A hop decoded Meta's `\uXXXX` escapes into UTF-8; the signature matches the escaped form,
    /// which ingest also checks, so the request is accepted.
    BodyReEncoded,
    /// The signature matches the body as it was before a hop changed it (re-serialised JSON,
    /// escapes, line breaks); ingest checks the bytes it gets, so it refuses the request.
    BodyReSerialized,
    /// The header ingest checks is not in the request.
    HeaderMissing,
    /// The header is there but not in the provider's documented form.
    HeaderMalformed,
    /// Signed with another algorithm than the one ingest checks (or announces).
    WrongAlgorithm,
    /// Well-formed, but no configured secret or token produces or equals it.
    WrongSecret,
    /// Twilio signed another URL than the one ingest checks (`signed_url`).
    UrlMismatch,
    /// A token source's request has no token in any place it is read from.
    TokenMissing,
    /// The source has no secret configured, so nothing verifies.
    NoSecret,
}

/// Which configured secret matched: `index` counts from 0 in the source's order, of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretMatch {
    /// Position in the source's secrets, from 0.
    pub index: usize,
    /// How many are configured.
    pub of: usize,
}

/// Why ingest accepts or refuses a captured request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnosis {
    /// The outcome.
    pub verdict: Verdict,
    /// Whether ingest accepts this request as captured (its own check, run here).
    pub accepted: bool,
    /// The source's provider.
    pub provider: Provider,
    /// One sentence saying what was found.
    pub summary: String,
    /// What was read: a header name, `query parameter token`, `body apikey`, …
    pub checked: String,
    /// How many secrets (or tokens) the source has.
    pub secrets_configured: usize,
    /// Which one matched, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_secret: Option<SecretMatch>,
    /// The form of the body the signature matched, when not the bytes as captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_form: Option<String>,
    /// Twilio: the URL that was signed, when another than the one ingest checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_url: Option<String>,
    /// What to do about it.
    pub hints: Vec<String>,
}

/// A captured request that cannot be read; the message says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaptureError(pub String);

/// A captured request, read: what [`IngestRequest`] borrows.
#[derive(Debug, Clone, Default)]
struct Capture {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The request line's target or the `url`: path and query, and the origin if absolute.
    path: String,
    query: String,
    origin: Option<(String, String)>,
}

impl CapturedRequest {
    fn read(&self) -> Result<Capture, CaptureError> {
        let mut capture = match &self.raw {
            Some(raw) => {
                if self.headers.is_some() || self.body.is_some() || self.body_base64.is_some() {
                    return Err(CaptureError(
                        "give either raw or headers and body, not both".into(),
                    ));
                }
                read_raw(raw)?
            }
            None => {
                let headers = match &self.headers {
                    Some(CapturedHeaders::Map(map)) => {
                        map.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
                    }
                    Some(CapturedHeaders::Pairs(pairs)) => pairs.clone(),
                    None => Vec::new(),
                };
                let body = match (&self.body, &self.body_base64) {
                    (Some(_), Some(_)) => {
                        return Err(CaptureError(
                            "give either body or body_base64, not both".into(),
                        ));
                    }
                    (Some(text), None) => text.as_bytes().to_vec(),
                    (None, Some(b64)) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .map_err(|_| CaptureError("body_base64 is not base64".into()))?
                    }
                    (None, None) => Vec::new(),
                };
                Capture {
                    headers,
                    body,
                    ..Capture::default()
                }
            }
        };
        if let Some(url) = &self.url {
            let parsed = url::Url::parse(url.trim())
                .map_err(|_| CaptureError("url is not an absolute URL".into()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(CaptureError("url must be http or https".into()));
            }
            let authority = &parsed[url::Position::BeforeHost..url::Position::AfterPort];
            capture.origin = Some((parsed.scheme().to_owned(), authority.to_owned()));
            capture.path = parsed.path().to_owned();
            capture.query = parsed.query().unwrap_or_default().to_owned();
        }
        Ok(capture)
    }
}

/// An HTTP/1.1 message as text: an optional request line, headers, a blank line, the body (its
/// bytes exactly as they follow the blank line).
fn read_raw(raw: &str) -> Result<Capture, CaptureError> {
    let mut capture = Capture::default();
    let mut rest = raw.trim_start_matches(['\r', '\n']);
    let mut first = true;
    let mut number = 0;
    loop {
        number += 1;
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        rest = after;
        if line.is_empty() {
            break;
        }
        if first && let Some(target) = request_target(line) {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            match path.split_once("://") {
                Some((scheme, tail)) => {
                    let split = tail.find('/').unwrap_or(tail.len());
                    capture.origin = Some((scheme.to_owned(), tail[..split].to_owned()));
                    capture.path = tail[split..].to_owned();
                }
                None => capture.path = path.to_owned(),
            }
            capture.query = query.to_owned();
        } else {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                CaptureError(format!(
                    "line {number} is neither a request line nor a `Name: value` header"
                ))
            })?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(CaptureError(format!(
                    "`{}` is not a header name",
                    name.chars().take(40).collect::<String>()
                )));
            }
            capture
                .headers
                .push((name.to_owned(), value.trim().to_owned()));
        }
        first = false;
        if rest.is_empty() {
            break;
        }
    }
    capture.body = rest.as_bytes().to_vec();
    Ok(capture)
}

/// `POST /path?q HTTP/1.1` → `/path?q` (an uppercase method, a target, an optional version).
fn request_target(line: &str) -> Option<&str> {
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next();
    let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    let version_ok = version.is_none_or(|v| v.starts_with("HTTP/"));
    (is_method && version_ok && parts.next().is_none() && !target.is_empty()).then_some(target)
}

/// Diagnoses `captured` as a POST to `source`'s webhook URL.
pub fn diagnose(source: &Source, captured: &CapturedRequest) -> Result<Diagnosis, CaptureError> {
    let capture = captured.read()?;
    let headers: Vec<(&str, &str)> = capture
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let default_path = format!("/webhooks/{}", source.id.as_str());
    let req = IngestRequest {
        method: Method::Post,
        source_id: source.id.as_str(),
        path: if capture.path.is_empty() {
            &default_path
        } else {
            &capture.path
        },
        origin: capture
            .origin
            .as_ref()
            .map(|(s, a)| (s.as_str(), a.as_str())),
        query: &capture.query,
        body: &capture.body,
        headers: &headers,
    };
    let accepted = verify(&req, source).is_ok();
    let mut diagnosis = match source.provider {
        Provider::Meta => meta(&req, source),
        Provider::Waha => waha(&req, source),
        Provider::Twilio => twilio(&req, source, captured.url.as_deref()),
        Provider::Dialog360 | Provider::Gupshup | Provider::Evolution => token(&req, source),
    };
    diagnosis.accepted = accepted;
    Ok(diagnosis)
}

/// A diagnosis before ingest's own answer is filled in.
fn found(source: &Source, verdict: Verdict, checked: &str, summary: String) -> Diagnosis {
    Diagnosis {
        verdict,
        accepted: false,
        provider: source.provider,
        summary,
        checked: checked.to_owned(),
        secrets_configured: source.secrets.len(),
        matched_secret: None,
        body_form: None,
        signed_url: None,
        hints: Vec::new(),
    }
}

impl Diagnosis {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    fn matched(mut self, index: usize, of: usize) -> Self {
        self.matched_secret = Some(SecretMatch { index, of });
        self
    }
}

/// "secret 2 of 3" (people count from one).
fn nth(index: usize, of: usize, what: &str) -> String {
    format!("{what} {} of {of}", index + 1)
}

/// The first secret, by position, for which `check` passes.
fn first_match(secrets: &[Secret], check: impl Fn(&[Secret]) -> bool) -> Option<usize> {
    secrets.iter().position(|s| check(std::slice::from_ref(s)))
}

/// The signature headers of every provider, to tell a request sent to the wrong source.
const SIGNATURE_HEADERS: [(&str, &str); 4] = [
    ("x-hub-signature-256", "Meta (or 360dialog's Meta envelope)"),
    ("x-webhook-hmac", "WAHA"),
    ("x-twilio-signature", "Twilio"),
    ("webhook-signature", "a Standard Webhooks sender"),
];

fn missing_header(req: &IngestRequest<'_>, source: &Source, header: &str) -> Diagnosis {
    let mut d = found(
        source,
        Verdict::HeaderMissing,
        header,
        format!("The request has no {header} header, which ingest checks for this source."),
    );
    for (name, who) in SIGNATURE_HEADERS {
        if !name.eq_ignore_ascii_case(header) && req.header(name).is_some() {
            d = d.hint(format!(
                "It carries {name}, which {who} sends: is this the right source, and is its provider right?"
            ));
        }
    }
    d.hint(format!(
        "If the provider sent {header}, a proxy on the way dropped it: forward every X- header."
    ))
}

fn hmac_matches<M: Mac + hmac::digest::KeyInit>(
    secret: &Secret,
    data: &[u8],
    expected: &[u8],
) -> bool {
    <M as Mac>::new_from_slice(secret.expose())
        .map(|mac| mac.chain_update(data).verify_slice(expected).is_ok())
        .unwrap_or(false)
}

/// Hex of exactly `len` bytes.
fn hex_of(text: &str, len: usize) -> Option<Vec<u8>> {
    (text.len() == len * 2)
        .then(|| hex::decode(text).ok())
        .flatten()
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// How a hex digest is wrong, for a malformed header's summary.
fn hex_problem(text: &str, len: usize) -> String {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        "has characters that are not hexadecimal digits".to_owned()
    } else {
        format!("has {} hex digits, not {}", text.len(), len * 2)
    }
}

/// A SHA-1 HMAC hex digest (Meta's legacy `X-Hub-Signature: sha1=…`) matched by some secret.
fn sha1_match(body: &[u8], hex_digest: &str, secrets: &[Secret]) -> Option<usize> {
    let expected = hex_of(hex_digest, 20)?;
    secrets
        .iter()
        .position(|s| hmac_matches::<Hmac<Sha1>>(s, body, &expected))
}

fn meta(req: &IngestRequest<'_>, source: &Source) -> Diagnosis {
    const HEADER: &str = "X-Hub-Signature-256";
    let secrets = &source.secrets;
    let of = secrets.len();
    let Some(value) = req.header(HEADER) else {
        if let Some(legacy) = req.header("x-hub-signature") {
            let digest = strip_prefix_ci(legacy.trim(), "sha1=").unwrap_or(legacy.trim());
            if let Some(i) = sha1_match(req.body, digest, secrets) {
                return found(
                    source,
                    Verdict::WrongAlgorithm,
                    "X-Hub-Signature",
                    format!(
                        "Only the legacy X-Hub-Signature (HMAC-SHA1) is present; it matches {}, but ingest checks X-Hub-Signature-256.",
                        nth(i, of, "secret")
                    ),
                )
                .matched(i, of)
                .hint("Meta sends both headers: a proxy on the way dropped X-Hub-Signature-256. Forward it unchanged.");
            }
        }
        return missing_header(req, source, HEADER);
    };
    let value = value.trim();
    if let Some(digest) = strip_prefix_ci(value, "sha1=") {
        let d = found(
            source,
            Verdict::WrongAlgorithm,
            HEADER,
            "X-Hub-Signature-256 holds a sha1= digest; Meta writes sha256= followed by the HMAC-SHA256.".into(),
        );
        return match sha1_match(req.body, digest, secrets) {
            Some(i) => d.matched(i, of).hint(format!(
                "The SHA-1 digest matches {}: whatever wrote this header used SHA-1; sign with HMAC-SHA256.",
                nth(i, of, "secret")
            )),
            None => d.hint("Sign the exact body with HMAC-SHA256 and the app secret, written as sha256=<hex>."),
        };
    }
    let Some(hex_part) = strip_prefix_ci(value, "sha256=") else {
        let d = found(
            source,
            Verdict::HeaderMalformed,
            HEADER,
            "X-Hub-Signature-256 does not start with sha256=.".into(),
        );
        let matched = hex_of(value, 32).and_then(|expected| {
            secrets
                .iter()
                .position(|s| hmac_matches::<Hmac<Sha256>>(s, req.body, &expected))
        });
        return match matched {
            Some(i) => d.matched(i, of).hint(format!(
                "The bare digest matches {}: write the header as sha256=<hex>.",
                nth(i, of, "secret")
            )),
            None => d.hint("Meta writes sha256= followed by 64 hex digits."),
        };
    };
    let Some(expected) = hex_of(hex_part, 32) else {
        return found(
            source,
            Verdict::HeaderMalformed,
            HEADER,
            format!("The digest after sha256= {}.", hex_problem(hex_part, 32)),
        )
        .hint("A proxy may have truncated or re-encoded the header; forward it unchanged.");
    };
    if secrets.is_empty() {
        return no_secret(source, HEADER);
    }
    let exact = |body: &[u8]| {
        secrets
            .iter()
            .position(|s| hmac_matches::<Hmac<Sha256>>(s, body, &expected))
    };
    if let Some(i) = exact(req.body) {
        return verified(source, HEADER, i);
    }
    if !req.body.is_ascii()
        && let Ok(text) = std::str::from_utf8(req.body)
        && let Some(i) = exact(crate::signature::escape_non_ascii(text).as_bytes())
    {
        return found(
            source,
            Verdict::BodyReEncoded,
            HEADER,
            format!(
                "The signature matches the body with its non-ASCII characters escaped as \\uXXXX, as Meta sends it, with {}: a hop decoded Meta's escapes. Ingest checks that form too.",
                nth(i, of, "secret")
            ),
        )
        .matched(i, of)
        .body_form("non-ASCII escaped as \\uXXXX, as Meta writes it")
        .hint("Nothing to fix here; a proxy that keeps bytes unchanged is still better.");
    }
    changed_body(req, source, HEADER, |body| exact(body))
        .unwrap_or_else(|| wrong_secret(source, HEADER, "X-Hub-Signature-256 is well-formed"))
}

fn verified(source: &Source, checked: &str, index: usize) -> Diagnosis {
    let of = source.secrets.len();
    let what = secret_word(source.provider);
    let mut d = found(
        source,
        Verdict::Verified,
        checked,
        format!(
            "{checked} verifies the request with {}.",
            nth(index, of, what)
        ),
    )
    .matched(index, of);
    if index > 0 {
        d = d.hint(format!(
            "The provider still uses an older {what} (not the first configured): finish the rotation, then remove the others."
        ));
    }
    d
}

fn secret_word(provider: Provider) -> &'static str {
    match provider {
        Provider::Meta => "app secret",
        Provider::Waha => "HMAC key",
        Provider::Twilio => "auth token",
        Provider::Dialog360 | Provider::Gupshup | Provider::Evolution => "token",
    }
}

fn no_secret(source: &Source, checked: &str) -> Diagnosis {
    found(
        source,
        Verdict::NoSecret,
        checked,
        "The source has no secret configured, so no request verifies.".into(),
    )
    .hint(format!(
        "Configure the source's {} (SSM or the sources file).",
        secret_word(source.provider)
    ))
}

fn wrong_secret(source: &Source, checked: &str, what: &str) -> Diagnosis {
    let of = source.secrets.len();
    let word = secret_word(source.provider);
    found(
        source,
        Verdict::WrongSecret,
        checked,
        format!(
            "{what}, but none of the {of} configured {word}s produces it over this body or the forms a hop could have changed it from."
        ),
    )
    .hint(format!(
        "The provider signs with another {word}: check it is this app's, or that a rotation reached wagate."
    ))
    .hint("If the body was captured after a proxy, capture it where wagate receives it: a change that cannot be undone (reordered keys, reformatted numbers) also breaks the signature.")
}

impl Diagnosis {
    fn body_form(mut self, form: &str) -> Self {
        self.body_form = Some(form.to_owned());
        self
    }
}

/// Checks the body as it was before the changes hops make; `matches` gives the secret that
/// verifies a form. `None` when no form matches.
fn changed_body(
    req: &IngestRequest<'_>,
    source: &Source,
    checked: &str,
    matches: impl Fn(&[u8]) -> Option<usize>,
) -> Option<Diagnosis> {
    let of = source.secrets.len();
    for (form, body) in earlier_forms(req.body) {
        if let Some(i) = matches(&body) {
            return Some(
                found(
                    source,
                    Verdict::BodyReSerialized,
                    checked,
                    format!(
                        "The signature matches the body {form}, with {}: something between the provider and wagate changed the bytes.",
                        nth(i, of, secret_word(source.provider))
                    ),
                )
                .matched(i, of)
                .body_form(form)
                .hint("Ingest verifies the bytes it receives: make every hop (proxy, queue, framework) pass the body through unchanged."),
            );
        }
    }
    None
}

/// The forms a body may have had before a hop changed it, each with how it differs, without
/// the body itself.
fn earlier_forms(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut push = |form: &'static str, candidate: Vec<u8>| {
        if candidate != body && out.iter().all(|(_, c)| *c != candidate) {
            out.push((form, candidate));
        }
    };
    // Line breaks first: the smallest change that explains the signature is the one to report.
    let trimmed = body.trim_ascii_end();
    push("without the trailing line break", trimmed.to_vec());
    push("with a trailing line break", [body, b"\n"].concat());
    push("with a trailing CRLF", [body, b"\r\n"].concat());
    if body.contains(&b'\n') {
        let mut crlf = Vec::with_capacity(body.len() + 16);
        for (i, &b) in body.iter().enumerate() {
            if b == b'\n' && (i == 0 || body[i - 1] != b'\r') {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        push("with CRLF line breaks (the capture has LF)", crlf);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let styles = [
            (
                "re-serialised compactly with / and non-ASCII escaped, as Meta writes JSON",
                JsonStyle {
                    escape_slash: true,
                    escape_non_ascii: true,
                },
            ),
            (
                "re-serialised compactly with non-ASCII escaped",
                JsonStyle {
                    escape_slash: false,
                    escape_non_ascii: true,
                },
            ),
            (
                "re-serialised compactly in UTF-8",
                JsonStyle {
                    escape_slash: false,
                    escape_non_ascii: false,
                },
            ),
            (
                "re-serialised compactly in UTF-8 with / escaped",
                JsonStyle {
                    escape_slash: true,
                    escape_non_ascii: false,
                },
            ),
        ];
        for (form, style) in styles {
            if let Some(json) = compact_json(text, style) {
                push(form, json.into_bytes());
            }
        }
    }
    out
}

/// How strings are written when JSON is re-serialised.
#[derive(Debug, Clone, Copy)]
struct JsonStyle {
    escape_slash: bool,
    escape_non_ascii: bool,
}

/// `text` (JSON) re-written without whitespace between tokens and with every string re-escaped
/// in `style`, keys in their order; `None` if it is not JSON-shaped text.
fn compact_json(text: &str, style: JsonStyle) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut tokens = 0usize;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                let value = read_string(&mut chars)?;
                write_string(&mut out, &value, style);
                tokens += 1;
            }
            '{' | '}' | '[' | ']' | ':' | ',' => out.push(c),
            c if c == '-' || c.is_ascii_alphanumeric() || c == '.' || c == '+' => out.push(c),
            _ => return None,
        }
    }
    (tokens > 0 && (out.starts_with('{') || out.starts_with('['))).then_some(out)
}

/// A JSON string's value after its opening quote, through its closing one.
fn read_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut value = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                '"' => value.push('"'),
                '\\' => value.push('\\'),
                '/' => value.push('/'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                'u' => {
                    let high = read_hex4(chars)?;
                    let code = if (0xD800..0xDC00).contains(&high) {
                        if chars.next()? != '\\' || chars.next()? != 'u' {
                            return None;
                        }
                        let low = read_hex4(chars)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        high
                    };
                    value.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => value.push(c),
        }
    }
}

fn read_hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

fn write_string(out: &mut String, value: &str, style: JsonStyle) {
    use std::fmt::Write as _;
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style.escape_slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if style.escape_non_ascii && (c as u32) > 0x7E => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn waha(req: &IngestRequest<'_>, source: &Source) -> Diagnosis {
    const HEADER: &str = "X-Webhook-Hmac";
    let secrets = &source.secrets;
    let of = secrets.len();
    let Some(value) = req.header(HEADER) else {
        return missing_header(req, source, HEADER);
    };
    let value = value.trim();
    let announced = req
        .header("x-webhook-hmac-algorithm")
        .map(|a| a.trim().to_ascii_lowercase());
    if let Some(other) = announced
        .as_deref()
        .filter(|a| !matches!(*a, "sha512" | "sha256"))
    {
        return found(
            source,
            Verdict::WrongAlgorithm,
            "X-Webhook-Hmac-Algorithm",
            format!(
                "X-Webhook-Hmac-Algorithm announces {}, which ingest does not accept (sha512 or sha256).",
                other.chars().take(20).collect::<String>()
            ),
        )
        .hint("WAHA signs with sha512 by default: check its webhook hmac settings.");
    }
    // What the digest's length says, against what is announced.
    let by_length = match value.len() {
        128 => Some("sha512"),
        64 => Some("sha256"),
        _ => None,
    };
    let check =
        |algorithm: &str, body: &[u8], secret: &Secret| match (algorithm, hex::decode(value)) {
            ("sha512", Ok(expected)) => hmac_matches::<Hmac<sha2::Sha512>>(secret, body, &expected),
            ("sha256", Ok(expected)) => hmac_matches::<Hmac<Sha256>>(secret, body, &expected),
            _ => false,
        };
    if let (Some(announced), Some(actual)) = (announced.as_deref(), by_length)
        && announced != actual
    {
        let d = found(
            source,
            Verdict::WrongAlgorithm,
            HEADER,
            format!(
                "X-Webhook-Hmac-Algorithm says {announced}, but the digest has the length of a {actual} one."
            ),
        );
        return match secrets.iter().position(|s| check(actual, req.body, s)) {
            Some(i) => d.matched(i, of).hint(format!(
                "As {actual}, the digest matches {}: the algorithm header is wrong (a proxy re-signing?).",
                nth(i, of, "HMAC key")
            )),
            None => d.hint("Send the algorithm WAHA actually used, or none."),
        };
    }
    let algorithm = announced.as_deref().or(by_length);
    let Some(algorithm) = algorithm.filter(|_| hex::decode(value).is_ok() && by_length.is_some())
    else {
        return found(
            source,
            Verdict::HeaderMalformed,
            HEADER,
            format!(
                "X-Webhook-Hmac {}; WAHA sends 128 lowercase hex digits (sha512).",
                if value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    format!("has {} hex digits", value.len())
                } else {
                    "has characters that are not hexadecimal digits".to_owned()
                }
            ),
        )
        .hint("A proxy may have truncated or re-encoded the header; forward it unchanged.");
    };
    if secrets.is_empty() {
        return no_secret(source, HEADER);
    }
    if let Some(i) = secrets.iter().position(|s| check(algorithm, req.body, s)) {
        return verified(source, HEADER, i);
    }
    changed_body(req, source, HEADER, |body| {
        secrets.iter().position(|s| check(algorithm, body, s))
    })
    .unwrap_or_else(|| {
        wrong_secret(
            source,
            HEADER,
            &format!("X-Webhook-Hmac is a well-formed {algorithm} digest"),
        )
    })
}

fn twilio(req: &IngestRequest<'_>, source: &Source, given: Option<&str>) -> Diagnosis {
    const HEADER: &str = "X-Twilio-Signature";
    let secrets = &source.secrets;
    let of = secrets.len();
    let Some(value) = req.header(HEADER) else {
        return missing_header(req, source, HEADER);
    };
    let checked_url = req.public_url(source);
    match verify_twilio(&checked_url, req.body, Some(value), secrets) {
        Err(SignatureError::MalformedHeader(_)) => {
            return found(
                source,
                Verdict::HeaderMalformed,
                HEADER,
                "X-Twilio-Signature is not the base64 of a 20-byte HMAC-SHA1.".into(),
            )
            .hint("A proxy may have truncated or re-encoded the header; forward it unchanged.");
        }
        Err(SignatureError::NoSecret) => return no_secret(source, HEADER),
        _ => {}
    }
    let signed = |url: &str| {
        first_match(secrets, |s| {
            verify_twilio(url, req.body, Some(value), s).is_ok()
        })
    };
    if let Some(i) = signed(&checked_url) {
        let mut d = verified(source, HEADER, i);
        d.summary = format!(
            "X-Twilio-Signature verifies the request to {} with {}.",
            without_query(&checked_url),
            nth(i, of, "auth token")
        );
        return d;
    }
    for url in twilio_urls(req, source, given) {
        if url == checked_url {
            continue;
        }
        if let Some(i) = signed(&url) {
            let base = without_query(&url).to_owned();
            let mut d = found(
                source,
                Verdict::UrlMismatch,
                HEADER,
                format!(
                    "Twilio signed {base}, with {}, but ingest checks {}.",
                    nth(i, of, "auth token"),
                    without_query(&checked_url)
                ),
            )
            .matched(i, of)
            .hint(format!(
                "Set the source's public_url to {base} (the webhook URL exactly as configured in Twilio)."
            ));
            d.signed_url = Some(url);
            return d;
        }
    }
    let mut d = wrong_secret(
        source,
        HEADER,
        &format!(
            "X-Twilio-Signature is well-formed for {}",
            without_query(&checked_url)
        ),
    );
    d.hints.push(
        "Twilio signs the URL configured in its console: if that is not this one, pass it as url to check it."
            .into(),
    );
    d
}

fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(base, _)| base)
}

/// URLs Twilio may have signed besides the one ingest checks: the URL the capture names, the
/// captured host and path under each scheme, and the configured `public_url` (these with the
/// request's query).
fn twilio_urls(req: &IngestRequest<'_>, source: &Source, given: Option<&str>) -> Vec<String> {
    let with_query = |base: String| {
        if req.query.is_empty() {
            base
        } else {
            format!("{base}?{}", req.query)
        }
    };
    let mut out: Vec<String> = given.map(|url| url.trim().to_owned()).into_iter().collect();
    let host = req
        .header("x-forwarded-host")
        .or(req.header("host"))
        .or(req.origin.map(|(_, authority)| authority));
    if let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) {
        for scheme in ["https", "http"] {
            out.push(with_query(format!("{scheme}://{host}{}", req.path)));
        }
    }
    if let Some(url) = &source.inbound.public_url {
        out.push(with_query(url.clone()));
    }
    out
}

fn token(req: &IngestRequest<'_>, source: &Source) -> Diagnosis {
    let inbound = &source.inbound;
    let header_place = format!("header {}", inbound.token_header);
    let query_place = format!("query parameter {}", inbound.token_query);
    let mut places: Vec<(String, String)> = Vec::new();
    if let Some(value) = req.header(&inbound.token_header) {
        places.push((header_place.clone(), bearer_value(value).to_owned()));
    }
    for (name, value) in form_urlencoded::parse(req.query.as_bytes()) {
        if name == inbound.token_query.as_str() {
            places.push((query_place.clone(), value.into_owned()));
        }
    }
    if source.provider == Provider::Evolution
        && let Some(key) = req.body_apikey()
    {
        places.push(("body apikey".into(), key));
    }
    places.retain(|(_, token)| !token.trim().is_empty());
    let read_from = if source.provider == Provider::Evolution {
        format!("{header_place}, {query_place} or body apikey")
    } else {
        format!("{header_place} or {query_place}")
    };
    if places.is_empty() {
        let mut d = found(
            source,
            Verdict::TokenMissing,
            &read_from,
            format!("The request carries no token in the {read_from}."),
        )
        .hint(format!(
            "Configure the provider to send the token in {header_place}, or add ?{}=<token> to the webhook URL given to it.",
            inbound.token_query
        ));
        if !inbound.token_header.eq_ignore_ascii_case("authorization")
            && req.header("authorization").is_some()
        {
            d = d.hint(format!(
                "The request has an Authorization header: if the token is there, set the source's token_header to Authorization (it reads {}).",
                inbound.token_header
            ));
        }
        return d;
    }
    if source.secrets.is_empty() {
        return no_secret(source, &read_from);
    }
    let of = source.secrets.len();
    for (place, presented) in &places {
        if let Some(i) = first_match(&source.secrets, |s| {
            verify_token(&[presented.as_str()], s).is_ok()
        }) {
            return verified(source, place, i);
        }
    }
    let tried: Vec<&str> = places.iter().map(|(p, _)| p.as_str()).collect();
    found(
        source,
        Verdict::WrongSecret,
        &tried.join(", "),
        format!(
            "The token in the {} matches none of the {of} configured tokens.",
            tried.join(" and the ")
        ),
    )
    .hint("The provider was given another token: check the one configured there, or finish the rotation on wagate's side.")
}

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod tests;
