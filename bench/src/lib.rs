//! wagate's measuring tools, apart from the product: the load generator ([`load`]), the fault
//! run ([`fault`]) and the Lambda binaries on a runtime API emulator behind a metering proxy
//! ([`lambda`]). `wagate-bench` runs them; `BENCHMARKS.md` holds their figures. The binary tests
//! (`tests/integration/lambda_binaries.rs`) use [`lambda::stack`].

pub mod fault;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod load;
pub mod ttl_cap;
