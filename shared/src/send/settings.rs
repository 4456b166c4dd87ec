//! Per-source send settings: which provider account a source sends through and how to reach it.
//!
//! Owns: the typed settings and the checks that make them usable (URL shape, version and id
//! formats, header-safe secrets). Must not: parse the `WAGATE_SOURCES` document (`config` does)
//! or make calls.

use crate::signature::Secret;

/// The Graph API host sends go to when the settings do not name another.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
/// The Graph API version sends use when the settings do not name another.
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";
/// The WAHA session sends use when the settings do not name another.
pub const DEFAULT_WAHA_SESSION: &str = "default";

/// How a source sends messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendSettings {
    /// Through Meta's Cloud API (Graph API).
    Meta(MetaSend),
    /// Through a WAHA server.
    Waha(WahaSend),
}

/// Meta Cloud API settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSend {
    /// System-user or business access token (`Authorization: Bearer …`).
    pub access_token: Secret,
    /// The phone number id sends come from unless a send names another (`from`).
    pub phone_number_id: Option<String>,
    /// Base URL of the Graph API, without a trailing slash (default [`DEFAULT_GRAPH_URL`]).
    pub graph_url: String,
    /// Graph API version, `vNN.N` (default [`DEFAULT_GRAPH_VERSION`]).
    pub graph_version: String,
}

/// WAHA settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WahaSend {
    /// Base URL of the WAHA server, without a trailing slash (`http://waha:3000`).
    pub base_url: String,
    /// `X-Api-Key` value, when the server requires one.
    pub api_key: Option<Secret>,
    /// The session sends use unless a send names another (`from`).
    pub session: String,
    /// The server runs inside the operator's network: calls may go to private addresses (10/8,
    /// 172.16/12, 192.168/16, 100.64/10, fc00::/7, loopback) and over plain `http`. Link-local
    /// addresses (cloud metadata) stay refused.
    pub allow_private_network: bool,
}

/// Why a setting is unusable. Messages name the setting, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {reason}")]
pub struct InvalidSetting {
    /// The setting, e.g. `send.graph_url`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl InvalidSetting {
    fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// A base URL: http(s), a host, no credentials, query or fragment; the trailing slash dropped.
pub fn base_url(field: &'static str, value: &str) -> Result<String, InvalidSetting> {
    let parsed =
        url::Url::parse(value).map_err(|_| InvalidSetting::new(field, "is not an absolute URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InvalidSetting::new(field, "must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(InvalidSetting::new(field, "has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(InvalidSetting::new(
            field,
            "must not contain credentials (use the key settings)",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(InvalidSetting::new(
            field,
            "must not have a query or fragment",
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A Graph API version: `v` then digits, a dot, digits (`v23.0`).
pub fn graph_version(value: &str) -> Result<String, InvalidSetting> {
    let ok = value.strip_prefix('v').is_some_and(|rest| {
        rest.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.len() <= 4
                && minor.len() <= 4
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
    });
    if ok {
        Ok(value.to_owned())
    } else {
        Err(InvalidSetting::new(
            "send.graph_version",
            "must look like v23.0",
        ))
    }
}

/// Whether `value` is a Meta phone number id: 1 to 32 digits (it becomes a URL path segment).
pub fn is_phone_number_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `value` is a WAHA session name: 1 to 64 characters from `[A-Za-z0-9_-]`.
pub fn is_session_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A secret that goes into an HTTP header: visible ASCII only, not empty.
pub fn header_secret(field: &'static str, value: &str) -> Result<Secret, InvalidSetting> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidSetting::new(field, "is empty"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InvalidSetting::new(
            field,
            "must be visible ASCII characters (it is sent in a header)",
        ));
    }
    Ok(Secret::from(value))
}

impl SendSettings {
    /// The sender a send uses when it names none: the phone number id or the session.
    pub fn default_sender(&self) -> Option<&str> {
        match self {
            Self::Meta(m) => m.phone_number_id.as_deref(),
            Self::Waha(w) => Some(&w.session),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_their_trailing_slash_and_keep_a_path() {
        assert_eq!(
            base_url("f", "https://graph.facebook.com/").unwrap(),
            "https://graph.facebook.com"
        );
        assert_eq!(
            base_url("f", "http://waha:3000/proxy/waha/").unwrap(),
            "http://waha:3000/proxy/waha"
        );
    }

    #[test]
    fn base_urls_with_credentials_queries_or_other_schemes_are_refused() {
        for bad in [
            "ftp://x",
            "graph.facebook.com",
            "https://user:pw@x",
            "https://x/?token=1",
            "https://x/#f",
            "",
        ] {
            let e = base_url("send.base_url", bad).unwrap_err();
            assert_eq!(e.field, "send.base_url");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn graph_versions_and_ids_are_checked() {
        assert_eq!(graph_version("v23.0").unwrap(), "v23.0");
        for bad in ["23.0", "v23", "v.0", "vx.1", "v1.2.3", "v12345.0"] {
            assert!(graph_version(bad).is_err(), "{bad}");
        }
        assert!(is_phone_number_id("106540352242922"));
        assert!(!is_phone_number_id("10654/../x"));
        assert!(!is_phone_number_id(""));
        assert!(is_session_name("default"));
        assert!(!is_session_name("a b"));
    }

    #[test]
    fn header_secrets_refuse_line_breaks_and_are_redacted() {
        assert!(header_secret("send.access_token", "abc\r\nX-Evil: 1").is_err());
        let s = header_secret("send.access_token", " EAAGtoken ").unwrap();
        assert_eq!(s.expose(), b"EAAGtoken");
        assert!(!format!("{s:?}").contains("EAAG"));
    }
}
