//! The operations of [`EncryptedCollection`], as the `mongodb` crate shapes
//! them: a method returns an action, options are chained on it, and
//! `.await` runs it (`coll.find(filter).sort(doc! {"_id": 1}).limit(5).await`).
//!
//! Each operation is written as the command the server documents, with
//! every option as its command field, and analysed (and encrypted) as such
//! by automatic encryption, fail closed. The analysed command is then taken
//! apart (`client::command::Fields`) into the driver's own typed operation, which runs it
//! with the driver's retryable reads and writes, the collection's and the
//! operation's read concern, write concern and read preference, server
//! selection, sessions and transactions, and `killCursors` when a cursor
//! is dropped early. Cursors decrypt as they go.

use super::auto::AutoEncrypter;
use super::collection::EncryptedCollection;
use super::cursor::Cursor;
use crate::Error;
use bson::{Bson, Document, doc};
use futures_util::stream::{self, StreamExt};
use mongodb::ClientSession;
use mongodb::options::{Collation, Hint, ReadConcern, SelectionCriteria, WriteConcern};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The most plaintext bytes of documents in one auto-encrypted write batch
/// (the limit drivers apply with automatic encryption).
const MAX_ENCRYPTED_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The server's maxWriteBatchSize.
const MAX_WRITE_BATCH: usize = 100_000;

/// What `insert_one` did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InsertOneResult {
    /// The `_id` of the inserted document.
    pub inserted_id: Bson,
}

/// What `insert_many` did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InsertManyResult {
    /// The `_id`s, in order.
    pub inserted_ids: Vec<Bson>,
}

/// What an update or replace did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UpdateResult {
    /// Documents matched.
    pub matched_count: u64,
    /// Documents modified.
    pub modified_count: u64,
    /// The `_id` of an upserted document.
    pub upserted_id: Option<Bson>,
}

/// What a delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteResult {
    /// Documents deleted.
    pub deleted_count: u64,
}

fn hint_value(hint: Hint) -> Bson {
    match hint {
        Hint::Keys(keys) => Bson::Document(keys),
        Hint::Name(name) => Bson::String(name),
        // `Hint` is non-exhaustive; a future variant has no known encoding.
        _ => Bson::Null,
    }
}

fn collation_value(collation: Collation) -> Bson {
    bson::to_bson(&collation).unwrap_or(Bson::Null)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `d` with an `_id` first, generated when it has none, as drivers do
/// before an insert (so the caller knows every inserted `_id`).
fn with_generated_id(d: Document) -> Document {
    if d.contains_key("_id") {
        return d;
    }
    let mut with_id = doc! {"_id": bson::oid::ObjectId::new()};
    with_id.extend(d);
    with_id
}

/// How an operation runs besides its command: the session (and so the
/// transaction), the per-operation concerns and read preference. None of
/// them carries application data, so none is part of the analysed command;
/// unset, the collection's apply, as in the driver.
#[derive(Default)]
pub(super) struct Exec<'a> {
    pub(super) session: Option<&'a mut ClientSession>,
    pub(super) read_concern: Option<ReadConcern>,
    pub(super) selection_criteria: Option<SelectionCriteria>,
    pub(super) write_concern: Option<WriteConcern>,
}

/// Runs a driver action with the session, if there is one: the action
/// builder changes type with `.session()`, so the two arms are spelled out.
macro_rules! with_session {
    ($session:expr, $action:expr) => {
        match $session {
            None => $action.await?,
            Some(s) => $action.session(&mut **s).await?,
        }
    };
}

/// Opens a driver cursor as raw batches, in the session if there is one.
macro_rules! open_batches {
    ($session:expr, $action:expr) => {
        match $session {
            None => Batches::Implicit($action.batch().await?),
            Some(s) => {
                let cursor = $action.session(&mut *s).batch().await?;
                Batches::Session(cursor, s)
            }
        }
    };
}

/// One chained option, applied through the action's `$set` method: `set`
/// for a top-level command field, `set_stmt` for a field of the write
/// statement.
macro_rules! setter {
    ($set:ident, sort) => {
        /// The order of the documents (for find-and-modify: which one is first).
        pub fn sort(self, sort: Document) -> Self {
            self.$set("sort", sort)
        }
    };
    ($set:ident, projection) => {
        /// Which fields to return.
        pub fn projection(self, projection: Document) -> Self {
            self.$set("projection", projection)
        }
    };
    ($set:ident, limit) => {
        /// The most documents to return.
        pub fn limit(self, limit: i64) -> Self {
            self.$set("limit", limit)
        }
    };
    ($set:ident, skip) => {
        /// Documents to skip first.
        pub fn skip(self, skip: u64) -> Self {
            self.$set("skip", i64::try_from(skip).unwrap_or(i64::MAX))
        }
    };
    ($set:ident, hint) => {
        /// The index to use.
        pub fn hint(self, hint: Hint) -> Self {
            self.$set("hint", hint_value(hint))
        }
    };
    ($set:ident, collation) => {
        /// The collation for string comparisons.
        pub fn collation(self, collation: Collation) -> Self {
            self.$set("collation", collation_value(collation))
        }
    };
    ($set:ident, comment) => {
        /// A comment the server logs and profiles with the command.
        pub fn comment(self, comment: impl Into<Bson>) -> Self {
            self.$set("comment", comment.into())
        }
    };
    ($set:ident, max_time) => {
        /// How long the server may work on the command (`maxTimeMS`).
        pub fn max_time(self, max_time: Duration) -> Self {
            self.$set("maxTimeMS", millis(max_time))
        }
    };
    ($set:ident, let_vars) => {
        /// Variables for the command's expressions (`let`).
        pub fn let_vars(self, vars: Document) -> Self {
            self.$set("let", vars)
        }
    };
    ($set:ident, min) => {
        /// The inclusive lower bound of the index the query uses.
        pub fn min(self, min: Document) -> Self {
            self.$set("min", min)
        }
    };
    ($set:ident, max) => {
        /// The exclusive upper bound of the index the query uses.
        pub fn max(self, max: Document) -> Self {
            self.$set("max", max)
        }
    };
    ($set:ident, allow_disk_use) => {
        /// Whether the server may spill to disk.
        pub fn allow_disk_use(self, allow: bool) -> Self {
            self.$set("allowDiskUse", allow)
        }
    };
    ($set:ident, bypass_document_validation) => {
        /// Skip the collection's document validation.
        pub fn bypass_document_validation(self, bypass: bool) -> Self {
            self.$set("bypassDocumentValidation", bypass)
        }
    };
    ($set:ident, upsert) => {
        /// Insert a document when none matches.
        pub fn upsert(self, upsert: bool) -> Self {
            self.$set("upsert", upsert)
        }
    };
    ($set:ident, array_filters) => {
        /// Which array elements the update's `$[<id>]` operators change.
        pub fn array_filters(self, filters: impl IntoIterator<Item = Document>) -> Self {
            let filters: Vec<Document> = filters.into_iter().collect();
            self.$set("arrayFilters", filters)
        }
    };
    ($set:ident, ordered) => {
        /// Whether the server stops at the first failing document.
        pub fn ordered(self, ordered: bool) -> Self {
            self.$set("ordered", ordered)
        }
    };
    ($set:ident, return_document) => {
        /// Return the document as it was before the change or after it.
        pub fn return_document(self, which: ReturnDocument) -> Self {
            self.$set("new", matches!(which, ReturnDocument::After))
        }
    };
}

macro_rules! setters {
    ($action:ident via $set:ident: $($name:ident),* $(,)?) => {
        impl<T> $action<'_, T> {
            $(setter!($set, $name);)*
        }
    };
}

/// `set` for actions that build their command in `cmd`.
macro_rules! command_fields {
    ($($action:ident),*) => {
        $(impl<T> $action<'_, T> {
            fn set(mut self, key: &str, value: impl Into<Bson>) -> Self {
                self.cmd.insert(key, value.into());
                self
            }
        })*
    };
}

/// `set_stmt` for write actions: a field of the one write statement, which
/// may already hold an error (kept until the action is awaited).
macro_rules! statement_fields {
    ($($action:ident),*) => {
        $(impl<T> $action<'_, T> {
            fn set_stmt(mut self, key: &str, value: impl Into<Bson>) -> Self {
                if let Ok(s) = &mut self.stmt {
                    s.insert(key, value.into());
                }
                self
            }
        })*
    };
}

/// `.session()` on every action, and the concerns and read preference
/// where the operation reads or writes.
macro_rules! exec_setters {
    (session: $($action:ident),*) => {$(
        impl<'a, T> $action<'a, T> {
            /// Runs the operation in this session (and in its transaction,
            /// when one is started). Key-vault reads and schema lookups stay
            /// outside it, as in libmongocrypt.
            pub fn session(mut self, session: &'a mut ClientSession) -> Self {
                self.exec.session = Some(session);
                self
            }
        }
    )*};
    (reads: $($action:ident),*) => {$(
        impl<T> $action<'_, T> {
            /// The read concern of this operation (else the collection's).
            pub fn read_concern(mut self, concern: ReadConcern) -> Self {
                self.exec.read_concern = Some(concern);
                self
            }

            /// The read preference of this operation (else the collection's).
            pub fn selection_criteria(mut self, criteria: impl Into<SelectionCriteria>) -> Self {
                self.exec.selection_criteria = Some(criteria.into());
                self
            }
        }
    )*};
    (writes: $($action:ident),*) => {$(
        impl<T> $action<'_, T> {
            /// The write concern of this operation (else the collection's).
            pub fn write_concern(mut self, concern: WriteConcern) -> Self {
                self.exec.write_concern = Some(concern);
                self
            }
        }
    )*};
}

/// Awaiting an action runs it: one `IntoFuture` per action, all alike.
macro_rules! into_future {
    ($($action:ident => $output:ty),* $(,)?) => {$(
        impl<'a, T> IntoFuture for $action<'a, T>
        where
            T: Serialize + DeserializeOwned + Send + 'static,
        {
            type Output = $output;
            type IntoFuture = BoxFuture<'a, Self::Output>;

            fn into_future(self) -> Self::IntoFuture {
                // The whole operation (schema lookup, keys, KMS, the
                // command) within the client's timeout, if it has one.
                let timeout = self.coll.auto().options().timeout;
                Box::pin(async move {
                    match timeout {
                        None => self.run().await,
                        Some(after) => tokio::time::timeout(after, self.run())
                            .await
                            .unwrap_or(Err(Error::Timeout { after })),
                    }
                })
            }
        }
    )*};
}

mod admin;
mod bulk;
mod read;
mod watch;
mod write;

pub use admin::{CreateIndexes, DropCollection, DropIndexes, EstimatedDocumentCount, ListIndexes};
pub use bulk::{BulkWrite, WriteModel};
pub use read::{Aggregate, CountDocuments, Distinct, Find, FindOne};
pub use watch::Watch;
pub use write::{Delete, FindAndModify, InsertMany, InsertOne, Replace, Update};

/// Where a cursor's batches come from: the driver's raw batch cursor, on
/// its own or in a session.
pub(super) enum Batches<'a> {
    Implicit(mongodb::raw_batch_cursor::RawBatchCursor),
    Session(
        mongodb::raw_batch_cursor::SessionRawBatchCursor,
        &'a mut ClientSession,
    ),
}

impl Batches<'_> {
    async fn next(
        &mut self,
    ) -> Option<mongodb::error::Result<mongodb::raw_batch_cursor::RawBatch>> {
        match self {
            Batches::Implicit(c) => c.next().await,
            Batches::Session(c, s) => c.stream(s).next().await,
        }
    }
}

/// One batch of a cursor, decrypted (one key-vault query for the batch).
async fn decrypt_batch<U: DeserializeOwned>(
    auto: &AutoEncrypter,
    batch: mongodb::raw_batch_cursor::RawBatch,
) -> Result<VecDeque<U>, Error> {
    let docs = batch
        .doc_slices()?
        .into_iter()
        .map(|d| match d? {
            bson::RawBsonRef::Document(d) => Ok(d),
            _ => Err(Error::UnsupportedOption {
                command: "getMore",
                field: "nextBatch".into(),
                reason: "a batch entry that is not a document".into(),
            }),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    auto.decrypt_batch(&docs)
        .await?
        .into_iter()
        .map(|d| Ok(bson::from_slice(d.as_bytes())?))
        .collect()
}

/// The documents of a cursor, decrypted batch by batch. The first batch
/// is decrypted now (a decryption error is the operation's, as in the
/// drivers); the rest as the stream reaches them. Dropping the stream
/// early drops the driver's cursor, which kills it on the server.
pub(super) async fn decrypted_cursor<'a, U>(
    auto: Arc<AutoEncrypter>,
    mut batches: Batches<'a>,
) -> Result<Cursor<'a, U>, Error>
where
    U: DeserializeOwned + Send + 'static,
{
    let first = match batches.next().await {
        Some(batch) => decrypt_batch(&auto, batch?).await?,
        None => VecDeque::new(),
    };
    Ok(Cursor::new(
        stream::try_unfold(
            (first, batches, auto),
            |(mut buffered, mut batches, auto)| async move {
                loop {
                    if let Some(d) = buffered.pop_front() {
                        return Ok(Some((d, (buffered, batches, auto))));
                    }
                    match batches.next().await {
                        None => return Ok(None),
                        Some(batch) => buffered = decrypt_batch(&auto, batch?).await?,
                    }
                }
            },
        )
        .boxed(),
    ))
}

/// The operations: each returns its action, which runs when awaited.
impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn to_document(value: &T) -> Result<Document, Error> {
        Ok(bson::to_document(value)?)
    }

    fn check_operators(update: &Document, want: bool) -> Result<(), Error> {
        let has = update.keys().next().is_some_and(|k| k.starts_with('$'));
        if has != want {
            return Err(if want {
                Error::InvalidArgument {
                    argument: "update document",
                    reason: "it must contain only update operators",
                }
            } else {
                Error::InvalidArgument {
                    argument: "replacement document",
                    reason: "it must not contain update operators",
                }
            });
        }
        Ok(())
    }

    fn replacement(value: &T) -> Result<Document, Error> {
        let d = Self::to_document(value)?;
        Self::check_operators(&d, false)?;
        Ok(d)
    }

    fn operators(update: Document) -> Result<Document, Error> {
        Self::check_operators(&update, true)?;
        Ok(update)
    }

    /// Inserts a document (an `_id` is generated when missing, as drivers do).
    pub fn insert_one(&self, value: &T) -> InsertOne<'_, T> {
        InsertOne {
            coll: self,
            doc: Self::to_document(value),
            cmd: Document::new(),
            exec: Exec::default(),
        }
    }

    /// Inserts documents, in as few commands as the batch limits of
    /// automatic encryption allow.
    pub fn insert_many<'a>(&self, values: impl IntoIterator<Item = &'a T>) -> InsertMany<'_, T>
    where
        T: 'a,
    {
        InsertMany {
            coll: self,
            docs: values.into_iter().map(Self::to_document).collect(),
            cmd: Document::new(),
            exec: Exec::default(),
        }
    }

    /// The documents matching `filter`, as a stream that follows the cursor
    /// (`getMore`) and decrypts every batch.
    pub fn find(&self, filter: Document) -> Find<'_, T> {
        Find {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter},
            exec: Exec::default(),
        }
    }

    /// The first document matching `filter`.
    pub fn find_one(&self, filter: Document) -> FindOne<'_, T> {
        FindOne {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter, "limit": 1i64, "singleBatch": true},
            exec: Exec::default(),
        }
    }

    fn update(&self, filter: Document, u: Result<Document, Error>, multi: bool) -> Update<'_, T> {
        Update {
            coll: self,
            stmt: u.map(|u| doc! {"q": filter, "u": u, "multi": multi, "upsert": false}),
            cmd: Document::new(),
            exec: Exec::default(),
        }
    }

    /// Updates the first matching document (`update` must hold operators).
    pub fn update_one(&self, filter: Document, update: Document) -> Update<'_, T> {
        self.update(filter, Self::operators(update), false)
    }

    /// Updates every matching document (`update` must hold operators).
    pub fn update_many(&self, filter: Document, update: Document) -> Update<'_, T> {
        self.update(filter, Self::operators(update), true)
    }

    /// Replaces the first matching document (`.upsert(true)` inserts it
    /// when none matches).
    pub fn replace_one(&self, filter: Document, replacement: &T) -> Replace<'_, T> {
        Replace {
            coll: self,
            stmt: Self::replacement(replacement)
                .map(|u| doc! {"q": filter, "u": u, "multi": false, "upsert": false}),
            cmd: Document::new(),
            exec: Exec::default(),
        }
    }

    fn delete(&self, filter: Document, limit: i32) -> Delete<'_, T> {
        Delete {
            coll: self,
            stmt: Ok(doc! {"q": filter, "limit": limit}),
            cmd: Document::new(),
            exec: Exec::default(),
        }
    }

    /// Deletes the first matching document.
    pub fn delete_one(&self, filter: Document) -> Delete<'_, T> {
        self.delete(filter, 1)
    }

    /// Deletes every matching document.
    pub fn delete_many(&self, filter: Document) -> Delete<'_, T> {
        self.delete(filter, 0)
    }

    fn find_and_modify(&self, rest: Result<Document, Error>) -> FindAndModify<'_, T> {
        FindAndModify {
            coll: self,
            cmd: rest.map(|rest| {
                let mut cmd = doc! {"findAndModify": self.name()};
                cmd.extend(rest);
                cmd
            }),
            exec: Exec::default(),
        }
    }

    /// Updates the first matching document; returns it as it was before
    /// (or after, with `.return_document(ReturnDocument::After)`).
    pub fn find_one_and_update(&self, filter: Document, update: Document) -> FindAndModify<'_, T> {
        self.find_and_modify(Self::operators(update).map(|u| doc! {"query": filter, "update": u}))
    }

    /// Replaces the first matching document; returns it as it was before
    /// (or after, with `.return_document(ReturnDocument::After)`).
    pub fn find_one_and_replace(&self, filter: Document, replacement: &T) -> FindAndModify<'_, T> {
        self.find_and_modify(
            Self::replacement(replacement).map(|u| doc! {"query": filter, "update": u}),
        )
    }

    /// Deletes the first matching document and returns it.
    pub fn find_one_and_delete(&self, filter: Document) -> FindAndModify<'_, T> {
        self.find_and_modify(Ok(doc! {"query": filter, "remove": true}))
    }

    /// Runs an aggregation; the results, decrypted, as a stream of documents.
    pub fn aggregate(&self, pipeline: impl IntoIterator<Item = Document>) -> Aggregate<'_, T> {
        let pipeline: Vec<Document> = pipeline.into_iter().collect();
        Aggregate {
            coll: self,
            cmd: doc! {"aggregate": self.name(), "pipeline": pipeline, "cursor": {}},
            exec: Exec::default(),
        }
    }

    /// The number of matching documents (the `count` command, which
    /// automatic encryption can analyze).
    pub fn count_documents(&self, filter: Document) -> CountDocuments<'_, T> {
        CountDocuments {
            coll: self,
            cmd: doc! {"count": self.name(), "query": filter},
            exec: Exec::default(),
        }
    }

    /// The distinct values of `field` among matching documents, decrypted.
    pub fn distinct(&self, field: &str, filter: Document) -> Distinct<'_, T> {
        Distinct {
            coll: self,
            cmd: doc! {"distinct": self.name(), "key": field, "query": filter},
            exec: Exec::default(),
        }
    }
}
