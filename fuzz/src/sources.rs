//! The `sources_config` target: the input as `WAGATE_SOURCES` text through
//! `config::parse_sources`.

use serde_json::{Value, json};
use shared::config::{SourcesError, parse_sources};
use shared::ids::{InvalidSourceId, SourceId};
use shared::ports::{InboundAuth, Source};
use shared::signature::Secret;

/// - no panic;
/// - what is accepted is a list of as many sources as the JSON list has elements, with valid,
///   distinct ids and at least one secret each; secrets and verify tokens are trimmed and not
///   empty;
/// - written back in the documented format (secrets as a list, as one comma-joined string when
///   no secret has a comma, `verify_token` or `verify_tokens`), it parses to the same sources;
/// - an error message is fixed text, numbers and a valid source id: never a secret or any other
///   text from the configuration.
pub fn check_sources(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match parse_sources(&text) {
        Ok(sources) => check_accepted(&text, &sources),
        Err(e) => check_error(&e),
    }
}

fn secret_text(secret: &Secret) -> &str {
    std::str::from_utf8(secret.expose()).expect("secrets come from JSON strings")
}

fn check_accepted(text: &str, sources: &[Source]) {
    let list: Vec<Value> = serde_json::from_str(text).expect("accepted text is a JSON list");
    assert_eq!(list.len(), sources.len());
    let mut ids = std::collections::HashSet::new();
    for source in sources {
        assert_eq!(SourceId::parse(source.id.as_str()).as_ref(), Ok(&source.id));
        assert!(ids.insert(source.id.as_str()), "duplicate id {}", source.id);
        assert!(!source.secrets.is_empty(), "{} has no secret", source.id);
        for secret in source.secrets.iter().chain(&source.verify_tokens) {
            let s = secret_text(secret);
            assert!(!s.is_empty() && s.trim() == s, "untrimmed secret");
        }
    }

    let written = |joined: bool, token_key: &str| -> String {
        let list: Vec<Value> = sources
            .iter()
            .map(|s| {
                let secrets: Vec<&str> = s.secrets.iter().map(secret_text).collect();
                let mut v = json!({
                    "id": s.id.as_str(),
                    "provider": s.provider,
                    "secrets": if joined { json!(secrets.join(",")) } else { json!(secrets) },
                });
                if !s.verify_tokens.is_empty() {
                    let tokens: Vec<&str> = s.verify_tokens.iter().map(secret_text).collect();
                    v[token_key] = json!(tokens);
                }
                let defaults = InboundAuth::default();
                if let Some(url) = &s.inbound.public_url {
                    v["public_url"] = json!(url);
                }
                if s.inbound.token_header != defaults.token_header {
                    v["token_header"] = json!(s.inbound.token_header);
                }
                if s.inbound.token_query != defaults.token_query {
                    v["token_query"] = json!(s.inbound.token_query);
                }
                v
            })
            .collect();
        serde_json::to_string(&list).expect("serializes")
    };
    let joinable = sources
        .iter()
        .all(|s| s.secrets.iter().all(|x| !secret_text(x).contains(',')));
    for (joined, key) in [
        (false, "verify_tokens"),
        (false, "verify_token"),
        (true, "verify_tokens"),
    ] {
        if joined && !joinable {
            continue;
        }
        let again = written(joined, key);
        // Written back without `send` settings, whose secrets are not re-serialised here.
        let without_send: Vec<Source> = sources
            .iter()
            .cloned()
            .map(|mut s| {
                s.send = None;
                s
            })
            .collect();
        match parse_sources(&again) {
            Ok(back) => assert_eq!(back, without_send, "{again}"),
            Err(e) => panic!("written-back sources refused: {e}\n{again}"),
        }
    }
}

fn check_error(e: &SourcesError) {
    let message = e.to_string();
    match e {
        SourcesError::Format(_) => {
            let rest = message
                .strip_prefix("expected a JSON list of sources: ")
                .unwrap_or_else(|| panic!("{message}"));
            let words: Vec<&str> = rest.split(' ').collect();
            assert!(
                matches!(
                    words.as_slice(),
                    [
                        "Io" | "Syntax" | "Data" | "Eof",
                        "error",
                        "at",
                        "line",
                        line,
                        "column",
                        column
                    ] if line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok()
                ),
                "{message}"
            );
        }
        SourcesError::BadId { index, reason } => {
            assert_eq!(*reason, InvalidSourceId.to_string());
            assert_eq!(message, format!("source #{index}: {reason}"));
        }
        SourcesError::Send { id, reason } => {
            assert!(SourceId::parse(id).is_ok(), "{message}");
            assert!(
                reason.field.starts_with("send")
                    || ["public_url", "token_header", "token_query"].contains(&reason.field),
                "{message}"
            );
            assert_eq!(message, format!("source `{id}`: {reason}"));
        }
        SourcesError::NoSecret(id) | SourcesError::Duplicate(id) => {
            assert!(SourceId::parse(id).is_ok(), "{message}");
            let fixed = message.replacen(&format!("`{id}`"), "`ID`", 1);
            assert!(
                fixed == "source `ID` has no secret: every webhook to it would be rejected"
                    || fixed == "source id `ID` is used twice",
                "{message}"
            );
        }
    }
}
