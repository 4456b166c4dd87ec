//! Normalizes one payload `N` times, for counting what a single normalize costs without a
//! clock: `bench/instructions.sh` runs it under cachegrind (instructions) and with uprobes on
//! glibc's `malloc`/`realloc` (allocations), each at `N` and at 0, and divides the difference.
//! Both counts are the same from run to run, where times on this shared host move by ±25%.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use shared::ids::SourceId;
use shared::model::Provider;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: normalize_loop PAYLOAD N");
    let n: usize = args
        .next()
        .expect("usage: normalize_loop PAYLOAD N")
        .parse()
        .unwrap();
    let body = std::fs::read(&path).unwrap();
    let (provider, source) = if path.contains("waha") {
        (Provider::Waha, "waha-main")
    } else {
        (Provider::Meta, "meta-main")
    };
    let source = SourceId::parse(source).unwrap();
    let now = chrono::Utc::now();
    let mut events = 0;
    for _ in 0..n {
        let out = shared::providers::normalize(&source, provider, &body, now).unwrap();
        events = std::hint::black_box(out).len();
    }
    println!("{events}");
}
