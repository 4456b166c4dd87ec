//! Identifier newtypes. Each can only be built valid, so code that holds one never re-checks it.
//!
//! Owns: event and conversation ids (ULID-based, sortable), source ids. Must not: know about providers or storage.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

/// Why a string is not a valid prefixed ULID id ([`EventId`], [`ConversationId`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} id: expected `{prefix}` followed by a 26-character ULID")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
}

/// Defines an id that is a fixed prefix followed by a ULID: unique, and sortable by creation time
/// (ids created later sort later; within one millisecond the order is random, fine for an id).
macro_rules! prefixed_ulid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            const PREFIX: &'static str = $prefix;

            /// A fresh id, created now.
            pub fn new() -> Self {
                Self(Ulid::new())
            }

            /// The id wrapping a ULID chosen elsewhere (for instance one stored with an item).
            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            /// The ULID inside the id.
            pub fn ulid(&self) -> Ulid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", Self::PREFIX, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let invalid = InvalidId { kind: $kind, prefix: $prefix };
                let rest = s.strip_prefix(Self::PREFIX).ok_or(invalid.clone())?;
                Ulid::from_string(rest).map(Self).map_err(|_| invalid)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = Cow::<str>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": concat!("Unique, time-sortable ", $kind, " id: `", $prefix, "` + ULID.")
                })
            }
        }
    };
}

prefixed_ulid_id!(
    /// A wagate event id: `evt_` followed by a ULID.
    EventId, "evt_", "event", "^evt_[0-7][0-9A-HJKMNP-TV-Z]{25}$"
);
prefixed_ulid_id!(
    /// A conversation id: `conv_` followed by a ULID.
    ConversationId, "conv_", "conversation", "^conv_[0-7][0-9A-HJKMNP-TV-Z]{25}$"
);

/// The id of a configured source (the `{source_id}` of `POST /webhooks/{source_id}`).
///
/// 1 to 64 characters from `[A-Za-z0-9_-]`, so it is safe in URLs, keys and logs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct SourceId(String);

/// Why a string is not a valid [`SourceId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid source id: use 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")]
pub struct InvalidSourceId;

impl SourceId {
    /// Validates and wraps a source id.
    pub fn parse(s: &str) -> Result<Self, InvalidSourceId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSourceId)
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_through_their_string_form() {
        let id = EventId::new();
        let text = id.to_string();
        assert!(text.starts_with("evt_"));
        assert_eq!(text.len(), 30);
        assert_eq!(text.parse::<EventId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
    }

    #[test]
    fn event_ids_created_later_sort_later() {
        let first = EventId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = EventId::new();
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn rejects_event_ids_without_prefix_or_with_bad_ulid() {
        assert!("01JBCQ3ZX0V9K8N7M6P5Q4R301".parse::<EventId>().is_err());
        assert!("evt_nope".parse::<EventId>().is_err());
        assert!("evt_".parse::<EventId>().is_err());
        let conv = ConversationId::new();
        assert!(conv.to_string().parse::<EventId>().is_err());
        assert_eq!(conv.to_string().parse::<ConversationId>(), Ok(conv));
    }

    #[test]
    fn source_ids_accept_url_safe_names_only() {
        assert!(SourceId::parse("meta-main_1").is_ok());
        assert_eq!(SourceId::parse(""), Err(InvalidSourceId));
        assert_eq!(SourceId::parse("a/b"), Err(InvalidSourceId));
        assert_eq!(SourceId::parse(&"x".repeat(65)), Err(InvalidSourceId));
    }
}
