//! One contract suite per port, run against every backend: the in-memory one and the AWS adapter
//! over the wire against moto. A backend that passes can stand in for the other.

mod blob;
mod documents;
mod queue;

/// Declares `memory` and `moto` tests for one suite function `$suite(backend)`.
macro_rules! for_each_backend {
    ($suite:ident, memory: $memory:expr, moto: $moto:expr) => {
        mod $suite {
            #[tokio::test]
            async fn memory() {
                super::$suite($memory).await;
            }

            #[tokio::test]
            async fn moto() {
                super::$suite($moto.await).await;
            }
        }
    };
}

pub(crate) use for_each_backend;
