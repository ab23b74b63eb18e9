//! A collection-level bulk write: inserts, updates, replacements and
//! deletes in one call, ordered or unordered, with the legacy drivers'
//! `bulkWrite` semantics. Consecutive inserts go as one `insert_many`;
//! every operation is analysed and run like its single-operation
//! counterpart. (The server's client-level `bulkWrite` command, one
//! command for all the operations, is `EncryptedClient::bulk_write`, in
//! `client_bulk`: supported on a Queryable Encryption collection or a
//! namespace without a schema, as libmongocrypt 1.10 and later support
//! it, and refused on an FLE1 one.)

use super::Exec;
use super::write::with_generated_id;
use crate::client::collection::EncryptedCollection;
use crate::error::{BulkWriteFailure, BulkWriteResult};
use crate::{ClientError, Error};
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
use mongodb::ClientSession;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::WriteConcern;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;

exec_setters!(session: BulkWrite);
exec_setters!(writes: BulkWrite);

/// One operation of a [`BulkWrite`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum WriteModel<T> {
    /// Insert a document (an `_id` is generated when missing).
    InsertOne {
        /// The document.
        document: T,
    },
    /// Update the first matching document (`update` holds operators).
    UpdateOne {
        /// Which document.
        filter: Document,
        /// The update operators.
        update: Document,
        /// Insert when none matches.
        upsert: bool,
    },
    /// Update every matching document.
    UpdateMany {
        /// Which documents.
        filter: Document,
        /// The update operators.
        update: Document,
        /// Insert when none matches.
        upsert: bool,
    },
    /// Replace the first matching document.
    ReplaceOne {
        /// Which document.
        filter: Document,
        /// The new document.
        replacement: T,
        /// Insert when none matches.
        upsert: bool,
    },
    /// Delete the first matching document.
    DeleteOne {
        /// Which document.
        filter: Document,
    },
    /// Delete every matching document.
    DeleteMany {
        /// Which documents.
        filter: Document,
    },
}

/// A collection-level bulk write.
#[must_use = "an action does nothing until awaited"]
pub struct BulkWrite<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) models: Vec<WriteModel<T>>,
    pub(super) ordered: bool,
    pub(super) bypass_document_validation: Option<bool>,
    pub(super) comment: Option<Bson>,
    pub(super) exec: Exec<'a>,
}

impl<T> BulkWrite<'_, T> {
    /// Stop at the first failing operation (the default), or run them all.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Skip the collection's document validation.
    pub fn bypass_document_validation(mut self, bypass: bool) -> Self {
        self.bypass_document_validation = Some(bypass);
        self
    }

    /// A comment the server logs with each command.
    pub fn comment(mut self, comment: impl Into<Bson>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// The indexes (within the batch) of the documents an `insert_many` error
/// says were not inserted; `None` when the error does not say.
fn failed_inserts(e: &Error) -> Option<Vec<usize>> {
    match e.driver_error()?.kind.as_ref() {
        ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
            Some(m.write_errors.iter().flatten().map(|w| w.index).collect())
        }
        ErrorKind::Write(WriteFailure::WriteError(_)) => Some(vec![0]),
        _ => None,
    }
}

impl<T> BulkWrite<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn insert_group(
        &mut self,
        start: usize,
        docs: Vec<Document>,
        result: &mut BulkWriteResult,
        failures: &mut Vec<BulkWriteFailure>,
    ) {
        let n = docs.len();
        let ids: Vec<Bson> = docs
            .iter()
            .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
            .collect();
        // As documents, keeping `T`'s need for its typed collection.
        let coll = self.coll.as_documents();
        let mut action = coll.insert_many(docs.iter()).ordered(self.ordered);
        if let Some(b) = self.bypass_document_validation {
            action = action.bypass_document_validation(b);
        }
        if let Some(c) = self.comment.clone() {
            action = action.comment(c);
        }
        if let Some(w) = self.exec.write_concern.clone() {
            action = action.write_concern(w);
        }
        if let Some(s) = self.exec.session.as_deref_mut() {
            action = action.session(s);
        }
        let failed: Vec<usize> = match action.await {
            Ok(_) => Vec::new(),
            Err(e) => match failed_inserts(&e) {
                // Ordered: nothing after the first failure was attempted.
                Some(mut idx) => {
                    idx.sort_unstable();
                    let first = idx.first().copied().unwrap_or(n);
                    let not_inserted: Vec<usize> = if self.ordered {
                        (first..n).collect()
                    } else {
                        idx.clone()
                    };
                    failures.push(BulkWriteFailure {
                        index: start + first,
                        error: e,
                    });
                    not_inserted
                }
                // Not known which were inserted: none is reported.
                None => {
                    failures.push(BulkWriteFailure {
                        index: start,
                        error: e,
                    });
                    (0..n).collect()
                }
            },
        };
        for (i, id) in ids.into_iter().enumerate() {
            if !failed.contains(&i) {
                result.inserted_count += 1;
                result.inserted_ids.insert(start + i, id);
            }
        }
    }

    async fn one(&mut self, model: Single<T>) -> Result<(u64, u64, u64, Option<Bson>), Error> {
        let coll = self.coll;
        let session = self.exec.session.as_deref_mut();
        let w = self.exec.write_concern.clone();
        macro_rules! with_common {
            ($action:expr) => {{
                let mut a = $action;
                if let Some(b) = self.bypass_document_validation {
                    a = a.bypass_document_validation(b);
                }
                if let Some(c) = self.comment.clone() {
                    a = a.comment(c);
                }
                if let Some(w) = w {
                    a = a.write_concern(w);
                }
                if let Some(s) = session {
                    a = a.session(s);
                }
                a.await?
            }};
        }
        Ok(match model {
            Single::Update {
                filter,
                update,
                upsert,
                many,
            } => {
                let a = if many {
                    coll.update_many(filter, update)
                } else {
                    coll.update_one(filter, update)
                };
                let r = with_common!(a.upsert(upsert));
                (r.matched_count, r.modified_count, 0, r.upserted_id)
            }
            Single::Replace {
                filter,
                replacement,
                upsert,
            } => {
                let r = with_common!(coll.replace_one(filter, &replacement).upsert(upsert));
                (r.matched_count, r.modified_count, 0, r.upserted_id)
            }
            Single::Delete { filter, many } => {
                let mut a = if many {
                    coll.delete_many(filter)
                } else {
                    coll.delete_one(filter)
                };
                if let Some(c) = self.comment.clone() {
                    a = a.comment(c);
                }
                if let Some(w) = w {
                    a = a.write_concern(w);
                }
                if let Some(s) = session {
                    a = a.session(s);
                }
                (0, 0, a.await?.deleted_count, None)
            }
        })
    }

    async fn run(mut self) -> Result<BulkWriteResult, Error> {
        let mut result = BulkWriteResult::default();
        let mut failures = Vec::new();
        let models = std::mem::take(&mut self.models);
        let mut pending: Vec<Document> = Vec::new();
        let mut pending_start = 0;
        for (i, model) in models.into_iter().enumerate() {
            let model = match Grouped::from(model) {
                Grouped::Single(s) => s,
                Grouped::Insert(document) => {
                    let d = with_generated_id(bson::to_document(&document)?);
                    if pending.is_empty() {
                        pending_start = i;
                    }
                    pending.push(d);
                    continue;
                }
            };
            if !pending.is_empty() {
                let docs = std::mem::take(&mut pending);
                self.insert_group(pending_start, docs, &mut result, &mut failures)
                    .await;
                if self.ordered && !failures.is_empty() {
                    break;
                }
            }
            match self.one(model).await {
                Ok((matched, modified, deleted, upserted)) => {
                    result.matched_count += matched;
                    result.modified_count += modified;
                    result.deleted_count += deleted;
                    if let Some(id) = upserted {
                        result.upserted_count += 1;
                        result.upserted_ids.insert(i, id);
                    }
                }
                Err(error) => {
                    failures.push(BulkWriteFailure { index: i, error });
                    if self.ordered {
                        break;
                    }
                }
            }
        }
        // Ordered, nothing runs after a failure.
        let stopped = self.ordered && !failures.is_empty();
        if !pending.is_empty() && !stopped {
            self.insert_group(pending_start, pending, &mut result, &mut failures)
                .await;
        }
        if failures.is_empty() {
            Ok(result)
        } else {
            Err(Error::Client(ClientError::BulkWrite {
                result: Box::new(result),
                failures,
            }))
        }
    }
}

/// A model as the bulk write runs it: inserts are grouped into one
/// `insert_many`; everything else runs alone.
enum Grouped<T> {
    Insert(T),
    Single(Single<T>),
}

enum Single<T> {
    Update {
        filter: Document,
        update: Document,
        upsert: bool,
        many: bool,
    },
    Replace {
        filter: Document,
        replacement: T,
        upsert: bool,
    },
    Delete {
        filter: Document,
        many: bool,
    },
}

impl<T> From<WriteModel<T>> for Grouped<T> {
    fn from(m: WriteModel<T>) -> Self {
        match m {
            WriteModel::InsertOne { document } => Grouped::Insert(document),
            WriteModel::UpdateOne {
                filter,
                update,
                upsert,
            } => Grouped::Single(Single::Update {
                filter,
                update,
                upsert,
                many: false,
            }),
            WriteModel::UpdateMany {
                filter,
                update,
                upsert,
            } => Grouped::Single(Single::Update {
                filter,
                update,
                upsert,
                many: true,
            }),
            WriteModel::ReplaceOne {
                filter,
                replacement,
                upsert,
            } => Grouped::Single(Single::Replace {
                filter,
                replacement,
                upsert,
            }),
            WriteModel::DeleteOne { filter } => Grouped::Single(Single::Delete {
                filter,
                many: false,
            }),
            WriteModel::DeleteMany { filter } => {
                Grouped::Single(Single::Delete { filter, many: true })
            }
        }
    }
}

into_future! {
    BulkWrite => Result<BulkWriteResult, Error>,
}

impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs `models` in order (ordered by default: stopping at the first
    /// failure). Each operation is analysed like its single counterpart;
    /// consecutive inserts go as one `insert_many`.
    pub fn bulk_write(&self, models: impl IntoIterator<Item = WriteModel<T>>) -> BulkWrite<'_, T> {
        BulkWrite {
            coll: self,
            models: models.into_iter().collect(),
            ordered: true,
            bypass_document_validation: None,
            comment: None,
            exec: Exec::default(),
        }
    }
}
