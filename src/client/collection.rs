//! `EncryptedClient` → `EncryptedDatabase` → `EncryptedCollection<T>`: the
//! `mongodb` crate's shape, with automatic encryption of every command and
//! decryption of every reply.

use super::AutoEncrypter;
use crate::Error;
use crate::keyvault::KeyVault;
use bson::{Bson, Document, doc, oid::ObjectId};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

fn driver(e: mongodb::error::Error) -> Error {
    Error::Driver(e.to_string())
}

/// A `mongodb::Client` whose commands are encrypted by an [`AutoEncrypter`].
#[derive(Debug)]
pub struct EncryptedClient<V> {
    client: mongodb::Client,
    auto: Arc<AutoEncrypter<V>>,
}

impl<V> Clone for EncryptedClient<V> {
    fn clone(&self) -> Self {
        EncryptedClient {
            client: self.client.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

impl<V: KeyVault + 'static> EncryptedClient<V> {
    /// Wraps `client`.
    pub fn new(client: mongodb::Client, auto: AutoEncrypter<V>) -> Self {
        EncryptedClient {
            client,
            auto: Arc::new(auto),
        }
    }

    /// A database.
    pub fn database(&self, name: &str) -> EncryptedDatabase<V> {
        EncryptedDatabase {
            db: self.client.database(name),
            auto: Arc::clone(&self.auto),
        }
    }

    /// The automatic encrypter (key management through `client_encryption()`).
    pub fn auto_encrypter(&self) -> &AutoEncrypter<V> {
        &self.auto
    }
}

/// A database of an [`EncryptedClient`].
#[derive(Debug)]
pub struct EncryptedDatabase<V> {
    db: mongodb::Database,
    auto: Arc<AutoEncrypter<V>>,
}

impl<V> Clone for EncryptedDatabase<V> {
    fn clone(&self) -> Self {
        EncryptedDatabase {
            db: self.db.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

impl<V: KeyVault + 'static> EncryptedDatabase<V> {
    /// A collection of `T` (any serde type).
    pub fn collection<T>(&self, name: &str) -> EncryptedCollection<T, V> {
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
            return Err(Error::Driver(format!(
                "write error {}: {}",
                first.get_i32("code").unwrap_or_default(),
                first.get_str("errmsg").unwrap_or("unknown")
            )));
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

/// The most plaintext bytes of documents in one auto-encrypted write batch
/// (the limit drivers apply with automatic encryption).
const MAX_ENCRYPTED_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The server's maxWriteBatchSize.
const MAX_WRITE_BATCH: usize = 100_000;

fn count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Int64(n)) => *n as u64,
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// A collection with automatic encryption, shaped like `mongodb::Collection<T>`.
#[derive(Debug)]
pub struct EncryptedCollection<T, V> {
    db: EncryptedDatabase<V>,
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T, V> Clone for EncryptedCollection<T, V> {
    fn clone(&self) -> Self {
        EncryptedCollection {
            db: self.db.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<T, V> EncryptedCollection<T, V>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    V: KeyVault + 'static,
{
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn to_document(value: &T) -> Result<Document, Error> {
        bson::to_document(value).map_err(|e| Error::InvalidValue(e.to_string()))
    }

    fn from_document(doc: Document) -> Result<T, Error> {
        bson::from_document(doc).map_err(|e| Error::InvalidValue(e.to_string()))
    }

    /// Inserts a document (an `_id` is generated when missing, as drivers do).
    pub async fn insert_one(&self, value: &T) -> Result<InsertOneResult, Error> {
        let ids = self.insert_many(std::iter::once(value)).await?.inserted_ids;
        Ok(InsertOneResult {
            inserted_id: ids.into_iter().next().unwrap_or(Bson::Null),
        })
    }

    /// Inserts documents in one command.
    pub async fn insert_many<'a>(
        &self,
        values: impl IntoIterator<Item = &'a T>,
    ) -> Result<InsertManyResult, Error>
    where
        T: 'a,
    {
        let mut ids = Vec::new();
        let mut batch: Vec<Bson> = Vec::new();
        let mut batch_bytes = 0usize;
        for v in values {
            let mut d = Self::to_document(v)?;
            if !d.contains_key("_id") {
                let mut with_id = doc! {"_id": ObjectId::new()};
                with_id.extend(d);
                d = with_id;
            }
            let size = bson::to_vec(&d)
                .map_err(|e| Error::InvalidValue(e.to_string()))?
                .len();
            // Split as drivers do with automatic encryption: a batch holds at
            // most 2 MiB of documents (always at least one) and 100,000 of them.
            if !batch.is_empty()
                && (batch_bytes + size > MAX_ENCRYPTED_BATCH_BYTES
                    || batch.len() == MAX_WRITE_BATCH)
            {
                self.insert_batch(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            ids.push(d.get("_id").cloned().unwrap_or(Bson::Null));
            batch_bytes += size;
            batch.push(Bson::Document(d));
        }
        if !batch.is_empty() {
            self.insert_batch(batch).await?;
        }
        Ok(InsertManyResult { inserted_ids: ids })
    }

    async fn insert_batch(&self, docs: Vec<Bson>) -> Result<(), Error> {
        self.db
            .run_command(doc! {"insert": &self.name, "documents": docs, "ordered": true})
            .await?;
        Ok(())
    }

    /// The documents matching `filter`, as a stream that follows the cursor
    /// (`getMore`) and decrypts every batch.
    pub async fn find(
        &self,
        filter: Document,
    ) -> Result<BoxStream<'static, Result<T, Error>>, Error> {
        self.find_with(doc! {"filter": filter}).await
    }

    /// `find` with extra command fields (`sort`, `limit`, `skip`,
    /// `projection`, `batchSize`, …).
    pub async fn find_with(
        &self,
        options: Document,
    ) -> Result<BoxStream<'static, Result<T, Error>>, Error> {
        let mut cmd = doc! {"find": &self.name};
        cmd.extend(options);
        let reply = self.db.run_command(cmd).await?;
        Ok(self
            .cursor(reply)
            .map(|d| d.and_then(Self::from_document))
            .boxed())
    }

    fn cursor(&self, reply: Document) -> BoxStream<'static, Result<Document, Error>> {
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
                    let reply = db
                        .run_command(doc! {"getMore": id, "collection": &name})
                        .await?;
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

    /// The first document matching `filter`.
    pub async fn find_one(&self, filter: Document) -> Result<Option<T>, Error> {
        let mut s = self
            .find_with(doc! {"filter": filter, "limit": 1, "singleBatch": true})
            .await?;
        s.next().await.transpose()
    }

    async fn update(
        &self,
        filter: Document,
        u: Bson,
        multi: bool,
        upsert: bool,
    ) -> Result<UpdateResult, Error> {
        let reply = self
            .db
            .run_command(doc! {
                "update": &self.name,
                "updates": [{"q": filter, "u": u, "multi": multi, "upsert": upsert}],
                "ordered": true,
            })
            .await?;
        let upserted_id = reply
            .get_array("upserted")
            .ok()
            .and_then(|u| u.first())
            .and_then(Bson::as_document)
            .and_then(|d| d.get("_id").cloned());
        Ok(UpdateResult {
            matched_count: count(&reply, "n") - upserted_id.is_some() as u64,
            modified_count: count(&reply, "nModified"),
            upserted_id,
        })
    }

    fn check_operators(update: &Document, want: bool) -> Result<(), Error> {
        let has = update.keys().next().is_some_and(|k| k.starts_with('$'));
        if has != want {
            return Err(Error::InvalidValue(if want {
                "update document must contain only update operators".into()
            } else {
                "replacement document must not contain update operators".into()
            }));
        }
        Ok(())
    }

    /// Updates the first matching document.
    pub async fn update_one(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<UpdateResult, Error> {
        Self::check_operators(&update, true)?;
        self.update(filter, Bson::Document(update), false, false)
            .await
    }

    /// Updates every matching document.
    pub async fn update_many(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<UpdateResult, Error> {
        Self::check_operators(&update, true)?;
        self.update(filter, Bson::Document(update), true, false)
            .await
    }

    /// Replaces the first matching document (`upsert` inserts it when none matches).
    pub async fn replace_one(
        &self,
        filter: Document,
        replacement: &T,
        upsert: bool,
    ) -> Result<UpdateResult, Error> {
        let d = Self::to_document(replacement)?;
        Self::check_operators(&d, false)?;
        self.update(filter, Bson::Document(d), false, upsert).await
    }

    async fn delete(&self, filter: Document, limit: i32) -> Result<DeleteResult, Error> {
        let reply = self
            .db
            .run_command(doc! {"delete": &self.name, "deletes": [{"q": filter, "limit": limit}], "ordered": true})
            .await?;
        Ok(DeleteResult {
            deleted_count: count(&reply, "n"),
        })
    }

    /// Deletes the first matching document.
    pub async fn delete_one(&self, filter: Document) -> Result<DeleteResult, Error> {
        self.delete(filter, 1).await
    }

    /// Deletes every matching document.
    pub async fn delete_many(&self, filter: Document) -> Result<DeleteResult, Error> {
        self.delete(filter, 0).await
    }

    async fn find_and_modify(&self, mut cmd: Document) -> Result<Option<T>, Error> {
        let mut full = doc! {"findAndModify": &self.name};
        full.extend(std::mem::take(&mut cmd));
        let reply = self.db.run_command(full).await?;
        match reply.get("value") {
            Some(Bson::Document(d)) => Ok(Some(Self::from_document(d.clone())?)),
            _ => Ok(None),
        }
    }

    /// Updates the first matching document; returns it as it was before.
    pub async fn find_one_and_update(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<Option<T>, Error> {
        Self::check_operators(&update, true)?;
        self.find_and_modify(doc! {"query": filter, "update": update})
            .await
    }

    /// Replaces the first matching document; returns it as it was before.
    pub async fn find_one_and_replace(
        &self,
        filter: Document,
        replacement: &T,
    ) -> Result<Option<T>, Error> {
        let d = Self::to_document(replacement)?;
        Self::check_operators(&d, false)?;
        self.find_and_modify(doc! {"query": filter, "update": d})
            .await
    }

    /// Deletes the first matching document and returns it.
    pub async fn find_one_and_delete(&self, filter: Document) -> Result<Option<T>, Error> {
        self.find_and_modify(doc! {"query": filter, "remove": true})
            .await
    }

    /// Runs an aggregation; the results, decrypted, as a stream of documents.
    pub async fn aggregate(
        &self,
        pipeline: Vec<Document>,
    ) -> Result<BoxStream<'static, Result<Document, Error>>, Error> {
        let reply = self
            .db
            .run_command(doc! {"aggregate": &self.name, "pipeline": pipeline, "cursor": {}})
            .await?;
        Ok(self.cursor(reply))
    }

    /// The number of matching documents (the `count` command, which
    /// automatic encryption can analyze).
    pub async fn count_documents(&self, filter: Document) -> Result<u64, Error> {
        let reply = self
            .db
            .run_command(doc! {"count": &self.name, "query": filter})
            .await?;
        Ok(count(&reply, "n"))
    }

    /// The distinct values of `field` among matching documents, decrypted.
    pub async fn distinct(&self, field: &str, filter: Document) -> Result<Vec<Bson>, Error> {
        let reply = self
            .db
            .run_command(doc! {"distinct": &self.name, "key": field, "query": filter})
            .await?;
        Ok(reply.get_array("values").cloned().unwrap_or_default())
    }
}
