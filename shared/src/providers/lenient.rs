//! Forgiving field decoders for provider payloads.
//!
//! Providers send the same field as a string in one place and a number in another (Meta template
//! ids, WAHA coordinates), seconds here and milliseconds there (WAHA group events), and `null` or
//! nothing interchangeably. These decoders accept every such form and never fail: a value of an
//! unexpected shape becomes `None`, so one odd field cannot sink the rest of an item.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, or a number/bool rendered as text; anything else is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Scalar::deserialize(d)?.into_string())
}

/// Like [`opt_string`], borrowed from the input when the string has no escapes (a number or
/// bool is rendered as text): for fields read and dropped, not kept.
pub fn opt_str<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::borrow::Cow<'de, str>>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::Str(s) => Some(s),
        other => other.into_string().map(std::borrow::Cow::Owned),
    })
}

/// Like [`opt_string`], but an empty string is `None` too.
pub fn opt_nonempty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Scalar::deserialize(d)?
        .into_string()
        .filter(|s| !s.is_empty()))
}

/// A number, or a string holding one.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_f64())
}

/// A bool, or the strings `"true"` / `"false"`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_bool())
}

/// An integer, or a string holding one.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Scalar::deserialize(d)? {
        Scalar::I64(n) => Some(n),
        Scalar::U64(n) => i64::try_from(n).ok(),
        Scalar::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    })
}

/// A Unix time as a number or numeric string, in seconds or milliseconds (see [`unix_time`]).
pub fn opt_unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_f64().and_then(unix_time))
}

/// A nested object read entry by entry by [`opt_object`]: unknown keys skipped, a repeated key
/// read again (the last one wins), every value read with the `next_*` readers below. So reading
/// one never fails on well-formed JSON, and an odd nested object costs only itself, where a
/// derived `Deserialize` fails the whole item on a wrong type or a repeated key.
pub trait Entries<'de>: Default {
    /// Reads the value of `key` from `map`; a key that is not one of its fields is skipped
    /// with [`skip`].
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// An object read as `T` ([`Entries`]); anything else (a string, a number, an array, `null`) is
/// `None`.
pub fn opt_object<'de, D: Deserializer<'de>, T: Entries<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Object::<T>::deserialize(d)?.0)
}

/// The value of the current entry as [`opt_string`] reads it.
pub fn next_string<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(map.next_value::<Scalar<'de>>()?.into_string())
}

/// The value of the current entry as [`opt_bool`] reads it.
pub fn next_bool<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<bool>, A::Error> {
    Ok(map.next_value::<Scalar<'de>>()?.to_bool())
}

/// The value of the current entry as [`opt_unix_time`] reads it.
pub fn next_unix_time<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<DateTime<Utc>>, A::Error> {
    Ok(map
        .next_value::<Scalar<'de>>()?
        .to_f64()
        .and_then(unix_time))
}

/// The value of the current entry as [`opt_object`] reads it.
pub fn next_object<'de, A: MapAccess<'de>, T: Entries<'de>>(
    map: &mut A,
) -> Result<Option<T>, A::Error> {
    Ok(map.next_value::<Object<T>>()?.0)
}

/// Skips the value of the current entry.
pub fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

struct Object<T>(Option<T>);

impl<'de, T: Entries<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(std::marker::PhantomData))
    }
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Entries<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = T::default();
        while let Some(key) = map.next_key::<Scalar<'de>>()? {
            match key {
                Scalar::Str(key) => out.entry(&key, &mut map)?,
                // JSON keys are strings; another deserializer's odd key is skipped.
                _ => skip(&mut map)?,
            }
        }
        Ok(Object(Some(out)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Object(None))
    }
}

/// One JSON value as the decoders above see it: a string (borrowed from the input when it has
/// no escapes), a number, a bool, or anything else (skipped without building it). Reading a
/// field through this instead of a [`Value`] gives the same results with fewer allocations.
enum Scalar<'de> {
    Str(std::borrow::Cow<'de, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Other,
}

impl Scalar<'_> {
    /// As [`value_to_string`].
    fn into_string(self) -> Option<String> {
        match self {
            Self::Str(s) => Some(s.into_owned()),
            Self::I64(n) => Some(n.to_string()),
            Self::U64(n) => Some(n.to_string()),
            Self::F64(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
            Self::Bool(b) => Some(b.to_string()),
            Self::Other => None,
        }
    }

    /// A bool, or the strings `"true"` / `"false"`.
    fn to_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Str(s) if s == "true" => Some(true),
            Self::Str(s) if s == "false" => Some(false),
            _ => None,
        }
    }

    /// As [`value_to_f64`].
    #[allow(clippy::cast_precision_loss)] // as serde_json's `Number::as_f64`
    fn to_f64(&self) -> Option<f64> {
        let n = match self {
            Self::I64(n) => *n as f64,
            Self::U64(n) => *n as f64,
            Self::F64(f) => *f,
            Self::Str(s) => s.trim().parse::<f64>().ok()?,
            Self::Bool(_) | Self::Other => return None,
        };
        n.is_finite().then_some(n)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar::Other)
    }
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

/// An integer from a JSON integer or numeric string: what [`opt_i64`] reads, kept as the
/// reference its test compares with.
#[cfg(test)]
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
    use proptest::prelude::*;
    use serde_json::json;

    /// Every decoder, read from JSON text (borrowed strings, escapes, numbers of every kind,
    /// nested values skipped) and from a `Value`, gives what the `Value` functions give.
    fn agrees_with_the_value_functions(v: &Value) {
        #[derive(Deserialize)]
        struct All {
            #[serde(deserialize_with = "opt_string")]
            s: Option<String>,
            #[serde(deserialize_with = "opt_nonempty_string")]
            n: Option<String>,
            #[serde(deserialize_with = "opt_f64")]
            f: Option<f64>,
            #[serde(deserialize_with = "opt_i64")]
            i: Option<i64>,
            #[serde(deserialize_with = "opt_bool")]
            b: Option<bool>,
            #[serde(deserialize_with = "opt_unix_time")]
            t: Option<DateTime<Utc>>,
        }
        let doc = json!({"s": v, "n": v, "f": v, "i": v, "b": v, "t": v});
        let from_text: All = serde_json::from_str(&doc.to_string()).unwrap();
        let from_value: All = serde_json::from_value(doc).unwrap();
        let bool_of = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => None,
        };
        for all in [from_text, from_value] {
            assert_eq!(all.s, value_to_string(v.clone()), "{v}");
            assert_eq!(all.n, value_to_string(v.clone()).filter(|s| !s.is_empty()));
            assert_eq!(all.f, value_to_f64(v));
            assert_eq!(all.i, value_to_i64(v));
            assert_eq!(all.b, bool_of);
            assert_eq!(all.t, value_to_f64(v).and_then(unix_time));
        }
        // The borrowed reader, from text only (a `Value` has no input to borrow from).
        #[derive(Deserialize)]
        struct Borrowed<'a> {
            #[serde(borrow, deserialize_with = "opt_str")]
            s: Option<std::borrow::Cow<'a, str>>,
        }
        let text = json!({ "s": v }).to_string();
        let borrowed: Borrowed<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            borrowed.s.map(|s| s.into_owned()),
            value_to_string(v.clone()),
            "{v}"
        );
    }

    #[test]
    fn field_decoders_agree_with_the_value_functions_on_edge_values() {
        for v in [
            json!(null),
            json!(""),
            json!(" 42 "),
            json!("true"),
            json!("false"),
            json!("caf\u{e9} \"q\""),
            json!("1730092801"),
            json!("1730092801000"),
            json!(1_730_092_801),
            json!(-5),
            json!(u64::MAX),
            json!(1.5e300),
            json!(0.1),
            json!(true),
            json!([1, {"a": [2]}]),
            json!({"a": {"b": null}}),
        ] {
            agrees_with_the_value_functions(&v);
        }
        // Integers past u64 arrive as floats, both ways.
        let big: Value = serde_json::from_str("123456789012345678901234567890").unwrap();
        agrees_with_the_value_functions(&big);
    }

    proptest! {
        #[test]
        fn field_decoders_agree_with_the_value_functions(
            v in prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                any::<u64>().prop_map(|n| json!(n)),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
                any::<bool>().prop_map(Value::Bool),
                "\\PC{0,16}".prop_map(Value::String),
                "[0-9 .e+-]{0,14}".prop_map(Value::String),
            ]
        ) {
            agrees_with_the_value_functions(&v);
        }
    }

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
