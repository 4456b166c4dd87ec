//! Waiting on conditions, never on the clock: a test polls until what it expects holds, and fails
//! only when a deadline derived from the work (how many backend calls it takes) and from the
//! backend's speed measured at the start of the test has passed. On an idle machine a test takes
//! as long as the work; on a busy one it waits longer instead of failing.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_adapters::Clients;

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(50);

/// The shortest deadline any wait gets: room for a scheduler stall on a loaded 2-core machine.
const FLOOR: Duration = Duration::from_secs(60);

/// How many times slower than measured a call may become while the test runs (other suites and
/// builds share the machine and the moto server).
const SLACK: u32 = 20;

/// The longest deadline any wait gets, however slow the backend measured: a condition that
/// never comes fails the test in minutes instead of holding the suite for an hour.
const CEILING: Duration = Duration::from_secs(600);

/// Deadlines for one backend, from the time one of its calls takes.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    per_call: Duration,
}

impl Patience {
    /// The embedded backend: calls are in-process; the floor governs.
    pub fn embedded() -> Self {
        Self {
            per_call: Duration::from_millis(2),
        }
    }

    /// A moto server, measured now: the slowest of five cheap round trips.
    pub async fn moto(clients: &Clients) -> Self {
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let started = Instant::now();
            clients
                .sqs
                .list_queues()
                .queue_name_prefix("patience-probe")
                .send()
                .await
                .expect("moto answers ListQueues");
            slowest = slowest.max(started.elapsed());
        }
        Self {
            // A real call (a conditional put, a batch send) costs a few probes.
            per_call: (slowest * 4).max(Duration::from_millis(5)),
        }
    }

    /// The time one backend call is given.
    pub fn per_call(&self) -> Duration {
        self.per_call
    }

    /// How long work of `calls` backend calls may take: the floor plus every call at
    /// [`SLACK`] times the measured speed, at most [`CEILING`] (or `WAGATE_TEST_CEILING_SECS`).
    pub fn deadline(&self, calls: u32) -> Duration {
        let ceiling = std::env::var("WAGATE_TEST_CEILING_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(CEILING, Duration::from_secs);
        (FLOOR + self.per_call * calls.saturating_mul(SLACK)).min(ceiling)
    }
}

/// Polls `done` until it holds; false once `within` has passed.
pub async fn within(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    within_async(within, || std::future::ready(done())).await
}

/// [`within`] for a condition that has to ask a backend.
pub async fn within_async<F, Fut>(within: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `done` until it holds; panics naming `what` once `deadline` has passed.
pub async fn until(what: &str, deadline: Duration, done: impl FnMut() -> bool) {
    assert!(
        within(deadline, done).await,
        "timed out after {deadline:?} waiting for {what}"
    );
}

/// [`until`] for a condition that has to ask a backend.
pub async fn until_async<F, Fut>(what: &str, deadline: Duration, done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        within_async(deadline, done).await,
        "timed out after {deadline:?} waiting for {what}"
    );
}
