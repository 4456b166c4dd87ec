//! wagate's model crate: the event contract, provider parsers, signatures, pipeline logic and
//! the ports (traits) the Lambda functions wire adapters into.
//!
//! Invariant: this crate does no I/O and knows no AWS SDK or Lambda runtime. Everything here is a
//! pure function over bytes and values, or a trait that an adapter implements elsewhere.

pub mod admin;
pub mod clock;
pub mod config;
pub mod console;
pub mod delivery;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod ports;
pub mod providers;
pub mod rfc3339;
pub mod send;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;

/// `T` read from JSON bytes: checked as UTF-8 once, then read as text, so the strings inside are
/// not checked again one by one, which `serde_json::from_slice` does (a call per string); bytes
/// that are not UTF-8 are read by `from_slice`, so the result is the same either way.
///
/// # Errors
/// As `serde_json::from_slice`.
pub fn from_json_bytes<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// A JSON decoding error without the input it quotes: serde_json messages can repeat values from
/// the document (`invalid type: string "15550001111"`), which may be phone numbers, message text
/// or secrets. Only the category and position are kept, safe to log and to return.
pub fn json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// What `from_json_bytes` reads is what `from_slice` reads, value or error, for text and
    /// for bytes that are not UTF-8 (inside a string read, inside one skipped, outside strings).
    #[test]
    fn json_read_from_bytes_reads_as_from_slice_does() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Doc {
            a: String,
            #[serde(default)]
            n: Option<f64>,
        }
        let cases: Vec<Vec<u8>> = vec![
            br#"{"a":"x","n":1.5}"#.to_vec(),
            br#"{"a":"\u00e9\n\ud83d\ude00","skipped":{"deep":[1,"two"]}}"#.to_vec(),
            "{\"a\":\"é ☃ 😀\"}".as_bytes().to_vec(),
            br#"{"a":"\ud800"}"#.to_vec(),
            br#"{"a":1}"#.to_vec(),
            br#"{"a":"x"} trailing"#.to_vec(),
            b"{\"a\":\"bad \xff byte\"}".to_vec(),
            b"{\"a\":\"x\",\"skipped\":\"bad \xc3\x28\"}".to_vec(),
            b"{\"a\":\"x\"}\xff".to_vec(),
            b"".to_vec(),
        ];
        for bytes in &cases {
            let ours = crate::from_json_bytes::<Doc>(bytes).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Doc>(bytes).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(bytes));
            let ours = crate::from_json_bytes::<BTreeMap<String, serde_json::Value>>(bytes);
            let theirs = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(bytes);
            assert_eq!(
                ours.map_err(|e| e.to_string()),
                theirs.map_err(|e| e.to_string())
            );
        }
    }
}
