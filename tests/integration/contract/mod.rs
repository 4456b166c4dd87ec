//! One contract suite per port, run against every backend: the in-memory one, the AWS adapter
//! over the wire against moto, local mode's durable SQLite one, and local mode's own where it has
//! one (media on disk). A backend
//! that passes can stand in for the others.

mod blob;
mod documents;
mod media;
mod queue;

/// Declares one test per backend for one suite function `$suite(backend)`: `name: expr`
/// pairs, each expression a future of the backend.
macro_rules! for_each_backend {
    ($suite:ident, $($backend:ident: $make:expr),+ $(,)?) => {
        mod $suite {
            $(
                #[tokio::test]
                async fn $backend() {
                    super::$suite($make.await).await;
                }
            )+
        }
    };
}

pub(crate) use for_each_backend;
