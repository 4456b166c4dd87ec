#![no_main]

//! The signature diagnosis over a fuzzed capture (`src/diagnose.rs`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::diagnose::check_diagnose(data);
});
