//! The client-level `bulkWrite`: libmongocrypt's refusals in its words
//! (`_test_bulkWrite` in its `test/test-mongocrypt-ctx-encrypt.c`), the
//! allow-lists of the command, its `nsInfo` entry and its operations, the
//! verdict by namespace (QE analysed, no schema unchanged, FLE1 refused,
//! unknown asked for), and a QE collection's operations analysed as its
//! `insert`, `update` and `delete` statements, with their refusals.
//! libmongocrypt's `bulkWrite/simple` vector is compared with its
//! mongocryptd reply in `qe_vector_tests`; its placeholder is read here.

use crate::analysis::{Analysis, Error, Namespace, NamespaceSchema, analyze};
use crate::qe::encrypted_fields::{EncryptedFields, ParseMode};
use crate::qe::placeholder::{ENCRYPTION_PLACEHOLDER, Fle2Algorithm, Placeholder, PlaceholderType};
use crate::schema::{EncryptionSchema, SchemaSource};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};

const SECRET: &str = "457-55-5462";
/// A value of the range field `age`, marked by its bytes.
const AGE: i32 = 0x5EC2_E7A1;

fn key(b: u8) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![b; 16],
    })
}

/// `app.q`: `ssn` (equality), `notes` (unindexed), `age` (range on ints).
fn q_fields() -> EncryptedFields {
    EncryptedFields::from_document(
        &doc! {"fields": [
            {"path": "ssn", "keyId": key(1), "bsonType": "string", "queries": {"queryType": "equality", "contention": 0}},
            {"path": "notes", "keyId": key(2), "bsonType": "string"},
            {"path": "age", "keyId": key(3), "bsonType": "int", "queries": {"queryType": "range", "contention": 0, "min": 0, "max": 2_000_000_000, "sparsity": 1, "trimFactor": 1}},
        ]},
        ParseMode::Map,
    )
    .unwrap()
}

/// `app.people`: FLE1, `ssn` deterministic.
fn people_schema() -> EncryptionSchema {
    EncryptionSchema::parse(
        &doc! {"bsonType": "object", "properties": {"ssn": {"encrypt": {"keyId": [key(0x11)], "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}}},
        SchemaSource::Local,
    )
    .unwrap()
}

/// `cmd` analysed on `admin`: `app.q` QE, `app.people` FLE1,
/// `app.unknown` not looked up yet, every other namespace plain.
fn run(cmd: &Document) -> Result<Analysis, Error> {
    let q = q_fields();
    let people = people_schema();
    let lookup = |ns: &Namespace| match ns.to_string().as_str() {
        "app.q" => NamespaceSchema::Queryable(&q),
        "app.people" => NamespaceSchema::Known(Some(&people)),
        "app.unknown" => NamespaceSchema::Unknown,
        _ => NamespaceSchema::Known(None),
    };
    analyze(cmd, "admin", &lookup)
}

fn marked(cmd: &Document) -> Document {
    match run(cmd) {
        Ok(Analysis::Marked(m)) => m,
        other => panic!("not marked: {other:?}"),
    }
}

fn bulk(ns: &str, ops: Vec<Document>) -> Document {
    doc! {"bulkWrite": 1, "ops": ops, "nsInfo": [{"ns": ns}], "$db": "admin"}
}

/// The value at `path` (dotted, array indexes as numbers) of `d`.
fn at<'d>(d: &'d Document, path: &str) -> &'d Bson {
    let mut parts = path.split('.');
    let mut v = d
        .get(parts.next().unwrap())
        .unwrap_or_else(|| panic!("{path}"));
    for part in parts {
        v = match v {
            Bson::Document(d) => d.get(part).unwrap_or_else(|| panic!("{path}: no {part}")),
            Bson::Array(a) => &a[part.parse::<usize>().unwrap()],
            other => panic!("{path}: {other}"),
        };
    }
    v
}

/// The placeholder at `path` of `d`: its kind, algorithm and key.
fn placeholder_at(d: &Document, path: &str) -> (PlaceholderType, Fle2Algorithm, u8) {
    let Bson::Binary(b) = at(d, path) else {
        panic!("{path}: not a placeholder in {d}");
    };
    let p = Placeholder::parse(&b.bytes).unwrap();
    assert_eq!(p.index_key_id, p.user_key_id);
    (p.kind, p.algorithm, p.index_key_id[0])
}

/// `d` serialized with every placeholder (which carries its plaintext
/// until it becomes a payload) taken out, and how many there were.
fn without_placeholders(v: &Bson, n: &mut usize) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(
            d.iter()
                .map(|(k, v)| (k.clone(), without_placeholders(v, n)))
                .collect(),
        ),
        Bson::Array(a) => Bson::Array(a.iter().map(|v| without_placeholders(v, n)).collect()),
        Bson::Binary(b)
            if b.subtype == BinarySubtype::Encrypted
                && b.bytes.first() == Some(&ENCRYPTION_PLACEHOLDER) =>
        {
            *n += 1;
            Bson::Null
        }
        other => other.clone(),
    }
}

fn carries_plaintext(d: &Document) -> bool {
    let mut bytes = Vec::new();
    d.to_writer(&mut bytes).unwrap();
    let age = AGE.to_le_bytes();
    let marks: [&[u8]; 2] = [SECRET.as_bytes(), &age];
    marks
        .iter()
        .any(|m| bytes.windows(m.len()).any(|w| w == *m))
}

/// libmongocrypt's `_test_bulkWrite` "initializing" cases, each in its
/// words, checked before the namespace is looked up.
#[test]
fn namespace_refusals_are_libmongocrypts() {
    let refused = |ns_info: Option<Bson>| {
        let mut cmd = doc! {"bulkWrite": 1};
        if let Some(n) = ns_info {
            cmd.insert("nsInfo", n);
        }
        run(&cmd).unwrap_err()
    };
    let e = refused(None);
    assert!(matches!(e, Error::BulkWriteNoNamespace), "{e:?}");
    assert!(e.to_string().contains("failed to find namespace"), "{e}");
    for ns_info in [
        Bson::Document(doc! {"foo": "bar"}),
        Bson::Array(vec![]),
        Bson::Array(vec![Bson::Int32(5)]),
        Bson::Array(vec![Bson::Document(doc! {"db": "app"})]),
    ] {
        let e = refused(Some(ns_info.clone()));
        assert!(matches!(e, Error::BulkWriteNoNamespace), "{ns_info}: {e:?}");
    }
    let e = refused(Some(Bson::Array(vec![Bson::Document(
        doc! {"ns": "invalid"},
    )])));
    assert!(
        e.to_string()
            .contains("expected namespace to contain dot, got: invalid"),
        "{e}"
    );
    let e = refused(Some(Bson::Array(vec![Bson::Document(doc! {"ns": 1})])));
    assert!(matches!(e, Error::BulkWriteNamespaceType(_)), "{e:?}");
    assert!(
        e.to_string().contains("expected namespace to be UTF8"),
        "{e}"
    );
    let e = refused(Some(Bson::Array(vec![
        Bson::Document(doc! {"ns": "app.q"}),
        Bson::Document(doc! {"ns": "app.q2"}),
    ])));
    assert_eq!(
        e.to_string(),
        "expected one namespace in `bulkWrite`, but found more than one. Only one namespace is supported."
    );
    // An empty database or collection is no namespace csfle reads.
    let e = refused(Some(Bson::Array(vec![Bson::Document(doc! {"ns": ".q"})])));
    assert!(matches!(e, Error::InvalidNamespace(_)), "{e:?}");
}

/// Every operation names entry 0 and is an insert, update or delete with
/// its own fields; the command and its `nsInfo` entry carry only known
/// fields. Refused on every namespace, plain ones included.
#[test]
fn operations_and_fields_are_allow_listed() {
    let doc_op = doc! {"insert": 0, "document": {"a": 1}};
    for ns in ["app.q", "app.plain"] {
        let e = run(&bulk(ns, vec![doc! {"insert": 1, "document": {"a": 1}}])).unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteOpNamespace { index: 0, entry, .. } if entry == "1"),
            "{ns}: {e:?}"
        );
        assert!(e.to_string().contains("only one namespace"), "{e}");
        let e = run(&bulk(
            ns,
            vec![doc_op.clone(), doc! {"delete": "0", "filter": {}}],
        ))
        .unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteOpNamespace { index: 1, entry, .. } if entry.contains("string")),
            "{ns}: {e:?}"
        );
        let e = run(&bulk(ns, vec![doc! {"replace": 0, "filter": {}}])).unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteOpKind { index: 0, op } if op == "replace"),
            "{ns}: {e:?}"
        );
        for (op, field) in [
            (
                doc! {"insert": 0, "document": {"a": 1}, "extra": 1},
                "ops.0.extra",
            ),
            (
                doc! {"update": 0, "filter": {}, "updateMods": {"$set": {"a": 1}}, "constants": {}},
                "ops.0.constants",
            ),
            (
                doc! {"delete": 0, "filter": {}, "updateMods": {}},
                "ops.0.updateMods",
            ),
        ] {
            let e = run(&bulk(ns, vec![op])).unwrap_err();
            assert!(
                matches!(&e, Error::BulkWriteField(f) if f == field),
                "{ns}: {e:?}"
            );
        }
        let mut cmd = bulk(ns, vec![doc_op.clone()]);
        cmd.insert("futureOption", SECRET);
        let e = run(&cmd).unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteField(f) if f == "futureOption"),
            "{e:?}"
        );
        assert!(!e.to_string().contains(SECRET), "{e}");
        let cmd = doc! {"bulkWrite": 1, "ops": [doc_op.clone()], "nsInfo": [{"ns": ns, "encryptionInformation": {}}]};
        let e = run(&cmd).unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteField(f) if f == "nsInfo.0.encryptionInformation"),
            "{e:?}"
        );
        for op in [
            doc! {"insert": 0},
            doc! {"insert": 0, "document": [1]},
            doc! {"update": 0, "filter": {}},
            doc! {"update": 0, "filter": {}, "updateMods": 1},
            doc! {"delete": 0},
            doc! {"delete": 0, "filter": 1},
            doc! {},
        ] {
            let e = run(&bulk(ns, vec![op.clone()])).unwrap_err();
            assert!(matches!(e, Error::Malformed(_)), "{ns} {op}: {e:?}");
        }
        let e = run(&doc! {"bulkWrite": 1, "nsInfo": [{"ns": ns}]}).unwrap_err();
        assert!(matches!(e, Error::Malformed(_)), "{e:?}");
        // Its `$db` is the database it runs on.
        let mut cmd = bulk(ns, vec![doc_op.clone()]);
        cmd.insert("$db", "app");
        let e = run(&cmd).unwrap_err();
        assert!(matches!(e, Error::DatabaseMismatch { .. }), "{e:?}");
    }
    // An `explain` of it is no command analysis knows.
    let e = run(&doc! {"explain": bulk("app.q", vec![doc_op])}).unwrap_err();
    assert!(matches!(e, Error::UnsupportedCommand(_)), "{e:?}");
}

/// The namespace decides: an FLE1 one refused (csfle's refusal, kept), a
/// plain one sent unchanged, one not looked up yet asked for (by its own
/// database, not `admin`).
#[test]
fn the_namespace_decides() {
    let ops = vec![doc! {"insert": 0, "document": {"ssn": SECRET}}];
    let e = run(&bulk("app.people", ops.clone())).unwrap_err();
    assert!(matches!(e, Error::BulkWrite), "{e:?}");
    assert_eq!(
        e.to_string(),
        "bulkWrite does not currently support automatic encryption"
    );
    // Even writing nothing it encrypts: mongocryptd refuses every
    // bulkWrite with a jsonSchema.
    let e = run(&bulk(
        "app.people",
        vec![doc! {"delete": 0, "filter": {"name": "x"}, "multi": true}],
    ))
    .unwrap_err();
    assert!(matches!(e, Error::BulkWrite), "{e:?}");
    assert_eq!(
        run(&bulk("app.plain", ops.clone())).unwrap(),
        Analysis::Unchanged
    );
    let e = run(&bulk("app.unknown", ops)).unwrap_err();
    assert!(
        matches!(&e, Error::SchemaUnavailable(ns) if *ns == Namespace::new("app", "unknown")),
        "{e:?}"
    );
}

/// Inserts, one update (operators, replacement) or one delete on a QE
/// collection: placeholders where their statements would have them, the
/// operations' fields in their places, no plaintext anywhere else.
#[test]
fn queryable_operations_are_analysed_as_statements() {
    use Fle2Algorithm::*;
    use PlaceholderType::*;
    let with = |ops: Vec<Document>| {
        doc! {
            "bulkWrite": 1,
            "errorsOnly": true,
            "ordered": false,
            "ops": ops,
            "nsInfo": [{"ns": "app.q"}],
            "let": {"x": 1},
            "writeConcern": {"w": 1},
            "$db": "admin",
        }
    };
    let inserts = with(vec![
        doc! {"insert": 0, "document": {"_id": 1, "ssn": SECRET, "notes": SECRET, "age": AGE, "name": "n"}},
        doc! {"insert": 0, "document": {"_id": 2, "name": "plain"}},
        doc! {"insert": 0, "document": {"_id": 3, "ssn": SECRET}},
    ]);
    let update = with(vec![
        doc! {"update": 0, "multi": false, "filter": {"ssn": SECRET}, "updateMods": {"$set": {"notes": SECRET}, "$inc": {"visits": 1}}, "upsert": true, "sort": {"name": 1}},
    ]);
    let replace = with(vec![
        doc! {"update": 0, "multi": false, "filter": {"name": "n"}, "updateMods": {"ssn": SECRET, "name": "m"}, "hint": {"name": 1}},
    ]);
    let delete = with(vec![
        doc! {"delete": 0, "multi": true, "filter": {"age": {"$gt": AGE}}, "collation": {"locale": "en"}},
    ]);
    // Where each placeholder is: its path, kind, algorithm and key byte.
    type Expected<'a> = &'a [(&'a str, (PlaceholderType, Fle2Algorithm, u8))];
    let cases: [(&Document, Expected<'_>); 4] = [
        (
            &inserts,
            &[
                ("ops.0.document.ssn", (Insert, Equality, 1)),
                ("ops.0.document.notes", (Insert, Unindexed, 2)),
                ("ops.0.document.age", (Insert, Range, 3)),
                ("ops.2.document.ssn", (Insert, Equality, 1)),
            ],
        ),
        (
            &update,
            &[
                ("ops.0.filter.ssn.$eq", (Find, Equality, 1)),
                ("ops.0.updateMods.$set.notes", (Insert, Unindexed, 2)),
            ],
        ),
        (&replace, &[("ops.0.updateMods.ssn", (Insert, Equality, 1))]),
        (&delete, &[("ops.0.filter.age.$gt", (Find, Range, 3))]),
    ];
    for (cmd, expected) in cases {
        let m = marked(cmd);
        for (path, want) in expected {
            assert_eq!(placeholder_at(&m, path), *want, "{path}");
        }
        // Every field where it was, those not analysed as they were.
        assert_eq!(m.keys().collect::<Vec<_>>(), cmd.keys().collect::<Vec<_>>());
        for (i, (got, sent)) in m
            .get_array("ops")
            .unwrap()
            .iter()
            .zip(cmd.get_array("ops").unwrap())
            .enumerate()
        {
            let (got, sent) = (got.as_document().unwrap(), sent.as_document().unwrap());
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                sent.keys().collect::<Vec<_>>()
            );
            for k in [
                "insert",
                "update",
                "delete",
                "multi",
                "upsert",
                "sort",
                "hint",
                "collation",
            ] {
                assert_eq!(got.get(k), sent.get(k), "op {i}: {k}");
            }
        }
        assert_eq!(
            m.get_array("nsInfo").unwrap(),
            cmd.get_array("nsInfo").unwrap()
        );
        if cmd == &update {
            assert_eq!(
                at(&m, "ops.0.updateMods.$inc"),
                &Bson::Document(doc! {"visits": 1})
            );
        }
        let mut n = 0;
        let Bson::Document(rest) = without_placeholders(&Bson::Document(m), &mut n) else {
            unreachable!("a document stays one");
        };
        assert_eq!(n, expected.len(), "{cmd}");
        assert!(!carries_plaintext(&rest), "plaintext left in {rest}");
    }
    // An update or a delete beside other operations: mongocryptd's
    // refusal (mongod's too), in its words.
    for ops in [
        vec![
            doc! {"insert": 0, "document": {"name": "n"}},
            doc! {"update": 0, "multi": false, "filter": {}, "updateMods": {"$set": {"name": "m"}}},
        ],
        vec![
            doc! {"delete": 0, "multi": false, "filter": {"name": "n"}},
            doc! {"delete": 0, "multi": false, "filter": {"name": "m"}},
        ],
    ] {
        let e = run(&with(ops)).unwrap_err();
        assert!(
            matches!(&e, Error::BulkWriteQueryableOps { ns, .. } if ns == "app.q"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(
                "Only insert is supported in BulkWrite with multiple operations and Queryable Encryption."
            ),
            "{e}"
        );
    }
    // Nothing to encrypt: the command as it came.
    let plain = bulk(
        "app.q",
        vec![
            doc! {"insert": 0, "document": {"name": "n"}},
            doc! {"insert": 0, "document": {"name": "m"}},
        ],
    );
    assert_eq!(run(&plain).unwrap(), Analysis::Unchanged);
    // A plain namespace takes any mix: nothing is analysed there.
    let mixed = bulk(
        "app.plain",
        vec![
            doc! {"insert": 0, "document": {"ssn": SECRET}},
            doc! {"delete": 0, "multi": false, "filter": {"ssn": SECRET}},
        ],
    );
    assert_eq!(run(&mixed).unwrap(), Analysis::Unchanged);
}

/// What the collection's own statements refuse, refused inside an
/// operation, naming the field or operator, never the value.
#[test]
fn queryable_refusals_inside_operations() {
    let refused = |op: Document, words: &str| {
        let e = run(&bulk("app.q", vec![op.clone()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(words), "{op}: {e}");
        assert!(!e.contains(SECRET), "{op}: {e}");
    };
    refused(
        doc! {"delete": 0, "multi": false, "filter": {"$nor": [{"ssn": SECRET}]}},
        "$nor",
    );
    refused(
        doc! {"delete": 0, "multi": false, "filter": {"ssn": {"$regex": SECRET}}},
        "$regex",
    );
    refused(
        doc! {"update": 0, "multi": false, "filter": {"ssn": {"$ne": SECRET}}, "updateMods": {"$set": {"name": "n"}}},
        "$ne",
    );
    refused(
        doc! {"update": 0, "multi": false, "filter": {}, "updateMods": {"$inc": {"age": 1}}},
        "$inc",
    );
    refused(
        doc! {"update": 0, "multi": false, "filter": {}, "updateMods": [{"$set": {"ssn": SECRET}}]},
        "pipeline",
    );
    refused(
        doc! {"update": 0, "multi": false, "filter": {}, "updateMods": {"$set": {"x": 1}}, "sort": {"ssn": 1}},
        "sorting",
    );
    refused(
        doc! {"update": 0, "multi": false, "filter": {}, "updateMods": {"$set": {"tags.$[t]": 1}}, "arrayFilters": [{"t": {"$expr": {"$eq": ["$ssn", SECRET]}}}]},
        "$expr",
    );
    refused(
        doc! {"insert": 0, "document": {"__safeContent__": [SECRET]}},
        "__safeContent__",
    );
    refused(doc! {"insert": 0, "document": {"age": "old"}}, "age");
    refused(
        doc! {"delete": 0, "multi": false, "filter": {"notes": SECRET}},
        "notes",
    );
    // The command's `let`, checked as every command's.
    let mut cmd = bulk("app.q", vec![doc! {"insert": 0, "document": {"name": "n"}}]);
    cmd.insert("let", doc! {"v": "$ssn"});
    let e = run(&cmd).unwrap_err().to_string();
    assert!(e.contains("ssn"), "{e}");
}

/// libmongocrypt's `bulkWrite/simple`: the map makes `encrypted` an
/// equality field, so its insert gets an equality insert placeholder
/// (`a` 2) of `123` with the map's key as both keys; the hand-made reply
/// holds a range one (`a` 3) of the same value and keys (its payload is
/// only matched as `binData` by libmongocrypt's test).
#[test]
fn simple_vector_placeholder() {
    use crate::qe::test_vectors as qe_vectors;
    let read = |rel: &str| {
        let path = qe_vectors::data_dir().join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        qe_vectors::ejson_document(&text)
    };
    let cmd = read("bulkWrite/simple/cmd.json");
    let map = read("bulkWrite/simple/encrypted-field-map.json");
    let fields =
        EncryptedFields::from_document(map.get_document("db.test").unwrap(), ParseMode::Map)
            .unwrap();
    let lookup = |ns: &Namespace| {
        if ns.to_string() == "db.test" {
            NamespaceSchema::Queryable(&fields)
        } else {
            NamespaceSchema::Known(None)
        }
    };
    let Analysis::Marked(m) = analyze(&cmd, "admin", &lookup).unwrap() else {
        panic!("not marked");
    };
    let Bson::Binary(ours) = at(&m, "ops.0.document.encrypted") else {
        panic!("no placeholder");
    };
    let ours = Placeholder::parse(&ours.bytes).unwrap();
    assert_eq!(
        (
            ours.kind,
            ours.algorithm,
            ours.max_contention,
            ours.sparsity
        ),
        (PlaceholderType::Insert, Fle2Algorithm::Equality, 0, 0)
    );
    assert_eq!(ours.value.as_i32(), Some(123));
    let reply = read("bulkWrite/simple/mongocryptd-reply.json");
    let result = reply.get_document("result").unwrap();
    let Bson::Binary(theirs) = at(result, "ops.0.document.encrypted") else {
        panic!("no placeholder in the reply");
    };
    let theirs = Placeholder::parse(&theirs.bytes).unwrap();
    assert_eq!(
        (theirs.kind, theirs.algorithm),
        (PlaceholderType::Insert, Fle2Algorithm::Range)
    );
    assert_eq!(
        (ours.index_key_id, ours.user_key_id, ours.max_contention),
        (
            theirs.index_key_id,
            theirs.user_key_id,
            theirs.max_contention
        )
    );
    assert_eq!(ours.index_key_id, [b'a'; 16]);
    // Everything else as the reply has it, `$db` (which the reply drops)
    // and the `encryptionInformation` (which finalization adds) aside.
    assert_eq!(
        m.get_array("nsInfo").unwrap(),
        &vec![Bson::Document(doc! {"ns": "db.test"})]
    );
    assert_eq!(at(&m, "ops.0.insert"), at(result, "ops.0.insert"));
    assert_eq!(
        at(&m, "ops.0.document.plainText"),
        at(result, "ops.0.document.plainText")
    );
}
