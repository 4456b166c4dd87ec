//! The durable embedded backend: documents, blobs and queues in SQLite databases in WAL mode
//! (`--backend sqlite --data-dir DIR`, the default of `serve`): a gateway's data directory
//! ([`DataDir`]) holds two, one for what ingest writes (blobs and the `inbound` queue) and one
//! for the rest, so ingest's calls are not grouped behind the stages' document writes.
//!
//! Owns: the schema, the ports over it ([`SqliteDocumentStore`], [`SqliteBlobStore`],
//! [`SqliteQueue`]) with the semantics of the memory backend and of DynamoDB/SQS (conditional
//! writes, TTLs, visibility timeouts, delays, receive counts, dead-lettering after
//! `maxReceiveCount`), and evicting what expired. They pass the same contract suites, each port
//! over any one [`Database`].
//!
//! Durability: every call is committed before it returns. WAL with `synchronous=NORMAL` keeps
//! every committed transaction through a crash of the process (`kill -9`); a power cut may lose
//! the last few, never corrupt the file. One gateway owns a data directory: it holds a lock on
//! `wagate.lock` there, so a second `wagate` on the same directory fails at start instead of
//! taking over its work; tools that only look (the fault run's check) open the databases beside
//! it ([`DataDir::open_shared`]).
//!
//! The connection lives on a thread of its own. Port calls are handed to it and awaited (no
//! async worker waits on a lock or a statement); it runs the calls waiting for it as one
//! transaction (a call that fails has written nothing, or its group is rolled back), and answers
//! them after the commit (group commit: under load one WAL append serves many calls, and no caller
//! sees a write that was not committed). Documents are encoded and decoded by the callers, not
//! on that thread, and so are packed and unpacked: bodies of 512 bytes and more are stored
//! LZ4-packed ([`packed`]). A second thread copies the WAL into the database file in the background
//! ([`start_checkpointer`]), so the syncs of a checkpoint seldom hold up the calls; the two take
//! turns to start the WAL over from its beginning ([`WalBound`]), the database thread's part kept
//! short.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Statement, params};
use shared::ports::limits::{self, check_batch, sqs_allows};
use shared::ports::{
    BackendError, BlobStore, DocBody, DocumentStore, DocumentWrite, FailedEntry, IndexPage, Listed,
    OutgoingMessage, PutDocument, Queue, ReceivedMessage, Versioned, VersionedJson, check_put_all,
};
use tokio::sync::Notify;

use packed::Stored;

mod packed;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "wagate.db";

/// The database file inside the data directory that holds the blobs (raw requests and
/// claim-checks) and the `inbound` queue with its dead letters ([`DataDir`]).
pub const INBOUND_FILE: &str = "wagate-inbound.db";

/// The queues [`INBOUND_FILE`] holds: ingest's queue and its dead-letter queue (a message moves
/// to its dead-letter queue inside one transaction, so the two share a file).
pub const INBOUND_QUEUES: [&str; 2] = ["inbound", "inbound-dlq"];

/// The file whose lock says a gateway owns the data directory.
pub const LOCK_FILE: &str = "wagate.lock";

/// The columns of the queues' messages table ([`SCHEMA`], [`migrate_queue_tables`]).
macro_rules! messages_columns {
    () => {
        "
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0
"
    };
}

/// The columns of the receipts table, keyed by the message they name.
macro_rules! receipts_columns {
    () => {
        "
    seq INTEGER NOT NULL,
    receipt TEXT NOT NULL,
    PRIMARY KEY (seq, receipt)
"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    expires_at INTEGER,
    part TEXT,
    sort TEXT
);
CREATE INDEX IF NOT EXISTS docs_by_index ON docs (part, sort, key) WHERE part IS NOT NULL;
CREATE INDEX IF NOT EXISTS docs_by_expiry ON docs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    bytes BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blobs_by_expiry ON blobs (expires_at);
CREATE TABLE IF NOT EXISTS messages (",
    messages_columns!(),
    ");
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, seq);
CREATE TABLE IF NOT EXISTS receipts (",
    receipts_columns!(),
    ") WITHOUT ROWID;
"
);

/// Brings the queue tables of a database written by an earlier wagate to [`SCHEMA`], for the
/// owner, at its start (in one transaction: a crash part-way leaves them as they were). The
/// messages table was `AUTOINCREMENT`, so every send also updated `sqlite_sequence`; seq numbers
/// may now be used again once the highest message is deleted, which no receipt can confuse, as
/// a message's receipts go with it and each carries a ULID of its own. Receipts were keyed by the
/// receipt with an index by message, two B-trees for every receive and delete; they are now
/// keyed by message then receipt (a receipt names its message: `{queue}:{seq}:{ulid}`). The
/// owner's start releases every lease, so the old receipts are not copied.
fn migrate_queue_tables(conn: &Connection) -> Result<(), BackendError> {
    let sql_of = |name: &str| -> Result<String, BackendError> {
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(sqlite_error)
    };
    let autoincrement = sql_of("messages")?
        .to_ascii_uppercase()
        .contains("AUTOINCREMENT");
    let receipts_by_receipt: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('receipts') \
             WHERE name = 'receipt' AND pk = 1)",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    if !autoincrement && !receipts_by_receipt {
        // Left by a wagate of before started on a database of after.
        return conn
            .execute_batch("DROP INDEX IF EXISTS receipts_by_message")
            .map_err(sqlite_error);
    }
    let mut script = String::from("BEGIN IMMEDIATE;");
    if autoincrement {
        script.push_str(concat!(
            "CREATE TABLE messages_plain (",
            messages_columns!(),
            ");
             INSERT INTO messages_plain (seq, queue, message_id, body, visible_at, received_at,
                     receive_count, leased)
                 SELECT seq, queue, message_id, body, visible_at, received_at, receive_count,
                        leased
                 FROM messages;
             DROP TABLE messages;
             ALTER TABLE messages_plain RENAME TO messages;
             CREATE INDEX messages_by_visibility ON messages (queue, visible_at, seq);"
        ));
    }
    if receipts_by_receipt {
        script.push_str(concat!(
            "DROP TABLE receipts; CREATE TABLE receipts (",
            receipts_columns!(),
            ") WITHOUT ROWID;"
        ));
    }
    script.push_str("COMMIT;");
    conn.execute_batch(&script).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        sqlite_error(e)
    })
}

/// Brings a database written by an earlier wagate to [`SCHEMA`]. Documents and blobs used to be
/// `WITHOUT ROWID` tables keyed by their key: every insert landed on a random page of one
/// B-tree holding the whole (kilobytes long) rows, so a commit wrote many pages. They are now
/// rowid tables (rows appended in insert order) with a unique index on the key. The rows are
/// copied over in one transaction at start; a crash part-way leaves the old tables as they were.
fn migrate(conn: &Connection) -> Result<(), BackendError> {
    let without_rowid = |table: &str| -> Result<bool, BackendError> {
        let sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_error)?;
        Ok(sql.is_some_and(|sql| sql.to_ascii_uppercase().contains("WITHOUT ROWID")))
    };
    let (docs, blobs) = (without_rowid("docs")?, without_rowid("blobs")?);
    if !docs && !blobs {
        return Ok(());
    }
    let mut script = String::from("BEGIN IMMEDIATE;");
    if docs {
        script.push_str(
            "DROP INDEX IF EXISTS docs_by_index; DROP INDEX IF EXISTS docs_by_expiry;
             ALTER TABLE docs RENAME TO docs_before_rowid;",
        );
    }
    if blobs {
        script.push_str(
            "DROP INDEX IF EXISTS blobs_by_expiry; ALTER TABLE blobs RENAME TO blobs_before_rowid;",
        );
    }
    script.push_str(SCHEMA);
    if docs {
        script.push_str(
            "INSERT INTO docs (key, version, body, expires_at, part, sort)
                 SELECT key, version, body, expires_at, part, sort FROM docs_before_rowid;
             DROP TABLE docs_before_rowid;",
        );
    }
    if blobs {
        script.push_str(
            "INSERT INTO blobs (key, bytes, expires_at)
                 SELECT key, bytes, expires_at FROM blobs_before_rowid;
             DROP TABLE blobs_before_rowid;",
        );
    }
    script.push_str("COMMIT;");
    conn.execute_batch(&script).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        sqlite_error(e)
    })
}

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

/// Most calls the database thread commits in one transaction. A call waits for the group it
/// lands in, so this bounds the wait behind a burst.
const MAX_GROUP: usize = 64;

/// The page size of a database this gateway creates (SQLite's default, set all the same).
const PAGE_SIZE: i64 = 4096;

/// The WAL's size at which the gateway starts it over from its beginning (16 MiB; the WAL file
/// keeps about that size once reached, and opening the database reads it back). A tool beside
/// the gateway checkpoints at this size itself, as SQLite does at 1,000 pages.
const WAL_RESTART_BYTES: i64 = 16 * 1024 * 1024;

/// The WAL's size at which the database thread copies it into the database file itself, however
/// much is left to copy ([`WalBound`]): about the most the WAL holds when the checkpointer cannot get the
/// copy short (a slow disk, a tool's long read).
const WAL_LIMIT_BYTES: i64 = 4 * WAL_RESTART_BYTES;

/// Prepared statements rusqlite's cache keeps for the statements whose text is built at run
/// time (the ports' fixed statements are kept by [`Db`]).
const STATEMENT_CACHE: usize = 64;

/// The database thread's connection with the fixed statements it keeps prepared. rusqlite's
/// `prepare_cached` finds a statement by its text: it trims and hashes the text and copies it
/// into a new `Arc<str>` on every use, and hashes it again to put it back, which came to about a
/// fifth of the database thread's instructions. [`Db::cached`] takes `&'static str` and finds
/// the statement by the text's address and length, among the few dozen the ports have.
struct Db<'c> {
    conn: &'c Connection,
    /// Statements not in use, by their text's address and length.
    idle: RefCell<Vec<((usize, usize), Statement<'c>)>>,
}

impl<'c> Db<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// `sql` prepared once and kept: taken out while in use (so statements can be nested, each
    /// its own), put back when dropped. A statement is reset after each use (rusqlite does
    /// that when it finishes or its rows are dropped) and every use binds all its parameters.
    fn cached<'s>(&'s self, sql: &'static str) -> rusqlite::Result<Kept<'s, 'c>> {
        let key = (sql.as_ptr() as usize, sql.len());
        let found = {
            let mut idle = self.idle.borrow_mut();
            idle.iter()
                .position(|(k, _)| *k == key)
                .map(|i| idle.swap_remove(i).1)
        };
        let stmt = match found {
            Some(stmt) => stmt,
            None => self
                .conn
                .prepare_with_flags(sql, rusqlite::PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
        };
        Ok(Kept {
            key,
            stmt: Some(stmt),
            home: self,
        })
    }
}

impl std::ops::Deref for Db<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// A statement of [`Db::cached`], back among the idle ones when dropped.
struct Kept<'s, 'c> {
    key: (usize, usize),
    stmt: Option<Statement<'c>>,
    home: &'s Db<'c>,
}

impl<'c> std::ops::Deref for Kept<'_, 'c> {
    type Target = Statement<'c>;

    fn deref(&self) -> &Statement<'c> {
        self.stmt
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl std::ops::DerefMut for Kept<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.stmt
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Drop for Kept<'_, '_> {
    fn drop(&mut self) {
        if let Some(stmt) = self.stmt.take() {
            self.home.idle.borrow_mut().push((self.key, stmt));
        }
    }
}

/// One port call for the database thread: [`Job::run`] does its statements inside the group's
/// transaction, [`Job::finish`] answers the caller once the group's commit is known.
trait Job: Send {
    /// Runs the call's statements; `false` when it failed.
    fn run(&mut self, conn: &Db<'_>) -> bool;
    /// Whether the call runs in a savepoint of its own, so that when it fails whatever it did
    /// is undone and nothing else ([`run_group`]).
    fn isolated(&self) -> bool;
    /// Answers the caller: the call's result if `committed` is `Ok`, otherwise its own error if
    /// it failed, or the group's (nothing of the group was written).
    fn finish(self: Box<Self>, committed: Result<(), &BackendError>);
}

/// A [`Job`] made of a closure over the connection and where its answer goes.
struct Call<T, F, R> {
    work: Option<F>,
    result: Option<Result<T, BackendError>>,
    reply: R,
    isolated: bool,
}

impl<T, F, R> Job for Call<T, F, R>
where
    T: Send,
    F: FnOnce(&Db<'_>) -> Result<T, BackendError> + Send,
    R: FnOnce(Result<T, BackendError>) + Send,
{
    fn run(&mut self, conn: &Db<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panic in a call fails that call, not the thread every other call needs.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(BackendError::Corrupt("a database call panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn isolated(&self) -> bool {
        self.isolated
    }

    fn finish(self: Box<Self>, committed: Result<(), &BackendError>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            // Nothing of the group was committed; the call failed on its own anyway.
            (Err(_), Some(Err(own))) => Err(own),
            (Err(e), _) => Err(BackendError::Unavailable(e.to_string().into())),
            (Ok(()), None) => Err(BackendError::Unavailable(
                "the database call did not run".into(),
            )),
        };
        (self.reply)(answer);
    }
}

/// The thread that owns the connection: it takes the calls waiting for it (at most
/// [`MAX_GROUP`]), runs them in one transaction ([`run_group`]), commits, and only then answers
/// them. Calls that arrive while a group runs form the next one, so under load one commit (one
/// append to the WAL) serves many calls, and a caller never holds a lock or a worker thread
/// while it waits. Calls a rolled-back group had not run yet lead the next group.
fn serve(
    conn: &Connection,
    jobs: &mpsc::Receiver<Box<dyn Job>>,
    counts: &Counts,
    begin: &'static str,
    bound: Option<&WalBound>,
) {
    let conn = &Db::new(conn);
    let mut not_run: Vec<Box<dyn Job>> = Vec::new();
    loop {
        let mut group = std::mem::take(&mut not_run);
        if group.is_empty() {
            let Ok(first) = jobs.recv() else { return };
            group.reserve(MAX_GROUP);
            group.push(first);
        }
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (answered, committed) = run_group(conn, &mut group, begin);
        counts.calls.fetch_add(answered as u64, Relaxed);
        counts.groups.fetch_add(1, Relaxed);
        if committed.as_ref().is_ok_and(|wrote| *wrote) {
            counts.commits.fetch_add(1, Relaxed);
        }
        if committed.is_err() && !conn.is_autocommit() {
            // Best effort: a failed COMMIT may leave the transaction open.
            let _ = conn.execute_batch("ROLLBACK");
        }
        not_run = group.split_off(answered.min(group.len()));
        let committed = committed.map(drop);
        for job in group {
            job.finish(committed.as_ref().copied());
        }
        // After the answers: a checkpoint here holds up the calls that arrived meanwhile, not
        // the ones just committed.
        if let (Some(bound), Some(frames)) = (bound, WAL_FRAMES.take()) {
            bound.after_commit(conn, frames);
        }
    }
}

/// One group's transaction. Returns how many of the calls it answers (from the first), and
/// whether a call changed rows, or the error that rolled everything back.
///
/// A call that fails has, as a rule, changed nothing: the ports check before they write, and a
/// failed statement leaves no change behind (SQLite undoes it). So calls run without a savepoint
/// each, which would copy every page they touch to a journal in memory (a tenth of the database
/// thread's time at 3,000 webhooks/s, BENCHMARKS.md, session 35); the count of changed rows
/// tells when a failed call did change some (a statement failed after an earlier one wrote, the
/// disk is full), and then the whole group is rolled back: the calls run so far fail, and those
/// after it have not run and lead the next group. The same when SQLite itself rolled the
/// transaction back. [`Job::isolated`] calls ([`Op::isolated`]: receives, batch deletes and
/// maintenance) run in a savepoint as before. A group of reads only
/// appends nothing to the WAL at its commit. `begin` is [`OWNER_BEGIN`] or [`SHARED_BEGIN`].
fn run_group(
    conn: &Db<'_>,
    group: &mut [Box<dyn Job>],
    begin: &'static str,
) -> (usize, Result<bool, BackendError>) {
    let all = group.len();
    let began = (|| {
        if !conn.is_autocommit() {
            // The best-effort ROLLBACK after an earlier group's failure failed too: end that
            // transaction now, or this BEGIN would fail.
            conn.execute_batch("ROLLBACK")?;
        }
        conn.cached(begin)?.execute([]).map(drop)
    })();
    if let Err(e) = began {
        return (all, Err(sqlite_error(e)));
    }
    let mut wrote = false;
    for (i, job) in group.iter_mut().enumerate() {
        let before = conn.total_changes();
        let isolated = job.isolated();
        let ok = if isolated {
            match run_isolated(conn, job.as_mut()) {
                Ok(ok) => ok,
                Err(e) => return (i + 1, Err(sqlite_error(e))),
            }
        } else {
            job.run(conn)
        };
        // The count goes on across a rollback to a savepoint: a failed isolated call's changes
        // are counted, and undone.
        let changed = conn.total_changes() != before;
        if conn.is_autocommit() {
            return (
                i + 1,
                Err(BackendError::Unavailable(
                    "the database rolled the transaction back".into(),
                )),
            );
        }
        if !ok && changed && !isolated {
            let _ = conn.execute_batch("ROLLBACK");
            return (
                i + 1,
                Err(BackendError::Unavailable(
                    "a call failed after it wrote, so nothing of its transaction was kept".into(),
                )),
            );
        }
        wrote |= ok && changed;
    }
    match conn.cached("COMMIT").and_then(|mut s| s.execute([])) {
        Ok(_) => (all, Ok(wrote)),
        Err(e) => (all, Err(sqlite_error(e))),
    }
}

/// Runs `job` in a savepoint of its own: when it fails, whatever it did is undone.
fn run_isolated(conn: &Db<'_>, job: &mut dyn Job) -> rusqlite::Result<bool> {
    conn.cached("SAVEPOINT call")?.execute([])?;
    let ok = job.run(conn);
    if !ok {
        conn.cached("ROLLBACK TO call")?.execute([])?;
    }
    conn.cached("RELEASE call")?.execute([])?;
    Ok(ok)
}

/// How the owner's groups begin: with the write lock taken, so a write late in a group never
/// finds that a tool beside it ([`Database::open_shared`]) wrote since the group's first read.
const OWNER_BEGIN: &str = "BEGIN IMMEDIATE";

/// How a tool's groups begin beside the owner: deferred, so its reads never take the write lock
/// the owner's groups wait for (a write of the tool that meets one of the owner's fails, and is
/// retried like any failed call).
const SHARED_BEGIN: &str = "BEGIN";

/// How often the checkpointer copies what the WAL gained into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// A checkpointer's pass that copied at most this many frames (of the pages committed while the
/// pass before ran) took a millisecond or two, so what is left after it is about as little: the
/// database thread's own checkpoint will be as short.
const SHORT_PASS_FRAMES: i64 = 256;

/// How long the checkpointer waits between passes while the database thread wants the WAL
/// short but a pass copied little and not everything (the checkpoint lock was taken, or a tool's
/// read holds frames back).
const TURN_WAIT: Duration = Duration::from_millis(10);

thread_local! {
    /// The WAL's frame count after the database thread's last commit, from SQLite's WAL hook
    /// ([`note_wal_frames`]), which runs on the thread that commits.
    static WAL_FRAMES: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(Some(frames));
    Ok(())
}

/// How the database thread and the checkpointer take turns to start the WAL over
/// ([`WalBound`]).
#[derive(Debug, Default)]
struct WalTurn {
    /// [`TURN_IDLE`], [`TURN_WANTED`] or [`TURN_READY`].
    state: std::sync::atomic::AtomicU8,
    /// Set when the checkpointer is to stop.
    stopping: std::sync::atomic::AtomicBool,
    /// Passes the checkpointer ran.
    passes: std::sync::atomic::AtomicU64,
    /// Times the database thread saw the WAL start over: frame counts of before are of another
    /// WAL.
    restarts: std::sync::atomic::AtomicU64,
}

/// The WAL is below [`WAL_RESTART_BYTES`] (or the database thread's last checkpoint found the
/// checkpoint lock free, whatever a tool's read held back): the checkpointer copies every
/// [`CHECKPOINT_EVERY`].
const TURN_IDLE: u8 = 0;
/// The WAL has reached [`WAL_RESTART_BYTES`]: the checkpointer copies pass after pass until a
/// pass finds little to copy.
const TURN_WANTED: u8 = 1;
/// A pass found little to copy: the database thread copies the rest itself after its next
/// commit, and the commit after that starts the WAL over.
const TURN_READY: u8 = 2;

/// Keeps the owner's WAL short without holding up the calls for long.
///
/// SQLite starts the WAL over from its beginning only at the start of a write transaction that
/// finds every frame copied into the database file, and a copy of frames has to be synced (the
/// WAL before, the database file after) before they may be overwritten. Under load the database
/// thread commits while the checkpointer copies, so the checkpointer alone never catches up: the
/// database thread has to make the last copy itself, with the calls waiting behind its syncs.
/// That copy used to be whatever the WAL gained since the checkpointer's last pass (up to 100 ms
/// of commits, thousands of pages to sync): 10–25 ms with every call waiting, at every 16 MiB of
/// WAL, a dozen times a second at 2,000 webhooks/s. Now, once the WAL holds
/// [`WAL_RESTART_BYTES`], the checkpointer copies pass after pass, each shorter than the one
/// before, until one finds little to copy; the database thread then copies what is left (a
/// pass's worth of commits) and syncs that, after answering its calls. At [`WAL_LIMIT_BYTES`] it
/// copies whatever is left, as SQLite's automatic checkpoint would.
#[derive(Debug)]
struct WalBound {
    turn: Arc<WalTurn>,
    counts: Arc<Counts>,
    /// The checkpointer, woken when the WAL reaches [`WAL_RESTART_BYTES`].
    checkpointer: std::thread::Thread,
    /// [`WAL_RESTART_BYTES`] and [`WAL_LIMIT_BYTES`] in frames of the database's page size.
    restart_frames: i64,
    limit_frames: i64,
}

impl WalBound {
    /// `restart_bytes`: [`WAL_RESTART_BYTES`] (smaller in tests); the limit is four times it.
    fn new(
        checkpointer: &Checkpointer,
        counts: Arc<Counts>,
        page_size: i64,
        restart_bytes: i64,
    ) -> Option<Self> {
        let page_size = page_size.max(512);
        Some(Self {
            turn: checkpointer.turn.clone(),
            counts,
            checkpointer: checkpointer.thread.as_ref()?.thread().clone(),
            restart_frames: (restart_bytes / page_size).max(1),
            limit_frames: (restart_bytes * (WAL_LIMIT_BYTES / WAL_RESTART_BYTES) / page_size)
                .max(1),
        })
    }

    /// After a commit that left `frames` in the WAL.
    fn after_commit(&self, conn: &Db<'_>, frames: i32) {
        let frames = i64::from(frames);
        let state = &self.turn.state;
        let last = self.counts.wal_frames.swap(frames, Relaxed);
        self.counts.wal_most_frames.fetch_max(frames, Relaxed);
        if frames < last {
            self.counts.wal_restarts.fetch_add(1, Relaxed);
            self.turn.restarts.fetch_add(1, Release);
        }
        if frames < self.restart_frames {
            // Started over (or not yet full).
            state.store(TURN_IDLE, Relaxed);
            return;
        }
        if frames < self.limit_frames && state.load(Acquire) != TURN_READY {
            if state
                .compare_exchange(TURN_IDLE, TURN_WANTED, AcqRel, Acquire)
                .is_ok()
            {
                self.checkpointer.unpark();
            }
            return;
        }
        // What is left is short (or the WAL is at its limit): copy it here, so the next write
        // transaction finds every frame copied and starts the WAL over. Busy (the checkpointer
        // is in a pass): the turn stays ready, so the next commit tries again (unless the
        // checkpointer took it back meanwhile and hands it over after another short pass). Not
        // busy but not all copied (a tool's read holds frames back): idle, and wanted again at
        // the next commit.
        if frames < self.limit_frames {
            self.counts.wal_short_copies.fetch_add(1, Relaxed);
        } else {
            self.counts.wal_limit_copies.fetch_add(1, Relaxed);
        }
        let copied = conn
            .cached("PRAGMA wal_checkpoint(PASSIVE)")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, i64>(0)));
        match copied {
            Ok(0) => state.store(TURN_IDLE, Release),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "the WAL's checkpoint failed; retried"),
        }
    }
}

/// Starts a thread with a connection of its own that runs passive checkpoints every
/// [`CHECKPOINT_EVERY`], and pass after pass while the database thread wants the WAL short
/// ([`WalBound`]): it copies committed pages from the WAL into the database file and syncs
/// both. A passive checkpoint never waits for a lock and never blocks a writer.
fn start_checkpointer(path: &Path) -> Result<Checkpointer, BackendError> {
    let conn = Connection::open(path).map_err(sqlite_error)?;
    // A passive checkpoint never waits, but opening a read of the WAL index may.
    conn.busy_timeout(Duration::from_secs(1))
        .map_err(sqlite_error)?;
    let turn = Arc::new(WalTurn::default());
    let thread = std::thread::Builder::new()
        .name("wagate-checkpoint".into())
        .spawn({
            let turn = turn.clone();
            move || checkpoints(&conn, &turn)
        })
        .map_err(BackendError::unavailable)?;
    Ok(Checkpointer {
        turn,
        thread: Some(thread),
    })
}

/// The checkpointer's loop ([`start_checkpointer`]).
fn checkpoints(conn: &Connection, turn: &WalTurn) {
    // Said once when checkpoints start failing and once when they work again, not ten times a
    // second; the database thread's checkpoint at WAL_LIMIT_BYTES still bounds the WAL.
    let mut failing = false;
    // Frames copied as of the last pass (counted from the WAL's beginning, which moves when the
    // WAL starts over).
    let mut copied_to = 0_i64;
    let mut restarts = 0;
    // Passes in a row that copied nothing while the database thread wants the WAL short: a
    // tool's read holds frames back, so wait longer each time, up to CHECKPOINT_EVERY.
    let mut fruitless = 0_u32;
    while !turn.stopping.load(Acquire) {
        let state = turn.state.load(Acquire);
        if state == TURN_READY {
            // The database thread's turn, after its next commit: a pass now would only make its
            // checkpoint busy. If it makes none meanwhile (nothing more to write), the passes
            // go on, so what it committed last is still copied and synced within
            // CHECKPOINT_EVERY, not left waiting for its next commit.
            std::thread::park_timeout(CHECKPOINT_EVERY);
            let _ = turn
                .state
                .compare_exchange(TURN_READY, TURN_WANTED, AcqRel, Acquire);
            continue;
        }
        turn.passes.fetch_add(1, Relaxed);
        let seen_restarts = turn.restarts.load(Acquire);
        if seen_restarts != restarts {
            // The WAL started over since the last pass: its frames count from 0 again.
            restarts = seen_restarts;
            copied_to = 0;
        }
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        let mut short = false;
        let mut copied = 0;
        match pass {
            // Busy (the database thread's own checkpoint had the lock): nothing known.
            Ok((0, log, done)) => {
                copied = if done >= copied_to {
                    done - copied_to
                } else {
                    done
                };
                copied_to = done;
                short = done == log && copied <= SHORT_PASS_FRAMES;
                if failing {
                    tracing::info!("background checkpoints work again");
                    failing = false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "background checkpoints are failing");
                    failing = true;
                }
            }
        }
        fruitless = if copied == 0 { fruitless + 1 } else { 0 };
        if turn.state.load(Acquire) == TURN_IDLE {
            std::thread::park_timeout(CHECKPOINT_EVERY);
        } else if short {
            // Only if the database thread still wants it: it may have started the WAL over
            // while this pass ran.
            let _ = turn
                .state
                .compare_exchange(TURN_WANTED, TURN_READY, AcqRel, Acquire);
        } else if copied <= SHORT_PASS_FRAMES {
            // Little copied but not all (a pass found the checkpoint lock taken, or a tool's
            // read holds frames back): not again at once, and later each time nothing is.
            let wait = TURN_WAIT.saturating_mul(1 << fruitless.min(4));
            std::thread::park_timeout(wait.min(CHECKPOINT_EVERY));
        }
    }
}

/// The owner's checkpointer thread ([`start_checkpointer`]); dropped, it stops and is waited for.
#[derive(Debug)]
struct Checkpointer {
    turn: Arc<WalTurn>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.turn.stopping.store(true, Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A thread fed through a channel. Dropping it drops the channel's sender, which ends the
/// thread once it has taken what was sent, and waits for that.
struct Worker<T> {
    sender: Option<mpsc::Sender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(
        name: &str,
        run: impl FnOnce(mpsc::Receiver<T>) + Send + 'static,
    ) -> Result<Self, BackendError> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(receiver))
            .map_err(BackendError::unavailable)?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

/// What the database thread did, for reports and tests.
#[derive(Debug, Default)]
struct Counts {
    calls: std::sync::atomic::AtomicU64,
    commits: std::sync::atomic::AtomicU64,
    /// Transactions run (groups), with or without writes.
    groups: std::sync::atomic::AtomicU64,
    /// Calls handed over, per [`Op`].
    by_op: [std::sync::atomic::AtomicU64; Op::ALL.len()],
    /// The owner's WAL ([`WalBound`]): frames after the last commit, times it started over,
    /// the database thread's checkpoints after a short pass of the checkpointer, and at the
    /// limit.
    wal_frames: std::sync::atomic::AtomicI64,
    /// The most frames a commit left in the WAL.
    wal_most_frames: std::sync::atomic::AtomicI64,
    wal_restarts: std::sync::atomic::AtomicU64,
    wal_short_copies: std::sync::atomic::AtomicU64,
    wal_limit_copies: std::sync::atomic::AtomicU64,
}

/// What a call to the database thread does, counted per kind for the load report: the calls a
/// webhook costs, by port method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    DocGet,
    DocPut,
    DocList,
    BlobPut,
    BlobGet,
    QueueSend,
    QueueReceive,
    QueueDelete,
    QueueDeleteBatch,
    QueueVisibility,
    QueueDepth,
    Maintenance,
}

impl Op {
    const ALL: [Op; 12] = [
        Op::DocGet,
        Op::DocPut,
        Op::DocList,
        Op::BlobPut,
        Op::BlobGet,
        Op::QueueSend,
        Op::QueueReceive,
        Op::QueueDelete,
        Op::QueueDeleteBatch,
        Op::QueueVisibility,
        Op::QueueDepth,
        Op::Maintenance,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::DocGet => "document get",
            Op::DocPut => "document put",
            Op::DocList => "document list",
            Op::BlobPut => "blob put",
            Op::BlobGet => "blob get",
            Op::QueueSend => "queue send",
            Op::QueueReceive => "queue receive",
            Op::QueueDelete => "queue delete",
            Op::QueueDeleteBatch => "queue delete batch",
            Op::QueueVisibility => "queue change visibility",
            Op::QueueDepth => "queue depth",
            Op::Maintenance => "maintenance",
        }
    }

    /// Whether calls of this kind run in a savepoint of their own ([`run_group`]): the ports'
    /// calls check before they write, but a receive reads rows again after it moved some to the
    /// dead-letter queue, and a batch delete goes on past a receipt it cannot use, so a row that
    /// cannot be read fails that call alone, not every group it lands in; maintenance may do
    /// anything, schema changes included.
    fn isolated(self) -> bool {
        matches!(
            self,
            Op::Maintenance | Op::QueueReceive | Op::QueueDeleteBatch
        )
    }
}

/// One SQLite database (a file in WAL mode) shared by the stores and queues that live in it. Its
/// connection lives on a thread of its own ([`serve`]); the ports hand it calls.
#[derive(Debug)]
pub struct Database {
    /// Calls handed to the thread, and transactions it committed for them.
    counts: Arc<Counts>,
    /// The owner's background checkpoints ([`start_checkpointer`]), stopped first.
    _checkpointer: Option<Checkpointer>,
    /// The database thread ([`serve`]): dropped, it ends once the calls already handed over are
    /// answered.
    thread: Worker<Box<dyn Job>>,
    /// The owner's lock on [`LOCK_FILE`], held until the data directory's last database is
    /// dropped (after the thread has closed the connection: fields drop in this order).
    _owner: Option<Arc<std::fs::File>>,
    /// The owner's [`WalBound`] in frames: where the WAL is started over, and its limit.
    wal_bound_frames: Option<(i64, i64)>,
}

impl Database {
    /// Opens (creating when missing) `DIR/wagate.db`, creating `dir` too, as the one database
    /// of a data directory (tests; a gateway opens its [`DataDir`]). Messages a previous
    /// process had received but not finished with are made visible again at once: that process
    /// is gone, so nobody will delete them, and waiting out their visibility timeout (up to 18
    /// minutes) would only delay the retry.
    pub fn open_dir(dir: &Path) -> Result<Arc<Self>, BackendError> {
        Self::open_dir_with(dir, WAL_RESTART_BYTES)
    }

    /// [`Database::open_dir`] with the WAL started over at `restart_bytes` (tests use less).
    fn open_dir_with(dir: &Path, restart_bytes: i64) -> Result<Arc<Self>, BackendError> {
        let lock = lock_dir(dir)?;
        Self::open_owned(&dir.join(DATABASE_FILE), lock, restart_bytes)
    }

    /// Opens the database file at `path` for the gateway that holds `lock`, the data
    /// directory's.
    fn open_owned(
        path: &Path,
        lock: Arc<std::fs::File>,
        restart_bytes: i64,
    ) -> Result<Arc<Self>, BackendError> {
        let conn = Connection::open(path).map_err(sqlite_error)?;
        Self::setup(conn, Some((lock, path, restart_bytes))).map(Arc::new)
    }

    /// Opens the database of a data directory another process owns, to look at it (queue
    /// depths, dead letters): no lock taken, no lease released. Writes are still transactions,
    /// safe beside the owner's.
    pub fn open_shared(dir: &Path) -> Result<Arc<Self>, BackendError> {
        Self::open_shared_file(&dir.join(DATABASE_FILE))
    }

    /// A tool creates no file: the gateway does.
    fn open_shared_file(path: &Path) -> Result<Arc<Self>, BackendError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
        Self::setup(conn, None).map(Arc::new)
    }

    /// `owner`: the lock on the data directory, the database's path and the WAL's size at which
    /// it is started over, for the gateway that owns it (`None` for a tool beside it).
    fn setup(
        conn: Connection,
        owner: Option<(Arc<std::fs::File>, &Path, i64)>,
    ) -> Result<Self, BackendError> {
        // The owner releases a killed predecessor's leases and begins its groups with the write
        // lock; a tool beside it does neither.
        let begin = if owner.is_some() {
            OWNER_BEGIN
        } else {
            SHARED_BEGIN
        };
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sqlite_error)?;
        // WAL: readers never block the writer and a commit appends to the log; NORMAL: the log
        // is synced at checkpoints, not at each commit (durable through a process crash). A
        // page cache of 4 MiB: the end of every write transaction walks the cache's hash
        // table, so a larger one (32 MiB) cost more CPU at each commit than it saved in reads
        // (the kernel's page cache holds the rest of the file).
        //
        // A new database gets pages of 4 KiB, the size of the kernel's pages (a database
        // written before keeps its size, as `page_size` only applies before the first table).
        // Pages of 1 KiB, the default from session 23 to 33, wrote half the bytes to disk, since
        // a commit appends every page it changed to the WAL; once checkpoints left the database
        // thread, 4 KiB pages cost the same CPU and cut ingest's p99 by a third at 2,000 and
        // 2,800 webhooks/s: a fifth of the WAL frames to write (two `pwrite`s each) and no
        // partial kernel pages in the database file for a checkpoint to read back and sync
        // (BENCHMARKS.md, session 33).
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -4096;"
        ))
        .map_err(sqlite_error)?;
        // A tool beside the gateway checkpoints when the WAL holds WAL_RESTART_BYTES, not at
        // SQLite's 1,000 pages (its writes are few). The owner's checkpoints are its own
        // ([`WalBound`]): SQLite's automatic one would sync whatever the WAL gained since the
        // checkpointer's last pass with every call waiting.
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sqlite_error)?;
        let pages = WAL_RESTART_BYTES / page_size.max(512);
        conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages};"))
            .map_err(sqlite_error)?;
        // Every statement of the ports is prepared once and kept: more of them are in use than
        // rusqlite keeps by default (16), and preparing again costs more than running them.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrate(&conn)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        // Only once the database is in WAL mode: the checkpointer's connection finds it so.
        let counts = Arc::new(Counts::default());
        let (owner, checkpointer, bound) = match owner {
            Some((lock, path, restart_bytes)) => {
                migrate_queue_tables(&conn)?;
                Self::release_leases(&conn)?;
                conn.execute_batch(&format!("DROP INDEX IF EXISTS {MOVED_INDEX}"))
                    .map_err(sqlite_error)?;
                let checkpointer = start_checkpointer(path)?;
                let bound = WalBound::new(&checkpointer, counts.clone(), page_size, restart_bytes);
                // In place of SQLite's automatic checkpoint (one hook per connection).
                conn.wal_hook(Some(note_wal_frames));
                (Some(lock), Some(checkpointer), bound)
            }
            None => (None, None, None),
        };
        let wal_bound_frames = bound.as_ref().map(|b| (b.restart_frames, b.limit_frames));
        let thread = Worker::spawn("wagate-sqlite", {
            let counts = counts.clone();
            move |jobs| serve(&conn, &jobs, &counts, begin, bound.as_ref())
        })?;
        Ok(Self {
            counts,
            _checkpointer: checkpointer,
            thread,
            _owner: owner,
            wal_bound_frames,
        })
    }

    /// Calls run so far, and the transactions committed for them in which a call changed rows
    /// (fewer than the calls that write when group commit pays).
    pub fn calls_and_commits(&self) -> (u64, u64) {
        (
            self.counts.calls.load(Relaxed),
            self.counts.commits.load(Relaxed),
        )
    }

    /// The owner's WAL so far: the times it started over from its beginning, and the database
    /// thread's own checkpoints before that, after a short pass of the checkpointer and at the
    /// limit ([`WalBound`]).
    pub fn wal_restarts(&self) -> (u64, u64, u64) {
        let c = &self.counts;
        (
            c.wal_restarts.load(Relaxed),
            c.wal_short_copies.load(Relaxed),
            c.wal_limit_copies.load(Relaxed),
        )
    }

    /// The most frames a commit of the owner left in its WAL so far.
    pub fn wal_most_frames(&self) -> i64 {
        self.counts.wal_most_frames.load(Relaxed)
    }

    /// The frames at which the owner's WAL is started over, and its limit (`None` for a tool).
    pub fn wal_bound_frames(&self) -> Option<(i64, i64)> {
        self.wal_bound_frames
    }

    /// Calls handed to the database thread so far, per kind (those not made yet left out), and
    /// the transactions it ran for them.
    pub fn calls_by_kind(&self) -> (Vec<(&'static str, u64)>, u64) {
        let calls = Op::ALL
            .iter()
            .zip(&self.counts.by_op)
            .map(|(op, n)| (op.name(), n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        (calls, self.counts.groups.load(Relaxed))
    }

    /// Hands `work` to the database thread; `reply` gets its result once its group committed.
    fn submit<T, F, R>(&self, isolated: bool, work: F, reply: R) -> Result<(), BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, BackendError> + Send + 'static,
        R: FnOnce(Result<T, BackendError>) + Send + 'static,
    {
        let job = Box::new(Call {
            work: Some(work),
            result: None,
            reply,
            isolated,
        });
        self.thread
            .sender
            .as_ref()
            .ok_or_else(|| BackendError::Unavailable("the database is closed".into()))?
            .send(job)
            .map_err(|_| BackendError::Unavailable("the database thread stopped".into()))
    }

    /// Runs `work` on the database thread and waits for its commit without holding a thread.
    async fn call<T, F>(&self, op: Op, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Db<'_>) -> Result<T, BackendError> + Send + 'static,
    {
        self.count(op);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(op.isolated(), work, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| BackendError::Unavailable("the database thread stopped".into()))?
    }

    fn count(&self, op: Op) {
        if let Some(n) = self.counts.by_op.get(op as usize) {
            n.fetch_add(1, Relaxed);
        }
    }

    fn release_leases(conn: &Connection) -> Result<(), BackendError> {
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
    /// space), at most `limit` of each, oldest expiry first. The pipeline's calls run between
    /// two of these: each one is a call of its own.
    pub async fn evict_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Evicted, BackendError> {
        let now = millis(now);
        self.call(Op::Maintenance, move |conn| {
            let evict = |table: &str| -> Result<u64, BackendError> {
                let sql = format!(
                    "DELETE FROM {table} WHERE key IN (SELECT key FROM {table} \
                     WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)"
                );
                let n = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.execute(params![now, limit]))
                    .map_err(sqlite_error)?;
                Ok(n as u64)
            };
            Ok(Evicted {
                documents: evict("docs")?,
                blobs: evict("blobs")?,
            })
        })
        .await
    }

    /// The database's size in bytes (pages in use and free, without the WAL).
    pub async fn size_bytes(&self) -> Result<u64, BackendError> {
        self.call(Op::Maintenance, |conn| {
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(sqlite_error)?;
            let size: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(sqlite_error)?;
            Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
        })
        .await
    }
}

/// Takes the lock on `DIR/wagate.lock` (creating `dir`), or says the directory is in use.
fn lock_dir(dir: &Path) -> Result<Arc<std::fs::File>, BackendError> {
    std::fs::create_dir_all(dir).map_err(BackendError::unavailable)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(BackendError::unavailable)?;
    match lock.try_lock() {
        Ok(()) => Ok(Arc::new(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackendError::Rejected(format!(
            "the data directory {} is in use by another wagate (one gateway per data directory)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(BackendError::unavailable(e)),
    }
}

/// A gateway's data directory: two SQLite databases, each with its own thread, WAL and
/// checkpointer. [`INBOUND_FILE`] holds what ingest writes (the raw request, claim-checks and
/// the `inbound` queue, [`INBOUND_QUEUES`]); [`DATABASE_FILE`] the documents and the queues
/// after ingest. Ingest's calls so never wait in a group behind the stages' document writes, nor
/// behind the main file's checkpoints (they share their file's groups with the inbound stage's
/// receives and deletes and with claim-checked tasks' blobs); every port call is committed on
/// its own either way (as a DynamoDB write and an SQS send are), so nothing needs a transaction
/// across the two. Both are owned through one lock, [`LOCK_FILE`].
#[derive(Debug, Clone)]
pub struct DataDir {
    main: Arc<Database>,
    inbound: Arc<Database>,
}

impl DataDir {
    /// Opens (creating when missing) the data directory `dir` for the gateway that owns it. A
    /// directory written before the inbound file existed has its blobs and inbound messages
    /// moved there first ([`move_inbound_rows`]).
    pub fn open(dir: &Path) -> Result<Self, BackendError> {
        let lock = lock_dir(dir)?;
        let inbound =
            Database::open_owned(&dir.join(INBOUND_FILE), lock.clone(), WAL_RESTART_BYTES)?;
        move_inbound_rows(dir)?;
        let main = Database::open_owned(&dir.join(DATABASE_FILE), lock, WAL_RESTART_BYTES)?;
        Ok(Self { main, inbound })
    }

    /// Opens the data directory of a gateway running beside, to look at it
    /// ([`Database::open_shared`], for both files).
    pub fn open_shared(dir: &Path) -> Result<Self, BackendError> {
        Ok(Self {
            main: Database::open_shared_file(&dir.join(DATABASE_FILE))?,
            inbound: Database::open_shared_file(&dir.join(INBOUND_FILE))?,
        })
    }

    /// Everything in one database (tests of the ports).
    pub fn single(db: Arc<Database>) -> Self {
        Self {
            main: db.clone(),
            inbound: db,
        }
    }

    /// The documents and the queues after ingest.
    pub fn main(&self) -> &Arc<Database> {
        &self.main
    }

    /// The blobs and [`INBOUND_QUEUES`].
    pub fn inbound(&self) -> &Arc<Database> {
        &self.inbound
    }

    /// The database that holds queue `name`.
    pub fn for_queue(&self, name: &str) -> &Arc<Database> {
        if INBOUND_QUEUES.contains(&name) {
            &self.inbound
        } else {
            &self.main
        }
    }

    /// The databases, each once, with a name for reports (`main`, `inbound`).
    pub fn databases(&self) -> Vec<(&'static str, &Arc<Database>)> {
        if Arc::ptr_eq(&self.main, &self.inbound) {
            vec![("main", &self.main)]
        } else {
            vec![("main", &self.main), ("inbound", &self.inbound)]
        }
    }

    /// Deletes what expired at `now` from every database, in calls of at most `limit` rows of
    /// each table ([`Database::evict_expired`]); returns how many documents and blobs went.
    pub async fn evict_expired(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, BackendError> {
        let mut total = 0;
        for (_, db) in self.databases() {
            loop {
                let evicted = db.evict_expired(now, limit).await?;
                total += evicted.documents + evicted.blobs;
                if evicted.documents < u64::from(limit) && evicted.blobs < u64::from(limit) {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// The databases' size in bytes ([`Database::size_bytes`], summed).
    pub async fn size_bytes(&self) -> Result<u64, BackendError> {
        let mut total = 0_u64;
        for (_, db) in self.databases() {
            total = total.saturating_add(db.size_bytes().await?);
        }
        Ok(total)
    }
}

/// Moves the blobs and the messages of [`INBOUND_QUEUES`] that a wagate before the inbound file
/// left in [`DATABASE_FILE`] over to [`INBOUND_FILE`] (open already, as the owner, with no calls
/// made yet). Copies and deletion are transactions apart, as SQLite's commits are atomic per
/// file, not across attached files in WAL mode: the copies commit in the inbound file (blobs in
/// batches of [`MOVE_BATCH`], then the messages), then the originals are deleted, so a crash
/// before the deletion leaves both and the next start copies again. The copy skips a blob
/// whose key, or a message whose queue and id, the inbound file already holds, so it is done
/// once; leases of the process before are released in the copy (its receipts are deleted with
/// the originals).
fn move_inbound_rows(dir: &Path) -> Result<(), BackendError> {
    let main = dir.join(DATABASE_FILE);
    if !main.exists() {
        return Ok(());
    }
    let conn = Connection::open(&main).map_err(sqlite_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sqlite_error)?;
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('blobs', 'messages', 'receipts')",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    if tables < 3 {
        return Ok(());
    }
    let queues = INBOUND_QUEUES.map(|q| format!("'{q}'")).join(", ");
    let queues = format!("({queues})");
    let left: bool = conn
        .query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM blobs) \
                 OR EXISTS (SELECT 1 FROM messages WHERE queue IN {queues})"
            ),
            [],
            |r| r.get(0),
        )
        .map_err(sqlite_error)?;
    if !left {
        return Ok(());
    }
    let inbound = dir.join(INBOUND_FILE);
    let inbound = inbound
        .to_str()
        .ok_or_else(|| BackendError::Rejected(format!("{} is not UTF-8", inbound.display())))?;
    conn.execute("ATTACH DATABASE ?1 AS moved", [inbound])
        .map_err(sqlite_error)?;
    // The blobs (raw requests for days, large tasks for weeks: gigabytes, maybe) in batches,
    // each committed on its own, so the inbound file's WAL holds one batch, not all of them.
    // By key, which both the blobs table of today and its earlier `WITHOUT ROWID` form index.
    let mut last: Option<String> = None;
    loop {
        let bound = last.as_deref().map_or("", |_| "WHERE key > ?1");
        let batch = format!("SELECT key FROM main.blobs {bound} ORDER BY key LIMIT {MOVE_BATCH}");
        let keys: Vec<String> = {
            let mut stmt = conn.prepare(&batch).map_err(sqlite_error)?;
            stmt.query_map(rusqlite::params_from_iter(&last), |r| r.get(0))
                .and_then(Iterator::collect)
                .map_err(sqlite_error)?
        };
        let (Some(first), Some(end)) = (keys.first(), keys.last()) else {
            break;
        };
        // One statement: a transaction of its own.
        conn.execute(
            "INSERT OR IGNORE INTO moved.blobs (key, bytes, expires_at)
                 SELECT key, bytes, expires_at FROM main.blobs WHERE key BETWEEN ?1 AND ?2",
            [first, end],
        )
        .map_err(sqlite_error)?;
        if keys.len() < MOVE_BATCH {
            break;
        }
        last = Some(end.clone());
    }
    let script = format!(
        "BEGIN IMMEDIATE;
         CREATE INDEX IF NOT EXISTS moved.{MOVED_INDEX} ON messages (queue, message_id);
         INSERT INTO moved.messages
                 (queue, message_id, body, visible_at, received_at, receive_count, leased)
             SELECT queue, message_id, body,
                    CASE WHEN leased = 1 THEN {now} ELSE visible_at END,
                    received_at, receive_count, 0
             FROM main.messages AS m
             WHERE queue IN {queues} AND NOT EXISTS (
                 SELECT 1 FROM moved.messages AS i
                 WHERE i.queue = m.queue AND i.message_id = m.message_id)
             ORDER BY seq;
         COMMIT;
         BEGIN IMMEDIATE;
         DELETE FROM main.receipts
             WHERE seq IN (SELECT seq FROM main.messages WHERE queue IN {queues});
         DELETE FROM main.messages WHERE queue IN {queues};
         DELETE FROM main.blobs;
         COMMIT;",
        now = now_millis(),
    );
    conn.execute_batch(&script).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        sqlite_error(e)
    })?;
    // The move is done: a failure to tidy up does not fail the start (the next owner's start
    // drops the index).
    let _ = conn.execute_batch(&format!(
        "DROP INDEX IF EXISTS moved.{MOVED_INDEX}; DETACH DATABASE moved;"
    ));
    Ok(())
}

/// Blobs [`move_inbound_rows`] copies in one transaction.
const MOVE_BATCH: usize = 200;

/// The index [`move_inbound_rows`] finds moved messages by while it runs; dropped at every start
/// of an owner in case a crash left it.
const MOVED_INDEX: &str = "messages_moved";

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

/// One write of [`DocumentStore::put_all`], owned so it can go to the database thread, its body
/// already encoded (by the caller, not by that thread).
struct OwnedPut {
    key: String,
    expected: Option<u64>,
    body: Stored,
    now: i64,
    expires_at: Option<i64>,
    index: Option<(String, String)>,
}

/// Writes every put if each one's stored version is its expected one; `false`, writing
/// nothing, otherwise.
fn put_all_in(conn: &Db<'_>, puts: &[OwnedPut]) -> Result<bool, BackendError> {
    let mut current = conn
        .cached(
            "SELECT version FROM docs WHERE key = ?1 \
             AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .map_err(sqlite_error)?;
    // Everything that can fail is checked before anything is written ([`run_group`]).
    let mut versions = Vec::with_capacity(puts.len());
    for p in puts {
        let version: Option<i64> = current
            .query_row(params![p.key, p.now], |r| r.get(0))
            .optional()
            .map_err(sqlite_error)?;
        if version.map(version_of).transpose()? != p.expected {
            return Ok(false);
        }
        versions.push(
            i64::try_from(p.expected.unwrap_or(0) + 1)
                .map_err(|_| BackendError::Rejected("version out of range".into()))?,
        );
    }
    let mut upsert = conn
        .cached(
            "INSERT INTO docs (key, version, body, expires_at, part, sort) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (key) DO UPDATE SET version = excluded.version, \
             body = excluded.body, expires_at = excluded.expires_at, \
             part = excluded.part, sort = excluded.sort",
        )
        .map_err(sqlite_error)?;
    for (p, version) in puts.iter().zip(versions) {
        let (part, sort) = p
            .index
            .as_ref()
            .map_or((None, None), |(part, sort)| (Some(part), Some(sort)));
        upsert
            .execute(params![p.key, version, p.body, p.expires_at, part, sort])
            .map_err(sqlite_error)?;
    }
    Ok(true)
}

#[async_trait]
impl DocumentStore for SqliteDocumentStore {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        // Decoded here, on the caller's thread.
        self.get_json(key, now)
            .await?
            .map(|d| d.decode())
            .transpose()
    }

    async fn get_json_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.get_json(key, now).await
    }

    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        let (key, now) = (key.to_owned(), millis(now));
        let row: Option<(i64, Stored)> = self
            .db
            .call(Op::DocGet, move |conn| {
                conn.cached(
                    "SELECT version, body FROM docs WHERE key = ?1 \
                     AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .and_then(|mut s| {
                    s.query_row(params![key, now], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sqlite_error)
            })
            .await?;
        row.map(|(version, body)| {
            Ok(VersionedJson {
                version: version_of(version)?,
                json: body.into_json()?.into(),
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
        let body = body.into();
        self.put_all(&[PutDocument { key, body, write }]).await
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        let body = DocBody::Json(json);
        self.put_all(&[PutDocument { key, body, write }]).await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        check_put_all(puts)?;
        let puts: Vec<OwnedPut> = puts
            .iter()
            .map(|p| {
                Ok(OwnedPut {
                    key: p.key.to_owned(),
                    expected: p.write.expected,
                    body: Stored::pack(p.body.text()?.into_owned()),
                    now: millis(p.write.now),
                    expires_at: p.write.expires_at.map(millis),
                    index: p.write.index.map(|i| (i.partition.clone(), i.sort.clone())),
                })
            })
            .collect::<Result<_, BackendError>>()?;
        self.db
            .call(Op::DocPut, move |conn| put_all_in(conn, &puts))
            .await
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        let sql = if page.descending {
            "SELECT key, sort, version, body FROM docs WHERE part = ?1 \
             AND (?2 IS NULL OR sort > ?2) AND (?3 IS NULL OR sort < ?3) \
             AND (expires_at IS NULL OR expires_at > ?4) ORDER BY sort DESC, key DESC"
        } else {
            "SELECT key, sort, version, body FROM docs WHERE part = ?1 \
             AND (?2 IS NULL OR sort > ?2) AND (?3 IS NULL OR sort < ?3) \
             AND (expires_at IS NULL OR expires_at > ?4) ORDER BY sort ASC, key ASC"
        };
        let limit = page.limit;
        let (partition, after, before, now) = (
            page.partition.to_owned(),
            page.after.map(str::to_owned),
            page.before.map(str::to_owned),
            millis(now),
        );
        let rows: Vec<(String, String, i64, Stored)> = self
            .db
            .call(Op::DocList, move |conn| {
                conn.cached(sql)
                    .and_then(|mut s| {
                        s.query_map(params![partition, after, before, now], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .take(limit)
                        .collect()
                    })
                    .map_err(sqlite_error)
            })
            .await?;
        rows.into_iter()
            .map(|(key, sort, version, body)| {
                Ok(Listed {
                    key,
                    sort,
                    doc: VersionedJson {
                        version: version_of(version)?,
                        json: body.into_json()?.into(),
                    }
                    .decode()?,
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
        let (key, bytes, expires_at) = (key.to_owned(), bytes.to_vec(), millis(expires_at));
        self.db
            .call(Op::BlobPut, move |conn| {
                conn.cached(
                    "INSERT INTO blobs (key, bytes, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes, \
                     expires_at = excluded.expires_at",
                )
                .and_then(|mut s| s.execute(params![key, bytes, expires_at]))
                .map_err(sqlite_error)?;
                Ok(())
            })
            .await
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        let (key, now) = (key.to_owned(), millis(now));
        self.db
            .call(Op::BlobGet, move |conn| {
                conn.cached("SELECT bytes FROM blobs WHERE key = ?1 AND expires_at > ?2")
                    .and_then(|mut s| s.query_row(params![key, now], |r| r.get(0)).optional())
                    .map_err(sqlite_error)
            })
            .await
    }
}

/// Takes up to `max` messages of `queue` visible at `now`, hiding them until `hidden_until`
/// (moving those received too often to the dead-letter queue `dead_letter`: its name and
/// `maxReceiveCount`). Returns them, whether any moved, and when the next hidden one turns
/// visible.
fn take_visible_in(
    conn: &Db<'_>,
    queue: &str,
    dead_letter: Option<(&str, u32)>,
    max: usize,
    now: i64,
    hidden_until: i64,
) -> Result<(Vec<ReceivedMessage>, bool, Option<i64>), BackendError> {
    let mut out = Vec::new();
    let mut moved = false;
    let mut visible = conn
        .cached(
            "SELECT seq, message_id, body, receive_count FROM messages \
             WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, seq",
        )
        .map_err(sqlite_error)?;
    let mut lease = conn
        .cached(
            "UPDATE messages SET receive_count = ?2, visible_at = ?3, received_at = ?4, \
             leased = 1 WHERE seq = ?1",
        )
        .map_err(sqlite_error)?;
    let mut receipt_of = conn
        .cached("INSERT INTO receipts (receipt, seq) VALUES (?1, ?2)")
        .map_err(sqlite_error)?;
    let mut to_dead_letter = conn
        .cached(
            "UPDATE messages SET queue = ?2, visible_at = ?3, received_at = ?3, \
             receive_count = 0, leased = 0 WHERE seq = ?1",
        )
        .map_err(sqlite_error)?;
    let mut forget = conn
        .cached("DELETE FROM receipts WHERE seq = ?1")
        .map_err(sqlite_error)?;
    // Messages moved to the dead-letter queue do not count towards `max`: look again while a
    // pass moved some. A message taken with zero visibility is visible again at once: it is
    // taken once per call.
    let mut taken: Vec<i64> = Vec::new();
    loop {
        // No `LIMIT ?` in the statement: SQLite prepares a statement again whenever the value
        // bound to its LIMIT changes. The index gives the order, so rows are read only as far
        // as they are taken.
        let want = max.saturating_sub(out.len());
        let rows: Vec<(i64, String, String, u32)> = visible
            .query_map(params![queue, now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.take(want).collect())
            .map_err(sqlite_error)?;
        let mut moved_now = false;
        for (seq, message_id, body, count) in rows {
            if taken.contains(&seq) {
                continue;
            }
            match dead_letter {
                Some((dlq, max_receives)) if count >= max_receives => {
                    to_dead_letter
                        .execute(params![seq, dlq, now])
                        .map_err(sqlite_error)?;
                    forget.execute(params![seq]).map_err(sqlite_error)?;
                    moved_now = true;
                }
                _ => {
                    let receive_count = count.saturating_add(1);
                    lease
                        .execute(params![seq, receive_count, hidden_until, now])
                        .map_err(sqlite_error)?;
                    let receipt = format!("{queue}:{seq}:{}", ulid::Ulid::new());
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
    let next_visible: Option<i64> = conn
        .cached("SELECT MIN(visible_at) FROM messages WHERE queue = ?1")
        .and_then(|mut s| s.query_row(params![queue], |r| r.get(0)))
        .map_err(sqlite_error)?;
    Ok((out, moved, next_visible))
}

/// The message a receipt names, if the receipt was issued by `queue` and the message is still
/// there. A receipt is `{queue}:{seq}:{ulid}` ([`take_visible_in`]); receipts are found by the
/// message they name.
fn seq_of(conn: &Db<'_>, queue: &str, receipt: &str) -> Result<i64, BackendError> {
    let not_valid =
        || BackendError::Rejected(format!("receipt handle not valid for queue {queue}"));
    let named: i64 = receipt
        .rsplit(':')
        .nth(1)
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(not_valid)?;
    conn.cached(
        "SELECT m.seq FROM receipts r JOIN messages m ON m.seq = r.seq \
         WHERE r.seq = ?3 AND r.receipt = ?1 AND m.queue = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![receipt, queue, named], |r| r.get(0))
            .optional()
    })
    .map_err(sqlite_error)?
    .ok_or_else(not_valid)
}

/// Deletes message `seq` and its receipts.
fn delete_message(conn: &Db<'_>, seq: i64) -> Result<(), BackendError> {
    conn.cached("DELETE FROM messages WHERE seq = ?1")
        .and_then(|mut s| s.execute(params![seq]))
        .map_err(sqlite_error)?;
    conn.cached("DELETE FROM receipts WHERE seq = ?1")
        .and_then(|mut s| s.execute(params![seq]))
        .map_err(sqlite_error)?;
    Ok(())
}

/// Where a [`SqliteQueue`] sends messages received too often.
#[derive(Debug, Clone)]
pub struct SqliteDeadLetter {
    /// The dead-letter queue (in the same database).
    pub queue: Arc<SqliteQueue>,
    /// Receives after which a message moves there (SQS `maxReceiveCount`).
    pub max_receives: u32,
}

/// An SQS-like queue in SQLite: messages survive the process; one table holds every queue of a
/// database.
#[derive(Debug)]
pub struct SqliteQueue {
    db: Arc<Database>,
    name: Arc<str>,
    notify: Notify,
    dead_letter: Option<SqliteDeadLetter>,
}

impl SqliteQueue {
    /// Queue `name` of `db`, with no dead-letter queue.
    pub fn new(db: Arc<Database>, name: impl Into<String>) -> Self {
        Self {
            db,
            name: name.into().into(),
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
    pub async fn depth(&self) -> Result<u64, BackendError> {
        let name = self.name.clone();
        let n: i64 = self
            .db
            .call(Op::QueueDepth, move |conn| {
                conn.cached("SELECT COUNT(*) FROM messages WHERE queue = ?1")
                    .and_then(|mut s| s.query_row(params![&*name], |r| r.get(0)))
                    .map_err(sqlite_error)
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Takes up to `max` visible messages (moving those received too often to the dead-letter
    /// queue); also returns when the next hidden one turns visible.
    async fn take_visible(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), BackendError> {
        let now = now_millis();
        let hidden_until = now.saturating_add(duration_millis(visibility));
        let name = self.name.clone();
        let dead_letter = self
            .dead_letter
            .as_ref()
            .map(|dl| (dl.queue.name.clone(), dl.max_receives));
        let (out, moved, next_visible) = self
            .db
            .call(Op::QueueReceive, move |conn| {
                let dead_letter = dead_letter.as_ref().map(|(q, n)| (&**q, *n));
                take_visible_in(conn, &name, dead_letter, max, now, hidden_until)
            })
            .await?;
        if moved && let Some(dl) = &self.dead_letter {
            dl.queue.notify.notify_waiters();
        }
        Ok((out, next_visible))
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
        let mut rows = Vec::with_capacity(messages.len());
        for m in messages {
            if sqs_allows(&m.body) {
                let visible_at = now.saturating_add(duration_millis(m.delay.unwrap_or_default()));
                rows.push((ulid::Ulid::new().to_string(), m.body.clone(), visible_at));
            } else {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    retryable: false,
                    reason: "InvalidMessageContents".into(),
                });
            }
        }
        let name = self.name.clone();
        self.db
            .call(Op::QueueSend, move |conn| {
                let mut insert = conn
                    .cached(
                        "INSERT INTO messages (queue, message_id, body, visible_at, received_at, \
                         receive_count) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
                    )
                    .map_err(sqlite_error)?;
                for (message_id, body, visible_at) in &rows {
                    insert
                        .execute(params![&*name, message_id, body, visible_at, now])
                        .map_err(sqlite_error)?;
                }
                Ok(())
            })
            .await?;
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
            let (got, next_visible) = self.take_visible(max, visibility).await?;
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
        let (name, receipt) = (self.name.clone(), receipt.to_owned());
        self.db
            .call(Op::QueueDelete, move |conn| {
                delete_message(conn, seq_of(conn, &name, &receipt)?)
            })
            .await
    }

    async fn delete_batch(
        &self,
        receipts: &[&str],
    ) -> Result<Vec<(usize, BackendError)>, BackendError> {
        if receipts.len() > limits::MAX_BATCH_ENTRIES {
            return Err(BackendError::Rejected(format!(
                "at most {} entries per batch",
                limits::MAX_BATCH_ENTRIES
            )));
        }
        let name = self.name.clone();
        let receipts: Vec<String> = receipts.iter().map(|r| (*r).to_owned()).collect();
        // One call: the deletes of a batch share a transaction, as they would share a
        // DeleteMessageBatch request.
        self.db
            .call(Op::QueueDeleteBatch, move |conn| {
                let mut failed = Vec::new();
                for (i, receipt) in receipts.iter().enumerate() {
                    match seq_of(conn, &name, receipt) {
                        Ok(seq) => delete_message(conn, seq)?,
                        Err(e @ BackendError::Rejected(_)) => failed.push((i, e)),
                        Err(e) => return Err(e),
                    }
                }
                Ok(failed)
            })
            .await
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
        let visibility = duration_millis(visibility);
        let (name, receipt) = (self.name.clone(), receipt.to_owned());
        self.db
            .call(Op::QueueVisibility, move |conn| {
                let seq = seq_of(conn, &name, &receipt)?;
                let received_at: i64 = conn
                    .cached("SELECT received_at FROM messages WHERE seq = ?1")
                    .and_then(|mut s| s.query_row(params![seq], |r| r.get(0)))
                    .map_err(sqlite_error)?;
                // As SQS: hidden at most 12 hours from the receive, not from this call.
                let max = duration_millis(Duration::from_secs(limits::MAX_VISIBILITY_SECS));
                if now.saturating_sub(received_at) + visibility > max {
                    return Err(BackendError::Rejected(
                        "visibility would end more than 12 hours after the message was received"
                            .into(),
                    ));
                }
                // No longer a lease a restart releases: the consumer chose when it comes back.
                conn.cached("UPDATE messages SET visible_at = ?2, leased = 0 WHERE seq = ?1")
                    .and_then(|mut s| s.execute(params![seq, now.saturating_add(visibility)]))
                    .map_err(sqlite_error)?;
                Ok(())
            })
            .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        self.depth().await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database thread's statements: prepared once each and reused, several in use at once
    /// (the same text too), usable again after one failed.
    #[test]
    fn kept_statements_are_prepared_once_and_come_back_after_use_and_failure() {
        const INSERT: &str = "INSERT INTO t (k, v) VALUES (?1, ?2)";
        const SELECT: &str = "SELECT v FROM t WHERE k = ?1";
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
            .unwrap();
        let db = Db::new(&conn);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            db.cached(INSERT).unwrap().execute(params![k, v]).unwrap();
        }
        assert_eq!(db.idle.borrow().len(), 1, "one statement, reused");
        // A key already there fails the insert; the statement is fine for the next one.
        assert!(db.cached(INSERT).unwrap().execute(params!["a", 9]).is_err());
        db.cached(INSERT).unwrap().execute(params!["d", 4]).unwrap();
        assert_eq!(db.idle.borrow().len(), 1);
        // Two of the same text at once, each its own statement, both kept afterwards.
        {
            let mut outer = db.cached(SELECT).unwrap();
            let mut rows = outer.query(params!["a"]).unwrap();
            let a: i64 = rows.next().unwrap().unwrap().get(0).unwrap();
            let mut inner = db.cached(SELECT).unwrap();
            let b: i64 = inner.query_row(params!["b"], |r| r.get(0)).unwrap();
            assert_eq!((a, b), (1, 2));
        }
        assert_eq!(db.idle.borrow().len(), 3);
        // Put back, a statement reads afresh (reset, its new parameters bound).
        for (k, v) in [("c", 3), ("d", 4), ("a", 1)] {
            let got: i64 = db
                .cached(SELECT)
                .unwrap()
                .query_row(params![k], |r| r.get(0))
                .unwrap();
            assert_eq!(got, v);
        }
        // The same text at another address is another statement, and as good.
        let copy: &'static str = Box::leak(SELECT.to_owned().into_boxed_str());
        let got: i64 = db
            .cached(copy)
            .unwrap()
            .query_row(params!["b"], |r| r.get(0))
            .unwrap();
        assert_eq!(got, 2);
    }
    use shared::ports::IndexEntry;

    /// `(page_size, wal_autocheckpoint)` of the database thread's connection, and the frames at
    /// which the owner's WAL is started over and its limit.
    async fn page_and_checkpoint(db: &Database) -> (i64, i64, Option<(i64, i64)>) {
        let (page, auto) = db
            .call(Op::Maintenance, |conn| {
                let get = |pragma: &str| -> Result<i64, BackendError> {
                    conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                        .map_err(sqlite_error)
                };
                Ok((get("page_size")?, get("wal_autocheckpoint")?))
            })
            .await
            .unwrap();
        (page, auto, db.wal_bound_frames)
    }

    #[test]
    fn every_kind_of_call_is_counted_in_its_own_slot() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{}", op.name());
        }
    }

    #[tokio::test]
    async fn a_new_database_has_4_kib_pages_and_an_earlier_one_keeps_its_own() {
        let fresh = std::env::temp_dir().join(format!("wagate-pages-{}", ulid::Ulid::new()));
        // The owner's checkpoints are its own (no automatic one): the WAL is started over at
        // 16 MiB of 4 KiB frames, 64 MiB at most.
        let owned = (4096, 0, Some((4096, 16 * 1024)));
        let db = Database::open_dir(&fresh).unwrap();
        assert_eq!(page_and_checkpoint(&db).await, owned);
        // A tool beside it checkpoints at 16 MiB itself.
        let tool = Database::open_shared(&fresh).unwrap();
        assert_eq!(page_and_checkpoint(&tool).await, (4096, 4096, None));
        drop((tool, db));
        // Reopened, it is the same database.
        let db = Database::open_dir(&fresh).unwrap();
        assert_eq!(page_and_checkpoint(&db).await, owned);
        drop(db);

        let earlier = std::env::temp_dir().join(format!("wagate-pages-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&earlier).unwrap();
        Connection::open(earlier.join(DATABASE_FILE))
            .unwrap()
            .execute_batch("PRAGMA page_size = 1024; CREATE TABLE before_us (x);")
            .unwrap();
        let db = Database::open_dir(&earlier).unwrap();
        // The same 16 MiB of WAL (64 MiB at most), in the 1 KiB pages of wagate before.
        assert_eq!(
            page_and_checkpoint(&db).await,
            (1024, 0, Some((16 * 1024, 64 * 1024)))
        );
        let docs = SqliteDocumentStore::new(db.clone());
        let now = Utc::now();
        let written = docs
            .put(
                "k",
                &serde_json::json!({"a": 1}),
                DocumentWrite::new(None, now),
            )
            .await
            .unwrap();
        assert!(written);
        assert!(docs.get("k", now).await.unwrap().is_some());
        drop((docs, db));
        let _ = std::fs::remove_dir_all(fresh);
        let _ = std::fs::remove_dir_all(earlier);
    }

    #[tokio::test]
    async fn long_bodies_are_stored_packed_and_text_rows_of_before_read_as_they_did() {
        let dir = std::env::temp_dir().join(format!("wagate-packed-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        let docs = SqliteDocumentStore::new(db.clone());
        let now = Utc::now();
        let event = serde_json::json!({"type": "whatsapp.message.received", "text": "hello"});
        let long = serde_json::json!({ "events": vec![event; 40] });
        let short = serde_json::json!({ "claimed": true });
        let entry = |sort: &str| IndexEntry {
            partition: "p".into(),
            sort: sort.into(),
        };
        for (key, body, sort) in [("long", &long, "1"), ("short", &short, "2")] {
            let entry = entry(sort);
            let write = DocumentWrite::new(None, now).indexed(&entry);
            assert!(docs.put(key, body, write).await.unwrap());
        }
        // A long row written as text, as every row was before packing.
        let old_text = long.to_string();
        let (key, text) = ("old".to_owned(), old_text.clone());
        db.call(Op::DocPut, move |conn| {
            conn.execute(
                "INSERT INTO docs (key, version, body, part, sort) VALUES (?1, 3, ?2, 'p', '3')",
                params![key, text],
            )
            .map_err(sqlite_error)
        })
        .await
        .unwrap();

        let kinds: Vec<(String, String, i64)> = db
            .call(Op::DocGet, |conn| {
                let mut s = conn
                    .prepare("SELECT key, typeof(body), length(body) FROM docs ORDER BY key")
                    .map_err(sqlite_error)?;
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .and_then(Iterator::collect)
                    .map_err(sqlite_error)
            })
            .await
            .unwrap();
        let kind = |key: &str| kinds.iter().find(|k| k.0 == key).unwrap().clone();
        let (_, long_kind, long_len) = kind("long");
        assert_eq!(long_kind, "blob");
        assert!(
            usize::try_from(long_len).unwrap() < old_text.len() / 4,
            "{long_len} of {}",
            old_text.len()
        );
        assert_eq!(kind("short").1, "text");
        assert_eq!(kind("old").1, "text");

        for (key, body, version) in [("long", &long, 1), ("short", &short, 1), ("old", &long, 3)] {
            let got = docs.get(key, now).await.unwrap().unwrap();
            assert_eq!((&got.body, got.version), (body, version), "{key}");
            let json = docs.get_json(key, now).await.unwrap().unwrap();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&json.json).unwrap(),
                *body
            );
        }
        let page = IndexPage {
            partition: "p",
            after: None,
            before: None,
            descending: false,
            limit: 10,
        };
        let listed = docs.list_page(page, now).await.unwrap();
        let bodies: Vec<_> = listed
            .iter()
            .map(|l| (l.key.as_str(), &l.doc.body))
            .collect();
        assert_eq!(bodies, [("long", &long), ("short", &short), ("old", &long)]);

        // A rewrite with a version check packs again, and the check still reads the version.
        let write = DocumentWrite::new(Some(3), now);
        assert!(docs.put("old", &long, write).await.unwrap());
        let old = docs.get("old", now).await.unwrap().unwrap();
        assert_eq!((old.body, old.version), (long, 4));
        drop((docs, db));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_long_before_the_wal_is_full() {
        let dir = std::env::temp_dir().join(format!("wagate-checkpoint-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        let docs = SqliteDocumentStore::new(db.clone());
        let now = Utc::now();
        for i in 0..50 {
            // Random text, which does not pack: 2 KiB a document.
            let text: String = (0..80).map(|_| ulid::Ulid::new().to_string()).collect();
            let body = serde_json::json!({ "text": text });
            let key = format!("doc#{i}");
            assert!(
                docs.put(&key, &body, DocumentWrite::new(None, now))
                    .await
                    .unwrap()
            );
        }
        // 100 KiB of bodies, far below the 16 MiB at which the database thread would copy the
        // WAL itself: only the checkpointer puts them in the file.
        let file = dir.join(DATABASE_FILE);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&file).map_or(0, |m| m.len()) < 100 * 1024 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied into the database file"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop((docs, db));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Writes `n` new documents of 2 KiB of random text (which does not pack), keyed
    /// `{prefix}#{writer}#{i}`, from `writers` tasks at once, so the database thread has a call
    /// waiting most of the time.
    async fn write_documents(db: &Arc<Database>, prefix: &str, writers: usize, n: usize) {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let docs = SqliteDocumentStore::new(db.clone());
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    for i in 0..n {
                        let text: String = (0..80).map(|_| ulid::Ulid::new().to_string()).collect();
                        let body = serde_json::json!({ "text": text });
                        let key = format!("{prefix}#{w}#{i}");
                        let put = docs.put(&key, &body, DocumentWrite::new(None, Utc::now()));
                        assert!(put.await.unwrap());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// The WAL file's size in frames of `page_size` (it keeps the largest size it reached).
    fn wal_frames_on_disk(dir: &Path, page_size: i64) -> i64 {
        let wal = dir.join(format!("{DATABASE_FILE}-wal"));
        let bytes = std::fs::metadata(wal).map_or(0, |m| m.len());
        (i64::try_from(bytes).unwrap() - 32) / (page_size + 24)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_owners_wal_is_started_over_again_and_again_and_stays_within_its_limit() {
        let dir = std::env::temp_dir().join(format!("wagate-restart-{}", ulid::Ulid::new()));
        // Started over at 256 KiB (64 frames of 4 KiB), 256 frames at most.
        let db = Database::open_dir_with(&dir, 256 * 1024).unwrap();
        let (restart, limit) = db.wal_bound_frames.unwrap();
        assert_eq!((restart, limit), (64, 256));
        // 8 writers, 400 documents of 2 KiB a round (about 800 frames through the WAL), until
        // it started over 5 times and at least once after the database thread's own copy.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut rounds = 0;
        loop {
            write_documents(&db, &format!("doc{rounds}"), 8, 50).await;
            rounds += 1;
            let (restarts, short, at_limit) = db.wal_restarts();
            if restarts >= 5 && short + at_limit >= 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "started over {restarts} times, {short} + {at_limit} after its own copy"
            );
        }
        // Past the limit the database thread copies itself, after every commit until the WAL
        // starts over. How far past depends on how long a pass of the checkpointer keeps that
        // copy busy, which a loaded disk stretches: timing, so not asserted here.
        let most = db.wal_most_frames();
        let at_limit = db.wal_restarts().2;
        assert!(
            most < limit || at_limit >= 1,
            "{most} frames, {at_limit} copies at the limit"
        );
        drop(db);
        // Every document is there after the restarts, read by a new process' worth of state.
        let db = Database::open_dir(&dir).unwrap();
        let docs = SqliteDocumentStore::new(db.clone());
        for (r, w, i) in [(0, 0, 0), (0, 3, 27), (rounds - 1, 7, 49)] {
            let key = format!("doc{r}#{w}#{i}");
            assert!(docs.get(&key, Utc::now()).await.unwrap().is_some(), "{key}");
        }
        drop((docs, db));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn once_the_writes_stop_the_checkpointer_copies_the_rest_and_goes_back_to_its_pace() {
        let dir = std::env::temp_dir().join(format!("wagate-quiet-{}", ulid::Ulid::new()));
        let db = Database::open_dir_with(&dir, 256 * 1024).unwrap();
        let turn = db._checkpointer.as_ref().unwrap().turn.clone();
        // Writes, then nothing more, with the turn left to the database thread as after a
        // short pass (whether the WAL started over meanwhile or not depends on timing).
        write_documents(&db, "doc", 4, 40).await;
        turn.state.store(TURN_READY, Release);
        // The checkpointer copies what is left although the database thread makes no more
        // commits to take its turn after: the database file's header, page 1 as last copied,
        // comes to count the pages a reader sees through the WAL.
        let tool = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        let seen: i64 = tool
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        drop(tool);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let file = std::fs::read(dir.join(DATABASE_FILE)).unwrap();
            let in_file = file.get(28..32).map_or(0, |b| {
                i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            });
            if in_file == seen {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the rest was not copied"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ...and then runs its passes at its usual pace, not every millisecond: at most one
        // every CHECKPOINT_EVERY and a few for the turn in half a second (fewer on a slow host).
        let before = turn.passes.load(Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let passes = turn.passes.load(Relaxed) - before;
        assert!(passes <= 15, "{passes} passes in half a second");
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_wal_held_by_a_tools_read_grows_to_its_limit_and_then_starts_over() {
        let dir = std::env::temp_dir().join(format!("wagate-held-{}", ulid::Ulid::new()));
        let db = Database::open_dir_with(&dir, 256 * 1024).unwrap();
        let (restart, limit) = db.wal_bound_frames.unwrap();
        write_documents(&db, "before", 1, 5).await;
        // A tool's read keeps the frames it sees: nothing after them is copied, and the WAL
        // cannot start over while it lasts. (Had a pass copied every frame just before the read
        // began, the read is of the database file alone and the next commit may start the WAL
        // over once, but nothing can be copied after it: once at most.)
        let tool = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        tool.execute_batch("BEGIN").unwrap();
        let seen: i64 = tool
            .query_row("SELECT count(*) FROM docs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 5);
        write_documents(&db, "held0", 1, 1).await;
        let base = db.wal_restarts().0;
        // Past the limit, however many frames a group of commits makes.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut round = 0;
        while db.counts.wal_frames.load(Relaxed) <= limit {
            assert!(std::time::Instant::now() < deadline, "the WAL did not grow");
            round += 1;
            write_documents(&db, &format!("held{round}"), 2, 20).await;
        }
        assert_eq!(db.wal_restarts().0, base);
        assert!(wal_frames_on_disk(&dir, PAGE_SIZE) > limit);
        tool.execute_batch("COMMIT").unwrap();
        drop(tool);
        // Once it ends, the next commits start the WAL over.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut round = 0;
        while db.wal_restarts().0 == base {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL never started over"
            );
            round += 1;
            write_documents(&db, &format!("after{round}"), 1, 5).await;
        }
        assert!(db.counts.wal_frames.load(Relaxed) < restart);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_database_of_an_earlier_schema_is_carried_over_with_its_rows() {
        let dir = std::env::temp_dir().join(format!("wagate-migrate-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            let old = Connection::open(dir.join(DATABASE_FILE)).unwrap();
            old.execute_batch(
                "CREATE TABLE docs (key TEXT PRIMARY KEY, version INTEGER NOT NULL,
                     body TEXT NOT NULL, expires_at INTEGER, part TEXT, sort TEXT) WITHOUT ROWID;
                 CREATE INDEX docs_by_index ON docs (part, sort, key) WHERE part IS NOT NULL;
                 CREATE INDEX docs_by_expiry ON docs (expires_at) WHERE expires_at IS NOT NULL;
                 CREATE TABLE blobs (key TEXT PRIMARY KEY, bytes BLOB NOT NULL,
                     expires_at INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE INDEX blobs_by_expiry ON blobs (expires_at);
                 INSERT INTO docs VALUES ('endpoint#1', 3, '{\"url\":\"u\"}', NULL, 'endpoints', 'e1');
                 INSERT INTO blobs VALUES ('raw#1', x'7b7d', 4102444800000);",
            )
            .unwrap();
        }
        let db = Database::open_dir(&dir).unwrap();
        let now = Utc::now();
        let docs = SqliteDocumentStore::new(db.clone());
        let got = docs.get("endpoint#1", now).await.unwrap().unwrap();
        assert_eq!(got.version, 3);
        assert_eq!(got.body, serde_json::json!({"url": "u"}));
        let page = IndexPage {
            partition: "endpoints",
            after: None,
            before: None,
            descending: false,
            limit: 10,
        };
        let listed = docs.list_page(page, now).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sort, "e1");
        let blobs = SqliteBlobStore::new(db.clone());
        assert_eq!(blobs.get("raw#1", now).await.unwrap().unwrap(), b"{}");
        let sql: Vec<String> = db
            .call(Op::Maintenance, |conn| {
                conn.prepare("SELECT sql FROM sqlite_master WHERE name IN ('docs', 'blobs')")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(sqlite_error)
            })
            .await
            .unwrap();
        assert_eq!(sql.len(), 2);
        assert!(sql.iter().all(|s| !s.contains("WITHOUT ROWID")), "{sql:?}");
        drop((docs, blobs, db));
        // Opening again finds nothing to carry over.
        let db = Database::open_dir(&dir).unwrap();
        let docs = SqliteDocumentStore::new(db.clone());
        assert!(docs.get("endpoint#1", now).await.unwrap().is_some());
        drop((docs, db));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn send(body: &str) -> Vec<OutgoingMessage> {
        vec![OutgoingMessage {
            id: "0".into(),
            body: body.into(),
            delay: None,
        }]
    }

    /// Rows of `table` in the database file `file` of `dir` (`where` filters them).
    fn rows_in(dir: &Path, file: &str, table: &str, filter: &str) -> i64 {
        let conn = Connection::open(dir.join(file)).unwrap();
        conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE {filter}"),
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// A data directory keeps what ingest writes (blobs, the inbound queue and its dead letters)
    /// in a file of its own and the rest in the main one, owned through one lock that is held
    /// while any of its databases is in use.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_data_dir_keeps_blobs_and_the_inbound_queue_in_a_file_of_their_own() {
        let dir = std::env::temp_dir().join(format!("wagate-datadir-{}", ulid::Ulid::new()));
        let data = DataDir::open(&dir).unwrap();
        assert!(!Arc::ptr_eq(data.main(), data.inbound()));
        assert_eq!(data.databases().len(), 2);
        let later = Utc::now() + chrono::Duration::days(1);
        let blobs = SqliteBlobStore::new(data.inbound().clone());
        blobs.put("raw#1", b"{}", later).await.unwrap();
        for name in ["inbound", "inbound-dlq", "buffer", "delivery-dlq"] {
            let queue = SqliteQueue::new(data.for_queue(name).clone(), name);
            assert!(queue.send_batch(&send(name)).await.unwrap().is_empty());
        }
        let docs = SqliteDocumentStore::new(data.main().clone());
        let write = DocumentWrite::new(None, Utc::now());
        assert!(
            docs.put("doc#1", &serde_json::json!({"a": 1}), write)
                .await
                .unwrap()
        );
        let queued = |file| rows_in(&dir, file, "messages", "queue LIKE 'inbound%'");
        assert_eq!((queued(INBOUND_FILE), queued(DATABASE_FILE)), (2, 0));
        let later_queues = |file| rows_in(&dir, file, "messages", "queue NOT LIKE 'inbound%'");
        assert_eq!(
            (later_queues(INBOUND_FILE), later_queues(DATABASE_FILE)),
            (0, 2)
        );
        let blob_rows = |file| rows_in(&dir, file, "blobs", "1");
        assert_eq!((blob_rows(INBOUND_FILE), blob_rows(DATABASE_FILE)), (1, 0));
        assert_eq!(rows_in(&dir, DATABASE_FILE, "docs", "1"), 1);
        assert!(data.size_bytes().await.unwrap() >= 2 * PAGE_SIZE as u64);
        assert_eq!(data.evict_expired(later, 10).await.unwrap(), 1);
        assert_eq!(blob_rows(INBOUND_FILE), 0);
        // The lock is the directory's: a second gateway is refused while any database of the
        // first is still in use (here the blob store's), and not after.
        let main = data.main().clone();
        drop((data, docs));
        assert!(matches!(
            DataDir::open(&dir),
            Err(BackendError::Rejected(_))
        ));
        drop(main);
        assert!(matches!(
            DataDir::open(&dir),
            Err(BackendError::Rejected(_))
        ));
        drop(blobs);
        let again = DataDir::open(&dir).unwrap();
        let buffer = SqliteQueue::new(again.for_queue("buffer").clone(), "buffer");
        assert_eq!(buffer.depth().await.unwrap(), 1);
        let tool = DataDir::open_shared(&dir).unwrap();
        let inbound = SqliteQueue::new(tool.for_queue("inbound").clone(), "inbound");
        assert_eq!(inbound.depth().await.unwrap(), 1);
        drop((buffer, again, inbound, tool));
        // A tool creates no database where no gateway has run.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(DataDir::open_shared(&empty).is_err());
        assert!(!empty.join(DATABASE_FILE).exists() && !empty.join(INBOUND_FILE).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A data directory of a wagate before the inbound file (everything in `wagate.db`) has its
    /// blobs and inbound messages moved to the inbound file at the first start, those its process
    /// had received visible again with their receive counts; the other queues stay. A
    /// crash between the copy and the deletion (both files hold the rows) copies nothing twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_data_dir_has_its_blobs_and_inbound_messages_moved_once() {
        let dir = std::env::temp_dir().join(format!("wagate-moved-{}", ulid::Ulid::new()));
        let later = Utc::now() + chrono::Duration::days(1);
        let wait = Duration::ZERO;
        let hidden = Duration::from_secs(600);
        {
            let db = Database::open_dir(&dir).unwrap();
            let blobs = SqliteBlobStore::new(db.clone());
            blobs.put("raw#1", b"raw", later).await.unwrap();
            blobs.put("claim#1", b"claim", later).await.unwrap();
            // Enough for two full batches of the move (and an empty third).
            for n in 2..2 * MOVE_BATCH {
                blobs
                    .put(&format!("raw#{n:04}"), b"more", later)
                    .await
                    .unwrap();
            }
            for name in ["inbound", "inbound-dlq", "buffer"] {
                let queue = SqliteQueue::new(db.clone(), name);
                for n in 0..3 {
                    let body = format!("{name} {n}");
                    assert!(queue.send_batch(&send(&body)).await.unwrap().is_empty());
                }
            }
            // Received by the process before and not deleted (its lease and receipt left as a
            // killed process leaves them): hidden for ten minutes.
            let inbound = SqliteQueue::new(db.clone(), "inbound");
            let got = inbound.receive(1, wait, hidden).await.unwrap();
            assert_eq!(got[0].body, "inbound 0");
            drop((blobs, inbound, db));
        }
        let check = |data: &DataDir| {
            let data = data.clone();
            async move {
                let blobs = SqliteBlobStore::new(data.inbound().clone());
                let now = Utc::now();
                assert_eq!(blobs.get("raw#1", now).await.unwrap().unwrap(), b"raw");
                assert_eq!(blobs.get("claim#1", now).await.unwrap().unwrap(), b"claim");
                for name in ["inbound", "inbound-dlq", "buffer"] {
                    let queue = SqliteQueue::new(data.for_queue(name).clone(), name);
                    let got = queue.receive(10, wait, hidden).await.unwrap();
                    let mut bodies: Vec<_> = got
                        .iter()
                        .map(|m| (m.body.as_str(), m.receive_count))
                        .collect();
                    bodies.sort_unstable();
                    // The one received before counts that receive (visible again since the
                    // restart, so after the others).
                    let received = |n| u32::from(name == "inbound" && n == 0) + 1;
                    let want: Vec<_> = (0..3)
                        .map(|n| (format!("{name} {n}"), received(n)))
                        .collect();
                    let want: Vec<_> = want.iter().map(|(b, c)| (b.as_str(), *c)).collect();
                    assert_eq!(bodies, want, "{name}: every message once");
                }
            }
        };
        let data = DataDir::open(&dir).unwrap();
        assert_eq!(rows_in(&dir, DATABASE_FILE, "blobs", "1"), 0);
        let inbound_rows = "queue LIKE 'inbound%'";
        assert_eq!(rows_in(&dir, DATABASE_FILE, "messages", inbound_rows), 0);
        assert_eq!(rows_in(&dir, DATABASE_FILE, "receipts", "1"), 0);
        assert_eq!(rows_in(&dir, INBOUND_FILE, "messages", "1"), 6);
        let blobs_moved = i64::try_from(2 * MOVE_BATCH).unwrap();
        assert_eq!(rows_in(&dir, INBOUND_FILE, "blobs", "1"), blobs_moved);
        check(&data).await;
        drop(data);
        // A crash after the copy committed and before the originals were deleted: the main
        // file holds them again beside the copies (receipts of the receives above dropped at
        // the restart), with the index the move made.
        {
            let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
            conn.execute(
                "ATTACH DATABASE ?1 AS moved",
                [dir.join(INBOUND_FILE).to_str().unwrap()],
            )
            .unwrap();
            conn.execute_batch(&format!(
                "INSERT INTO main.blobs (key, bytes, expires_at)
                     SELECT key, bytes, expires_at FROM moved.blobs;
                 INSERT INTO main.messages
                     (queue, message_id, body, visible_at, received_at, receive_count, leased)
                     SELECT queue, message_id, body, visible_at, received_at, receive_count, 1
                     FROM moved.messages ORDER BY seq;
                 CREATE INDEX moved.{MOVED_INDEX} ON messages (queue, message_id);"
            ))
            .unwrap();
        }
        let data = DataDir::open(&dir).unwrap();
        assert_eq!(rows_in(&dir, DATABASE_FILE, "messages", inbound_rows), 0);
        assert_eq!(rows_in(&dir, INBOUND_FILE, "messages", "1"), 6);
        assert_eq!(rows_in(&dir, INBOUND_FILE, "blobs", "1"), blobs_moved);
        assert_eq!(rows_in(&dir, DATABASE_FILE, "blobs", "1"), 0);
        let index = format!("type = 'index' AND name = '{MOVED_INDEX}'");
        assert_eq!(rows_in(&dir, INBOUND_FILE, "sqlite_master", &index), 0);
        drop(data);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The move to the inbound file reads the blobs of the earliest schema too (a `WITHOUT
    /// ROWID` table, carried over to today's form only after the move).
    #[tokio::test]
    async fn blobs_of_the_earliest_schema_are_moved_to_the_inbound_file() {
        let dir = std::env::temp_dir().join(format!("wagate-moved-old-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            let old = Connection::open(dir.join(DATABASE_FILE)).unwrap();
            old.execute_batch(
                "CREATE TABLE blobs (key TEXT PRIMARY KEY, bytes BLOB NOT NULL,
                     expires_at INTEGER NOT NULL) WITHOUT ROWID;
                 INSERT INTO blobs VALUES ('raw#1', x'7b7d', 4102444800000);",
            )
            .unwrap();
            old.execute_batch(SCHEMA).unwrap();
        }
        let data = DataDir::open(&dir).unwrap();
        let blobs = SqliteBlobStore::new(data.inbound().clone());
        assert_eq!(
            blobs.get("raw#1", Utc::now()).await.unwrap().unwrap(),
            b"{}"
        );
        assert_eq!(rows_in(&dir, DATABASE_FILE, "blobs", "1"), 0);
        drop((blobs, data));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The queue tables of session 34 (an `AUTOINCREMENT` messages table; receipts keyed by
    /// receipt with an index by message) are rebuilt at the owner's start, the messages kept.
    #[tokio::test]
    async fn queue_tables_of_before_are_rebuilt_with_their_messages_kept() {
        let dir = std::env::temp_dir().join(format!("wagate-queues-old-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        {
            let old = Connection::open(dir.join(DATABASE_FILE)).unwrap();
            old.execute_batch(
                "CREATE TABLE messages (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     queue TEXT NOT NULL,
                     message_id TEXT NOT NULL,
                     body TEXT NOT NULL,
                     visible_at INTEGER NOT NULL,
                     received_at INTEGER NOT NULL,
                     receive_count INTEGER NOT NULL,
                     leased INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE INDEX messages_by_visibility ON messages (queue, visible_at, seq);
                 CREATE TABLE receipts (receipt TEXT PRIMARY KEY, seq INTEGER NOT NULL)
                     WITHOUT ROWID;
                 CREATE INDEX receipts_by_message ON receipts (seq);
                 INSERT INTO messages VALUES (7, 'track', 'm7', 'leased', 4102444800000, 1, 1, 1);
                 INSERT INTO messages VALUES (9, 'track', 'm9', 'waiting', 0, 0, 0, 0);
                 INSERT INTO receipts VALUES ('track:7:01ABC', 7);",
            )
            .unwrap();
            old.execute_batch(SCHEMA).unwrap();
        }
        let data = DataDir::open(&dir).unwrap();
        let queue = SqliteQueue::new(data.main().clone(), "track");
        // The lease of before is released (the receipts of before go with it, as at any start).
        let got = queue
            .receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        let mut ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["m7", "m9"]);
        assert!(
            got.iter()
                .any(|m| m.receive_count == 2 && m.body == "leased")
        );
        assert!(matches!(
            queue.delete("track:7:01ABC").await,
            Err(BackendError::Rejected(_))
        ));
        for m in &got {
            queue.delete(&m.receipt).await.unwrap();
        }
        // The rebuilt tables take new messages and their receipts.
        let new = OutgoingMessage {
            id: "n".into(),
            body: "new".into(),
            delay: None,
        };
        queue.send_batch(&[new]).await.unwrap();
        let again = queue
            .receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        queue.delete(&again[0].receipt).await.unwrap();
        assert_eq!(queue.depth().await.unwrap(), 0);
        drop((queue, data));
        let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        let sql: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            sql.iter()
                .all(|s| !s.contains("AUTOINCREMENT") && !s.contains("receipts_by_message")),
            "{sql:?}"
        );
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Without `AUTOINCREMENT`, a message sent after the highest one was deleted gets its seq
    /// number again; a receipt of the deleted message does not name the new one.
    #[tokio::test]
    async fn a_seq_number_used_again_is_not_reached_by_a_receipt_of_before() {
        let dir = std::env::temp_dir().join(format!("wagate-seq-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        let queue = SqliteQueue::new(db.clone(), "track");
        let send = |body: &str| OutgoingMessage {
            id: "e".into(),
            body: body.into(),
            delay: None,
        };
        let receive_one = || async {
            let got = queue
                .receive(1, Duration::ZERO, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(got.len(), 1);
            got.into_iter().next().unwrap()
        };
        queue.send_batch(&[send("first")]).await.unwrap();
        let first = receive_one().await;
        // Received twice: both receipts are valid until the message is deleted.
        queue
            .change_visibility(&first.receipt, Duration::ZERO)
            .await
            .unwrap();
        let again = receive_one().await;
        queue.delete(&again.receipt).await.unwrap();
        queue.send_batch(&[send("second")]).await.unwrap();
        let second = receive_one().await;
        assert_eq!(second.body, "second");
        let seq = |receipt: &str| receipt.split(':').nth(1).unwrap().to_owned();
        assert_eq!(
            seq(&second.receipt),
            seq(&first.receipt),
            "the seq is used again"
        );
        for stale in [&first.receipt, &again.receipt] {
            assert!(matches!(
                queue.delete(stale).await,
                Err(BackendError::Rejected(_))
            ));
            assert!(matches!(
                queue.change_visibility(stale, Duration::ZERO).await,
                Err(BackendError::Rejected(_))
            ));
        }
        assert_eq!(queue.depth().await.unwrap(), 1);
        queue.delete(&second.receipt).await.unwrap();
        assert_eq!(queue.depth().await.unwrap(), 0);
        drop((queue, db));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn count(conn: &Connection, like: &str) -> Result<i64, BackendError> {
        conn.query_row("SELECT COUNT(*) FROM docs WHERE key LIKE ?1", [like], |r| {
            r.get(0)
        })
        .map_err(sqlite_error)
    }

    /// Holds the database thread with a call until the returned sender is used, so that calls
    /// submitted meanwhile queue up as one group. Needs a multi-threaded runtime.
    fn hold(
        db: &Arc<Database>,
    ) -> (
        tokio::task::JoinHandle<Result<(), BackendError>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let db = db.clone();
            async move {
                db.call(Op::Maintenance, move |_| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(())
                })
                .await
            }
        });
        started_rx.recv().unwrap();
        (blocker, release_tx)
    }

    /// What a call of [`queue_inserts`] does.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Plan {
        /// Inserts its document and answers how many `k` documents it sees.
        Writes,
        /// Fails before it writes anything, as the ports' calls do when a check fails.
        FailsFirst,
        /// Inserts its document, then fails.
        FailsAfterWriting,
        /// Runs an insert that SQLite refuses (a `NOT NULL` column left null), and fails.
        StatementFails,
    }

    /// Submits `n` calls, isolated ones ([`Job::isolated`]) or not: call `i` is document `k{i}`
    /// and does what `plan(i)` says.
    fn queue_inserts(
        db: &Database,
        n: u32,
        isolated: bool,
        plan: impl Fn(u32) -> Plan,
    ) -> Vec<tokio::sync::oneshot::Receiver<Result<i64, BackendError>>> {
        (0..n)
            .map(|i| {
                let plan = plan(i);
                let (tx, rx) = tokio::sync::oneshot::channel();
                db.submit(
                    isolated,
                    move |conn| {
                        if plan == Plan::FailsFirst {
                            return Err(BackendError::Rejected(format!("call {i} fails")));
                        }
                        if plan == Plan::StatementFails {
                            conn.execute(
                                "INSERT INTO docs (key, version, body) VALUES (?1, NULL, '{}')",
                                [format!("k{i}")],
                            )
                            .map_err(|_| BackendError::Rejected(format!("call {i} fails")))?;
                        }
                        conn.execute(
                            "INSERT INTO docs (key, version, body) VALUES (?1, 1, '{}')",
                            [format!("k{i}")],
                        )
                        .map_err(sqlite_error)?;
                        if plan == Plan::FailsAfterWriting {
                            return Err(BackendError::Rejected(format!("call {i} fails")));
                        }
                        count(conn, "k%")
                    },
                    move |r| {
                        let _ = tx.send(r);
                    },
                )
                .unwrap();
                rx
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_fails_after_writing_rolls_its_group_back_and_the_calls_after_it_run_next()
    {
        let dir = std::env::temp_dir().join(format!("wagate-poison-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        let (blocker, release_tx) = hold(&db);
        let before = db.calls_and_commits();
        // Calls 0-4 write, call 5 writes and fails, calls 6-11 write.
        let calls = queue_inserts(&db, 12, false, |n| {
            if n == 5 {
                Plan::FailsAfterWriting
            } else {
                Plan::Writes
            }
        });
        release_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        for (n, answer) in answers.iter().enumerate() {
            match (n, answer) {
                // Ran in the group that call 5 rolled back: nothing of theirs was kept.
                (0..=4, Err(BackendError::Unavailable(_))) => {}
                (5, Err(BackendError::Rejected(e))) => assert_eq!(e, "call 5 fails"),
                // Not run in that group: they led the next one, which committed.
                (6..=11, Ok(rows)) => assert_eq!(*rows, i64::try_from(n).unwrap() - 5),
                _ => panic!("call {n}: {answer:?}"),
            }
        }
        let keys: Vec<String> = db
            .call(Op::Maintenance, |conn| {
                let mut s = conn
                    .prepare("SELECT key FROM docs ORDER BY id")
                    .map_err(sqlite_error)?;
                let keys = s
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .map_err(sqlite_error)?;
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(keys, (6..12).map(|n| format!("k{n}")).collect::<Vec<_>>());
        let (calls, commits) = db.calls_and_commits();
        assert_eq!(calls - before.0, 1 + 12 + 1, "every call answered once");
        assert_eq!(
            commits - before.1,
            1,
            "only the second group committed writes"
        );
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Every third of 40 calls queued together fails (`failing`); the others commit in one
    /// transaction, each seeing the ones before it and none of the failed ones.
    async fn every_third_call_fails(isolated: bool, failing: Plan) {
        let dir = std::env::temp_dir().join(format!("wagate-group-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        // Hold the thread so that the calls below queue up behind it.
        let (blocker, release_tx) = hold(&db);
        let before = db.calls_and_commits();
        let calls = queue_inserts(&db, 40, isolated, |n| {
            if n % 3 == 0 { failing } else { Plan::Writes }
        });
        release_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut seen = Vec::new();
        for (n, call) in calls.into_iter().enumerate() {
            match call.await.unwrap() {
                Ok(rows) => {
                    assert_ne!(n % 3, 0);
                    seen.push(rows);
                }
                Err(BackendError::Rejected(e)) => {
                    assert_eq!(n % 3, 0);
                    assert_eq!(e, format!("call {n} fails"));
                }
                Err(e) => panic!("call {n}: {e}"),
            }
        }
        assert_eq!(seen, (1..=26).collect::<Vec<i64>>());
        let (calls, commits) = db.calls_and_commits();
        // The blocker is counted once its group is done, after `before` was taken.
        assert_eq!(calls - before.0, 41);
        assert_eq!(
            commits - before.1,
            1,
            "40 calls queued together, one commit"
        );
        let rows = db
            .call(Op::Maintenance, |conn| count(conn, "k%"))
            .await
            .unwrap();
        assert_eq!(rows, 26);
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_queued_together_commit_together_and_a_failed_isolated_one_undoes_only_itself() {
        every_third_call_fails(true, Plan::FailsAfterWriting).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_that_fail_before_writing_leave_their_group_to_commit_without_savepoints() {
        every_third_call_fails(false, Plan::FailsFirst).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_whose_statement_sqlite_refuses_leave_their_group_to_commit() {
        every_third_call_fails(false, Plan::StatementFails).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_whose_commit_fails_answers_every_call_with_an_error_and_writes_nothing() {
        use std::sync::atomic::AtomicBool;

        let dir = std::env::temp_dir().join(format!("wagate-commit-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        // SQLite turns a COMMIT into a ROLLBACK and fails it while the hook says so.
        let veto = Arc::new(AtomicBool::new(false));
        db.call(Op::Maintenance, {
            let veto = veto.clone();
            move |conn| {
                conn.commit_hook(Some(move || veto.load(Relaxed)));
                Ok(())
            }
        })
        .await
        .unwrap();
        // Hold the thread so that the calls below queue up as one group behind it.
        let (blocker, release_tx) = hold(&db);
        let before = db.calls_and_commits();
        let calls = queue_inserts(&db, 10, false, |_| Plan::Writes);
        veto.store(true, Relaxed);
        release_tx.send(()).unwrap();
        // The blocker's own group may be vetoed too: either answer is fine for it.
        let _ = blocker.await.unwrap();
        for (n, call) in calls.into_iter().enumerate() {
            // Each call ran and succeeded inside the group; the failed COMMIT undid all of
            // them, so none of them may report success.
            match call.await.unwrap() {
                Err(BackendError::Unavailable(e)) => {
                    // SQLite's answer to a vetoed COMMIT (SQLITE_CONSTRAINT_COMMITHOOK).
                    assert!(e.to_string().contains("constraint failed"), "call {n}: {e}");
                }
                other => panic!("call {n}: {other:?}"),
            }
        }
        assert_eq!(db.calls_and_commits().1, before.1, "nothing committed");
        veto.store(false, Relaxed);
        // The connection is usable again: nothing of the failed group is there, and a new
        // write commits.
        assert_eq!(
            db.call(Op::Maintenance, |conn| count(conn, "k%"))
                .await
                .unwrap(),
            0
        );
        db.call(Op::Maintenance, |conn| {
            conn.execute(
                "INSERT INTO docs (key, version, body) VALUES ('after', 1, '{}')",
                [],
            )
            .map_err(sqlite_error)
        })
        .await
        .unwrap();
        assert_eq!(
            db.call(Op::Maintenance, |conn| count(conn, "%"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(db.calls_and_commits().1, before.1 + 1);
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_group_first_ends_a_transaction_left_open_by_a_failed_rollback() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // What a failed ROLLBACK after a failed group leaves: a transaction still open, in
        // which BEGIN fails.
        conn.execute_batch(
            "BEGIN; INSERT INTO docs (key, version, body) VALUES ('stale', 1, '{}');",
        )
        .unwrap();
        assert!(!conn.is_autocommit());
        let (tx, rx) = std::sync::mpsc::channel();
        let mut group: Vec<Box<dyn Job>> = vec![Box::new(Call {
            work: Some(|conn: &Db<'_>| {
                conn.execute(
                    "INSERT INTO docs (key, version, body) VALUES ('new', 1, '{}')",
                    [],
                )
                .map_err(sqlite_error)
            }),
            result: None,
            reply: move |r| tx.send(r).unwrap(),
            isolated: false,
        })];
        let (answered, wrote) = run_group(&Db::new(&conn), &mut group, OWNER_BEGIN);
        assert_eq!(answered, 1);
        assert!(wrote.unwrap());
        for job in group {
            job.finish(Ok(()));
        }
        assert_eq!(rx.recv().unwrap().unwrap(), 1);
        assert!(conn.is_autocommit());
        // The open transaction's write was rolled back; the group's committed.
        assert_eq!(count(&conn, "stale").unwrap(), 0);
        assert_eq!(count(&conn, "new").unwrap(), 1);
    }

    #[tokio::test]
    async fn a_group_of_reads_commits_nothing_and_any_failed_call_is_undone() {
        let dir = std::env::temp_dir().join(format!("wagate-reads-{}", ulid::Ulid::new()));
        let db = Database::open_dir(&dir).unwrap();
        let before = db.calls_and_commits();
        assert_eq!(
            db.call(Op::Maintenance, |conn| count(conn, "%"))
                .await
                .unwrap(),
            0
        );
        let after_read = db.calls_and_commits();
        assert_eq!(after_read.0 - before.0, 1);
        assert_eq!(after_read.1, before.1, "a read is no write transaction");
        // A call that reads, writes, then fails: its write is undone like any other.
        let failed = db
            .call(Op::Maintenance, |conn| {
                count(conn, "%")?;
                conn.execute(
                    "INSERT INTO docs (key, version, body) VALUES ('gone', 1, '{}')",
                    [],
                )
                .map_err(sqlite_error)?;
                Err::<(), _>(BackendError::Rejected("fails after its write".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            db.call(Op::Maintenance, |conn| count(conn, "%"))
                .await
                .unwrap(),
            0
        );
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tool_beside_the_owner_reads_while_the_owner_holds_its_write_lock() {
        let dir = std::env::temp_dir().join(format!("wagate-shared-{}", ulid::Ulid::new()));
        let owner = Database::open_dir(&dir).unwrap();
        owner
            .call(Op::Maintenance, |conn| {
                conn.execute(
                    "INSERT INTO docs (key, version, body) VALUES ('k', 1, '{}')",
                    [],
                )
                .map_err(sqlite_error)
            })
            .await
            .unwrap();
        // The owner's next group holds its transaction (and the write lock) open.
        let (held, release_tx) = hold(&owner);
        let tool = Database::open_shared(&dir).unwrap();
        // Deferred: the tool's read needs no write lock, so it is answered while the owner's
        // group is still open (an IMMEDIATE begin would wait for it, then fail after 5 s).
        let rows = tool
            .call(Op::Maintenance, |conn| count(conn, "%"))
            .await
            .unwrap();
        assert_eq!(rows, 1);
        release_tx.send(()).unwrap();
        held.await.unwrap().unwrap();
        drop((tool, owner));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
