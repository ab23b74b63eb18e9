//! Managing the collection: drop, indexes, the estimated count. Index
//! definitions go through analysis like any command (a partial filter on
//! an encrypted field is encrypted, or refused); listed indexes come back
//! decrypted.

use super::Exec;
use super::cursor::{Batches, decrypted_cursor};
use crate::Error;
use crate::client::collection::EncryptedCollection;
use crate::client::command::Fields;
use crate::client::cursor::Cursor;
use bson::{Bson, doc};
use futures_util::future::BoxFuture;
use mongodb::ClientSession;
use mongodb::IndexModel;
use mongodb::options::{
    CreateIndexOptions, DropCollectionOptions, DropIndexOptions, EstimatedDocumentCountOptions,
    ListIndexesOptions, ReadConcern, SelectionCriteria, WriteConcern,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

exec_setters!(session: DropCollection, CreateIndexes, ListIndexes, DropIndexes);
exec_setters!(writes: DropCollection, CreateIndexes, DropIndexes);
exec_setters!(reads: EstimatedDocumentCount);

/// `drop` of the collection.
#[must_use = "an action does nothing until awaited"]
pub struct DropCollection<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) exec: Exec<'a>,
}

impl<T> DropCollection<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Drops the collection; a Queryable Encryption collection (as
    /// automatic encryption finds it: the `encryptedFieldsMap`, a typed
    /// collection, the server's `encryptedFields`) with its state
    /// collections, ESC then ECOC then the collection, as the
    /// specification's drop helper does. A collection that does not exist
    /// is no error (the driver's drop ignores "namespace not found").
    async fn run(mut self) -> Result<(), Error> {
        let mut o = DropCollectionOptions::default();
        o.write_concern = self.exec.write_concern.take();
        #[cfg(feature = "qe")]
        if let Some(fields) = self
            .coll
            .auto()
            .queryable_fields(self.coll.database().name(), self.coll.name())
            .await?
        {
            let name = self.coll.name();
            for state in [
                fields.esc_collection_name(name),
                fields.ecoc_collection_name(name),
            ] {
                let driver = self
                    .coll
                    .database()
                    .inner()
                    .collection::<bson::Document>(&state);
                with_session!(
                    &mut self.exec.session,
                    driver.drop().with_options(o.clone())
                );
            }
        }
        let driver = self.coll.documents();
        with_session!(&mut self.exec.session, driver.drop().with_options(o));
        Ok(())
    }
}

/// `createIndexes`: the index definitions analysed as the command (keys on
/// encrypted fields are allowed; partial filters on them are encrypted or
/// refused), then created by the driver. The names of the new indexes.
#[must_use = "an action does nothing until awaited"]
pub struct CreateIndexes<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) models: Vec<IndexModel>,
    pub(super) max_time: Option<Duration>,
    pub(super) exec: Exec<'a>,
}

impl<T> CreateIndexes<'_, T> {
    /// How long the server may work on the command (`maxTimeMS`).
    pub fn max_time(mut self, max_time: Duration) -> Self {
        self.max_time = Some(max_time);
        self
    }
}

impl<T> CreateIndexes<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<Vec<String>, Error> {
        let indexes = self
            .models
            .iter()
            .map(|m| bson::to_document(m).map(Bson::Document))
            .collect::<Result<Vec<_>, _>>()?;
        let cmd = doc! {"createIndexes": self.coll.name(), "indexes": indexes};
        let mut f = Fields::new("createIndexes", self.coll.encrypt(cmd).await?);
        let models = f
            .docs("indexes")?
            .unwrap_or_default()
            .into_iter()
            .map(bson::from_document::<IndexModel>)
            .collect::<Result<Vec<_>, _>>()?;
        f.finish()?;
        let mut o = CreateIndexOptions::default();
        o.max_time = self.max_time;
        o.write_concern = self.exec.write_concern.take();
        let driver = self.coll.documents();
        let r = with_session!(
            &mut self.exec.session,
            driver.create_indexes(models).with_options(o)
        );
        Ok(r.index_names)
    }
}

/// `listIndexes`: the collection's indexes, decrypted (a partial filter
/// may hold ciphertexts).
#[must_use = "an action does nothing until awaited"]
pub struct ListIndexes<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) batch_size: Option<u32>,
    pub(super) exec: Exec<'a>,
}

impl<T> ListIndexes<'_, T> {
    /// How many indexes the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.batch_size = Some(size);
        self
    }
}

impl<'a, T> ListIndexes<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Cursor<'a, IndexModel>, Error> {
        let mut o = ListIndexesOptions::default();
        o.batch_size = self.batch_size;
        let driver = self.coll.documents();
        let auto = Arc::clone(self.coll.auto());
        let batches = open_batches!(self.exec.session, driver.list_indexes().with_options(o));
        decrypted_cursor(auto, batches).await
    }
}

/// `dropIndexes`: one index by name, or all but `_id`'s.
#[must_use = "an action does nothing until awaited"]
pub struct DropIndexes<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) name: Option<String>,
    pub(super) exec: Exec<'a>,
}

impl<T> DropIndexes<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<(), Error> {
        let mut o = DropIndexOptions::default();
        o.write_concern = self.exec.write_concern.take();
        let driver = self.coll.documents();
        match self.name.take() {
            Some(name) => {
                with_session!(
                    &mut self.exec.session,
                    driver.drop_index(name).with_options(o)
                )
            }
            None => with_session!(
                &mut self.exec.session,
                driver.drop_indexes().with_options(o)
            ),
        }
        Ok(())
    }
}

/// The estimated number of documents (from the collection's metadata, no
/// filter: nothing to analyse).
#[must_use = "an action does nothing until awaited"]
pub struct EstimatedDocumentCount<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) exec: Exec<'a>,
}

impl<T> EstimatedDocumentCount<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<u64, Error> {
        let mut o = EstimatedDocumentCountOptions::default();
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        Ok(self
            .coll
            .documents()
            .estimated_document_count()
            .with_options(o)
            .await?)
    }
}

into_future! {
    DropCollection => Result<(), Error>,
    CreateIndexes => Result<Vec<String>, Error>,
    ListIndexes => Result<Cursor<'a, IndexModel>, Error>,
    DropIndexes => Result<(), Error>,
    EstimatedDocumentCount => Result<u64, Error>,
}

/// The collection's own management, as `mongodb::Collection` has it.
impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Drops the collection (a Queryable Encryption collection with its
    /// state collections, `enxcol_.<name>.esc` and `.ecoc`).
    pub fn drop(&self) -> DropCollection<'_, T> {
        DropCollection {
            coll: self,
            exec: Exec::default(),
        }
    }

    /// Creates an index.
    pub fn create_index(&self, index: IndexModel) -> CreateIndexes<'_, T> {
        self.create_indexes([index])
    }

    /// Creates indexes in one command.
    pub fn create_indexes(
        &self,
        indexes: impl IntoIterator<Item = IndexModel>,
    ) -> CreateIndexes<'_, T> {
        CreateIndexes {
            coll: self,
            models: indexes.into_iter().collect(),
            max_time: None,
            exec: Exec::default(),
        }
    }

    /// The collection's indexes, as a stream.
    pub fn list_indexes(&self) -> ListIndexes<'_, T> {
        ListIndexes {
            coll: self,
            batch_size: None,
            exec: Exec::default(),
        }
    }

    /// Drops the index named `name`.
    pub fn drop_index(&self, name: impl Into<String>) -> DropIndexes<'_, T> {
        DropIndexes {
            coll: self,
            name: Some(name.into()),
            exec: Exec::default(),
        }
    }

    /// Drops every index but `_id`'s.
    pub fn drop_indexes(&self) -> DropIndexes<'_, T> {
        DropIndexes {
            coll: self,
            name: None,
            exec: Exec::default(),
        }
    }

    /// The estimated number of documents in the collection.
    pub fn estimated_document_count(&self) -> EstimatedDocumentCount<'_, T> {
        EstimatedDocumentCount {
            coll: self,
            exec: Exec::default(),
        }
    }
}
