//! Configuration formats shared by the functions and the local process.
//!
//! Owns: the `WAGATE_SOURCES` JSON format. Must not: read the environment (callers pass text).

use serde::Deserialize;

use crate::ids::SourceId;
use crate::model::Provider;
use crate::ports::Source;
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
}

/// Parses `[{"id": "meta-main", "provider": "meta", "secrets": ["app-secret"], "verify_token":
/// "…"}, {"id": "waha-main", "provider": "waha", "secrets": "key1,key2"}]`.
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
        let secrets = spec.secrets.into_secrets();
        if secrets.is_empty() {
            return Err(SourcesError::NoSecret(spec.id));
        }
        let verify_tokens = spec
            .verify_tokens
            .map(Secrets::into_secrets)
            .unwrap_or_default();
        sources.push(Source {
            id,
            provider: spec.provider,
            secrets,
            verify_tokens,
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
                r#"[{"id":"a","provider":"twilio","secrets":"x"}]"#,
                "expected a JSON list",
            ),
        ];
        for (json, expected) in cases {
            let e = parse_sources(json).unwrap_err().to_string();
            assert!(e.contains(expected), "{json}: {e}");
            assert!(!e.contains("\"x\""), "secrets never appear in errors: {e}");
        }
    }
}
