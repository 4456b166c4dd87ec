//! Baileys values as Evolution API serializes them, read leniently: protobuf `Long`s arrive as
//! numbers, numeric strings or `{low, high, unsigned}` objects; `bytes` as base64 text, arrays or
//! `{"0": 12, "1": 34, …}` objects; enums as names or numbers; times in seconds, milliseconds
//! or ISO text. Nothing here fails: a value of an unexpected shape is `None`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::providers::lenient::{unix_time, value_to_f64, value_to_string};

/// An integer from a number, a numeric string or a protobuf `Long` object.
pub(super) fn long(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // Integral and in range, so the cast is exact.
            #[allow(
                clippy::cast_possible_truncation,
                reason = "checked integral and in range"
            )]
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => {
            let low = o.get("low")?.as_i64()?;
            let high = o.get("high").and_then(Value::as_i64).unwrap_or(0);
            // `low` is the lower 32 bits, signed or not depending on the serializer.
            let low = u32::try_from(low & 0xFFFF_FFFF).ok()?;
            let high = i32::try_from(high).ok()?;
            Some((i64::from(high) << 32) | i64::from(low))
        }
        _ => None,
    }
}

/// A time from a Unix number (seconds or milliseconds, also as a `Long`) or ISO 8601 text.
pub(super) fn time(v: &Value) -> Option<DateTime<Utc>> {
    if let Value::String(s) = v
        && let Ok(t) = DateTime::parse_from_rfc3339(s.trim())
    {
        return Some(t.with_timezone(&Utc));
    }
    #[allow(clippy::cast_precision_loss, reason = "Unix times fit an f64 exactly")]
    let n = value_to_f64(v).or_else(|| long(v).map(|n| n as f64))?;
    unix_time(n)
}

/// The string at `key` of an object, empty strings dropped.
pub(super) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .cloned()
        .and_then(value_to_string)
        .filter(|s| !s.is_empty())
}

/// A `bytes` field as base64 text: kept when it is text, encoded when it is a byte array or an
/// index-keyed object.
pub(super) fn bytes_base64(v: &Value) -> Option<String> {
    let byte = |b: &Value| b.as_u64().and_then(|n| u8::try_from(n).ok());
    let bytes: Vec<u8> = match v {
        Value::String(s) if !s.is_empty() => return Some(s.clone()),
        Value::Array(items) => items.iter().map(byte).collect::<Option<_>>()?,
        Value::Object(o) if !o.is_empty() => {
            let mut indexed: Vec<(usize, u8)> = o
                .iter()
                .map(|(k, b)| Some((k.parse().ok()?, byte(b)?)))
                .collect::<Option<_>>()?;
            indexed.sort_unstable_by_key(|(i, _)| *i);
            indexed.into_iter().map(|(_, b)| b).collect()
        }
        _ => return None,
    };
    (!bytes.is_empty()).then(|| STANDARD.encode(bytes))
}

/// How many bytes a base64 text decodes to (padding and whitespace discounted).
pub(super) fn base64_decoded_len(s: &str) -> u64 {
    let symbols = s
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
        .count() as u64;
    symbols * 3 / 4
}

/// A protobuf enum sent as its name or its number, mapped to the name by `names`
/// (`(number, name)` pairs); an unknown number is kept as its digits.
pub(super) fn enum_name(v: &Value, names: &[(i64, &str)]) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        other => {
            let n = long(other)?;
            Some(
                names
                    .iter()
                    .find(|(num, _)| *num == n)
                    .map_or_else(|| n.to_string(), |(_, name)| (*name).to_owned()),
            )
        }
    }
}

/// Serde adapter: any JSON value, as a time (see [`time`]).
pub(super) fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(time(&Value::deserialize(d)?))
}

/// Serde adapter: a nested object of type `T`, or `None` when it is absent or of another shape.
pub(super) fn opt_lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn longs_are_read_from_numbers_strings_and_objects() {
        assert_eq!(long(&json!(1730092801)), Some(1_730_092_801));
        assert_eq!(long(&json!("88452")), Some(88_452));
        assert_eq!(
            long(&json!({"low": 1048576, "high": 0, "unsigned": true})),
            Some(1_048_576)
        );
        assert_eq!(long(&json!({"low": -1, "high": 0})), Some(4_294_967_295));
        assert_eq!(long(&json!({"low": 0, "high": 1})), Some(4_294_967_296));
        assert_eq!(long(&json!({"high": 1})), None);
        assert_eq!(long(&json!(1.5)), None);
        assert_eq!(long(&json!([1])), None);
    }

    #[test]
    fn times_come_from_seconds_milliseconds_longs_and_iso_text() {
        let t = time(&json!(1730092801)).unwrap();
        assert_eq!(time(&json!("1730092801000")), Some(t));
        assert_eq!(time(&json!({"low": 1730092801, "high": 0})), Some(t));
        assert_eq!(time(&json!("2024-10-28T05:20:01.000Z")), Some(t));
        assert_eq!(time(&json!("yesterday")), None);
    }

    #[test]
    fn bytes_become_base64_whatever_their_form() {
        assert_eq!(bytes_base64(&json!("q83v")).as_deref(), Some("q83v"));
        assert_eq!(
            bytes_base64(&json!([171, 205, 239])).as_deref(),
            Some("q83v")
        );
        assert_eq!(
            bytes_base64(&json!({"1": 205, "0": 171, "2": 239})).as_deref(),
            Some("q83v")
        );
        assert_eq!(bytes_base64(&json!({"0": 300})), None);
        assert_eq!(bytes_base64(&json!({"x": 1})), None);
        assert_eq!(bytes_base64(&json!({})), None);
    }

    #[test]
    fn base64_lengths_discount_padding() {
        assert_eq!(base64_decoded_len("q83v"), 3);
        assert_eq!(base64_decoded_len("q83vAA=="), 4);
        assert_eq!(base64_decoded_len(""), 0);
    }

    #[test]
    fn enums_are_named_whether_sent_as_names_or_numbers() {
        let names = [(0, "REVOKE"), (14, "MESSAGE_EDIT")];
        assert_eq!(
            enum_name(&json!(14), &names).as_deref(),
            Some("MESSAGE_EDIT")
        );
        assert_eq!(
            enum_name(&json!("REVOKE"), &names).as_deref(),
            Some("REVOKE")
        );
        assert_eq!(enum_name(&json!(99), &names).as_deref(), Some("99"));
        assert_eq!(enum_name(&json!(null), &names), None);
    }
}
