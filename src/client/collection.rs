//! `EncryptedClient` → `EncryptedDatabase` → `EncryptedCollection<T>`: the
//! `mongodb` crate's shape, with automatic encryption of every command and
//! decryption of every reply.

use super::AutoEncrypter;
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
                details: Box::new(first.clone()),
            });
        }
        Ok(reply)
    }
}

/// A collection with automatic encryption, shaped like `mongodb::Collection<T>`.
#[derive(Debug)]
pub struct EncryptedCollection<T> {
    pub(super) db: EncryptedDatabase,
    pub(super) name: String,
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
}
