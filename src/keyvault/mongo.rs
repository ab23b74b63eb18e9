//! The key vault collection on a MongoDB server, through the `mongodb` crate.

use super::store::{KeyMaterialUpdate, KeyVault};
use super::{Error, KeyDocument};
use crate::driver::driver_code;
use crate::key::KeyId;
use bson::{Bson, Document, doc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use mongodb::options::{
    CollectionOptions, FindOneAndUpdateOptions, IndexOptions, ReadConcern, ReturnDocument,
    WriteConcern,
};
use mongodb::{Collection, IndexModel};

/// A key vault collection (`db.coll`) on a MongoDB deployment. Reads use
/// majority read concern and writes majority write concern, so a key just
/// created is visible to every other client that reads it.
#[derive(Clone, Debug)]
pub struct MongoKeyVault {
    coll: Collection<Document>,
}

fn server_error(e: mongodb::error::Error) -> Error {
    Error::Driver {
        code: driver_code(&e),
        source: Box::new(e),
    }
}

fn is_duplicate_key(e: &Error) -> bool {
    e.server_code() == Some(11000)
}

impl MongoKeyVault {
    /// The key vault at `namespace` (`"db.coll"`) on `client`.
    pub fn new(client: &mongodb::Client, namespace: &str) -> Result<Self, Error> {
        let (db, coll) = namespace
            .split_once('.')
            .filter(|(d, c)| !d.is_empty() && !c.is_empty())
            .ok_or_else(|| Error::InvalidNamespace(namespace.to_owned()))?;
        let options = CollectionOptions::builder()
            .read_concern(ReadConcern::majority())
            .write_concern(WriteConcern::majority())
            .build();
        Ok(MongoKeyVault {
            coll: client.database(db).collection_with_options(coll, options),
        })
    }

    /// The underlying collection.
    pub fn collection(&self) -> &Collection<Document> {
        &self.coll
    }
}

fn parse(d: Option<Document>) -> Result<Option<KeyDocument>, Error> {
    Ok(d.as_ref().map(KeyDocument::from_document).transpose()?)
}

impl KeyVault for MongoKeyVault {
    fn find_keys<'a>(
        &'a self,
        ids: &'a [KeyId],
        alt_names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<KeyDocument>, Error>> {
        Box::pin(async move {
            // The query libmongocrypt sends: one $or over ids and names.
            let ids: Vec<Bson> = ids.iter().map(|i| Bson::Binary(i.to_binary())).collect();
            let filter = doc! {"$or": [
                {"_id": {"$in": ids}},
                {"keyAltNames": {"$in": alt_names.to_vec()}},
            ]};
            let mut cursor = self.coll.find(filter).await.map_err(server_error)?;
            let mut out = Vec::new();
            while let Some(d) = cursor.next().await {
                out.push(KeyDocument::from_document(&d.map_err(server_error)?)?);
            }
            Ok(out)
        })
    }

    fn find_matching<'a>(
        &'a self,
        filter: Document,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<KeyDocument, Error>>, Error>> {
        Box::pin(async move {
            let cursor = self.coll.find(filter).await.map_err(server_error)?;
            let keys: BoxStream<'static, _> = Box::pin(
                cursor.map(|d| Ok(KeyDocument::from_document(&d.map_err(server_error)?)?)),
            );
            Ok(keys)
        })
    }

    fn insert_key<'a>(&'a self, key: &'a KeyDocument) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            match self
                .coll
                .insert_one(key.to_document())
                .await
                .map_err(server_error)
            {
                Err(e) if is_duplicate_key(&e) => {
                    Err(Error::DuplicateAltName(key.key_alt_names.join(", ")))
                }
                other => other.map(|_| ()),
            }
        })
    }

    fn delete_key<'a>(&'a self, id: KeyId) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let r = self
                .coll
                .delete_one(doc! {"_id": id.to_binary()})
                .await
                .map_err(server_error)?;
            Ok(r.deleted_count)
        })
    }

    fn add_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move {
            let options = FindOneAndUpdateOptions::builder()
                .return_document(ReturnDocument::Before)
                .build();
            let r = self
                .coll
                .find_one_and_update(
                    doc! {"_id": id.to_binary()},
                    doc! {"$addToSet": {"keyAltNames": name}},
                )
                .with_options(options)
                .await
                .map_err(server_error);
            match r {
                Err(e) if is_duplicate_key(&e) => Err(Error::DuplicateAltName(name.to_owned())),
                other => parse(other?),
            }
        })
    }

    fn remove_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move {
            // The specification's pipeline update: drop the field when the name
            // was the last one, so the partial unique index never sees `[]`.
            let pipeline = vec![doc! {"$set": {"keyAltNames": {"$cond": [
                {"$eq": ["$keyAltNames", [name]]},
                "$$REMOVE",
                {"$filter": {"input": "$keyAltNames", "cond": {"$ne": ["$$this", name]}}},
            ]}}}];
            let options = FindOneAndUpdateOptions::builder()
                .return_document(ReturnDocument::Before)
                .build();
            let r = self
                .coll
                .find_one_and_update(doc! {"_id": id.to_binary()}, pipeline)
                .with_options(options)
                .await
                .map_err(server_error)?;
            parse(r)
        })
    }

    fn update_key_materials<'a>(
        &'a self,
        updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            if updates.is_empty() {
                return Ok(0);
            }
            // One `update` command with a statement per key: a single round trip
            // and a single bulk write, on every server version.
            let statements: Vec<Document> = updates
                .iter()
                .map(|u| {
                    doc! {
                        "q": {"_id": u.id.to_binary()},
                        "u": {
                            "$set": {
                                "masterKey": u.master_key.to_document(),
                                "keyMaterial": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: u.key_material.clone() },
                            },
                            "$currentDate": {"updateDate": true},
                        },
                    }
                })
                .collect();
            let reply = self
                .coll
                .client()
                .database(self.coll.namespace().db.as_str())
                .run_command(doc! {
                    "update": self.coll.name(),
                    "updates": statements,
                    "ordered": false,
                    "writeConcern": {"w": "majority"},
                })
                .await
                .map_err(server_error)?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && let Some(Bson::Document(first)) = errors.first()
            {
                return Err(Error::Server {
                    code: first.get_i32("code").ok(),
                    message: first.get_str("errmsg").unwrap_or("write error").to_owned(),
                });
            }
            let modified = match reply.get("nModified") {
                Some(Bson::Int32(n)) => *n as u64,
                Some(Bson::Int64(n)) => *n as u64,
                _ => 0,
            };
            Ok(modified)
        })
    }

    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let index = IndexModel::builder()
                .keys(doc! {"keyAltNames": 1})
                .options(
                    IndexOptions::builder()
                        .name("keyAltNames_1".to_owned())
                        .unique(true)
                        .partial_filter_expression(doc! {"keyAltNames": {"$exists": true}})
                        .build(),
                )
                .build();
            self.coll.create_index(index).await.map_err(server_error)?;
            Ok(())
        })
    }
}
