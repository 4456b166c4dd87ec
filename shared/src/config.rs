//! Configuration formats shared by the functions and the local process.
//!
//! Owns: the `WAGATE_SOURCES` JSON format, including each source's optional `send` settings.
//! Must not: read the environment (callers pass text).

use serde::Deserialize;

use crate::ids::SourceId;
use crate::model::{Provider, Verification};
use crate::ports::{InboundAuth, Source};
use crate::send::settings::{self, InvalidSetting, MetaSend, SendSettings, WahaSend};
use crate::signature::Secret;

/// Why the sources configuration is unusable. Messages name the source, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// Not the documented JSON shape.
    #[error("expected a JSON list of sources: {}", crate::json_error(.0))]
    Format(#[from] serde_json::Error),
    /// A source id is not URL-safe.
    #[error("source #{index}: {reason}")]
    BadId {
        /// Position in the list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A source cannot verify anything.
    #[error("source `{0}` has no secret: every webhook to it would be rejected")]
    NoSecret(String),
    /// Two sources share an id.
    #[error("source id `{0}` is used twice")]
    Duplicate(String),
    /// A source's settings (verification or `send`) are unusable.
    #[error("source `{id}`: {reason}")]
    Send {
        /// The source.
        id: String,
        /// What is wrong (names the setting, never its value).
        reason: InvalidSetting,
    },
}

/// One or several secrets: a JSON list, or a string of comma-separated values (so a template
/// can pass a rotation list in one parameter).
#[derive(Deserialize)]
#[serde(untagged)]
enum Secrets {
    List(Vec<String>),
    Joined(String),
}

impl Secrets {
    fn into_secrets(self) -> Vec<Secret> {
        let list = match self {
            Self::List(list) => list,
            Self::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        };
        list.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(Secret::from)
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    id: String,
    provider: Provider,
    secrets: Secrets,
    #[serde(default, alias = "verify_token")]
    verify_tokens: Option<Secrets>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    token_header: Option<String>,
    #[serde(default)]
    token_query: Option<String>,
    #[serde(default)]
    send: Option<SendSpec>,
}

impl SourceSpec {
    /// The verification settings, checked against the provider.
    fn inbound(&self) -> Result<InboundAuth, InvalidSetting> {
        let refuse = |field: &'static str, reason: &'static str| InvalidSetting { field, reason };
        let mut auth = InboundAuth::default();
        if let Some(url) = &self.public_url {
            if self.provider != Provider::Twilio {
                return Err(refuse("public_url", "is a Twilio setting"));
            }
            auth.public_url = Some(public_url(url)?);
        }
        let token_source = self.provider.verification() == Verification::Token;
        if let Some(name) = &self.token_header {
            if !token_source {
                return Err(refuse(
                    "token_header",
                    "is for token sources (360dialog, gupshup, evolution)",
                ));
            }
            if name.is_empty() || axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(refuse("token_header", "must be an HTTP header name"));
            }
            name.clone_into(&mut auth.token_header);
        }
        if let Some(name) = &self.token_query {
            if !token_source {
                return Err(refuse(
                    "token_query",
                    "is for token sources (360dialog, gupshup, evolution)",
                ));
            }
            if name.is_empty() || name.len() > 64 {
                return Err(refuse("token_query", "must be 1 to 64 characters"));
            }
            name.clone_into(&mut auth.token_query);
        }
        Ok(auth)
    }
}

/// Checks a Twilio `public_url`: absolute `http(s)`, no credentials, query or fragment (the
/// request's own query is appended when verifying). Kept as written, since Twilio signs the
/// text it was given (a parser would drop a default port or change escapes).
fn public_url(text: &str) -> Result<String, InvalidSetting> {
    let refuse = |reason: &'static str| InvalidSetting {
        field: "public_url",
        reason,
    };
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|_| refuse("must be an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(refuse("must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not contain credentials"));
    }
    if text.contains('?') || text.contains('#') {
        return Err(refuse(
            "must not have a query or fragment (the request's query is appended)",
        ));
    }
    Ok(text.to_owned())
}

/// A phone number id written as a string or, by mistake, as a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Digits {
    Text(String),
    Number(u64),
}

/// `send`: Meta's settings (`access_token`, `phone_number_id`, `graph_url`, `graph_version`) or
/// WAHA's (`base_url`, `api_key`, `session`, `allow_private_network`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendSpec {
    access_token: Option<String>,
    phone_number_id: Option<Digits>,
    graph_url: Option<String>,
    graph_version: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    session: Option<String>,
    allow_private_network: Option<bool>,
}

impl SendSpec {
    fn into_settings(self, provider: Provider) -> Result<SendSettings, InvalidSetting> {
        let refuse = |field: &'static str, reason: &'static str| InvalidSetting { field, reason };
        match provider {
            Provider::Twilio | Provider::Dialog360 | Provider::Gupshup | Provider::Evolution => {
                Err(refuse(
                    "send",
                    "is supported for meta and waha sources only; this source only receives",
                ))
            }
            Provider::Meta => {
                for (field, given) in [
                    ("send.base_url", self.base_url.is_some()),
                    ("send.api_key", self.api_key.is_some()),
                    ("send.session", self.session.is_some()),
                    (
                        "send.allow_private_network",
                        self.allow_private_network.is_some(),
                    ),
                ] {
                    if given {
                        return Err(refuse(field, "is a WAHA setting, not a Meta one"));
                    }
                }
                let token = self
                    .access_token
                    .ok_or(refuse("send.access_token", "is required"))?;
                let phone_number_id = match self.phone_number_id {
                    None => None,
                    Some(Digits::Number(n)) => Some(n.to_string()),
                    Some(Digits::Text(t)) => Some(t.trim().to_owned()),
                };
                if let Some(id) = &phone_number_id
                    && !settings::is_phone_number_id(id)
                {
                    return Err(refuse("send.phone_number_id", "must be digits"));
                }
                Ok(SendSettings::Meta(MetaSend {
                    access_token: settings::header_secret("send.access_token", &token)?,
                    phone_number_id,
                    graph_url: settings::base_url(
                        "send.graph_url",
                        self.graph_url
                            .as_deref()
                            .unwrap_or(settings::DEFAULT_GRAPH_URL),
                    )?,
                    graph_version: settings::graph_version(
                        self.graph_version
                            .as_deref()
                            .unwrap_or(settings::DEFAULT_GRAPH_VERSION),
                    )?,
                }))
            }
            Provider::Waha => {
                for (field, given) in [
                    ("send.access_token", self.access_token.is_some()),
                    ("send.phone_number_id", self.phone_number_id.is_some()),
                    ("send.graph_url", self.graph_url.is_some()),
                    ("send.graph_version", self.graph_version.is_some()),
                ] {
                    if given {
                        return Err(refuse(field, "is a Meta setting, not a WAHA one"));
                    }
                }
                let base = self
                    .base_url
                    .ok_or(refuse("send.base_url", "is required"))?;
                let session = self
                    .session
                    .unwrap_or_else(|| settings::DEFAULT_WAHA_SESSION.to_owned());
                if !settings::is_session_name(&session) {
                    return Err(refuse(
                        "send.session",
                        "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'",
                    ));
                }
                Ok(SendSettings::Waha(WahaSend {
                    base_url: settings::base_url("send.base_url", &base)?,
                    api_key: self
                        .api_key
                        .map(|k| settings::header_secret("send.api_key", &k))
                        .transpose()?,
                    session,
                    allow_private_network: self.allow_private_network.unwrap_or(false),
                }))
            }
        }
    }
}

/// Parses `[{"id": "meta-main", "provider": "meta", "secrets": ["app-secret"], "verify_token":
/// "…"}, {"id": "waha-main", "provider": "waha", "secrets": "key1,key2"}]`.
///
/// A source may add `send` settings to send messages through it:
/// Meta `{"access_token": "EAAG…", "phone_number_id": "1234", "graph_url":
/// "https://graph.facebook.com", "graph_version": "v23.0"}` (the last two optional, the phone
/// number id optional when every send names its `from`); WAHA `{"base_url":
/// "http://waha:3000", "api_key": "…", "session": "default", "allow_private_network": false}`
/// (all but `base_url` optional).
pub fn parse_sources(json: &str) -> Result<Vec<Source>, SourcesError> {
    let specs: Vec<SourceSpec> = serde_json::from_str(json)?;
    let mut seen = std::collections::HashSet::new();
    let mut sources = Vec::with_capacity(specs.len());
    for (index, spec) in specs.into_iter().enumerate() {
        let id = SourceId::parse(&spec.id).map_err(|e| SourcesError::BadId {
            index,
            reason: e.to_string(),
        })?;
        if !seen.insert(spec.id.clone()) {
            return Err(SourcesError::Duplicate(spec.id));
        }
        let inbound = spec.inbound().map_err(|reason| SourcesError::Send {
            id: spec.id.clone(),
            reason,
        })?;
        let secrets = spec.secrets.into_secrets();
        if secrets.is_empty() {
            return Err(SourcesError::NoSecret(spec.id));
        }
        let verify_tokens = spec
            .verify_tokens
            .map(Secrets::into_secrets)
            .unwrap_or_default();
        let send = spec
            .send
            .map(|s| s.into_settings(spec.provider))
            .transpose()
            .map_err(|reason| SourcesError::Send {
                id: spec.id.clone(),
                reason,
            })?;
        sources.push(Source {
            id,
            provider: spec.provider,
            secrets,
            verify_tokens,
            inbound,
            send,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_and_comma_separated_secrets() {
        let sources = parse_sources(
            r#"[{"id":"meta-main","provider":"meta","secrets":["a"," b "],"verify_token":"t"},
                {"id":"waha-main","provider":"waha","secrets":"k1,k2,"}]"#,
        )
        .unwrap();
        assert_eq!(
            sources[0].secrets,
            vec![Secret::from("a"), Secret::from("b")]
        );
        assert_eq!(sources[0].verify_tokens, vec![Secret::from("t")]);
        assert_eq!(sources[1].provider, Provider::Waha);
        assert_eq!(sources[1].secrets.len(), 2);
    }

    #[test]
    fn format_errors_never_quote_the_configuration() {
        let e = parse_sources(r#"[{"id":"a","provider":"meta","secrets":["s3cr3t-value", 7]}]"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = parse_sources(r#"{"secret-key-material": true}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret-key-material"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn reads_meta_send_settings_with_defaults() {
        let sources = parse_sources(
            r#"[{"id":"meta-main","provider":"meta","secrets":["a"],
                 "send":{"access_token":"EAAGtoken","phone_number_id":1234}}]"#,
        )
        .unwrap();
        let Some(SendSettings::Meta(m)) = &sources[0].send else {
            panic!("{:?}", sources[0].send)
        };
        assert_eq!(m.access_token.expose(), b"EAAGtoken");
        assert_eq!(m.phone_number_id.as_deref(), Some("1234"));
        assert_eq!(m.graph_url, "https://graph.facebook.com");
        assert_eq!(m.graph_version, "v23.0");
        assert!(!format!("{sources:?}").contains("EAAGtoken"));
    }

    #[test]
    fn reads_waha_send_settings_with_defaults() {
        let sources = parse_sources(
            r#"[{"id":"waha-main","provider":"waha","secrets":"k",
                 "send":{"base_url":"http://waha:3000/","api_key":"wk","allow_private_network":true}},
                {"id":"quiet","provider":"waha","secrets":"k"}]"#,
        )
        .unwrap();
        let Some(SendSettings::Waha(w)) = &sources[0].send else {
            panic!("{:?}", sources[0].send)
        };
        assert_eq!(w.base_url, "http://waha:3000");
        assert_eq!(w.session, "default");
        assert_eq!(w.api_key.as_ref().map(Secret::expose), Some(&b"wk"[..]));
        assert!(w.allow_private_network);
        assert_eq!(sources[1].send, None);
    }

    #[test]
    fn send_settings_errors_name_the_setting_never_its_value() {
        let cases = [
            (
                r#"[{"id":"m","provider":"meta","secrets":"x","send":{"phone_number_id":"1"}}]"#,
                "`send.access_token` is required",
            ),
            (
                r#"[{"id":"m","provider":"meta","secrets":"x","send":{"access_token":"tok-s3cret","base_url":"http://w"}}]"#,
                "`send.base_url` is a WAHA setting",
            ),
            (
                r#"[{"id":"m","provider":"meta","secrets":"x","send":{"access_token":"tok-s3cret","phone_number_id":"12a"}}]"#,
                "`send.phone_number_id` must be digits",
            ),
            (
                r#"[{"id":"m","provider":"meta","secrets":"x","send":{"access_token":"tok-s3cret","graph_version":"23"}}]"#,
                "`send.graph_version`",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","send":{"base_url":"http://u:tok-s3cret@w"}}]"#,
                "`send.base_url` must not contain credentials",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","send":{"api_key":"tok-s3cret"}}]"#,
                "`send.base_url` is required",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","send":{"base_url":"http://w","api_key":"tok\ns3cret"}}]"#,
                "`send.api_key` must be visible ASCII",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","send":{"base_url":"http://w","access_token":"tok-s3cret"}}]"#,
                "`send.access_token` is a Meta setting",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","send":{"base_url":"http://w","sesion":"tok-s3cret"}}]"#,
                "expected a JSON list",
            ),
        ];
        for (json, expected) in cases {
            let e = parse_sources(json).unwrap_err().to_string();
            assert!(e.contains(expected), "{json}: {e}");
            assert!(!e.contains("s3cret"), "secrets never appear in errors: {e}");
        }
    }

    #[test]
    fn rejects_bad_ids_duplicates_missing_secrets_and_typos() {
        let cases = [
            (
                r#"[{"id":"a/b","provider":"meta","secrets":"x"}]"#,
                "source #0",
            ),
            (
                r#"[{"id":"a","provider":"meta","secrets":"x"},{"id":"a","provider":"waha","secrets":"y"}]"#,
                "used twice",
            ),
            (
                r#"[{"id":"a","provider":"meta","secrets":" , "}]"#,
                "no secret",
            ),
            (
                r#"[{"id":"a","provider":"meta","secret":"x"}]"#,
                "expected a JSON list",
            ),
            (
                r#"[{"id":"a","provider":"telegram","secrets":"x"}]"#,
                "expected a JSON list",
            ),
        ];
        for (json, expected) in cases {
            let e = parse_sources(json).unwrap_err().to_string();
            assert!(e.contains(expected), "{json}: {e}");
            assert!(!e.contains("\"x\""), "secrets never appear in errors: {e}");
        }
    }

    #[test]
    fn reads_every_provider_with_its_verification_settings() {
        let sources = parse_sources(
            r#"[{"id":"tw","provider":"twilio","secrets":"auth-token",
                  "public_url":"https://hooks.example.com/prod/webhooks/tw"},
                {"id":"tw2","provider":"twilio","secrets":"auth-token"},
                {"id":"d3","provider":"360dialog","secrets":"tok"},
                {"id":"gs","provider":"gupshup","secrets":"tok","token_query":"key"},
                {"id":"ev","provider":"evolution","secrets":["t1","t2"],"token_header":"Authorization"}]"#,
        )
        .unwrap();
        let providers: Vec<Provider> = sources.iter().map(|s| s.provider).collect();
        assert_eq!(
            providers,
            [
                Provider::Twilio,
                Provider::Twilio,
                Provider::Dialog360,
                Provider::Gupshup,
                Provider::Evolution
            ]
        );
        assert_eq!(
            sources[0].inbound.public_url.as_deref(),
            Some("https://hooks.example.com/prod/webhooks/tw")
        );
        assert_eq!(sources[1].inbound.public_url, None);
        assert_eq!(sources[2].inbound, InboundAuth::default());
        assert_eq!(sources[3].inbound.token_query, "key");
        assert_eq!(sources[3].inbound.token_header, "X-Wagate-Token");
        assert_eq!(sources[4].inbound.token_header, "Authorization");
        assert_eq!(sources[4].secrets.len(), 2);
        assert_eq!(
            serde_json::to_value(Provider::Dialog360).unwrap(),
            "360dialog"
        );
    }

    #[test]
    fn verification_settings_are_checked_against_the_provider() {
        let cases = [
            (
                r#"[{"id":"m","provider":"meta","secrets":"x","public_url":"https://a/b"}]"#,
                "`public_url` is a Twilio setting",
            ),
            (
                r#"[{"id":"t","provider":"twilio","secrets":"x","public_url":"https://a/b?token=s3cret"}]"#,
                "`public_url` must not have a query",
            ),
            (
                r#"[{"id":"t","provider":"twilio","secrets":"x","public_url":"/webhooks/t"}]"#,
                "`public_url` must be an absolute URL",
            ),
            (
                r#"[{"id":"t","provider":"twilio","secrets":"x","public_url":"https://u:s3cret@a/b"}]"#,
                "`public_url` must not contain credentials",
            ),
            (
                r#"[{"id":"t","provider":"twilio","secrets":"x","token_header":"X-T"}]"#,
                "`token_header` is for token sources",
            ),
            (
                r#"[{"id":"w","provider":"waha","secrets":"x","token_query":"t"}]"#,
                "`token_query` is for token sources",
            ),
            (
                r#"[{"id":"g","provider":"gupshup","secrets":"x","token_header":"bad header"}]"#,
                "`token_header` must be an HTTP header name",
            ),
            (
                r#"[{"id":"g","provider":"gupshup","secrets":"x","token_query":""}]"#,
                "`token_query` must be 1 to 64 characters",
            ),
            (
                r#"[{"id":"g","provider":"gupshup","secrets":" "}]"#,
                "no secret",
            ),
            (
                r#"[{"id":"e","provider":"evolution","secrets":"x","send":{"base_url":"http://evo"}}]"#,
                "`send` is supported for meta and waha sources only",
            ),
        ];
        for (json, expected) in cases {
            let e = parse_sources(json).unwrap_err().to_string();
            assert!(e.contains(expected), "{json}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
