//! Delivery records: one document per delivery (`delivery#{delivery_id}`) with its status, its
//! attempts and the task itself, listed per endpoint by creation time. Deliver keeps them; the
//! management API reads them (list, filter, show attempts) and retries from them.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::request::{AsText, BodyForm, DeliveryTask};
use crate::ids::EventId;
use crate::model::EventType;
use crate::ports::{BackendError, BlobStore, DocumentStore, DocumentWrite, IndexEntry};

/// Attempts kept in a record (the latest); the count goes on.
pub const KEPT_ATTEMPTS: usize = 50;

/// Tasks whose JSON is larger than this are kept in the blob store, not in the record.
const INLINE_TASK_BYTES: usize = 64 * 1024;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The last attempt failed; another one is scheduled.
    Retrying,
    /// An attempt was answered 2xx.
    Delivered,
    /// Failed for good (last attempt, or a final answer): in the dead-letter queue.
    DeadLettered,
    /// The endpoint answered 410 and was disabled; the task is in the dead-letter queue.
    EndpointDisabled,
    /// The endpoint was deleted or disabled before the attempt.
    Skipped,
}

impl DeliveryStatus {
    /// Every status, for validation and documentation.
    pub const ALL: [Self; 5] = [
        Self::Retrying,
        Self::Delivered,
        Self::DeadLettered,
        Self::EndpointDisabled,
        Self::Skipped,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::DeadLettered => "dead_lettered",
            Self::EndpointDisabled => "endpoint_disabled",
            Self::Skipped => "skipped",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub at: DateTime<Utc>,
    /// The answer's status, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// Why it failed, if it did (no body content, no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the attempt led to.
    pub outcome: DeliveryStatus,
}

/// Where the task of a record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredTask {
    /// In the record.
    Inline(TaskJson),
    /// In the blob store under this key.
    Blob(String),
}

/// A task's JSON as it was written, kept in its record as it is: the record is written again
/// at every attempt, and a task's body is its largest part, a JSON document inside a string
/// (every quote escaped). Kept as text, the task is written into the record as a copy and read
/// back as a slice, not escaped and unescaped each time; [`Deliveries::task`] reads it when it
/// is needed. Written the same as the task itself, so records written before read unchanged.
///
/// The body is always a string here, even for a task that came with its body as a document
/// (`body_json`): records are also read through a `serde_json::Value` (listings), which keeps a
/// string's content but not the order of an object's keys, and a delivery must POST the same
/// bytes at every attempt, including one resent from its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskJson(Box<serde_json::value::RawValue>);

impl TaskJson {
    /// `task`'s JSON.
    ///
    /// # Errors
    /// If it cannot be written (it always can).
    pub fn new(task: &DeliveryTask) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(&AsText(task)).map(Self)
    }

    /// The task.
    ///
    /// # Errors
    /// If the text is not a task.
    pub fn task(&self) -> Result<DeliveryTask, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The text.
    pub fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for TaskJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for TaskJson {}

/// One delivery and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The delivery id (`webhook-id`, `X-Idempotency-Key`).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event type (of every item, for a batch).
    pub event_type: EventType,
    /// Whether the body is a batch.
    pub batch: bool,
    /// The events inside.
    pub event_ids: Vec<EventId>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made (all of them, also those no longer kept).
    pub attempt_count: u32,
    /// The latest attempts, oldest first (at most [`KEPT_ATTEMPTS`]).
    pub attempts: Vec<AttemptRecord>,
    /// When the next attempt is due, while retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the delivery was created (fan-out time).
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub updated_at: DateTime<Utc>,
    /// The task, to send it again.
    pub task: StoredTask,
    /// The queue message that was parked in the dead-letter queue: a repeat of that message (its
    /// parking not acknowledged) parks it again without posting; a redrive comes as a new message
    /// and is posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_by: Option<String>,
}

impl DeliveryRecord {
    /// Records `attempt` (replacing an earlier record of the same attempt number, which a
    /// redelivered queue message can repeat) and sets the status.
    pub fn push(&mut self, attempt: AttemptRecord, next_attempt_at: Option<DateTime<Utc>>) {
        self.attempts.retain(|a| a.attempt != attempt.attempt);
        self.status = attempt.outcome;
        self.updated_at = attempt.at;
        self.attempt_count = self.attempt_count.max(attempt.attempt);
        self.next_attempt_at = next_attempt_at;
        self.attempts.push(attempt);
        self.attempts.sort_by_key(|a| a.attempt);
        let excess = self.attempts.len().saturating_sub(KEPT_ATTEMPTS);
        self.attempts.drain(..excess);
    }
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

impl DeliveryFilter {
    fn keeps(&self, r: &DeliveryRecord) -> bool {
        self.status.is_none_or(|s| s == r.status)
            && self.event_type.is_none_or(|t| t == r.event_type)
    }
}

/// A page of deliveries, newest first, and the sort key to continue below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    /// The records with their versions (for a conditional update without reading again).
    pub records: Vec<(DeliveryRecord, u64)>,
    /// Pass as `before` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// Delivery records on the [`DocumentStore`], tasks above 64 KiB in the [`BlobStore`].
#[derive(Debug, Clone)]
pub struct Deliveries {
    /// Records.
    pub docs: Arc<dyn DocumentStore>,
    /// Large tasks.
    pub blobs: Arc<dyn BlobStore>,
    /// How long records are kept.
    pub ttl: std::time::Duration,
}

fn corrupt(e: &serde_json::Error) -> BackendError {
    BackendError::Corrupt(crate::json_error(e))
}

/// Partitions an endpoint's delivery list is spread over (by a hash of the delivery id): an
/// endpoint taking every event at 10,000 inbound messages a second (and three statuses for each
/// message sent) gets about 40,000 deliveries a second, 625 index writes a second per partition,
/// below DynamoDB's 1,000. Listing reads them all (and the unsharded partition of records
/// written before), merged by time.
pub const DELIVERY_SHARDS: u32 = 64;

impl Deliveries {
    fn key(id: &str) -> String {
        format!("delivery#{id}")
    }

    /// The index list of `endpoint_id`'s deliveries.
    pub fn partition(endpoint_id: &str) -> String {
        format!("deliveries#{endpoint_id}")
    }

    /// The partition delivery `id` of `endpoint_id` is listed in: one of [`DELIVERY_SHARDS`],
    /// so one busy endpoint's records do not heat one index partition.
    pub fn shard(endpoint_id: &str, id: &str) -> String {
        crate::ports::shard_partition(&Self::partition(endpoint_id), id, DELIVERY_SHARDS)
    }

    /// The sort key of a delivery created at `at` (newest last; unique by id).
    pub fn sort_key(at: DateTime<Utc>, id: &str) -> String {
        format!("{}#{id}", at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// The record and its version.
    pub async fn get(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(DeliveryRecord, u64)>, BackendError> {
        let Some(doc) = self.docs.get_json(&Self::key(id), now).await? else {
            return Ok(None);
        };
        let record = crate::from_json_bytes(&doc.json).map_err(|e| corrupt(&e))?;
        Ok(Some((record, doc.version)))
    }

    /// A new record for `task` (not yet attempted); large tasks go to the blob store.
    pub async fn new_record(
        &self,
        task: &DeliveryTask,
        now: DateTime<Utc>,
    ) -> Result<DeliveryRecord, BackendError> {
        let json = TaskJson::new(task).map_err(|e| corrupt(&e))?;
        self.new_record_of(task, json, now).await
    }

    /// [`Self::new_record`] for a `task` whose JSON is at hand (`json`, which reads as `task`:
    /// the queue message it was read from). A task whose body is a JSON string is kept as that
    /// text (checked as JSON, not escaped again); one carrying its body as a document is
    /// written with its body as a string ([`TaskJson`] says why).
    pub async fn new_record_as(
        &self,
        task: &DeliveryTask,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<DeliveryRecord, BackendError> {
        let json = match task.body.form() {
            BodyForm::Json => TaskJson::new(task).map_err(|e| corrupt(&e))?,
            BodyForm::Text => TaskJson(
                serde_json::value::RawValue::from_string(json.to_owned())
                    .map_err(|e| corrupt(&e))?,
            ),
        };
        self.new_record_of(task, json, now).await
    }

    async fn new_record_of(
        &self,
        task: &DeliveryTask,
        json: TaskJson,
        now: DateTime<Utc>,
    ) -> Result<DeliveryRecord, BackendError> {
        let stored = if json.text().len() > INLINE_TASK_BYTES {
            let key = format!("delivery-task#{}", task.delivery_id);
            self.blobs
                .put(&key, json.text().as_bytes(), self.expiry(now))
                .await?;
            StoredTask::Blob(key)
        } else {
            StoredTask::Inline(json)
        };
        Ok(DeliveryRecord {
            id: task.delivery_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            event_type: task.event_type,
            batch: task.batch,
            event_ids: task.event_ids.clone(),
            status: DeliveryStatus::Retrying,
            attempt_count: 0,
            attempts: Vec::new(),
            next_attempt_at: None,
            created_at: task.created_at,
            updated_at: now,
            task: stored,
            parked_by: None,
        })
    }

    fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(30))
    }

    /// Saves `record` if its stored version is still `expected` (`None`: creation).
    pub async fn put(
        &self,
        record: &DeliveryRecord,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let body = serde_json::to_string(record).map_err(|e| corrupt(&e))?;
        let entry = IndexEntry {
            partition: Self::shard(&record.endpoint_id, &record.id),
            sort: Self::sort_key(record.created_at, &record.id),
        };
        self.docs
            .put_json(
                &Self::key(&record.id),
                &body,
                DocumentWrite::new(expected, now)
                    .expiring(self.expiry(now))
                    .indexed(&entry),
            )
            .await
    }

    /// The task of a record.
    pub async fn task(
        &self,
        record: &DeliveryRecord,
        now: DateTime<Utc>,
    ) -> Result<DeliveryTask, BackendError> {
        match &record.task {
            StoredTask::Inline(json) => json.task().map_err(|e| corrupt(&e)),
            StoredTask::Blob(key) => {
                let bytes = self
                    .blobs
                    .get(key, now)
                    .await?
                    .ok_or_else(|| BackendError::Corrupt(format!("task {key} has expired")))?;
                crate::from_json_bytes(&bytes).map_err(|e| corrupt(&e))
            }
        }
    }

    /// Deliveries of the endpoints `endpoint_ids`, newest first, matching `filter`, starting
    /// below the sort key `before` (a previous page's `next`; sort keys are `created_at#id`, so
    /// comparable across endpoints and shards). Reads at most 1,000 records per partition to
    /// fill a page of `limit`, so a rare filter cannot make one call unbounded; the cursor then
    /// continues.
    pub async fn list(
        &self,
        endpoint_ids: &[String],
        filter: &DeliveryFilter,
        before: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<DeliveryPage, BackendError> {
        let partitions: Vec<String> = endpoint_ids
            .iter()
            .flat_map(|id| crate::ports::sharded_partitions(&Self::partition(id), DELIVERY_SHARDS))
            .collect();
        let upper = filter.until.map(|t| Self::sort_key(t, ""));
        let lower = filter.since.map(|t| Self::sort_key(t, ""));
        let before = match (before, upper) {
            (Some(b), Some(u)) => Some(if b < u.as_str() { b.to_owned() } else { u }),
            (Some(b), None) => Some(b.to_owned()),
            (None, u) => u,
        };
        let (records, next) = crate::ports::merged_page(
            self.docs.as_ref(),
            &partitions,
            (lower.as_deref(), before.as_deref()),
            limit,
            now,
            |l| {
                let record: DeliveryRecord =
                    serde_json::from_value(l.doc.body).map_err(|e| corrupt(&e))?;
                Ok::<_, BackendError>(filter.keeps(&record).then_some((record, l.doc.version)))
            },
        )
        .await?;
        Ok(DeliveryPage {
            records: records.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore};

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    /// The first record of endpoint `ep_1` as a listing reads it (through a `Value`).
    async fn first_listed(s: &Deliveries) -> DeliveryRecord {
        let filter = DeliveryFilter::default();
        let page = s.list(&["ep_1".to_owned()], &filter, None, 10, t(2)).await;
        page.unwrap().records.remove(0).0
    }

    fn store() -> Deliveries {
        Deliveries {
            docs: Arc::new(MemoryDocumentStore::new()),
            blobs: Arc::new(MemoryBlobStore::new()),
            ttl: std::time::Duration::from_secs(30 * 86400),
        }
    }

    fn task(n: i64, event_type: EventType, body: String) -> DeliveryTask {
        DeliveryTask {
            delivery_id: format!("msg_{n:04}_ep_1"),
            endpoint_id: "ep_1".into(),
            event_type,
            batch: false,
            event_ids: vec![EventId::new()],
            body: body.into(),
            created_at: t(n),
            conversation_id: None,
        }
    }

    fn attempt(n: u32, outcome: DeliveryStatus) -> AttemptRecord {
        AttemptRecord {
            attempt: n,
            at: t(1000 + i64::from(n)),
            status: Some(if outcome == DeliveryStatus::Delivered {
                200
            } else {
                500
            }),
            latency_ms: 3,
            error: None,
            outcome,
        }
    }

    #[tokio::test]
    async fn an_endpoints_records_spread_over_shards_and_old_unsharded_ones_are_listed() {
        let s = store();
        for n in 0..40 {
            let r = s
                .new_record(&task(n, EventType::MessageRead, "{}".into()), t(n))
                .await
                .unwrap();
            assert!(s.put(&r, None, t(n)).await.unwrap());
        }
        let mut used = 0;
        for partition in
            crate::ports::sharded_partitions(&Deliveries::partition("ep_1"), DELIVERY_SHARDS)
        {
            let page = crate::ports::IndexPage {
                partition: &partition,
                after: None,
                before: None,
                descending: false,
                limit: 100,
            };
            if !s.docs.list_page(page, t(100)).await.unwrap().is_empty() {
                assert_ne!(partition, "deliveries#ep_1");
                used += 1;
            }
        }
        assert!(used >= 16, "40 records in {used} partitions");
        // A record written before sharding, in the endpoint's one partition.
        let old = s
            .new_record(&task(99, EventType::MessageRead, "{}".into()), t(-5))
            .await
            .unwrap();
        let entry = IndexEntry {
            partition: Deliveries::partition("ep_1"),
            sort: Deliveries::sort_key(old.created_at, &old.id),
        };
        let body = serde_json::to_value(&old).unwrap();
        assert!(
            s.docs
                .put(
                    &Deliveries::key(&old.id),
                    &body,
                    DocumentWrite::new(None, t(0)).indexed(&entry)
                )
                .await
                .unwrap()
        );
        let all = DeliveryFilter::default();
        let mut ids = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .list(&["ep_1".to_owned()], &all, before.as_deref(), 7, t(100))
                .await
                .unwrap();
            ids.extend(page.records.into_iter().map(|(r, _)| r.id));
            match page.next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
        assert_eq!(ids.len(), 41);
        // Newest first by creation time across the shards and the old partition.
        assert_eq!(ids[0], "msg_0099_ep_1");
        assert_eq!(ids[1], "msg_0039_ep_1");
        assert_eq!(ids.last().map(String::as_str), Some("msg_0000_ep_1"));
    }

    #[tokio::test]
    async fn pages_are_newest_first_filtered_and_continue_with_the_cursor() {
        let s = store();
        for n in 0..25 {
            let event_type = if n % 2 == 0 {
                EventType::MessageReceived
            } else {
                EventType::MessageRead
            };
            let mut r = s
                .new_record(&task(n, event_type, "{}".into()), t(n))
                .await
                .unwrap();
            let outcome = if n % 5 == 0 {
                DeliveryStatus::DeadLettered
            } else {
                DeliveryStatus::Delivered
            };
            r.push(attempt(1, outcome), None);
            assert!(s.put(&r, None, t(n)).await.unwrap());
        }
        let all = DeliveryFilter::default();
        let first = s
            .list(&["ep_1".to_owned()], &all, None, 10, t(100))
            .await
            .unwrap();
        let ids: Vec<&str> = first.records.iter().map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(ids[0], "msg_0024_ep_1");
        assert_eq!(ids[9], "msg_0015_ep_1");
        let second = s
            .list(
                &["ep_1".to_owned()],
                &all,
                first.next.as_deref(),
                10,
                t(100),
            )
            .await
            .unwrap();
        assert_eq!(second.records[0].0.id, "msg_0014_ep_1");
        let third = s
            .list(
                &["ep_1".to_owned()],
                &all,
                second.next.as_deref(),
                10,
                t(100),
            )
            .await
            .unwrap();
        assert_eq!(third.records.len(), 5);
        assert_eq!(third.next, None);

        let failed = DeliveryFilter {
            status: Some(DeliveryStatus::DeadLettered),
            ..DeliveryFilter::default()
        };
        let page = s
            .list(&["ep_1".to_owned()], &failed, None, 10, t(100))
            .await
            .unwrap();
        let ids: Vec<&str> = page.records.iter().map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "msg_0020_ep_1",
                "msg_0015_ep_1",
                "msg_0010_ep_1",
                "msg_0005_ep_1",
                "msg_0000_ep_1"
            ]
        );
        let window = DeliveryFilter {
            event_type: Some(EventType::MessageRead),
            since: Some(t(10)),
            until: Some(t(15)),
            ..DeliveryFilter::default()
        };
        let page = s
            .list(&["ep_1".to_owned()], &window, None, 10, t(100))
            .await
            .unwrap();
        let ids: Vec<&str> = page.records.iter().map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(ids, ["msg_0013_ep_1", "msg_0011_ep_1"]);
        assert!(
            s.list(&["ep_2".to_owned()], &all, None, 10, t(100))
                .await
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_tasks_json_is_kept_as_it_came_and_read_as_the_task_it_is() {
        let s = store();
        let mut task = task(
            3,
            EventType::MessageReceived,
            r#"{"a":"é \"q\"","b":[1]}"#.into(),
        );
        task.conversation_id = Some("cnv_1".into());
        // As a queue message may hold it: keys in another order, an escape, spaces.
        let tree = serde_json::to_value(&task).unwrap();
        let came = format!(" {} ", serde_json::to_string_pretty(&tree).unwrap())
            .replace("cnv_1", "cnv\\u005f1");
        let r = s.new_record_as(&task, &came, t(1)).await.unwrap();
        let StoredTask::Inline(json) = &r.task else {
            panic!("inline expected");
        };
        assert_eq!(json.text(), came.trim());
        assert!(s.put(&r, None, t(1)).await.unwrap());
        // Written into the record as it came, not escaped as a string.
        let doc = s
            .docs
            .get_json(&Deliveries::key(&r.id), t(2))
            .await
            .unwrap()
            .unwrap();
        let text = std::str::from_utf8(&doc.json).unwrap();
        assert!(text.contains(came.trim()), "{text}");
        let (stored, _) = s.get(&r.id, t(2)).await.unwrap().unwrap();
        assert_eq!(stored, r);
        assert_eq!(s.task(&stored, t(2)).await.unwrap(), task);
        // Through a tree (a listing reads records so): the same task.
        let listed: DeliveryRecord =
            serde_json::from_value(serde_json::to_value(&stored).unwrap()).unwrap();
        assert_eq!(s.task(&listed, t(2)).await.unwrap(), task);
        let listed = first_listed(&s).await;
        assert_eq!(s.task(&listed, t(2)).await.unwrap(), task);
        // A record written before, its task as the derived form wrote it, reads the same.
        let mut old = serde_json::to_value(&stored).unwrap();
        old["task"] = serde_json::json!({ "inline": tree });
        let old: DeliveryRecord = serde_json::from_str(&old.to_string()).unwrap();
        assert_eq!(s.task(&old, t(2)).await.unwrap(), task);
        // Written from the task itself, the same task too.
        let fresh = s.new_record(&task, t(1)).await.unwrap();
        assert_eq!(s.task(&fresh, t(2)).await.unwrap(), task);
        // What is not JSON is refused, not stored.
        assert!(
            s.new_record_as(&task, "{\"delivery_id\":", t(1))
                .await
                .is_err()
        );
    }

    /// A task that came with its body as a document is kept with its body as a string, so a
    /// listing (through a `Value`, which sorts an object's keys) gives back the same bytes.
    #[tokio::test]
    async fn a_task_carrying_its_body_as_a_document_keeps_its_bytes_in_the_record() {
        let s = store();
        let body = r#"{"z":1,"a":{"y":"é \"q\"","b":[2.5,null]}}"#;
        let text_task = task(4, EventType::MessageReceived, body.into());
        let mut message = serde_json::to_string(&text_task).unwrap();
        message = message.replace(
            &format!(",\"body\":{},", serde_json::to_string(body).unwrap()),
            &format!(",\"body_json\":{body},"),
        );
        let came: DeliveryTask = serde_json::from_str(&message).unwrap();
        assert_eq!(came.body.form(), BodyForm::Json, "{message}");
        let r = s.new_record_as(&came, &message, t(1)).await.unwrap();
        let StoredTask::Inline(json) = &r.task else {
            panic!("inline expected");
        };
        assert_eq!(json.text(), serde_json::to_string(&text_task).unwrap());
        assert!(s.put(&r, None, t(1)).await.unwrap());
        let (stored, _) = s.get(&r.id, t(2)).await.unwrap().unwrap();
        for record in [&stored, &first_listed(&s).await] {
            let back = s.task(record, t(2)).await.unwrap();
            assert_eq!(back.body.as_str(), body);
            assert_eq!(back, came);
        }
        let fresh = s.new_record(&came, t(1)).await.unwrap();
        assert_eq!(fresh.task, r.task);
    }

    #[tokio::test]
    async fn large_tasks_live_in_the_blob_store_and_come_back() {
        let s = store();
        let big = task(1, EventType::MessageReceived, "x".repeat(100 * 1024));
        let r = s.new_record(&big, t(1)).await.unwrap();
        assert!(matches!(r.task, StoredTask::Blob(_)));
        assert!(s.put(&r, None, t(1)).await.unwrap());
        let (stored, _) = s.get(&big.delivery_id, t(2)).await.unwrap().unwrap();
        assert_eq!(s.task(&stored, t(2)).await.unwrap(), big);
        let small = task(2, EventType::MessageReceived, "{}".into());
        let r = s.new_record(&small, t(1)).await.unwrap();
        assert_eq!(s.task(&r, t(2)).await.unwrap(), small);
    }

    #[test]
    fn attempts_are_capped_and_a_repeated_number_replaces_the_earlier_record() {
        let mut r = DeliveryRecord {
            id: "d".into(),
            endpoint_id: "e".into(),
            event_type: EventType::MessageRead,
            batch: false,
            event_ids: vec![],
            status: DeliveryStatus::Retrying,
            attempt_count: 0,
            attempts: vec![],
            next_attempt_at: None,
            created_at: t(0),
            updated_at: t(0),
            task: StoredTask::Blob("k".into()),
            parked_by: None,
        };
        for n in 1..=60 {
            r.push(attempt(n, DeliveryStatus::Retrying), Some(t(2000)));
        }
        r.push(attempt(60, DeliveryStatus::Delivered), None);
        assert_eq!(r.attempts.len(), KEPT_ATTEMPTS);
        assert_eq!(r.attempts[0].attempt, 11);
        assert_eq!(r.attempt_count, 60);
        assert_eq!(r.status, DeliveryStatus::Delivered);
        assert_eq!(r.next_attempt_at, None);
        assert_eq!(
            r.attempts.last().map(|a| a.outcome),
            Some(DeliveryStatus::Delivered)
        );
        assert_eq!(
            DeliveryStatus::parse("dead_lettered"),
            Some(DeliveryStatus::DeadLettered)
        );
        assert_eq!(DeliveryStatus::parse("nope"), None);
    }
}
