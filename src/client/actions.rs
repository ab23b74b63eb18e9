//! The operations of [`EncryptedCollection`], as the `mongodb` crate shapes
//! them: a method returns an action, options are chained on it, and
//! `.await` runs it (`coll.find(filter).sort(doc! {"_id": 1}).limit(5).await`).
//!
//! Each operation is written as the command the server documents, with
//! every option as its command field, and analysed (and encrypted) as such
//! by automatic encryption, fail closed. The analysed command is then taken
//! apart ([`Fields`]) into the driver's own typed operation, which runs it
//! with the driver's retryable reads and writes, the collection's and the
//! operation's read concern, write concern and read preference, server
//! selection, sessions and transactions, and `killCursors` when a cursor
//! is dropped early. Cursors decrypt as they go.

use super::auto::AutoEncrypter;
use super::collection::EncryptedCollection;
use super::command::Fields;
use crate::Error;
use bson::{Bson, Document, doc, oid::ObjectId};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use mongodb::ClientSession;
use mongodb::options::{
    AggregateOptions, Collation, CountOptions, DeleteOptions, DistinctOptions,
    FindOneAndDeleteOptions, FindOneAndReplaceOptions, FindOneAndUpdateOptions, FindOptions, Hint,
    InsertManyOptions, ReadConcern, ReplaceOptions, ReturnDocument, SelectionCriteria,
    UpdateOptions, WriteConcern,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::Arc;
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

/// How an operation runs besides its command: the session (and so the
/// transaction), the per-operation concerns and read preference. None of
/// them carries application data, so none is part of the analysed command;
/// unset, the collection's apply, as in the driver.
#[derive(Default)]
struct Exec<'a> {
    session: Option<&'a mut ClientSession>,
    read_concern: Option<ReadConcern>,
    selection_criteria: Option<SelectionCriteria>,
    write_concern: Option<WriteConcern>,
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

exec_setters!(session: Find, FindOne, InsertOne, InsertMany, Update, Replace, Delete,
    FindAndModify, Aggregate, CountDocuments, Distinct);
exec_setters!(reads: Find, FindOne, Aggregate, CountDocuments, Distinct);
exec_setters!(writes: InsertOne, InsertMany, Update, Replace, Delete, FindAndModify, Aggregate);

/// Where a cursor's batches come from: the driver's raw batch cursor, on
/// its own or in a session.
enum Batches<'a> {
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
async fn decrypted_cursor<'a, U>(
    auto: Arc<AutoEncrypter>,
    mut batches: Batches<'a>,
) -> Result<BoxStream<'a, Result<U, Error>>, Error>
where
    U: DeserializeOwned + Send + 'static,
{
    let first = match batches.next().await {
        Some(batch) => decrypt_batch(&auto, batch?).await?,
        None => VecDeque::new(),
    };
    Ok(stream::try_unfold(
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
    .boxed())
}

/// `find`: the matching documents, decrypted, as a stream that follows the
/// driver's cursor (dropping it early kills the cursor on the server).
#[must_use = "an action does nothing until awaited"]
pub struct Find<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Document,
    exec: Exec<'a>,
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

impl<'a, T> Find<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<BoxStream<'a, Result<T, Error>>, Error> {
        let mut f = Fields::new("find", self.coll.encrypt(self.cmd).await?);
        let filter = f.doc("filter")?.unwrap_or_default();
        let mut o = FindOptions::default();
        o.sort = f.doc("sort")?;
        o.projection = f.doc("projection")?;
        o.limit = f.i64("limit")?;
        o.skip = f.u64("skip")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.comment = f.bson("comment");
        o.max_time = f.millis("maxTimeMS")?;
        o.let_vars = f.doc("let")?;
        o.allow_disk_use = f.bool("allowDiskUse")?;
        o.batch_size = f.u32("batchSize")?;
        if f.bool("singleBatch")? == Some(true) {
            // The driver's spelling of a single batch: a negative limit.
            o.limit = Some(-o.limit.unwrap_or(1).abs());
        }
        f.finish()?;
        o.read_concern = self.exec.read_concern;
        o.selection_criteria = self.exec.selection_criteria;
        let coll = self.coll.documents();
        let auto = Arc::clone(self.coll.auto());
        let batches = match self.exec.session {
            None => Batches::Implicit(coll.find(filter).with_options(o).batch().await?),
            Some(s) => {
                let cursor = coll
                    .find(filter)
                    .with_options(o)
                    .session(&mut *s)
                    .batch()
                    .await?;
                Batches::Session(cursor, s)
            }
        };
        decrypted_cursor(auto, batches).await
    }
}

/// `find` of the first matching document.
#[must_use = "an action does nothing until awaited"]
pub struct FindOne<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Document,
    exec: Exec<'a>,
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
            exec: self.exec,
        }
        .run()
        .await?;
        found.next().await.transpose()
    }
}

/// `insert` of one document (an `_id` is generated when missing, as drivers do).
#[must_use = "an action does nothing until awaited"]
pub struct InsertOne<'a, T> {
    coll: &'a EncryptedCollection<T>,
    doc: Result<Document, Error>,
    cmd: Document,
    exec: Exec<'a>,
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
            exec: self.exec,
        };
        let ids = many.run().await?.inserted_ids;
        Ok(InsertOneResult {
            inserted_id: ids.into_iter().next().unwrap_or(Bson::Null),
        })
    }
}

/// `insert` of many documents, split into batches as drivers split them
/// under automatic encryption (2 MiB of documents, 100,000 at most), each
/// batch analysed, then inserted by the driver's `insert_many`.
#[must_use = "an action does nothing until awaited"]
pub struct InsertMany<'a, T> {
    coll: &'a EncryptedCollection<T>,
    docs: Vec<Result<Document, Error>>,
    cmd: Document,
    exec: Exec<'a>,
}

setters!(InsertMany via set: ordered, bypass_document_validation, comment);

impl<T> InsertMany<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn send(
        coll: &EncryptedCollection<T>,
        options: &Document,
        exec: &mut Exec<'_>,
        batch: Vec<Bson>,
    ) -> Result<(), Error> {
        let mut cmd = doc! {"insert": coll.name(), "documents": batch};
        cmd.extend(options.clone());
        if !cmd.contains_key("ordered") {
            cmd.insert("ordered", true);
        }
        let mut f = Fields::new("insert", coll.encrypt(cmd).await?);
        let docs = f.docs("documents")?.unwrap_or_default();
        let mut o = InsertManyOptions::default();
        o.ordered = f.bool("ordered")?;
        o.bypass_document_validation = f.bool("bypassDocumentValidation")?;
        o.comment = f.bson("comment");
        f.finish()?;
        o.write_concern = exec.write_concern.clone();
        let driver = coll.documents();
        with_session!(&mut exec.session, driver.insert_many(docs).with_options(o));
        Ok(())
    }

    async fn run(mut self) -> Result<InsertManyResult, Error> {
        let mut ids = Vec::new();
        let mut batch: Vec<Bson> = Vec::new();
        let mut batch_bytes = 0usize;
        for d in std::mem::take(&mut self.docs) {
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
                Self::send(
                    self.coll,
                    &self.cmd,
                    &mut self.exec,
                    std::mem::take(&mut batch),
                )
                .await?;
                batch_bytes = 0;
            }
            ids.push(d.get("_id").cloned().unwrap_or(Bson::Null));
            batch_bytes += size;
            batch.push(Bson::Document(d));
        }
        if !batch.is_empty() {
            Self::send(self.coll, &self.cmd, &mut self.exec, batch).await?;
        }
        Ok(InsertManyResult { inserted_ids: ids })
    }
}

/// `update` with operators (`update_one`, `update_many`).
#[must_use = "an action does nothing until awaited"]
pub struct Update<'a, T> {
    coll: &'a EncryptedCollection<T>,
    stmt: Result<Document, Error>,
    cmd: Document,
    exec: Exec<'a>,
}

/// `update` with a replacement document (`replace_one`).
#[must_use = "an action does nothing until awaited"]
pub struct Replace<'a, T> {
    coll: &'a EncryptedCollection<T>,
    stmt: Result<Document, Error>,
    cmd: Document,
    exec: Exec<'a>,
}

setters!(Update via set: bypass_document_validation, let_vars, comment);
setters!(Update via set_stmt: upsert, array_filters, hint, collation);
setters!(Replace via set: bypass_document_validation, let_vars, comment);
setters!(Replace via set_stmt: upsert, hint, collation);

/// The one statement of an analysed write command, and the command's own
/// fields left in `f`.
fn one_statement(f: &mut Fields, command: &'static str, field: &str) -> Result<Fields, Error> {
    let mut stmts = f.docs(field)?.unwrap_or_default();
    if stmts.len() != 1 {
        return Err(Error::UnsupportedOption {
            command,
            field: field.to_owned(),
            reason: format!("expected one statement, found {}", stmts.len()),
        });
    }
    // A single statement: ordered or not is the same.
    f.bool("ordered")?;
    Ok(Fields::statement(command, stmts.remove(0)))
}

async fn run_update<T>(
    coll: &EncryptedCollection<T>,
    stmt: Result<Document, Error>,
    options: Document,
    mut exec: Exec<'_>,
    replace: bool,
) -> Result<UpdateResult, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let mut cmd = doc! {"update": coll.name(), "updates": [stmt?], "ordered": true};
    cmd.extend(options);
    let mut f = Fields::new("update", coll.encrypt(cmd).await?);
    let mut s = one_statement(&mut f, "update", "updates")?;
    let bypass = f.bool("bypassDocumentValidation")?;
    let let_vars = f.doc("let")?;
    let comment = f.bson("comment");
    f.finish()?;
    let q = s.doc("q")?.unwrap_or_default();
    let u = s.doc("u")?.unwrap_or_default();
    let multi = s.bool("multi")?.unwrap_or(false);
    let upsert = s.bool("upsert")?;
    let hint = s.hint("hint")?;
    let collation = s.collation("collation")?;
    let driver = coll.documents();
    let r = if replace {
        s.finish()?;
        let mut o = ReplaceOptions::default();
        (o.upsert, o.hint, o.collation) = (upsert, hint, collation);
        (o.bypass_document_validation, o.let_vars, o.comment) = (bypass, let_vars, comment);
        o.write_concern = exec.write_concern.take();
        with_session!(&mut exec.session, driver.replace_one(q, u).with_options(o))
    } else {
        let mut o = UpdateOptions::default();
        o.array_filters = s.docs("arrayFilters")?;
        s.finish()?;
        (o.upsert, o.hint, o.collation) = (upsert, hint, collation);
        (o.bypass_document_validation, o.let_vars, o.comment) = (bypass, let_vars, comment);
        o.write_concern = exec.write_concern.take();
        if multi {
            with_session!(&mut exec.session, driver.update_many(q, u).with_options(o))
        } else {
            with_session!(&mut exec.session, driver.update_one(q, u).with_options(o))
        }
    };
    Ok(UpdateResult {
        matched_count: r.matched_count,
        modified_count: r.modified_count,
        upserted_id: r.upserted_id,
    })
}

impl<T> Update<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<UpdateResult, Error> {
        run_update(self.coll, self.stmt, self.cmd, self.exec, false).await
    }
}

impl<T> Replace<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<UpdateResult, Error> {
        run_update(self.coll, self.stmt, self.cmd, self.exec, true).await
    }
}

/// `delete` (`delete_one`, `delete_many`).
#[must_use = "an action does nothing until awaited"]
pub struct Delete<'a, T> {
    coll: &'a EncryptedCollection<T>,
    stmt: Result<Document, Error>,
    cmd: Document,
    exec: Exec<'a>,
}

setters!(Delete via set: let_vars, comment);
setters!(Delete via set_stmt: hint, collation);

impl<T> Delete<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<DeleteResult, Error> {
        let mut cmd = doc! {"delete": self.coll.name(), "deletes": [self.stmt?], "ordered": true};
        cmd.extend(self.cmd);
        let mut f = Fields::new("delete", self.coll.encrypt(cmd).await?);
        let mut s = one_statement(&mut f, "delete", "deletes")?;
        let mut o = DeleteOptions::default();
        o.let_vars = f.doc("let")?;
        o.comment = f.bson("comment");
        f.finish()?;
        let q = s.doc("q")?.unwrap_or_default();
        let limit = s.i64("limit")?.unwrap_or(0);
        o.hint = s.hint("hint")?;
        o.collation = s.collation("collation")?;
        s.finish()?;
        o.write_concern = self.exec.write_concern.take();
        let driver = self.coll.documents();
        let r = if limit == 1 {
            with_session!(&mut self.exec.session, driver.delete_one(q).with_options(o))
        } else {
            with_session!(
                &mut self.exec.session,
                driver.delete_many(q).with_options(o)
            )
        };
        Ok(DeleteResult {
            deleted_count: r.deleted_count,
        })
    }
}

/// `findAndModify` (`find_one_and_update`, `_replace`, `_delete`): the
/// document before the change (or after, with `return_document`), decrypted.
#[must_use = "an action does nothing until awaited"]
pub struct FindAndModify<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Result<Document, Error>,
    exec: Exec<'a>,
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
    async fn run(mut self) -> Result<Option<T>, Error> {
        let mut f = Fields::new("findAndModify", self.coll.encrypt(self.cmd?).await?);
        let query = f.doc("query")?.unwrap_or_default();
        let remove = f.bool("remove")?.unwrap_or(false);
        let update = f.doc("update")?;
        let sort = f.doc("sort")?;
        let projection = f.doc("fields")?;
        let max_time = f.millis("maxTimeMS")?;
        let hint = f.hint("hint")?;
        let collation = f.collation("collation")?;
        let let_vars = f.doc("let")?;
        let comment = f.bson("comment");
        let write_concern = self.exec.write_concern.take();
        let driver = self.coll.documents();
        let found = match update {
            None if remove => {
                f.finish()?;
                let mut o = FindOneAndDeleteOptions::default();
                (o.sort, o.projection, o.max_time, o.hint) = (sort, projection, max_time, hint);
                (o.collation, o.let_vars, o.comment) = (collation, let_vars, comment);
                o.write_concern = write_concern;
                with_session!(
                    &mut self.exec.session,
                    driver.find_one_and_delete(query).with_options(o)
                )
            }
            Some(u) if !remove => {
                let upsert = f.bool("upsert")?;
                let new = f.bool("new")?;
                let bypass = f.bool("bypassDocumentValidation")?;
                let return_document = new.map(|n| {
                    if n {
                        ReturnDocument::After
                    } else {
                        ReturnDocument::Before
                    }
                });
                if u.keys().next().is_some_and(|k| k.starts_with('$')) {
                    let mut o = FindOneAndUpdateOptions::default();
                    o.array_filters = f.docs("arrayFilters")?;
                    f.finish()?;
                    (o.sort, o.projection, o.max_time, o.hint) = (sort, projection, max_time, hint);
                    (o.collation, o.let_vars, o.comment) = (collation, let_vars, comment);
                    (o.upsert, o.return_document, o.bypass_document_validation) =
                        (upsert, return_document, bypass);
                    o.write_concern = write_concern;
                    with_session!(
                        &mut self.exec.session,
                        driver.find_one_and_update(query, u).with_options(o)
                    )
                } else {
                    f.finish()?;
                    let mut o = FindOneAndReplaceOptions::default();
                    (o.sort, o.projection, o.max_time, o.hint) = (sort, projection, max_time, hint);
                    (o.collation, o.let_vars, o.comment) = (collation, let_vars, comment);
                    (o.upsert, o.return_document, o.bypass_document_validation) =
                        (upsert, return_document, bypass);
                    o.write_concern = write_concern;
                    with_session!(
                        &mut self.exec.session,
                        driver.find_one_and_replace(query, u).with_options(o)
                    )
                }
            }
            _ => {
                return Err(Error::UnsupportedOption {
                    command: "findAndModify",
                    field: "update".into(),
                    reason: "exactly one of 'update' and 'remove'".into(),
                });
            }
        };
        match found {
            Some(d) => Ok(Some(bson::from_document(
                self.coll.auto().decrypt_reply(&d).await?,
            )?)),
            None => Ok(None),
        }
    }
}

/// `aggregate`: the results, decrypted, as a stream of documents.
#[must_use = "an action does nothing until awaited"]
pub struct Aggregate<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Document,
    exec: Exec<'a>,
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

impl<'a, T> Aggregate<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<BoxStream<'a, Result<Document, Error>>, Error> {
        let mut f = Fields::new("aggregate", self.coll.encrypt(self.cmd).await?);
        let pipeline = f.docs("pipeline")?.unwrap_or_default();
        let mut o = AggregateOptions::default();
        if let Some(cursor) = f.doc("cursor")? {
            let mut c = Fields::statement("aggregate", cursor);
            o.batch_size = c.u32("batchSize")?;
            c.finish()?;
        }
        o.allow_disk_use = f.bool("allowDiskUse")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.comment = f.bson("comment");
        o.max_time = f.millis("maxTimeMS")?;
        o.let_vars = f.doc("let")?;
        o.bypass_document_validation = f.bool("bypassDocumentValidation")?;
        f.finish()?;
        o.read_concern = self.exec.read_concern;
        o.selection_criteria = self.exec.selection_criteria;
        o.write_concern = self.exec.write_concern;
        let driver = self.coll.documents();
        let auto = Arc::clone(self.coll.auto());
        let batches = match self.exec.session {
            None => Batches::Implicit(driver.aggregate(pipeline).with_options(o).batch().await?),
            Some(s) => {
                let cursor = driver
                    .aggregate(pipeline)
                    .with_options(o)
                    .session(&mut *s)
                    .batch()
                    .await?;
                Batches::Session(cursor, s)
            }
        };
        decrypted_cursor(auto, batches).await
    }
}

/// `count` of the matching documents: analysed as the `count` command, run
/// by the driver's `count_documents` (whose `$match` is the analysed,
/// encrypted filter).
#[must_use = "an action does nothing until awaited"]
pub struct CountDocuments<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Document,
    exec: Exec<'a>,
}

setters!(CountDocuments via set: limit, skip, hint, collation, max_time, comment);

impl<T> CountDocuments<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<u64, Error> {
        let mut f = Fields::new("count", self.coll.encrypt(self.cmd).await?);
        let query = f.doc("query")?.unwrap_or_default();
        let mut o = CountOptions::default();
        o.limit = f.u64("limit")?;
        o.skip = f.u64("skip")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.max_time = f.millis("maxTimeMS")?;
        o.comment = f.bson("comment");
        f.finish()?;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let driver = self.coll.documents();
        Ok(with_session!(
            &mut self.exec.session,
            driver.count_documents(query).with_options(o)
        ))
    }
}

/// `distinct`: the distinct values of a field, decrypted.
#[must_use = "an action does nothing until awaited"]
pub struct Distinct<'a, T> {
    coll: &'a EncryptedCollection<T>,
    cmd: Document,
    exec: Exec<'a>,
}

setters!(Distinct via set: collation, max_time, comment);

impl<T> Distinct<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<Vec<Bson>, Error> {
        let mut f = Fields::new("distinct", self.coll.encrypt(self.cmd).await?);
        let key = match f.bson("key") {
            Some(Bson::String(k)) => k,
            _ => {
                return Err(Error::UnsupportedOption {
                    command: "distinct",
                    field: "key".into(),
                    reason: "expected a field name".into(),
                });
            }
        };
        let query = f.doc("query")?.unwrap_or_default();
        let mut o = DistinctOptions::default();
        o.collation = f.collation("collation")?;
        o.max_time = f.millis("maxTimeMS")?;
        o.comment = f.bson("comment");
        f.finish()?;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let driver = self.coll.documents();
        let values = with_session!(
            &mut self.exec.session,
            driver.distinct(key, query).with_options(o)
        );
        let reply = self
            .coll
            .auto()
            .decrypt_reply(&doc! {"values": values})
            .await?;
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
    Find => Result<BoxStream<'a, Result<T, Error>>, Error>,
    FindOne => Result<Option<T>, Error>,
    InsertOne => Result<InsertOneResult, Error>,
    InsertMany => Result<InsertManyResult, Error>,
    Update => Result<UpdateResult, Error>,
    Replace => Result<UpdateResult, Error>,
    Delete => Result<DeleteResult, Error>,
    FindAndModify => Result<Option<T>, Error>,
    Aggregate => Result<BoxStream<'a, Result<Document, Error>>, Error>,
    CountDocuments => Result<u64, Error>,
    Distinct => Result<Vec<Bson>, Error>,
}
