//! Contacts over the [`DocumentStore`]: one contact per customer and source, whichever id the
//! provider named the customer by, created on first sight, updated when the provider sends a
//! profile field that differs, and changed through the management API (tags, stage, custom
//! fields, external id). Must not: emit events (track and the API do) or decide conversations.
//!
//! # Ids of a customer
//!
//! A provider names a customer by a phone number (`wa_id`: digits; WAHA's `…@c.us` and
//! `…@s.whatsapp.net` are the same number) and/or a user id that is not a phone number (a Meta
//! business-scoped user id, a WAHA `…@lid`). Each id is a [`CustomerKey`]; a contact claims
//! each of its keys with an alias document `contact-key#{source id}#wa:{digits}` /
//! `#user:{id}` naming its id, written (conditionally, so two contacts never claim one key) in
//! the same all-or-nothing write as the contact. The contact document is `contact#{contact id}`,
//! the id made from the key it was created under (its *primary key*: the user id if the first
//! item had one, else the phone number), so a key is first looked up as that document, then
//! through its alias.
//!
//! # Merge rules
//!
//! - An item whose ids resolve to no contact creates one, claiming every id it carries.
//! - Ids that resolve to one contact update it; ids it did not have yet are linked to it (an
//!   item carrying both ids links them).
//! - Ids that resolve to two contacts merge them: the older (`created_at`, then id) survives.
//!   Profile fields: what the item sent, else the survivor's, else the other's. API fields: the
//!   survivor's `external_id` and `stage` win (the other's fill a gap), tags are unioned,
//!   custom fields merged with the survivor's winning. The other contact stays as a tombstone
//!   (`merged_into` the survivor, off the list index): reads by its id or its ids redirect. The
//!   merge is an update of the survivor, with the changes it made.
//! - The primary key never changes: conversations are keyed by it, so they stay one
//!   conversation whichever id later items carry. A merge keeps the survivor's.
//! - Contacts stored before aliases existed (no alias documents) are found under
//!   `contact_id(source, key)` for either key; their primary key is the key their id was made
//!   from. The first item that finds one writes it again with its source and primary key, which
//!   puts it on the list index.
//!
//! # Replays
//!
//! Every change made on behalf of a tracked item records the item (`changed_by`, the latest 8,
//! with the profile before and the changes; a merge's changes are kept on the tombstone, which
//! is never written again). A retry of the item after any failure (a crash, a write that
//! applied and still reported an error) finds its mark on the way to the contact and gets the
//! outcome the first attempt got. Writes that change several documents (a contact and its
//! aliases, two merged contacts) are all or nothing ([`DocumentStore::put_all`]).
//!
//! # API changes
//!
//! A change through the API is written together with its `whatsapp.contact.updated` (id and
//! changes) in `pending`, and taken off once the event is handed on: a request that applied
//! and then failed leaves it there, and the next change (or a retry that changes nothing)
//! hands it on with the same id. External ids are unique per source: `contact-ext#{source
//! id}#{external id}` names the contact that holds one, and is taken over only when that
//! contact no longer has it.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::common::{MARKS, ROUNDS, StateError, decode, remember};
use crate::ids::EventId;
use crate::model::{Contact, ContactFieldChange, ContactProfile, SourceInfo};
use crate::ports::{DocBody, DocumentStore, DocumentWrite, IndexEntry, PutDocument};

/// Index list of contacts, newest first by creation.
pub const CONTACTS: &str = "contacts";
/// Partitions the contact list is spread over (`contacts#0` … `#7`, by a hash of the id).
/// Contacts are created far less often than conversations change, so fewer than theirs.
pub const CONTACT_SHARDS: u32 = 8;
/// Merges one id may be redirected through before the chain counts as corrupt.
const MAX_HOPS: usize = 16;
/// API changes whose events wait to be handed on, at most (older ones are dropped).
const PENDING: usize = 8;
/// Custom fields of one contact together, as JSON, in bytes at most (checked on API changes).
pub const CUSTOM_FIELDS_MAX_BYTES: usize = 16 * 1024;

/// The contact store.
#[derive(Debug, Clone)]
pub struct Contacts {
    /// Where contacts, their aliases and external id claims are kept.
    pub docs: Arc<dyn DocumentStore>,
}

/// One of the ids a provider names a customer by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerKey {
    /// A user id that is not a phone number (Meta business-scoped user id, WAHA `…@lid`).
    User(String),
    /// A phone number / WhatsApp id, digits only.
    Phone(String),
    /// Neither: the id the item was keyed by (a group, when the sender is unknown).
    Other(String),
}

impl CustomerKey {
    /// The customer as contact ids and conversation keys take it.
    pub fn customer(&self) -> &str {
        match self {
            Self::User(s) | Self::Phone(s) | Self::Other(s) => s,
        }
    }

    /// Its name in alias documents: `user:{id}`, `wa:{digits}`, `id:{id}`.
    fn name(&self) -> String {
        match self {
            Self::User(s) => format!("user:{s}"),
            Self::Phone(s) => format!("wa:{s}"),
            Self::Other(s) => format!("id:{s}"),
        }
    }

    /// Its alias document in source `source_id`.
    fn alias_key(&self, source_id: &str) -> String {
        format!("contact-key#{source_id}#{}", self.name())
    }
}

/// The digits of a phone number written any way: `+1 555-000 1111`, `15550001111@c.us`,
/// `15550001111:12@s.whatsapp.net`. `None` for what is not one (an `@lid`, a group).
pub fn phone_digits(text: &str) -> Option<String> {
    let text = text.trim();
    let number = match text.split_once('@') {
        Some((user, "c.us" | "s.whatsapp.net")) => user.split(':').next().unwrap_or(user),
        Some(_) => return None,
        None => text,
    };
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '\u{a0}'))
        .collect();
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// The keys of `profile`, most stable first (user id, then phone number); `fallback` when it
/// has neither.
pub fn customer_keys(profile: &ContactProfile, fallback: Option<&str>) -> Vec<CustomerKey> {
    let mut keys = Vec::new();
    if let Some(user) = profile
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        keys.push(CustomerKey::User(user.to_owned()));
    }
    if let Some(wa) = profile
        .wa_id
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        keys.push(CustomerKey::Phone(
            phone_digits(wa).unwrap_or_else(|| wa.to_owned()),
        ));
    }
    if keys.is_empty()
        && let Some(other) = fallback.map(str::trim).filter(|f| !f.is_empty())
    {
        keys.push(CustomerKey::Other(other.to_owned()));
    }
    keys
}

/// A stable contact id per source and customer.
pub fn contact_id(source: &SourceInfo, customer: &str) -> String {
    contact_id_in(source.id.as_str(), customer)
}

fn contact_id_in(source_id: &str, customer: &str) -> String {
    let digest = Sha256::digest(format!("{source_id}|{customer}").as_bytes());
    format!("ctc_{}", hex::encode(&digest[..12]))
}

/// Whether `id` has the shape of a contact id.
pub fn is_contact_id(id: &str) -> bool {
    id.strip_prefix("ctc_").is_some_and(|h| {
        h.len() == 24
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn doc_key(id: &str) -> String {
    format!("contact#{id}")
}

fn external_key(source_id: &str, external_id: &str) -> String {
    format!("contact-ext#{source_id}#{external_id}")
}

/// Where a contact sits in the list index: by creation time, then id.
fn list_entry(c: &Contact) -> IndexEntry {
    IndexEntry {
        partition: crate::ports::shard_partition(CONTACTS, &c.id, CONTACT_SHARDS),
        sort: format!(
            "{}#{}",
            c.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            c.id
        ),
    }
}

/// A change an item made, with the profile before (none: it created the contact) and the
/// changes (none in marks written before they were recorded); a merge's changes are on the
/// tombstone `merged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ContactMark {
    by: String,
    before: Option<ContactProfile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<ContactFieldChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged: Option<String>,
}

/// An API change whose `whatsapp.contact.updated` may not have been handed on yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEvent {
    /// The event's id (the same on every attempt to hand it on).
    pub id: EventId,
    /// When the change was made.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub at: DateTime<Utc>,
    /// What it changed.
    pub changes: Vec<ContactFieldChange>,
}

/// A contact as stored: the public object, where it belongs, the ids it claims, and the items
/// that created or changed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContactDoc {
    #[serde(flatten)]
    contact: Contact,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed_by: Vec<ContactMark>,
    /// The source it belongs to (absent in contacts stored before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<SourceInfo>,
    /// The customer key it was created under (absent in contacts stored before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary_key: Option<String>,
    /// The keys it claims by alias ([`CustomerKey::name`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keys: Vec<String>,
    /// Merged into this contact (a tombstone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged_into: Option<String>,
    /// The changes the merge made to the survivor (for a replay of the item that merged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    merge_changes: Vec<ContactFieldChange>,
    /// API changes whose events may not have been handed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pending: Vec<PendingEvent>,
}

impl ContactDoc {
    /// Whether `key` is known to lead to this contact without a look-up.
    fn claims(&self, key: &CustomerKey, source_id: &str) -> bool {
        self.keys.contains(&key.name())
            || contact_id_in(source_id, key.customer()) == self.contact.id
    }

    /// Its primary key: as stored, or for a contact stored before, the key its id was made
    /// from, else the one it was `found` under.
    fn primary(&self, source_id: &str, found: Option<&CustomerKey>) -> String {
        if let Some(p) = &self.primary_key {
            return p.clone();
        }
        let p = &self.contact.profile;
        [p.user_id.as_deref(), p.wa_id.as_deref()]
            .into_iter()
            .flatten()
            .find(|k| contact_id_in(source_id, k) == self.contact.id)
            .map(str::to_owned)
            .or_else(|| found.map(|k| k.customer().to_owned()))
            .or_else(|| p.key().map(str::to_owned))
            .unwrap_or_else(|| self.contact.id.clone())
    }

    /// The document as the JSON text the store keeps.
    fn encode(&self, key: &str) -> Result<String, StateError> {
        serde_json::to_string(self).map_err(|e| StateError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// An alias or external-id claim: the contact it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    contact_id: String,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    /// First sight.
    Created(Contact),
    /// The profile changed, or two contacts were merged into this one.
    Updated {
        /// The contact now.
        contact: Contact,
        /// The profile before.
        previous: ContactProfile,
        /// Each changed field with its values before and after.
        changes: Vec<ContactFieldChange>,
    },
    /// Nothing new.
    Unchanged(Contact),
}

impl ContactChange {
    /// The contact, whatever happened.
    pub fn contact(&self) -> &Contact {
        match self {
            Self::Created(c) | Self::Updated { contact: c, .. } | Self::Unchanged(c) => c,
        }
    }
}

/// The outcome of [`Contacts::upsert`]: what changed, and the key the customer's
/// conversations are kept under.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    /// What happened to the contact.
    pub change: ContactChange,
    /// The contact's primary key: pass it to `ConversationKey::new` instead of whichever id
    /// the item carried.
    pub primary_key: String,
}

/// A contact found by id or by a customer's ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The contact (the survivor, when the one asked for was merged).
    pub contact: Contact,
    /// Its primary key (see [`Upserted::primary_key`]).
    pub primary_key: String,
    /// The source it belongs to, when known (contacts stored before it was kept have none
    /// until their customer writes again).
    pub source: Option<SourceInfo>,
}

/// Which contacts a list shows; all filters must match.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// Only this source's.
    pub source_id: Option<String>,
    /// Only the one with this phone number (digits, see [`phone_digits`]).
    pub phone: Option<String>,
    /// Only the one with this user id.
    pub user_id: Option<String>,
    /// Only the one with this external id.
    pub external_id: Option<String>,
    /// Only those with this tag.
    pub tag: Option<String>,
}

impl ContactFilter {
    /// Whether `r` passes every filter given.
    pub fn keeps(&self, r: &Resolved) -> bool {
        let c = &r.contact;
        let source = r.source.as_ref().map(|s| s.id.as_str());
        self.source_id.as_deref().is_none_or(|s| source == Some(s))
            && self.phone.as_deref().is_none_or(|p| {
                c.profile.wa_id.as_deref().and_then(phone_digits).as_deref() == Some(p)
            })
            && self
                .user_id
                .as_deref()
                .is_none_or(|u| c.profile.user_id.as_deref() == Some(u))
            && self
                .external_id
                .as_deref()
                .is_none_or(|e| c.external_id.as_deref() == Some(e))
            && self
                .tag
                .as_deref()
                .is_none_or(|t| c.tags.iter().any(|x| x == t))
    }
}

/// A page of contacts, newest first, and the sort key to continue below.
#[derive(Debug, Clone)]
pub struct ContactPage {
    /// The contacts.
    pub contacts: Vec<Resolved>,
    /// Pass as `before` for the next page.
    pub next: Option<String>,
}

/// A change through the API; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    /// The tags, replacing the current ones.
    pub tags: Option<Vec<String>>,
    /// The stage (`Some(None)` clears it).
    pub stage: Option<Option<String>>,
    /// A JSON merge patch (RFC 7396) of the custom fields: a field set to `null` is removed;
    /// `Some(None)` removes them all.
    pub custom_fields: Option<Option<serde_json::Map<String, Value>>>,
    /// The external id (`Some(None)` clears it).
    pub external_id: Option<Option<String>>,
}

/// The outcome of [`Contacts::patch`].
#[derive(Debug, Clone)]
pub struct Patched {
    /// The contact now.
    pub contact: Contact,
    /// Its source (needed for its events).
    pub source: Option<SourceInfo>,
    /// What this change changed (empty: nothing).
    pub changes: Vec<ContactFieldChange>,
    /// Events of API changes to hand on, oldest first: this one's, and any an earlier request
    /// left behind; pass their ids to [`Contacts::handed_on`] once handed on.
    pub pending: Vec<PendingEvent>,
}

/// Why an API change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// No such contact.
    #[error("no such contact")]
    NotFound,
    /// Another contact of the source has this external id.
    #[error("another contact has this external id")]
    ExternalIdTaken,
    /// The contact was stored before its source was kept and has not been seen since, so its
    /// events cannot say where it belongs.
    #[error("the contact's source is not known yet")]
    NoSource,
    /// The change would make a field too large.
    #[error("{field} is too large")]
    TooLarge {
        /// The field.
        field: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<crate::ports::BackendError> for PatchError {
    fn from(e: crate::ports::BackendError) -> Self {
        Self::State(e.into())
    }
}

/// Each field of `after` that differs from `before`, with both values (`null` when absent):
/// profile fields, `external_id`, `tags`, `stage`, then `custom_fields.{name}` by name.
pub fn contact_changes(before: &Contact, after: &Contact) -> Vec<ContactFieldChange> {
    let mut out = Vec::new();
    let mut field = |name: String, b: Value, a: Value| {
        if a != b {
            out.push(ContactFieldChange {
                field: name,
                before: b,
                after: a,
            });
        }
    };
    let (p, q) = (&before.profile, &after.profile);
    for (name, b, a) in [
        ("name", &p.name, &q.name),
        ("wa_id", &p.wa_id, &q.wa_id),
        ("user_id", &p.user_id, &q.user_id),
        ("username", &p.username, &q.username),
        ("external_id", &before.external_id, &after.external_id),
    ] {
        field(name.to_owned(), json!(b), json!(a));
    }
    field("tags".to_owned(), json!(before.tags), json!(after.tags));
    field("stage".to_owned(), json!(before.stage), json!(after.stage));
    let names: std::collections::BTreeSet<&String> = before
        .custom_fields
        .keys()
        .chain(after.custom_fields.keys())
        .collect();
    for name in names {
        let b = before
            .custom_fields
            .get(name)
            .cloned()
            .unwrap_or(Value::Null);
        let a = after
            .custom_fields
            .get(name)
            .cloned()
            .unwrap_or(Value::Null);
        field(format!("custom_fields.{name}"), b, a);
    }
    out
}

/// RFC 7396: `patch` applied to `target` (a `null` removes, objects merge, anything else
/// replaces).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(fields) = target {
        for (name, value) in changes {
            if value.is_null() {
                fields.remove(name);
            } else {
                merge_patch(fields.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A contact reached from a key or id: live, or a replay's recorded outcome.
enum Lookup {
    Live(Box<Found>),
    Replay(Box<Upserted>),
    Missing,
}

/// A live contact as read.
struct Found {
    key: String,
    version: u64,
    doc: ContactDoc,
}

fn put<'a>(key: &'a str, body: &'a str, write: DocumentWrite<'a>) -> PutDocument<'a> {
    PutDocument {
        key,
        body: DocBody::Json(body),
        write,
    }
}

impl Contacts {
    /// Creates, updates, links or merges the contact of the customer `profile` describes
    /// (`customer` names them when the profile has no id: a group) on behalf of item `by`,
    /// reporting what changed (see the module's merge rules): a profile field counts as changed
    /// when the provider sent it and it differs; fields not sent keep their value. A replay of
    /// an item that created, changed or merged it gets the same answer again.
    pub async fn upsert(
        &self,
        source: &SourceInfo,
        customer: &str,
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Upserted, StateError> {
        let sid = source.id.as_str();
        // A number is kept as digits however the provider spelled it.
        let profile = &ContactProfile {
            wa_id: profile
                .wa_id
                .as_deref()
                .map(|w| phone_digits(w).unwrap_or_else(|| w.to_owned())),
            ..profile.clone()
        };
        let keys = customer_keys(profile, Some(customer));
        let Some(primary) = keys.first() else {
            return Err(StateError::Corrupt {
                key: "contact".into(),
                reason: "a customer without any id".into(),
            });
        };
        for _ in 0..ROUNDS {
            let mut live: Vec<(Found, CustomerKey)> = Vec::new();
            let mut unclaimed: Vec<CustomerKey> = Vec::new();
            for key in &keys {
                if live.iter().any(|(f, _)| f.doc.claims(key, sid)) {
                    continue;
                }
                match self.find(sid, key, Some(by), now).await? {
                    Lookup::Replay(done) => return Ok(*done),
                    Lookup::Missing => unclaimed.push(key.clone()),
                    Lookup::Live(found) => {
                        if !live
                            .iter()
                            .any(|(f, _)| f.doc.contact.id == found.doc.contact.id)
                        {
                            live.push((*found, key.clone()));
                        }
                    }
                }
            }
            // Boxed: each is a large future, and track's item future holds this one.
            let done = match (live.pop(), live.pop()) {
                (None, _) => {
                    Box::pin(self.create(source, primary, &keys, profile, by, now)).await?
                }
                (Some((found, under)), None) => {
                    Box::pin(self.update(source, found, &under, &unclaimed, profile, by, now))
                        .await?
                }
                (Some((b, _)), Some((a, _))) => {
                    Box::pin(self.merge(source, [a, b], &unclaimed, profile, by, now)).await?
                }
            };
            if let Some(done) = done {
                return Ok(done);
            }
        }
        Err(StateError::Contention(doc_key(&contact_id_in(
            sid,
            primary.customer(),
        ))))
    }

    /// The contact `key` leads to: the document made from it, else its alias's, following
    /// merges; a mark of `by` on the way is a replay.
    async fn find(
        &self,
        source_id: &str,
        key: &CustomerKey,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Lookup, StateError> {
        let direct = contact_id_in(source_id, key.customer());
        match self.follow(source_id, &direct, Some(key), by, now).await? {
            Lookup::Missing => {}
            found => return Ok(found),
        }
        let alias_key = key.alias_key(source_id);
        let Some(alias) = self.docs.get_json(&alias_key, now).await? else {
            return Ok(Lookup::Missing);
        };
        let claim: Claim = decode(&alias_key, &alias)?;
        self.follow(source_id, &claim.contact_id, Some(key), by, now)
            .await
    }

    /// Contact `id`, or the one it was merged into (and so on).
    async fn follow(
        &self,
        source_id: &str,
        id: &str,
        under: Option<&CustomerKey>,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Lookup, StateError> {
        let mut id = id.to_owned();
        for _ in 0..MAX_HOPS {
            let key = doc_key(&id);
            let Some(versioned) = self.docs.get_json(&key, now).await? else {
                return Ok(Lookup::Missing);
            };
            let doc: ContactDoc = decode(&key, &versioned)?;
            if let Some(by) = by
                && let Some(mark) = doc.changed_by.iter().find(|m| m.by == by)
            {
                let change = self.replayed(&doc, mark, now).await?;
                return Ok(Lookup::Replay(Box::new(Upserted {
                    change,
                    primary_key: doc.primary(source_id, under),
                })));
            }
            match doc.merged_into.clone() {
                Some(next) => id = next,
                None => {
                    return Ok(Lookup::Live(Box::new(Found {
                        key,
                        version: versioned.version,
                        doc,
                    })));
                }
            }
        }
        Err(StateError::Corrupt {
            key: doc_key(&id),
            reason: "too many merges to follow".into(),
        })
    }

    /// What the item that left `mark` on `doc` got.
    async fn replayed(
        &self,
        doc: &ContactDoc,
        mark: &ContactMark,
        now: DateTime<Utc>,
    ) -> Result<ContactChange, StateError> {
        let Some(previous) = &mark.before else {
            return Ok(ContactChange::Created(doc.contact.clone()));
        };
        let changes = match &mark.merged {
            Some(loser) => {
                let key = doc_key(loser);
                match self.docs.get_json(&key, now).await? {
                    Some(v) => decode::<ContactDoc>(&key, &v)?.merge_changes,
                    None => Vec::new(),
                }
            }
            None if mark.changes.is_empty() => {
                // A mark written before changes were recorded.
                let mut before = doc.contact.clone();
                before.profile = previous.clone();
                contact_changes(&before, &doc.contact)
            }
            None => mark.changes.clone(),
        };
        Ok(ContactChange::Updated {
            contact: doc.contact.clone(),
            previous: previous.clone(),
            changes,
        })
    }

    /// A new contact under `primary`, claiming every key; `None` when another writer got
    /// there first.
    async fn create(
        &self,
        source: &SourceInfo,
        primary: &CustomerKey,
        keys: &[CustomerKey],
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Upserted>, StateError> {
        let sid = source.id.as_str();
        let id = contact_id_in(sid, primary.customer());
        let contact = Contact::new(id.clone(), profile.clone(), now);
        let doc = ContactDoc {
            contact: contact.clone(),
            changed_by: vec![ContactMark {
                by: by.to_owned(),
                before: None,
                changes: Vec::new(),
                merged: None,
            }],
            source: Some(source.clone()),
            primary_key: Some(primary.customer().to_owned()),
            keys: keys.iter().map(CustomerKey::name).collect(),
            merged_into: None,
            merge_changes: Vec::new(),
            pending: Vec::new(),
        };
        let written = self
            .write(sid, (doc_key(&id), None, &doc), &[], keys, now)
            .await?;
        Ok(written.then(|| Upserted {
            change: ContactChange::Created(contact),
            primary_key: primary.customer().to_owned(),
        }))
    }

    /// Applies the item to the one contact its keys lead to, claiming the keys it lacked.
    #[allow(clippy::too_many_arguments)] // one item's parts, passed on from `upsert`
    async fn update(
        &self,
        source: &SourceInfo,
        found: Found,
        under: &CustomerKey,
        unclaimed: &[CustomerKey],
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Upserted>, StateError> {
        let sid = source.id.as_str();
        let Found {
            key,
            version,
            mut doc,
        } = found;
        let before = doc.contact.clone();
        let primary = doc.primary(sid, Some(under));
        doc.contact.profile = overlay(profile, &before.profile, &ContactProfile::default());
        let changed = doc.contact.profile != before.profile;
        // A contact stored before sources and primary keys were kept is written once with them
        // (which also lists it).
        let migrate = doc.source.is_none() || doc.primary_key.is_none();
        let mut unclaimed = unclaimed.to_vec();
        if migrate {
            // Its profile's ids were never claimed: claim those no other contact has.
            for k in customer_keys(&doc.contact.profile, None) {
                if doc.claims(&k, sid) || unclaimed.contains(&k) {
                    continue;
                }
                if matches!(self.find(sid, &k, None, now).await?, Lookup::Missing) {
                    unclaimed.push(k);
                }
            }
        }
        if !changed && unclaimed.is_empty() && !migrate {
            return Ok(Some(Upserted {
                change: ContactChange::Unchanged(doc.contact),
                primary_key: primary,
            }));
        }
        doc.source.get_or_insert_with(|| source.clone());
        doc.primary_key = Some(primary.clone());
        doc.keys.extend(unclaimed.iter().map(CustomerKey::name));
        let change = if changed {
            doc.contact.updated_at = now;
            let changes = contact_changes(&before, &doc.contact);
            let mark = ContactMark {
                by: by.to_owned(),
                before: Some(before.profile.clone()),
                changes: changes.clone(),
                merged: None,
            };
            remember(&mut doc.changed_by, mark, MARKS);
            ContactChange::Updated {
                contact: doc.contact.clone(),
                previous: before.profile,
                changes,
            }
        } else {
            ContactChange::Unchanged(doc.contact.clone())
        };
        let written = self
            .write(sid, (key, Some(version), &doc), &[], &unclaimed, now)
            .await?;
        Ok(written.then_some(Upserted {
            change,
            primary_key: primary,
        }))
    }

    /// Merges the two contacts the item's keys lead to into the older one.
    async fn merge(
        &self,
        source: &SourceInfo,
        pair: [Found; 2],
        unclaimed: &[CustomerKey],
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Upserted>, StateError> {
        let sid = source.id.as_str();
        let [a, b] = pair;
        let older = |f: &Found| (f.doc.contact.created_at, f.doc.contact.id.clone());
        let (survivor, mut loser) = if older(&a) <= older(&b) {
            (a, b)
        } else {
            (b, a)
        };
        let Found {
            key,
            version,
            mut doc,
        } = survivor;
        let before = doc.contact.clone();
        let primary = doc.primary(sid, None);
        let other = loser.doc.contact.clone();
        let c = &mut doc.contact;
        c.profile = overlay(profile, &before.profile, &other.profile);
        c.external_id = before.external_id.clone().or(other.external_id);
        c.stage = before.stage.clone().or(other.stage);
        for tag in other.tags {
            if !c.tags.contains(&tag) {
                c.tags.push(tag);
            }
        }
        let mut custom: BTreeMap<String, Value> = other.custom_fields;
        custom.extend(before.custom_fields.clone());
        c.custom_fields = custom;
        c.created_at = before.created_at.min(other.created_at);
        c.updated_at = now;
        let changes = contact_changes(&before, &doc.contact);
        doc.source.get_or_insert_with(|| source.clone());
        doc.primary_key = Some(primary.clone());
        for name in loser
            .doc
            .keys
            .iter()
            .cloned()
            .chain(unclaimed.iter().map(CustomerKey::name))
        {
            if !doc.keys.contains(&name) {
                doc.keys.push(name);
            }
        }
        doc.pending.append(&mut loser.doc.pending);
        let excess = doc.pending.len().saturating_sub(PENDING);
        doc.pending.drain(..excess);
        let mark = ContactMark {
            by: by.to_owned(),
            before: Some(before.profile.clone()),
            changes: Vec::new(),
            merged: Some(loser.doc.contact.id.clone()),
        };
        remember(&mut doc.changed_by, mark, MARKS);
        loser.doc.merged_into = Some(doc.contact.id.clone());
        loser.doc.merge_changes = changes.clone();
        let tombstone = (loser.key, loser.version, loser.doc);
        let written = self
            .write(
                sid,
                (key, Some(version), &doc),
                &[tombstone],
                unclaimed,
                now,
            )
            .await?;
        Ok(written.then(|| Upserted {
            change: ContactChange::Updated {
                contact: doc.contact.clone(),
                previous: before.profile,
                changes,
            },
            primary_key: primary,
        }))
    }

    /// Writes `contact` (listed) and `tombstones` (not listed) at their expected versions and
    /// creates the aliases of `claims`, all or nothing; `false` when a condition failed.
    async fn write(
        &self,
        source_id: &str,
        contact: (String, Option<u64>, &ContactDoc),
        tombstones: &[(String, u64, ContactDoc)],
        claims: &[CustomerKey],
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let (key, expected, doc) = contact;
        let entry = list_entry(&doc.contact);
        let body = doc.encode(&key)?;
        let claim = serde_json::to_string(&Claim {
            contact_id: doc.contact.id.clone(),
        })
        .unwrap_or_else(|_| "null".to_owned());
        let dead = tombstones
            .iter()
            .map(|(k, _, d)| d.encode(k))
            .collect::<Result<Vec<_>, _>>()?;
        let alias_keys: Vec<String> = claims.iter().map(|k| k.alias_key(source_id)).collect();
        let mut puts = vec![put(
            &key,
            &body,
            DocumentWrite::new(expected, now).indexed(&entry),
        )];
        for ((k, v, _), b) in tombstones.iter().zip(&dead) {
            puts.push(put(k, b, DocumentWrite::new(Some(*v), now)));
        }
        for k in &alias_keys {
            puts.push(put(k, &claim, DocumentWrite::new(None, now)));
        }
        Ok(if puts.len() == 1 {
            self.docs.put_json(&key, &body, puts[0].write).await?
        } else {
            self.docs.put_all(&puts).await?
        })
    }

    /// Contact `id`, or the one it was merged into.
    pub async fn contact(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Resolved>, StateError> {
        if !is_contact_id(id) {
            return Ok(None);
        }
        Ok(self.live(id, now).await?.map(|f| resolved(f.doc)))
    }

    async fn live(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Found>, StateError> {
        // The source only matters for contacts stored before their primary key was kept, whose
        // key is then read from the profile.
        Ok(match self.follow("", id, None, None, now).await? {
            Lookup::Live(f) => Some(*f),
            Lookup::Replay(_) | Lookup::Missing => None,
        })
    }

    /// The contact of the customer `profile` describes in `source`, without changing anything:
    /// the one its ids lead to (when they lead to two not merged yet, the older, which a merge
    /// would keep). How the send route finds the conversation of a recipient:
    /// `ConversationKey::new(source, Some(&resolved.primary_key))`.
    pub async fn resolve(
        &self,
        source: &SourceInfo,
        profile: &ContactProfile,
        now: DateTime<Utc>,
    ) -> Result<Option<Resolved>, StateError> {
        self.resolve_in(source.id.as_str(), profile, now).await
    }

    /// [`Contacts::resolve`] by source id.
    pub async fn resolve_in(
        &self,
        source_id: &str,
        profile: &ContactProfile,
        now: DateTime<Utc>,
    ) -> Result<Option<Resolved>, StateError> {
        let mut best: Option<(Found, CustomerKey)> = None;
        for key in customer_keys(profile, None) {
            if best
                .as_ref()
                .is_some_and(|(f, _)| f.doc.claims(&key, source_id))
            {
                continue;
            }
            if let Lookup::Live(found) = self.find(source_id, &key, None, now).await? {
                let older = |f: &Found| (f.doc.contact.created_at, f.doc.contact.id.clone());
                if best.as_ref().is_none_or(|(b, _)| older(&found) < older(b)) {
                    best = Some((*found, key));
                }
            }
        }
        Ok(best.map(|(f, key)| {
            let primary_key = f.doc.primary(source_id, Some(&key));
            Resolved {
                primary_key,
                ..resolved(f.doc)
            }
        }))
    }

    /// The contact of `source_id` whose external id is `external_id`.
    pub async fn by_external_id(
        &self,
        source_id: &str,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Resolved>, StateError> {
        let key = external_key(source_id, external_id);
        let Some(claim) = self.docs.get_json(&key, now).await? else {
            return Ok(None);
        };
        let claim: Claim = decode(&key, &claim)?;
        Ok(self
            .live(&claim.contact_id, now)
            .await?
            .filter(|f| f.doc.contact.external_id.as_deref() == Some(external_id))
            .map(|f| resolved(f.doc)))
    }

    /// Contacts, newest first (by creation), that `filter` keeps; starts below the sort key
    /// `before`. Merged contacts are not listed, nor contacts stored before the list existed
    /// until their customer writes again.
    pub async fn list(
        &self,
        filter: &ContactFilter,
        before: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<ContactPage, StateError> {
        let partitions: Vec<String> = (0..CONTACT_SHARDS)
            .map(|n| format!("{CONTACTS}#{n}"))
            .collect();
        let (found, next) = crate::ports::merged_page(
            self.docs.as_ref(),
            &partitions,
            (None, before),
            limit,
            now,
            |l| {
                let doc: ContactDoc = decode(&l.key, &l.doc)?;
                if doc.merged_into.is_some() {
                    return Ok::<_, StateError>(None);
                }
                let r = resolved(doc);
                Ok(filter.keeps(&r).then_some(r))
            },
        )
        .await?;
        Ok(ContactPage {
            contacts: found.into_iter().map(|(_, c)| c).collect(),
            next,
        })
    }

    /// Applies `patch` to contact `id` (the survivor, if it was merged). A change is written
    /// with its event in `pending`; one that changes nothing writes nothing.
    pub async fn patch(
        &self,
        id: &str,
        patch: &ContactPatch,
        now: DateTime<Utc>,
    ) -> Result<Patched, PatchError> {
        if !is_contact_id(id) {
            return Err(PatchError::NotFound);
        }
        for _ in 0..ROUNDS {
            let Some(Found {
                key,
                version,
                mut doc,
            }) = self.live(id, now).await?
            else {
                return Err(PatchError::NotFound);
            };
            let before = doc.contact.clone();
            let c = &mut doc.contact;
            if let Some(tags) = &patch.tags {
                c.tags.clone_from(tags);
            }
            if let Some(stage) = &patch.stage {
                c.stage.clone_from(stage);
            }
            match &patch.custom_fields {
                None => {}
                Some(None) => c.custom_fields.clear(),
                Some(Some(fields)) => {
                    let mut all = json!(c.custom_fields);
                    merge_patch(&mut all, &Value::Object(fields.clone()));
                    c.custom_fields = serde_json::from_value(all).unwrap_or_default();
                }
            }
            if let Some(external_id) = &patch.external_id {
                c.external_id.clone_from(external_id);
            }
            if json!(c.custom_fields).to_string().len() > CUSTOM_FIELDS_MAX_BYTES {
                return Err(PatchError::TooLarge {
                    field: "custom_fields",
                });
            }
            let changes = contact_changes(&before, &doc.contact);
            if changes.is_empty() {
                return Ok(Patched {
                    contact: doc.contact,
                    source: doc.source,
                    changes,
                    pending: doc.pending,
                });
            }
            let Some(source) = doc.source.clone() else {
                return Err(PatchError::NoSource);
            };
            // Taking the external id: free, or held by a contact that no longer has it.
            let mut claim = None;
            if let Some(ext) = doc.contact.external_id.clone()
                && before.external_id.as_ref() != Some(&ext)
            {
                let ext_key = external_key(source.id.as_str(), &ext);
                let held = self.docs.get_json(&ext_key, now).await?;
                if let Some(v) = &held {
                    let holder: Claim = decode(&ext_key, v)?;
                    if let Some(f) = self.live(&holder.contact_id, now).await?
                        && f.doc.contact.id != doc.contact.id
                        && f.doc.contact.external_id.as_ref() == Some(&ext)
                    {
                        return Err(PatchError::ExternalIdTaken);
                    }
                }
                claim = Some((ext_key, held.map(|v| v.version)));
            }
            doc.contact.updated_at = now;
            let event = PendingEvent {
                id: EventId::new(),
                at: now,
                changes: changes.clone(),
            };
            remember(&mut doc.pending, event, PENDING);
            let body = doc.encode(&key)?;
            let entry = list_entry(&doc.contact);
            let write = DocumentWrite::new(Some(version), now).indexed(&entry);
            let written = match &claim {
                None => self.docs.put_json(&key, &body, write).await?,
                Some((ext_key, expected)) => {
                    let holder = json!({"contact_id": doc.contact.id}).to_string();
                    self.docs
                        .put_all(&[
                            put(&key, &body, write),
                            put(ext_key, &holder, DocumentWrite::new(*expected, now)),
                        ])
                        .await?
                }
            };
            if written {
                return Ok(Patched {
                    contact: doc.contact,
                    source: Some(source),
                    changes,
                    pending: doc.pending,
                });
            }
        }
        Err(StateError::Contention(doc_key(id)).into())
    }

    /// Takes the events `handed` off contact `id`'s pending list (they went out).
    pub async fn handed_on(
        &self,
        id: &str,
        handed: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        for _ in 0..ROUNDS {
            let Some(Found {
                key,
                version,
                mut doc,
            }) = self.live(id, now).await?
            else {
                return Ok(());
            };
            let before = doc.pending.len();
            doc.pending.retain(|p| !handed.contains(&p.id));
            if doc.pending.len() == before {
                return Ok(());
            }
            let entry = list_entry(&doc.contact);
            let write = DocumentWrite::new(Some(version), now).indexed(&entry);
            if self.docs.put_json(&key, &doc.encode(&key)?, write).await? {
                return Ok(());
            }
        }
        Err(StateError::Contention(doc_key(id)))
    }
}

/// The profile an item leaves: each field it sent, else `first`'s, else `second`'s.
fn overlay(
    sent: &ContactProfile,
    first: &ContactProfile,
    second: &ContactProfile,
) -> ContactProfile {
    let pick = |s: &Option<String>, f: &Option<String>, o: &Option<String>| {
        s.clone().or_else(|| f.clone()).or_else(|| o.clone())
    };
    ContactProfile {
        wa_id: pick(&sent.wa_id, &first.wa_id, &second.wa_id),
        user_id: pick(&sent.user_id, &first.user_id, &second.user_id),
        username: pick(&sent.username, &first.username, &second.username),
        name: pick(&sent.name, &first.name, &second.name),
    }
}

fn resolved(doc: ContactDoc) -> Resolved {
    let source_id = doc.source.as_ref().map(|s| s.id.as_str().to_owned());
    let primary_key = doc.primary(source_id.as_deref().unwrap_or_default(), None);
    Resolved {
        contact: doc.contact,
        primary_key,
        source: doc.source,
    }
}

#[cfg(test)]
mod tests;
