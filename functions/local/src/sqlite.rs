//! The durable embedded backend: documents, blobs and queues in one SQLite database in WAL mode
//! (`--backend sqlite --data-dir DIR`, the default of `serve`).
//!
//! Owns: the schema, the ports over it ([`SqliteDocumentStore`], [`SqliteBlobStore`],
//! [`SqliteQueue`]) with the semantics of the memory backend and of DynamoDB/SQS (conditional
//! writes, TTLs, visibility timeouts, delays, receive counts, dead-lettering after
//! `maxReceiveCount`), and evicting what expired. They pass the same contract suites.
//!
//! Durability: every call is one transaction, committed before it returns. WAL with
//! `synchronous=NORMAL` keeps every committed transaction through a crash of the process
//! (`kill -9`); a power cut may lose the last few, never corrupt the file. One gateway owns a
//! data directory: it holds a lock on `wagate.lock` there, so a second `wagate` on the same
//! directory fails at start instead of taking over its work; tools that only look (the fault
//! run's check) open the database beside it ([`Database::open_shared`]).
//!
//! The connection sits behind a mutex and each call runs on the caller's thread: a call is a
//! handful of indexed statements (tens of microseconds), cheaper than a hop to a blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use shared::ports::limits::{self, check_batch, sqs_allows};
use shared::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, FailedEntry, IndexPage, Listed,
    OutgoingMessage, PutDocument, Queue, ReceivedMessage, Versioned, check_put_all,
};
use tokio::sync::Notify;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "wagate.db";

/// The file whose lock says a gateway owns the data directory.
pub const LOCK_FILE: &str = "wagate.lock";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS docs (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    expires_at INTEGER,
    part TEXT,
    sort TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS docs_by_index ON docs (part, sort, key) WHERE part IS NOT NULL;
CREATE INDEX IF NOT EXISTS docs_by_expiry ON docs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    bytes BLOB NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_expiry ON blobs (expires_at);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS receipts (
    receipt TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_by_message ON receipts (seq);
";

/// Milliseconds since the Unix epoch.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The wall clock in milliseconds since the Unix epoch (queues outlive the process, so their
/// times are wall-clock times, not `Instant`s).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn sqlite_error(e: rusqlite::Error) -> BackendError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => BackendError::Corrupt(e.to_string()),
        e => BackendError::unavailable(e),
    }
}

fn decode(body: &str) -> Result<serde_json::Value, BackendError> {
    serde_json::from_str(body).map_err(|e| BackendError::Corrupt(format!("stored document: {e}")))
}

fn version_of(v: i64) -> Result<u64, BackendError> {
    u64::try_from(v).map_err(|_| BackendError::Corrupt(format!("stored version {v}")))
}

/// What [`Database::evict_expired`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Documents past their expiry.
    pub documents: u64,
    /// Blobs past their expiry.
    pub blobs: u64,
}

/// One SQLite database (a file in WAL mode) shared by every store and queue of a gateway.
#[derive(Debug)]
pub struct Database {
    conn: Mutex<Connection>,
    /// The owner's lock on [`LOCK_FILE`], held until the database is dropped.
    _owner: Option<std::fs::File>,
}

impl Database {
    /// Opens (creating when missing) `DIR/wagate.db`, creating `dir` too. Messages a previous
    /// process had received but not finished with are made visible again at once: that process
    /// is gone, so nobody will delete them, and waiting out their visibility timeout (up to 18
    /// minutes) would only delay the retry.
    pub fn open_dir(dir: &Path) -> Result<Arc<Self>, BackendError> {
        std::fs::create_dir_all(dir).map_err(BackendError::unavailable)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(BackendError::unavailable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BackendError::Rejected(format!(
                    "the data directory {} is in use by another wagate (one gateway per data \
                     directory)",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(BackendError::unavailable(e)),
        }
        let conn = Connection::open(dir.join(DATABASE_FILE)).map_err(sqlite_error)?;
        let db = Self::setup(conn, Some(lock))?;
        db.release_leases()?;
        Ok(db)
    }

    /// Opens the database of a data directory another process owns, to look at it (queue
    /// depths, dead letters): no lock taken, no lease released. Writes are still transactions,
    /// safe beside the owner's.
    pub fn open_shared(dir: &Path) -> Result<Arc<Self>, BackendError> {
        let conn = Connection::open(dir.join(DATABASE_FILE)).map_err(sqlite_error)?;
        Self::setup(conn, None)
    }

    fn setup(conn: Connection, owner: Option<std::fs::File>) -> Result<Arc<Self>, BackendError> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sqlite_error)?;
        // WAL: readers never block the writer and a commit appends to the log; NORMAL: the log
        // is synced at checkpoints, not at each commit (durable through a process crash).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -32768;",
        )
        .map_err(sqlite_error)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        Ok(Arc::new(Self {
            conn: Mutex::new(conn),
            _owner: owner,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release_leases(&self) -> Result<(), BackendError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE messages SET visible_at = ?1, leased = 0 WHERE leased = 1",
            params![now_millis()],
        )
        .map_err(sqlite_error)?;
        conn.execute("DELETE FROM receipts", [])
            .map_err(sqlite_error)?;
        Ok(())
    }

    /// Deletes documents and blobs expired at `now` (reads already skip them; this frees their
    /// space), at most `limit` of each, oldest expiry first.
    pub fn evict_expired(&self, now: DateTime<Utc>, limit: u32) -> Result<Evicted, BackendError> {
        let conn = self.lock();
        let evict = |table: &str| -> Result<u64, BackendError> {
            let sql = format!(
                "DELETE FROM {table} WHERE key IN (SELECT key FROM {table} \
                 WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
            );
            let n = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.execute(params![millis(now), limit]))
                .map_err(sqlite_error)?;
            Ok(n as u64)
        };
        Ok(Evicted {
            documents: evict("docs")?,
            blobs: evict("blobs")?,
        })
    }

    /// The database's size in bytes (pages in use and free, without the WAL).
    pub fn size_bytes(&self) -> Result<u64, BackendError> {
        let conn = self.lock();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(sqlite_error)?;
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sqlite_error)?;
        Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
    }
}

/// Documents in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteDocumentStore {
    db: Arc<Database>,
}

impl SqliteDocumentStore {
    /// The documents of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl DocumentStore for SqliteDocumentStore {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        let conn = self.db.lock();
        let row: Option<(i64, String)> = conn
            .prepare_cached(
                "SELECT version, body FROM docs WHERE key = ?1 \
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![key, millis(now)], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sqlite_error)?;
        drop(conn);
        row.map(|(version, body)| {
            Ok(Versioned {
                version: version_of(version)?,
                body: decode(&body)?,
            })
        })
        .transpose()
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.put_all(&[PutDocument { key, body, write }]).await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        check_put_all(puts)?;
        // Encoded before the lock is taken.
        let bodies: Vec<String> = puts
            .iter()
            .map(|p| serde_json::to_string(p.body))
            .collect::<Result<_, _>>()
            .map_err(|e| BackendError::Rejected(format!("document not encodable: {e}")))?;
        let mut conn = self.db.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        {
            let mut current = tx
                .prepare_cached(
                    "SELECT version FROM docs WHERE key = ?1 \
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .map_err(sqlite_error)?;
            for p in puts {
                let version: Option<i64> = current
                    .query_row(params![p.key, millis(p.write.now)], |r| r.get(0))
                    .optional()
                    .map_err(sqlite_error)?;
                let version = version.map(version_of).transpose()?;
                if version != p.write.expected {
                    // Dropping the transaction rolls it back; nothing was written.
                    return Ok(false);
                }
            }
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO docs (key, version, body, expires_at, part, sort) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (key) DO UPDATE SET version = excluded.version, \
                     body = excluded.body, expires_at = excluded.expires_at, \
                     part = excluded.part, sort = excluded.sort",
                )
                .map_err(sqlite_error)?;
            for (p, body) in puts.iter().zip(&bodies) {
                let version = i64::try_from(p.write.expected.unwrap_or(0) + 1)
                    .map_err(|_| BackendError::Rejected("version out of range".into()))?;
                upsert
                    .execute(params![
                        p.key,
                        version,
                        body,
                        p.write.expires_at.map(millis),
                        p.write.index.map(|i| i.partition.as_str()),
                        p.write.index.map(|i| i.sort.as_str()),
                    ])
                    .map_err(sqlite_error)?;
            }
        }
        tx.commit().map_err(sqlite_error)?;
        Ok(true)
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        let sql = if page.descending {
            "SELECT key, sort, version, body FROM docs WHERE part = ?1 \
             AND (?2 IS NULL OR sort > ?2) AND (?3 IS NULL OR sort < ?3) \
             AND (expires_at IS NULL OR expires_at > ?4) ORDER BY sort DESC, key DESC LIMIT ?5"
        } else {
            "SELECT key, sort, version, body FROM docs WHERE part = ?1 \
             AND (?2 IS NULL OR sort > ?2) AND (?3 IS NULL OR sort < ?3) \
             AND (expires_at IS NULL OR expires_at > ?4) ORDER BY sort ASC, key ASC LIMIT ?5"
        };
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let conn = self.db.lock();
        let rows: Vec<(String, String, i64, String)> = conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(
                    params![page.partition, page.after, page.before, millis(now), limit],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?
                .collect()
            })
            .map_err(sqlite_error)?;
        drop(conn);
        rows.into_iter()
            .map(|(key, sort, version, body)| {
                Ok(Listed {
                    key,
                    sort,
                    doc: Versioned {
                        version: version_of(version)?,
                        body: decode(&body)?,
                    },
                })
            })
            .collect()
    }
}

/// Blobs in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteBlobStore {
    db: Arc<Database>,
}

impl SqliteBlobStore {
    /// The blobs of `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.db
            .lock()
            .prepare_cached(
                "INSERT INTO blobs (key, bytes, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes, \
                 expires_at = excluded.expires_at",
            )
            .and_then(|mut s| s.execute(params![key, bytes, millis(expires_at)]))
            .map_err(sqlite_error)?;
        Ok(())
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        self.db
            .lock()
            .prepare_cached("SELECT bytes FROM blobs WHERE key = ?1 AND expires_at > ?2")
            .and_then(|mut s| {
                s.query_row(params![key, millis(now)], |r| r.get(0))
                    .optional()
            })
            .map_err(sqlite_error)
    }
}

/// Where a [`SqliteQueue`] sends messages received too often.
#[derive(Debug, Clone)]
pub struct SqliteDeadLetter {
    /// The dead-letter queue (in the same database).
    pub queue: Arc<SqliteQueue>,
    /// Receives after which a message moves there (SQS `maxReceiveCount`).
    pub max_receives: u32,
}

/// An SQS-like queue in SQLite: messages survive the process; one table holds every queue.
#[derive(Debug)]
pub struct SqliteQueue {
    db: Arc<Database>,
    name: String,
    notify: Notify,
    dead_letter: Option<SqliteDeadLetter>,
}

impl SqliteQueue {
    /// Queue `name` of `db`, with no dead-letter queue.
    pub fn new(db: Arc<Database>, name: impl Into<String>) -> Self {
        Self {
            db,
            name: name.into(),
            notify: Notify::new(),
            dead_letter: None,
        }
    }

    /// Queue `name` of `db`, moving a message to `dead_letter` once received more than its
    /// `max_receives` times without being deleted.
    pub fn with_dead_letter(
        db: Arc<Database>,
        name: impl Into<String>,
        dead_letter: SqliteDeadLetter,
    ) -> Self {
        Self {
            dead_letter: Some(dead_letter),
            ..Self::new(db, name)
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Messages in the queue: visible, in flight and delayed.
    pub fn depth(&self) -> Result<u64, BackendError> {
        let n: i64 = self
            .db
            .lock()
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE queue = ?1")
            .and_then(|mut s| s.query_row(params![self.name], |r| r.get(0)))
            .map_err(sqlite_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Takes up to `max` visible messages (moving those received too often to the dead-letter
    /// queue); also returns when the next hidden one turns visible.
    fn take_visible(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), BackendError> {
        let now = now_millis();
        let hidden_until = now.saturating_add(duration_millis(visibility));
        let limit = i64::try_from(max).unwrap_or(10);
        let mut conn = self.db.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        let mut out = Vec::new();
        let mut moved = false;
        {
            let mut visible = tx
                .prepare_cached(
                    "SELECT seq, message_id, body, receive_count FROM messages \
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq LIMIT ?3",
                )
                .map_err(sqlite_error)?;
            let mut lease = tx
                .prepare_cached(
                    "UPDATE messages SET receive_count = ?2, visible_at = ?3, received_at = ?4, \
                     leased = 1 WHERE seq = ?1",
                )
                .map_err(sqlite_error)?;
            let mut receipt_of = tx
                .prepare_cached("INSERT INTO receipts (receipt, seq) VALUES (?1, ?2)")
                .map_err(sqlite_error)?;
            let mut to_dead_letter = tx
                .prepare_cached(
                    "UPDATE messages SET queue = ?2, visible_at = ?3, received_at = ?3, \
                     receive_count = 0, leased = 0 WHERE seq = ?1",
                )
                .map_err(sqlite_error)?;
            let mut forget = tx
                .prepare_cached("DELETE FROM receipts WHERE seq = ?1")
                .map_err(sqlite_error)?;
            // Messages moved to the dead-letter queue do not count towards `max`: look again
            // while a pass moved some. A message taken with zero visibility is visible again at
            // once: it is taken once per call.
            let mut taken: Vec<i64> = Vec::new();
            loop {
                let want = limit - i64::try_from(out.len()).unwrap_or(0);
                let rows: Vec<(i64, String, String, u32)> = visible
                    .query_map(params![self.name, now, want], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(sqlite_error)?;
                let mut moved_now = false;
                for (seq, message_id, body, count) in rows {
                    if taken.contains(&seq) {
                        continue;
                    }
                    match &self.dead_letter {
                        Some(dl) if count >= dl.max_receives => {
                            to_dead_letter
                                .execute(params![seq, dl.queue.name, now])
                                .map_err(sqlite_error)?;
                            forget.execute(params![seq]).map_err(sqlite_error)?;
                            moved_now = true;
                        }
                        _ => {
                            let receive_count = count.saturating_add(1);
                            lease
                                .execute(params![seq, receive_count, hidden_until, now])
                                .map_err(sqlite_error)?;
                            let receipt = format!("{}:{seq}:{}", self.name, ulid::Ulid::new());
                            receipt_of
                                .execute(params![receipt, seq])
                                .map_err(sqlite_error)?;
                            taken.push(seq);
                            out.push(ReceivedMessage {
                                receipt,
                                message_id,
                                body,
                                receive_count,
                            });
                        }
                    }
                }
                moved |= moved_now;
                if !moved_now || out.len() >= max {
                    break;
                }
            }
        }
        let next_visible: Option<i64> = tx
            .prepare_cached("SELECT MIN(visible_at) FROM messages WHERE queue = ?1")
            .and_then(|mut s| s.query_row(params![self.name], |r| r.get(0)))
            .map_err(sqlite_error)?;
        tx.commit().map_err(sqlite_error)?;
        drop(conn);
        if moved && let Some(dl) = &self.dead_letter {
            dl.queue.notify.notify_waiters();
        }
        Ok((out, next_visible))
    }

    /// The message a receipt names, if the receipt was issued by this queue and the message is
    /// still here.
    fn seq_of(conn: &Connection, queue: &str, receipt: &str) -> Result<i64, BackendError> {
        conn.prepare_cached(
            "SELECT m.seq FROM receipts r JOIN messages m ON m.seq = r.seq \
             WHERE r.receipt = ?1 AND m.queue = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![receipt, queue], |r| r.get(0))
                .optional()
        })
        .map_err(sqlite_error)?
        .ok_or_else(|| {
            BackendError::Rejected(format!("receipt handle not valid for queue {queue}"))
        })
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError> {
        check_batch(messages)?;
        let now = now_millis();
        let mut failed = Vec::new();
        {
            let mut conn = self.db.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO messages (queue, message_id, body, visible_at, received_at, \
                         receive_count) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
                    )
                    .map_err(sqlite_error)?;
                for m in messages {
                    if !sqs_allows(&m.body) {
                        failed.push(FailedEntry {
                            id: m.id.clone(),
                            retryable: false,
                            reason: "InvalidMessageContents".into(),
                        });
                        continue;
                    }
                    let visible_at =
                        now.saturating_add(duration_millis(m.delay.unwrap_or_default()));
                    insert
                        .execute(params![
                            self.name,
                            ulid::Ulid::new().to_string(),
                            m.body,
                            visible_at,
                            now
                        ])
                        .map_err(sqlite_error)?;
                }
            }
            tx.commit().map_err(sqlite_error)?;
        }
        self.notify.notify_waiters();
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        let max = max.clamp(1, limits::MAX_BATCH_ENTRIES);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for wake-ups before looking, so a send between the look and the wait
            // is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next_visible) = self.take_visible(max, visibility)?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let until = next_visible.map_or(deadline, |at| {
                let ms = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
                (now + Duration::from_millis(ms)).min(deadline)
            });
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        let mut conn = self.db.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        let seq = Self::seq_of(&tx, &self.name, receipt)?;
        tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")
            .and_then(|mut s| s.execute(params![seq]))
            .map_err(sqlite_error)?;
        tx.prepare_cached("DELETE FROM receipts WHERE seq = ?1")
            .and_then(|mut s| s.execute(params![seq]))
            .map_err(sqlite_error)?;
        tx.commit().map_err(sqlite_error)
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError> {
        if visibility.as_secs() > limits::MAX_VISIBILITY_SECS {
            return Err(BackendError::Rejected(
                "visibility timeout exceeds 12 hours".into(),
            ));
        }
        let now = now_millis();
        {
            let conn = self.db.lock();
            let seq = Self::seq_of(&conn, &self.name, receipt)?;
            let received_at: i64 = conn
                .prepare_cached("SELECT received_at FROM messages WHERE seq = ?1")
                .and_then(|mut s| s.query_row(params![seq], |r| r.get(0)))
                .map_err(sqlite_error)?;
            // As SQS: hidden at most 12 hours from the receive, not from this call.
            let max = duration_millis(Duration::from_secs(limits::MAX_VISIBILITY_SECS));
            if now.saturating_sub(received_at) + duration_millis(visibility) > max {
                return Err(BackendError::Rejected(
                    "visibility would end more than 12 hours after the message was received".into(),
                ));
            }
            // No longer a lease a restart releases: the consumer chose when it comes back.
            conn.prepare_cached("UPDATE messages SET visible_at = ?2, leased = 0 WHERE seq = ?1")
                .and_then(|mut s| {
                    s.execute(params![
                        seq,
                        now.saturating_add(duration_millis(visibility))
                    ])
                })
                .map_err(sqlite_error)?;
        }
        self.notify.notify_waiters();
        Ok(())
    }

    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        self.depth().map(Some)
    }
}
