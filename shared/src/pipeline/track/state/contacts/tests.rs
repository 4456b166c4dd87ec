//! The merge rules, one case each, contacts stored before aliases, replays under clean and
//! ambiguous faults at every call, and API changes (tags, stage, custom fields, external ids).

use std::sync::Arc;

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::ids::SourceId;
use crate::model::Provider;
use crate::ports::faults::{Fault, Faults, FaultyDocs};
use crate::ports::memory::MemoryDocumentStore;

const LID: &str = "123456789012345@lid";
const PHONE: &str = "15550001111";

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn source() -> SourceInfo {
    SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Waha)
}

fn meta_source() -> SourceInfo {
    SourceInfo::new(SourceId::parse("meta-main").unwrap(), Provider::Meta)
}

fn profile(wa_id: Option<&str>, user_id: Option<&str>, name: Option<&str>) -> ContactProfile {
    ContactProfile {
        wa_id: wa_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        username: None,
        name: name.map(str::to_owned),
    }
}

/// A store over memory behind a fault schedule.
fn store() -> (Contacts, Arc<Faults>, Arc<MemoryDocumentStore>) {
    let faults = Faults::none();
    let memory = Arc::new(MemoryDocumentStore::new());
    let docs = Arc::new(FaultyDocs {
        inner: memory.clone(),
        layer: faults.clone(),
    });
    (Contacts { docs }, faults, memory)
}

async fn upsert(c: &Contacts, p: &ContactProfile, by: &str, t: i64) -> Upserted {
    let customer = p.key().unwrap_or("-").to_owned();
    c.upsert(&source(), &customer, p, by, at(t)).await.unwrap()
}

fn kind(u: &Upserted) -> &'static str {
    match u.change {
        ContactChange::Created(_) => "created",
        ContactChange::Updated { .. } => "updated",
        ContactChange::Unchanged(_) => "unchanged",
    }
}

fn changes(u: &Upserted) -> Vec<(String, Value, Value)> {
    match &u.change {
        ContactChange::Updated { changes, .. } => changes
            .iter()
            .map(|c| (c.field.clone(), c.before.clone(), c.after.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

async fn listed(c: &Contacts) -> Vec<String> {
    c.list(&ContactFilter::default(), None, 100, at(1000))
        .await
        .unwrap()
        .contacts
        .into_iter()
        .map(|r| r.contact.id)
        .collect()
}

#[test]
fn a_phone_number_reads_the_same_however_it_is_written() {
    for spelling in [
        "15550001111",
        "+1 555 000 1111",
        "+1-555-000-1111",
        "1 (555) 000.1111",
        "15550001111@c.us",
        "15550001111@s.whatsapp.net",
        "15550001111:12@s.whatsapp.net",
    ] {
        assert_eq!(phone_digits(spelling).as_deref(), Some(PHONE), "{spelling}");
    }
    for not_a_phone in [LID, "120363@g.us", "", "+", "abc", "1555x"] {
        assert_eq!(phone_digits(not_a_phone), None, "{not_a_phone}");
    }
    let keys = customer_keys(&profile(Some("+1 555 000 1111"), Some(LID), None), None);
    assert_eq!(
        keys,
        vec![
            CustomerKey::User(LID.into()),
            CustomerKey::Phone(PHONE.into())
        ]
    );
    assert_eq!(
        customer_keys(&ContactProfile::default(), Some("120363@g.us")),
        vec![CustomerKey::Other("120363@g.us".into())]
    );
}

#[tokio::test]
async fn a_lid_then_a_phone_are_two_contacts_until_an_item_names_both_then_the_older_survives() {
    let (c, _, _) = store();
    let first = upsert(&c, &profile(None, Some(LID), Some("Alice")), "i1", 0).await;
    let second = upsert(&c, &profile(Some(PHONE), None, None), "i2", 10).await;
    assert_eq!((kind(&first), kind(&second)), ("created", "created"));
    let (lid_id, phone_id) = (
        first.change.contact().id.clone(),
        second.change.contact().id.clone(),
    );
    assert_ne!(lid_id, phone_id, "nothing said they are one customer yet");
    assert_eq!(first.primary_key, LID);
    assert_eq!(second.primary_key, PHONE);

    let both = upsert(&c, &profile(Some(PHONE), Some(LID), None), "i3", 20).await;
    assert_eq!(kind(&both), "updated");
    assert_eq!(
        both.change.contact().id,
        lid_id,
        "the older contact survives"
    );
    assert_eq!(both.primary_key, LID, "its primary key stays");
    assert_eq!(
        changes(&both),
        vec![("wa_id".into(), Value::Null, json!(PHONE))]
    );
    // Reads by the merged id redirect, and every id now leads to the survivor.
    let merged = c.contact(&phone_id, at(30)).await.unwrap().unwrap();
    assert_eq!(merged.contact.id, lid_id);
    for p in [
        profile(Some(PHONE), None, None),
        profile(None, Some(LID), None),
    ] {
        let again = upsert(&c, &p, &format!("later-{p:?}"), 30).await;
        assert_eq!(kind(&again), "unchanged");
        assert_eq!(again.change.contact().id, lid_id);
        assert_eq!(again.primary_key, LID);
    }
    assert_eq!(
        listed(&c).await,
        vec![lid_id],
        "the tombstone is not listed"
    );
}

#[tokio::test]
async fn a_phone_then_a_lid_merge_into_the_phone_contact_keyed_by_the_phone() {
    let (c, _, _) = store();
    let phone = upsert(&c, &profile(Some(PHONE), None, Some("Alice")), "i1", 0).await;
    let lid = upsert(&c, &profile(None, Some(LID), None), "i2", 10).await;
    let both = upsert(&c, &profile(Some(PHONE), Some(LID), None), "i3", 20).await;
    assert_eq!(both.change.contact().id, phone.change.contact().id);
    assert_eq!(both.primary_key, PHONE);
    assert_eq!(
        changes(&both),
        vec![("user_id".into(), Value::Null, json!(LID))]
    );
    let read = c
        .contact(&lid.change.contact().id, at(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.contact.id, phone.change.contact().id);
    assert_eq!(read.contact.profile.name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn an_item_with_both_ids_makes_one_contact_that_either_id_finds_later() {
    let (c, _, memory) = store();
    let created = upsert(&c, &profile(Some(PHONE), Some(LID), Some("Alice")), "i1", 0).await;
    assert_eq!(kind(&created), "created");
    assert_eq!(created.primary_key, LID, "the user id is the more stable");
    assert_eq!(created.change.contact().id, contact_id(&source(), LID));
    // WAHA's other spelling of the number is the same id.
    for (p, by) in [
        (
            profile(Some("15550001111@s.whatsapp.net"), None, None),
            "i2",
        ),
        (profile(None, Some(LID), None), "i3"),
    ] {
        let seen = upsert(&c, &p, by, 10).await;
        assert_eq!(kind(&seen), "unchanged", "{p:?}");
        assert_eq!(seen.change.contact().id, created.change.contact().id);
        assert_eq!(seen.primary_key, LID);
    }
    for alias in [
        format!("contact-key#src#user:{LID}"),
        format!("contact-key#src#wa:{PHONE}"),
    ] {
        let claim = memory.get(&alias, at(20)).await.unwrap().unwrap();
        assert_eq!(
            claim.body,
            json!({"contact_id": created.change.contact().id})
        );
    }
}

#[tokio::test]
async fn a_meta_number_with_and_without_its_user_id_stays_one_contact_keyed_by_the_first() {
    let (c, _, _) = store();
    let s = meta_source();
    let go = |p: ContactProfile, by: &'static str| {
        let c = c.clone();
        let s = s.clone();
        async move {
            let customer = p.key().unwrap().to_owned();
            c.upsert(&s, &customer, &p, by, at(0)).await.unwrap()
        }
    };
    let bsuid = "US.13491208655302741918";
    let first = go(profile(Some(PHONE), None, Some("Alice")), "m1").await;
    let linked = go(profile(Some(PHONE), Some(bsuid), Some("Alice")), "m2").await;
    let user_only = go(profile(None, Some(bsuid), None), "m3").await;
    assert_eq!(kind(&linked), "updated");
    assert_eq!(
        changes(&linked),
        vec![("user_id".into(), Value::Null, json!(bsuid))]
    );
    assert_eq!(kind(&user_only), "unchanged");
    for u in [&linked, &user_only] {
        assert_eq!(u.change.contact().id, first.change.contact().id);
        assert_eq!(
            u.primary_key, PHONE,
            "conversations stay keyed by the number"
        );
    }
    // The other way round: first seen with both, then the number alone.
    let second = "15550002222";
    let both = go(profile(Some(second), Some("US.2"), None), "m4").await;
    let number = go(profile(Some(second), None, None), "m5").await;
    assert_eq!(number.change.contact().id, both.change.contact().id);
    assert_eq!(
        (both.primary_key.as_str(), number.primary_key.as_str()),
        ("US.2", "US.2")
    );
}

#[tokio::test]
async fn a_profile_change_lists_each_changed_field() {
    let (c, _, _) = store();
    upsert(&c, &profile(Some(PHONE), None, Some("Alice")), "i1", 0).await;
    let mut p = profile(Some(PHONE), None, Some("Alice B."));
    p.username = Some("alice".into());
    let changed = upsert(&c, &p, "i2", 10).await;
    assert_eq!(
        changes(&changed),
        vec![
            ("name".into(), json!("Alice"), json!("Alice B.")),
            ("username".into(), Value::Null, json!("alice")),
        ]
    );
    let ContactChange::Updated { previous, .. } = &changed.change else {
        panic!("{changed:?}")
    };
    assert_eq!(previous.name.as_deref(), Some("Alice"));
    // A field not sent keeps its value and changes nothing.
    let same = upsert(&c, &profile(Some(PHONE), None, None), "i3", 20).await;
    assert_eq!(kind(&same), "unchanged");
    assert_eq!(
        same.change.contact().profile.name.as_deref(),
        Some("Alice B.")
    );
}

#[tokio::test]
async fn a_merge_unions_tags_keeps_the_survivors_fields_and_moves_the_external_id() {
    let (c, _, _) = store();
    let older = upsert(&c, &profile(None, Some(LID), None), "i1", 0).await;
    let newer = upsert(&c, &profile(Some(PHONE), None, Some("Alice")), "i2", 10).await;
    let (old_id, new_id) = (
        older.change.contact().id.clone(),
        newer.change.contact().id.clone(),
    );
    let patch = |tags: &[&str], stage: &str, custom: Value, ext: Option<&str>| ContactPatch {
        tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
        stage: Some(Some(stage.to_owned())),
        custom_fields: Some(custom.as_object().cloned()),
        external_id: ext.map(|e| Some(e.to_owned())),
    };
    c.patch(
        &old_id,
        &patch(
            &["vip", "a"],
            "customer",
            json!({"plan": "gold", "x": 1}),
            None,
        ),
        at(20),
    )
    .await
    .unwrap();
    c.patch(
        &new_id,
        &patch(
            &["a", "b"],
            "lead",
            json!({"plan": "free", "y": 2}),
            Some("crm-9"),
        ),
        at(20),
    )
    .await
    .unwrap();
    let merged = upsert(&c, &profile(Some(PHONE), Some(LID), None), "i3", 30).await;
    let m = merged.change.contact();
    assert_eq!(m.id, old_id);
    assert_eq!(m.tags, vec!["vip", "a", "b"]);
    assert_eq!(
        m.stage.as_deref(),
        Some("customer"),
        "the survivor's stage wins"
    );
    assert_eq!(
        json!(m.custom_fields),
        json!({"plan": "gold", "x": 1, "y": 2})
    );
    assert_eq!(m.external_id.as_deref(), Some("crm-9"), "the gap is filled");
    assert_eq!(m.profile.name.as_deref(), Some("Alice"));
    assert_eq!(m.created_at, at(0));
    let fields: Vec<String> = changes(&merged).into_iter().map(|c| c.0).collect();
    assert_eq!(
        fields,
        ["name", "wa_id", "external_id", "tags", "custom_fields.y"]
    );
    // The external id now finds the survivor.
    let by_ext = c.by_external_id("src", "crm-9", at(40)).await.unwrap();
    assert_eq!(by_ext.map(|r| r.contact.id), Some(old_id.clone()));
    assert_eq!(listed(&c).await, vec![old_id]);
}

#[tokio::test]
async fn an_items_retry_gets_the_outcome_its_first_attempt_got() {
    let (c, _, _) = store();
    let created = upsert(&c, &profile(None, Some(LID), Some("Alice")), "i1", 0).await;
    upsert(&c, &profile(Some(PHONE), None, None), "i2", 10).await;
    let merged = upsert(&c, &profile(Some(PHONE), Some(LID), Some("Al")), "i3", 20).await;
    let renamed = upsert(&c, &profile(None, Some(LID), Some("Alice C.")), "i4", 30).await;
    for (item, p, first) in [
        ("i1", profile(None, Some(LID), Some("Alice")), &created),
        ("i3", profile(Some(PHONE), Some(LID), Some("Al")), &merged),
        ("i4", profile(None, Some(LID), Some("Alice C.")), &renamed),
    ] {
        let again = upsert(&c, &p, item, 40).await;
        assert_eq!(kind(&again), kind(first), "{item}");
        assert_eq!(changes(&again), changes(first), "{item}");
        assert_eq!(again.primary_key, first.primary_key, "{item}");
        assert_eq!(again.change.contact().id, first.change.contact().id);
    }
    // The item that created the merged-away contact still finds its own outcome there.
    let again = upsert(&c, &profile(Some(PHONE), None, None), "i2", 40).await;
    assert_eq!(
        (kind(&again), again.primary_key.as_str()),
        ("created", PHONE)
    );
}

/// An operation on a store, run after a setup, compared across runs.
type Step = (ContactProfile, &'static str, i64);

/// What a run leaves: the outcome (kind, changes, contact id, primary key) and what every id
/// then reads as.
async fn run(c: &Contacts, steps: &[Step], item: &Step) -> Result<String, StateError> {
    for (p, by, t) in steps {
        upsert(c, p, by, *t).await;
    }
    let (p, by, t) = item;
    let customer = p.key().unwrap_or("-").to_owned();
    let u = c.upsert(&source(), &customer, p, by, at(*t)).await?;
    Ok(format!(
        "{} {:?} {} {}",
        kind(&u),
        changes(&u),
        u.change.contact().id,
        u.primary_key
    ))
}

async fn state_of(c: &Contacts) -> String {
    let mut out = Vec::new();
    for p in [
        profile(Some(PHONE), None, None),
        profile(None, Some(LID), None),
    ] {
        let r = c.resolve(&source(), &p, at(500)).await.unwrap();
        out.push(format!("{:?}", r.map(|r| (r.contact, r.primary_key))));
    }
    out.push(format!("{:?}", listed(c).await));
    out.join("\n")
}

#[tokio::test]
async fn every_contact_write_recognises_its_replay_whichever_call_fails_and_how() {
    let lid = || profile(None, Some(LID), Some("Alice"));
    let phone = || profile(Some(PHONE), None, None);
    let both = || profile(Some(PHONE), Some(LID), Some("Alice B."));
    let scenarios: Vec<(&str, Vec<Step>, Step)> = vec![
        ("create with both ids", vec![], (both(), "x", 0)),
        ("link a new id", vec![(lid(), "a", 0)], (both(), "x", 10)),
        (
            "rename",
            vec![(lid(), "a", 0)],
            (profile(None, Some(LID), Some("B")), "x", 10),
        ),
        (
            "merge",
            vec![(lid(), "a", 0), (phone(), "b", 5)],
            (both(), "x", 10),
        ),
    ];
    for (name, setup, item) in scenarios {
        let (clean, faults, _) = store();
        let expected = run(&clean, &setup, &item).await.unwrap();
        let expected_state = state_of(&clean).await;
        let calls = {
            let (c, f, _) = store();
            for (p, by, t) in &setup {
                upsert(&c, p, by, *t).await;
            }
            let before = f.calls();
            run(&c, &[], &item).await.unwrap();
            f.calls() - before
        };
        drop(faults);
        for k in 1..=calls {
            for fault in [Fault::Clean, Fault::Ambiguous] {
                let (c, f, _) = store();
                for (p, by, t) in &setup {
                    upsert(&c, p, by, *t).await;
                }
                f.fail_in(k, fault);
                let mut outcome = run(&c, &[], &item).await;
                let mut tries = 1;
                while outcome.is_err() && tries < 4 {
                    outcome = run(&c, &[], &item).await;
                    tries += 1;
                }
                assert_eq!(
                    outcome.unwrap(),
                    expected,
                    "{name}: call {k} of {calls} failing {fault:?}"
                );
                assert_eq!(
                    state_of(&c).await,
                    expected_state,
                    "{name}: call {k} failing {fault:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_contact_stored_before_aliases_is_found_by_either_id_and_keeps_its_key() {
    let (c, _, memory) = store();
    // As the previous version stored it: under the id of its user id, no alias, no source.
    let id = contact_id(&meta_source(), "US.7");
    let old = json!({
        "id": id, "wa_id": PHONE, "user_id": "US.7", "name": "Alice",
        "created_at": at(0), "updated_at": at(0),
        "changed_by": [{"by": "old-item", "before": null}]
    });
    memory
        .put(&doc_key(&id), &old, DocumentWrite::new(None, at(0)))
        .await
        .unwrap();
    assert!(listed(&c).await.is_empty());
    let s = meta_source();
    let by_phone = c
        .upsert(&s, PHONE, &profile(Some(PHONE), None, None), "n1", at(10))
        .await
        .unwrap();
    // The number alone does not lead to it (nothing claimed it): a new contact, merged by the
    // first item naming both.
    assert_ne!(by_phone.change.contact().id, id);
    let both = c
        .upsert(
            &s,
            "US.7",
            &profile(Some(PHONE), Some("US.7"), None),
            "n2",
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(
        both.change.contact().id,
        id,
        "the older, stored before, survives"
    );
    assert_eq!(both.primary_key, "US.7", "the key its id was made from");
    assert_eq!(
        listed(&c).await,
        vec![id.clone()],
        "written again, it is listed"
    );
    let again = c
        .upsert(&s, PHONE, &profile(Some(PHONE), None, None), "n3", at(30))
        .await
        .unwrap();
    assert_eq!(
        (
            again.change.contact().id.as_str(),
            again.primary_key.as_str()
        ),
        (id.as_str(), "US.7")
    );
}

#[tokio::test]
async fn a_contact_stored_before_aliases_claims_its_ids_when_first_seen_again() {
    let (c, _, memory) = store();
    let s = meta_source();
    let id = contact_id(&s, "US.8");
    let old = json!({
        "id": id, "wa_id": PHONE, "user_id": "US.8",
        "created_at": at(0), "updated_at": at(0)
    });
    memory
        .put(&doc_key(&id), &old, DocumentWrite::new(None, at(0)))
        .await
        .unwrap();
    let seen = c
        .upsert(&s, "US.8", &profile(None, Some("US.8"), None), "n1", at(10))
        .await
        .unwrap();
    assert_eq!(kind(&seen), "unchanged");
    // Its number was claimed on the way: the number alone finds it now.
    let by_phone = c
        .upsert(&s, PHONE, &profile(Some(PHONE), None, None), "n2", at(20))
        .await
        .unwrap();
    assert_eq!(by_phone.change.contact().id, id);
    assert_eq!(by_phone.primary_key, "US.8");
}

#[tokio::test]
async fn resolving_reads_only_and_prefers_the_contact_a_merge_would_keep() {
    let (c, faults, _) = store();
    assert_eq!(
        c.resolve(&source(), &profile(Some(PHONE), None, None), at(0))
            .await
            .unwrap(),
        None
    );
    let older = upsert(&c, &profile(Some(PHONE), None, None), "i1", 0).await;
    upsert(&c, &profile(None, Some(LID), None), "i2", 10).await;
    let before = memory_snapshot(&c).await;
    let calls = faults.calls();
    let r = c
        .resolve(
            &source(),
            &profile(Some("+1 555 000 1111"), Some(LID), None),
            at(20),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(faults.calls() > calls);
    assert_eq!(r.contact.id, older.change.contact().id);
    assert_eq!(r.primary_key, PHONE);
    assert_eq!(memory_snapshot(&c).await, before, "nothing written");
}

async fn memory_snapshot(c: &Contacts) -> String {
    format!(
        "{:?}",
        c.list(&ContactFilter::default(), None, 100, at(1000))
            .await
            .unwrap()
            .contacts
    )
}

#[tokio::test]
async fn api_changes_merge_custom_fields_and_record_their_event_until_handed_on() {
    let (c, faults, _) = store();
    let id = upsert(&c, &profile(Some(PHONE), None, None), "i1", 0)
        .await
        .change
        .contact()
        .id
        .clone();
    let first = ContactPatch {
        tags: Some(vec!["vip".into()]),
        stage: Some(Some("lead".into())),
        custom_fields: Some(
            json!({"plan": {"tier": "gold", "seats": 3}, "x": 1})
                .as_object()
                .cloned(),
        ),
        external_id: None,
    };
    let done = c.patch(&id, &first, at(10)).await.unwrap();
    assert_eq!(done.pending.len(), 1);
    assert_eq!(done.pending[0].changes, done.changes);
    c.handed_on(&id, &[done.pending[0].id], at(11))
        .await
        .unwrap();
    // A merge patch: nested objects merge, null removes.
    let second = ContactPatch {
        custom_fields: Some(
            json!({"plan": {"seats": null}, "x": null, "y": [1]})
                .as_object()
                .cloned(),
        ),
        stage: Some(None),
        ..ContactPatch::default()
    };
    let done = c.patch(&id, &second, at(20)).await.unwrap();
    assert_eq!(
        json!(done.contact.custom_fields),
        json!({"plan": {"tier": "gold"}, "y": [1]})
    );
    assert_eq!(done.contact.stage, None);
    let fields: Vec<&str> = done.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "stage",
            "custom_fields.plan",
            "custom_fields.x",
            "custom_fields.y"
        ]
    );
    // That event was not handed on; the write of the next change applies and reports an
    // error: its retry changes nothing and hands on both, oldest first.
    let third = ContactPatch {
        tags: Some(vec!["vip".into(), "b".into()]),
        ..ContactPatch::default()
    };
    faults.fail_in(2, Fault::Ambiguous);
    assert!(c.patch(&id, &third, at(30)).await.is_err());
    let retry = c.patch(&id, &third, at(31)).await.unwrap();
    assert!(retry.changes.is_empty());
    assert_eq!(retry.pending.len(), 2);
    assert_eq!(retry.pending[1].changes[0].field, "tags");
    let ids: Vec<EventId> = retry.pending.iter().map(|p| p.id).collect();
    c.handed_on(&id, &ids, at(32)).await.unwrap();
    let quiet = c.patch(&id, &third, at(33)).await.unwrap();
    assert!(quiet.changes.is_empty() && quiet.pending.is_empty());
    // Too large once merged.
    let big = ContactPatch {
        custom_fields: Some(
            json!({"blob": "x".repeat(CUSTOM_FIELDS_MAX_BYTES)})
                .as_object()
                .cloned(),
        ),
        ..ContactPatch::default()
    };
    assert!(matches!(
        c.patch(&id, &big, at(40)).await,
        Err(PatchError::TooLarge {
            field: "custom_fields"
        })
    ));
}

#[tokio::test]
async fn an_external_id_belongs_to_one_contact_of_a_source_until_it_lets_go() {
    let (c, _, _) = store();
    let a = upsert(&c, &profile(Some(PHONE), None, None), "i1", 0)
        .await
        .change
        .contact()
        .id
        .clone();
    let b = upsert(&c, &profile(Some("15550002222"), None, None), "i2", 0)
        .await
        .change
        .contact()
        .id
        .clone();
    let set = |e: Option<&str>| ContactPatch {
        external_id: Some(e.map(str::to_owned)),
        ..ContactPatch::default()
    };
    c.patch(&a, &set(Some("crm-1")), at(10)).await.unwrap();
    assert!(matches!(
        c.patch(&b, &set(Some("crm-1")), at(11)).await,
        Err(PatchError::ExternalIdTaken)
    ));
    let found = c.by_external_id("src", "crm-1", at(12)).await.unwrap();
    assert_eq!(found.map(|r| r.contact.id), Some(a.clone()));
    // A lets go: B may take it, and A gets it back only once B lets go.
    c.patch(&a, &set(Some("crm-2")), at(13)).await.unwrap();
    assert_eq!(
        c.by_external_id("src", "crm-1", at(14)).await.unwrap(),
        None
    );
    c.patch(&b, &set(Some("crm-1")), at(15)).await.unwrap();
    assert!(matches!(
        c.patch(&a, &set(Some("crm-1")), at(16)).await,
        Err(PatchError::ExternalIdTaken)
    ));
    c.patch(&b, &set(None), at(17)).await.unwrap();
    c.patch(&a, &set(Some("crm-1")), at(18)).await.unwrap();
    let found = c.by_external_id("src", "crm-1", at(19)).await.unwrap();
    assert_eq!(found.map(|r| r.contact.id), Some(a));
}

#[tokio::test]
async fn the_list_is_newest_first_and_filters_by_source_phone_user_id_external_id_and_tag() {
    let (c, _, _) = store();
    let mut ids = Vec::new();
    for n in 0..5 {
        let p = profile(Some(&format!("1555000000{n}")), None, None);
        ids.push(
            upsert(&c, &p, &format!("i{n}"), n)
                .await
                .change
                .contact()
                .id
                .clone(),
        );
    }
    let other = meta_source();
    c.upsert(
        &other,
        "US.1",
        &profile(None, Some("US.1"), None),
        "m",
        at(9),
    )
    .await
    .unwrap();
    c.patch(
        &ids[1],
        &ContactPatch {
            tags: Some(vec!["vip".into()]),
            ..ContactPatch::default()
        },
        at(20),
    )
    .await
    .unwrap();
    let page = |f: ContactFilter, before: Option<String>, limit| {
        let c = c.clone();
        async move { c.list(&f, before.as_deref(), limit, at(100)).await.unwrap() }
    };
    let src = || ContactFilter {
        source_id: Some("src".into()),
        ..ContactFilter::default()
    };
    let first = page(src(), None, 3).await;
    let second = page(src(), first.next.clone(), 3).await;
    let order: Vec<String> = first
        .contacts
        .iter()
        .chain(&second.contacts)
        .map(|r| r.contact.id.clone())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(order, newest_first);
    assert!(second.next.is_none());
    let one = |f: ContactFilter| async {
        page(f, None, 10)
            .await
            .contacts
            .into_iter()
            .map(|r| r.contact.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        one(ContactFilter {
            phone: Some("15550000003".into()),
            ..src()
        })
        .await,
        vec![ids[3].clone()]
    );
    assert_eq!(
        one(ContactFilter {
            tag: Some("vip".into()),
            ..ContactFilter::default()
        })
        .await,
        vec![ids[1].clone()]
    );
    assert_eq!(
        one(ContactFilter {
            user_id: Some("US.1".into()),
            ..ContactFilter::default()
        })
        .await
        .len(),
        1
    );
    assert!(
        one(ContactFilter {
            user_id: Some("US.1".into()),
            ..src()
        })
        .await
        .is_empty()
    );
}
