//! Schemas read from the server: a collection's `$jsonSchema` validator or
//! its Queryable Encryption `encryptedFields`, as `listCollections` reports
//! them.

use crate::{ClientError, Error};
use bson::{Bson, Document, doc};
use futures_util::future::BoxFuture;

/// What the server says about a collection's schema.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteSchema {
    /// The collection has no `$jsonSchema` validator (and no
    /// `encryptedFields`).
    None,
    /// No such collection (`listCollections` listed nothing): no schema,
    /// and automatic encryption does not remember it, so a collection
    /// created later with a validator or `encryptedFields` (by another
    /// client, or by `create_encrypted_collection`) is read as soon as it
    /// exists instead of being taken for plain until the cache expires.
    NoCollection,
    /// The validator's `$jsonSchema`.
    Schema(Document),
    /// The namespace is a view, which automatic encryption refuses.
    View,
    /// A validator csfle cannot read as a schema: `$jsonSchema` beside
    /// other query operators (the reason, without the validator).
    Invalid(String),
    /// A Queryable Encryption collection: its `options.encryptedFields`
    /// (read by the client strictly, as the server stores it). A
    /// `$jsonSchema` validator beside it is ignored, as libmongocrypt
    /// ignores it, unless it declares encrypted fields (then the entry is
    /// [`Invalid`](RemoteSchema::Invalid)). Without csfle's `qe` feature,
    /// commands on such a collection are refused.
    EncryptedFields(Document),
}

impl RemoteSchema {
    /// Reads a `listCollections` entry (`{name, type, options: {validator,
    /// encryptedFields}}`). A validator holding `$jsonSchema` and anything
    /// else is [`Invalid`](RemoteSchema::Invalid): the other operators
    /// could constrain encrypted fields in ways analysis does not see, as
    /// libmongocrypt also refuses. An `encryptedFields` makes the entry
    /// [`EncryptedFields`](RemoteSchema::EncryptedFields), whatever the
    /// validator, unless the validator declares FLE1 encrypted fields
    /// (`encrypt` or `encryptMetadata` anywhere in it): a collection uses
    /// one scheme, and one configured for both is refused.
    pub fn from_collection_info(info: &Document) -> Self {
        if info.get_str("type") == Ok("view") {
            return RemoteSchema::View;
        }
        let options = match info.get("options") {
            None => return RemoteSchema::None,
            Some(Bson::Document(options)) => options,
            Some(_) => return RemoteSchema::Invalid("the options are not a document".into()),
        };
        match options.get("encryptedFields") {
            None => {}
            Some(Bson::Document(fields)) => {
                return match options.get("validator") {
                    Some(v) if declares_encryption(v) => RemoteSchema::Invalid(
                        "the collection has both encryptedFields and a validator declaring FLE1 encrypted fields: a collection uses one scheme"
                            .into(),
                    ),
                    _ => RemoteSchema::EncryptedFields(fields.clone()),
                };
            }
            Some(_) => {
                return RemoteSchema::Invalid("options.encryptedFields is not a document".into());
            }
        }
        let Some(validator) = options.get("validator") else {
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
    has_key(
        &Bson::Document(validator.clone()),
        &["$jsonSchema", "encrypt", "encryptMetadata"],
    )
}

/// Whether a validator beside an `encryptedFields` declares FLE1
/// encryption: `encrypt` or `encryptMetadata` as a key anywhere (a
/// validator too deep to walk counts as declaring it).
fn declares_encryption(validator: &Bson) -> bool {
    has_key(validator, &["encrypt", "encryptMetadata"])
}

/// Whether any document in `root` has one of `keys` as a key (too deep to
/// walk counts as having it).
fn has_key(root: &Bson, keys: &[&str]) -> bool {
    struct Found;
    impl From<crate::nesting::TooDeep> for Found {
        fn from(_: crate::nesting::TooDeep) -> Self {
            Found
        }
    }
    crate::nesting::visit(root, &mut |v| match v {
        Bson::Document(d) if d.keys().any(|k| keys.contains(&k.as_str())) => Err(Found),
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
            Ok(first.map_or(
                RemoteSchema::NoCollection,
                RemoteSchema::from_collection_info,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(validator: Bson) -> Document {
        doc! {"name": "c", "type": "collection", "options": {"validator": validator}}
    }

    /// A collection's encryptedFields is its configuration, whatever
    /// plain validator it has beside; one declaring FLE1 encryption too is
    /// refused, as is an entry csfle cannot read.
    #[test]
    fn encrypted_fields_are_read_and_conflicts_refused() {
        let fields = doc! {"fields": [{"path": "a", "bsonType": "string"}]};
        let entry = |options: Bson| doc! {"name": "c", "type": "collection", "options": options};
        let read = |options: Bson| RemoteSchema::from_collection_info(&entry(options));
        assert_eq!(
            read(Bson::Document(doc! {"encryptedFields": fields.clone()})),
            RemoteSchema::EncryptedFields(fields.clone())
        );
        let plain = doc! {"$jsonSchema": {"properties": {"b": {"bsonType": "int"}}}};
        assert_eq!(
            read(Bson::Document(
                doc! {"validator": plain, "encryptedFields": fields.clone()}
            )),
            RemoteSchema::EncryptedFields(fields.clone())
        );
        let refused = [
            doc! {"validator": {"$jsonSchema": {"properties": {"b": {"encrypt": {}}}}},
            "encryptedFields": fields.clone()},
            doc! {"validator": {"$and": [{"encryptMetadata": {}}]},
            "encryptedFields": fields.clone()},
            doc! {"encryptedFields": 1},
        ];
        for options in refused {
            assert!(
                matches!(
                    read(Bson::Document(options.clone())),
                    RemoteSchema::Invalid(_)
                ),
                "{options}"
            );
        }
        assert!(matches!(read(Bson::Int32(1)), RemoteSchema::Invalid(_)));
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
