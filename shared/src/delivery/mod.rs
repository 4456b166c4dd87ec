//! The outbound half: endpoints and their filters, what may be called (SSRF guard), and how a
//! delivery is signed and retried.

pub mod deliver;
pub mod endpoints;
pub mod fanout;
pub mod record;
pub mod redrive;
pub mod request;
pub mod retry;
pub mod ssrf;
