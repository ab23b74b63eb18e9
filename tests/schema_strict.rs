//! Strict schemas, without a server: every keyword MongoDB's `$jsonSchema`
//! does not have is refused with its location, wherever it sits; a schema
//! still wrapped in `{"$jsonSchema": …}`, malformed keyword values,
//! `encrypt` where the model does not read it, schema map keys that are not
//! `db.coll` and `keyId` pointers naming encrypted fields are refused; and
//! every legitimate schema (the specification's, and one using every
//! keyword) still parses.

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::KeyId;
use csfle::schema::{
    EncryptionSchema, Error, FieldInfo, KEYWORDS, SchemaSource, parse_schema_map,
    parse_schema_map_entries,
};

const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";

fn key() -> Bson {
    Bson::Array(vec![Bson::Binary(KeyId::from_bytes([7; 16]).to_binary())])
}

fn encrypted() -> Document {
    doc! {"encrypt": {"keyId": key(), "bsonType": "string", "algorithm": RANDOM}}
}

fn refused(schema: &Document, source: SchemaSource) -> String {
    match EncryptionSchema::parse(schema, source) {
        Ok(_) => panic!("accepted: {schema}"),
        Err(e) => e.to_string(),
    }
}

fn local(schema: &Document) -> String {
    refused(schema, SchemaSource::Local)
}

/// JSON Schema keywords of other drafts and MongoDB's documented omissions.
const FOREIGN: [&str; 27] = [
    "if",
    "then",
    "else",
    "dependentSchemas",
    "dependentRequired",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "const",
    "examples",
    "$comment",
    "$defs",
    "$id",
    "$anchor",
    "propertyNames",
    "prefixItems",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "$ref",
    "$schema",
    "default",
    "definitions",
    "format",
    "id",
];

/// Misspellings a person makes.
const TYPOS: [&str; 10] = [
    "encrpyt",
    "Encrypt",
    "encryptmetadata",
    "Properties",
    "propertes",
    "bsontype",
    "BsonType",
    "additionalproperties",
    "patternproperties",
    "properties ",
];

const OMITTED: [&str; 6] = ["$ref", "$schema", "default", "definitions", "format", "id"];

/// `node` placed at each position the parser must reach: the root, a
/// property, every logical keyword, array keywords, additionalProperties,
/// patternProperties, dependencies. With the JSON pointer of `node`.
fn positions(node: &Document) -> Vec<(Document, &'static str)> {
    let n = || Bson::Document(node.clone());
    let mut root = node.clone();
    root.insert("properties", doc! {"ssn": encrypted()});
    vec![
        (root, "/"),
        (
            doc! {"bsonType": "object", "properties": {"a": n()}},
            "/properties/a",
        ),
        (
            doc! {"properties": {"a": {"bsonType": "object", "properties": {"b": n()}}}},
            "/properties/a/properties/b",
        ),
        (doc! {"anyOf": [{}, n()]}, "/anyOf/1"),
        (doc! {"allOf": [n()]}, "/allOf/0"),
        (doc! {"oneOf": [n()]}, "/oneOf/0"),
        (doc! {"not": n()}, "/not"),
        (
            doc! {"properties": {"a": {"items": n()}}},
            "/properties/a/items",
        ),
        (
            doc! {"properties": {"a": {"items": [{}, n()]}}},
            "/properties/a/items/1",
        ),
        (
            doc! {"properties": {"a": {"additionalItems": n()}}},
            "/properties/a/additionalItems",
        ),
        (doc! {"additionalProperties": n()}, "/additionalProperties"),
        (
            doc! {"patternProperties": {"^x_": n()}},
            "/patternProperties/^x_",
        ),
        (doc! {"dependencies": {"a": n()}}, "/dependencies/a"),
        (
            doc! {"anyOf": [{"properties": {"a": {"not": n()}}}]},
            "/anyOf/0/properties/a/not",
        ),
    ]
}

#[test]
fn every_foreign_keyword_and_typo_is_refused_everywhere() {
    let mut n = 0;
    for kw in FOREIGN.iter().chain(TYPOS.iter()) {
        // The value hides an encryption that would otherwise be ignored.
        let node = doc! {*kw: {"ssn": encrypted()}};
        for (schema, at) in positions(&node) {
            let e = local(&schema);
            let want = if OMITTED.contains(kw) {
                format!("$jsonSchema keyword '{kw}' is not currently supported (at {at})")
            } else {
                format!("Unknown $jsonSchema keyword: {kw} (at {at})")
            };
            assert!(e.contains(&want), "{schema}: got '{e}', want '{want}'");
            // Remote schemas (validators) are as strict.
            refused(&schema, SchemaSource::Remote);
            n += 1;
        }
    }
    assert!(n >= 500, "{n} hostile schemas");
}

#[test]
fn wrapped_schemas_are_refused_with_unwrap_it() {
    let inner = doc! {"bsonType": "object", "properties": {"ssn": encrypted()}};
    let wrapped = doc! {"$jsonSchema": inner.clone()};
    assert!(local(&wrapped).contains("unwrap it"));
    let e = parse_schema_map(&doc! {"app.people": wrapped.clone()}).unwrap_err();
    assert_eq!(e.namespace, "app.people");
    assert!(e.to_string().contains("unwrap it"), "{e}");
    // Nested, or beside other keywords.
    for (schema, _) in positions(&doc! {"$jsonSchema": inner.clone()}) {
        assert!(local(&schema).contains("unwrap it"), "{schema}");
    }
    // Unwrapped, the same schema is fine.
    parse_schema_map(&doc! {"app.people": inner}).unwrap();
}

#[test]
fn encrypt_where_the_model_does_not_read_it_is_refused() {
    let enc = || Bson::Document(encrypted());
    let meta = || Bson::Document(doc! {"keyId": key(), "algorithm": RANDOM});
    let table: Vec<(Document, &str)> = vec![
        (
            doc! {"anyOf": [{"properties": {"a": enc()}}]},
            "'anyOf' at '<root>' may not contain encrypted fields",
        ),
        (
            doc! {"properties": {"a": {"bsonType": "object", "oneOf": [{"properties": {"b": enc()}}]}}},
            "'oneOf' at 'a'",
        ),
        (doc! {"allOf": [enc()]}, "'allOf'"),
        (doc! {"not": {"properties": {"a": enc()}}}, "'not'"),
        (
            doc! {"dependencies": {"a": {"properties": {"b": enc()}}}},
            "'dependencies'",
        ),
        (
            doc! {"properties": {"a": {"items": enc()}}},
            "inside arrays",
        ),
        (
            doc! {"properties": {"a": {"items": [{"properties": {"b": enc()}}]}}},
            "inside arrays",
        ),
        (
            doc! {"properties": {"a": {"additionalItems": enc()}}},
            "inside arrays",
        ),
        (doc! {"anyOf": [{"encryptMetadata": meta()}]}, "'anyOf'"),
        (
            doc! {"properties": {"a": {"items": {"encryptMetadata": meta()}}}},
            "inside arrays",
        ),
        // Inside a logical keyword inside an array keyword: the outer one names it.
        (
            doc! {"properties": {"a": {"items": {"anyOf": [enc()]}}}},
            "inside arrays",
        ),
        // A sibling of encrypt, even a known keyword.
        (
            doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": RANDOM}, "bsonType": "string"}}},
            "cannot be used in conjunction with 'bsonType'",
        ),
        // Unknown fields inside encrypt / encryptMetadata.
        (
            doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": RANDOM, "bsontype": "string"}}}},
            "unknown 'encrypt' field 'bsontype'",
        ),
        (
            doc! {"encryptMetadata": {"keyId": key(), "algorithm": RANDOM, "encrypt": {}}},
            "unknown encryptMetadata field 'encrypt'",
        ),
        // encrypt of the whole document, or of _id.
        (
            doc! {"encrypt": {"keyId": key(), "algorithm": RANDOM}},
            "Invalid schema",
        ),
        (
            doc! {"properties": {"_id": enc()}},
            "'_id' cannot be encrypted",
        ),
        // Hidden in a keyword value the model does not read as a schema.
        (
            doc! {"properties": {"a": {"description": {"encrypt": {}}}}},
            "'description' must be a string",
        ),
        (
            doc! {"properties": {"a": {"required": [{"encrypt": {}}]}}},
            "JSON schema keyword 'required' is only allowed with a remote schema",
        ),
    ];
    for (schema, want) in &table {
        let e = local(schema);
        assert!(e.contains(want), "{schema}: got '{e}', want '{want}'");
    }
    // Remote: `required` may not hide one either.
    let e = refused(
        &doc! {"properties": {"a": {"required": [{"encrypt": {}}]}}},
        SchemaSource::Remote,
    );
    assert!(e.contains("'required' must be"), "{e}");
}

#[test]
fn encrypt_as_data_or_as_a_name_is_accepted() {
    // In enum literals (at any depth, under logical keywords too) and as a
    // property name, `encrypt` is data.
    let s = EncryptionSchema::parse(
        &doc! {
            "bsonType": "object",
            "properties": {
                "encrypt": {"enum": [{"encrypt": {"keyId": key()}}, "x"]},
                "encryptMetadata": {"bsonType": "object", "properties": {"encrypt": encrypted()}},
                "kind": {"anyOf": [{"enum": [{"encryptMetadata": 1}]}]},
                "ssn": encrypted(),
            },
            "dependencies": {"encrypt": ["ssn"]},
            "patternProperties": {"^encrypt$": {"bsonType": "string"}},
        },
        SchemaSource::Local,
    )
    .unwrap();
    assert!(matches!(s.field("ssn"), FieldInfo::Encrypted(_)));
    assert!(matches!(
        s.field("encryptMetadata.encrypt"),
        FieldInfo::Encrypted(_)
    ));
    assert_eq!(s.field("kind"), FieldInfo::Plain);
}

#[test]
fn malformed_keyword_values_are_refused() {
    let table: Vec<(Document, &str)> = vec![
        (
            doc! {"properties": 1},
            "'properties' must be a document of schemas",
        ),
        (
            doc! {"properties": {"a": 1}},
            "'a': a schema must be a document",
        ),
        (
            doc! {"patternProperties": []},
            "'patternProperties' must be",
        ),
        (
            doc! {"additionalProperties": "no"},
            "'additionalProperties' must be a boolean or a schema",
        ),
        (
            doc! {"items": 1},
            "'items' must be a schema or an array of schemas",
        ),
        (
            doc! {"items": [1]},
            "'items' must be a schema or an array of schemas",
        ),
        (
            doc! {"additionalItems": []},
            "'additionalItems' must be a boolean or a schema",
        ),
        (
            doc! {"anyOf": []},
            "'anyOf' must be a non-empty array of schemas",
        ),
        (
            doc! {"allOf": {}},
            "'allOf' must be a non-empty array of schemas",
        ),
        (
            doc! {"oneOf": [true]},
            "'oneOf' must be a non-empty array of schemas",
        ),
        (doc! {"not": []}, "'not' must be a schema"),
        (doc! {"dependencies": []}, "'dependencies' must be"),
        (doc! {"dependencies": {"a": 1}}, "'dependencies' must be"),
        (doc! {"dependencies": {"a": []}}, "'dependencies' must be"),
        (doc! {"enum": []}, "'enum' must be a non-empty array"),
        (doc! {"enum": "a"}, "'enum' must be a non-empty array"),
        (
            doc! {"bsonType": "strin"},
            "'bsonType' must be a BSON type name",
        ),
        (doc! {"bsonType": []}, "'bsonType' must be a BSON type name"),
        (
            doc! {"bsonType": ["object", "object"]},
            "'bsonType' must be",
        ),
        (doc! {"bsonType": 3}, "'bsonType' must be"),
        (doc! {"type": "integer"}, "'type' must be a JSON type name"),
        (doc! {"type": "int"}, "'type' must be a JSON type name"),
        (
            doc! {"type": "object", "bsonType": "object"},
            "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
        ),
        (
            doc! {"maxLength": -1},
            "'maxLength' must be a non-negative whole number",
        ),
        (
            doc! {"minItems": 1.5},
            "'minItems' must be a non-negative whole number",
        ),
        (doc! {"maxProperties": "3"}, "'maxProperties' must be"),
        (doc! {"minimum": "0"}, "'minimum' must be a number"),
        (doc! {"maximum": true}, "'maximum' must be a number"),
        (
            doc! {"multipleOf": 0},
            "'multipleOf' must be a positive number",
        ),
        (
            doc! {"exclusiveMaximum": 1},
            "'exclusiveMaximum' must be a boolean",
        ),
        (
            doc! {"uniqueItems": "yes"},
            "'uniqueItems' must be a boolean",
        ),
        (doc! {"description": 1}, "'description' must be a string"),
        (doc! {"title": {}}, "'title' must be a string"),
        (doc! {"pattern": 1}, "'pattern' must be a string"),
        (
            doc! {"encryptMetadata": 1},
            "encryptMetadata must be a document",
        ),
        (
            doc! {"properties": {"a": {"encrypt": 1}}},
            "'encrypt' must be a document",
        ),
        (
            doc! {"properties": {"a": {"anyOf": [{"maxLength": -1}]}}},
            "(at /properties/a/anyOf/0)",
        ),
    ];
    for (schema, want) in &table {
        let e = local(schema);
        assert!(e.contains(want), "{schema}: got '{e}', want '{want}'");
    }
    let e = refused(&doc! {"required": []}, SchemaSource::Remote);
    assert!(
        e.contains("'required' must be a non-empty array of unique strings"),
        "{e}"
    );
    let e = refused(&doc! {"required": ["a", "a"]}, SchemaSource::Remote);
    assert!(e.contains("'required' must be"), "{e}");
}

#[test]
fn schema_map_keys_must_be_namespaces() {
    for bad in ["enc", "app.", "", ".coll", "."] {
        let map = doc! {"app.ok": {"properties": {"ssn": encrypted()}}, bad: {"properties": {"ssn": encrypted()}}};
        let e = parse_schema_map(&map).unwrap_err();
        assert_eq!(e.namespace, bad);
        assert_eq!(e.source, Error::BadNamespace(bad.to_owned()));
        assert!(e.to_string().contains("must be \"db.collection\""), "{e}");
    }
    // The collection may contain dots.
    let parsed =
        parse_schema_map(&doc! {"app.coll.sub": {"properties": {"ssn": encrypted()}}}).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].0, "app.coll.sub");
    // An entry that is not a document.
    assert!(
        parse_schema_map(&doc! {"app.c": 1})
            .unwrap_err()
            .to_string()
            .contains("must be a document")
    );
}

#[test]
fn every_refusal_of_a_map_is_reported() {
    let map = doc! {
        "app.ok": {"properties": {"ssn": encrypted()}},
        "enc": {},
        "app.typo": {"Properties": {"ssn": encrypted()}},
        "app.wrapped": {"$jsonSchema": {}},
        "app.plain": {"bsonType": "object"},
    };
    let entries = parse_schema_map_entries(&map);
    let verdicts: Vec<(&str, bool)> = entries
        .iter()
        .map(|(ns, r)| (ns.as_str(), r.is_ok()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("app.ok", true),
            ("enc", false),
            ("app.typo", false),
            ("app.wrapped", false),
            ("app.plain", true),
        ]
    );
    // The first refusal stops the map.
    assert_eq!(parse_schema_map(&map).unwrap_err().namespace, "enc");
}

#[test]
fn key_pointers_naming_encrypted_fields_are_refused() {
    let by_pointer = |p: &str| doc! {"encrypt": {"keyId": p, "algorithm": RANDOM}};
    let schema = |p: &str| {
        doc! {
            "bsonType": "object",
            "properties": {
                "ssn": encrypted(),
                "med": {"bsonType": "object", "properties": {"notes": encrypted()}},
                "a/b": {"bsonType": "object", "properties": {"c": encrypted()}},
                "owner": {"bsonType": "string"},
                "doc": by_pointer(p),
            },
            "patternProperties": {"^secret_": encrypted()},
        }
    };
    for p in [
        "/ssn",
        "/med/notes",
        "/ssn/x",
        "/med/notes/deep",
        "/secret_1",
        "/a~1b/c",
        "/doc",
    ] {
        assert_eq!(
            EncryptionSchema::parse(&schema(p), SchemaSource::Local).unwrap_err(),
            Error::KeyPointerToEncrypted(p.to_owned()),
            "{p}"
        );
    }
    // A plain, unlisted or document field may name the key (a document
    // fails when the pointer is resolved, not here).
    for p in ["/owner", "/other", "/med", "/med/plain", "/a~1b/d"] {
        EncryptionSchema::parse(&schema(p), SchemaSource::Local)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
}

#[test]
fn deterministic_refusals_use_mongocryptds_wording() {
    for ty in [
        "double",
        "decimal",
        "bool",
        "object",
        "array",
        "javascriptWithScope",
        "null",
        "undefined",
        "minKey",
        "maxKey",
    ] {
        let e = local(
            &doc! {"properties": {"a": {"encrypt": {"keyId": key(), "bsonType": ty, "algorithm": DET}}}},
        );
        let want = format!("Cannot use deterministic encryption for element of type: {ty}");
        assert!(e.contains(&want), "got '{e}', want '{want}'");
    }
}

/// A schema using every `$jsonSchema` keyword, as MongoDB accepts it.
fn every_keyword() -> Document {
    doc! {
        "bsonType": "object",
        "title": "patients",
        "description": "every keyword",
        "encryptMetadata": {"keyId": key(), "algorithm": RANDOM},
        "minProperties": 1,
        "maxProperties": 50_i64,
        "required": ["name"],
        "properties": {
            "name": {"bsonType": "string", "minLength": 1, "maxLength": 100.0, "pattern": "^[A-Z]"},
            "age": {"bsonType": ["int", "long"], "minimum": 0, "maximum": 150, "exclusiveMinimum": false, "exclusiveMaximum": true, "multipleOf": 1},
            "kind": {"enum": ["a", "b", {"encrypt": 1}]},
            "tags": {"bsonType": "array", "items": {"type": "string"}, "additionalItems": false, "minItems": 0, "maxItems": 10, "uniqueItems": true},
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}], "additionalItems": {"bsonType": "null"}},
            "contact": {"anyOf": [{"type": "string"}, {"type": "null"}], "not": {"enum": [""]}},
            "extra": {"allOf": [{"bsonType": "object"}], "oneOf": [{"required": ["x"]}, {"required": ["y"]}]},
            "ssn": {"encrypt": {"bsonType": "string", "algorithm": DET}},
            "med": {
                "bsonType": "object",
                "additionalProperties": false,
                "properties": {"notes": {"encrypt": {}}},
                "patternProperties": {"^x_": {"bsonType": "decimal"}},
                "dependencies": {"notes": ["x_a"], "x_b": {"required": ["x_c"]}},
            },
        },
        "patternProperties": {"^secret_": {"encrypt": {"keyId": "/name"}}},
        "additionalProperties": {"bsonType": ["string", "number"]},
    }
}

#[test]
fn a_schema_using_every_keyword_parses() {
    let schema = every_keyword();
    let mut used: Vec<String> = Vec::new();
    collect_keys(&Bson::Document(schema.clone()), &mut used);
    for kw in KEYWORDS {
        assert!(
            used.iter().any(|k| k == kw),
            "the schema does not use '{kw}'"
        );
    }
    let s = EncryptionSchema::parse(&schema, SchemaSource::Remote).unwrap();
    assert!(matches!(s.field("ssn"), FieldInfo::Encrypted(_)));
    assert!(matches!(s.field("med.notes"), FieldInfo::Encrypted(_)));
    assert!(matches!(s.field("secret_1"), FieldInfo::Encrypted(_)));
    assert_eq!(s.field("kind"), FieldInfo::Plain);
    // Locally, only `required` is refused.
    assert_eq!(
        EncryptionSchema::parse(&schema, SchemaSource::Local).unwrap_err(),
        Error::RequiredInLocalSchema
    );
}

fn collect_keys(v: &Bson, out: &mut Vec<String>) {
    match v {
        Bson::Document(d) => {
            for (k, v) in d {
                out.push(k.clone());
                collect_keys(v, out);
            }
        }
        Bson::Array(a) => a.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

/// Every schema the specification's legacy tests give a client (schema
/// maps) or a server (json_schema) that the test does not expect refused
/// still parses, through the one schema map reader for maps.
#[test]
#[ignore = "needs spec data: $CSFLE_SPEC_DIR or ../shared/spec-tests"]
fn the_specifications_schemas_still_parse() {
    let spec = spec_dir();
    let mut parsed = 0;
    for entry in std::fs::read_dir(spec.join(CSE).join("tests/legacy")).unwrap() {
        let path = entry.unwrap().path();
        let t = read_doc(&path);
        if let Ok(remote) = t.get_document("json_schema") {
            // badSchema's schemas are client-side; a json_schema is a validator.
            EncryptionSchema::parse(remote, SchemaSource::Remote)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            parsed += 1;
        }
        for test in t.get_array("tests").unwrap() {
            let test = test.as_document().unwrap();
            let expects_error = test
                .get_array("operations")
                .unwrap()
                .iter()
                .filter_map(|op| op.as_document()?.get_document("result").ok())
                .any(|r| r.contains_key("errorContains"));
            let Ok(map) = test
                .get_document("clientOptions")
                .and_then(|c| c.get_document("autoEncryptOpts"))
                .and_then(|a| a.get_document("schemaMap"))
            else {
                continue;
            };
            match parse_schema_map(map) {
                Ok(entries) => parsed += entries.len(),
                Err(e) if expects_error => {
                    // Refused as the test expects (badSchema, localSchema).
                    assert!(
                        e.to_string().contains("Invalid schema")
                            || e.to_string().contains("only allowed with a remote schema")
                            || e.to_string().contains("cannot be used in conjunction"),
                        "{}: {e}",
                        path.display()
                    );
                }
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
    for f in ["limits/limits-schema.json", "external/external-schema.json"] {
        let s = read_doc(&spec.join(CSE).join(f));
        parse_schema_map(&doc! {"db.coll": s}).unwrap_or_else(|e| panic!("{f}: {e}"));
        parsed += 1;
    }
    let corpus = read_doc(&spec.join(CSE).join("corpus/corpus-schema.json"));
    EncryptionSchema::parse(&corpus, SchemaSource::Remote).unwrap();
    parsed += 1;
    println!("{parsed} specification schemas parsed");
    // The legacy validators and client maps (fle2v2's included), limits,
    // external and the corpus, of the pinned snapshot.
    assert_eq!(parsed, 40);
}
