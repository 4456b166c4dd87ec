//! Campaign counting through the track stage: totals under duplicated and reordered statuses,
//! with every storage call failed in turn (cleanly and after applying), a status that outruns
//! its send, and completion by the sweep.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::state::{Campaigns, ConversationSettings, OutboundRecord, State};
use super::sweep::Sweep;
use super::*;
use crate::ids::SourceId;
use crate::model::{
    CampaignCompletion, CampaignStatus, CampaignTotals, MessageContent, Provider, SourceInfo,
    TextData,
};
use crate::ports::codec::receive_all;
use crate::ports::faults::{Fault, Faults, FaultyDocs};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::providers::normalize;
use crate::providers::test_support::fixture;

struct World {
    track: Track,
    sweep: Sweep,
    faults: Arc<Faults>,
    outbound: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
}

fn world() -> World {
    let faults = Faults::none();
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let docs: Arc<dyn crate::ports::DocumentStore> = Arc::new(FaultyDocs {
        inner: Arc::new(MemoryDocumentStore::new()),
        layer: faults.clone(),
    });
    let state = State::new(
        docs,
        ConversationSettings {
            idle: Duration::from_secs(24 * 3600),
            message_ttl: Duration::from_secs(30 * 86400),
            recent_messages: 3,
        },
    );
    let sink: Arc<dyn EventSink> = Arc::new(QueueSink {
        buffer: Arc::new(MemoryQueue::new("buffer")),
        outbound: outbound.clone(),
        blobs: blobs.clone(),
        blob_ttl: Duration::from_secs(86400),
        media: None,
    });
    World {
        track: Track {
            blobs: blobs.clone(),
            state: state.clone(),
            sink: sink.clone(),
            config: TrackConfig::default(),
        },
        sweep: Sweep {
            conversations: state.conversations,
            sink,
            page: 10,
        },
        faults,
        outbound,
        blobs,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap() + chrono::Duration::seconds(secs)
}

fn source() -> SourceInfo {
    let mut s = SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Meta);
    s.business_id = Some("106540352242922".into());
    s
}

fn campaigns(w: &World) -> Campaigns {
    w.sweep.campaigns()
}

/// A Meta status `status` of message `id`, as the provider posts it.
fn status(id: &str, status: &str, tag: Option<&str>, t: i64) -> InboundEvent {
    let mut doc: Value = serde_json::from_slice(&fixture("meta-status-sent.json")).unwrap();
    let item = &mut doc["entry"][0]["changes"][0]["value"]["statuses"][0];
    item["id"] = json!(id);
    item["status"] = json!(status);
    item["timestamp"] = json!(at(t).timestamp().to_string());
    match tag {
        Some(tag) => item["biz_opaque_callback_data"] = json!(tag),
        None => {
            item.as_object_mut()
                .unwrap()
                .remove("biz_opaque_callback_data");
        }
    }
    if status == "failed" {
        item["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Meta,
        doc.to_string().as_bytes(),
        at(t),
    )
    .unwrap()
    .remove(0)
}

fn sent_record(campaign: &str, text: &str) -> OutboundRecord {
    OutboundRecord {
        content: Some(MessageContent::Text(TextData { body: text.into() })),
        campaign_id: Some(campaign.into()),
        metadata: Some(json!({"order": 42})),
        to: None,
        sent_at: at(0),
        via_api: true,
    }
}

/// Processes `event` as SQS would: again after a failure, until it succeeds.
async fn process(w: &World, event: &InboundEvent, t: i64) {
    for attempt in 0..8 {
        if w.track
            .process(event.clone(), at(t + attempt * 61))
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("never processed");
}

async fn totals(w: &World, id: &str) -> CampaignTotals {
    campaigns(w)
        .campaign(id, at(0))
        .await
        .unwrap()
        .unwrap()
        .totals
}

#[tokio::test]
async fn duplicated_and_reordered_statuses_count_once_per_message_and_status() {
    let w = world();
    let c = campaigns(&w)
        .create("spring sale", None, None, Duration::from_secs(86400), at(0))
        .await
        .unwrap();
    for m in ["wamid.A", "wamid.B", "wamid.C"] {
        w.track
            .state
            .statuses
            .record_outbound(&source(), m, &sent_record(&c.id, "hi"), None, at(0))
            .await
            .unwrap();
    }
    let feed = [
        ("wamid.A", "sent"),
        ("wamid.A", "delivered"),
        ("wamid.A", "sent"),
        ("wamid.A", "read"),
        ("wamid.A", "read"),
        ("wamid.B", "read"),
        ("wamid.B", "delivered"),
        ("wamid.B", "sent"),
        ("wamid.C", "sent"),
        ("wamid.C", "failed"),
        ("wamid.C", "delivered"),
    ];
    for (i, (m, s)) in feed.iter().enumerate() {
        process(&w, &status(m, s, None, 10 + i as i64), 10).await;
    }
    assert_eq!(
        totals(&w, &c.id).await,
        CampaignTotals {
            total: 3,
            sent: 3,
            delivered: 2,
            read: 2,
            failed: 1,
        }
    );
}

#[tokio::test]
async fn a_status_counts_once_whichever_storage_call_fails_cleanly_or_after_applying() {
    // How many calls one status takes, without faults.
    let calls = {
        let w = world();
        let c = campaigns(&w)
            .create("c", None, None, Duration::from_secs(86400), at(0))
            .await
            .unwrap();
        w.track
            .state
            .statuses
            .record_outbound(&source(), "wamid.A", &sent_record(&c.id, "hi"), None, at(0))
            .await
            .unwrap();
        let start = w.faults.calls();
        process(&w, &status("wamid.A", "read", None, 5), 5).await;
        w.faults.calls() - start
    };
    assert!(calls >= 3, "{calls}");
    for k in 1..=calls {
        for fault in [Fault::Clean, Fault::Ambiguous] {
            let w = world();
            let c = campaigns(&w)
                .create("c", None, None, Duration::from_secs(86400), at(0))
                .await
                .unwrap();
            w.track
                .state
                .statuses
                .record_outbound(&source(), "wamid.A", &sent_record(&c.id, "hi"), None, at(0))
                .await
                .unwrap();
            w.faults.fail_in(k, fault);
            process(&w, &status("wamid.A", "read", None, 5), 5).await;
            // The same status again, from another request.
            process(&w, &status("wamid.A", "read", None, 6), 6).await;
            assert_eq!(
                totals(&w, &c.id).await,
                CampaignTotals {
                    total: 1,
                    sent: 1,
                    delivered: 1,
                    read: 1,
                    failed: 0,
                },
                "call {k} of {calls} failed ({fault:?})"
            );
        }
    }
}

#[tokio::test]
async fn a_status_that_outruns_its_send_finds_it_through_the_callback_tag_and_counts_once() {
    let w = world();
    let c = campaigns(&w)
        .create("c", None, None, Duration::from_secs(86400), at(0))
        .await
        .unwrap();
    let send = state::SendRecord {
        source: source(),
        record: sent_record(&c.id, "your order shipped"),
        conversation_id: None,
        called: true,
        message_id: None,
        provider: None,
        answer: None,
        request_digest: None,
    };
    assert!(
        w.track
            .state
            .statuses
            .save_send("snd_1", &send, None, at(0))
            .await
            .unwrap()
    );
    let tag = format!("{SEND_TAG}snd_1");
    process(&w, &status("wamid.A", "sent", Some(&tag), 1), 1).await;
    // The send records it afterwards: nothing more is counted.
    w.track
        .state
        .statuses
        .record_outbound(
            &source(),
            "wamid.A",
            &sent_record(&c.id, "your order shipped"),
            None,
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        totals(&w, &c.id).await,
        CampaignTotals {
            total: 1,
            sent: 1,
            ..CampaignTotals::default()
        }
    );
    let events: Vec<InboundEvent> = receive_all(
        w.outbound.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(60),
        at(0),
    )
    .await
    .unwrap();
    let sent = events
        .iter()
        .find(|e| e.event_type == EventType::MessageSent)
        .expect("the sent status went out");
    let message = sent.data.message().unwrap();
    assert_eq!(message.campaign_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(message.message_type(), Some("text"));
    assert_eq!(message.metadata, Some(json!({"order": 42})));
    assert_eq!(
        message.biz_opaque_callback_data, None,
        "wagate's own tag is not shown"
    );
}

#[tokio::test]
async fn the_sweep_completes_a_campaign_when_all_messages_are_final_and_once() {
    let w = world();
    let c = campaigns(&w)
        .create("c", None, None, Duration::from_secs(86400), at(0))
        .await
        .unwrap();
    // No source known yet: the first send gives it one.
    campaigns(&w)
        .take_for_send(&c.id, &source(), at(0))
        .await
        .unwrap()
        .unwrap();
    for m in ["wamid.A", "wamid.B"] {
        w.track
            .state
            .statuses
            .record_outbound(&source(), m, &sent_record(&c.id, "hi"), None, at(0))
            .await
            .unwrap();
    }
    process(&w, &status("wamid.A", "read", None, 1), 1).await;
    // One message not final yet: not complete.
    w.sweep.run(at(120)).await.unwrap();
    let open = campaigns(&w)
        .campaign(&c.id, at(120))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.status, CampaignStatus::Open);
    process(&w, &status("wamid.B", "failed", None, 130), 130).await;
    receive_all::<InboundEvent>(
        w.outbound.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(60),
        at(0),
    )
    .await
    .unwrap();
    assert_eq!(w.sweep.run(at(200)).await.unwrap(), 1);
    assert_eq!(w.sweep.run(at(260)).await.unwrap(), 0, "completed once");
    let events: Vec<InboundEvent> = receive_all(
        w.outbound.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(60),
        at(0),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::CampaignCompleted);
    let EventBody::Campaign(body) = &events[0].data.body else {
        panic!("not a campaign body");
    };
    assert_eq!(body.campaign.completion, Some(CampaignCompletion::AllFinal));
    assert_eq!(body.campaign.totals.total, 2);
    assert_eq!(body.campaign.totals.read, 1);
    assert_eq!(body.campaign.totals.failed, 1);
    let done = campaigns(&w)
        .campaign(&c.id, at(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, CampaignStatus::Completed);
}

#[tokio::test]
async fn a_campaign_whose_time_runs_out_completes_with_what_is_known() {
    let w = world();
    let c = campaigns(&w)
        .create("c", Some(source()), None, Duration::from_secs(3600), at(0))
        .await
        .unwrap();
    w.track
        .state
        .statuses
        .record_outbound(&source(), "wamid.A", &sent_record(&c.id, "hi"), None, at(0))
        .await
        .unwrap();
    process(&w, &status("wamid.A", "delivered", None, 1), 1).await;
    assert_eq!(w.sweep.run(at(1800)).await.unwrap(), 0);
    assert_eq!(w.sweep.run(at(3601)).await.unwrap(), 1);
    let done = campaigns(&w)
        .campaign(&c.id, at(3700))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.completion, Some(CampaignCompletion::Timeout));
    assert_eq!(done.totals.delivered, 1);
    assert_eq!(done.totals.read, 0);
}
