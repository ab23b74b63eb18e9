//! The verification of commands sent with `bypass_query_analysis`
//! (`csfle::analysis::verify_bypassed`), proved by tables. Pure: no
//! server, keys from the local KMS.
//!
//! The hostile tables hold commands, on an FLE1 collection (a schema map
//! entry) and on a Queryable Encryption collection (an `encryptedFields`),
//! that would send a value the schema encrypts without encrypting it: a
//! plaintext in an inserted document (top level or nested), a `$set`, a
//! `$setOnInsert` of an upsert, a replacement, a filter (`find`, `count`,
//! `distinct`, `delete`, `update`, `findAndModify`, an aggregate `$match`,
//! an `explain`), an `$in` list; a marking or placeholder left in (each
//! holds its value in plaintext); a ciphertext of the wrong kind (FLE1
//! where QE is needed and back, a find payload written, an insert payload
//! queried, an unindexed value in an indexed field, a random ciphertext
//! in a deterministic field). Each must be refused with
//! `Error::PlaintextUnderBypass` naming the field's path, its message and
//! `Debug` holding no plaintext.
//!
//! The legitimate tables hold the same kinds of commands with every such
//! value a real ciphertext of the right kind, made by the explicit
//! encrypters (`ExplicitEncrypter::encrypt` for FLE1, `encrypt_qe` and
//! `encrypt_qe_expression` for QE): each must pass. Every other refusal of
//! analysis stands (checked last).

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use csfle::analysis::{Error, Namespace, NamespaceSchema, verify_bypassed};
use csfle::keyvault::KeyRing;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
#[cfg(feature = "qe")]
use csfle::qe::encrypted_fields::{EncryptedFields, ParseMode};
#[cfg(feature = "qe")]
use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions, QueryType, RangeOptions};
use csfle::schema::{EncryptionSchema, SchemaSource};
use csfle::{Algorithm, ExplicitEncrypter, KeyId, KeyRef};

/// The plaintext every hostile command carries where a string is
/// encrypted: no error may show it.
const SECRET: &str = "457-55-5462";
/// A second plaintext, for commands with two values.
const SECRET2: &str = "457-55-0000";
/// The plaintext of the range field `age` in hostile commands (outside
/// the index's bounds: verification reads no value, so none is checked).
const SECRET_AGE: i32 = 1_589_831_585;

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

/// One data key under the local KMS, the encrypter over it, and the
/// collections' schemas naming it:
///
/// * `app.people` (FLE1): `ssn` deterministic, `notes` random,
///   `med.record` deterministic;
/// * `app.q` (QE): `ssn` equality, `notes` unindexed, `med.record`
///   equality, `age` range on ints (0..200);
/// * `app.unknown`: not looked up; anything else: no schema.
struct Fixture {
    enc: ExplicitEncrypter<KeyRing>,
    key: KeyId,
    people: EncryptionSchema,
    #[cfg(feature = "qe")]
    q: EncryptedFields,
}

impl Fixture {
    fn new() -> Self {
        let local = ProviderName::of_kind(ProviderKind::Local);
        let kms =
            KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[7; 96]).unwrap());
        let key = csfle::create_data_key(&kms, &local, vec![], None).unwrap();
        let id = key.id;
        let uuid = Bson::Binary(id.to_binary());
        #[cfg(feature = "qe")]
        let other_key = |n: u8| Bson::Binary(KeyId::from_bytes([n; 16]).to_binary());
        let encrypt = |algorithm: &str| {
            doc! {"encrypt": {"keyId": [uuid.clone()], "bsonType": "string", "algorithm": algorithm}}
        };
        let people = EncryptionSchema::parse(
            &doc! {"bsonType": "object", "properties": {
                "ssn": encrypt(DET),
                "notes": encrypt(RANDOM),
                "med": {"bsonType": "object", "properties": {"record": encrypt(DET)}},
            }},
            SchemaSource::Local,
        )
        .unwrap();
        #[cfg(feature = "qe")]
        let q = EncryptedFields::from_document(
            &doc! {"fields": [
                {"path": "ssn", "keyId": uuid.clone(), "bsonType": "string",
                 "queries": {"queryType": "equality", "contention": 0_i64}},
                // QE needs a key per field; only the payloads' kinds are
                // checked here, so the other fields' keys need not exist.
                {"path": "notes", "keyId": other_key(2), "bsonType": "string"},
                {"path": "med.record", "keyId": other_key(3), "bsonType": "string",
                 "queries": {"queryType": "equality", "contention": 0_i64}},
                {"path": "age", "keyId": other_key(4), "bsonType": "int",
                 "queries": {"queryType": "range", "contention": 0_i64, "min": 0, "max": 200,
                             "sparsity": 1_i64, "trimFactor": 1}},
            ]},
            ParseMode::Map,
        )
        .unwrap();
        Fixture {
            enc: ExplicitEncrypter::new(KeyRing::new([key], kms).unwrap()),
            key: id,
            people,
            #[cfg(feature = "qe")]
            q,
        }
    }

    fn lookup(&self, ns: &Namespace) -> NamespaceSchema<'_> {
        match ns.to_string().as_str() {
            "app.people" => NamespaceSchema::Known(Some(&self.people)),
            #[cfg(feature = "qe")]
            "app.q" => NamespaceSchema::Queryable(&self.q),
            "app.unknown" => NamespaceSchema::Unknown,
            _ => NamespaceSchema::Known(None),
        }
    }

    /// `command`, run on `app`, verified as a bypassed command.
    fn verify(&self, command: &Document) -> Result<(), Error> {
        verify_bypassed(command, "app", &|ns: &Namespace| self.lookup(ns))
    }

    /// An FLE1 ciphertext of `v` (first byte 1 deterministic, 2 random).
    fn fle1(&self, v: &str, algorithm: Algorithm) -> Bson {
        Bson::Binary(
            self.enc
                .encrypt(&Bson::from(v), &KeyRef::Id(self.key), algorithm)
                .unwrap(),
        )
    }

    fn det(&self, v: &str) -> Bson {
        self.fle1(v, Algorithm::Deterministic)
    }

    fn rnd(&self, v: &str) -> Bson {
        self.fle1(v, Algorithm::Random)
    }

    /// A QE value of `v` made with `options`, checked to be of `kind`.
    #[cfg(feature = "qe")]
    fn qe(&self, v: Bson, options: &QeEncryptOptions<'_>, kind: u8) -> Bson {
        let b = self
            .enc
            .encrypt_qe(&v, &KeyRef::Id(self.key), options)
            .unwrap();
        assert_eq!(b.bytes[0], kind);
        Bson::Binary(b)
    }

    /// An FLE2InsertUpdatePayloadV2 (11) of an equality field.
    #[cfg(feature = "qe")]
    fn insert(&self, v: &str) -> Bson {
        let options = QeEncryptOptions::new(QeAlgorithm::Indexed).with_contention_factor(0);
        self.qe(Bson::from(v), &options, 11)
    }

    /// An FLE2UnindexedEncryptedValueV2 (16).
    #[cfg(feature = "qe")]
    fn unindexed(&self, v: &str) -> Bson {
        self.qe(
            Bson::from(v),
            &QeEncryptOptions::new(QeAlgorithm::Unindexed),
            16,
        )
    }

    /// An FLE2FindEqualityPayloadV2 (12).
    #[cfg(feature = "qe")]
    fn find(&self, v: &str) -> Bson {
        let options = QeEncryptOptions::new(QeAlgorithm::Indexed)
            .with_contention_factor(0)
            .with_query_type(QueryType::Equality);
        self.qe(Bson::from(v), &options, 12)
    }

    /// `age`'s index options.
    #[cfg(feature = "qe")]
    fn age_range() -> RangeOptions {
        RangeOptions::default()
            .with_min(0)
            .with_max(200)
            .with_sparsity(1)
            .with_trim_factor(1)
    }

    /// An FLE2InsertUpdatePayloadV2 (11) of the range field `age`.
    #[cfg(feature = "qe")]
    fn age(&self, v: i32) -> Bson {
        let range = Self::age_range();
        let options = QeEncryptOptions::new(QeAlgorithm::Range)
            .with_contention_factor(0)
            .with_range_options(&range);
        self.qe(Bson::Int32(v), &options, 11)
    }

    /// `{$and: [{age: {$gte: P}}, {age: {$lte: S}}]}`, P and S range find
    /// payloads (13), as `encrypt_qe_expression` makes them.
    #[cfg(feature = "qe")]
    fn age_between(&self, low: i32, high: i32) -> Document {
        let range = Self::age_range();
        let options = QeEncryptOptions::new(QeAlgorithm::Range)
            .with_contention_factor(0)
            .with_query_type(QueryType::Range)
            .with_range_options(&range);
        let expr = bson::RawDocumentBuf::from_document(
            &doc! {"$and": [{"age": {"$gte": low}}, {"age": {"$lte": high}}]},
        )
        .unwrap();
        let out = self
            .enc
            .encrypt_qe_expression(&expr, &KeyRef::Id(self.key), &options)
            .unwrap()
            .to_document()
            .unwrap();
        let mut kinds = Vec::new();
        first_bytes(&Bson::Document(out.clone()), &mut kinds);
        assert_eq!(kinds, [13, 13], "{out:?}");
        out
    }
}

/// The first bytes of every subtype-6 binary in `v`, in document order.
#[cfg(feature = "qe")]
fn first_bytes(v: &Bson, out: &mut Vec<u8>) {
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            out.extend(b.bytes.first().copied());
        }
        Bson::Document(d) => d.values().for_each(|v| first_bytes(v, out)),
        Bson::Array(a) => a.iter().for_each(|v| first_bytes(v, out)),
        _ => {}
    }
}

/// A subtype-6 binary: `first`, then the BSON of `body`.
fn encrypted_with(first: u8, body: &Document) -> Bson {
    let mut bytes = vec![first];
    body.to_writer(&mut bytes).unwrap();
    Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    })
}

/// An FLE1 marking of `SECRET` (first byte 0), as query analysis makes
/// them: `v` holds the plaintext.
fn marking(f: &Fixture) -> Bson {
    encrypted_with(
        0,
        &doc! {"a": 1, "ki": Bson::Binary(f.key.to_binary()), "v": SECRET},
    )
}

/// A QE placeholder of `SECRET` (first byte 3): `v` holds the plaintext.
fn placeholder(f: &Fixture) -> Bson {
    let ki = Bson::Binary(f.key.to_binary());
    encrypted_with(
        3,
        &doc! {"t": 1, "a": 2, "ki": ki.clone(), "ku": ki, "v": SECRET, "cm": 0_i64},
    )
}

/// `SECRET` as a binary of the generic subtype: bytes, not ciphertext.
fn generic_binary() -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: SECRET.as_bytes().to_vec(),
    })
}

fn update(coll: &str, q: Document, u: Bson) -> Document {
    doc! {"update": coll, "updates": [{"q": q, "u": u}]}
}

fn upsert(coll: &str, q: Document, u: Bson) -> Document {
    doc! {"update": coll, "updates": [{"q": q, "u": u, "upsert": true}]}
}

/// Runs a hostile table: each command refused with
/// `PlaintextUnderBypass` naming its path, no plaintext in the error.
fn assert_refused(f: &Fixture, table: Vec<(&str, Document, &str)>) {
    let age = SECRET_AGE.to_string();
    for (name, command, want) in table {
        let err = match f.verify(&command) {
            Ok(()) => panic!("{name}: accepted {command:?}"),
            Err(e) => e,
        };
        match &err {
            Error::PlaintextUnderBypass { path, .. } => {
                assert_eq!(path, want, "{name}: {err}");
            }
            other => panic!("{name}: refused for another reason: {other}"),
        }
        let message = err.to_string();
        let debug = format!("{err:?}");
        assert!(message.contains(&format!("'{want}'")), "{name}: {message}");
        assert!(message.contains("bypassQueryAnalysis"), "{name}: {message}");
        for text in [&message, &debug] {
            assert!(
                !text.contains(SECRET) && !text.contains(SECRET2) && !text.contains(&age),
                "{name}: a plaintext in the error: {text}"
            );
        }
    }
}

/// Runs a legitimate table: each command passes.
fn assert_accepted(f: &Fixture, table: Vec<(&str, Document)>) {
    for (name, command) in table {
        if let Err(e) = f.verify(&command) {
            panic!("{name}: refused: {e}");
        }
    }
}

fn fle1_hostile(f: &Fixture) -> Vec<(&'static str, Document, &'static str)> {
    let c = || f.det(SECRET2);
    vec![
        (
            "insert: plaintext",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": SECRET}]},
            "ssn",
        ),
        (
            "insert: plaintext in a random field",
            doc! {"insert": "people", "documents": [{"_id": 1, "notes": SECRET}]},
            "notes",
        ),
        (
            "insert: nested plaintext",
            doc! {"insert": "people", "documents": [{"_id": 1, "med": {"record": SECRET}}]},
            "med.record",
        ),
        (
            "insert: the second document's plaintext",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": c()}, {"_id": 2, "ssn": SECRET}]},
            "ssn",
        ),
        (
            "insert: a marking left in",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": marking(f)}]},
            "ssn",
        ),
        (
            "insert: a QE placeholder",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": placeholder(f)}]},
            "ssn",
        ),
        (
            "insert: a random ciphertext in a deterministic field",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": f.rnd(SECRET2)}]},
            "ssn",
        ),
        (
            "insert: a deterministic ciphertext in a random field",
            doc! {"insert": "people", "documents": [{"_id": 1, "notes": c()}]},
            "notes",
        ),
        (
            "insert: a generic binary",
            doc! {"insert": "people", "documents": [{"_id": 1, "ssn": generic_binary()}]},
            "ssn",
        ),
        (
            "update: $set",
            update(
                "people",
                doc! {"_id": 1},
                doc! {"$set": {"ssn": SECRET}}.into(),
            ),
            "ssn",
        ),
        (
            "update: $set of the document holding the field",
            update(
                "people",
                doc! {"_id": 1},
                doc! {"$set": {"med": {"record": SECRET}}}.into(),
            ),
            "med.record",
        ),
        (
            "update: $set of a dotted path",
            update(
                "people",
                doc! {"_id": 1},
                doc! {"$set": {"med.record": SECRET}}.into(),
            ),
            "med.record",
        ),
        (
            "upsert: $setOnInsert",
            upsert(
                "people",
                doc! {"_id": 1},
                doc! {"$setOnInsert": {"ssn": SECRET}}.into(),
            ),
            "ssn",
        ),
        (
            "update: replacement",
            update(
                "people",
                doc! {"_id": 1},
                doc! {"_id": 1, "ssn": SECRET}.into(),
            ),
            "ssn",
        ),
        (
            "update: the filter",
            update(
                "people",
                doc! {"ssn": SECRET},
                doc! {"$set": {"name": "x"}}.into(),
            ),
            "ssn",
        ),
        (
            "find: implicit equality",
            doc! {"find": "people", "filter": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "find: $in list",
            doc! {"find": "people", "filter": {"ssn": {"$in": [c(), SECRET]}}},
            "ssn",
        ),
        (
            "find: $nin list",
            doc! {"find": "people", "filter": {"ssn": {"$nin": [SECRET]}}},
            "ssn",
        ),
        (
            "find: $ne",
            doc! {"find": "people", "filter": {"ssn": {"$ne": SECRET}}},
            "ssn",
        ),
        (
            "find: below $or",
            doc! {"find": "people", "filter": {"$or": [{"name": "x"}, {"med.record": SECRET}]}},
            "med.record",
        ),
        (
            "count",
            doc! {"count": "people", "query": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "distinct",
            doc! {"distinct": "people", "key": "name", "query": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "delete",
            doc! {"delete": "people", "deletes": [{"q": {"ssn": SECRET}, "limit": 1}]},
            "ssn",
        ),
        (
            "aggregate: $match",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": SECRET}}], "cursor": {}},
            "ssn",
        ),
        (
            "findAndModify: update",
            doc! {"findAndModify": "people", "query": {"_id": 1}, "update": {"$set": {"ssn": SECRET}}},
            "ssn",
        ),
        (
            "findAndModify: query",
            doc! {"findAndModify": "people", "query": {"ssn": SECRET}, "remove": true},
            "ssn",
        ),
        (
            "findAndModify: replacement upsert",
            doc! {"findAndModify": "people", "query": {"_id": 1}, "update": {"_id": 1, "notes": SECRET}, "upsert": true},
            "notes",
        ),
        (
            "explain: find",
            doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}, "verbosity": "queryPlanner"},
            "ssn",
        ),
    ]
}

#[test]
fn fle1_plaintext_where_the_schema_encrypts_is_refused() {
    let f = Fixture::new();
    let table = fle1_hostile(&f);
    assert!(table.len() >= 25, "{}", table.len());
    assert_refused(&f, table);
}

#[test]
fn fle1_explicitly_encrypted_commands_pass() {
    let f = Fixture::new();
    let table: Vec<(&str, Document)> = vec![
        (
            "insert: every encrypted field, plain fields around them",
            doc! {"insert": "people", "documents": [
                {"_id": 1, "name": "x", "ssn": f.det(SECRET), "notes": f.rnd(SECRET2), "med": {"record": f.det(SECRET2), "plain": 1}},
                {"_id": 2, "name": "y"},
            ], "ordered": true},
        ),
        (
            "find: equality and $in",
            doc! {"find": "people", "filter": {"ssn": f.det(SECRET), "med.record": {"$in": [f.det(SECRET), f.det(SECRET2)]}}},
        ),
        (
            "update: filter and $set",
            update(
                "people",
                doc! {"ssn": f.det(SECRET)},
                doc! {"$set": {"ssn": f.det(SECRET2), "notes": f.rnd(SECRET), "name": "z"}}.into(),
            ),
        ),
        (
            "upsert: replacement",
            upsert(
                "people",
                doc! {"_id": 1},
                doc! {"_id": 1, "ssn": f.det(SECRET), "med": {"record": f.det(SECRET)}}.into(),
            ),
        ),
        (
            "aggregate: $match",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": {"$eq": f.det(SECRET)}}}, {"$limit": 1}], "cursor": {}},
        ),
        (
            "findAndModify: query and update",
            doc! {"findAndModify": "people", "query": {"ssn": f.det(SECRET)}, "update": {"$set": {"notes": f.rnd(SECRET)}}, "new": true},
        ),
        (
            "delete",
            doc! {"delete": "people", "deletes": [{"q": {"ssn": {"$ne": f.det(SECRET)}}, "limit": 0}]},
        ),
        (
            "find: plain fields only",
            doc! {"find": "people", "filter": {"name": SECRET}, "sort": {"name": 1}},
        ),
        (
            "a collection without a schema: plaintext anywhere",
            doc! {"insert": "plain", "documents": [{"_id": 1, "ssn": SECRET}]},
        ),
    ];
    assert_accepted(&f, table);
}

#[cfg(feature = "qe")]
fn qe_hostile(f: &Fixture) -> Vec<(&'static str, Document, &'static str)> {
    vec![
        (
            "insert: plaintext in an equality field",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": SECRET}], "ordered": true},
            "ssn",
        ),
        (
            "insert: plaintext in an unindexed field",
            doc! {"insert": "q", "documents": [{"_id": 1, "notes": SECRET}]},
            "notes",
        ),
        (
            "insert: nested plaintext",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": f.insert(SECRET2), "med": {"record": SECRET}}]},
            "med.record",
        ),
        (
            "insert: plaintext in a range field",
            doc! {"insert": "q", "documents": [{"_id": 1, "age": SECRET_AGE}]},
            "age",
        ),
        (
            "insert: a placeholder left in",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": placeholder(f)}]},
            "ssn",
        ),
        (
            "insert: an FLE1 marking",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": marking(f)}]},
            "ssn",
        ),
        (
            "insert: an FLE1 ciphertext where a QE payload is needed",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": f.det(SECRET2)}]},
            "ssn",
        ),
        (
            "insert: a find payload",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": f.find(SECRET2)}]},
            "ssn",
        ),
        (
            "insert: an unindexed value in an indexed field",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": f.unindexed(SECRET2)}]},
            "ssn",
        ),
        (
            "insert: an insert payload in an unindexed field",
            doc! {"insert": "q", "documents": [{"_id": 1, "notes": f.insert(SECRET2)}]},
            "notes",
        ),
        (
            "update: $set",
            update("q", doc! {"_id": 1}, doc! {"$set": {"ssn": SECRET}}.into()),
            "ssn",
        ),
        (
            "update: $set of the document holding the field",
            update(
                "q",
                doc! {"_id": 1},
                doc! {"$set": {"med": {"record": SECRET}}}.into(),
            ),
            "med.record",
        ),
        (
            "upsert: $setOnInsert",
            upsert(
                "q",
                doc! {"_id": 1},
                doc! {"$set": {"name": "x"}, "$setOnInsert": {"notes": SECRET}}.into(),
            ),
            "notes",
        ),
        (
            "update: replacement",
            update("q", doc! {"_id": 1}, doc! {"_id": 1, "ssn": SECRET}.into()),
            "ssn",
        ),
        (
            "update: the filter",
            update(
                "q",
                doc! {"ssn": SECRET},
                doc! {"$set": {"name": "x"}}.into(),
            ),
            "ssn",
        ),
        (
            "find: implicit equality",
            doc! {"find": "q", "filter": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "find: an insert payload queried",
            doc! {"find": "q", "filter": {"ssn": f.insert(SECRET2)}},
            "ssn",
        ),
        (
            "find: $in list",
            doc! {"find": "q", "filter": {"ssn": {"$in": [f.find(SECRET2), SECRET]}}},
            "ssn",
        ),
        (
            "find: range bound",
            doc! {"find": "q", "filter": {"age": {"$gte": SECRET_AGE}}},
            "age",
        ),
        (
            "find: range equality",
            doc! {"find": "q", "filter": {"age": SECRET_AGE}},
            "age",
        ),
        (
            "find: the second bound of a range",
            {
                let between = f.age_between(23, 35);
                let low = between.get_array("$and").unwrap()[0].clone();
                doc! {"find": "q", "filter": {"$and": [low, {"age": {"$lte": SECRET_AGE}}]}}
            },
            "age",
        ),
        (
            "find: an equality find payload on a range field",
            doc! {"find": "q", "filter": {"age": {"$gt": f.find(SECRET2)}}},
            "age",
        ),
        (
            "count",
            doc! {"count": "q", "query": {"med.record": SECRET}},
            "med.record",
        ),
        (
            "delete",
            doc! {"delete": "q", "deletes": [{"q": {"ssn": SECRET}, "limit": 1}]},
            "ssn",
        ),
        (
            "aggregate: $match",
            doc! {"aggregate": "q", "pipeline": [{"$match": {"$or": [{"ssn": SECRET}]}}], "cursor": {}},
            "ssn",
        ),
        (
            "findAndModify: update",
            doc! {"findAndModify": "q", "query": {"_id": 1}, "update": {"$set": {"ssn": SECRET}}},
            "ssn",
        ),
        (
            "findAndModify: query",
            doc! {"findAndModify": "q", "query": {"ssn": SECRET}, "remove": true},
            "ssn",
        ),
        (
            "explain: find",
            doc! {"explain": {"find": "q", "filter": {"ssn": SECRET}}, "verbosity": "queryPlanner"},
            "ssn",
        ),
        (
            "bulkWrite: plaintext in an inserted document",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 1, "ssn": f.insert(SECRET2)}}, {"insert": 0, "document": {"_id": 2, "notes": SECRET}}], "nsInfo": [{"ns": "app.q"}]},
            "notes",
        ),
        (
            "bulkWrite: plaintext in an update's filter",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {"ssn": SECRET}, "updateMods": {"$set": {"name": "n"}}, "multi": false}], "nsInfo": [{"ns": "app.q"}]},
            "ssn",
        ),
        (
            "bulkWrite: plaintext in an update's $set",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {"_id": 1}, "updateMods": {"$set": {"med.record": SECRET}}, "multi": false}], "nsInfo": [{"ns": "app.q"}]},
            "med.record",
        ),
        (
            "bulkWrite: plaintext in a delete's filter",
            doc! {"bulkWrite": 1, "ops": [{"delete": 0, "filter": {"ssn": SECRET}, "multi": false}], "nsInfo": [{"ns": "app.q"}]},
            "ssn",
        ),
    ]
}

#[cfg(feature = "qe")]
#[test]
fn qe_plaintext_where_the_encrypted_fields_encrypt_is_refused() {
    let f = Fixture::new();
    let table = qe_hostile(&f);
    assert!(table.len() >= 25, "{}", table.len());
    assert_refused(&f, table);
}

#[cfg(feature = "qe")]
#[test]
fn qe_explicitly_encrypted_commands_pass() {
    let f = Fixture::new();
    let table: Vec<(&str, Document)> = vec![
        (
            "insert: the specification's shape (an indexed field's insert payload)",
            doc! {"insert": "q", "documents": [{"_id": 1, "ssn": f.insert(SECRET)}], "ordered": true},
        ),
        (
            "insert: every kind of field, plain fields around them",
            doc! {"insert": "q", "documents": [
                {"_id": 1, "name": "x", "ssn": f.insert(SECRET), "notes": f.unindexed(SECRET2),
                 "med": {"record": f.insert(SECRET2), "plain": 1}, "age": f.age(30)},
            ]},
        ),
        (
            "find: equality and $in",
            doc! {"find": "q", "filter": {"ssn": f.find(SECRET), "med.record": {"$in": [f.find(SECRET), f.find(SECRET2)]}}},
        ),
        (
            "find: a range expression",
            doc! {"find": "q", "filter": f.age_between(23, 35)},
        ),
        (
            "upsert: filter, $set and $setOnInsert",
            upsert(
                "q",
                doc! {"ssn": f.find(SECRET)},
                doc! {"$set": {"ssn": f.insert(SECRET2)}, "$setOnInsert": {"notes": f.unindexed(SECRET)}}.into(),
            ),
        ),
        (
            "update: replacement",
            update(
                "q",
                doc! {"_id": 1},
                doc! {"_id": 1, "ssn": f.insert(SECRET), "age": f.age(7)}.into(),
            ),
        ),
        (
            "findAndModify: query and update",
            doc! {"findAndModify": "q", "query": {"ssn": f.find(SECRET)}, "update": {"$set": {"notes": f.unindexed(SECRET)}}},
        ),
        (
            "count",
            doc! {"count": "q", "query": {"ssn": {"$eq": f.find(SECRET)}}},
        ),
        (
            "delete",
            doc! {"delete": "q", "deletes": [{"q": {"ssn": f.find(SECRET)}, "limit": 1}]},
        ),
        (
            "aggregate: $match",
            doc! {"aggregate": "q", "pipeline": [{"$match": {"ssn": f.find(SECRET)}}, {"$limit": 1}], "cursor": {}},
        ),
        (
            "explain: find",
            doc! {"explain": {"find": "q", "filter": {"ssn": f.find(SECRET)}}, "verbosity": "queryPlanner"},
        ),
        (
            "find: plain fields only",
            doc! {"find": "q", "filter": {"_id": 1}},
        ),
        (
            "bulkWrite: inserts of payloads",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 1, "ssn": f.insert(SECRET)}}, {"insert": 0, "document": {"_id": 2, "notes": f.unindexed(SECRET2)}}], "nsInfo": [{"ns": "app.q"}]},
        ),
        (
            "bulkWrite: one update by a find payload",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {"ssn": f.find(SECRET)}, "updateMods": {"$set": {"ssn": f.insert(SECRET2)}}, "multi": false}], "nsInfo": [{"ns": "app.q"}]},
        ),
    ];
    assert_accepted(&f, table);
}

/// A marking or placeholder where nothing is encrypted is refused too
/// (each holds its value in plaintext); nesting is bounded.
#[test]
fn markings_and_placeholders_anywhere_are_refused() {
    let f = Fixture::new();
    let cmd = doc! {"insert": "people", "documents": [{"_id": 1, "name": marking(&f)}]};
    assert!(matches!(f.verify(&cmd), Err(Error::MarkingInInput)));
    let cmd = doc! {"insert": "plain", "documents": [{"_id": 1, "name": placeholder(&f)}]};
    assert!(matches!(f.verify(&cmd), Err(Error::PlaceholderInInput)));
    let mut deep = Bson::from(1);
    for _ in 0..300 {
        deep = Bson::Document(doc! {"a": deep});
    }
    let cmd = doc! {"insert": "people", "documents": [{"_id": 1, "deep": deep}]};
    assert!(matches!(f.verify(&cmd), Err(Error::TooDeep(_))));
}

/// What analysis refuses stays refused: commands, operators, stages and
/// expressions it cannot tell are safe; a namespace it cannot look up.
/// Commands sent without analysis pass unread.
#[test]
fn the_other_refusals_of_analysis_stand() {
    let f = Fixture::new();
    let refused = [
        doc! {"find": "people", "filter": {"$where": "this.ssn == 1"}},
        doc! {"find": "people", "filter": {"notes": f.rnd(SECRET)}},
        doc! {"find": "people", "filter": {"$expr": {"$eq": ["$ssn", "$name"]}}},
        doc! {"aggregate": "people", "pipeline": [{"$out": "copy"}], "cursor": {}},
        doc! {"find": "people", "filter": {}, "sort": {"ssn": 1}},
        doc! {"update": "people", "updates": [{"q": {}, "u": {"$inc": {"ssn": 1}}}]},
        doc! {"renameCollection": "app.people", "to": "app.other"},
        doc! {"find": "unknown", "filter": {}},
        doc! {"find": "people", "filter": {}, "encryptionInformation": {}},
    ];
    for cmd in refused {
        assert!(f.verify(&cmd).is_err(), "{cmd:?}");
    }
    for cmd in [
        doc! {"ping": 1},
        doc! {"getMore": 1_i64, "collection": "people"},
    ] {
        f.verify(&cmd).unwrap();
    }
}

#[cfg(feature = "qe")]
#[test]
fn the_other_refusals_of_queryable_analysis_stand() {
    let f = Fixture::new();
    let refused = [
        // Negations, $in on a range field, an unindexed field queried.
        doc! {"find": "q", "filter": {"ssn": {"$ne": f.find(SECRET)}}},
        doc! {"find": "q", "filter": {"age": {"$in": [f.find(SECRET)]}}},
        doc! {"find": "q", "filter": {"notes": f.unindexed(SECRET)}},
        // Stages and expressions on a QE collection.
        doc! {"aggregate": "q", "pipeline": [{"$group": {"_id": "$ssn"}}], "cursor": {}},
        doc! {"find": "q", "filter": {"$expr": {"$gte": ["$age", 1]}}},
        // Update operators that cannot apply to a payload.
        doc! {"update": "q", "updates": [{"q": {}, "u": {"$unset": {"ssn": ""}}}]},
        // `__safeContent__`.
        doc! {"insert": "q", "documents": [{"_id": 1, "__safeContent__": []}]},
        // A join of a QE collection.
        doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "q", "localField": "a", "foreignField": "b", "as": "c"}}], "cursor": {}},
    ];
    for cmd in refused {
        assert!(f.verify(&cmd).is_err(), "{cmd:?}");
    }
}
