//! How the local binaries take memory from the kernel.
//!
//! mimalloc asks Linux for transparent huge pages on its arenas (`madvise(MADV_HUGEPAGE)`),
//! and returns memory it no longer uses a while after freeing it. With both, a fault on memory
//! it had returned gets a fresh 2 MiB page, zeroed whole by the kernel on the faulting thread.
//! In the load run that zeroing (`clear_page_erms`) was a fifth of the process's CPU, and it came
//! in bursts: both async workers zeroing pages for 100–200 ms at a time while webhooks waited
//! (ingest p99 60–105 ms at 3,000/s and posts left unsent; with huge pages off, 4–13 ms and none;
//! BENCHMARKS.md, pipeline throughput). Small pages cost a fault per 4 KiB instead, spread
//! evenly, and less CPU in total.

/// Turns transparent huge pages off for the whole process (`prctl(PR_SET_THP_DISABLE)`; the
/// kernel checks it at each fault, so memory mapped before the call is covered too, and child
/// processes inherit it). Where the call is refused (an old kernel, a seccomp filter) the process
/// runs as before, with huge pages: slower, nothing else.
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn turns_huge_pages_off_for_the_process() {
        let off = || rustix::thread::transparent_huge_pages_are_disabled().unwrap();
        without_huge_pages();
        assert!(off());
        // A second call keeps them off.
        without_huge_pages();
        assert!(off());
    }
}
