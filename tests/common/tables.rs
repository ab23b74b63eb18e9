//! The hostile and legitimate command tables: commands that automatic
//! encryption must refuse (each with the word its refusal must contain),
//! and commands that must still go through (with whether they carry
//! values to encrypt). Namespaces: `app.people` and `other.people2`
//! encrypt `ssn` (deterministic, key 16 × 0x11), `notes` (random, key by
//! the alt name in `owner`) and `med.record`; `app.plain` has a schema
//! without encryption; `app.unknown` cannot be looked up.

#![allow(dead_code)]

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};

pub const SECRET: &str = "457-55-5462";
pub const SECRET2: &str = "457-55-0000";

pub fn key() -> Bson {
    Bson::Array(vec![Bson::Binary(
        csfle::KeyId::from_bytes([0x11; 16]).to_binary(),
    )])
}

pub fn people_schema() -> Document {
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "notes": {"encrypt": {"keyId": "/owner", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
            "med": {"bsonType": "object", "properties": {"record": {"encrypt": {"keyId": key(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
            "name": {"bsonType": "string"},
        },
    }
}

pub fn marking() -> Bson {
    let mut bytes = vec![0u8];
    doc! {"a": 1, "ki": csfle::KeyId::from_bytes([0x11; 16]).to_binary(), "v": SECRET}
        .to_writer(&mut bytes)
        .unwrap();
    Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    })
}

pub fn lookup_people(pipeline: Vec<Document>) -> Document {
    doc! {"$lookup": {"from": "people", "pipeline": pipeline, "as": "p"}}
}

pub fn hostile() -> Vec<(&'static str, Document, &'static str)> {
    let mut cases = first_hostile();
    cases.extend(sub_pipeline_hostile());
    cases.extend(argument_hostile());
    cases.extend(stored_hostile());
    cases.extend(shape_hostile());
    cases
}

fn first_hostile() -> Vec<(&'static str, Document, &'static str)> {
    let eq_ssn = doc! {"$eq": ["$ssn", SECRET]};
    let match_ssn = doc! {"$match": {"ssn": SECRET}};
    vec![
        // find
        (
            "find: projection compares ssn",
            doc! {"find": "people", "filter": {}, "projection": {"m": eq_ssn.clone()}},
            "ssn",
        ),
        (
            "find: projection copies ssn",
            doc! {"find": "people", "projection": {"m": "$ssn"}},
            "ssn",
        ),
        (
            "find: projection computes on notes",
            doc! {"find": "people", "projection": {"m": {"$concat": ["$notes", SECRET]}}},
            "notes",
        ),
        (
            "find: projection reads $$ROOT",
            doc! {"find": "people", "projection": {"m": {"$eq": ["$$ROOT", {"ssn": SECRET}]}}},
            "$$ROOT",
        ),
        (
            "find: projection reads $$CURRENT.ssn",
            doc! {"find": "people", "projection": {"m": {"$eq": ["$$CURRENT.ssn", SECRET]}}},
            "ssn",
        ),
        (
            "find: projection assigns a literal to ssn",
            doc! {"find": "people", "projection": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "find: projection assigns to med.record",
            doc! {"find": "people", "projection": {"med.record": {"$literal": SECRET}}},
            "med.record",
        ),
        (
            "find: projection $getField ssn",
            doc! {"find": "people", "projection": {"m": {"$eq": [{"$getField": "ssn"}, SECRET]}}},
            "ssn",
        ),
        (
            "find: projection $getField computed",
            doc! {"find": "people", "projection": {"m": {"$getField": {"field": {"$concat": ["s", "sn"]}}}}},
            "computed field name",
        ),
        (
            "find: projection $function",
            doc! {"find": "people", "projection": {"m": {"$function": {"body": "f", "args": [SECRET], "lang": "js"}}}},
            "$function",
        ),
        (
            "find: projection $elemMatch on ssn",
            doc! {"find": "people", "projection": {"ssn": {"$elemMatch": {"$eq": SECRET}}}},
            "ssn",
        ),
        (
            "find: $expr on ssn",
            doc! {"find": "people", "filter": {"$expr": eq_ssn.clone()}},
            "ssn",
        ),
        (
            "find: $expr $in on ssn",
            doc! {"find": "people", "filter": {"$expr": {"$in": ["$ssn", [SECRET]]}}},
            "ssn",
        ),
        (
            "find: $expr $getField",
            doc! {"find": "people", "filter": {"$expr": {"$eq": [{"$getField": {"field": "ssn", "input": "$$CURRENT"}}, SECRET]}}},
            "$$CURRENT",
        ),
        (
            "find: $expr $function",
            doc! {"find": "people", "filter": {"$expr": {"$function": {"body": "f", "args": ["$name"], "lang": "js"}}}},
            "$function",
        ),
        (
            "find: $where",
            doc! {"find": "people", "filter": {"$where": format!("this.ssn == '{SECRET}'")}},
            "$where",
        ),
        (
            "find: min on ssn",
            doc! {"find": "people", "filter": {}, "min": {"ssn": SECRET}, "hint": {"ssn": 1}},
            "ssn",
        ),
        (
            "find: max on ssn",
            doc! {"find": "people", "filter": {}, "max": {"ssn": SECRET}, "hint": {"ssn": 1}},
            "ssn",
        ),
        (
            "find: let reads ssn",
            doc! {"find": "people", "filter": {}, "let": {"v": "$ssn"}},
            "ssn",
        ),
        (
            "find: unknown field",
            doc! {"find": "people", "filter": {}, "secretHint": SECRET},
            "secretHint",
        ),
        (
            "find: range on ssn",
            doc! {"find": "people", "filter": {"ssn": {"$gt": SECRET}}},
            "ssn",
        ),
        (
            "find: regex on ssn",
            doc! {"find": "people", "filter": {"ssn": {"$regex": "^457"}}},
            "ssn",
        ),
        (
            "find: query on random notes",
            doc! {"find": "people", "filter": {"notes": SECRET}},
            "notes",
        ),
        (
            "find: sort on ssn",
            doc! {"find": "people", "filter": {}, "sort": {"ssn": 1}},
            "ssn",
        ),
        (
            "find: equality on a document holding med.record",
            doc! {"find": "people", "filter": {"med": {"record": SECRET}}},
            "med",
        ),
        (
            "find: path below ssn",
            doc! {"find": "people", "filter": {"ssn.x": SECRET}},
            "ssn.x",
        ),
        (
            "find: unknown namespace",
            doc! {"find": "unknown", "filter": {"ssn": SECRET}},
            "app.unknown",
        ),
        (
            "find: injected marking on a plain collection",
            doc! {"find": "events", "filter": {"x": marking()}},
            "marking",
        ),
        // findAndModify
        (
            "findAndModify: fields compare ssn",
            doc! {"findAndModify": "people", "query": {}, "fields": {"m": eq_ssn.clone()}, "update": {"$set": {"a": 1}}},
            "ssn",
        ),
        (
            "findAndModify: mixed update",
            doc! {"findAndModify": "people", "query": {}, "update": {"name": "n", "$set": {"ssn": SECRET}}},
            "name",
        ),
        (
            "findAndModify: $rename ssn to notes",
            doc! {"findAndModify": "people", "query": {}, "update": {"$rename": {"ssn": "notes"}}},
            "ssn",
        ),
        (
            "findAndModify: $rename ssn to plain",
            doc! {"findAndModify": "people", "query": {}, "update": {"$rename": {"ssn": "copy"}}},
            "copy",
        ),
        (
            "findAndModify: pipeline update",
            doc! {"findAndModify": "people", "query": {}, "update": [{"$set": {"ssn": SECRET}}]},
            "app.people",
        ),
        (
            "findAndModify: $expr query",
            doc! {"findAndModify": "people", "query": {"$expr": eq_ssn.clone()}, "remove": true},
            "ssn",
        ),
        (
            "findAndModify: unknown field",
            doc! {"findAndModify": "people", "query": {}, "remove": true, "extra": SECRET},
            "extra",
        ),
        (
            "findAndModify: sort on ssn",
            doc! {"findAndModify": "people", "query": {}, "remove": true, "sort": {"ssn": 1}},
            "ssn",
        ),
        // update
        (
            "update: mixed field and $set",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"name": "n", "$set": {"ssn": SECRET}}}]},
            "name",
        ),
        (
            "update: positional below ssn",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"ssn.$": SECRET}}}]},
            "ssn.$",
        ),
        (
            "update: $inc ssn",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$inc": {"ssn": 1}}}]},
            "$inc",
        ),
        (
            "update: $push below med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$push": {"med.record": SECRET}}}]},
            "$push",
        ),
        (
            "update: $expr q on ssn",
            doc! {"update": "people", "updates": [{"q": {"$expr": eq_ssn.clone()}, "u": {"$set": {"a": 1}}}]},
            "ssn",
        ),
        (
            "update: unknown statement field",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "secret": SECRET}]},
            "updates.secret",
        ),
        (
            "update: $set notes needs the whole document",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"notes": SECRET}}}]},
            "notes",
        ),
        (
            "update: c reads ssn",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "c": {"v": "$ssn"}}]},
            "ssn",
        ),
        (
            "update: pipeline update",
            doc! {"update": "people", "updates": [{"q": {}, "u": [{"$set": {"ssn": SECRET}}]}]},
            "app.people",
        ),
        (
            "update: sort on ssn",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "sort": {"ssn": 1}}]},
            "ssn",
        ),
        // delete
        (
            "delete: regex on ssn",
            doc! {"delete": "people", "deletes": [{"q": {"ssn": {"$regex": "^457"}}, "limit": 0}]},
            "ssn",
        ),
        (
            "delete: $where",
            doc! {"delete": "people", "deletes": [{"q": {"$where": "true"}, "limit": 0}]},
            "$where",
        ),
        (
            "delete: unknown field",
            doc! {"delete": "people", "deletes": [{"q": {}, "limit": 0}], "secret": SECRET},
            "secret",
        ),
        // insert
        (
            "insert: wrong type for ssn",
            doc! {"insert": "people", "documents": [{"ssn": 5}]},
            "ssn",
        ),
        (
            "insert: double for deterministic ssn",
            doc! {"insert": "people", "documents": [{"ssn": 1.5}]},
            "Cannot use deterministic encryption for element of type: double",
        ),
        (
            "insert: injected marking",
            doc! {"insert": "people", "documents": [{"ssn": marking()}]},
            "marking",
        ),
        (
            "insert: array where med holds encrypted fields",
            doc! {"insert": "people", "documents": [{"med": [{"record": SECRET}]}]},
            "med",
        ),
        (
            "insert: notes without its key name",
            doc! {"insert": "people", "documents": [{"notes": SECRET}]},
            "notes",
        ),
        (
            "insert: unknown field",
            doc! {"insert": "people", "documents": [{"ssn": SECRET}], "secret": SECRET},
            "secret",
        ),
        // aggregate on a collection without encrypted fields
        (
            "aggregate plain: $lookup sub-pipeline filters ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![match_ssn.clone()])], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup $expr on ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![doc! {"$match": {"$expr": eq_ssn.clone()}}])], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup joins on ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "people", "localField": "x", "foreignField": "ssn", "as": "p"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $unionWith pipeline filters ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "people", "pipeline": [match_ssn.clone()]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $graphLookup connects on ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$graphLookup": {"from": "people", "startWith": "$x", "connectFromField": "name", "connectToField": "ssn", "as": "g"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $graphLookup restricts on ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$graphLookup": {"from": "people", "startWith": "$x", "connectFromField": "name", "connectToField": "name", "as": "g", "restrictSearchWithMatch": {"ssn": SECRET}}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $merge into people",
            doc! {"aggregate": "plain", "pipeline": [{"$set": {"ssn": SECRET}}, {"$merge": {"into": "people"}}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $merge into people by name",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": "people"}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $out people",
            doc! {"aggregate": "plain", "pipeline": [{"$set": {"ssn": SECRET}}, {"$out": "people"}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $out to another db",
            doc! {"aggregate": "plain", "pipeline": [{"$out": {"db": "other", "coll": "people2"}}], "cursor": {}},
            "other.people2",
        ),
        (
            "aggregate plain: $merge into another db",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": {"db": "other", "coll": "people2"}}}], "cursor": {}},
            "other.people2",
        ),
        (
            "aggregate plain: $facet hides a $lookup",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [lookup_people(vec![match_ssn.clone()])]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: nested $lookup",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "events", "pipeline": [lookup_people(vec![match_ssn.clone()])], "as": "e"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup from another db",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": {"db": "other", "coll": "people2"}, "pipeline": [match_ssn.clone()], "as": "p"}}], "cursor": {}},
            "other.people2",
        ),
        (
            "aggregate plain: filter on joined ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$match": {"p.ssn": SECRET}}], "cursor": {}},
            "p.ssn",
        ),
        (
            "aggregate plain: project joined ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$project": {"x": {"$eq": ["$p.ssn", SECRET]}}}], "cursor": {}},
            "p.ssn",
        ),
        (
            "aggregate plain: $lookup from an unknown namespace",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "unknown", "localField": "a", "foreignField": "b", "as": "u"}}], "cursor": {}},
            "app.unknown",
        ),
        (
            "aggregate plain: unknown stage beside an encrypted join",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$fancy": {}}], "cursor": {}},
            "$fancy",
        ),
        // aggregate on the encrypted collection
        (
            "aggregate people: $project compares ssn",
            doc! {"aggregate": "people", "pipeline": [{"$project": {"m": eq_ssn.clone()}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $addFields writes ssn",
            doc! {"aggregate": "people", "pipeline": [{"$addFields": {"ssn": SECRET}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $set copies ssn",
            doc! {"aggregate": "people", "pipeline": [{"$set": {"copy": "$ssn"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $group on ssn",
            doc! {"aggregate": "people", "pipeline": [{"$group": {"_id": "$ssn"}}], "cursor": {}},
            "$group",
        ),
        (
            "aggregate people: $match $expr",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"$expr": eq_ssn.clone()}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $redact",
            doc! {"aggregate": "people", "pipeline": [{"$redact": "$$KEEP"}], "cursor": {}},
            "$redact",
        ),
        (
            "aggregate people: $replaceRoot",
            doc! {"aggregate": "people", "pipeline": [{"$replaceRoot": {"newRoot": "$med"}}], "cursor": {}},
            "$replaceRoot",
        ),
        (
            "aggregate people: filter after $facet",
            doc! {"aggregate": "people", "pipeline": [{"$facet": {"a": [match_ssn.clone()]}}, match_ssn.clone()], "cursor": {}},
            "$facet",
        ),
        (
            "aggregate people: unknown stage",
            doc! {"aggregate": "people", "pipeline": [{"$fancy": {"x": SECRET}}], "cursor": {}},
            "$fancy",
        ),
        (
            "aggregate people: let reads ssn",
            doc! {"aggregate": "people", "pipeline": [], "let": {"v": "$ssn"}, "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: change stream on fullDocument.ssn",
            doc! {"aggregate": "people", "pipeline": [{"$changeStream": {}}, {"$match": {"fullDocument.ssn": SECRET}}], "cursor": {}},
            "fullDocument.ssn",
        ),
        (
            "aggregate people: $sort on ssn",
            doc! {"aggregate": "people", "pipeline": [{"$sort": {"ssn": 1}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $unwind ssn",
            doc! {"aggregate": "people", "pipeline": [{"$unwind": "$ssn"}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup joins from ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "plain", "localField": "ssn", "foreignField": "a", "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup let reads ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "plain", "let": {"s": "$ssn"}, "pipeline": [], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: self-join sub-pipeline",
            doc! {"aggregate": "people", "pipeline": [lookup_people(vec![match_ssn.clone()])], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $out",
            doc! {"aggregate": "people", "pipeline": [{"$out": "plain_copy"}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate: database level",
            doc! {"aggregate": 1, "pipeline": [{"$documents": [{"ssn": SECRET}]}], "cursor": {}},
            "aggregate",
        ),
        // count, distinct
        (
            "count: $expr on ssn",
            doc! {"count": "people", "query": {"$expr": eq_ssn.clone()}},
            "ssn",
        ),
        (
            "count: unknown field",
            doc! {"count": "people", "query": {}, "secret": SECRET},
            "secret",
        ),
        (
            "distinct: query on random notes",
            doc! {"distinct": "people", "key": "name", "query": {"notes": SECRET}},
            "notes",
        ),
        (
            "distinct: key with a pointer keyId",
            doc! {"distinct": "people", "key": "notes"},
            "non-UUID keyId",
        ),
        // explain
        (
            "explain: projection compares ssn",
            doc! {"explain": {"find": "people", "projection": {"m": eq_ssn.clone()}}, "verbosity": "queryPlanner"},
            "ssn",
        ),
        (
            "explain: unknown field",
            doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}, "secret": SECRET},
            "secret",
        ),
        (
            "explain: aggregate with $lookup",
            doc! {"explain": {"aggregate": "plain", "pipeline": [lookup_people(vec![match_ssn.clone()])], "cursor": {}}},
            "ssn",
        ),
        // create, collMod, createIndexes
        (
            "create: view on people",
            doc! {"create": "v", "viewOn": "people", "pipeline": []},
            "app.people",
        ),
        (
            "create: view joining people",
            doc! {"create": "v", "viewOn": "plain", "pipeline": [lookup_people(vec![])]},
            "app.people",
        ),
        (
            "create: view filtering people",
            doc! {"create": "v", "viewOn": "plain", "pipeline": [lookup_people(vec![match_ssn.clone()])]},
            "ssn",
        ),
        (
            "create: view named like an encrypted namespace",
            doc! {"create": "people", "viewOn": "plain", "pipeline": []},
            "app.people",
        ),
        (
            "create: validator $expr on ssn",
            doc! {"create": "people", "validator": {"$expr": eq_ssn.clone()}},
            "ssn",
        ),
        (
            "create: validator $where",
            doc! {"create": "people", "validator": {"$where": "true"}},
            "$where",
        ),
        (
            "collMod: validator compares ssn",
            doc! {"collMod": "people", "validator": {"ssn": SECRET}},
            "ssn",
        ),
        (
            "collMod: view on people",
            doc! {"collMod": "v", "viewOn": "people", "pipeline": []},
            "app.people",
        ),
        (
            "collMod: unknown field",
            doc! {"collMod": "people", "secret": SECRET},
            "secret",
        ),
        (
            "createIndexes: partial filter on ssn",
            doc! {"createIndexes": "people", "indexes": [{"key": {"ssn": 1}, "name": "i", "partialFilterExpression": {"ssn": SECRET}}]},
            "ssn",
        ),
        (
            "createIndexes: partial filter $expr",
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "i", "partialFilterExpression": {"$expr": eq_ssn.clone()}}]},
            "ssn",
        ),
        // other commands
        (
            "mapReduce",
            doc! {"mapReduce": "people", "map": "f", "reduce": "g"},
            "mapReduce",
        ),
        (
            "bulkWrite",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"ssn": SECRET}}], "nsInfo": [{"ns": "app.people"}]},
            "bulkWrite",
        ),
    ]
}

/// `$documents` sub-pipelines (`$lookup` without `from`, `$unionWith`
/// without `coll`), `let` before `from`, `$merge.whenMatched`.
fn sub_pipeline_hostile() -> Vec<(&'static str, Document, &'static str)> {
    let eq_ssn = doc! {"$eq": ["$ssn", SECRET]};
    let match_ssn = doc! {"$match": {"ssn": SECRET}};
    let docs = |d: Vec<Document>| doc! {"$documents": d};
    vec![
        (
            "aggregate people: $unionWith $documents puts ssn",
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"ssn": SECRET}])]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $unionWith $documents puts notes",
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"name": "n"}, doc! {"notes": SECRET}])]}}], "cursor": {}},
            "notes",
        ),
        (
            "aggregate people: $unionWith $documents puts med.record",
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"med": {"record": SECRET}}])]}}], "cursor": {}},
            "med.record",
        ),
        (
            "aggregate people: $unionWith $documents puts a scalar on med",
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"med": SECRET}])]}}], "cursor": {}},
            "$documents literal",
        ),
        (
            "aggregate people: $unionWith $documents puts med.record inside an array",
            doc! {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"med": [{"record": SECRET}]}])]}}], "cursor": {}},
            "med.record",
        ),
        (
            "aggregate people: $unionWith $documents after a $match",
            doc! {"aggregate": "people", "pipeline": [match_ssn.clone(), {"$unionWith": {"pipeline": [docs(vec![doc! {"ssn": SECRET2}])]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup $documents with a literal ssn, unioned with people",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$unionWith": "people"}], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup $documents with a literal ssn, unioned with other.people2",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$unionWith": {"db": "other", "coll": "people2"}}], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $unionWith $documents with a literal notes, unioned with people",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"notes": SECRET}]), {"$unionWith": "people"}]}}], "cursor": {}},
            "notes",
        ),
        (
            "aggregate plain: $unionWith $documents computed, unioned with people",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [{"$documents": {"$literal": [{"ssn": SECRET}]}}, {"$unionWith": "people"}]}}], "cursor": {}},
            "computed value",
        ),
        (
            "aggregate plain: outer $match on ssn of documents a $lookup $documents joined",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}], "as": "x"}}, {"$match": {"x.ssn": SECRET}}], "cursor": {}},
            "x.ssn",
        ),
        (
            "aggregate plain: outer $project on ssn of documents a $lookup $documents joined",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}], "as": "x"}}, {"$project": {"m": {"$eq": ["$x.ssn", SECRET]}}}], "cursor": {}},
            "x.ssn",
        ),
        (
            "aggregate plain: $lookup without from joins on ssn of what it unions",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"localField": "a", "foreignField": "ssn", "pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup without from, let reads ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"let": {"s": "$ssn"}, "pipeline": [docs(vec![doc! {"a": 1}])], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup without from, let compares ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"let": {"s": eq_ssn.clone()}, "pipeline": [docs(vec![doc! {"a": 1}])], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup without from, let reads $$ROOT",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"let": {"r": "$$ROOT"}, "pipeline": [docs(vec![doc! {"a": 1}])], "as": "x"}}], "cursor": {}},
            "$$ROOT",
        ),
        (
            "aggregate people: $lookup without from, localField ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"localField": "ssn", "foreignField": "a", "pipeline": [docs(vec![doc! {"a": SECRET}])], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $lookup from plain, let reads notes",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "plain", "let": {"n": "$notes"}, "pipeline": [], "as": "x"}}], "cursor": {}},
            "notes",
        ),
        (
            "aggregate people: $lookup from plain, let computes with med.record",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "plain", "let": {"m": {"$concat": ["$med.record", SECRET]}}, "pipeline": [], "as": "x"}}], "cursor": {}},
            "med.record",
        ),
        (
            "aggregate people: $lookup from a collection without schema, let reads ssn",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "events", "let": {"s": "$ssn"}, "pipeline": [], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup without from, nested $lookup filters ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), lookup_people(vec![match_ssn.clone()])], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $unionWith without coll, nested $lookup joins on ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$lookup": {"from": "people", "localField": "a", "foreignField": "ssn", "as": "p"}}]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup without from, $graphLookup restricts on ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$graphLookup": {"from": "people", "startWith": "$a", "connectFromField": "name", "connectToField": "name", "as": "g", "restrictSearchWithMatch": {"ssn": SECRET}}}], "as": "x"}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $lookup without from, $merge into people",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$merge": {"into": "people"}}], "as": "x"}}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $unionWith without coll, $unionWith an unknown namespace",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "unknown"}]}}], "cursor": {}},
            "app.unknown",
        ),
        (
            "aggregate plain: $facet hides a $lookup $documents with a literal ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"f": [{"$lookup": {"pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$unionWith": "people"}], "as": "x"}}]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $documents not first in a sub-pipeline",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [{"$match": {"a": 1}}, docs(vec![doc! {"ssn": SECRET}])], "as": "x"}}], "cursor": {}},
            "first stage",
        ),
        (
            "aggregate plain: $lookup without from or pipeline",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"localField": "a", "foreignField": "b", "as": "x"}}], "cursor": {}},
            "pipeline",
        ),
        (
            "aggregate people: $documents on an encrypted collection",
            doc! {"aggregate": "people", "pipeline": [docs(vec![doc! {"ssn": SECRET}])], "cursor": {}},
            "$documents",
        ),
        (
            "aggregate plain: $merge whenMatched unions people and filters ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": "plain2", "whenMatched": [{"$unionWith": "people"}, match_ssn.clone()]}}], "cursor": {}},
            "whenMatched",
        ),
        (
            "aggregate plain: $merge whenMatched joins people and filters ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": "plain2", "whenMatched": [lookup_people(vec![match_ssn.clone()])]}}], "cursor": {}},
            "ssn",
        ),
        (
            "create: view whose $lookup $documents unions people",
            doc! {"create": "v", "viewOn": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}], "as": "x"}}]},
            "app.people",
        ),
        (
            "create: view whose $unionWith $documents filters people's ssn",
            doc! {"create": "v", "viewOn": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}, match_ssn.clone()]}}]},
            "ssn",
        ),
        (
            "explain: $unionWith $documents puts ssn",
            doc! {"explain": {"aggregate": "people", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"ssn": SECRET}])]}}], "cursor": {}}},
            "ssn",
        ),
        // What a sub-pipeline joins or mixes in flows on with its output,
        // at every nesting.
        (
            "aggregate plain: $unionWith plain whose pipeline unions people, then $out",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": "people"}]}}, {"$out": "plain2"}], "cursor": {}},
            "cannot write",
        ),
        (
            "aggregate plain: $lookup plain whose pipeline unions people, filter on the joined ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$unionWith": "people"}], "as": "j"}}, {"$match": {"j.ssn": SECRET}}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $lookup plain whose pipeline unions people, then $merge",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$unionWith": "people"}], "as": "j"}}, {"$merge": {"into": "plain2"}}], "cursor": {}},
            "cannot write",
        ),
        (
            "aggregate plain: $facet joins people, filter after $unwind",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$lookup": {"from": "people", "localField": "x", "foreignField": "y", "as": "p"}}]}}, {"$unwind": "$a"}, {"$match": {"a.p.ssn": SECRET}}], "cursor": {}},
            "$facet",
        ),
        (
            "aggregate plain: $facet joins people, filter on the facet's output",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$lookup": {"from": "people", "localField": "x", "foreignField": "y", "as": "p"}}]}}, {"$match": {"a.p.ssn": SECRET}}], "cursor": {}},
            "$facet",
        ),
        (
            "aggregate plain: $facet unions people, then $out",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$unionWith": "people"}], "b": [{"$count": "n"}]}}, {"$out": "plain2"}], "cursor": {}},
            "cannot write",
        ),
        (
            "aggregate plain: $unionWith plain whose $lookup plain unions people, filter twice nested",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$unionWith": "people"}], "as": "k"}}]}}, {"$match": {"k.ssn": SECRET}}], "cursor": {}},
            "app.people",
        ),
        (
            "aggregate plain: $lookup plain whose $facet unions people, filter after",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$facet": {"f": [{"$unionWith": "people"}]}}], "as": "j"}}, {"$match": {"j.f.ssn": SECRET}}], "cursor": {}},
            "$facet",
        ),
        (
            "aggregate plain: $facet of a $unionWith plain whose $lookup joins people, then $out",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$unionWith": {"coll": "plain", "pipeline": [{"$lookup": {"from": "people", "localField": "x", "foreignField": "y", "as": "p"}}]}}]}}, {"$out": "plain2"}], "cursor": {}},
            "cannot write",
        ),
        (
            "aggregate plain: $facet inside $facet unions people, filter after",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$facet": {"b": [{"$unionWith": "people"}]}}]}}, {"$match": {"a.b.ssn": SECRET}}], "cursor": {}},
            "$facet",
        ),
        (
            "aggregate plain: $merge whenMatched unions people",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": "plain2", "whenMatched": [{"$unionWith": "people"}]}}], "cursor": {}},
            "whenMatched",
        ),
        (
            "update plain: pipeline update unions people",
            doc! {"update": "plain", "updates": [{"q": {}, "u": [{"$unionWith": "people"}]}]},
            "pipeline updates",
        ),
        // A `$documents` literal meets every collection joined or mixed in
        // after it, whatever sub-pipeline it came from.
        (
            "aggregate plain: $unionWith $documents with a literal ssn, then $unionWith people",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"ssn": SECRET}])]}}, {"$unionWith": "people"}], "cursor": {}},
            "$documents literal",
        ),
        (
            "aggregate plain: $unionWith plain over a $documents literal ssn, then $unionWith people",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"ssn": SECRET}])]}}]}}, {"$unionWith": "people"}], "cursor": {}},
            "$documents literal",
        ),
        (
            "aggregate plain: $lookup $documents literal ssn under j, then $unionWith plain whose pipeline joins people as j",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"ssn": SECRET}])], "as": "j"}}, {"$unionWith": {"coll": "plain", "pipeline": [{"$lookup": {"from": "people", "localField": "x", "foreignField": "y", "as": "j"}}]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $documents literal ssn, then a $facet unions people",
            doc! {"aggregate": "plain", "pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$facet": {"a": [{"$unionWith": "people"}]}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate plain: $documents literal ssn, then $unionWith plain whose pipeline unions people",
            doc! {"aggregate": "plain", "pipeline": [docs(vec![doc! {"ssn": SECRET}]), {"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": "people"}]}}], "cursor": {}},
            "$documents literal",
        ),
    ]
}

/// Operator arguments: projections (`$slice`, `$meta`, `$elemMatch`),
/// operators under plain paths, `arrayFilters`.
fn argument_hostile() -> Vec<(&'static str, Document, &'static str)> {
    let eq_ssn = doc! {"$eq": ["$ssn", SECRET]};
    let elem_expr = doc! {"$elemMatch": {"$expr": eq_ssn.clone()}};
    vec![
        (
            "find: projection $slice expression over ssn",
            doc! {"find": "people", "filter": {}, "projection": {"m": {"$slice": ["$ssn", 1]}}},
            "ssn",
        ),
        (
            "find: projection $slice of a $filter comparing ssn",
            doc! {"find": "people", "filter": {}, "projection": {"m": {"$slice": [{"$filter": {"input": ["$name"], "cond": eq_ssn.clone()}}, 1]}}},
            "ssn",
        ),
        (
            "find: projection $slice on ssn",
            doc! {"find": "people", "filter": {}, "projection": {"ssn": {"$slice": 1}}},
            "ssn",
        ),
        (
            "find: projection $slice pair on med.record",
            doc! {"find": "people", "filter": {}, "projection": {"med.record": {"$slice": [1, 2]}}},
            "med.record",
        ),
        (
            "find: projection $meta onto ssn",
            doc! {"find": "people", "filter": {}, "projection": {"ssn": {"$meta": "textScore"}}},
            "ssn",
        ),
        (
            "find: projection $meta with an expression",
            doc! {"find": "people", "filter": {}, "projection": {"m": {"$meta": {"$concat": ["$ssn", SECRET]}}}},
            "ssn",
        ),
        (
            "find: projection $elemMatch holding $expr on a plain array",
            doc! {"find": "people", "filter": {}, "projection": {"tags": elem_expr.clone()}},
            "$expr",
        ),
        (
            "find: projection $elemMatch holding $where",
            doc! {"find": "people", "filter": {}, "projection": {"tags": {"$elemMatch": {"$where": format!("this.ssn == '{SECRET}'")}}}},
            "$where",
        ),
        (
            "find: projection $elemMatch hiding $where under $not",
            doc! {"find": "people", "filter": {}, "projection": {"tags": {"$elemMatch": {"a": {"$not": {"$where": "true"}}}}}},
            "$where",
        ),
        (
            "find: projection $elemMatch with an unknown operator",
            doc! {"find": "people", "filter": {}, "projection": {"tags": {"$elemMatch": {"$fancy": SECRET}}}},
            "$fancy",
        ),
        (
            "aggregate people: $project $slice over ssn",
            doc! {"aggregate": "people", "pipeline": [{"$project": {"m": {"$slice": ["$ssn", 2]}}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $project $slice onto ssn",
            doc! {"aggregate": "people", "pipeline": [{"$project": {"ssn": {"$slice": 1}}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $project $meta onto notes",
            doc! {"aggregate": "people", "pipeline": [{"$project": {"notes": {"$meta": "searchScore"}}}], "cursor": {}},
            "notes",
        ),
        (
            "aggregate people: $project $elemMatch holding $expr",
            doc! {"aggregate": "people", "pipeline": [{"$project": {"tags": elem_expr.clone()}}], "cursor": {}},
            "$expr",
        ),
        (
            "aggregate plain: $project $slice over joined ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$project": {"m": {"$slice": ["$p.ssn", 1]}}}], "cursor": {}},
            "p.ssn",
        ),
        (
            "findAndModify: fields $slice over ssn",
            doc! {"findAndModify": "people", "query": {}, "fields": {"m": {"$slice": ["$ssn", 1]}}, "remove": true},
            "ssn",
        ),
        (
            "findAndModify: fields $elemMatch holding $expr",
            doc! {"findAndModify": "people", "query": {}, "fields": {"tags": elem_expr.clone()}, "remove": true},
            "$expr",
        ),
        (
            "findAndModify: fields $meta onto ssn",
            doc! {"findAndModify": "people", "query": {}, "fields": {"ssn": {"$meta": "textScore"}}, "remove": true},
            "ssn",
        ),
        (
            "find: $elemMatch holding $expr under a plain path",
            doc! {"find": "people", "filter": {"tags": elem_expr.clone()}},
            "$expr",
        ),
        (
            "find: $elemMatch holding $where under a plain path",
            doc! {"find": "people", "filter": {"tags": {"$elemMatch": {"$where": "true"}}}},
            "$where",
        ),
        (
            "find: $not holding $where under a plain path",
            doc! {"find": "people", "filter": {"name": {"$not": {"$where": "true"}}}},
            "$where",
        ),
        (
            "find: $all of $elemMatch holding $expr",
            doc! {"find": "people", "filter": {"tags": {"$all": [elem_expr.clone()]}}},
            "$expr",
        ),
        (
            "find: $elemMatch hiding $function",
            doc! {"find": "people", "filter": {"tags": {"$elemMatch": {"a": {"$function": {"body": "f", "args": ["$ssn"], "lang": "js"}}}}}},
            "$function",
        ),
        (
            "find: unknown operator on a plain path",
            doc! {"find": "people", "filter": {"name": {"$fancy": SECRET}}},
            "$fancy",
        ),
        (
            "find: $where as a field operator",
            doc! {"find": "people", "filter": {"name": {"$where": "true"}}},
            "$where",
        ),
        (
            "find: $expr as a field operator",
            doc! {"find": "people", "filter": {"name": {"$expr": eq_ssn.clone()}}},
            "$expr",
        ),
        (
            "find: $nor hides $elemMatch holding $expr",
            doc! {"find": "people", "filter": {"$nor": [{"tags": elem_expr.clone()}]}},
            "$expr",
        ),
        (
            "find: $jsonSchema query operator",
            doc! {"find": "people", "filter": {"$jsonSchema": {"properties": {"ssn": {"enum": [SECRET]}}}}},
            "$jsonSchema",
        ),
        (
            "find: $text",
            doc! {"find": "people", "filter": {"$text": {"$search": SECRET}}},
            "$text",
        ),
        (
            "count: $elemMatch holding $where",
            doc! {"count": "people", "query": {"tags": {"$elemMatch": {"$where": "true"}}}},
            "$where",
        ),
        (
            "distinct: $elemMatch holding $expr",
            doc! {"distinct": "people", "key": "name", "query": {"tags": elem_expr.clone()}},
            "$expr",
        ),
        (
            "delete: $elemMatch holding $expr",
            doc! {"delete": "people", "deletes": [{"q": {"tags": elem_expr.clone()}, "limit": 0}]},
            "$expr",
        ),
        (
            "update: q $elemMatch holding $expr",
            doc! {"update": "people", "updates": [{"q": {"tags": elem_expr.clone()}, "u": {"$set": {"a": 1}}}]},
            "$expr",
        ),
        (
            "findAndModify: query $elemMatch holding $where",
            doc! {"findAndModify": "people", "query": {"tags": {"$elemMatch": {"$where": "true"}}}, "remove": true},
            "$where",
        ),
        (
            "aggregate people: $match $elemMatch holding $expr",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"tags": elem_expr.clone()}}], "cursor": {}},
            "$expr",
        ),
        (
            "aggregate plain: $lookup sub-pipeline $elemMatch holding $expr",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![doc! {"$match": {"tags": elem_expr.clone()}}])], "cursor": {}},
            "$expr",
        ),
        (
            "update: $unset an identifier below ssn, arrayFilters carry a secret",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$unset": {"ssn.$[t]": ""}}, "arrayFilters": [{"t": SECRET}]}]},
            "ssn.$[t]",
        ),
        (
            "update: $pull an identifier below ssn",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$pull": {"ssn.$[t]": SECRET}}, "arrayFilters": [{"t": 1}]}]},
            "ssn.$[t]",
        ),
        (
            "update: $set an identifier below med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"med.$[t]": SECRET}}, "arrayFilters": [{"t.x": SECRET}]}]},
            "med.$[t]",
        ),
        (
            "update: arrayFilters $expr",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"t": {"$expr": eq_ssn.clone()}}]}]},
            "$expr",
        ),
        (
            "update: arrayFilters top-level $where",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"$where": "true"}]}]},
            "$where",
        ),
        (
            "update: arrayFilters $elemMatch holding $expr",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"t": elem_expr.clone()}]}]},
            "$expr",
        ),
        (
            "update: arrayFilters $jsonSchema",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"$jsonSchema": {"enum": [SECRET]}}]}]},
            "$jsonSchema",
        ),
        (
            "update: arrayFilters with an unknown operator",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"t": {"$fancy": SECRET}}]}]},
            "$fancy",
        ),
        (
            "update: arrayFilters not an array",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": {"t": SECRET}}]},
            "arrayFilters",
        ),
        (
            "findAndModify: arrayFilters on an identifier below med",
            doc! {"findAndModify": "people", "query": {}, "update": {"$set": {"med.$[t]": SECRET}}, "arrayFilters": [{"t": SECRET}]},
            "med.$[t]",
        ),
        (
            "findAndModify: arrayFilters $expr",
            doc! {"findAndModify": "people", "query": {}, "update": {"$set": {"tags.$[t]": 1}}, "arrayFilters": [{"t": {"$expr": eq_ssn.clone()}}]},
            "$expr",
        ),
        (
            "findAndModify: $unset an identifier below notes",
            doc! {"findAndModify": "people", "query": {}, "update": {"$unset": {"notes.$[n]": ""}}, "arrayFilters": [{"n": SECRET}]},
            "notes.$[n]",
        ),
    ]
}

/// What the server stores: `$jsonSchema` in validators and partial
/// filters, operators in them.
fn stored_hostile() -> Vec<(&'static str, Document, &'static str)> {
    let enum_ssn = doc! {"properties": {"ssn": {"enum": [SECRET]}}};
    let random = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
    vec![
        (
            "create: validator $jsonSchema enum on ssn",
            doc! {"create": "people", "validator": {"$jsonSchema": enum_ssn.clone()}},
            "enum",
        ),
        (
            "collMod: validator $jsonSchema pattern on ssn",
            doc! {"collMod": "people", "validator": {"$jsonSchema": {"properties": {"ssn": {"pattern": "^457-55"}}}}},
            "pattern",
        ),
        (
            "create: validator $jsonSchema enum on med, which holds record",
            doc! {"create": "people", "validator": {"$jsonSchema": {"properties": {"med": {"bsonType": "object", "enum": [{"record": SECRET}]}}}}},
            "med",
        ),
        (
            "create: validator $jsonSchema enum on med.record",
            doc! {"create": "people", "validator": {"$jsonSchema": {"properties": {"med": {"bsonType": "object", "properties": {"record": {"enum": [SECRET]}}}}}}},
            "med.record",
        ),
        (
            "create: validator $jsonSchema minimum on ssn",
            doc! {"create": "people", "validator": {"$jsonSchema": {"properties": {"ssn": {"minimum": 457}}}}},
            "minimum",
        ),
        (
            "create: validator $jsonSchema maxLength on notes",
            doc! {"create": "people", "validator": {"$jsonSchema": {"properties": {"notes": {"maxLength": 11}}}}},
            "maxLength",
        ),
        (
            "create: validator $jsonSchema enum on ssn inside anyOf",
            doc! {"create": "people", "validator": {"$jsonSchema": {"anyOf": [enum_ssn.clone(), {"required": ["name"]}]}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema enum on ssn under not",
            doc! {"create": "people", "validator": {"$jsonSchema": {"not": enum_ssn.clone()}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema enum in patternProperties",
            doc! {"create": "people", "validator": {"$jsonSchema": {"patternProperties": {"^ss": {"enum": [SECRET]}}}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema enum in additionalProperties",
            doc! {"create": "people", "validator": {"$jsonSchema": {"additionalProperties": {"enum": [SECRET]}}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema enum of whole documents",
            doc! {"create": "people", "validator": {"$jsonSchema": {"enum": [{"ssn": SECRET}]}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema items enum on ssn",
            doc! {"create": "people", "validator": {"$jsonSchema": {"properties": {"ssn": {"items": {"enum": [SECRET]}}}}}},
            "enum",
        ),
        (
            "create: validator $jsonSchema dependencies enum on ssn",
            doc! {"create": "people", "validator": {"$jsonSchema": {"dependencies": {"name": enum_ssn.clone()}}}},
            "$jsonSchema",
        ),
        (
            "create: validator $and hides a $jsonSchema enum on ssn",
            doc! {"create": "people", "validator": {"$and": [{"name": {"$exists": true}}, {"$jsonSchema": enum_ssn.clone()}]}},
            "enum",
        ),
        (
            "create: validator $jsonSchema that encrypts ssn and lists its values",
            doc! {"create": "fresh", "validator": {"$jsonSchema": {
                "bsonType": "object",
                "properties": {"ssn": {"encrypt": {"keyId": key(), "algorithm": random}}},
                "allOf": [enum_ssn.clone()],
            }}},
            "$jsonSchema",
        ),
        (
            "create: validator $jsonSchema encrypt beside another keyword",
            doc! {"create": "fresh", "validator": {"$jsonSchema": {"properties": {"ssn": {"encrypt": {"keyId": key(), "algorithm": random}, "bsonType": "string"}}}}},
            "$jsonSchema",
        ),
        (
            "create: validator $jsonSchema encrypt inside items",
            doc! {"create": "fresh", "validator": {"$jsonSchema": {"properties": {"tags": {"items": {"encrypt": {"keyId": key(), "algorithm": random}}}}}}},
            "$jsonSchema",
        ),
        (
            "create: validator $jsonSchema not a document",
            doc! {"create": "people", "validator": {"$jsonSchema": SECRET}},
            "$jsonSchema",
        ),
        (
            "collMod: validator $elemMatch holding $where",
            doc! {"collMod": "people", "validator": {"tags": {"$elemMatch": {"$where": "true"}}}},
            "$where",
        ),
        (
            "collMod: validator unknown operator on a plain path",
            doc! {"collMod": "people", "validator": {"name": {"$fancy": SECRET}}},
            "$fancy",
        ),
        (
            "collMod: validator $or not an array",
            doc! {"collMod": "people", "validator": {"$or": {"ssn": SECRET}}},
            "$or",
        ),
        (
            "createIndexes: partial filter $jsonSchema enum on ssn",
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "i", "partialFilterExpression": {"$jsonSchema": enum_ssn.clone()}}]},
            "enum",
        ),
        (
            "createIndexes: partial filter $elemMatch holding $expr",
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "i", "partialFilterExpression": {"tags": {"$elemMatch": {"$expr": {"$eq": ["$ssn", SECRET]}}}}}]},
            "$expr",
        ),
        (
            "createIndexes: partial filter not a document",
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "i", "partialFilterExpression": SECRET}]},
            "partialFilterExpression",
        ),
        (
            "createIndexes: partial filter on med.record",
            doc! {"createIndexes": "people", "indexes": [{"key": {"a": 1}, "name": "i", "partialFilterExpression": {"med.record": SECRET}}]},
            "med.record",
        ),
    ]
}

/// Paths the documents no longer carry (`$changeStream`, `$count`),
/// values where the schema has a document, numeric and `$` segments,
/// `$db`.
fn shape_hostile() -> Vec<(&'static str, Document, &'static str)> {
    let change = doc! {"$changeStream": {}};
    vec![
        (
            "aggregate people: top-level ssn after $changeStream",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$match": {"ssn": SECRET}}], "cursor": {}},
            "$changeStream",
        ),
        (
            "aggregate people: top-level med.record after $changeStream",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$match": {"med.record": SECRET}}], "cursor": {}},
            "med.record",
        ),
        (
            "aggregate people: documentKey.ssn after $changeStream",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$match": {"documentKey.ssn": SECRET}}], "cursor": {}},
            "documentKey.ssn",
        ),
        (
            "aggregate people: fullDocumentBeforeChange.notes",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$match": {"fullDocumentBeforeChange.notes": SECRET}}], "cursor": {}},
            "fullDocumentBeforeChange.notes",
        ),
        (
            "aggregate people: updateDescription.updatedFields.ssn",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$match": {"updateDescription.updatedFields.ssn": SECRET}}], "cursor": {}},
            "updateDescription.updatedFields.ssn",
        ),
        (
            "aggregate people: $project compares top-level ssn after $changeStream",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$project": {"m": {"$eq": ["$ssn", SECRET]}}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $sort on top-level ssn after $changeStream",
            doc! {"aggregate": "people", "pipeline": [change.clone(), {"$sort": {"ssn": 1}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $match ssn after $count",
            doc! {"aggregate": "people", "pipeline": [{"$count": "n"}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            "$count",
        ),
        (
            "aggregate people: $set ssn after $count",
            doc! {"aggregate": "people", "pipeline": [{"$count": "n"}, {"$set": {"ssn": SECRET}}], "cursor": {}},
            "ssn",
        ),
        (
            "aggregate people: $match ssn after $count in a $facet",
            doc! {"aggregate": "people", "pipeline": [{"$facet": {"a": [{"$count": "n"}, {"$match": {"ssn": SECRET}}]}}], "cursor": {}},
            "$count",
        ),
        (
            "aggregate people: $project ssn after $count",
            doc! {"aggregate": "people", "pipeline": [{"$count": "n"}, {"$project": {"m": {"$eq": ["$notes", SECRET]}}}], "cursor": {}},
            "notes",
        ),
        (
            "aggregate plain: joined ssn after $count",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$count": "n"}, {"$match": {"p.ssn": SECRET}}], "cursor": {}},
            "p.ssn",
        ),
        (
            "insert: scalar where med holds encrypted fields",
            doc! {"insert": "people", "documents": [{"med": SECRET}]},
            "med",
        ),
        (
            "insert: boolean where med holds encrypted fields",
            doc! {"insert": "people", "documents": [{"med": true, "name": SECRET}]},
            "med",
        ),
        (
            "insert: numeric key inside med",
            doc! {"insert": "people", "documents": [{"med": {"0": SECRET}}]},
            "med.0",
        ),
        (
            "insert: $-prefixed key inside med",
            doc! {"insert": "people", "documents": [{"med": {"$x": SECRET}}]},
            "med.$x",
        ),
        (
            "update: $set a scalar on med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"med": SECRET}}}]},
            "med",
        ),
        (
            "update: $set a number on med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"med": 5}}}]},
            "med",
        ),
        (
            "update: replacement with a scalar med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"med": SECRET, "owner": "fuzz"}}]},
            "med",
        ),
        (
            "update: $set a numeric segment below med",
            doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"med.0.record": SECRET}}}]},
            "med.0.record",
        ),
        (
            "update: q numeric segment below med",
            doc! {"update": "people", "updates": [{"q": {"med.1.record": SECRET}, "u": {"$set": {"a": 1}}}]},
            "med.1.record",
        ),
        (
            "findAndModify: $set a numeric segment below med",
            doc! {"findAndModify": "people", "query": {}, "update": {"$set": {"med.0.record": SECRET}}},
            "med.0.record",
        ),
        (
            "findAndModify: replacement with an array med",
            doc! {"findAndModify": "people", "query": {}, "update": {"med": [SECRET]}},
            "med",
        ),
        (
            "find: numeric segment below med",
            doc! {"find": "people", "filter": {"med.0.record": SECRET}},
            "med.0.record",
        ),
        (
            "find: $-prefixed segment below med",
            doc! {"find": "people", "filter": {"med.$id": SECRET}},
            "med.$id",
        ),
        (
            "count: numeric segment below med",
            doc! {"count": "people", "query": {"med.0": SECRET}},
            "med.0",
        ),
        (
            "aggregate people: $match numeric segment below med",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"med.1.record": SECRET}}], "cursor": {}},
            "med.1.record",
        ),
        (
            "aggregate plain: numeric index into joined documents",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$match": {"p.0.ssn": SECRET}}], "cursor": {}},
            "p.0.ssn",
        ),
        (
            "aggregate plain: $project numeric index into joined ssn",
            doc! {"aggregate": "plain", "pipeline": [lookup_people(vec![]), {"$project": {"x": {"$eq": ["$p.0.ssn", SECRET]}}}], "cursor": {}},
            "p.0.ssn",
        ),
        (
            "find: $db names another database",
            doc! {"find": "people", "filter": {"ssn": SECRET}, "$db": "other"},
            "$db",
        ),
        (
            "insert: $db names another database",
            doc! {"insert": "people", "documents": [{"ssn": SECRET}], "$db": "other"},
            "$db",
        ),
        (
            "aggregate: $db names another database",
            doc! {"aggregate": "people2", "pipeline": [{"$match": {"ssn": SECRET}}], "cursor": {}, "$db": "other"},
            "$db",
        ),
        (
            "delete: $db names another database",
            doc! {"delete": "events", "deletes": [{"q": {"ssn": SECRET}, "limit": 0}], "$db": "other"},
            "$db",
        ),
        (
            "explain: $db names another database",
            doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}, "$db": "other"},
            "$db",
        ),
        (
            "explain: inner $db names another database",
            doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}, "$db": "other"}},
            "$db",
        ),
        (
            "find: $db not a string",
            doc! {"find": "people", "filter": {"ssn": SECRET}, "$db": 1},
            "$db",
        ),
    ]
}

pub fn legitimate() -> Vec<(&'static str, Document, bool)> {
    let mut cases = first_legitimate();
    cases.extend(more_legitimate());
    cases
}

/// Sub-pipelines, operator arguments, `arrayFilters`, validators, change
/// streams and `$count` that stay allowed.
fn more_legitimate() -> Vec<(&'static str, Document, bool)> {
    let docs = |d: Vec<Document>| doc! {"$documents": d};
    vec![
        (
            "aggregate plain: $lookup $documents that unions people and matches ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}, {"$match": {"ssn": SECRET}}], "as": "x"}}], "cursor": {}},
            true,
        ),
        (
            "aggregate plain: $unionWith $documents that unions people, then matches ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"pipeline": [docs(vec![doc! {"a": 1}]), {"$unionWith": "people"}]}}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            true,
        ),
        (
            "aggregate plain: $lookup $documents with plain literals",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"pipeline": [docs(vec![doc! {"a": 1}])], "as": "x"}}], "cursor": {}},
            false,
        ),
        (
            "aggregate people: $unionWith $documents with plain literals",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": SECRET}}, {"$unionWith": {"pipeline": [docs(vec![doc! {"name": "n"}])]}}], "cursor": {}},
            true,
        ),
        (
            "aggregate people: $lookup without from, let reads a plain field",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": SECRET}}, {"$lookup": {"let": {"n": "$name"}, "pipeline": [docs(vec![doc! {"a": 1}])], "as": "x"}}], "cursor": {}},
            true,
        ),
        (
            "find projection $slice, $meta and $elemMatch on plain fields",
            doc! {"find": "people", "filter": {"ssn": SECRET}, "projection": {"tags": {"$slice": [1, 2]}, "score": {"$meta": "textScore"}, "items": {"$elemMatch": {"a": 1, "b": {"$gt": 2}}}}},
            true,
        ),
        (
            "find $elemMatch and $all on plain arrays",
            doc! {"find": "people", "filter": {"ssn": SECRET, "items": {"$elemMatch": {"a": 1}}, "tags": {"$all": ["x"], "$size": 1}}},
            true,
        ),
        (
            "find by an array index of a plain field",
            doc! {"find": "people", "filter": {"ssn": SECRET, "tags.0": "x"}},
            true,
        ),
        (
            "update with arrayFilters operators on a plain array",
            doc! {"update": "people", "updates": [{"q": {"ssn": SECRET}, "u": {"$set": {"items.$[i].done": true}}, "arrayFilters": [{"i.a": {"$gte": 1}}]}]},
            true,
        ),
        (
            "findAndModify with arrayFilters",
            doc! {"findAndModify": "people", "query": {"ssn": SECRET}, "update": {"$inc": {"counts.$[c]": 1}}, "arrayFilters": [{"c": {"$lt": 5}}]},
            true,
        ),
        (
            "insert a null med (nothing below it to encrypt)",
            doc! {"insert": "people", "documents": [{"med": Bson::Null, "name": "n"}]},
            false,
        ),
        (
            "update $set a whole med document",
            doc! {"update": "people", "updates": [{"q": {"ssn": SECRET}, "u": {"$set": {"med": {"record": SECRET2}}}}]},
            true,
        ),
        (
            "create with a $jsonSchema validator holding values for plain fields",
            doc! {"create": "people", "validator": {"$jsonSchema": {"bsonType": "object", "properties": {"status": {"enum": ["active", "inactive"]}, "age": {"bsonType": "int", "minimum": 0}}}}},
            false,
        ),
        (
            "createIndexes with a partial filter on a plain field",
            doc! {"createIndexes": "people", "indexes": [{"key": {"name": 1}, "name": "n", "partialFilterExpression": {"name": {"$exists": true}}}]},
            false,
        ),
        (
            "change stream on people, matching fullDocument.name",
            doc! {"aggregate": "people", "pipeline": [{"$changeStream": {}}, {"$match": {"fullDocument.name": "n", "documentKey._id": 1}}], "cursor": {}},
            false,
        ),
        (
            "aggregate people: $count then a $match on the count",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": SECRET}}, {"$count": "n"}, {"$match": {"n": {"$gt": 1}}}], "cursor": {}},
            true,
        ),
        (
            "find with $db naming its own database",
            doc! {"find": "people", "filter": {"ssn": SECRET}, "$db": "app"},
            true,
        ),
        (
            "aggregate plain: $merge with a whenMatched pipeline",
            doc! {"aggregate": "plain", "pipeline": [{"$merge": {"into": "plain2", "whenMatched": [{"$set": {"a": 1}}]}}], "cursor": {}},
            false,
        ),
        (
            "aggregate plain: $unionWith plain whose pipeline unions people, then matches ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": "people"}]}}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            true,
        ),
        (
            "aggregate plain: $unionWith a sub-pipeline of plain collections, then a plain $match",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": {"coll": "plain", "pipeline": [{"$unionWith": "plain2"}, {"$match": {"a": 1}}]}}, {"$match": {"a": 1}}, {"$out": "plain2"}], "cursor": {}},
            false,
        ),
        (
            "aggregate plain: $facet over plain documents, then a plain $match and $out",
            doc! {"aggregate": "plain", "pipeline": [{"$facet": {"a": [{"$match": {"a": 1}}], "b": [{"$count": "n"}]}}, {"$unwind": "$a"}, {"$match": {"a.a": 1}}, {"$out": "plain2"}], "cursor": {}},
            false,
        ),
        (
            "aggregate people: a $facet that only counts, then a plain $match",
            doc! {"aggregate": "people", "pipeline": [{"$facet": {"n": [{"$count": "c"}]}}, {"$match": {"n.c": {"$gt": 0}}}], "cursor": {}},
            false,
        ),
    ]
}

fn first_legitimate() -> Vec<(&'static str, Document, bool)> {
    vec![
        (
            "find by ssn",
            doc! {"find": "people", "filter": {"ssn": SECRET}},
            true,
        ),
        (
            "find by ssn $in",
            doc! {"find": "people", "filter": {"ssn": {"$in": [SECRET, SECRET2]}}},
            true,
        ),
        (
            "find with every harmless field",
            doc! {
                "find": "people", "filter": {"ssn": SECRET, "name": "n"}, "projection": {"ssn": 1, "name": 1, "m": {"$concat": ["$name", "!"]}},
                "sort": {"name": 1}, "hint": {"ssn": 1}, "skip": 1, "limit": 5, "batchSize": 2, "let": {"v": 1},
                "comment": "c", "maxTimeMS": 100, "lsid": {"id": 1}, "$db": "app", "readConcern": {"level": "majority"},
                "collation": {"locale": "en"}, "min": {"name": "a"}, "max": {"name": "z"}, "allowDiskUse": true,
            },
            true,
        ),
        (
            "find projection exclusion",
            doc! {"find": "people", "filter": {}, "projection": {"ssn": 0, "med": 0}},
            false,
        ),
        (
            "find $expr on a plain field",
            doc! {"find": "people", "filter": {"$expr": {"$eq": ["$name", "bob"]}}},
            false,
        ),
        (
            "find $exists on ssn",
            doc! {"find": "people", "filter": {"ssn": {"$exists": true}}},
            false,
        ),
        (
            "find on a plain collection with an unknown field",
            doc! {"find": "events", "filter": {"x": 1}, "futureOption": true},
            false,
        ),
        (
            "insert",
            doc! {"insert": "people", "documents": [{"ssn": SECRET, "owner": "fuzz", "notes": SECRET2, "med": {"record": SECRET}, "name": "n"}], "ordered": true},
            true,
        ),
        (
            "update $set ssn by ssn",
            doc! {"update": "people", "updates": [{"q": {"ssn": SECRET2}, "u": {"$set": {"ssn": SECRET, "name": "x"}}, "upsert": true, "multi": false}], "ordered": true},
            true,
        ),
        (
            "update replacement",
            doc! {"update": "people", "updates": [{"q": {"name": "n"}, "u": {"ssn": SECRET, "owner": "fuzz", "notes": SECRET2}}]},
            true,
        ),
        (
            "update $rename between plain fields",
            doc! {"update": "people", "updates": [{"q": {"ssn": SECRET}, "u": {"$rename": {"a": "b"}}}]},
            true,
        ),
        (
            "update arrayFilters on a plain array",
            doc! {"update": "people", "updates": [{"q": {"ssn": SECRET}, "u": {"$set": {"tags.$[t]": "x"}}, "arrayFilters": [{"t": "y"}]}]},
            true,
        ),
        (
            "delete by ssn",
            doc! {"delete": "people", "deletes": [{"q": {"ssn": SECRET}, "limit": 1}]},
            true,
        ),
        (
            "findAndModify",
            doc! {"findAndModify": "people", "query": {"ssn": SECRET}, "update": {"$set": {"ssn": SECRET2}}, "fields": {"ssn": 1}, "new": true, "sort": {"name": 1}},
            true,
        ),
        (
            "findAndModify remove",
            doc! {"findAndModify": "people", "query": {"ssn": SECRET}, "remove": true},
            true,
        ),
        (
            "aggregate people",
            doc! {"aggregate": "people", "pipeline": [{"$match": {"ssn": SECRET}}, {"$project": {"name": 1, "ssn": 1}}, {"$sort": {"name": 1}}, {"$limit": 5}, {"$addFields": {"n": {"$toUpper": "$name"}}}, {"$unwind": "$tags"}], "cursor": {}},
            true,
        ),
        (
            "aggregate people $facet",
            doc! {"aggregate": "people", "pipeline": [{"$facet": {"a": [{"$match": {"ssn": SECRET}}], "b": [{"$count": "n"}]}}], "cursor": {}},
            true,
        ),
        (
            "aggregate people joins a plain collection",
            doc! {"aggregate": "people", "pipeline": [{"$lookup": {"from": "plain", "pipeline": [{"$match": {"a": 1}}], "as": "y"}}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            true,
        ),
        (
            "aggregate plain joins people on plain fields",
            doc! {"aggregate": "plain", "pipeline": [{"$lookup": {"from": "people", "localField": "a", "foreignField": "name", "as": "p"}}, {"$match": {"a": 1}}, {"$limit": 1}], "cursor": {}},
            false,
        ),
        (
            "aggregate plain unions people, then matches ssn",
            doc! {"aggregate": "plain", "pipeline": [{"$unionWith": "people"}, {"$match": {"ssn": SECRET}}], "cursor": {}},
            true,
        ),
        (
            "aggregate plain with stages of its own",
            doc! {"aggregate": "plain", "pipeline": [{"$group": {"_id": "$a"}}, {"$merge": {"into": "plain2"}}], "cursor": {}},
            false,
        ),
        (
            "change stream on people",
            doc! {"aggregate": "people", "pipeline": [{"$changeStream": {}}, {"$match": {"operationType": "insert"}}], "cursor": {}},
            false,
        ),
        (
            "count by ssn",
            doc! {"count": "people", "query": {"ssn": SECRET}},
            true,
        ),
        (
            "distinct ssn",
            doc! {"distinct": "people", "key": "ssn", "query": {"ssn": SECRET}},
            true,
        ),
        (
            "explain find",
            doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}},
            true,
        ),
        (
            "create with a $jsonSchema validator",
            doc! {"create": "people", "validator": {"$jsonSchema": people_schema()}},
            false,
        ),
        (
            "createIndexes on ssn",
            doc! {"createIndexes": "people", "indexes": [{"key": {"ssn": 1}, "name": "ssn_1", "unique": true}]},
            false,
        ),
        (
            "collMod with a plain validator",
            doc! {"collMod": "plain", "validator": {"$expr": {"$gt": ["$a", 1]}}},
            false,
        ),
        (
            "view on a plain collection",
            doc! {"create": "v", "viewOn": "plain", "pipeline": [{"$match": {"a": 1}}]},
            false,
        ),
        (
            "getMore",
            doc! {"getMore": 1_i64, "collection": "people"},
            false,
        ),
        (
            "killCursors",
            doc! {"killCursors": "people", "cursors": [1_i64]},
            false,
        ),
    ]
}
