//! Query analysis of Queryable Encryption collections fails closed,
//! proved by tables.
//!
//! The hostile table holds QE commands that would send a plaintext of an
//! encrypted field, or could: negations, operators QE does not support,
//! unindexed fields queried, wrong types, expressions, sorts and bounds on
//! encrypted fields, update operators that cannot apply to ciphertext,
//! `__safeContent__`, pipelines, joins and views across QE collections,
//! unsupported query types, planted placeholders, and client-level
//! `bulkWrite`s libmongocrypt refuses (other than one namespace) or whose
//! operations carry any of the above. Each must be refused
//! for the right reason: the error names the field, operator or stage.
//! The legitimate table holds commands that must go through, with the
//! number of placeholders each gets, and no plaintext of an encrypted
//! field anywhere once the placeholders (which carry their value until
//! they are turned into payloads) are taken out.

#![cfg(feature = "qe")]

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Decimal128, Document, Regex, doc};
use csfle::analysis::{Analysis, Namespace, NamespaceSchema, analyze};
use csfle::qe::encrypted_fields::{EncryptedFields, ParseMode};
use csfle::qe::payload::RangeOperator;
use csfle::qe::placeholder::{
    ENCRYPTION_PLACEHOLDER, Fle2Algorithm, Placeholder, PlaceholderType, range_find_spec,
    range_insert_spec,
};
use csfle::schema::{EncryptionSchema, SchemaSource};
use std::sync::OnceLock;

const SECRET: &str = "457-55-5462";
const SECRET2: &str = "457-55-0000";
/// A value of the range field `age` (int), marked by its bytes.
const AGE: i32 = 0x5EC2_E7A1;
/// A value of the range field `salary` (double).
const SALARY: f64 = 123_456.789_012_5;

fn key(b: u8) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![b; 16],
    })
}

/// `app.q` and `app.q2`: `ssn` (equality, contention 4), `notes`
/// (unindexed), `med.record` (equality), `age` (range on ints,
/// 0..2,000,000,000), `salary` (range on doubles, no bounds), `score`
/// (range on doubles with precision 2), `created` (range on dates).
fn q_fields() -> Document {
    doc! {"fields": [
        {"path": "ssn", "keyId": key(1), "bsonType": "string", "queries": {"queryType": "equality", "contention": 4}},
        {"path": "notes", "keyId": key(2), "bsonType": "string"},
        {"path": "med.record", "keyId": key(3), "bsonType": "string", "queries": {"queryType": "equality", "contention": 0}},
        {"path": "age", "keyId": key(4), "bsonType": "int", "queries": {"queryType": "range", "contention": 0, "min": 0, "max": 2_000_000_000, "sparsity": 1, "trimFactor": 1}},
        {"path": "salary", "keyId": key(5), "bsonType": "double", "queries": {"queryType": "range"}},
        {"path": "score", "keyId": key(6), "bsonType": "double", "queries": {"queryType": "range", "min": 0.0, "max": 100.0, "precision": 2}},
        {"path": "created", "keyId": key(7), "bsonType": "date", "queries": {"queryType": "range"}},
    ]}
}

struct Schemas {
    q: EncryptedFields,
    text: EncryptedFields,
    decimal: EncryptedFields,
    people: EncryptionSchema,
}

fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let parse = |d: Document| EncryptedFields::from_document(&d, ParseMode::Map).unwrap();
        let zero = Bson::Decimal128(Decimal128::from_bytes([0; 16]));
        Schemas {
            q: parse(q_fields()),
            text: parse(doc! {"fields": [
                {"path": "bio", "keyId": key(9), "bsonType": "string", "queries": {"queryType": "prefixPreview", "strMinQueryLength": 2, "strMaxQueryLength": 10, "caseSensitive": true, "diacriticSensitive": true}},
            ]}),
            decimal: parse(doc! {"fields": [
                {"path": "d", "keyId": key(10), "bsonType": "decimal", "queries": {"queryType": "range", "min": zero.clone(), "max": zero, "precision": 2}},
            ]}),
            people: EncryptionSchema::parse(
                &doc! {"bsonType": "object", "properties": {"ssn": {"encrypt": {"keyId": [key(0x11)], "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}}},
                SchemaSource::Local,
            )
            .unwrap(),
        }
    })
}

/// `app.q`, `app.q2`: QE; `app.qtext` (text search) and `app.qdec`
/// (Decimal128 range with precision): QE collections csfle refuses;
/// `app.people`: FLE1 (`ssn`); `app.unknown`: cannot be looked up;
/// everything else: no encryption.
fn lookup(ns: &Namespace) -> NamespaceSchema<'static> {
    let s = schemas();
    match ns.to_string().as_str() {
        "app.q" | "app.q2" => NamespaceSchema::Queryable(&s.q),
        "app.qtext" => NamespaceSchema::Queryable(&s.text),
        "app.qdec" => NamespaceSchema::Queryable(&s.decimal),
        "app.people" => NamespaceSchema::Known(Some(&s.people)),
        "app.unknown" => NamespaceSchema::Unknown,
        _ => NamespaceSchema::Known(None),
    }
}

/// A QE placeholder of `SECRET`, as an application could plant one.
fn planted_placeholder() -> Bson {
    let mut bytes = vec![ENCRYPTION_PLACEHOLDER];
    doc! {"t": 1, "a": 2, "ki": key(1), "ku": key(1), "v": SECRET, "cm": 0i64}
        .to_writer(&mut bytes)
        .unwrap();
    Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    })
}

/// `v` with every placeholder checked (it parses, names one of `app.q`'s
/// keys as both keys) and replaced by a stand-in; `n` counts them.
fn strip(v: &Bson, n: &mut usize) -> Bson {
    match v {
        Bson::Document(d) => {
            Bson::Document(d.iter().map(|(k, v)| (k.clone(), strip(v, n))).collect())
        }
        Bson::Array(items) => Bson::Array(items.iter().map(|v| strip(v, n)).collect()),
        Bson::Binary(b)
            if b.subtype == BinarySubtype::Encrypted
                && b.bytes.first() == Some(&ENCRYPTION_PLACEHOLDER) =>
        {
            let p = Placeholder::parse(&b.bytes).expect("a placeholder analysis made parses");
            assert_eq!(p.index_key_id, p.user_key_id);
            assert!(
                (1..=7).contains(&p.index_key_id[0]) && p.index_key_id == [p.index_key_id[0]; 16]
            );
            *n += 1;
            Bson::Binary(Binary {
                subtype: BinarySubtype::Encrypted,
                bytes: vec![12],
            })
        }
        other => other.clone(),
    }
}

/// What would be sent once the placeholders are payloads (stood in for),
/// and how many there were; the refusal's message otherwise.
fn send(cmd: &Document) -> Result<(Document, usize), String> {
    match analyze(cmd, "app", &lookup).map_err(|e| e.to_string())? {
        Analysis::Unchanged => Ok((cmd.clone(), 0)),
        Analysis::Marked(m) => {
            let mut n = 0;
            let Bson::Document(d) = strip(&Bson::Document(m), &mut n) else {
                unreachable!("a document stays one");
            };
            Ok((d, n))
        }
    }
}

fn carries_secret(doc: &Document) -> bool {
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).unwrap();
    let (age, salary) = (AGE.to_le_bytes(), SALARY.to_le_bytes());
    let marks: [&[u8]; 4] = [SECRET.as_bytes(), SECRET2.as_bytes(), &age, &salary];
    marks
        .iter()
        .any(|m| bytes.windows(m.len()).any(|w| w == *m))
}

fn find(filter: Document) -> Document {
    doc! {"find": "q", "filter": filter}
}

fn agg(pipeline: Vec<Document>) -> Document {
    doc! {"aggregate": "q", "pipeline": pipeline, "cursor": {}}
}

fn update(q: Document, u: Bson) -> Document {
    doc! {"update": "q", "updates": [{"q": q, "u": u}]}
}

fn set(fields: Document) -> Bson {
    Bson::Document(doc! {"$set": fields})
}

#[allow(clippy::too_many_lines)] // one table
fn hostile() -> Vec<(&'static str, Document, &'static str)> {
    let regex = Bson::RegularExpression(Regex {
        pattern: "457".into(),
        options: String::new(),
    });
    let ciphertext = Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes: vec![2, 0x11, 0x22],
    });
    vec![
        // find: operators QE does not support on encrypted fields.
        ("$ne", find(doc! {"ssn": {"$ne": SECRET}}), "$ne"),
        ("$nin", find(doc! {"ssn": {"$nin": [SECRET]}}), "$nin"),
        (
            "$not",
            find(doc! {"ssn": {"$not": {"$eq": SECRET}}}),
            "$not",
        ),
        ("$nor", find(doc! {"$nor": [{"ssn": SECRET}]}), "$nor"),
        (
            "$nor nested",
            find(doc! {"$nor": [{"$or": [{"name": "x"}, {"ssn": SECRET}]}]}),
            "$nor",
        ),
        ("regex literal", find(doc! {"ssn": regex.clone()}), "$regex"),
        ("$regex", find(doc! {"ssn": {"$regex": SECRET}}), "$regex"),
        ("$eq regex", find(doc! {"ssn": {"$eq": regex}}), "$regex"),
        ("$exists", find(doc! {"ssn": {"$exists": true}}), "$exists"),
        (
            "$elemMatch",
            find(doc! {"ssn": {"$elemMatch": {"$eq": SECRET}}}),
            "$elemMatch",
        ),
        ("$all", find(doc! {"ssn": {"$all": [SECRET]}}), "$all"),
        ("$type", find(doc! {"ssn": {"$type": "string"}}), "$type"),
        (
            "$gt on equality",
            find(doc! {"ssn": {"$gt": SECRET}}),
            "$gt",
        ),
        ("$size", find(doc! {"ssn": {"$size": 1}}), "$size"),
        ("unindexed", find(doc! {"notes": SECRET}), "notes"),
        (
            "unindexed $in",
            find(doc! {"notes": {"$in": [SECRET]}}),
            "notes",
        ),
        (
            "unindexed in $or",
            find(doc! {"$or": [{"name": "x"}, {"notes": SECRET}]}),
            "notes",
        ),
        (
            "document holding one",
            find(doc! {"med": {"record": SECRET}}),
            "med",
        ),
        (
            "$exists on its document",
            find(doc! {"med": {"$exists": true}}),
            "med",
        ),
        (
            "below one",
            find(doc! {"med.record.x": SECRET}),
            "med.record.x",
        ),
        (
            "numeric segment",
            find(doc! {"med.0.record": SECRET}),
            "med.0.record",
        ),
        ("null", find(doc! {"ssn": Bson::Null}), "null"),
        (
            "null in $in",
            find(doc! {"ssn": {"$in": [SECRET, Bson::Null]}}),
            "null",
        ),
        (
            "$in not an array",
            find(doc! {"ssn": {"$in": SECRET}}),
            "needs an array",
        ),
        (
            "wrong type",
            find(doc! {"ssn": 12345}),
            "field type is not supported",
        ),
        (
            "document value",
            find(doc! {"ssn": {"$eq": {"$literal": SECRET}}}),
            "field type is not supported",
        ),
        (
            "already encrypted",
            find(doc! {"ssn": ciphertext.clone()}),
            "already encrypted",
        ),
        (
            "$expr",
            find(doc! {"$expr": {"$eq": ["$ssn", SECRET]}}),
            "ssn",
        ),
        (
            "two encrypted fields",
            find(doc! {"$expr": {"$eq": ["$ssn", "$med.record"]}}),
            "ssn",
        ),
        (
            "$expr range",
            find(doc! {"$expr": {"$gt": ["$age", AGE]}}),
            "age",
        ),
        (
            "$$ROOT",
            find(doc! {"$expr": {"$eq": ["$$ROOT", {"ssn": SECRET}]}}),
            "$$ROOT",
        ),
        (
            "$where",
            find(doc! {"$where": format!("this.ssn == '{SECRET}'")}),
            "$where",
        ),
        ("$text", find(doc! {"$text": {"$search": SECRET}}), "$text"),
        (
            "$jsonSchema",
            find(doc! {"$jsonSchema": {"properties": {"ssn": {"enum": [SECRET]}}}}),
            "$jsonSchema",
        ),
        (
            "range $in with null",
            find(doc! {"age": {"$in": [AGE, Bson::Null]}}),
            "null",
        ),
        (
            "range $in not an array",
            find(doc! {"age": {"$in": AGE}}),
            "$in needs an array",
        ),
        (
            "range $in wrong type",
            find(doc! {"age": {"$in": [AGE, 1.5]}}),
            "field type is not supported",
        ),
        (
            "range $in regex",
            find(
                doc! {"age": {"$in": [bson::Regex { pattern: "^4".into(), options: String::new() }]}},
            ),
            "regular expression",
        ),
        (
            "range $in below $nor",
            find(doc! {"$nor": [{"age": {"$in": [AGE]}}]}),
            "$nor",
        ),
        ("range $ne", find(doc! {"age": {"$ne": AGE}}), "$ne"),
        (
            "two lower bounds",
            find(doc! {"age": {"$gt": AGE, "$gte": 1}}),
            "same side",
        ),
        (
            "two upper bounds",
            find(doc! {"age": {"$gt": 1, "$lt": AGE, "$lte": 6}}),
            "same side",
        ),
        (
            "range wrong type",
            find(doc! {"age": {"$gte": 1.5}}),
            "field type is not supported",
        ),
        (
            "date wrong type",
            find(doc! {"created": {"$gte": 0.0}}),
            "value type is a date",
        ),
        ("NaN bound", find(doc! {"salary": {"$gt": f64::NAN}}), "NaN"),
        ("range null", find(doc! {"age": Bson::Null}), "null"),
        (
            "__safeContent__",
            find(doc! {"__safeContent__": {"$in": [SECRET]}}),
            "__safeContent__",
        ),
        (
            "sort",
            doc! {"find": "q", "filter": {}, "sort": {"ssn": 1}},
            "ssn",
        ),
        (
            "projection computes",
            doc! {"find": "q", "projection": {"m": {"$concat": ["$ssn", SECRET]}}},
            "ssn",
        ),
        (
            "projection assigns",
            doc! {"find": "q", "projection": {"ssn": {"$literal": SECRET}}},
            "ssn",
        ),
        (
            "min bound",
            doc! {"find": "q", "filter": {}, "min": {"ssn": SECRET}, "hint": {"ssn": 1}},
            "ssn",
        ),
        (
            "let",
            doc! {"find": "q", "filter": {}, "let": {"x": {"$concat": ["$ssn", SECRET]}}},
            "ssn",
        ),
        (
            "unknown field",
            doc! {"find": "q", "filter": {}, "futureOption": SECRET},
            "futureOption",
        ),
        (
            "planted placeholder",
            find(doc! {"name": planted_placeholder()}),
            "placeholder",
        ),
        (
            "explain $ne",
            doc! {"explain": find(doc! {"ssn": {"$ne": SECRET}})},
            "$ne",
        ),
        (
            "explain unknown field",
            doc! {"explain": find(doc! {}), "futureOption": SECRET},
            "futureOption",
        ),
        // insert
        (
            "insert wrong type",
            doc! {"insert": "q", "documents": [{"ssn": 123}]},
            "Cannot encrypt element",
        ),
        (
            "insert range wrong type",
            doc! {"insert": "q", "documents": [{"age": 1.5}]},
            "Cannot encrypt element",
        ),
        (
            "insert scalar for a document",
            doc! {"insert": "q", "documents": [{"med": SECRET}]},
            "med",
        ),
        (
            "insert array of documents",
            doc! {"insert": "q", "documents": [{"med": [{"record": SECRET}]}]},
            "med",
        ),
        (
            "insert __safeContent__",
            doc! {"insert": "q", "documents": [{"__safeContent__": [SECRET]}]},
            "__safeContent__",
        ),
        (
            "insert ciphertext",
            doc! {"insert": "q", "documents": [{"ssn": ciphertext}]},
            "already encrypted",
        ),
        (
            "insert planted placeholder",
            doc! {"insert": "q", "documents": [{"name": planted_placeholder()}]},
            "placeholder",
        ),
        (
            "insert infinity",
            doc! {"insert": "q", "documents": [{"salary": f64::INFINITY}]},
            "infinite",
        ),
        (
            "insert null",
            doc! {"insert": "q", "documents": [{"ssn": Bson::Null}]},
            "Cannot encrypt element",
        ),
        (
            "insert Timestamp(0, 0)",
            doc! {"insert": "q", "documents": [{"notes": Bson::Timestamp(bson::Timestamp { time: 0, increment: 0 })}]},
            "Timestamp(0, 0)",
        ),
        // update
        (
            "$inc",
            update(doc! {}, Bson::Document(doc! {"$inc": {"age": 1}})),
            "$inc",
        ),
        (
            "$push",
            update(doc! {}, Bson::Document(doc! {"$push": {"ssn": SECRET}})),
            "$push",
        ),
        (
            "$addToSet",
            update(doc! {}, Bson::Document(doc! {"$addToSet": {"ssn": SECRET}})),
            "$addToSet",
        ),
        (
            "$min",
            update(doc! {}, Bson::Document(doc! {"$min": {"age": AGE}})),
            "$max and $min",
        ),
        (
            "$currentDate",
            update(
                doc! {},
                Bson::Document(doc! {"$currentDate": {"created": true}}),
            ),
            "$currentDate",
        ),
        (
            "$unset",
            update(doc! {}, Bson::Document(doc! {"$unset": {"ssn": ""}})),
            "$unset",
        ),
        (
            "$unset its document",
            update(doc! {}, Bson::Document(doc! {"$unset": {"med": ""}})),
            "$unset",
        ),
        (
            "$rename onto",
            update(doc! {}, Bson::Document(doc! {"$rename": {"name": "ssn"}})),
            "$rename",
        ),
        (
            "$rename from",
            update(doc! {}, Bson::Document(doc! {"$rename": {"ssn": "x"}})),
            "$rename",
        ),
        (
            "positional",
            update(doc! {}, set(doc! {"ssn.$": SECRET})),
            "positional",
        ),
        (
            "positional segment first, all elements",
            update(doc! {}, set(doc! {"$[].ssn": SECRET})),
            "positional",
        ),
        (
            "positional segment first",
            update(doc! {}, set(doc! {"$.ssn": SECRET})),
            "positional",
        ),
        (
            "positional segment first, filtered",
            doc! {"update": "q", "updates": [{"q": {}, "u": {"$set": {"$[x].ssn": SECRET}}, "arrayFilters": [{"x.a": 1}]}]},
            "starts with an array identifier",
        ),
        (
            "$push through a leading positional segment",
            update(doc! {}, Bson::Document(doc! {"$push": {"$[].ssn": SECRET}})),
            "$push",
        ),
        (
            "array filter below",
            doc! {"update": "q", "updates": [{"q": {}, "u": {"$set": {"med.$[x].record": SECRET}}, "arrayFilters": [{"x.a": 1}]}]},
            "Array update",
        ),
        (
            "array filter expression",
            doc! {"update": "q", "updates": [{"q": {}, "u": {"$set": {"tags.$[x]": 1}}, "arrayFilters": [{"x": {"$expr": {"$eq": ["$ssn", SECRET]}}}]}]},
            "$expr",
        ),
        (
            "pipeline update",
            update(
                doc! {},
                Bson::Array(vec![Bson::Document(doc! {"$set": {"ssn": SECRET}})]),
            ),
            "pipeline updates",
        ),
        (
            "mixed update",
            update(
                doc! {},
                Bson::Document(doc! {"name": "x", "$set": {"ssn": SECRET}}),
            ),
            "cannot mix",
        ),
        (
            "$set __safeContent__",
            update(doc! {}, set(doc! {"__safeContent__": []})),
            "__safeContent__",
        ),
        (
            "$set below __safeContent__",
            update(doc! {}, set(doc! {"__safeContent__.0": SECRET})),
            "__safeContent__",
        ),
        (
            "$set wrong type",
            update(doc! {}, set(doc! {"age": "x"})),
            "Cannot encrypt element",
        ),
        (
            "replacement wrong type",
            update(doc! {}, Bson::Document(doc! {"ssn": 1})),
            "Cannot encrypt element",
        ),
        (
            "update q $ne",
            update(doc! {"ssn": {"$ne": SECRET}}, set(doc! {"a": 1})),
            "$ne",
        ),
        (
            "update unknown statement field",
            doc! {"update": "q", "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "hint2": {"ssn": SECRET}}]},
            "hint2",
        ),
        // delete
        (
            "delete unindexed",
            doc! {"delete": "q", "deletes": [{"q": {"notes": SECRET}, "limit": 1}]},
            "notes",
        ),
        (
            "delete unknown statement field",
            doc! {"delete": "q", "deletes": [{"q": {}, "limit": 1, "hint2": SECRET}]},
            "hint2",
        ),
        // findAndModify
        (
            "findAndModify projection",
            doc! {"findAndModify": "q", "query": {}, "fields": {"m": "$ssn"}, "remove": true},
            "ssn",
        ),
        (
            "findAndModify sort",
            doc! {"findAndModify": "q", "query": {}, "sort": {"age": -1}, "remove": true},
            "age",
        ),
        (
            "findAndModify $pull",
            doc! {"findAndModify": "q", "query": {}, "update": {"$pull": {"ssn": SECRET}}},
            "$pull",
        ),
        // aggregate
        (
            "$group",
            agg(vec![doc! {"$group": {"_id": "$ssn"}}]),
            "$group",
        ),
        (
            "$lookup",
            agg(vec![
                doc! {"$lookup": {"from": "q2", "pipeline": [{"$match": {"ssn": SECRET}}], "as": "x"}},
            ]),
            "$lookup",
        ),
        (
            "$unionWith",
            agg(vec![doc! {"$unionWith": "q2"}]),
            "$unionWith",
        ),
        (
            "$graphLookup",
            agg(vec![
                doc! {"$graphLookup": {"from": "q2", "startWith": "$name", "connectFromField": "name", "connectToField": "name", "as": "g"}},
            ]),
            "$graphLookup",
        ),
        (
            "$facet",
            agg(vec![doc! {"$facet": {"a": [{"$match": {"ssn": SECRET}}]}}]),
            "$facet",
        ),
        ("$out", agg(vec![doc! {"$out": "plain"}]), "$out"),
        (
            "$merge",
            agg(vec![doc! {"$merge": {"into": "plain"}}]),
            "$merge",
        ),
        (
            "$replaceRoot",
            agg(vec![doc! {"$replaceRoot": {"newRoot": {"ssn": SECRET}}}]),
            "$replaceRoot",
        ),
        (
            "$changeStream",
            agg(vec![
                doc! {"$changeStream": {}},
                doc! {"$match": {"ssn": SECRET}},
            ]),
            "$changeStream",
        ),
        (
            "$documents",
            agg(vec![doc! {"$documents": [{"ssn": SECRET}]}]),
            "$documents",
        ),
        (
            "$project computes",
            agg(vec![doc! {"$project": {"m": {"$eq": ["$ssn", SECRET]}}}]),
            "ssn",
        ),
        (
            "$addFields onto",
            agg(vec![doc! {"$addFields": {"ssn": SECRET}}]),
            "ssn",
        ),
        (
            "$set __safeContent__ stage",
            agg(vec![doc! {"$set": {"__safeContent__": SECRET}}]),
            "__safeContent__",
        ),
        (
            "$match after $count",
            agg(vec![
                doc! {"$count": "ssn"},
                doc! {"$match": {"ssn": SECRET}},
            ]),
            "$count",
        ),
        (
            "$match $expr range",
            agg(vec![doc! {"$match": {"$expr": {"$lt": ["$age", AGE]}}}]),
            "age",
        ),
        ("$sort", agg(vec![doc! {"$sort": {"age": 1}}]), "age"),
        ("$unwind", agg(vec![doc! {"$unwind": "$ssn"}]), "ssn"),
        (
            "aggregate let",
            doc! {"aggregate": "q", "pipeline": [], "cursor": {}, "let": {"x": "$ssn"}},
            "ssn",
        ),
        // Other collections naming a QE one.
        (
            "FLE1 $lookup of QE",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "q", "pipeline": [{"$match": {"ssn": SECRET}}], "as": "x"}}], "cursor": {}},
            "Queryable Encryption collection",
        ),
        (
            "plain $unionWith QE",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": "q"}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            "Queryable Encryption collection",
        ),
        (
            "plain $graphLookup QE",
            doc! {"aggregate": "plain", "pipeline": [{"$graphLookup": {"from": "q", "startWith": "$name", "connectFromField": "name", "connectToField": "name", "as": "g", "restrictSearchWithMatch": {"ssn": SECRET}}}], "cursor": {}},
            "Queryable Encryption collection",
        ),
        (
            "plain $merge into QE",
            doc! {"aggregate": "plain", "pipeline": [{"$set": {"ssn": SECRET}}, {"$merge": {"into": "q"}}], "cursor": {}},
            "Queryable Encryption collection",
        ),
        (
            "view over QE",
            doc! {"create": "v", "viewOn": "q", "pipeline": [{"$match": {"ssn": SECRET}}]},
            "Queryable Encryption collection",
        ),
        (
            "view named like QE",
            doc! {"create": "q", "viewOn": "plain", "pipeline": []},
            "view",
        ),
        // Collections csfle cannot encrypt for.
        (
            "text search find",
            doc! {"find": "qtext", "filter": {"bio": SECRET}},
            "which csfle does not support",
        ),
        (
            "text search insert",
            doc! {"insert": "qtext", "documents": [{"bio": SECRET}]},
            "which csfle does not support",
        ),
        (
            "decimal precision insert",
            doc! {"insert": "qdec", "documents": [{"d": SECRET}]},
            "which csfle does not support",
        ),
        // The client-level bulkWrite: one namespace, allow-listed
        // operations, and inside them what the collection's own
        // statements refuse.
        (
            "bulkWrite two namespaces",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}, {"insert": 1, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.q"}, {"ns": "app.q2"}]},
            "Only one namespace is supported",
        ),
        (
            "bulkWrite op index 1",
            doc! {"bulkWrite": 1, "ops": [{"insert": 1, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.q"}]},
            "nsInfo entry 1",
        ),
        (
            "bulkWrite unknown op",
            doc! {"bulkWrite": 1, "ops": [{"replaceOne": 0, "filter": {}, "replacement": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.q"}]},
            "replaceOne",
        ),
        (
            "bulkWrite unknown op field",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n"}, "also": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.q"}]},
            "ops.0.also",
        ),
        (
            "bulkWrite unknown field",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n"}}], "nsInfo": [{"ns": "app.q"}], "futureOption": {"ssn": SECRET}},
            "futureOption",
        ),
        (
            "bulkWrite nsInfo field",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.q", "encryptionInformation": {}}]},
            "nsInfo.0.encryptionInformation",
        ),
        (
            "bulkWrite no namespace",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}], "nsInfo": []},
            "failed to find namespace",
        ),
        (
            "bulkWrite namespace without a dot",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "q"}]},
            "expected namespace to contain dot",
        ),
        (
            "bulkWrite $regex in a filter",
            doc! {"bulkWrite": 1, "ops": [{"delete": 0, "multi": false, "filter": {"ssn": {"$regex": SECRET}}}], "nsInfo": [{"ns": "app.q"}]},
            "$regex",
        ),
        (
            "bulkWrite $nor in a filter",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "multi": false, "filter": {"$nor": [{"ssn": SECRET}]}, "updateMods": {"$set": {"name": "n"}}}], "nsInfo": [{"ns": "app.q"}]},
            "$nor",
        ),
        (
            "bulkWrite __safeContent__ write",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n", "__safeContent__": [SECRET]}}], "nsInfo": [{"ns": "app.q"}]},
            "__safeContent__",
        ),
        (
            "bulkWrite $set __safeContent__",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "multi": false, "filter": {}, "updateMods": {"$set": {"__safeContent__.0": SECRET}}}], "nsInfo": [{"ns": "app.q"}]},
            "__safeContent__",
        ),
        (
            "bulkWrite $inc on an encrypted field",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "multi": true, "filter": {"ssn": SECRET}, "updateMods": {"$inc": {"age": AGE}}}], "nsInfo": [{"ns": "app.q"}]},
            "$inc",
        ),
        (
            "bulkWrite pipeline update",
            doc! {"bulkWrite": 1, "ops": [{"update": 0, "multi": false, "filter": {}, "updateMods": [{"$set": {"ssn": SECRET}}]}], "nsInfo": [{"ns": "app.q"}]},
            "pipeline",
        ),
        (
            "bulkWrite unindexed filter",
            doc! {"bulkWrite": 1, "ops": [{"delete": 0, "multi": false, "filter": {"notes": SECRET}}], "nsInfo": [{"ns": "app.q"}]},
            "notes",
        ),
        (
            "bulkWrite let reads an encrypted field",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n"}}], "nsInfo": [{"ns": "app.q"}], "let": {"v": "$ssn"}},
            "ssn",
        ),
        (
            "bulkWrite FLE1 namespace",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.people"}]},
            "bulkWrite does not currently support automatic encryption",
        ),
        (
            "bulkWrite insert and update",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}, {"update": 0, "multi": false, "filter": {"ssn": SECRET}, "updateMods": {"$set": {"notes": SECRET}}}], "nsInfo": [{"ns": "app.q"}]},
            "Only insert is supported in BulkWrite with multiple operations",
        ),
        (
            "bulkWrite two deletes",
            doc! {"bulkWrite": 1, "ops": [{"delete": 0, "multi": false, "filter": {"ssn": SECRET}}, {"delete": 0, "multi": false, "filter": {"ssn": SECRET2}}], "nsInfo": [{"ns": "app.q"}]},
            "Only insert is supported in BulkWrite with multiple operations",
        ),
        (
            "bulkWrite text search collection",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"bio": SECRET}}], "nsInfo": [{"ns": "app.qtext"}]},
            "which csfle does not support",
        ),
        // Other commands.
        (
            "distinct key",
            doc! {"distinct": "q", "key": "ssn", "query": {}},
            "distinct",
        ),
        (
            "count unindexed",
            doc! {"count": "q", "query": {"notes": SECRET}},
            "notes",
        ),
        (
            "validator",
            doc! {"create": "q", "validator": {"ssn": SECRET}},
            "Comparison to encrypted fields not supported",
        ),
        (
            "validator $jsonSchema",
            doc! {"collMod": "q", "validator": {"$jsonSchema": {"properties": {"ssn": {"enum": [SECRET]}}}}},
            "ssn",
        ),
        (
            "partial filter",
            doc! {"createIndexes": "q", "indexes": [{"key": {"a": 1}, "name": "a", "partialFilterExpression": {"ssn": SECRET}}]},
            "Comparison to encrypted fields not supported",
        ),
    ]
}

fn legitimate() -> Vec<(&'static str, Document, usize)> {
    let when = DateTime::from_millis(1_700_000_000_000);
    vec![
        (
            "insert one",
            doc! {"insert": "q", "documents": [{"ssn": SECRET, "name": "n"}]},
            1,
        ),
        (
            "insert every field",
            doc! {"insert": "q", "documents": [{"ssn": SECRET, "notes": SECRET2, "med": {"record": SECRET, "other": 1}, "age": AGE, "salary": SALARY, "score": 42.25, "created": when}]},
            7,
        ),
        (
            "insert two",
            doc! {"insert": "q", "documents": [{"ssn": SECRET}, {"ssn": SECRET2}]},
            2,
        ),
        (
            "insert plain",
            doc! {"insert": "q", "documents": [{"name": "n", "tags": [1, 2]}]},
            0,
        ),
        (
            "insert null document",
            doc! {"insert": "q", "documents": [{"med": Bson::Null}]},
            0,
        ),
        ("find equality", find(doc! {"ssn": SECRET}), 1),
        ("find $eq", find(doc! {"ssn": {"$eq": SECRET}}), 1),
        (
            "find $in",
            find(doc! {"ssn": {"$in": [SECRET, SECRET2]}}),
            2,
        ),
        ("find nested equality", find(doc! {"med.record": SECRET}), 1),
        ("find range equality", find(doc! {"age": AGE}), 2),
        ("find range $in", find(doc! {"age": {"$in": [AGE, 7]}}), 4),
        (
            "find range $in beside a plain field",
            find(doc! {"age": {"$in": [AGE]}, "name": "n"}),
            2,
        ),
        ("find range one side", find(doc! {"age": {"$gt": AGE}}), 1),
        (
            "find range two sides",
            find(doc! {"age": {"$gte": 5, "$lte": AGE}}),
            2,
        ),
        (
            "find range $and",
            find(doc! {"$and": [{"age": {"$gt": 1}}, {"age": {"$lt": AGE}}]}),
            2,
        ),
        (
            "find $or",
            find(doc! {"$or": [{"ssn": SECRET}, {"med.record": SECRET2}]}),
            2,
        ),
        (
            "find mixed",
            find(doc! {"ssn": SECRET, "name": "x", "salary": {"$lt": SALARY}}),
            2,
        ),
        (
            "find double precision",
            find(doc! {"score": {"$gte": 12.5}}),
            1,
        ),
        ("find date", find(doc! {"created": {"$lt": when}}), 1),
        (
            "find projection and sort",
            doc! {"find": "q", "filter": {"ssn": SECRET}, "projection": {"ssn": 1, "__safeContent__": 0}, "sort": {"name": 1}},
            1,
        ),
        ("find plain", find(doc! {"name": "x"}), 0),
        ("find plain sibling", find(doc! {"med.other": "x"}), 0),
        (
            "find $expr plain",
            find(doc! {"$expr": {"$eq": ["$name", "x"]}}),
            0,
        ),
        ("count", doc! {"count": "q", "query": {"ssn": SECRET}}, 1),
        (
            "distinct",
            doc! {"distinct": "q", "key": "name", "query": {"ssn": SECRET}},
            1,
        ),
        (
            "delete",
            doc! {"delete": "q", "deletes": [{"q": {"ssn": SECRET}, "limit": 1}]},
            1,
        ),
        (
            "update $set",
            update(doc! {"age": {"$gt": 1}}, set(doc! {"ssn": SECRET})),
            2,
        ),
        (
            "update replacement upsert",
            doc! {"update": "q", "updates": [{"q": {"name": "n"}, "u": {"ssn": SECRET, "age": AGE}, "upsert": true}]},
            2,
        ),
        (
            "update $setOnInsert",
            doc! {"update": "q", "updates": [{"q": {"name": "n"}, "u": {"$setOnInsert": {"notes": SECRET}}, "upsert": true}]},
            1,
        ),
        (
            "update $set document",
            update(doc! {}, set(doc! {"med": {"record": SECRET}})),
            1,
        ),
        (
            "update $set path",
            update(doc! {}, set(doc! {"med.record": SECRET})),
            1,
        ),
        (
            "update plain $inc",
            update(doc! {}, Bson::Document(doc! {"$inc": {"count": 1}})),
            0,
        ),
        (
            "update plain $unset",
            update(doc! {}, Bson::Document(doc! {"$unset": {"name": ""}})),
            0,
        ),
        (
            "update plain array filter",
            doc! {"update": "q", "updates": [{"q": {}, "u": {"$set": {"arr.$[t].x": 1}}, "arrayFilters": [{"t.x": {"$gt": 1}}]}]},
            0,
        ),
        (
            "findAndModify",
            doc! {"findAndModify": "q", "query": {"ssn": SECRET}, "update": {"$set": {"age": AGE}}, "new": true},
            2,
        ),
        (
            "aggregate",
            agg(vec![
                doc! {"$match": {"ssn": SECRET}},
                doc! {"$sort": {"name": 1}},
                doc! {"$limit": 1},
                doc! {"$project": {"ssn": 1, "name": 1}},
            ]),
            1,
        ),
        (
            "aggregate range",
            agg(vec![doc! {"$match": {"age": {"$gt": 1, "$lt": AGE}}}]),
            2,
        ),
        (
            "aggregate $count",
            agg(vec![doc! {"$match": {"name": "x"}}, doc! {"$count": "n"}]),
            0,
        ),
        (
            "explain",
            doc! {"explain": find(doc! {"ssn": SECRET}), "verbosity": "queryPlanner"},
            1,
        ),
        (
            "create with encryptedFields",
            doc! {"create": "q", "encryptedFields": q_fields()},
            0,
        ),
        (
            "createIndexes",
            doc! {"createIndexes": "q", "indexes": [{"key": {"name": 1}, "name": "n"}]},
            0,
        ),
        (
            "collMod validator",
            doc! {"collMod": "q", "validator": {"name": {"$type": "string"}}},
            0,
        ),
        (
            "bulkWrite insert",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET, "name": "n"}}], "nsInfo": [{"ns": "app.q"}]},
            1,
        ),
        (
            "bulkWrite inserts",
            doc! {"bulkWrite": 1, "errorsOnly": true, "ordered": false, "ops": [
                {"insert": 0, "document": {"_id": 1, "ssn": SECRET, "notes": SECRET2, "age": AGE}},
                {"insert": 0, "document": {"_id": 2, "med": {"record": SECRET2}, "salary": SALARY}},
            ], "nsInfo": [{"ns": "app.q"}], "let": {"x": 1}, "comment": "c"},
            5,
        ),
        (
            "bulkWrite update",
            doc! {"bulkWrite": 1, "ops": [
                {"update": 0, "multi": false, "filter": {"ssn": SECRET}, "updateMods": {"$set": {"notes": SECRET2}}, "upsert": true},
            ], "nsInfo": [{"ns": "app.q"}]},
            2,
        ),
        (
            "bulkWrite replacement",
            doc! {"bulkWrite": 1, "ops": [
                {"update": 0, "multi": false, "filter": {"age": {"$gt": AGE}}, "updateMods": {"ssn": SECRET2, "name": "n"}},
            ], "nsInfo": [{"ns": "app.q"}]},
            2,
        ),
        (
            "bulkWrite delete",
            doc! {"bulkWrite": 1, "ops": [
                {"delete": 0, "multi": true, "filter": {"$or": [{"ssn": SECRET}, {"med.record": SECRET2}]}},
            ], "nsInfo": [{"ns": "app.q"}]},
            2,
        ),
        (
            "bulkWrite plain",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n"}}], "nsInfo": [{"ns": "app.q"}]},
            0,
        ),
        (
            "bulkWrite on a plain namespace",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"name": "n"}}], "nsInfo": [{"ns": "app.plain"}]},
            0,
        ),
    ]
}

#[test]
fn hostile_commands_are_refused_for_the_right_reason() {
    let cases = hostile();
    eprintln!(
        "QE hostile table: {} commands; legitimate table: {} commands",
        cases.len(),
        legitimate().len()
    );
    assert!(cases.len() >= 60, "{} hostile cases", cases.len());
    let mut commands = std::collections::HashSet::new();
    for (name, cmd, reason) in &cases {
        commands.insert(cmd.keys().next().unwrap().clone());
        match send(cmd) {
            Err(e) => {
                if std::env::var_os("CSFLE_PRINT_REFUSALS").is_some() {
                    eprintln!("{name}: {e}");
                }
                assert!(
                    e.contains(reason),
                    "{name}: refused, but not naming '{reason}': {e}"
                );
            }
            Ok((sent, _)) => panic!(
                "{name}: not refused; would send {}{sent}",
                if carries_secret(&sent) {
                    "PLAINTEXT "
                } else {
                    ""
                }
            ),
        }
    }
    for c in [
        "insert",
        "find",
        "update",
        "delete",
        "findAndModify",
        "aggregate",
        "count",
        "distinct",
        "explain",
        "create",
        "collMod",
        "createIndexes",
        "bulkWrite",
    ] {
        assert!(commands.contains(c), "no hostile {c}");
    }
}

#[test]
fn legitimate_commands_get_placeholders_and_no_plaintext() {
    let cases = legitimate();
    assert!(cases.len() >= 20, "{} legitimate cases", cases.len());
    for (name, cmd, placeholders) in &cases {
        let (sent, n) = send(cmd).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(n, *placeholders, "{name}: {sent}");
        assert!(!carries_secret(&sent), "{name}: plaintext left in {sent}");
        if n == 0 {
            assert_eq!(&sent, cmd, "{name}: changed without placeholders");
        }
    }
    eprintln!("{} legitimate QE commands", cases.len());
}

/// The placeholder at `path` (dotted, array indexes as numbers) of `d`.
fn placeholder_at<'d>(d: &'d Document, path: &str) -> Placeholder<'d> {
    let mut v: &Bson = d.get(path.split('.').next().unwrap()).unwrap();
    for part in path.split('.').skip(1) {
        v = match v {
            Bson::Document(d) => d.get(part).unwrap_or_else(|| panic!("{path}: no {part}")),
            Bson::Array(a) => &a[part.parse::<usize>().unwrap()],
            other => panic!("{path}: {other}"),
        };
    }
    let Bson::Binary(b) = v else {
        panic!("{path}: not a placeholder: {v}");
    };
    Placeholder::parse(&b.bytes).unwrap()
}

fn marked(cmd: &Document) -> Document {
    match analyze(cmd, "app", &lookup).unwrap() {
        Analysis::Marked(m) => m,
        Analysis::Unchanged => panic!("not marked: {cmd}"),
    }
}

/// mongocryptd's shapes: equality keeps its operator, a one-sided range
/// its operator, a two-sided range and a range equality become an `$and`
/// of the placeholder carrying the interval and its stub, `payloadId`s
/// counting from 0 in each command.
#[test]
fn range_and_equality_shapes() {
    let m = marked(&find(
        doc! {"ssn": SECRET, "age": {"$gte": 5, "$lt": AGE}, "score": 12.5},
    ));
    let filter = m.get_document("filter").unwrap();
    let and = filter.get_array("$and").unwrap();
    assert_eq!(and.len(), 3, "{filter}");
    let eq = placeholder_at(filter, "$and.0.ssn.$eq");
    assert_eq!(
        (eq.kind, eq.algorithm, eq.max_contention),
        (PlaceholderType::Find, Fle2Algorithm::Equality, 4)
    );
    let first = placeholder_at(filter, "$and.1.$and.0.age.$gte");
    let stub = placeholder_at(filter, "$and.1.$and.1.age.$lt");
    let spec = range_find_spec(first.value).unwrap();
    let edges = spec.edges.unwrap();
    assert_eq!(
        (spec.payload_id, spec.first_operator, spec.second_operator),
        (0, RangeOperator::Gte, RangeOperator::Lt)
    );
    assert_eq!(edges.lower_bound.as_i32(), Some(5));
    assert_eq!(edges.upper_bound.as_i32(), Some(AGE));
    assert!(edges.lower_included && !edges.upper_included);
    assert_eq!(
        (edges.index_min.as_i32(), edges.index_max.as_i32()),
        (Some(0), Some(2_000_000_000))
    );
    assert_eq!((edges.precision, edges.trim_factor), (None, Some(1)));
    assert_eq!((first.sparsity, first.max_contention), (1, 0));
    let stub_spec = range_find_spec(stub.value).unwrap();
    assert!(stub_spec.edges.is_none());
    assert_eq!(
        (
            stub_spec.payload_id,
            stub_spec.first_operator,
            stub_spec.second_operator
        ),
        (0, RangeOperator::Gte, RangeOperator::Lt)
    );
    // The equality on `score`: [12.5, 12.5], the next payloadId.
    let score = placeholder_at(filter, "$and.2.$and.0.score.$gte");
    let spec = range_find_spec(score.value).unwrap();
    let edges = spec.edges.unwrap();
    assert_eq!(spec.payload_id, 1);
    assert_eq!(
        (edges.lower_bound.as_f64(), edges.upper_bound.as_f64()),
        (Some(12.5), Some(12.5))
    );
    assert!(edges.lower_included && edges.upper_included);
    assert_eq!(edges.precision, Some(2));
    // The default sparsity is 2.
    assert_eq!(score.sparsity, 2);
    // One-sided: its own operator, open on the other side.
    let m = marked(&find(doc! {"salary": {"$lt": SALARY}}));
    let filter = m.get_document("filter").unwrap();
    let p = placeholder_at(filter, "salary.$lt");
    let spec = range_find_spec(p.value).unwrap();
    let edges = spec.edges.unwrap();
    assert_eq!(edges.lower_bound.as_f64(), Some(f64::NEG_INFINITY));
    assert_eq!(
        (edges.index_min.as_f64(), edges.index_max.as_f64()),
        (Some(-f64::MAX), Some(f64::MAX))
    );
    assert_eq!(spec.second_operator, RangeOperator::None);
    // `$in` on an equality field keeps its operator.
    let m = marked(&find(doc! {"ssn": {"$in": [SECRET, SECRET2]}}));
    let _ = placeholder_at(m.get_document("filter").unwrap(), "ssn.$in.1");
    // `$in` on a range field: an `$or` of point ranges [v, v], one
    // payloadId each, in the order written.
    let m = marked(&find(doc! {"age": {"$in": [AGE, 7]}}));
    let filter = m.get_document("filter").unwrap();
    assert_eq!(filter.get_array("$or").unwrap().len(), 2, "{filter}");
    for (i, value) in [AGE, 7].into_iter().enumerate() {
        let p = placeholder_at(filter, &format!("$or.{i}.$and.0.age.$gte"));
        let spec = range_find_spec(p.value).unwrap();
        assert_eq!(spec.payload_id, i as i32);
        assert_eq!(
            (spec.first_operator, spec.second_operator),
            (RangeOperator::Gte, RangeOperator::Lte)
        );
        let edges = spec.edges.unwrap();
        assert_eq!(
            (edges.lower_bound.as_i32(), edges.upper_bound.as_i32()),
            (Some(value), Some(value))
        );
        assert!(edges.lower_included && edges.upper_included);
        let stub = placeholder_at(filter, &format!("$or.{i}.$and.1.age.$lte"));
        assert!(range_find_spec(stub.value).unwrap().edges.is_none());
    }
    // An empty `$in` carries no value and matches nothing: kept.
    let d = doc! {"find": "q", "filter": {"age": {"$in": []}}};
    let out = analyze(&d, "app", &lookup).unwrap();
    assert!(matches!(out, Analysis::Unchanged), "{out:?}");
}

/// Inserts: the algorithm, contention and range spec of each field.
#[test]
fn insert_placeholders() {
    let when = DateTime::from_millis(1_700_000_000_000);
    let m = marked(
        &doc! {"insert": "q", "documents": [{"ssn": SECRET, "notes": SECRET2, "age": AGE, "created": when}]},
    );
    let d = m.get_array("documents").unwrap()[0].as_document().unwrap();
    let ssn = placeholder_at(d, "ssn");
    assert_eq!(
        (
            ssn.kind,
            ssn.algorithm,
            ssn.max_contention,
            ssn.index_key_id
        ),
        (PlaceholderType::Insert, Fle2Algorithm::Equality, 4, [1; 16])
    );
    let notes = placeholder_at(d, "notes");
    assert_eq!(
        (notes.algorithm, notes.max_contention),
        (Fle2Algorithm::Unindexed, 0)
    );
    let age = placeholder_at(d, "age");
    let spec = range_insert_spec(age.value).unwrap();
    assert_eq!(
        (spec.value.as_i32(), spec.min.as_i32(), spec.max.as_i32()),
        (Some(AGE), Some(0), Some(2_000_000_000))
    );
    assert_eq!((spec.trim_factor, age.sparsity), (Some(1), 1));
    // A date index without bounds: the type's limits.
    let created = placeholder_at(d, "created");
    let spec = range_insert_spec(created.value).unwrap();
    assert_eq!(spec.min.as_datetime(), Some(DateTime::MIN));
    assert_eq!(spec.max.as_datetime(), Some(DateTime::MAX));
    assert_eq!(spec.trim_factor, None);
}

/// The specification's wording (`fle2v2-Rangev2-*-Correctness`,
/// `fle2v2-InsertFind-Unindexed`, `fle2v2-validatorAndPartialFieldExpression`).
#[test]
fn spec_wording() {
    let refused = |cmd: Document| send(&cmd).unwrap_err();
    let e = refused(doc! {"insert": "q", "documents": [{"age": 0.0}]});
    assert!(e.contains("Cannot encrypt element"), "{e}");
    let e = refused(find(doc! {"age": {"$gte": 0.0}}));
    assert!(e.contains("field type is not supported"), "{e}");
    let e = refused(find(doc! {"created": {"$gte": 0.0}}));
    assert!(e.contains("value type is a date"), "{e}");
    let e = refused(find(doc! {"notes": "value123"}));
    assert!(e.contains("encrypt"), "{e}");
    for cmd in [
        doc! {"create": "q", "validator": {"ssn": "foo"}},
        doc! {"collMod": "q", "validator": {"ssn": "foo"}},
        doc! {"createIndexes": "q", "indexes": [{"name": "name", "key": {"name": 1}, "partialFilterExpression": {"ssn": "foo"}}]},
    ] {
        let e = refused(cmd);
        assert!(
            e.contains("Comparison to encrypted fields not supported"),
            "{e}"
        );
    }
}

/// A field naming its key by `keyAltName` is refused until the key is
/// resolved, and placeholders then carry the resolved id.
#[test]
fn unresolved_key_alt_names_are_refused() {
    let mut fields = EncryptedFields::from_document(
        &doc! {"fields": [{"path": "ssn", "keyAltName": "k", "bsonType": "string", "queries": {"queryType": "equality"}}]},
        ParseMode::Map,
    )
    .unwrap();
    let cmd = find(doc! {"ssn": SECRET});
    {
        let lookup = |_: &Namespace| NamespaceSchema::Queryable(&fields);
        let e = analyze(&cmd, "app", &lookup).unwrap_err().to_string();
        assert!(e.contains("ssn") && e.contains("not resolved"), "{e}");
        // Nothing to encrypt: nothing to resolve.
        assert_eq!(
            analyze(&find(doc! {"name": "x"}), "app", &lookup).unwrap(),
            Analysis::Unchanged
        );
    }
    fields.resolve_keys(|_| Some([0x42; 16])).unwrap();
    let lookup = |_: &Namespace| NamespaceSchema::Queryable(&fields);
    let Analysis::Marked(m) = analyze(&cmd, "app", &lookup).unwrap() else {
        panic!("not marked");
    };
    let p = placeholder_at(m.get_document("filter").unwrap(), "ssn.$eq");
    assert_eq!((p.index_key_id, p.user_key_id), ([0x42; 16], [0x42; 16]));
}

/// A QE collection whose lookup is not known yet: refused, naming it, so
/// the caller can fetch its `encryptedFields`.
#[test]
fn unknown_namespaces_are_refused() {
    let e = send(&doc! {"aggregate": "q", "pipeline": [{"$lookup": {"from": "unknown", "pipeline": [], "as": "x"}}], "cursor": {}}).unwrap_err();
    assert!(e.contains("$lookup"), "{e}");
    let e = send(&doc! {"find": "unknown", "filter": {"ssn": SECRET}}).unwrap_err();
    assert!(e.contains("app.unknown"), "{e}");
}
