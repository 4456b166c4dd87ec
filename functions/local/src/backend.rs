//! The storage and queues the local process runs on: the durable embedded backend (SQLite under
//! a data directory, the default of `serve`), the in-memory one (tests, `--backend memory`), or
//! DynamoDB and SQS (`--backend aws`: moto on 127.0.0.1 or a real account, when built with the
//! `aws` feature), with the same queue settings as `template.yaml` (visibility, dead-letter
//! queues, `maxReceiveCount`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[cfg(feature = "aws")]
use anyhow::Context;
#[cfg(feature = "aws")]
use aws_adapters::provision::{ensure_queue, ensure_table};
#[cfg(feature = "aws")]
use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use shared::ports::faults::{Faults, FaultyBlobs, FaultyDocs, FaultyQueue};
use shared::ports::layer::{Layered, Retry};
use shared::ports::media::MediaStore;
use shared::ports::memory::{DeadLetter, MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::ports::{BackendError, BlobStore, DocumentStore, Queue};

use crate::sqlite::{
    DataDir, Database, SqliteBlobStore, SqliteDeadLetter, SqliteDocumentStore, SqliteQueue,
};

/// One queue as `template.yaml` declares it.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    /// Name suffix (`inbound`, `buffer`, …).
    pub name: &'static str,
    /// Visibility timeout.
    pub visibility: Duration,
    /// Receives before the message moves to the queue's dead-letter queue.
    pub max_receives: u32,
}

/// The four work queues, in pipeline order, with the template's settings.
pub const QUEUES: [QueueSpec; 5] = [
    QueueSpec {
        name: "inbound",
        visibility: Duration::from_secs(180),
        max_receives: 5,
    },
    QueueSpec {
        name: "buffer",
        visibility: Duration::from_secs(180),
        max_receives: 5,
    },
    QueueSpec {
        name: "outbound",
        visibility: Duration::from_secs(180),
        max_receives: 5,
    },
    QueueSpec {
        name: "delivery",
        visibility: Duration::from_secs(720),
        max_receives: 12,
    },
    QueueSpec {
        name: "media",
        visibility: Duration::from_secs(1080),
        max_receives: 6,
    },
];

/// Which backend to run on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-process stores and queues; nothing survives the process.
    Memory,
    /// SQLite in this directory: everything survives a restart.
    Sqlite(PathBuf),
    /// DynamoDB and SQS.
    Aws(AwsBackend),
}

/// Where the AWS resources are.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    /// A local endpoint (moto); `None`: the real AWS endpoints of the default credential chain.
    pub endpoint_url: Option<String>,
    /// Region (with an endpoint URL; otherwise the default chain decides unless set).
    pub region: String,
    /// The table name.
    pub table: String,
    /// Queue names are `{prefix}-{inbound|buffer|outbound|delivery|media}` and `…-dlq`.
    pub queue_prefix: String,
    /// Create the table and queues when missing.
    pub create: bool,
}

/// How many messages a queue holds (visible, in flight and delayed).
#[derive(Debug, Clone)]
pub enum Depth {
    /// An in-memory queue.
    Memory(Arc<MemoryQueue>),
    /// A SQLite queue.
    Sqlite(Arc<SqliteQueue>),
    /// An SQS queue.
    #[cfg(feature = "aws")]
    Sqs(SqsQueue),
}

impl Depth {
    /// The current depth (approximate for SQS).
    pub async fn get(&self) -> Result<u64, BackendError> {
        match self {
            Self::Memory(q) => Ok(u64::try_from(q.len()).unwrap_or(u64::MAX)),
            Self::Sqlite(q) => q.depth().await,
            #[cfg(feature = "aws")]
            Self::Sqs(q) => q.depth().await,
        }
    }
}

/// A work queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueuePair {
    /// The settings.
    pub spec: QueueSpec,
    /// The queue the stage consumes.
    pub queue: Arc<dyn Queue>,
    /// Its dead-letter queue.
    pub dead_letter: Arc<dyn Queue>,
    /// Depth probes for both.
    pub depth: (Depth, Depth),
}

/// The five queue pairs of an embedded backend: `make` builds a work queue and its dead-letter
/// queue for a spec, `depth` wraps each for the depth probes.
fn queue_pairs<Q: Queue + 'static>(
    make: impl Fn(&QueueSpec) -> (Arc<Q>, Arc<Q>),
    depth: impl Fn(Arc<Q>) -> Depth,
) -> [QueuePair; 5] {
    QUEUES.map(|spec| {
        let (queue, dlq) = make(&spec);
        QueuePair {
            spec,
            queue: queue.clone(),
            dead_letter: dlq.clone(),
            depth: (depth(queue), depth(dlq)),
        }
    })
}

/// The S3 bucket of an AWS backend's media files.
#[derive(Debug, Clone)]
pub struct MediaBucket {
    /// The store over it.
    pub store: Arc<dyn MediaStore>,
    /// The bucket's name.
    pub name: String,
}

impl MediaBucket {
    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.name
    }
}

/// Every store and queue of one wagate installation.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Documents (state, endpoints, attempts, pending batches).
    pub docs: Arc<dyn DocumentStore>,
    /// Raw requests and claim-checks.
    pub blobs: Arc<dyn BlobStore>,
    /// `inbound`, `buffer`, `outbound`, `delivery`, `media`, in that order.
    pub queues: [QueuePair; 5],
    /// The S3 bucket media files go to (AWS backends: `{queue prefix}-media`); `None`: local
    /// mode keeps them itself (in memory or under `--media-dir`).
    pub media_bucket: Option<MediaBucket>,
    /// What this is, for the startup banner.
    pub description: String,
    /// What frees expired items (the embedded backends; DynamoDB deletes them itself).
    pub expiry: Expiry,
}

/// Frees documents and blobs past their TTL in an embedded backend: reads skip them at once, and
/// this takes them out, so memory and disk stay flat under steady load (DynamoDB's TTL deletion,
/// done here).
#[derive(Debug, Clone)]
pub enum Expiry {
    /// Nothing to do (DynamoDB expires items itself).
    Backend,
    /// The in-memory stores.
    Memory(Arc<MemoryDocumentStore>, Arc<MemoryBlobStore>),
    /// The SQLite databases.
    Sqlite(DataDir),
}

impl Expiry {
    /// Most items one call of [`Expiry::evict`] deletes from the database: the pipeline's
    /// calls queued meanwhile run right after each one, so they wait for one batch
    /// (milliseconds), not for the whole minute's backlog.
    pub const BATCH: u32 = 500;

    /// Frees what expired at `now`; returns how many documents and blobs went. The memory
    /// stores free on a blocking thread (thousands of drops at a time, off the threads that
    /// serve requests); SQLite deletes in calls of [`Expiry::BATCH`] rows on its own thread.
    pub async fn evict(&self, now: DateTime<Utc>) -> Result<u64, BackendError> {
        match self {
            Self::Backend => Ok(0),
            Self::Memory(docs, blobs) => {
                let (docs, blobs) = (docs.clone(), blobs.clone());
                tokio::task::spawn_blocking(move || {
                    docs.evict_expired(now) + blobs.evict_expired(now)
                })
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string().into()))
            }
            Self::Sqlite(data) => data.evict_expired(now, Self::BATCH).await,
        }
    }

    /// The database files' size in bytes (the SQLite backend only).
    pub async fn database_bytes(&self) -> Option<u64> {
        match self {
            Self::Sqlite(data) => data.size_bytes().await.ok(),
            _ => None,
        }
    }
}

impl Stores {
    /// Whether the documents may hold items recorded before dedup keys carried their source
    /// (see `Infrastructure::may_hold_unscoped_dedup_keys`): only a DynamoDB table may, as
    /// the memory store starts empty and the SQLite backend came after that change.
    pub fn may_hold_unscoped_dedup_keys(&self) -> bool {
        match self.expiry {
            Expiry::Backend => true,
            Expiry::Memory(..) | Expiry::Sqlite(_) => false,
        }
    }

    /// Whether this process is the only one that writes these documents: the memory stores
    /// live in it, and a gateway locks its SQLite data directory (tools beside it only look);
    /// a DynamoDB table may be shared.
    pub fn alone_on_its_documents(&self) -> bool {
        match self.expiry {
            Expiry::Backend => false,
            Expiry::Memory(..) | Expiry::Sqlite(_) => true,
        }
    }

    /// The embedded backend.
    pub fn memory() -> Self {
        let queues = queue_pairs(
            |spec| {
                let dlq = Arc::new(MemoryQueue::new(format!("{}-dlq", spec.name)));
                let dead_letter = DeadLetter {
                    queue: dlq.clone(),
                    max_receives: spec.max_receives,
                };
                let queue = MemoryQueue::with_dead_letter(spec.name, dead_letter);
                (Arc::new(queue), dlq)
            },
            Depth::Memory,
        );
        let docs = Arc::new(MemoryDocumentStore::new());
        let blobs = Arc::new(MemoryBlobStore::new());
        Self {
            docs: docs.clone(),
            blobs: blobs.clone(),
            queues,
            media_bucket: None,
            description: "embedded (in memory; state ends with the process)".into(),
            expiry: Expiry::Memory(docs, blobs),
        }
    }

    /// The durable embedded backend: the SQLite databases under `dir` (created when missing,
    /// [`DataDir`]).
    pub fn sqlite(dir: &Path) -> anyhow::Result<Self> {
        let data = DataDir::open(dir)
            .map_err(|e| anyhow::anyhow!("opening the data directory {}: {e}", dir.display()))?;
        Ok(Self::on_data_dir(
            &data,
            format!("embedded, durable (SQLite in {})", dir.display()),
        ))
    }

    /// The SQLite stores and queues of `db` alone.
    pub fn on_database(db: &Arc<Database>, description: String) -> Self {
        Self::on_data_dir(&DataDir::single(db.clone()), description)
    }

    /// The SQLite stores and queues of a data directory: blobs and the inbound queue in its
    /// inbound database, the rest in its main one.
    pub fn on_data_dir(data: &DataDir, description: String) -> Self {
        let queues = queue_pairs(
            |spec| {
                let db = data.for_queue(spec.name);
                let dlq_name = format!("{}-dlq", spec.name);
                debug_assert!(Arc::ptr_eq(db, data.for_queue(&dlq_name)));
                let dlq = Arc::new(SqliteQueue::new(db.clone(), dlq_name));
                let dead_letter = SqliteDeadLetter {
                    queue: dlq.clone(),
                    max_receives: spec.max_receives,
                };
                let queue = SqliteQueue::with_dead_letter(db.clone(), spec.name, dead_letter);
                (Arc::new(queue), dlq)
            },
            Depth::Sqlite,
        );
        Self {
            docs: Arc::new(SqliteDocumentStore::new(data.main().clone())),
            blobs: Arc::new(SqliteBlobStore::new(data.inbound().clone())),
            queues,
            media_bucket: None,
            description,
            expiry: Expiry::Sqlite(data.clone()),
        }
    }

    /// DynamoDB and SQS, creating the table and queues first when asked.
    #[cfg(feature = "aws")]
    pub async fn aws(opts: &AwsBackend) -> anyhow::Result<Self> {
        let sdk = match &opts.endpoint_url {
            Some(url) => aws_adapters::local_sdk_config(url, &opts.region).await,
            None => aws_adapters::sdk_config().await,
        };
        let clients = Clients::new(&sdk);
        if opts.create {
            ensure_table(&clients.dynamodb, &opts.table)
                .await
                .with_context(|| format!("creating table {}", opts.table))?;
        }
        let mut pairs = Vec::with_capacity(QUEUES.len());
        for spec in QUEUES {
            let name = format!("{}-{}", opts.queue_prefix, spec.name);
            let dlq_name = format!("{name}-dlq");
            let (url, dlq_url) = if opts.create {
                let dlq_url = ensure_queue(&clients.sqs, &dlq_name, 30, None)
                    .await
                    .with_context(|| format!("creating queue {dlq_name}"))?;
                let visibility = u32::try_from(spec.visibility.as_secs()).unwrap_or(u32::MAX);
                let url = ensure_queue(
                    &clients.sqs,
                    &name,
                    visibility,
                    Some((&dlq_url, spec.max_receives)),
                )
                .await
                .with_context(|| format!("creating queue {name}"))?;
                (url, dlq_url)
            } else {
                (
                    queue_url(&clients.sqs, &name).await?,
                    queue_url(&clients.sqs, &dlq_name).await?,
                )
            };
            let queue = SqsQueue::new(clients.sqs.clone(), url);
            let dlq = SqsQueue::new(clients.sqs.clone(), dlq_url);
            pairs.push(QueuePair {
                spec,
                queue: Arc::new(queue.clone()),
                dead_letter: Arc::new(dlq.clone()),
                depth: (Depth::Sqs(queue), Depth::Sqs(dlq)),
            });
        }
        let queues: [QueuePair; 5] = pairs
            .try_into()
            .map_err(|_| anyhow::anyhow!("expected five queues"))?;
        let bucket = format!("{}-media", opts.queue_prefix);
        if opts.create {
            aws_adapters::provision::ensure_bucket(&clients.s3, &bucket)
                .await
                .with_context(|| format!("creating bucket {bucket}"))?;
        }
        let docs = DynamoDocumentStore::new(clients.dynamodb.clone(), &opts.table);
        docs.warm().await;
        Ok(Self {
            docs: Arc::new(docs),
            blobs: Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), &opts.table)),
            queues,
            expiry: Expiry::Backend,
            media_bucket: Some(MediaBucket {
                store: Arc::new(aws_adapters::S3MediaStore::new(clients.s3.clone(), &bucket)),
                name: bucket,
            }),
            description: format!(
                "DynamoDB table {} and SQS queues {}-* at {}",
                opts.table,
                opts.queue_prefix,
                opts.endpoint_url.as_deref().unwrap_or("AWS")
            ),
        })
    }

    /// Opens the backend named by `backend`.
    pub async fn open(backend: &Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Memory => Ok(Self::memory()),
            Backend::Sqlite(dir) => Self::sqlite(dir),
            #[cfg(feature = "aws")]
            Backend::Aws(opts) => Self::aws(opts).await,
            #[cfg(not(feature = "aws"))]
            Backend::Aws(_) => anyhow::bail!(
                "this wagate was built without the AWS backend: build it with `--features aws` \
                 (cargo run -p wagate-local --features aws -- …)"
            ),
        }
    }

    /// Whether this is an embedded backend (in memory or SQLite: in this process, with
    /// exact depths).
    pub fn is_embedded(&self) -> bool {
        matches!(self.queues[0].depth.0, Depth::Memory(_) | Depth::Sqlite(_))
    }

    /// Whether queued messages end with the process (the in-memory backend).
    pub fn is_volatile(&self) -> bool {
        matches!(self.queues[0].depth.0, Depth::Memory(_))
    }

    /// The inbound queue pair.
    pub fn inbound(&self) -> &QueuePair {
        &self.queues[0]
    }

    /// The buffer queue pair.
    pub fn buffer(&self) -> &QueuePair {
        &self.queues[1]
    }

    /// The outbound queue pair.
    pub fn outbound(&self) -> &QueuePair {
        &self.queues[2]
    }

    /// The delivery queue pair.
    pub fn delivery(&self) -> &QueuePair {
        &self.queues[3]
    }

    /// The media queue pair.
    pub fn media(&self) -> &QueuePair {
        &self.queues[4]
    }

    /// The same stores with every call of every port (documents, claims, blobs, work and
    /// dead-letter queues) going through `faults`, which fails them cleanly or after applying
    /// them: what a fault run injects. Above the faults sits what an AWS SDK client does inside
    /// one call, [`Retry`] (3 tries, jittered backoff), so a stage sees what it would see from
    /// DynamoDB and SQS when that many requests fail on the wire. Depth probes stay exact.
    pub fn with_faults(self, faults: &Arc<Faults>) -> Self {
        let retry = Retry::standard(Duration::from_millis(50), Duration::from_secs(1));
        let queue = |inner: Arc<dyn Queue>| -> Arc<dyn Queue> {
            let faulty: Arc<dyn Queue> = Arc::new(FaultyQueue {
                inner,
                layer: faults.clone(),
            });
            Arc::new(Layered {
                inner: faulty,
                layer: retry.clone(),
            })
        };
        let queues = self.queues.map(|pair| QueuePair {
            queue: queue(pair.queue),
            dead_letter: queue(pair.dead_letter),
            ..pair
        });
        let docs: Arc<dyn DocumentStore> = Arc::new(FaultyDocs {
            inner: self.docs,
            layer: faults.clone(),
        });
        let blobs: Arc<dyn BlobStore> = Arc::new(FaultyBlobs {
            inner: self.blobs,
            layer: faults.clone(),
        });
        Self {
            docs: Arc::new(Layered {
                inner: docs,
                layer: retry.clone(),
            }),
            blobs: Arc::new(Layered {
                inner: blobs,
                layer: retry,
            }),
            queues,
            media_bucket: self.media_bucket,
            expiry: self.expiry,
            description: format!(
                "{}, with injected storage faults (each call tried up to 3 times)",
                self.description
            ),
        }
    }

    /// Messages in the five work queues together.
    pub async fn pending(&self) -> Result<u64, BackendError> {
        let mut total = 0;
        for pair in &self.queues {
            total += pair.depth.0.get().await?;
        }
        Ok(total)
    }
}

#[cfg(feature = "aws")]
async fn queue_url(
    client: &aws_adapters::aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<String> {
    client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{}",
                aws_adapters::aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })
        .with_context(|| format!("queue {name} not found (use --create to create it)"))?
        .queue_url
        .with_context(|| format!("queue {name}: no URL"))
}
