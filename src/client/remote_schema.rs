//! Schemas read from the server: a collection's `$jsonSchema` validator, as
//! `listCollections` reports it.

use crate::{ClientError, Error};
use bson::{Bson, Document, doc};
use futures_util::future::BoxFuture;

/// What the server says about a collection's schema.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteSchema {
    /// No such collection, or no `$jsonSchema` validator.
    None,
    /// The validator's `$jsonSchema`.
    Schema(Document),
    /// The namespace is a view, which automatic encryption refuses.
    View,
    /// A validator csfle cannot read as a schema: `$jsonSchema` beside
    /// other query operators (the reason, without the validator).
    Invalid(String),
}

impl RemoteSchema {
    /// Reads a `listCollections` entry (`{name, type, options: {validator}}`).
    /// A validator holding `$jsonSchema` and anything else is
    /// [`Invalid`](RemoteSchema::Invalid): the other operators could
    /// constrain encrypted fields in ways analysis does not see, as
    /// libmongocrypt also refuses.
    pub fn from_collection_info(info: &Document) -> Self {
        if info.get_str("type") == Ok("view") {
            return RemoteSchema::View;
        }
        let Some(validator) = info
            .get_document("options")
            .ok()
            .and_then(|o| o.get("validator"))
        else {
            return RemoteSchema::None;
        };
        let Bson::Document(validator) = validator else {
            return RemoteSchema::Invalid("the validator is not a document".into());
        };
        match validator.get("$jsonSchema") {
            // A `$jsonSchema` (or an `encrypt`) below `$and`/`$or`/`$nor`
            // or any other operator still declares encrypted fields: read
            // as "no schema", they would go out in plaintext.
            None if names_a_schema(validator) => RemoteSchema::Invalid(
                "the validator holds $jsonSchema (or encrypt) below a query operator".into(),
            ),
            None => RemoteSchema::None,
            Some(_) if validator.len() > 1 => {
                RemoteSchema::Invalid("the validator has fields beside $jsonSchema".into())
            }
            Some(Bson::Document(s)) => RemoteSchema::Schema(s.clone()),
            Some(_) => RemoteSchema::Invalid("$jsonSchema is not a document".into()),
        }
    }
}

/// Whether a validator mentions `$jsonSchema`, `encrypt` or
/// `encryptMetadata` as a key anywhere (a validator too deep to walk
/// counts as mentioning them).
fn names_a_schema(validator: &Document) -> bool {
    struct Found;
    impl From<crate::nesting::TooDeep> for Found {
        fn from(_: crate::nesting::TooDeep) -> Self {
            Found
        }
    }
    let root = Bson::Document(validator.clone());
    crate::nesting::visit(&root, &mut |v| match v {
        Bson::Document(d)
            if d.keys()
                .any(|k| matches!(k.as_str(), "$jsonSchema" | "encrypt" | "encryptMetadata")) =>
        {
            Err(Found)
        }
        _ => Ok(()),
    })
    .is_err()
}

/// Fetches collection schemas from the server (or, in tests, from records).
pub trait SchemaFetcher: Send + Sync + std::fmt::Debug {
    /// The schema of `db.coll`.
    fn collection_schema<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
    ) -> BoxFuture<'a, Result<RemoteSchema, Error>>;

    /// [`collection_schema`](Self::collection_schema) within `max_time`,
    /// what is left of the operation's timeout (`None`: no timeout). The
    /// default ignores it; a fetcher that asks a server should pass it on.
    fn collection_schema_within<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
        max_time: Option<std::time::Duration>,
    ) -> BoxFuture<'a, Result<RemoteSchema, Error>> {
        let _ = max_time;
        self.collection_schema(db, coll)
    }
}

/// Reads schemas with `listCollections {filter: {name}}` through the driver.
#[derive(Clone, Debug)]
pub struct MongoSchemaFetcher {
    client: mongodb::Client,
}

impl MongoSchemaFetcher {
    /// A fetcher using `client` (the one the encrypted commands go to).
    pub fn new(client: mongodb::Client) -> Self {
        MongoSchemaFetcher { client }
    }
}

impl SchemaFetcher for MongoSchemaFetcher {
    fn collection_schema<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
    ) -> BoxFuture<'a, Result<RemoteSchema, Error>> {
        self.collection_schema_within(db, coll, None)
    }

    fn collection_schema_within<'a>(
        &'a self,
        db: &'a str,
        coll: &'a str,
        max_time: Option<std::time::Duration>,
    ) -> BoxFuture<'a, Result<RemoteSchema, Error>> {
        Box::pin(async move {
            let mut command = doc! {"listCollections": 1, "filter": {"name": coll}};
            if let Some(t) = max_time {
                // At least 1 ms: 0 would mean no limit.
                let ms = i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1);
                command.insert("maxTimeMS", ms);
            }
            let reply = self
                .client
                .database(db)
                .run_command(command)
                .await
                .map_err(|e| {
                    Error::Client(ClientError::SchemaFetch {
                        namespace: format!("{db}.{coll}"),
                        source: Box::new(e),
                    })
                })?;
            let first = reply
                .get_document("cursor")
                .and_then(|c| c.get_array("firstBatch"))
                .ok()
                .and_then(|b| b.first())
                .and_then(Bson::as_document);
            Ok(first.map_or(RemoteSchema::None, RemoteSchema::from_collection_info))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(validator: Bson) -> Document {
        doc! {"name": "c", "type": "collection", "options": {"validator": validator}}
    }

    #[test]
    fn schemas_below_operators_are_not_read_as_none() {
        let schema = doc! {"properties": {"ssn": {"encrypt": {"bsonType": "string"}}}};
        let hidden = [
            Bson::Document(
                doc! {"$and": [{"$jsonSchema": schema.clone()}, {"a": {"$exists": true}}]},
            ),
            Bson::Document(doc! {"$or": [{"$nor": [{"$jsonSchema": schema.clone()}]}]}),
            Bson::Document(doc! {"x": {"$elemMatch": {"$jsonSchema": schema.clone()}}}),
            Bson::Document(doc! {"$and": [{"properties": {"ssn": {"encrypt": {}}}}]}),
            Bson::String("not a document".into()),
        ];
        for v in hidden {
            assert!(
                matches!(
                    RemoteSchema::from_collection_info(&info(v.clone())),
                    RemoteSchema::Invalid(_)
                ),
                "{v}"
            );
        }
        assert_eq!(
            RemoteSchema::from_collection_info(&info(Bson::Document(
                doc! {"$and": [{"a": {"$gt": 1}}]}
            ))),
            RemoteSchema::None
        );
        assert_eq!(
            RemoteSchema::from_collection_info(&info(Bson::Document(
                doc! {"$jsonSchema": schema.clone()}
            ))),
            RemoteSchema::Schema(schema)
        );
    }
}
