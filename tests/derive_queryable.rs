//! `#[derive(Encrypted)]` with Queryable Encryption fields
//! (`#[encrypted(queryable = …)]`), without a server: the `encryptedFields`
//! each type generates equals the expected document (libmongocrypt's own
//! `efc/efc-twoFields.json` for two equality fields; the specification's
//! range examples for `int`, `date` and a double with precision), every one
//! parses strictly as an `encryptedFieldsMap` entry, nested types give
//! dotted paths, and what a type cannot express (FLE1 fields reached from a
//! Queryable Encryption type or the reverse, encrypted fields in
//! sequences, a name a path cannot hold) is refused when the document is
//! made. The refusals made at compile time (unknown or contradictory
//! attributes, options of another query type, BSON types a query type does
//! not take, bounds of another type, FLE1 and Queryable Encryption fields
//! in one type) are `csfle-derive/tests/compile_fail/queryable_*.rs`.

// Most types here are declared for the documents they derive and never
// built.
#![allow(dead_code)]

mod common;

use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Document, doc};
use common::*;
use csfle::qe::encrypted_fields::{EncryptedFields, FieldQueries, KeyIdOrAltName, ParseMode};
use csfle::schema::typed::{FieldShape, QueryIndex, RangeBound, RangeSpec, SchemaTemplate};
use csfle::{Encrypted, KeyId};
use serde::{Deserialize, Serialize};

/// libmongocrypt's test key ids (`EjRWeBI0mHYSNBI0VniQEg==` and
/// `q83vqxI0mHYSNBI0VniQEg==`).
const KEY_1: &str = "12345678-1234-9876-1234-123456789012";
const KEY_2: &str = "abcdefab-1234-9876-1234-123456789012";

fn uuid(text: &str) -> Bson {
    let id = bson::Uuid::parse_str(text).unwrap();
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: id.bytes().to_vec(),
    })
}

/// The type's `encryptedFields`, checked to parse as a client's
/// `encryptedFieldsMap` entry.
fn fields_of<T: Encrypted>() -> Document {
    let document = T::encrypted_fields()
        .unwrap()
        .expect("a type with Queryable Encryption fields");
    EncryptedFields::from_document(&document, ParseMode::Map)
        .unwrap_or_else(|e| panic!("{e}: {document}"));
    assert_eq!(
        T::schema_template().encrypted_fields().unwrap(),
        Some(document.clone()),
        "the trait's default is the template's"
    );
    document
}

/// The type's template refuses to make its `encryptedFields`; the error
/// says each of `expected`.
#[track_caller]
fn refused(template: SchemaTemplate, expected: &[&str]) {
    let e = template.encrypted_fields().unwrap_err().to_string();
    for part in expected {
        assert!(e.contains(part), "{e:?} does not say {part:?}");
    }
}

/// Mirrors libmongocrypt's `efc/efc-twoFields.json` (without its state
/// collection names, which a type does not declare).
#[derive(Serialize, Deserialize, Encrypted)]
struct TwoFields {
    #[serde(rename = "firstName")]
    #[encrypted(
        queryable = "equality",
        key_id = "12345678-1234-9876-1234-123456789012",
        contention = 0
    )]
    first_name: String,
    #[serde(rename = "lastName")]
    #[encrypted(
        queryable = "equality",
        key_id = "abcdefab-1234-9876-1234-123456789012",
        contention = 0
    )]
    last_name: String,
    plain: String,
}

#[test]
fn two_equality_fields_are_libmongocrypts_two_fields() {
    let ours = fields_of::<TwoFields>();
    let theirs = read_doc(&lmc_dir().join("data/efc/efc-twoFields.json"));
    assert_eq!(ours.get("fields"), theirs.get("fields"));
    assert_eq!(ours.len(), 1, "only `fields`: {ours}");
    // Key ids written as `key_id` are the UUIDs, byte for byte.
    let parsed = EncryptedFields::from_document(&ours, ParseMode::Map).unwrap();
    assert_eq!(
        parsed.field("firstName").unwrap().key(),
        &KeyIdOrAltName::Id(bson::Uuid::parse_str(KEY_1).unwrap().bytes())
    );
    assert_eq!(
        parsed.field("lastName").unwrap().queries(),
        &FieldQueries::Equality { contention: 0 }
    );
}

/// The specification's range examples (`range-encryptedFields-*.json`):
/// contention 0, trim factor 1, sparsity 1, bounds 0 and 200.
#[derive(Serialize, Deserialize, Encrypted)]
#[serde(rename_all = "camelCase")]
struct RangeExamples {
    #[encrypted(
        queryable = "range",
        key_id = "12345678-1234-9876-1234-123456789012",
        contention = 0,
        trim_factor = 1,
        sparsity = 1,
        min = 0,
        max = 200
    )]
    encrypted_int: i32,
    #[encrypted(
        queryable = "range",
        key_id = "abcdefab-1234-9876-1234-123456789012",
        contention = 0,
        trim_factor = 1,
        sparsity = 1,
        min = 0,
        max = 200
    )]
    encrypted_date: bson::DateTime,
    #[encrypted(
        queryable = "range",
        key_alt_name = "double",
        contention = 0,
        trim_factor = 1,
        sparsity = 1,
        min = 0.0,
        max = 200.0,
        precision = 2
    )]
    encrypted_double_precision: f64,
}

fn range_query(min: Bson, max: Bson) -> Document {
    doc! {
        "queryType": "range",
        "contention": 0_i64,
        "trimFactor": 1,
        "sparsity": 1_i64,
        "min": min,
        "max": max,
    }
}

#[test]
fn range_fields_are_the_specifications_examples() {
    let mut double = range_query(Bson::Double(0.0), Bson::Double(200.0));
    double.insert("precision", 2);
    let expected = doc! {"fields": [
        {"path": "encryptedInt", "keyId": uuid(KEY_1), "bsonType": "int",
         "queries": range_query(Bson::Int32(0), Bson::Int32(200))},
        {"path": "encryptedDate", "keyId": uuid(KEY_2), "bsonType": "date",
         "queries": range_query(
             Bson::DateTime(bson::DateTime::from_millis(0)),
             Bson::DateTime(bson::DateTime::from_millis(200)),
         )},
        {"path": "encryptedDoublePrecision", "keyAltName": "double", "bsonType": "double",
         "queries": double},
    ]};
    assert_eq!(fields_of::<RangeExamples>(), expected);
}

#[test]
#[ignore = "needs spec data: the specification's range-encryptedFields-{Int,Date,DoublePrecision}.json (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn range_fields_equal_the_specifications_files() {
    let ours = fields_of::<RangeExamples>();
    let ours = ours.get_array("fields").unwrap();
    for (i, (name, path)) in [
        ("Int", "encryptedInt"),
        ("Date", "encryptedDate"),
        ("DoublePrecision", "encryptedDoublePrecision"),
    ]
    .into_iter()
    .enumerate()
    {
        let file = read_doc(&spec_path(&format!(
            "{CSE}/etc/data/range-encryptedFields-{name}.json"
        )));
        let theirs = file.get_array("fields").unwrap()[0].as_document().unwrap();
        let mine = ours[i].as_document().unwrap();
        assert_eq!(mine.get_str("path").unwrap(), path, "{name}");
        assert_eq!(mine.get("path"), theirs.get("path"), "{name}");
        assert_eq!(mine.get("bsonType"), theirs.get("bsonType"), "{name}");
        assert_eq!(mine.get("queries"), theirs.get("queries"), "{name}");
    }
}

#[derive(Serialize, Deserialize, Encrypted)]
struct Address {
    street: String,
    #[encrypted(queryable = "equality", key_alt_name = "zip-key")]
    zip: String,
}

#[derive(Serialize, Deserialize, Encrypted)]
struct Contact {
    #[encrypted(queryable = "none", key_alt_name = "phone-key")]
    phone: String,
    home: Address,
}

/// A serde type with no `EncryptedBsonType`: its field names the BSON type.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct Email(String);

#[derive(Serialize, Deserialize, Encrypted)]
#[serde(rename_all = "camelCase")]
struct Person {
    name: String,
    #[encrypted(queryable = "none", key_alt_name = "notes-key")]
    private_notes: String,
    contact: Contact,
    #[encrypted(queryable = "range", key = "age-key")]
    age: i64,
    #[encrypted(queryable = "none", key_alt_name = "record-key")]
    record: Address,
    #[encrypted(
        queryable = "equality",
        key_alt_name = "email-key",
        bson_type = "string"
    )]
    email: Email,
    #[serde(with = "serde_bytes")]
    #[encrypted(queryable = "none", key_alt_name = "photo-key")]
    photo: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[encrypted(queryable = "equality", key_alt_name = "badge-key", contention = 2)]
    badge: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    work: Option<Box<Address>>,
}

#[test]
fn nested_types_unindexed_fields_and_key_names() {
    let expected = doc! {"fields": [
        {"path": "privateNotes", "keyAltName": "notes-key", "bsonType": "string"},
        {"path": "contact.phone", "keyAltName": "phone-key", "bsonType": "string"},
        {"path": "contact.home.zip", "keyAltName": "zip-key", "bsonType": "string",
         "queries": {"queryType": "equality"}},
        {"path": "age", "keyAltName": "age-key", "bsonType": "long",
         "queries": {"queryType": "range"}},
        // Encrypted whole: the fields of `Address` inside are not paths.
        {"path": "record", "keyAltName": "record-key", "bsonType": "object"},
        {"path": "email", "keyAltName": "email-key", "bsonType": "string",
         "queries": {"queryType": "equality"}},
        {"path": "photo", "keyAltName": "photo-key", "bsonType": "binData"},
        {"path": "badge", "keyAltName": "badge-key", "bsonType": "int",
         "queries": {"queryType": "equality", "contention": 2_i64}},
        // Through `Option<Box<_>>`: the type inside.
        {"path": "work.zip", "keyAltName": "zip-key", "bsonType": "string",
         "queries": {"queryType": "equality"}},
    ]};
    let document = Person::encrypted_fields().unwrap().unwrap();
    assert_eq!(document, expected);
    // `Address` appears twice, so its key is named twice: a collection
    // cannot take that (one key per field), and the parser says so.
    let e = EncryptedFields::from_document(&document, ParseMode::Map).unwrap_err();
    assert!(e.to_string().contains("zip-key"), "{e}");
    let template = Person::schema_template();
    assert!(template.has_encrypted_fields());
    assert!(template.has_queryable_fields());
    assert_eq!(
        template.key_alt_names(),
        [
            "notes-key",
            "phone-key",
            "zip-key",
            "age-key",
            "record-key",
            "email-key",
            "photo-key",
            "badge-key",
        ]
    );
    // A type with Queryable Encryption fields has no FLE1 schema.
    let e = template.to_json_schema(&|_| None).unwrap_err().to_string();
    assert!(
        e.contains("'privateNotes' is a Queryable Encryption field"),
        "{e}"
    );
}

#[derive(Serialize, Deserialize, Encrypted)]
struct OneContact {
    #[encrypted(queryable = "equality", key_alt_name = "name-key")]
    name: String,
    contact: Contact,
}

#[test]
fn a_nested_type_used_once_parses() {
    let document = fields_of::<OneContact>();
    let parsed = EncryptedFields::from_document(&document, ParseMode::Map).unwrap();
    let paths: Vec<&str> = parsed.fields().iter().map(|f| f.path()).collect();
    assert_eq!(paths, ["name", "contact.phone", "contact.home.zip"]);
    assert_eq!(parsed.key_alt_names(), ["name-key", "phone-key", "zip-key"]);
}

/// Bounds of every sign and width, and the defaults of what is not given.
#[derive(Serialize, Deserialize, Encrypted)]
struct Bounds {
    #[encrypted(queryable = "range", key_alt_name = "a", min = -100, max = -1)]
    a: i32,
    #[encrypted(queryable = "range", key_alt_name = "b", min = -9223372036854775808, max = 9223372036854775807)]
    b: i64,
    #[encrypted(queryable = "range", key_alt_name = "c", min = -1.5, max = 2.5, precision = 1)]
    c: f64,
    #[encrypted(queryable = "range", key_alt_name = "d", min = -10, max = 10, precision = 0)]
    d: f64,
    #[encrypted(queryable = "range", key_alt_name = "e")]
    e: bson::Decimal128,
    #[encrypted(queryable = "range", key_alt_name = "f", trim_factor = 31)]
    f: i32,
    #[encrypted(queryable = "range", key_alt_name = "g")]
    g: f64,
}

#[test]
fn range_bounds_keep_their_values_and_take_the_fields_type() {
    let document = fields_of::<Bounds>();
    let fields = document.get_array("fields").unwrap();
    let queries = |i: usize| {
        fields[i]
            .as_document()
            .unwrap()
            .get_document("queries")
            .unwrap()
            .clone()
    };
    assert_eq!(
        queries(0),
        doc! {"queryType": "range", "min": -100, "max": -1}
    );
    assert_eq!(
        queries(1),
        doc! {"queryType": "range", "min": i64::MIN, "max": i64::MAX}
    );
    assert_eq!(
        queries(2),
        doc! {"queryType": "range", "min": -1.5, "max": 2.5, "precision": 1}
    );
    assert_eq!(
        queries(3),
        doc! {"queryType": "range", "min": -10.0, "max": 10.0, "precision": 0}
    );
    assert_eq!(queries(4), doc! {"queryType": "range"});
    assert_eq!(queries(5), doc! {"queryType": "range", "trimFactor": 31});
    assert_eq!(queries(6), doc! {"queryType": "range"});
    let types: Vec<&str> = fields
        .iter()
        .map(|f| f.as_document().unwrap().get_str("bsonType").unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "int", "long", "double", "double", "decimal", "int", "double"
        ]
    );
    // The parser fills the defaults: sparsity 2, contention 8, an int's
    // limits as bounds.
    let parsed = EncryptedFields::from_document(&document, ParseMode::Map).unwrap();
    let FieldQueries::Range(f) = parsed.field("f").unwrap().queries() else {
        panic!("f is a range field");
    };
    assert_eq!(f.contention(), 8);
    assert_eq!(f.options().sparsity, Some(2));
    assert_eq!(f.options().trim_factor, Some(31));
    assert_eq!(f.options().min, Some(Bson::Int32(i32::MIN)));
    // The template holds what was written.
    let template = Bounds::schema_template();
    let shape = |name: &str| {
        template
            .fields
            .iter()
            .find(|f| f.rust_field == name)
            .unwrap()
            .shape
            .clone()
    };
    match shape("b") {
        FieldShape::Queryable {
            key,
            bson_type,
            index,
        } => {
            assert_eq!(key, csfle::schema::typed::KeySpec::AltName("b"));
            assert_eq!(bson_type, ElementType::Int64);
            assert_eq!(
                index,
                QueryIndex::Range(RangeSpec {
                    min: Some(RangeBound::Int(i64::MIN)),
                    max: Some(RangeBound::Int(i64::MAX)),
                    ..RangeSpec::default()
                })
            );
        }
        other => panic!("b: {other:?}"),
    }
    match shape("c") {
        FieldShape::Queryable { index, .. } => assert_eq!(
            index,
            QueryIndex::Range(RangeSpec {
                min: Some(RangeBound::Float(-1.5)),
                max: Some(RangeBound::Float(2.5)),
                precision: Some(1),
                ..RangeSpec::default()
            })
        ),
        other => panic!("c: {other:?}"),
    }
}

#[test]
fn range_bounds_convert_only_to_their_fields_type() {
    use ElementType::*;
    assert_eq!(RangeBound::Int(5).to_bson(Int32), Some(Bson::Int32(5)));
    assert_eq!(RangeBound::Int(1 << 40).to_bson(Int32), None);
    assert_eq!(RangeBound::Int(5).to_bson(Int64), Some(Bson::Int64(5)));
    assert_eq!(
        RangeBound::Int(5).to_bson(DateTime),
        Some(Bson::DateTime(bson::DateTime::from_millis(5)))
    );
    assert_eq!(RangeBound::Int(5).to_bson(Double), Some(Bson::Double(5.0)));
    assert_eq!(RangeBound::Int((1 << 53) + 1).to_bson(Double), None);
    assert_eq!(
        RangeBound::Float(0.5).to_bson(Double),
        Some(Bson::Double(0.5))
    );
    assert_eq!(RangeBound::Float(0.5).to_bson(Int32), None);
    assert_eq!(RangeBound::Float(f64::INFINITY).to_bson(Double), None);
    assert_eq!(RangeBound::Int(5).to_bson(Decimal128), None);
    assert_eq!(RangeBound::Int(5).to_bson(String), None);
}

// What a type cannot express, refused when the document is made.

#[derive(Serialize, Encrypted)]
#[encrypted(key = "fle1-key")]
struct Fle1Part {
    #[encrypted(random)]
    secret: String,
}

#[derive(Serialize, Encrypted)]
struct QueryableWithFle1Inside {
    #[encrypted(queryable = "none", key_alt_name = "a")]
    a: String,
    inner: Fle1Part,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "fle1-key")]
struct Fle1WithQueryableInside {
    #[encrypted(random)]
    secret: String,
    address: Address,
}

#[derive(Serialize, Encrypted)]
struct QueryableInSequence {
    addresses: Vec<Address>,
}

#[derive(Serialize, Encrypted)]
struct QueryableBelowDottedName {
    #[serde(rename = "a.b")]
    inner: Address,
}

#[derive(Serialize, Encrypted)]
struct QueryableFlattened {
    #[serde(flatten)]
    inner: Address,
}

#[test]
fn one_scheme_per_collection() {
    refused(
        QueryableWithFle1Inside::schema_template(),
        &["'inner.secret' is an FLE1 field", "one scheme"],
    );
    let e = QueryableWithFle1Inside::schema_template()
        .to_json_schema(&|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'a' is a Queryable Encryption field"), "{e}");
    refused(
        Fle1WithQueryableInside::schema_template(),
        &["'secret' is an FLE1 field"],
    );
    let e = Fle1WithQueryableInside::schema_template()
        .to_json_schema(&|_| Some(KeyId::from_bytes([7; 16])))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'address.zip' is a Queryable Encryption field"),
        "{e}"
    );
    // An FLE1 type has no encryptedFields, and its schema is unchanged.
    assert_eq!(Fle1Part::encrypted_fields().unwrap(), None);
    assert!(!Fle1Part::schema_template().has_queryable_fields());
    Fle1Part::schema_template()
        .to_json_schema(&|_| Some(KeyId::from_bytes([7; 16])))
        .unwrap();
}

#[test]
fn paths_that_cannot_be_named_are_refused() {
    refused(
        QueryableInSequence::schema_template(),
        &["'addresses'", "sequence or map"],
    );
    refused(
        QueryableBelowDottedName::schema_template(),
        &["'a.b'", "contains '.'"],
    );
    refused(
        QueryableFlattened::schema_template(),
        &["`#[serde(flatten)]` on 'inner'"],
    );
}

#[test]
fn a_hand_written_template_with_a_key_pointer_is_refused() {
    let template = SchemaTemplate {
        rust_type: "Hand",
        key: None,
        inherit_key: false,
        fields: vec![csfle::schema::typed::FieldTemplate {
            name: "a",
            rust_field: "a",
            shape: FieldShape::Queryable {
                key: csfle::schema::typed::KeySpec::Pointer("/k"),
                bson_type: ElementType::String,
                index: QueryIndex::Unindexed,
            },
        }],
    };
    refused(template, &["JSON pointer"]);
}
