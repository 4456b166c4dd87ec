#![no_main]

//! The input as the `WAGATE_SOURCES` configuration.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::sources::check_sources(data);
});
