#![no_main]

//! Signature checks, the Meta handshake and the id parsers over untrusted header values.
//!
//! The input is split on 0xFF (never part of UTF-8 text) into up to eight parts:
//! `body, secret, meta_header, waha_header, waha_algorithm, query, chat_id, waha_message_id`.
//! A part that is missing (fewer separators) is passed as an absent header.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(8, |b| *b == 0xFF);
    let body = parts.next().unwrap_or_default();
    let secret = parts.next().unwrap_or_default();
    let text = |part: Option<&[u8]>| part.map(|p| String::from_utf8_lossy(p).into_owned());
    let input = wagate_fuzz::SignatureInput {
        body,
        secret,
        meta_header: text(parts.next()),
        waha_header: text(parts.next()),
        waha_algorithm: text(parts.next()),
        query: text(parts.next()).unwrap_or_default(),
        chat_id: text(parts.next()).unwrap_or_default(),
        waha_message_id: text(parts.next()).unwrap_or_default(),
    };
    wagate_fuzz::check_signatures(&input);
});
