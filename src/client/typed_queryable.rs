//! Typed collections of types with Queryable Encryption fields
//! (`#[encrypted(queryable = …)]`): the type's `encryptedFields` checked
//! against the namespace's other configuration when
//! [`EncryptedDatabase::typed_collection`](super::EncryptedDatabase::typed_collection)
//! opens it, as a type's FLE1 schema is checked against the schema map and
//! the server's `$jsonSchema`.
//!
//! The server's configuration is read from `listCollections` (its
//! `options.encryptedFields`, and a `$jsonSchema` validator), directly:
//! the check must see the server's own entry, whatever
//! [`SchemaFetcher`](super::SchemaFetcher) the client was given. The
//! `encryptedFields` are compared parsed, defaults filled
//! ([`encrypted_fields_differences`]), never as bytes: the server writes
//! back what it was given in its own key order and types. Once the type
//! agrees with everything, its `encryptedFields` is registered as the
//! namespace's, and automatic encryption takes it from there.

use super::auto::AutoEncrypter;
#[cfg(feature = "qe")]
use super::auto::NsSchema;
#[cfg(feature = "qe")]
use super::remote_schema::RemoteSchema;
#[cfg(feature = "qe")]
use crate::qe::encrypted_fields::{
    EncryptedField, EncryptedFields, EncryptedFieldsError, FieldQueries, KeyIdOrAltName, ParseMode,
};
#[cfg(feature = "qe")]
use crate::qe::explicit::RangeOptions;
use crate::{ClientError, Error};
use bson::Document;
#[cfg(feature = "qe")]
use bson::{Bson, spec::ElementType};
#[cfg(feature = "qe")]
use std::collections::HashMap;

/// The refusal of a type whose Queryable Encryption fields cannot be
/// encrypted by this client.
#[cfg(not(feature = "qe"))]
fn not_encrypted(namespace: &str, rust_type: &'static str, reason: &str) -> Error {
    Error::Client(ClientError::InvalidSchema {
        namespace: namespace.to_owned(),
        remote: false,
        source: crate::schema::Error::Type {
            rust_type,
            field: "<type>",
            reason: reason.to_owned(),
        },
    })
}

/// Opens `db.coll` (`namespace`) as the typed collection of a type whose
/// `encryptedFields` is `document`
/// ([`SchemaTemplate::encrypted_fields`](crate::schema::typed::SchemaTemplate::encrypted_fields)):
/// the document parsed as a client's `encryptedFieldsMap` entry, its key
/// alternate names resolved through the key vault, then refused when the
/// schema map has an entry for the namespace, when the
/// `encryptedFieldsMap`'s entry or the server's `encryptedFields`
/// disagrees with the type's ([`ClientError::TypedSchemaMismatch`], one
/// line per differing field, the first differing field first), or when
/// the server's collection is a view or has a `$jsonSchema` with encrypted
/// fields. Once all of that agrees, the type's `encryptedFields` is
/// registered as the namespace's: automatic encryption encrypts the typed
/// collection's commands as Queryable Encryption's.
#[cfg(feature = "qe")]
pub(super) async fn open<T: 'static>(
    db: &mongodb::Database,
    auto: &AutoEncrypter,
    coll: &str,
    namespace: &str,
    rust_type: &'static str,
    document: &Document,
) -> Result<(), Error> {
    let fields = check(db, auto, coll, namespace, rust_type, document).await?;
    auto.register_typed::<T>(
        namespace,
        rust_type,
        NsSchema::Queryable(std::sync::Arc::new(fields)),
    )?;
    tracing::debug!(
        namespace,
        rust_type,
        "typed Queryable Encryption collection opened"
    );
    Ok(())
}

/// Without the `qe` feature a type with Queryable Encryption fields is
/// refused: nothing could encrypt them.
#[cfg(not(feature = "qe"))]
#[allow(clippy::extra_unused_type_parameters)] // the signature of the `qe` build's `open`
pub(super) async fn open<T: 'static>(
    db: &mongodb::Database,
    auto: &AutoEncrypter,
    coll: &str,
    namespace: &str,
    rust_type: &'static str,
    document: &Document,
) -> Result<(), Error> {
    let _ = (db, auto, coll, document);
    Err(not_encrypted(
        namespace,
        rust_type,
        "it has Queryable Encryption fields, which need csfle's `qe` feature",
    ))
}

/// The checks of [`open`]: the type's `encryptedFields`, parsed and its
/// keys resolved, when it agrees with the namespace's configuration.
#[cfg(feature = "qe")]
pub(super) async fn check(
    db: &mongodb::Database,
    auto: &AutoEncrypter,
    coll: &str,
    namespace: &str,
    rust_type: &'static str,
    document: &Document,
) -> Result<EncryptedFields, Error> {
    let qe_error = |e: EncryptedFieldsError| Error::from(e);
    let mut ours = EncryptedFields::from_document(document, ParseMode::Map).map_err(qe_error)?;
    let names: Vec<String> = ours
        .key_alt_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut ids: HashMap<String, [u8; 16]> = HashMap::new();
    for name in names {
        if let Some(key) = auto.client_encryption().get_key_by_alt_name(&name).await? {
            ids.insert(name, key.id.bytes());
        }
    }
    // A name no key has leaves its field unresolved: refused, naming it.
    ours.resolve_keys(|field| match field.key() {
        KeyIdOrAltName::AltName(name) => ids.get(name).copied(),
        _ => None,
    })
    .map_err(qe_error)?;
    let mismatch = |other, differences| {
        Error::Client(ClientError::TypedSchemaMismatch {
            namespace: namespace.to_owned(),
            rust_type,
            other,
            differences,
        })
    };
    if auto.schema_map_entry(namespace).is_some() {
        return Err(mismatch(
            "schema map",
            vec![
                "the schema map has an FLE1 $jsonSchema for the namespace, and the type has \
                 Queryable Encryption fields: one collection uses one scheme"
                    .to_owned(),
            ],
        ));
    }
    if let Some(entry) = auto.encrypted_fields_map_entry(namespace).await? {
        let differences = differences_from(&ours, &entry, MAP_LABELS);
        if !differences.is_empty() {
            return Err(mismatch("encryptedFieldsMap", differences));
        }
    }
    // The server's own entry, whatever fetcher the client was given.
    use super::remote_schema::{MongoSchemaFetcher, SchemaFetcher};
    let remote = MongoSchemaFetcher::new(db.client().clone())
        .collection_schema(db.name(), coll)
        .await?;
    let unreadable = |reason: String| {
        Error::Client(ClientError::UnreadableRemoteSchema {
            namespace: namespace.to_owned(),
            reason,
        })
    };
    match remote {
        RemoteSchema::None | RemoteSchema::NoCollection => Ok(ours),
        RemoteSchema::View => Err(Error::Client(ClientError::View {
            namespace: namespace.to_owned(),
        })),
        RemoteSchema::Invalid(reason) => Err(unreadable(reason)),
        RemoteSchema::Schema(validator) => {
            let schema = super::auto::server_schema(namespace, RemoteSchema::Schema(validator))?;
            if schema.is_some_and(|s| s.has_encrypted_fields()) {
                return Err(mismatch(
                    "server's schema",
                    vec![
                        "the server's collection has an FLE1 $jsonSchema with encrypted fields, \
                         and the type has Queryable Encryption fields: one collection uses one \
                         scheme"
                            .to_owned(),
                    ],
                ));
            }
            Ok(ours)
        }
        RemoteSchema::EncryptedFields(fields) => {
            // As the server stores it: `keyId`s only.
            let theirs = EncryptedFields::from_document(&fields, ParseMode::Remote)
                .map_err(|e| unreadable(e.to_string()))?;
            let differences = encrypted_fields_differences(&ours, &theirs);
            if !differences.is_empty() {
                return Err(mismatch("server's encryptedFields", differences));
            }
            Ok(ours)
        }
    }
}

/// How the other side of a comparison is named in its lines: "not in
/// <absent>", "… in the type, … <present>".
#[cfg(feature = "qe")]
#[derive(Clone, Copy)]
struct Labels {
    absent: &'static str,
    present: &'static str,
}

/// The server's `encryptedFields`.
#[cfg(feature = "qe")]
const SERVER_LABELS: Labels = Labels {
    absent: "the server's encryptedFields",
    present: "on the server",
};

/// The `encryptedFieldsMap`'s entry.
#[cfg(feature = "qe")]
const MAP_LABELS: Labels = Labels {
    absent: "the encryptedFieldsMap",
    present: "in the encryptedFieldsMap",
};

/// How a type's `encryptedFields` (`ours`, keys resolved) and the server's
/// (`theirs`) differ: one line per field, the type's fields first in their
/// order, then the fields only the server has. Empty when they agree.
///
/// Compared parsed, with the defaults the parser fills (contention 8,
/// sparsity 2, an integer type's limits as range bounds) and a range
/// index's trim factor as libmongocrypt uses it (given, or computed from
/// the domain): paths, key ids, BSON types and every index option. The
/// state collections' names are not compared (the type names none; the
/// server's are what the client uses).
#[cfg(feature = "qe")]
pub(crate) fn encrypted_fields_differences(
    ours: &EncryptedFields,
    theirs: &EncryptedFields,
) -> Vec<String> {
    differences_from(ours, theirs, SERVER_LABELS)
}

/// [`encrypted_fields_differences`] against `theirs`, named by `labels`.
#[cfg(feature = "qe")]
fn differences_from(
    ours: &EncryptedFields,
    theirs: &EncryptedFields,
    labels: Labels,
) -> Vec<String> {
    let mut out = Vec::new();
    for field in ours.fields() {
        match theirs.field(field.path()) {
            None => out.push(format!(
                "'{}' is encrypted in the type, not in {}",
                field.path(),
                labels.absent
            )),
            Some(other) => {
                if let Some(difference) = field_difference(field, other, labels) {
                    out.push(format!("'{}': {difference}", field.path()));
                }
            }
        }
    }
    for field in theirs.fields() {
        if ours.field(field.path()).is_none() {
            out.push(format!(
                "'{}' is encrypted in {}, not in the type",
                field.path(),
                labels.absent
            ));
        }
    }
    out
}

/// The first way two fields at one path differ.
#[cfg(feature = "qe")]
fn field_difference(
    ours: &EncryptedField,
    theirs: &EncryptedField,
    labels: Labels,
) -> Option<String> {
    if ours.key_id() != theirs.key_id() {
        let show = |id: Option<[u8; 16]>| {
            id.map_or_else(
                || "unresolved".to_owned(),
                |id| crate::KeyId::from_bytes(id).to_string(),
            )
        };
        return Some(format!(
            "key {} in the type, {} {}",
            show(ours.key_id()),
            show(theirs.key_id()),
            labels.present
        ));
    }
    if ours.bson_type() != theirs.bson_type() {
        return Some(format!(
            "bsonType '{}' in the type, '{}' {}",
            crate::ciphertext::type_name(ours.bson_type()),
            crate::ciphertext::type_name(theirs.bson_type()),
            labels.present
        ));
    }
    if !same_queries(ours, theirs) {
        return Some(format!(
            "queries {} in the type, {} {}",
            describe(ours.queries()),
            describe(theirs.queries()),
            labels.present
        ));
    }
    None
}

#[cfg(feature = "qe")]
fn same_queries(ours: &EncryptedField, theirs: &EncryptedField) -> bool {
    match (ours.queries(), theirs.queries()) {
        (FieldQueries::Range(a), FieldQueries::Range(b)) => {
            let (x, y) = (a.options(), b.options());
            a.contention() == b.contention()
                && x.min == y.min
                && x.max == y.max
                && x.sparsity == y.sparsity
                && x.precision == y.precision
                && effective_trim_factor(ours.bson_type(), x)
                    == effective_trim_factor(theirs.bson_type(), y)
        }
        (a, b) => a == b,
    }
}

/// The trim factor libmongocrypt uses for a range index: the one given,
/// else the default for the domain's bits (`None` when neither is known:
/// then only an equal absence agrees).
#[cfg(feature = "qe")]
fn effective_trim_factor(ty: ElementType, options: &RangeOptions) -> Option<i32> {
    if options.trim_factor.is_some() {
        return options.trim_factor;
    }
    let bits = domain_bits(ty, options)?;
    Some(crate::qe::range::trim_factor_default(bits, None))
}

/// The bit length of a range index's domain, as the parser and explicit
/// encryption compute it (bounds already filled for the integer types).
#[cfg(feature = "qe")]
fn domain_bits(ty: ElementType, options: &RangeOptions) -> Option<u32> {
    use crate::qe::range::encoding;
    let encoded = match (ty, &options.min, &options.max) {
        (ElementType::Int32, Some(Bson::Int32(lo)), Some(Bson::Int32(hi))) => {
            encoding::encode_int32(*lo, Some(*lo), Some(*hi)).ok()?
        }
        (ElementType::Int64, Some(Bson::Int64(lo)), Some(Bson::Int64(hi))) => {
            encoding::encode_int64(*lo, Some(*lo), Some(*hi)).ok()?
        }
        (ElementType::DateTime, Some(Bson::DateTime(lo)), Some(Bson::DateTime(hi))) => {
            let (lo, hi) = (lo.timestamp_millis(), hi.timestamp_millis());
            encoding::encode_int64(lo, Some(lo), Some(hi)).ok()?
        }
        (ElementType::Double, Some(Bson::Double(lo)), Some(Bson::Double(hi))) => {
            encoding::encode_double(*lo, Some(*lo), Some(*hi), options.precision).ok()?
        }
        (ElementType::Double, None, None) => return Some(64),
        (ElementType::Decimal128, None, None) => return Some(128),
        _ => return None,
    };
    Some(crate::qe::range::bit_length(encoded.max))
}

/// A field's queries, for messages (index parameters are not secret: the
/// server has them).
#[cfg(feature = "qe")]
fn describe(queries: &FieldQueries) -> String {
    fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(|| "unset".to_owned(), T::to_string)
    }
    match queries {
        FieldQueries::Unindexed => "none (unindexed)".to_owned(),
        FieldQueries::Equality { contention } => format!("equality (contention {contention})"),
        FieldQueries::Range(range) => {
            let o = range.options();
            format!(
                "range (contention {}, min {}, max {}, sparsity {}, trimFactor {}, precision {})",
                range.contention(),
                opt(&o.min),
                opt(&o.max),
                opt(&o.sparsity),
                opt(&o.trim_factor),
                opt(&o.precision)
            )
        }
        FieldQueries::Unsupported(query) => query.to_string(),
    }
}

#[cfg(all(test, feature = "qe"))]
mod tests {
    use super::*;
    use bson::doc;
    use bson::spec::BinarySubtype;

    fn uuid(byte: u8) -> bson::Binary {
        bson::Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![byte; 16],
        }
    }

    fn parse(doc: Document, mode: ParseMode) -> EncryptedFields {
        EncryptedFields::from_document(&doc, mode).unwrap()
    }

    fn ours() -> EncryptedFields {
        parse(
            doc! {"fields": [
                {"path": "ssn", "keyId": uuid(1), "bsonType": "string",
                 "queries": {"queryType": "equality"}},
                {"path": "age", "keyId": uuid(2), "bsonType": "int",
                 "queries": {"queryType": "range", "min": 0, "max": 200}},
                {"path": "address.zip", "keyId": uuid(3), "bsonType": "string"},
            ]},
            ParseMode::Map,
        )
    }

    #[test]
    fn the_same_fields_with_the_defaults_written_out_agree() {
        // What a server writes back: other key order, defaults filled,
        // int64 options, state collections named.
        let server = parse(
            doc! {
                "escCollection": "enxcol_.c.esc",
                "ecocCollection": "enxcol_.c.ecoc",
                "fields": [
                    {"keyId": uuid(3), "path": "address.zip", "bsonType": "string"},
                    {"keyId": uuid(2), "path": "age", "bsonType": "int",
                     "queries": {"queryType": "range", "contention": 8_i64,
                                 "sparsity": 2_i64, "trimFactor": 6, "min": 0, "max": 200}},
                    {"keyId": uuid(1), "path": "ssn", "bsonType": "string",
                     "queries": {"queryType": "equality", "contention": 8_i64}},
                ],
            },
            ParseMode::Remote,
        );
        assert_eq!(
            encrypted_fields_differences(&ours(), &server),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_disagreement_names_the_first_differing_field_first() {
        let server = parse(
            doc! {"fields": [
                {"path": "ssn", "keyId": uuid(1), "bsonType": "string",
                 "queries": {"queryType": "equality", "contention": 4}},
                {"path": "age", "keyId": uuid(9), "bsonType": "int",
                 "queries": {"queryType": "range", "min": 0, "max": 200}},
                {"path": "notes", "keyId": uuid(4), "bsonType": "string"},
            ]},
            ParseMode::Remote,
        );
        let differences = encrypted_fields_differences(&ours(), &server);
        assert_eq!(differences.len(), 4, "{differences:?}");
        assert!(
            differences[0].starts_with(
                "'ssn': queries equality (contention 8) in the type, equality (contention 4)"
            ),
            "{differences:?}"
        );
        assert!(
            differences[1].starts_with(
                "'age': key 02020202-0202-0202-0202-020202020202 in the type, 09090909"
            ),
            "{differences:?}"
        );
        assert_eq!(
            differences[2],
            "'address.zip' is encrypted in the type, not in the server's encryptedFields"
        );
        assert_eq!(
            differences[3],
            "'notes' is encrypted in the server's encryptedFields, not in the type"
        );
    }

    #[test]
    fn range_options_and_types_are_compared() {
        let with = |age: Document| {
            parse(
                doc! {"fields": [
                    {"path": "ssn", "keyId": uuid(1), "bsonType": "string",
                     "queries": {"queryType": "equality"}},
                    age,
                    {"path": "address.zip", "keyId": uuid(3), "bsonType": "string"},
                ]},
                ParseMode::Remote,
            )
        };
        let cases = [
            // Another bound.
            doc! {"path": "age", "keyId": uuid(2), "bsonType": "int",
            "queries": {"queryType": "range", "min": 0, "max": 100}},
            // Another sparsity.
            doc! {"path": "age", "keyId": uuid(2), "bsonType": "int",
            "queries": {"queryType": "range", "min": 0, "max": 200, "sparsity": 1}},
            // A trim factor other than the default (6 for 8 bits).
            doc! {"path": "age", "keyId": uuid(2), "bsonType": "int",
            "queries": {"queryType": "range", "min": 0, "max": 200, "trimFactor": 1}},
            // Equality instead of range.
            doc! {"path": "age", "keyId": uuid(2), "bsonType": "int",
            "queries": {"queryType": "equality"}},
            // Unindexed instead of range.
            doc! {"path": "age", "keyId": uuid(2), "bsonType": "int"},
        ];
        for age in cases {
            let differences = encrypted_fields_differences(&ours(), &with(age.clone()));
            assert_eq!(differences.len(), 1, "{age}: {differences:?}");
            assert!(
                differences[0].starts_with("'age': queries range"),
                "{differences:?}"
            );
        }
        let long = doc! {"path": "age", "keyId": uuid(2), "bsonType": "long",
        "queries": {"queryType": "range"}};
        let differences = encrypted_fields_differences(&ours(), &with(long));
        assert_eq!(
            differences,
            ["'age': bsonType 'int' in the type, 'long' on the server"]
        );
    }

    #[test]
    fn the_trim_factor_default_follows_the_domain() {
        // A domain of 0..=3 has 2 bits: the default trim factor is 1.
        let field = |trim: Option<i32>| {
            let mut queries = doc! {"queryType": "range", "min": 0, "max": 3};
            if let Some(t) = trim {
                queries.insert("trimFactor", t);
            }
            parse(
                doc! {"fields": [{"path": "n", "keyId": uuid(1), "bsonType": "int",
                "queries": queries}]},
                ParseMode::Remote,
            )
        };
        assert!(encrypted_fields_differences(&field(None), &field(Some(1))).is_empty());
        assert_eq!(
            encrypted_fields_differences(&field(None), &field(Some(0))).len(),
            1
        );
    }

    #[test]
    fn the_server_entry_is_read_strictly() {
        // What `check` reads of the server's entry: `RemoteSchema`'s
        // reading of the options, then the strict parse of the server's form.
        let entry = |options: Bson| doc! {"name": "c", "type": "collection", "options": options};
        let server_encrypted_fields =
            |info: &Document| match RemoteSchema::from_collection_info(info) {
                RemoteSchema::EncryptedFields(fields) => {
                    EncryptedFields::from_document(&fields, ParseMode::Remote)
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
                RemoteSchema::None => Ok(None),
                other => Err(format!("{other:?}")),
            };
        assert_eq!(
            server_encrypted_fields(&entry(Bson::Document(doc! {}))),
            Ok(None)
        );
        assert!(server_encrypted_fields(&entry(Bson::Int32(1))).is_err());
        assert!(
            server_encrypted_fields(&entry(Bson::Document(doc! {"encryptedFields": 1}))).is_err()
        );
        // The server's form has no keyAltName.
        let alt = doc! {"encryptedFields": {"fields": [
        {"path": "a", "keyAltName": "k", "bsonType": "string"}]}};
        assert!(server_encrypted_fields(&entry(Bson::Document(alt))).is_err());
        let good = doc! {"encryptedFields": {"fields": [
        {"path": "a", "keyId": uuid(1), "bsonType": "string"}]}};
        let parsed = server_encrypted_fields(&entry(Bson::Document(good)))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.fields()[0].path(), "a");
    }
}
