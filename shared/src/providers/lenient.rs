//! Forgiving field decoders for provider payloads.
//!
//! Providers send the same field as a string in one place and a number in another (Meta template
//! ids, WAHA coordinates), seconds here and milliseconds there (WAHA group events), and `null` or
//! nothing interchangeably. These decoders accept every such form and never fail: a value of an
//! unexpected shape becomes `None`, so one odd field cannot sink the rest of an item.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, or a number/bool rendered as text; anything else is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(Value::deserialize(d)?))
}

/// Like [`opt_string`], but an empty string is `None` too.
pub fn opt_nonempty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(value_to_string(Value::deserialize(d)?).filter(|s| !s.is_empty()))
}

/// A number, or a string holding one.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(value_to_f64(&Value::deserialize(d)?))
}

/// A bool, or the strings `"true"` / `"false"`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    })
}

/// An integer, or a string holding one.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?))
}

/// A Unix time as a number or numeric string, in seconds or milliseconds (see [`unix_time`]).
pub fn opt_unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(value_to_f64(&Value::deserialize(d)?).and_then(unix_time))
}

/// Text for a JSON string, number or bool.
pub fn value_to_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A finite number from a JSON number or numeric string.
pub fn value_to_f64(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    n.is_finite().then_some(n)
}

/// An integer from a JSON integer, integral float or numeric string.
pub fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Converts a Unix time to UTC. Values above 10^11 are taken as milliseconds (10^11 seconds is
/// the year 5138, so no real seconds value is that large); fractions are kept to the millisecond.
/// Zero, negative and out-of-range values are `None`.
pub fn unix_time(value: f64) -> Option<DateTime<Utc>> {
    if value.is_nan() || value <= 0.0 {
        return None;
    }
    let millis = if value > 1e11 { value } else { value * 1000.0 };
    if millis > 1e15 {
        return None;
    }
    // In range by the checks above, so the cast cannot saturate.
    #[allow(clippy::cast_possible_truncation, reason = "bounded to 1e15 above")]
    let millis = millis.round() as i64;
    Utc.timestamp_millis_opt(millis).single()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "opt_f64")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "opt_unix_time")]
        t: Option<DateTime<Utc>>,
    }

    fn t(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ids_sent_as_numbers_become_strings() {
        assert_eq!(
            t(json!({"s": 1689556908129835_i64})).s.as_deref(),
            Some("1689556908129835")
        );
        assert_eq!(t(json!({"s": "abc"})).s.as_deref(), Some("abc"));
        assert_eq!(t(json!({"s": {"x": 1}})).s, None);
        assert_eq!(t(json!({})).s, None);
    }

    #[test]
    fn coordinates_are_read_from_strings_and_numbers() {
        assert_eq!(t(json!({"f": "37.4611978"})).f, Some(37.461_197_8));
        assert_eq!(t(json!({"f": -122.2164385})).f, Some(-122.216_438_5));
        assert_eq!(t(json!({"f": "north"})).f, None);
    }

    #[test]
    fn unix_times_in_seconds_milliseconds_strings_and_floats_agree() {
        let expected = Utc.timestamp_opt(1_730_092_801, 0).single();
        assert_eq!(t(json!({"t": "1730092801"})).t, expected);
        assert_eq!(t(json!({"t": 1730092801})).t, expected);
        assert_eq!(t(json!({"t": 1730092801000_i64})).t, expected);
        assert_eq!(t(json!({"t": 1730092801.0})).t, expected);
        let with_ms = t(json!({"t": 1721374000.512})).t.unwrap();
        assert_eq!(with_ms.timestamp_millis(), 1_721_374_000_512);
    }

    #[test]
    fn nonsense_times_are_dropped_not_errors() {
        assert_eq!(t(json!({"t": "April 17, 2025"})).t, None);
        assert_eq!(t(json!({"t": 0})).t, None);
        assert_eq!(t(json!({"t": -5})).t, None);
        assert_eq!(t(json!({"t": 1e300})).t, None);
        assert_eq!(t(json!({"t": null})).t, None);
    }
}
