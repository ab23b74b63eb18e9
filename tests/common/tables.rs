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

pub fn legitimate() -> Vec<(&'static str, Document, bool)> {
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
