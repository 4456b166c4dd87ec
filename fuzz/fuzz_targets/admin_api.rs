#![no_main]

//! Management requests through `Admin::router` over in-memory stores (see `src/admin.rs` for
//! the input format): up to eight requests separated by 0xFF.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wagate_fuzz::admin::check_admin(data);
});
