#![no_main]

//! A queue message body as each stage decodes it; after the first 0xFF, the bytes of the blob
//! a claim-check points to.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::queue::check_queue_record(data);
});
