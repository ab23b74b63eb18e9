//! A key vault that records its queries: the test spy for batching and
//! single flight, around the in-memory store (which keeps no log of its
//! own, so a long-lived process using it never grows one).

use bson::Document;
use csfle::KeyId;
use csfle::keyvault::{Error, KeyDocument, KeyMaterialUpdate, KeyVault, MemoryKeyVault};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::sync::{Arc, Mutex};

/// One `find_keys` query: the ids and alternate names asked for.
pub type KeyQuery = (Vec<KeyId>, Vec<String>);

/// A [`MemoryKeyVault`] that logs every `find_keys` query. A handle, like
/// the store it wraps: clones share the documents and the log, so a test
/// keeps one after handing a clone to a `ClientEncryption`.
#[derive(Clone, Debug, Default)]
pub struct RecordingKeyVault {
    inner: MemoryKeyVault,
    queries: Arc<Mutex<Vec<KeyQuery>>>,
}

impl RecordingKeyVault {
    /// An empty vault with an empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `find_keys` query so far, in order.
    pub fn queries(&self) -> Vec<KeyQuery> {
        self.queries.lock().unwrap().clone()
    }
}

impl KeyVault for RecordingKeyVault {
    fn find_keys<'a>(
        &'a self,
        ids: &'a [KeyId],
        alt_names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<KeyDocument>, Error>> {
        // Logged when the query runs (first poll), as the store answers it.
        Box::pin(async move {
            self.queries
                .lock()
                .unwrap()
                .push((ids.to_vec(), alt_names.to_vec()));
            self.inner.find_keys(ids, alt_names).await
        })
    }

    fn find_matching<'a>(
        &'a self,
        filter: Document,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<KeyDocument, Error>>, Error>> {
        self.inner.find_matching(filter)
    }

    fn insert_key<'a>(&'a self, key: &'a KeyDocument) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.insert_key(key)
    }

    fn delete_key<'a>(&'a self, id: KeyId) -> BoxFuture<'a, Result<u64, Error>> {
        self.inner.delete_key(id)
    }

    fn add_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        self.inner.add_key_alt_name(id, name)
    }

    fn remove_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        self.inner.remove_key_alt_name(id, name)
    }

    fn update_key_materials<'a>(
        &'a self,
        updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, Result<u64, Error>> {
        self.inner.update_key_materials(updates)
    }

    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.ensure_indexes()
    }
}
