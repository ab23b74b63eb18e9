//! `EncryptedClient` → `EncryptedDatabase` → `EncryptedCollection<T>`: the
//! `mongodb` crate's shape, with automatic encryption of every command and
//! decryption of every reply.

use super::AutoEncrypter;
use super::actions::{
    Aggregate, CountDocuments, Delete, Distinct, Find, FindAndModify, FindOne, InsertMany,
    InsertOne, Replace, Update,
};
use crate::Error;
use bson::{Bson, Document, doc};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

fn driver(e: mongodb::error::Error) -> Error {
    Error::from(e)
}

/// A `mongodb::Client` whose commands are encrypted by an [`AutoEncrypter`].
#[derive(Debug)]
pub struct EncryptedClient {
    client: mongodb::Client,
    auto: Arc<AutoEncrypter>,
}

impl Clone for EncryptedClient {
    fn clone(&self) -> Self {
        EncryptedClient {
            client: self.client.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

impl EncryptedClient {
    /// Wraps `client`. Unless `auto` already reads server schemas or its
    /// schema map is declared complete (`schema_map_only`), namespaces
    /// missing from the map are looked up on this client's server
    /// (`listCollections`, cached), as the drivers do.
    pub fn new(client: mongodb::Client, auto: AutoEncrypter) -> Self {
        let auto = if auto.has_remote_schemas() || auto.options().schema_map_only {
            auto
        } else {
            auto.with_remote_schemas(Arc::new(super::MongoSchemaFetcher::new(client.clone())))
        };
        EncryptedClient {
            client,
            auto: Arc::new(auto),
        }
    }

    /// A database.
    pub fn database(&self, name: &str) -> EncryptedDatabase {
        EncryptedDatabase {
            db: self.client.database(name),
            auto: Arc::clone(&self.auto),
        }
    }

    /// The automatic encrypter (key management through `client_encryption()`).
    pub fn auto_encrypter(&self) -> &AutoEncrypter {
        &self.auto
    }
}

/// A database of an [`EncryptedClient`].
#[derive(Debug)]
pub struct EncryptedDatabase {
    db: mongodb::Database,
    auto: Arc<AutoEncrypter>,
}

impl Clone for EncryptedDatabase {
    fn clone(&self) -> Self {
        EncryptedDatabase {
            db: self.db.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

impl EncryptedDatabase {
    /// A collection of `T` (any serde type).
    pub fn collection<T>(&self, name: &str) -> EncryptedCollection<T> {
        EncryptedCollection {
            db: self.clone(),
            name: name.to_owned(),
            _t: PhantomData,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.db.name()
    }

    /// Runs a command with automatic encryption and returns the decrypted reply.
    pub async fn run_command(&self, command: Document) -> Result<Document, Error> {
        let sent = self.auto.encrypt_command(self.db.name(), &command).await?;
        let reply = self.db.run_command(sent).await.map_err(driver)?;
        let reply = self.auto.decrypt_reply(&reply).await?;
        if let Ok(errors) = reply.get_array("writeErrors")
            && let Some(Bson::Document(first)) = errors.first()
        {
            return Err(Error::Write {
                code: first.get_i32("code").unwrap_or_default(),
                message: first.get_str("errmsg").unwrap_or("unknown").to_owned(),
                details: first.clone(),
            });
        }
        Ok(reply)
    }
}

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

pub(super) fn count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// A collection with automatic encryption, shaped like `mongodb::Collection<T>`.
#[derive(Debug)]
pub struct EncryptedCollection<T> {
    pub(super) db: EncryptedDatabase,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for EncryptedCollection<T> {
    fn clone(&self) -> Self {
        EncryptedCollection {
            db: self.db.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn to_document(value: &T) -> Result<Document, Error> {
        Ok(bson::to_document(value)?)
    }

    pub(super) fn from_document(doc: Document) -> Result<T, Error> {
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
            cmd: doc! {"find": &self.name, "filter": filter},
        }
    }

    /// The first document matching `filter`.
    pub fn find_one(&self, filter: Document) -> FindOne<'_, T> {
        FindOne {
            coll: self,
            cmd: doc! {"find": &self.name, "filter": filter, "limit": 1i64, "singleBatch": true},
        }
    }

    /// Follows a cursor reply: its first batch, then `getMore` until the
    /// cursor is exhausted, every batch decrypted.
    pub(super) fn cursor(
        &self,
        reply: Document,
        batch_size: Option<i32>,
    ) -> BoxStream<'static, Result<Document, Error>> {
        let cursor = reply.get_document("cursor").cloned().unwrap_or_default();
        let batch: VecDeque<Document> = cursor
            .get_array("firstBatch")
            .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
            .unwrap_or_default();
        let id = cursor.get_i64("id").unwrap_or(0);
        let (db, name) = (self.db.clone(), self.name.clone());
        stream::try_unfold((batch, id), move |(mut batch, mut id)| {
            let (db, name) = (db.clone(), name.clone());
            async move {
                loop {
                    if let Some(d) = batch.pop_front() {
                        return Ok(Some((d, (batch, id))));
                    }
                    if id == 0 {
                        return Ok(None);
                    }
                    // getMore is sent as is (bypassed); its batch is decrypted.
                    let mut get_more = doc! {"getMore": id, "collection": &name};
                    if let Some(n) = batch_size {
                        get_more.insert("batchSize", n);
                    }
                    let reply = db.run_command(get_more).await?;
                    let c = reply.get_document("cursor").cloned().unwrap_or_default();
                    batch = c
                        .get_array("nextBatch")
                        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
                        .unwrap_or_default();
                    id = c.get_i64("id").unwrap_or(0);
                }
            }
        })
        .boxed()
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
                let mut cmd = doc! {"findAndModify": &self.name};
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
            cmd: doc! {"aggregate": &self.name, "pipeline": pipeline, "cursor": {}},
        }
    }

    /// The number of matching documents (the `count` command, which
    /// automatic encryption can analyze).
    pub fn count_documents(&self, filter: Document) -> CountDocuments<'_, T> {
        CountDocuments {
            coll: self,
            cmd: doc! {"count": &self.name, "query": filter},
        }
    }

    /// The distinct values of `field` among matching documents, decrypted.
    pub fn distinct(&self, field: &str, filter: Document) -> Distinct<'_, T> {
        Distinct {
            coll: self,
            cmd: doc! {"distinct": &self.name, "key": field, "query": filter},
        }
    }
}
