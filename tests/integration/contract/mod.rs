//! One contract suite per port, run against every backend: the in-memory one, the AWS adapter
//! over the wire against moto, and local mode's own where it has one (media on disk). A backend
//! that passes can stand in for the others.

mod blob;
mod documents;
mod media;
mod queue;

/// Declares `memory` and `moto` tests (and `disk`, when given) for one suite function
/// `$suite(backend)`. The backend expressions are awaited, but for `memory` in the form without
/// `disk`.
macro_rules! for_each_backend {
    ($suite:ident, memory: $memory:expr, disk: $disk:expr, moto: $moto:expr) => {
        mod $suite {
            #[tokio::test]
            async fn memory() {
                super::$suite($memory.await).await;
            }

            #[tokio::test]
            async fn disk() {
                super::$suite($disk.await).await;
            }

            #[tokio::test]
            async fn moto() {
                super::$suite($moto.await).await;
            }
        }
    };
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
