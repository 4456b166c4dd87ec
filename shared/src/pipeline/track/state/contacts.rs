//! Contacts over the [`DocumentStore`]: one document per customer and source,
//! `contact#{contact id}`, created on first sight and updated when the provider sends a profile
//! field that differs; each change records the item that made it with the profile before, so a
//! replay gets the answer the first attempt got.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::common::{MARKS, Mark, ROUNDS, StateError, decode, remember, save};
use crate::model::{Contact, ContactProfile, SourceInfo};
use crate::ports::{DocumentStore, DocumentWrite};

/// The contact store.
#[derive(Debug, Clone)]
pub struct Contacts {
    /// Where contacts are kept.
    pub docs: Arc<dyn DocumentStore>,
}

/// A contact as stored: the public object and the items that created or changed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContactDoc {
    #[serde(flatten)]
    contact: Contact,
    /// Each with the profile before (none: it created the contact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed_by: Vec<Mark<Option<ContactProfile>>>,
}

/// The outcome of [`Contacts::upsert_contact`].
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    /// First sight.
    Created(Contact),
    /// The profile changed.
    Updated {
        /// The contact now.
        contact: Contact,
        /// The profile before.
        previous: ContactProfile,
    },
    /// Nothing new.
    Unchanged(Contact),
}

/// A stable contact id per source and customer.
pub fn contact_id(source: &SourceInfo, customer: &str) -> String {
    let digest = Sha256::digest(format!("{}|{customer}", source.id).as_bytes());
    format!("ctc_{}", hex::encode(&digest[..12]))
}

impl Contacts {
    /// Creates or updates the contact for `customer` on behalf of item `by`, reporting what
    /// changed: a field counts as changed when the provider sent it and it differs; fields not
    /// sent keep their value. A replay of an item that created or changed it gets the same
    /// answer again.
    pub async fn upsert_contact(
        &self,
        source: &SourceInfo,
        customer: &str,
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ContactChange, StateError> {
        let id = contact_id(source, customer);
        let key = format!("contact#{id}");
        for _ in 0..ROUNDS {
            let stored = self.docs.get(&key, now).await?;
            let (change, doc, expected) = match &stored {
                None => {
                    let contact = Contact::new(id.clone(), profile.clone(), now);
                    let doc = ContactDoc {
                        contact: contact.clone(),
                        changed_by: vec![Mark {
                            by: by.to_owned(),
                            before: None,
                        }],
                    };
                    (ContactChange::Created(contact), doc, None)
                }
                Some(versioned) => {
                    let mut doc: ContactDoc = decode(&key, versioned)?;
                    if let Some(mark) = doc.changed_by.iter().find(|m| m.by == by) {
                        return Ok(match &mark.before {
                            None => ContactChange::Created(doc.contact),
                            Some(previous) => ContactChange::Updated {
                                previous: previous.clone(),
                                contact: doc.contact,
                            },
                        });
                    }
                    let previous = doc.contact.profile.clone();
                    let merged = ContactProfile {
                        wa_id: profile.wa_id.clone().or(previous.wa_id.clone()),
                        user_id: profile.user_id.clone().or(previous.user_id.clone()),
                        username: profile.username.clone().or(previous.username.clone()),
                        name: profile.name.clone().or(previous.name.clone()),
                    };
                    if merged == previous {
                        return Ok(ContactChange::Unchanged(doc.contact));
                    }
                    doc.contact.profile = merged;
                    doc.contact.updated_at = now;
                    let mark = Mark {
                        by: by.to_owned(),
                        before: Some(previous.clone()),
                    };
                    remember(&mut doc.changed_by, mark, MARKS);
                    let change = ContactChange::Updated {
                        contact: doc.contact.clone(),
                        previous,
                    };
                    (change, doc, Some(versioned.version))
                }
            };
            let write = DocumentWrite::new(expected, now);
            if save(self.docs.as_ref(), &key, &doc, write).await? {
                return Ok(change);
            }
        }
        Err(StateError::Contention(key))
    }
}
