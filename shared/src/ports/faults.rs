//! Storage faults on purpose: decorators over the ports that make chosen calls fail, either
//! cleanly (nothing applied) or ambiguously (applied, then reported as an error: the answer lost
//! on the way back, which real networks produce). The replay tests fail each call of an
//! operation in turn; a fault run fails calls at random at given rates.
//!
//! One [`Faults`] is shared by every decorated port of a stage, so "the k-th call" counts across
//! documents, blobs and queues in the order the stage makes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::BackendError;
use super::layer::{Layer, Layered};

/// How an injected failure looks to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails and changes nothing.
    Clean,
    /// The call changes what it would have, then reports an error.
    Ambiguous,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Calls made so far.
    calls: u64,
    /// Faults for given call numbers (1-based, counted from the start).
    script: BTreeMap<u64, Fault>,
    /// Random faults: the chance of each kind per call, and the generator's state.
    clean_rate: f64,
    ambiguous_rate: f64,
    rng: u64,
    /// Faults injected so far (clean, ambiguous).
    injected: (u64, u64),
}

/// Which calls fail, shared by the decorated ports.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    /// No faults (until some are scheduled): counts calls.
    pub fn none() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Each call fails cleanly with chance `clean` and ambiguously with chance `ambiguous`,
    /// drawn from a generator seeded with `seed` (the same seed gives the same sequence).
    pub fn random(clean: f64, ambiguous: f64, seed: u64) -> Arc<Self> {
        let faults = Self::default();
        {
            let mut s = faults.lock();
            s.clean_rate = clean.clamp(0.0, 1.0);
            s.ambiguous_rate = ambiguous.clamp(0.0, 1.0);
            s.rng = seed | 1;
        }
        Arc::new(faults)
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Faults injected so far: (clean, ambiguous).
    pub fn injected(&self) -> (u64, u64) {
        self.lock().injected
    }

    /// Makes the `n`-th call from now (1: the next one) fail with `fault`.
    pub fn fail_in(&self, n: u64, fault: Fault) {
        let mut s = self.lock();
        let at = s.calls + n.max(1);
        s.script.insert(at, fault);
    }

    /// Counts a call and says whether (and how) it fails.
    fn next(&self) -> Option<Fault> {
        let mut s = self.lock();
        s.calls += 1;
        let calls = s.calls;
        let fault = match s.script.remove(&calls) {
            Some(f) => Some(f),
            None if s.clean_rate > 0.0 || s.ambiguous_rate > 0.0 => {
                // xorshift64: good enough to spread faults, and reproducible.
                let mut x = s.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.rng = x;
                #[allow(clippy::cast_precision_loss)] // 53 bits of a u64 make the fraction
                let draw = (x >> 11) as f64 / (1u64 << 53) as f64;
                if draw < s.clean_rate {
                    Some(Fault::Clean)
                } else if draw < s.clean_rate + s.ambiguous_rate {
                    Some(Fault::Ambiguous)
                } else {
                    None
                }
            }
            None => None,
        };
        match fault {
            Some(Fault::Clean) => s.injected.0 += 1,
            Some(Fault::Ambiguous) => s.injected.1 += 1,
            None => {}
        }
        fault
    }
}

fn injected(op: &str) -> BackendError {
    BackendError::unavailable(std::io::Error::other(format!("injected fault in {op}")))
}

/// A clean fault skips the call; an ambiguous one makes it and reports an error anyway.
impl Layer for Faults {
    async fn around<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, BackendError>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BackendError>> + Send,
    {
        match self.next() {
            None => call().await,
            Some(Fault::Clean) => Err(injected(op)),
            Some(Fault::Ambiguous) => {
                let _applied = call().await;
                Err(injected(op))
            }
        }
    }
}

/// A [`DocumentStore`](super::DocumentStore) whose calls fail as [`Faults`] says.
pub type FaultyDocs = Layered<dyn super::DocumentStore, Arc<Faults>>;
/// A [`BlobStore`](super::BlobStore) whose calls fail as [`Faults`] says.
pub type FaultyBlobs = Layered<dyn super::BlobStore, Arc<Faults>>;
/// A [`Queue`](super::Queue) whose calls fail as [`Faults`] says. An ambiguous receive hides the
/// messages it lost until their visibility ends, as a lost SQS answer does.
pub type FaultyQueue = Layered<dyn super::Queue, Arc<Faults>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDocumentStore;
    use crate::ports::{DocumentStore, DocumentWrite};
    use chrono::Utc;

    #[tokio::test]
    async fn a_clean_fault_applies_nothing_and_an_ambiguous_one_applies_then_errs() {
        let faults = Faults::none();
        let docs = FaultyDocs {
            inner: Arc::new(MemoryDocumentStore::new()),
            layer: faults.clone(),
        };
        let now = Utc::now();
        let body = serde_json::json!({"n": 1});
        faults.fail_in(1, Fault::Clean);
        assert!(
            docs.put("a", &body, DocumentWrite::new(None, now))
                .await
                .is_err()
        );
        assert_eq!(docs.get("a", now).await.unwrap(), None);
        faults.fail_in(1, Fault::Ambiguous);
        assert!(
            docs.put("a", &body, DocumentWrite::new(None, now))
                .await
                .is_err()
        );
        assert_eq!(
            docs.get("a", now).await.unwrap().map(|d| d.version),
            Some(1)
        );
        assert_eq!(faults.calls(), 4);
        assert_eq!(faults.injected(), (1, 1));
    }

    #[test]
    fn random_faults_come_at_about_their_rates_and_repeat_with_the_seed() {
        let draw = |seed| {
            let f = Faults::random(0.05, 0.05, seed);
            (0..10_000).map(|_| f.next()).collect::<Vec<_>>()
        };
        let run = draw(7);
        assert_eq!(run, draw(7));
        let clean = run.iter().filter(|f| **f == Some(Fault::Clean)).count();
        let ambiguous = run.iter().filter(|f| **f == Some(Fault::Ambiguous)).count();
        assert!((400..600).contains(&clean), "{clean}");
        assert!((400..600).contains(&ambiguous), "{ambiguous}");
    }
}
