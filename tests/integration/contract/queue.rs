//! [`Queue`] contract: batches within SQS limits, partial failures, visibility, delays, receive
//! counts and dead-lettering.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use shared::ports::memory::{DeadLetter, MemoryQueue};
use shared::ports::{BackendError, OutgoingMessage, Queue, ReceivedMessage, limits};
use tests::moto;

use super::for_each_backend;

type Backend = (Arc<dyn Queue>, Option<Arc<dyn Queue>>);

async fn memory(max_receives: Option<u32>) -> Backend {
    match max_receives {
        None => (Arc::new(MemoryQueue::new("q")), None),
        Some(max) => {
            let dlq = Arc::new(MemoryQueue::new("dlq"));
            let dead_letter = DeadLetter {
                queue: dlq.clone(),
                max_receives: max,
            };
            (
                Arc::new(MemoryQueue::with_dead_letter("q", dead_letter)),
                Some(dlq),
            )
        }
    }
}

async fn on_sqlite(max_receives: Option<u32>) -> Backend {
    use wagate_local::sqlite::{SqliteDeadLetter, SqliteQueue};
    let db = tests::sqlite_database().0;
    match max_receives {
        None => (Arc::new(SqliteQueue::new(db, "q")), None),
        Some(max) => {
            let dlq = Arc::new(SqliteQueue::new(db.clone(), "dlq"));
            let dead_letter = SqliteDeadLetter {
                queue: dlq.clone(),
                max_receives: max,
            };
            (
                Arc::new(SqliteQueue::with_dead_letter(db, "q", dead_letter)),
                Some(dlq),
            )
        }
    }
}

async fn on_moto(max_receives: Option<u32>) -> Backend {
    let clients = moto::clients().await;
    let (q, dlq) = moto::queue(&clients, 30, max_receives).await;
    (Arc::new(q), dlq.map(|d| Arc::new(d) as Arc<dyn Queue>))
}

fn msg(id: usize, body: impl Into<String>) -> OutgoingMessage {
    OutgoingMessage {
        id: id.to_string(),
        body: body.into(),
        delay: None,
    }
}

/// Receives until `n` messages arrived or a few empty long polls in a row.
async fn receive_n(q: &dyn Queue, n: usize, visibility: Duration) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    let mut empty = 0;
    while out.len() < n && empty < 3 {
        let got = q
            .receive(10, Duration::from_secs(1), visibility)
            .await
            .unwrap();
        if got.is_empty() {
            empty += 1;
        }
        out.extend(got);
    }
    out
}

async fn sends_a_full_batch_and_receives_each_message_once(backend: Backend) {
    let q = backend.0;
    let bodies: Vec<String> = (0..limits::MAX_BATCH_ENTRIES)
        .map(|i| format!("{{\"n\":{i}}}"))
        .collect();
    let batch: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| msg(i, b.clone()))
        .collect();
    assert!(q.send_batch(&batch).await.unwrap().is_empty());
    let got = receive_n(q.as_ref(), 10, Duration::from_secs(30)).await;
    let received: HashSet<String> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(received, bodies.into_iter().collect());
    assert!(got.iter().all(|m| m.receive_count == 1));
    for m in &got {
        q.delete(&m.receipt).await.unwrap();
    }
    assert!(
        q.receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}
for_each_backend!(sends_a_full_batch_and_receives_each_message_once, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn refuses_batches_beyond_sqs_limits(backend: Backend) {
    let q = backend.0;
    let eleven: Vec<_> = (0..11).map(|i| msg(i, "x")).collect();
    let same_ids = vec![msg(1, "a"), msg(1, "b")];
    let too_big = vec![msg(0, "x".repeat(limits::MAX_MESSAGE_BYTES + 1))];
    let too_big_together = vec![
        msg(0, "x".repeat(200 * 1024)),
        msg(1, "y".repeat(100 * 1024)),
    ];
    let long_delay = vec![OutgoingMessage {
        delay: Some(Duration::from_secs(901)),
        ..msg(0, "x")
    }];
    for batch in [
        eleven,
        same_ids,
        too_big,
        too_big_together,
        long_delay,
        vec![],
    ] {
        let e = q.send_batch(&batch).await.unwrap_err();
        assert!(matches!(e, BackendError::Rejected(_)), "{e}");
        assert!(!e.is_retryable());
    }
    // Exactly at the limit is fine.
    let at_limit = vec![msg(0, "z".repeat(limits::MAX_MESSAGE_BYTES))];
    assert!(q.send_batch(&at_limit).await.unwrap().is_empty());
    let got = receive_n(q.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.len(), limits::MAX_MESSAGE_BYTES);
}
for_each_backend!(refuses_batches_beyond_sqs_limits, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn reports_entries_it_refused_and_keeps_the_rest(backend: Backend) {
    let q = backend.0;
    // SQS refuses bodies with characters outside its allowed set, entry by entry.
    let batch = vec![
        msg(0, "fine"),
        msg(1, "bad \u{1} char"),
        msg(2, "also fine"),
    ];
    let failed = q.send_batch(&batch).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].id, "1");
    assert!(!failed[0].retryable, "a bad body is the sender's fault");
    let got = receive_n(q.as_ref(), 2, Duration::from_secs(30)).await;
    let bodies: HashSet<String> = got.into_iter().map(|m| m.body).collect();
    assert_eq!(
        bodies,
        HashSet::from(["fine".to_owned(), "also fine".to_owned()])
    );
}
for_each_backend!(reports_entries_it_refused_and_keeps_the_rest, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn hides_received_messages_until_visibility_changes(backend: Backend) {
    let q = backend.0;
    q.send_batch(&[msg(0, "again")]).await.unwrap();
    let first = receive_n(q.as_ref(), 1, Duration::from_secs(60)).await;
    assert_eq!(first.len(), 1);
    assert!(
        q.receive(10, Duration::ZERO, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "hidden while in flight"
    );
    q.change_visibility(&first[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    let second = receive_n(q.as_ref(), 1, Duration::from_secs(60)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].receive_count, 2);
    q.delete(&second[0].receipt).await.unwrap();
}
for_each_backend!(hides_received_messages_until_visibility_changes, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn delays_messages_sent_with_a_delay(backend: Backend) {
    let q = backend.0;
    let delayed = OutgoingMessage {
        delay: Some(Duration::from_secs(30)),
        ..msg(0, "later")
    };
    q.send_batch(&[delayed, msg(1, "now")]).await.unwrap();
    let got = receive_n(q.as_ref(), 2, Duration::from_secs(30)).await;
    let bodies: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        vec!["now"],
        "the delayed message is not visible yet"
    );
}
for_each_backend!(delays_messages_sent_with_a_delay, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn moves_a_message_to_the_dead_letter_queue_after_max_receives(backend: Backend) {
    let (q, dlq) = backend;
    let dlq = dlq.unwrap();
    q.send_batch(&[msg(0, "poison")]).await.unwrap();
    for attempt in 1..=2 {
        let got = receive_n(q.as_ref(), 1, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].receive_count, attempt);
        q.change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        receive_n(q.as_ref(), 1, Duration::from_secs(30))
            .await
            .is_empty(),
        "moved after 2 receives"
    );
    let dead = receive_n(dlq.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(
        dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["poison"]
    );
}
for_each_backend!(moves_a_message_to_the_dead_letter_queue_after_max_receives, memory: super::memory(Some(2)), sqlite: super::on_sqlite(Some(2)), moto: super::on_moto(Some(2)));

async fn refuses_receipts_it_never_issued(backend: Backend) {
    let q = backend.0;
    assert!(
        q.change_visibility("not-a-receipt", Duration::ZERO)
            .await
            .is_err()
    );
}
for_each_backend!(refuses_receipts_it_never_issued, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

async fn takes_the_longest_retry_delay_as_a_visibility_change(backend: Backend) {
    // Deliver's longest retry is a visibility change of the received task: within what SQS
    // allows from the receipt (12 hours), so it is never refused for its length.
    let q = backend.0;
    q.send_batch(&[msg(0, "retry much later")]).await.unwrap();
    let got = receive_n(q.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    q.change_visibility(&got[0].receipt, shared::delivery::retry::MAX_RETRY_DELAY)
        .await
        .unwrap();
    assert!(
        q.receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}
for_each_backend!(takes_the_longest_retry_delay_as_a_visibility_change, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

/// A message received with zero visibility is visible again at once, but one receive hands it
/// out once, not once per slot of the batch.
async fn a_message_taken_with_zero_visibility_comes_once_per_receive(backend: Backend) {
    let q = backend.0;
    q.send_batch(&[msg(0, "only")]).await.unwrap();
    let first = receive_n(q.as_ref(), 1, Duration::ZERO).await;
    assert_eq!(first.len(), 1);
    let again = q
        .receive(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["only"]
    );
}
for_each_backend!(a_message_taken_with_zero_visibility_comes_once_per_receive, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));

/// A batch delete removes the messages it names and reports, by position, a receipt it could
/// not use; the rest of the batch is deleted all the same.
async fn deletes_a_batch_and_reports_the_receipts_it_could_not_use(backend: Backend) {
    let q = backend.0;
    let batch: Vec<_> = (0..4).map(|i| msg(i, format!("m{i}"))).collect();
    assert!(q.send_batch(&batch).await.unwrap().is_empty());
    let mut got = receive_n(q.as_ref(), 4, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 4);
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let receipts = [
        got[0].receipt.as_str(),
        "not-a-receipt",
        got[2].receipt.as_str(),
        got[3].receipt.as_str(),
    ];
    let failed = q.delete_batch(&receipts).await.unwrap();
    assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
    // Only the message left out of the batch is still there.
    q.change_visibility(&got[1].receipt, Duration::ZERO)
        .await
        .unwrap();
    let left = receive_n(q.as_ref(), 1, Duration::from_secs(30)).await;
    assert_eq!(
        left.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["m1"]
    );
    assert!(
        q.receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}
for_each_backend!(deletes_a_batch_and_reports_the_receipts_it_could_not_use, memory: super::memory(None), sqlite: super::on_sqlite(None), moto: super::on_moto(None));
