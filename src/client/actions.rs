//! The operations of [`EncryptedCollection`], as the `mongodb` crate shapes
//! them: a method returns an action, options are chained on it, and
//! `.await` runs it (`coll.find(filter).sort(doc! {"_id": 1}).limit(5).await`).
//! Each option becomes the command field the server documents; the command
//! then goes through automatic encryption like any other.

use super::collection::EncryptedCollection;
use crate::Error;
use bson::{Bson, Document, doc, oid::ObjectId};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use mongodb::options::{Collation, Hint, ReturnDocument};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;
use std::time::Duration;

/// The most plaintext bytes of documents in one auto-encrypted write batch
/// (the limit drivers apply with automatic encryption).
const MAX_ENCRYPTED_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The server's maxWriteBatchSize.
const MAX_WRITE_BATCH: usize = 100_000;

/// What `insert_one` did.
#[derive(Clone, Debug, PartialEq)]
pub struct InsertOneResult {
    /// The `_id` of the inserted document.
    pub inserted_id: Bson,
}

/// What `insert_many` did.
#[derive(Clone, Debug, PartialEq)]
pub struct InsertManyResult {
    /// The `_id`s, in order.
    pub inserted_ids: Vec<Bson>,
}

/// What an update or replace did.
#[derive(Clone, Debug, PartialEq)]
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
pub struct DeleteResult {
    /// Documents deleted.
    pub deleted_count: u64,
}

/// A count in a server reply (`n`, `nModified`): any numeric type the
/// server may use, 0 when absent or negative.
pub(crate) fn count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
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

command_fields!(
    Find,
    FindOne,
    InsertOne,
    InsertMany,
    Update,
    Replace,
    Delete,
    Aggregate,
    CountDocuments,
    Distinct
);

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

statement_fields!(Update, Replace, Delete);

/// `find`: the matching documents, decrypted, as a stream that follows the
/// cursor with `getMore`.
#[must_use = "an action does nothing until awaited"]
pub struct Find<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
}

setters!(Find via set: sort, projection, limit, skip, hint, collation, comment, max_time, let_vars, allow_disk_use);

impl<T> Find<'_, T> {
    /// How many documents the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.cmd
            .insert("batchSize", i32::try_from(size).unwrap_or(i32::MAX));
        self
    }
}

impl<T> Find<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<BoxStream<'static, Result<T, Error>>, Error> {
        let batch_size = self.cmd.get_i32("batchSize").ok();
        let reply = self.coll.db.run_command(self.cmd).await?;
        Ok(self
            .coll
            .cursor(reply, batch_size)
            .map(|d| d.and_then(EncryptedCollection::<T>::from_document))
            .boxed())
    }
}

/// `find` of the first matching document.
#[must_use = "an action does nothing until awaited"]
pub struct FindOne<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
}

setters!(FindOne via set: sort, projection, skip, hint, collation, comment, max_time, let_vars);

impl<T> FindOne<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Option<T>, Error> {
        let mut found = Find {
            coll: self.coll,
            cmd: self.cmd,
        }
        .await?;
        found.next().await.transpose()
    }
}

/// `insert` of one document (an `_id` is generated when missing, as drivers do).
#[must_use = "an action does nothing until awaited"]
pub struct InsertOne<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) doc: Result<Document, Error>,
    pub(super) cmd: Document,
}

setters!(InsertOne via set: bypass_document_validation, comment);

impl<T> InsertOne<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<InsertOneResult, Error> {
        let many = InsertMany {
            coll: self.coll,
            docs: vec![self.doc],
            cmd: self.cmd,
        };
        let ids = many.await?.inserted_ids;
        Ok(InsertOneResult {
            inserted_id: ids.into_iter().next().unwrap_or(Bson::Null),
        })
    }
}

/// `insert` of many documents, split into batches as drivers split them
/// under automatic encryption (2 MiB of documents, 100,000 at most).
#[must_use = "an action does nothing until awaited"]
pub struct InsertMany<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) docs: Vec<Result<Document, Error>>,
    pub(super) cmd: Document,
}

setters!(InsertMany via set: ordered, bypass_document_validation, comment);

impl<T> InsertMany<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<InsertManyResult, Error> {
        let send = |batch: Vec<Bson>| {
            let mut cmd = doc! {"insert": self.coll.name(), "documents": batch};
            cmd.extend(self.cmd.clone());
            if !cmd.contains_key("ordered") {
                cmd.insert("ordered", true);
            }
            self.coll.db.run_command(cmd)
        };
        let mut ids = Vec::new();
        let mut batch: Vec<Bson> = Vec::new();
        let mut batch_bytes = 0usize;
        for d in self.docs {
            let mut d = d?;
            if !d.contains_key("_id") {
                let mut with_id = doc! {"_id": ObjectId::new()};
                with_id.extend(d);
                d = with_id;
            }
            let size = bson::to_vec(&d)?.len();
            // A batch always holds at least one document.
            if !batch.is_empty()
                && (batch_bytes + size > MAX_ENCRYPTED_BATCH_BYTES
                    || batch.len() == MAX_WRITE_BATCH)
            {
                send(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            ids.push(d.get("_id").cloned().unwrap_or(Bson::Null));
            batch_bytes += size;
            batch.push(Bson::Document(d));
        }
        if !batch.is_empty() {
            send(batch).await?;
        }
        Ok(InsertManyResult { inserted_ids: ids })
    }
}

/// `update` with operators (`update_one`, `update_many`).
#[must_use = "an action does nothing until awaited"]
pub struct Update<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
}

/// `update` with a replacement document (`replace_one`).
#[must_use = "an action does nothing until awaited"]
pub struct Replace<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
}

setters!(Update via set: bypass_document_validation, let_vars, comment);
setters!(Update via set_stmt: upsert, array_filters, hint, collation);
setters!(Replace via set: bypass_document_validation, let_vars, comment);
setters!(Replace via set_stmt: upsert, hint, collation);

async fn run_update<T>(
    coll: &EncryptedCollection<T>,
    stmt: Result<Document, Error>,
    options: Document,
) -> Result<UpdateResult, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let mut cmd = doc! {"update": coll.name(), "updates": [stmt?], "ordered": true};
    cmd.extend(options);
    let reply = coll.db.run_command(cmd).await?;
    let upserted_id = reply
        .get_array("upserted")
        .ok()
        .and_then(|u| u.first())
        .and_then(Bson::as_document)
        .and_then(|d| d.get("_id").cloned());
    Ok(UpdateResult {
        matched_count: count(&reply, "n").saturating_sub(upserted_id.is_some() as u64),
        modified_count: count(&reply, "nModified"),
        upserted_id,
    })
}

impl<T> Update<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<UpdateResult, Error> {
        run_update(self.coll, self.stmt, self.cmd).await
    }
}

impl<T> Replace<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<UpdateResult, Error> {
        run_update(self.coll, self.stmt, self.cmd).await
    }
}

/// `delete` (`delete_one`, `delete_many`).
#[must_use = "an action does nothing until awaited"]
pub struct Delete<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
}

setters!(Delete via set: let_vars, comment);
setters!(Delete via set_stmt: hint, collation);

impl<T> Delete<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<DeleteResult, Error> {
        let mut cmd = doc! {"delete": self.coll.name(), "deletes": [self.stmt?], "ordered": true};
        cmd.extend(self.cmd);
        let reply = self.coll.db.run_command(cmd).await?;
        Ok(DeleteResult {
            deleted_count: count(&reply, "n"),
        })
    }
}

/// `findAndModify` (`find_one_and_update`, `_replace`, `_delete`): the
/// document before the change (or after, with `return_document`), decrypted.
#[must_use = "an action does nothing until awaited"]
pub struct FindAndModify<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Result<Document, Error>,
}

impl<T> FindAndModify<'_, T> {
    /// The command may already hold the error of converting the
    /// replacement; options apply when there is a command.
    fn set(mut self, key: &str, value: impl Into<Bson>) -> Self {
        // findAndModify calls the projection `fields`.
        let key = if key == "projection" { "fields" } else { key };
        if let Ok(cmd) = &mut self.cmd {
            cmd.insert(key, value.into());
        }
        self
    }
}

setters!(FindAndModify via set: sort, projection, upsert, return_document, array_filters, hint,
    collation, bypass_document_validation, max_time, let_vars, comment);

impl<T> FindAndModify<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Option<T>, Error> {
        let reply = self.coll.db.run_command(self.cmd?).await?;
        match reply.get("value") {
            Some(Bson::Document(d)) => {
                Ok(Some(EncryptedCollection::<T>::from_document(d.clone())?))
            }
            _ => Ok(None),
        }
    }
}

/// `aggregate`: the results, decrypted, as a stream of documents.
#[must_use = "an action does nothing until awaited"]
pub struct Aggregate<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
}

setters!(Aggregate via set: allow_disk_use, hint, collation, comment, max_time, let_vars, bypass_document_validation);

impl<T> Aggregate<'_, T> {
    /// How many documents the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.cmd.insert(
            "cursor",
            doc! {"batchSize": i32::try_from(size).unwrap_or(i32::MAX)},
        );
        self
    }
}

impl<T> Aggregate<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<BoxStream<'static, Result<Document, Error>>, Error> {
        let batch_size = self
            .cmd
            .get_document("cursor")
            .ok()
            .and_then(|c| c.get_i32("batchSize").ok());
        let reply = self.coll.db.run_command(self.cmd).await?;
        Ok(self.coll.cursor(reply, batch_size))
    }
}

/// `count` of the matching documents (the command automatic encryption can
/// analyze, unlike the `$group` pipeline drivers use for `countDocuments`).
#[must_use = "an action does nothing until awaited"]
pub struct CountDocuments<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
}

setters!(CountDocuments via set: limit, skip, hint, collation, max_time, comment);

impl<T> CountDocuments<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<u64, Error> {
        let reply = self.coll.db.run_command(self.cmd).await?;
        Ok(count(&reply, "n"))
    }
}

/// `distinct`: the distinct values of a field, decrypted.
#[must_use = "an action does nothing until awaited"]
pub struct Distinct<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
}

setters!(Distinct via set: collation, max_time, comment);

impl<T> Distinct<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Vec<Bson>, Error> {
        let reply = self.coll.db.run_command(self.cmd).await?;
        Ok(reply.get_array("values").cloned().unwrap_or_default())
    }
}

/// The operations: each returns its action, which runs when awaited.
impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn to_document(value: &T) -> Result<Document, Error> {
        Ok(bson::to_document(value)?)
    }

    fn from_document(doc: Document) -> Result<T, Error> {
        Ok(bson::from_document(doc)?)
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
        }
    }

    /// The documents matching `filter`, as a stream that follows the cursor
    /// (`getMore`) and decrypts every batch.
    pub fn find(&self, filter: Document) -> Find<'_, T> {
        Find {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter},
        }
    }

    /// The first document matching `filter`.
    pub fn find_one(&self, filter: Document) -> FindOne<'_, T> {
        FindOne {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter, "limit": 1i64, "singleBatch": true},
        }
    }

    fn update(&self, filter: Document, u: Result<Document, Error>, multi: bool) -> Update<'_, T> {
        Update {
            coll: self,
            stmt: u.map(|u| doc! {"q": filter, "u": u, "multi": multi, "upsert": false}),
            cmd: Document::new(),
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
        }
    }

    fn delete(&self, filter: Document, limit: i32) -> Delete<'_, T> {
        Delete {
            coll: self,
            stmt: Ok(doc! {"q": filter, "limit": limit}),
            cmd: Document::new(),
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
        }
    }

    /// The number of matching documents (the `count` command, which
    /// automatic encryption can analyze).
    pub fn count_documents(&self, filter: Document) -> CountDocuments<'_, T> {
        CountDocuments {
            coll: self,
            cmd: doc! {"count": self.name(), "query": filter},
        }
    }

    /// The distinct values of `field` among matching documents, decrypted.
    pub fn distinct(&self, field: &str, filter: Document) -> Distinct<'_, T> {
        Distinct {
            coll: self,
            cmd: doc! {"distinct": self.name(), "key": field, "query": filter},
        }
    }
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
                Box::pin(self.run())
            }
        }
    )*};
}

into_future! {
    Find => Result<BoxStream<'static, Result<T, Error>>, Error>,
    FindOne => Result<Option<T>, Error>,
    InsertOne => Result<InsertOneResult, Error>,
    InsertMany => Result<InsertManyResult, Error>,
    Update => Result<UpdateResult, Error>,
    Replace => Result<UpdateResult, Error>,
    Delete => Result<DeleteResult, Error>,
    FindAndModify => Result<Option<T>, Error>,
    Aggregate => Result<BoxStream<'static, Result<Document, Error>>, Error>,
    CountDocuments => Result<u64, Error>,
    Distinct => Result<Vec<Bson>, Error>,
}
