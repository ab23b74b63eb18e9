//! The writing operations: inserts, updates, replacements, deletes and
//! find-and-modify.

use super::macros::{collation_value, hint_value, millis};
use super::results::{DeleteResult, InsertManyResult, InsertOneResult, UpdateResult};
use super::{Access, Exec, carries_encryption_information, reply_count, run_sent};
use crate::client::auto::InsertDocuments;
use crate::client::collection::EncryptedCollection;
use crate::client::command::Fields;
use crate::{ClientError, Error};
use bson::{Bson, Document, RawDocumentBuf, doc};
use futures_util::future::BoxFuture;
use mongodb::ClientSession;
use mongodb::options::{
    Collation, DeleteOptions, FindOneAndDeleteOptions, FindOneAndReplaceOptions,
    FindOneAndUpdateOptions, Hint, InsertManyOptions, ReplaceOptions, ReturnDocument,
    UpdateOptions, WriteConcern,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;
use std::time::Duration;

/// The most plaintext bytes of documents in one auto-encrypted write batch
/// (the limit drivers apply with automatic encryption).
const MAX_ENCRYPTED_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The server's maxWriteBatchSize.
const MAX_WRITE_BATCH: usize = 100_000;

/// `d` with an `_id` first, generated when it has none, as drivers do
/// before an insert (so the caller knows every inserted `_id`).
pub(super) fn with_generated_id(d: Document) -> Document {
    if d.contains_key("_id") {
        return d;
    }
    let mut with_id = doc! {"_id": bson::oid::ObjectId::new()};
    with_id.extend(d);
    with_id
}

/// [`with_generated_id`] of a serialized document: the same bytes when it
/// has an `_id`, else an `ObjectId` `_id` first and then its elements.
/// A document with a top-level name given twice is refused: which of the
/// values is inserted (and which `_id` is reported) would depend on who
/// reads it.
fn raw_with_generated_id(d: RawDocumentBuf) -> Result<RawDocumentBuf, Error> {
    let mut names = Vec::new();
    for element in d.iter_elements() {
        names.push(element?.key());
    }
    if !crate::client::fast_path::distinct(&mut names) {
        return Err(Error::Client(ClientError::InvalidArgument {
            argument: "document",
            reason: "a top-level field name is given twice",
        }));
    }
    if names.binary_search(&"_id").is_ok() {
        return Ok(d);
    }
    let mut with_id = RawDocumentBuf::new();
    with_id.append("_id", bson::oid::ObjectId::new());
    for element in d.iter() {
        let (name, value) = element?;
        with_id.append(name, value.to_raw_bson());
    }
    Ok(with_id)
}

command_fields!(InsertOne, InsertMany, Update, Replace, Delete);
statement_fields!(Update, Replace, Delete);
exec_setters!(session: InsertOne, InsertMany, Update, Replace, Delete, FindAndModify);
exec_setters!(writes: InsertOne, InsertMany, Update, Replace, Delete, FindAndModify);

/// `insert` of one document (an `_id` is generated when missing, as drivers do).
#[must_use = "an action does nothing until awaited"]
pub struct InsertOne<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) doc: Result<RawDocumentBuf, Error>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
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
    pub(super) coll: &'a EncryptedCollection<T>,
    /// Each document serialized straight from the application's value
    /// (as the driver serializes it), never built as a `Document` first.
    pub(super) docs: Vec<Result<RawDocumentBuf, Error>>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
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
        batch: Vec<RawDocumentBuf>,
    ) -> Result<(), Error> {
        // The command's fields besides `insert` and `documents`, in the
        // order the command has them.
        let mut fields = options.clone();
        if !fields.contains_key("ordered") {
            fields.insert("ordered", true);
        }
        let documents = coll.encrypt_insert(batch, &fields).await?;
        match documents {
            // Analysis leaves these fields as they are: taken apart from
            // here, as from the analysed command.
            InsertDocuments::Raw(docs) => {
                let f = Fields::statement("insert", fields);
                let o = insert_options(f, exec)?;
                let driver = coll.documents().clone_with_type::<RawDocumentBuf>();
                with_session!(&mut exec.session, driver.insert_many(docs).with_options(o));
            }
            // A Queryable Encryption insert: sent as analysis made it.
            // One command per document: mongod takes a single document per
            // insert that carries `encryptionInformation` (error 6371202).
            // In order, stopping at the first failure, as an ordered insert.
            InsertDocuments::Command(sent) if carries_encryption_information(&sent) => {
                for one in single_document_inserts(sent) {
                    run_sent(coll, one, exec, Access::Write).await?;
                }
            }
            InsertDocuments::Command(sent) => {
                let mut f = Fields::new("insert", sent);
                let docs = f.docs("documents")?.unwrap_or_default();
                let o = insert_options(f, exec)?;
                let driver = coll.documents();
                with_session!(&mut exec.session, driver.insert_many(docs).with_options(o));
            }
        }
        Ok(())
    }

    async fn run(mut self) -> Result<InsertManyResult, Error> {
        let mut ids = Vec::new();
        let mut batch: Vec<RawDocumentBuf> = Vec::new();
        let mut batch_bytes = 0usize;
        for raw in std::mem::take(&mut self.docs) {
            // Serialized once: its size splits the batches, and it is what
            // the fast path encrypts and sends.
            let raw = raw_with_generated_id(raw?)?;
            let id = match raw.get("_id")? {
                Some(id) => Bson::try_from(id.to_raw_bson())?,
                None => Bson::Null,
            };
            let size = raw.as_bytes().len();
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
            ids.push(id);
            batch_bytes += size;
            batch.push(raw);
        }
        if !batch.is_empty() {
            Self::send(self.coll, &self.cmd, &mut self.exec, batch).await?;
        }
        Ok(InsertManyResult { inserted_ids: ids })
    }
}

/// The driver's options of an analysed `insert` (its fields after
/// `documents`), every field taken.
fn insert_options(mut f: Fields, exec: &Exec<'_>) -> Result<InsertManyOptions, Error> {
    let mut o = InsertManyOptions::default();
    o.ordered = f.bool("ordered")?;
    o.bypass_document_validation = f.bool("bypassDocumentValidation")?;
    o.comment = f.bson("comment");
    f.finish()?;
    o.write_concern = exec.write_concern.clone();
    Ok(o)
}

/// `update` with operators (`update_one`, `update_many`).
#[must_use = "an action does nothing until awaited"]
pub struct Update<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

/// `update` with a replacement document (`replace_one`).
#[must_use = "an action does nothing until awaited"]
pub struct Replace<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
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
        return Err(Error::Client(ClientError::UnsupportedOption {
            command,
            field: field.to_owned(),
            reason: format!("expected one statement, found {}", stmts.len()),
        }));
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
    let sent = coll.encrypt(cmd).await?;
    if carries_encryption_information(&sent) {
        let reply = run_sent(coll, sent, &mut exec, Access::Write).await?;
        return Ok(update_result(&reply));
    }
    let mut f = Fields::new("update", sent);
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

/// What an `update` sent as it is did, from its reply (`n` counts the
/// upserted document too, as the driver reads it).
fn update_result(reply: &Document) -> UpdateResult {
    let upserted_id = reply
        .get_array("upserted")
        .ok()
        .and_then(|u| u.first())
        .and_then(Bson::as_document)
        .and_then(|u| u.get("_id"))
        .cloned();
    let n = reply_count(reply, "n");
    UpdateResult {
        matched_count: n.saturating_sub(u64::from(upserted_id.is_some())),
        modified_count: reply_count(reply, "nModified"),
        upserted_id,
    }
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
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) stmt: Result<Document, Error>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
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
        let sent = self.coll.encrypt(cmd).await?;
        if carries_encryption_information(&sent) {
            let reply = run_sent(self.coll, sent, &mut self.exec, Access::Write).await?;
            return Ok(DeleteResult {
                deleted_count: reply_count(&reply, "n"),
            });
        }
        let mut f = Fields::new("delete", sent);
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
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Result<Document, Error>,
    pub(super) exec: Exec<'a>,
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
        let sent = self.coll.encrypt(self.cmd?).await?;
        if carries_encryption_information(&sent) {
            // The reply comes back decrypted.
            let reply = run_sent(self.coll, sent, &mut self.exec, Access::Write).await?;
            return match reply.get("value") {
                None | Some(Bson::Null) => Ok(None),
                Some(Bson::Document(d)) => Ok(Some(bson::from_document(d.clone())?)),
                Some(_) => Err(Error::Client(ClientError::UnsupportedOption {
                    command: "findAndModify",
                    field: "value".into(),
                    reason: "the reply's value is not a document".into(),
                })),
            };
        }
        let mut f = Fields::new("findAndModify", sent);
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
        // The options every form of findAndModify has, into its own
        // options type (one of the three arms runs).
        macro_rules! common_options {
            ($o:ident) => {
                ($o.sort, $o.projection, $o.max_time, $o.hint) = (sort, projection, max_time, hint);
                ($o.collation, $o.let_vars, $o.comment) = (collation, let_vars, comment);
                $o.write_concern = write_concern;
            };
        }
        let found = match update {
            None if remove => {
                f.finish()?;
                let mut o = FindOneAndDeleteOptions::default();
                common_options!(o);
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
                    common_options!(o);
                    (o.upsert, o.return_document, o.bypass_document_validation) =
                        (upsert, return_document, bypass);
                    with_session!(
                        &mut self.exec.session,
                        driver.find_one_and_update(query, u).with_options(o)
                    )
                } else {
                    f.finish()?;
                    let mut o = FindOneAndReplaceOptions::default();
                    common_options!(o);
                    (o.upsert, o.return_document, o.bypass_document_validation) =
                        (upsert, return_document, bypass);
                    with_session!(
                        &mut self.exec.session,
                        driver.find_one_and_replace(query, u).with_options(o)
                    )
                }
            }
            _ => {
                return Err(Error::Client(ClientError::UnsupportedOption {
                    command: "findAndModify",
                    field: "update".into(),
                    reason: "exactly one of 'update' and 'remove'".into(),
                }));
            }
        };
        match found {
            Some(d) => Ok(Some(bson::from_document(
                self.coll
                    .auto()
                    .client_encryption()
                    .decrypt_document(&d)
                    .await?,
            )?)),
            None => Ok(None),
        }
    }
}

into_future! {
    InsertOne => Result<InsertOneResult, Error>,
    InsertMany => Result<InsertManyResult, Error>,
    Update => Result<UpdateResult, Error>,
    Replace => Result<UpdateResult, Error>,
    Delete => Result<DeleteResult, Error>,
    FindAndModify => Result<Option<T>, Error>,
}

/// The writing operations: each returns its action, which runs when awaited.
impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn to_document(value: &T) -> Result<Document, Error> {
        Ok(bson::to_document(value)?)
    }

    /// `value` serialized as the driver serializes a document it inserts.
    fn to_raw(value: &T) -> Result<RawDocumentBuf, Error> {
        Ok(bson::to_raw_document_buf(value)?)
    }

    fn check_operators(update: &Document, want: bool) -> Result<(), Error> {
        let has = update.keys().next().is_some_and(|k| k.starts_with('$'));
        if has != want {
            return Err(if want {
                Error::Client(ClientError::InvalidArgument {
                    argument: "update document",
                    reason: "it must contain only update operators",
                })
            } else {
                Error::Client(ClientError::InvalidArgument {
                    argument: "replacement document",
                    reason: "it must not contain update operators",
                })
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
            doc: Self::to_raw(value),
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
            docs: values.into_iter().map(Self::to_raw).collect(),
            cmd: Document::new(),
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
}

/// A finalized Queryable Encryption `insert` split into one command per
/// document, each with the same fields (`encryptionInformation`
/// included): the payloads of a document do not depend on the others. A
/// command without a `documents` array is returned as it is (the server
/// refuses it).
fn single_document_inserts(mut sent: Document) -> Vec<Document> {
    let documents = match sent.get_array_mut("documents") {
        Ok(documents) if documents.len() > 1 => std::mem::take(documents),
        _ => return vec![sent],
    };
    // `sent` now holds an empty `documents` where the array was: each
    // command replaces it in place, so the fields keep their order.
    documents
        .into_iter()
        .map(|document| {
            let mut one = sent.clone();
            one.insert("documents", vec![document]);
            one
        })
        .collect()
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
