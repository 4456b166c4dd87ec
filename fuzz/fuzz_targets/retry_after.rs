#![no_main]

//! A receiver's `Retry-After` value; after the first 0xFF, the clock and `judge` parameters.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::retry::check_retry_after(data);
});
