//! Documents' bodies as the SQLite backend stores them: short ones as JSON text, longer ones
//! packed with LZ4 as a blob.
//!
//! Every page a commit writes goes to the WAL, and the documents' rows were about half of those
//! pages (BENCHMARKS.md, what SQLite's commits write): delivery records carry the signed body
//! they deliver, outbox records the events a step publishes, conversations their whole state,
//! all JSON with much repeated text. Packed, such a body takes a half to a third of its pages.
//! Packing and unpacking happen on the callers' threads, not on the database thread.
//!
//! The column's storage class tells the two apart, so rows written before packing existed (text)
//! read as they did, and nothing is migrated. A packed body is a blob: one format byte
//! ([`LZ4`]), the length of the JSON as four bytes little-endian, then the LZ4 block. A body
//! is packed only when that saves at least an eighth of it. A release before this one reads a
//! packed row as a wrong column type (corrupt), so a data directory does not go back to it.

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use shared::ports::BackendError;

/// Bodies shorter than this stay text: a row that fits in a page gains little, and the
/// small documents (claims, keys, markers) are mostly unique ids that do not pack.
const PACK_FROM: usize = 512;

/// The format byte of an LZ4-packed body.
const LZ4: u8 = 1;

/// The format byte and the length before the LZ4 block.
const HEADER: usize = 5;

/// The longest body a packed row may claim to hold. The store's documents are far below it
/// (a DynamoDB item is at most 400 KB); a larger claim is a damaged row, refused before
/// anything is allocated for it.
const MAX_UNPACKED: usize = 16 * 1024 * 1024;

/// A body as it goes into or comes out of the `body` column.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// JSON text, as every row was before packing.
    Text(String),
    /// [`LZ4`], the JSON's length and the LZ4 block.
    Packed(Vec<u8>),
}

impl Stored {
    /// `json` as it should be stored: packed if it is long and packing saves an eighth.
    pub(super) fn pack(json: String) -> Self {
        let Ok(len) = u32::try_from(json.len()) else {
            return Self::Text(json);
        };
        if json.len() < PACK_FROM {
            return Self::Text(json);
        }
        let mut out = vec![0; HEADER + lz4_flex::block::get_maximum_output_size(json.len())];
        out[0] = LZ4;
        out[1..HEADER].copy_from_slice(&len.to_le_bytes());
        let Ok(n) = lz4_flex::block::compress_into(json.as_bytes(), &mut out[HEADER..]) else {
            return Self::Text(json);
        };
        if HEADER + n > json.len() - json.len() / 8 {
            return Self::Text(json);
        }
        out.truncate(HEADER + n);
        Self::Packed(out)
    }

    /// The JSON text of the body.
    pub(super) fn into_json(self) -> Result<Vec<u8>, BackendError> {
        match self {
            Self::Text(text) => Ok(text.into_bytes()),
            Self::Packed(bytes) => unpack(&bytes),
        }
    }
}

fn unpack(bytes: &[u8]) -> Result<Vec<u8>, BackendError> {
    let corrupt = |why: &str| BackendError::Corrupt(format!("packed document body: {why}"));
    let (Some(&LZ4), Some(len)) = (bytes.first(), bytes.get(1..HEADER)) else {
        return Err(corrupt("unknown format"));
    };
    let len = u32::from_le_bytes(len.try_into().map_err(|_| corrupt("no length"))?);
    let len = usize::try_from(len).map_err(|_| corrupt("length"))?;
    if len > MAX_UNPACKED {
        return Err(corrupt("longer than any document"));
    }
    let json =
        lz4_flex::block::decompress(&bytes[HEADER..], len).map_err(|e| corrupt(&e.to_string()))?;
    if json.len() != len {
        return Err(corrupt("shorter than its length"));
    }
    Ok(json)
}

impl ToSql for Stored {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Text(text) => ToSqlOutput::from(text.as_str()),
            Self::Packed(bytes) => ToSqlOutput::from(bytes.as_slice()),
        })
    }
}

impl FromSql for Stored {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Text(_) => String::column_result(value).map(Self::Text),
            ValueRef::Blob(bytes) => Ok(Self::Packed(bytes.to_vec())),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery_like(n: usize) -> String {
        let event = serde_json::json!({
            "type": "whatsapp.message.received",
            "data": {"from": "15550001111", "text": {"body": "hello there"}},
            "source": {"provider": "meta", "phone_number_id": "1234567890"},
        });
        let events: Vec<_> = (0..n).map(|_| event.clone()).collect();
        serde_json::json!({ "task": { "body": serde_json::to_string(&events).unwrap() } })
            .to_string()
    }

    #[test]
    fn short_bodies_stay_text_and_long_ones_pack_and_come_back_whole() {
        let short = r#"{"claimed":true}"#.to_owned();
        assert_eq!(Stored::pack(short.clone()), Stored::Text(short.clone()));
        assert_eq!(
            Stored::Text(short.clone()).into_json().unwrap(),
            short.as_bytes()
        );

        let long = delivery_like(20);
        assert!(long.len() > PACK_FROM);
        let packed = Stored::pack(long.clone());
        let Stored::Packed(bytes) = &packed else {
            panic!("a long, repetitive body is packed");
        };
        assert!(
            bytes.len() < long.len() / 2,
            "{} of {}",
            bytes.len(),
            long.len()
        );
        assert_eq!(bytes[0], LZ4);
        assert_eq!(packed.into_json().unwrap(), long.as_bytes());
    }

    #[test]
    fn a_body_that_does_not_pack_stays_text() {
        // Long but without repeats: packing would not save an eighth.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: String = (0..2_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + u8::try_from(state % 90).unwrap())
            })
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        let json = serde_json::json!({ "noise": noise }).to_string();
        assert_eq!(Stored::pack(json.clone()), Stored::Text(json));
    }

    #[test]
    fn damaged_packed_bodies_are_corrupt_not_a_panic_or_a_huge_allocation() {
        let Stored::Packed(good) = Stored::pack(delivery_like(20)) else {
            panic!("packed");
        };
        let mut claims_too_much = good.clone();
        claims_too_much[1..HEADER].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut claims_more = good.clone();
        let len = u32::from_le_bytes(good[1..HEADER].try_into().unwrap());
        claims_more[1..HEADER].copy_from_slice(&(len + 10).to_le_bytes());
        let mut other_format = good.clone();
        other_format[0] = 9;
        let cases = [
            Vec::new(),
            vec![LZ4, 1],
            other_format,
            claims_too_much,
            claims_more,
            good[..good.len() / 2].to_vec(),
        ];
        for bytes in cases {
            let got = Stored::Packed(bytes.clone()).into_json();
            assert!(
                matches!(got, Err(BackendError::Corrupt(_))),
                "{bytes:?}: {got:?}"
            );
        }
    }
}
