#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::model::Provider;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::check_normalize(Provider::Gupshup, data);
});
