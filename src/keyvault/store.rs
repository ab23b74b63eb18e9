//! The `KeyVault` trait and the in-memory store.

use super::{Error, KeyDocument};
use crate::key::{KeyId, MasterKey};
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::sync::{Arc, Mutex};

/// A new wrapping of one data key, written by a rewrap.
#[derive(Clone, Debug)]
pub struct KeyMaterialUpdate {
    /// The key.
    pub id: KeyId,
    /// Its new master key.
    pub master_key: MasterKey,
    /// Its material wrapped by that master key.
    pub key_material: Vec<u8>,
}

/// Where key documents live: a MongoDB collection, a file, or memory.
///
/// Object safe: applications hold any store as `Arc<dyn KeyVault>`, and no
/// type of csfle is generic over it.
///
/// Every method is one round trip to the store; in particular
/// [`find_keys`](KeyVault::find_keys) fetches a whole batch of ids and
/// alternate names with a single query, as libmongocrypt does.
pub trait KeyVault: Send + Sync + std::fmt::Debug {
    /// The keys whose `_id` is in `ids` or that have an alternate name in
    /// `alt_names`, in one query.
    fn find_keys<'a>(
        &'a self,
        ids: &'a [KeyId],
        alt_names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<KeyDocument>, Error>>;

    /// The keys matching a MongoDB query `filter` (`{}` for all), as a stream.
    fn find_matching<'a>(
        &'a self,
        filter: Document,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<KeyDocument, Error>>, Error>>;

    /// Stores a new key. A duplicate id or alternate name is an error.
    fn insert_key<'a>(&'a self, key: &'a KeyDocument) -> BoxFuture<'a, Result<(), Error>>;

    /// Deletes a key; returns how many documents were deleted (0 or 1).
    fn delete_key<'a>(&'a self, id: KeyId) -> BoxFuture<'a, Result<u64, Error>>;

    /// Adds an alternate name; returns the key document as it was before, or
    /// `None` when no key has this id.
    fn add_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>>;

    /// Removes an alternate name (and the field, when it was the last);
    /// returns the key document as it was before, or `None`.
    fn remove_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>>;

    /// Replaces the master key and key material of several keys in one bulk
    /// write, setting `updateDate`; returns how many were modified.
    fn update_key_materials<'a>(
        &'a self,
        updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, Result<u64, Error>>;

    /// Creates the unique partial index on `keyAltNames` where the store has
    /// indexes (a no-op elsewhere: those stores check uniqueness themselves).
    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, Result<(), Error>>;
}

/// Applies an alternate-name change to a document in place (file and memory stores).
pub(crate) fn edit_alt_names(doc: &mut Document, name: &str, add: bool) -> Result<(), Error> {
    let mut names: Vec<String> = match doc.get("keyAltNames") {
        None => Vec::new(),
        Some(Bson::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                crate::key::Error::InvalidKeyDocument("'keyAltNames' must hold strings".into())
            })?,
        Some(_) => {
            return Err(crate::key::Error::InvalidKeyDocument(
                "'keyAltNames' must be an array".into(),
            )
            .into());
        }
    };
    if add {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    } else {
        names.retain(|n| n != name);
    }
    if names.is_empty() {
        doc.remove("keyAltNames");
    } else {
        doc.insert("keyAltNames", names);
    }
    Ok(())
}

/// Checks that no other document already uses `name`.
pub(crate) fn check_alt_name_free(docs: &[Document], id: KeyId, name: &str) -> Result<(), Error> {
    for d in docs {
        let k = KeyDocument::from_document(d)?;
        if k.id != id && k.key_alt_names.iter().any(|n| n == name) {
            return Err(Error::DuplicateAltName(name.to_owned()));
        }
    }
    Ok(())
}

/// Applies a rewrap to a stored document, keeping fields this version does not know.
pub(crate) fn apply_material_update(
    doc: &mut Document,
    u: &KeyMaterialUpdate,
    now: bson::DateTime,
) {
    doc.insert("masterKey", u.master_key.to_document());
    doc.insert(
        "keyMaterial",
        bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: u.key_material.clone(),
        },
    );
    doc.insert("updateDate", now);
}

/// The query a store without a server evaluates itself: the subset of the
/// MongoDB query language key-vault filters use. Field equality (dotted
/// paths; an array field matches when any element does), `$eq`, `$ne`, `$in`,
/// `$nin`, `$exists`, `$and`, `$or`, `$nor`. Anything else is refused rather
/// than guessed.
pub(crate) fn filter_matches(doc: &Document, filter: &Document) -> Result<bool, Error> {
    for (key, cond) in filter {
        let ok = match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let Bson::Array(items) = cond else {
                    return Err(Error::UnsupportedFilter(format!("{key} needs an array")));
                };
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    let Bson::Document(sub) = item else {
                        return Err(Error::UnsupportedFilter(format!("{key} needs documents")));
                    };
                    results.push(filter_matches(doc, sub)?);
                }
                match key.as_str() {
                    "$and" => results.iter().all(|r| *r),
                    "$or" => results.iter().any(|r| *r),
                    _ => !results.iter().any(|r| *r),
                }
            }
            k if k.starts_with('$') => return Err(Error::UnsupportedFilter(k.to_owned())),
            path => field_matches(lookup(doc, path), cond)?,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn lookup<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut cur = doc;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let v = cur.get(p)?;
        if parts.peek().is_none() {
            return Some(v);
        }
        cur = v.as_document()?;
    }
    None
}

fn equals(value: Option<&Bson>, target: &Bson) -> bool {
    match value {
        Some(v) if v == target => true,
        Some(Bson::Array(items)) => items.iter().any(|i| i == target),
        None => matches!(target, Bson::Null),
        _ => false,
    }
}

fn field_matches(value: Option<&Bson>, cond: &Bson) -> Result<bool, Error> {
    let Bson::Document(ops) = cond else {
        return Ok(equals(value, cond));
    };
    if !ops.keys().next().is_some_and(|k| k.starts_with('$')) {
        return Ok(equals(value, cond));
    }
    for (op, arg) in ops {
        let list = || match arg {
            Bson::Array(a) => Ok(a),
            _ => Err(Error::UnsupportedFilter(format!("{op} needs an array"))),
        };
        let ok = match op.as_str() {
            "$eq" => equals(value, arg),
            "$ne" => !equals(value, arg),
            "$in" => list()?.iter().any(|t| equals(value, t)),
            "$nin" => !list()?.iter().any(|t| equals(value, t)),
            "$exists" => {
                value.is_some()
                    == matches!(
                        arg,
                        Bson::Boolean(true) | Bson::Int32(1..) | Bson::Int64(1..)
                    )
            }
            other => return Err(Error::UnsupportedFilter(other.to_owned())),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Key documents in memory, for tests and short-lived tools. It keeps the
/// documents and nothing else: no log of the queries it answers (a test
/// that counts them wraps it in a `KeyVault` of its own).
///
/// A handle, like `mongodb::Collection`: clones share the same documents,
/// so a caller can keep one after handing a clone to a `ClientEncryption`.
#[derive(Clone, Debug, Default)]
pub struct MemoryKeyVault {
    docs: Arc<Mutex<Vec<Document>>>,
}

impl MemoryKeyVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new vault holding a copy of this one's key documents: later
    /// changes to either are not seen by the other.
    pub fn snapshot(&self) -> Self {
        MemoryKeyVault {
            docs: Arc::new(Mutex::new(
                self.docs.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            )),
        }
    }

    fn docs(&self) -> std::sync::MutexGuard<'_, Vec<Document>> {
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn edit(&self, id: KeyId, name: &str, add: bool) -> Result<Option<KeyDocument>, Error> {
        let mut docs = self.docs();
        if add {
            check_alt_name_free(&docs, id, name)?;
        }
        for d in docs.iter_mut() {
            let before = KeyDocument::from_document(d)?;
            if before.id == id {
                edit_alt_names(d, name, add)?;
                return Ok(Some(before));
            }
        }
        Ok(None)
    }
}

impl KeyVault for MemoryKeyVault {
    fn find_keys<'a>(
        &'a self,
        ids: &'a [KeyId],
        alt_names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<KeyDocument>, Error>> {
        Box::pin(async move {
            let docs = self.docs();
            let mut out = Vec::new();
            for d in docs.iter() {
                let k = KeyDocument::from_document(d)?;
                if ids.contains(&k.id) || k.key_alt_names.iter().any(|n| alt_names.contains(n)) {
                    out.push(k);
                }
            }
            Ok(out)
        })
    }

    fn find_matching<'a>(
        &'a self,
        filter: Document,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<KeyDocument, Error>>, Error>> {
        Box::pin(async move {
            let docs = self.docs();
            let mut out = Vec::new();
            for d in docs.iter() {
                if filter_matches(d, &filter)? {
                    out.push(KeyDocument::from_document(d).map_err(Error::from));
                }
            }
            let keys: BoxStream<'static, _> = Box::pin(futures_util::stream::iter(out));
            Ok(keys)
        })
    }

    fn insert_key<'a>(&'a self, key: &'a KeyDocument) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut docs = self.docs();
            for d in docs.iter() {
                let k = KeyDocument::from_document(d)?;
                if k.id == key.id {
                    return Err(Error::DuplicateKeyId(key.id));
                }
                if let Some(n) = key
                    .key_alt_names
                    .iter()
                    .find(|n| k.key_alt_names.contains(n))
                {
                    return Err(Error::DuplicateAltName(n.clone()));
                }
            }
            docs.push(key.to_document());
            Ok(())
        })
    }

    fn delete_key<'a>(&'a self, id: KeyId) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let mut docs = self.docs();
            let before = docs.len();
            let mut keep = Vec::with_capacity(before);
            for d in docs.drain(..) {
                if KeyDocument::from_document(&d)?.id != id {
                    keep.push(d);
                }
            }
            *docs = keep;
            Ok((before - docs.len()) as u64)
        })
    }

    fn add_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move { self.edit(id, name, true) })
    }

    fn remove_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move { self.edit(id, name, false) })
    }

    fn update_key_materials<'a>(
        &'a self,
        updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let mut docs = self.docs();
            let now = bson::DateTime::now();
            let mut modified = 0;
            for d in docs.iter_mut() {
                let id = KeyDocument::from_document(d)?.id;
                if let Some(u) = updates.iter().find(|u| u.id == id) {
                    apply_material_update(d, u, now);
                    modified += 1;
                }
            }
            Ok(modified)
        })
    }

    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn filters() {
        let d = doc! {"_id": 1, "keyAltNames": ["a", "b"], "masterKey": {"provider": "local:old"}};
        let m = |f: Document| filter_matches(&d, &f).unwrap();
        assert!(m(doc! {}));
        assert!(m(doc! {"keyAltNames": "a"}));
        assert!(!m(doc! {"keyAltNames": "z"}));
        assert!(m(doc! {"masterKey.provider": "local:old"}));
        assert!(m(doc! {"masterKey.provider": {"$in": ["x", "local:old"]}}));
        assert!(m(
            doc! {"$or": [{"_id": 2}, {"keyAltNames": {"$exists": true}}]}
        ));
        assert!(!m(doc! {"$nor": [{"_id": 1}]}));
        assert!(m(doc! {"status": {"$exists": false}}));
        assert!(matches!(
            filter_matches(&d, &doc! {"_id": {"$gt": 0}}),
            Err(Error::UnsupportedFilter(_))
        ));
    }
}
