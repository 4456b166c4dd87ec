//! Reading function configuration from the environment: one helper for every function so the
//! error messages (naming the variable, never its value) are the same everywhere.

use std::time::Duration;

use shared::delivery::request::BodyForm;
use shared::media::MediaConfig;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Typed access to variables through a lookup function (the process environment in `main`, a
/// map in tests, so tests never mutate the process environment).
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> std::fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A required, non-empty variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// A whole number at least `min`, or `default` when unset or empty.
    pub fn number(&self, name: &'static str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let value = match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            None => default,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("`{v}` is not a whole number"),
            })?,
        };
        if value < min {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("must be at least {min}"),
            });
        }
        Ok(value)
    }

    /// A duration given in `unit_secs` units (e.g. hours: 3600).
    pub fn duration(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        unit_secs: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            self.number(name, default, min)?.saturating_mul(unit_secs),
        ))
    }
}

// The conversation store's settings, defined with the store; read here from the environment.
pub use shared::pipeline::track::state::ConversationSettings;

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// [`ConversationSettings`] from their variables.
    pub fn conversations(&self) -> Result<ConversationSettings, ConfigError> {
        Ok(ConversationSettings {
            idle: self.duration("CONVERSATION_IDLE_HOURS", 24, 1, 3600)?,
            message_ttl: self.duration("MESSAGE_TTL_DAYS", 30, 1, 24 * 3600)?,
            recent_messages: usize::try_from(self.number("RECENT_MESSAGES", 5, 1)?).unwrap_or(5),
        })
    }

    /// `SWEEP_PAGE_SIZE` (default 100): conversations ended per index page.
    pub fn sweep_page(&self) -> Result<usize, ConfigError> {
        Ok(usize::try_from(self.number("SWEEP_PAGE_SIZE", 100, 1)?).unwrap_or(100))
    }

    /// `ENDPOINT_CACHE_SECONDS` (default 5, 0 to 300): how long a function instance reuses the
    /// endpoints it read ([`shared::ports::cache::ReadCache`]).
    pub fn endpoint_cache(&self) -> Result<Duration, ConfigError> {
        let d = self.duration("ENDPOINT_CACHE_SECONDS", 5, 0, 1)?;
        if d > Duration::from_secs(300) {
            return Err(ConfigError::Invalid {
                name: "ENDPOINT_CACHE_SECONDS",
                reason: "must be at most 300".into(),
            });
        }
        Ok(d)
    }

    /// `DELIVERY_BODY_FORM` (`text`, the default, or `json`): how fan-out and the buffer write
    /// a delivery task's body ([`shared::delivery::request::BodyForm`]). `json` only once every
    /// deliver reading the queue reads it.
    pub fn body_form(&self) -> Result<BodyForm, ConfigError> {
        match (self.0)("DELIVERY_BODY_FORM") {
            None => Ok(BodyForm::default()),
            Some(name) => BodyForm::parse(name.trim()).ok_or(ConfigError::Invalid {
                name: "DELIVERY_BODY_FORM",
                reason: "must be text or json".into(),
            }),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The media stage's settings (the media function; the admin function's lookups use the
    /// URL lifetime): `MEDIA_WAIT_SECONDS` (30, 0–600), `MEDIA_URL_TTL_SECONDS` (86400,
    /// 60–604800), `MEDIA_TTL_DAYS` (30), `MEDIA_DOWNLOAD_TIMEOUT_SECONDS` (60, 5–600),
    /// `MEDIA_MAX_BYTES`, `MEDIA_ALLOWED_TYPES`.
    pub fn media(&self) -> Result<MediaConfig, ConfigError> {
        let defaults = MediaConfig::default();
        let wait = self.number("MEDIA_WAIT_SECONDS", 30, 0)?;
        if wait > 600 {
            return Err(ConfigError::Invalid {
                name: "MEDIA_WAIT_SECONDS",
                reason: "must be at most 600".into(),
            });
        }
        let url_ttl = self.number("MEDIA_URL_TTL_SECONDS", 86_400, 60)?;
        if url_ttl > 7 * 86_400 {
            return Err(ConfigError::Invalid {
                name: "MEDIA_URL_TTL_SECONDS",
                reason: "must be at most 604800 (seven days, S3's limit for presigned URLs)".into(),
            });
        }
        let download = self.number("MEDIA_DOWNLOAD_TIMEOUT_SECONDS", 60, 5)?;
        if download > 600 {
            return Err(ConfigError::Invalid {
                name: "MEDIA_DOWNLOAD_TIMEOUT_SECONDS",
                reason: "must be at most 600".into(),
            });
        }
        let max_bytes = match (self.0)("MEDIA_MAX_BYTES").filter(|v| !v.trim().is_empty()) {
            Some(_) => Some(self.number("MEDIA_MAX_BYTES", 0, 1)?),
            None => None,
        };
        let allowed_types = match (self.0)("MEDIA_ALLOWED_TYPES").filter(|v| !v.trim().is_empty()) {
            Some(list) => {
                let types: Vec<String> = list
                    .split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect();
                if types.iter().any(|t| !valid_type_pattern(t)) {
                    return Err(ConfigError::Invalid {
                        name: "MEDIA_ALLOWED_TYPES",
                        reason:
                            "give comma-separated MIME types (image/jpeg) or families (image/*)"
                                .into(),
                    });
                }
                types
            }
            None => defaults.allowed_types,
        };
        Ok(MediaConfig {
            wait: Duration::from_secs(wait),
            url_ttl: Duration::from_secs(url_ttl),
            ttl: self.duration("MEDIA_TTL_DAYS", 30, 1, 24 * 3600)?,
            download_timeout: Duration::from_secs(download),
            max_bytes,
            allowed_types,
            ..defaults
        })
    }
}

fn valid_type_pattern(t: &str) -> bool {
    let Some((major, minor)) = t.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    token(major) && (minor == "*" || token(minor))
}

/// A lookup over fixed pairs (tests and tools), for [`Env`] and the functions' `from_lookup`.
pub fn lookup_in(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_reads_the_same_conversation_settings_and_cache_bounds() {
        let defaults = Env(lookup_in(&[])).conversations().unwrap();
        assert_eq!(
            defaults,
            ConversationSettings {
                idle: Duration::from_secs(24 * 3600),
                message_ttl: Duration::from_secs(30 * 24 * 3600),
                recent_messages: 5,
            }
        );
        let given = Env(lookup_in(&[
            ("CONVERSATION_IDLE_HOURS", "2"),
            ("MESSAGE_TTL_DAYS", "7"),
            ("RECENT_MESSAGES", "9"),
        ]))
        .conversations()
        .unwrap();
        assert_eq!(given.idle, Duration::from_secs(2 * 3600));
        assert_eq!(given.message_ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(given.recent_messages, 9);
        let too_long = Env(lookup_in(&[("ENDPOINT_CACHE_SECONDS", "301")])).endpoint_cache();
        assert!(too_long.is_err());
        let off = Env(lookup_in(&[("ENDPOINT_CACHE_SECONDS", "0")])).endpoint_cache();
        assert_eq!(off.unwrap(), Duration::ZERO);
    }

    #[test]
    fn the_body_form_is_text_unless_json_is_asked_for() {
        let form = |pairs: &[(&str, &str)]| Env(lookup_in(pairs)).body_form();
        assert_eq!(form(&[]).unwrap(), BodyForm::Text);
        let json = form(&[("DELIVERY_BODY_FORM", "json")]);
        assert_eq!(json.unwrap(), BodyForm::Json);
        let text = form(&[("DELIVERY_BODY_FORM", "text")]);
        assert_eq!(text.unwrap(), BodyForm::Text);
        for bad in ["", "JSON", "raw"] {
            let e = form(&[("DELIVERY_BODY_FORM", bad)]).unwrap_err();
            assert!(matches!(
                e,
                ConfigError::Invalid {
                    name: "DELIVERY_BODY_FORM",
                    ..
                }
            ));
        }
    }
}
