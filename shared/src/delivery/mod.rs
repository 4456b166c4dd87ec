//! The outbound half: per-conversation buffering, fan-out to endpoints and their filters, what may
//! be called (SSRF guard), and how a delivery is signed and retried. It may use `pipeline` (the
//! buffer reads track's outbox); `pipeline` never uses it.

pub mod buffer;
pub mod deliver;
pub mod endpoints;
pub mod fanout;
pub mod record;
pub mod redrive;
pub mod request;
pub mod retry;
pub mod ssrf;
