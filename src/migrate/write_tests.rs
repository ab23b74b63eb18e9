//! Unit tests of `write.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

//! The statements are checked by what they do: a small model of the
//! server's matching (`$and`, `$eq` with its array and numeric rules,
//! `$type`, `$not`/`$elemMatch`, `$expr` over `$$ROOT`) and of `$set`
//! and replacement, applied to the document as a concurrent writer
//! left it.

use super::*;
use bson::Bson::{Double, Int32, Int64};

/// BSON equality as a query sees it: numbers by value across types,
/// everything else structurally (documents in field order).
fn equal(a: &Bson, b: &Bson) -> bool {
    let num = |v: &Bson| match v {
        Int32(n) => Some(f64::from(*n)),
        Int64(n) => Some(*n as f64),
        Double(n) => Some(*n),
        _ => None,
    };
    match (a, b) {
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Bson::Document(x), Bson::Document(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && equal(vx, vy))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// `{field: {$eq: v}}`: the value equals `v`, or is an array with an
/// element equal to `v`; a missing field equals `null`.
fn eq(value: Option<&Bson>, v: &Bson) -> bool {
    let value = value.unwrap_or(&Bson::Null);
    equal(value, v) || matches!(value, Bson::Array(a) if a.iter().any(|e| equal(e, v)))
}

fn operator(value: Option<&Bson>, op: &str, arg: &Bson) -> bool {
    match op {
        "$eq" => eq(value, arg),
        // The value's type, or (as MongoDB does) an element's.
        "$type" => value.is_some_and(|v| {
            let is = |x: &Bson| Bson::String(type_alias(x).into()) == *arg;
            is(v) || matches!(v, Bson::Array(a) if a.iter().any(is))
        }),
        "$not" => {
            let Bson::Document(inner) = arg else {
                panic!("$not {arg}")
            };
            !inner.iter().all(|(op, arg)| operator(value, op, arg))
        }
        "$elemMatch" => {
            let Bson::Document(inner) = arg else {
                panic!("$elemMatch {arg}")
            };
            matches!(value, Some(Bson::Array(a)) if a.iter().any(|e| {
                inner.iter().all(|(op, arg)| operator(Some(e), op, arg))
            }))
        }
        other => panic!("operator {other} not modelled"),
    }
}

fn matches(doc: &Document, query: &Document) -> bool {
    query.iter().all(|(k, v)| match (k.as_str(), v) {
        ("$and", Bson::Array(all)) => all.iter().all(|q| matches(doc, q.as_document().unwrap())),
        ("$expr", Bson::Document(e)) => {
            let args = e.get_array("$eq").unwrap();
            assert_eq!(args[0], Bson::String("$$ROOT".into()));
            let lit = args[1]
                .as_document()
                .unwrap()
                .get_document("$literal")
                .unwrap();
            equal(&Bson::Document(doc.clone()), &Bson::Document(lit.clone()))
        }
        (field, Bson::Document(ops)) if ops.keys().all(|o| o.starts_with('$')) => ops
            .iter()
            .all(|(op, arg)| operator(doc.get(field), op, arg)),
        (field, value) => eq(doc.get(field), value),
    })
}

/// Applies one update statement to the collection `coll` (by `_id`);
/// returns whether it matched.
fn apply(coll: &mut [Document], stmt: &Document) -> bool {
    let q = stmt.get_document("q").unwrap();
    let u = stmt.get_document("u").unwrap();
    let Some(doc) = coll.iter_mut().find(|d| matches(d, q)) else {
        return false;
    };
    match u.get_document("$set") {
        Ok(set) => {
            for (k, v) in set {
                doc.insert(k.clone(), v.clone());
            }
        }
        Err(_) if u.keys().all(|k| !k.starts_with('$')) => *doc = u.clone(),
        Err(_) => panic!("update {u} not modelled"),
    }
    true
}

fn read() -> Document {
    doc! {"_id": 1, "ssn": "457-55-5462", "n": 5, "tags": ["a", "b"], "keyName": "k1", "other": "x"}
}

fn migrated() -> Document {
    let mut d = read();
    d.insert("ssn", "<ciphertext>");
    d.insert("n", "<ciphertext n>");
    d.insert("tags", "<ciphertext tags>");
    d
}

fn fields() -> Vec<String> {
    vec!["ssn".into(), "n".into(), "tags".into()]
}

fn stmt() -> Document {
    conditional_update(&read(), migrated(), &fields(), &["keyName".into()])
}

/// The document after a concurrent writer set `field` to `value`.
fn concurrent(field: &str, value: impl Into<Bson>) -> Vec<Document> {
    let mut d = read();
    d.insert(field, value.into());
    vec![d]
}

#[test]
fn no_concurrent_change_writes_the_changed_fields_only() {
    let mut coll = vec![read()];
    assert!(apply(&mut coll, &stmt()));
    assert_eq!(coll[0], migrated());
    let set = stmt()
        .get_document("u")
        .unwrap()
        .get_document("$set")
        .unwrap()
        .clone();
    assert_eq!(set.keys().collect::<Vec<_>>(), ["ssn", "n", "tags"]);
}

#[test]
fn a_changed_field_changed_again_is_not_overwritten() {
    let mut coll = concurrent("ssn", "999-99-9999");
    assert!(!apply(&mut coll, &stmt()));
    assert_eq!(coll[0].get_str("ssn").unwrap(), "999-99-9999");
}

#[test]
fn an_equal_number_of_another_type_is_a_change() {
    for v in [Int64(5), Double(5.0)] {
        let mut coll = concurrent("n", v.clone());
        assert!(!apply(&mut coll, &stmt()), "{v:?}");
        assert_eq!(coll[0].get("n"), Some(&v));
    }
}

#[test]
fn an_array_holding_the_old_value_is_a_change() {
    // `$eq` and `$type` both match these by their element.
    let mut coll = concurrent("ssn", vec![Bson::from("457-55-5462")]);
    assert!(!apply(&mut coll, &stmt()));
    assert_eq!(coll[0].get_array("ssn").unwrap().len(), 1);
    let mut coll = concurrent("n", vec![Int32(5)]);
    assert!(!apply(&mut coll, &stmt()));
    // An array value, wrapped in another array by the concurrent writer.
    let mut coll = concurrent("tags", vec![Bson::Array(vec!["a".into(), "b".into()])]);
    assert!(!apply(&mut coll, &stmt()));
    // The same array, reordered.
    let mut coll = concurrent("tags", vec![Bson::from("b"), Bson::from("a")]);
    assert!(!apply(&mut coll, &stmt()));
}

#[test]
fn a_change_to_the_field_naming_the_key_is_not_overwritten() {
    let mut coll = concurrent("keyName", "k2");
    assert!(!apply(&mut coll, &stmt()));
    assert_eq!(coll[0].get_str("ssn").unwrap(), "457-55-5462");
}

#[test]
fn a_concurrent_change_to_another_field_survives() {
    let mut coll = concurrent("other", "changed meanwhile");
    assert!(apply(&mut coll, &stmt()));
    assert_eq!(coll[0].get_str("other").unwrap(), "changed meanwhile");
    assert_eq!(coll[0].get_str("ssn").unwrap(), "<ciphertext>");
}

#[test]
fn a_removed_field_or_document_is_not_written() {
    let mut coll = vec![read()];
    coll[0].remove("ssn");
    assert!(!apply(&mut coll, &stmt()));
    assert!(!coll[0].contains_key("ssn"));
    let mut empty = Vec::new();
    assert!(!apply(&mut empty, &stmt()));
    assert!(empty.is_empty());
}

#[test]
fn path_like_field_names_replace_only_an_unchanged_document() {
    let orig = doc! {"_id": 1, "a.b": "secret", "other": 1};
    let new = doc! {"_id": 1, "a.b": "<ciphertext>", "other": 1};
    let stmt = conditional_update(&orig, new.clone(), &["a.b".into()], &[]);
    assert!(
        stmt.get_document("u")
            .unwrap()
            .get_document("$set")
            .is_err()
    );
    let mut coll = vec![orig.clone()];
    assert!(apply(&mut coll, &stmt));
    assert_eq!(coll[0], new);
    // Any concurrent change anywhere in the document: no write.
    let mut changed = orig.clone();
    changed.insert("other", 2);
    let mut coll = vec![changed.clone()];
    assert!(!apply(&mut coll, &stmt));
    assert_eq!(coll[0], changed);
    let dollar = conditional_update(&orig, new, &["$x".into()], &[]);
    assert!(dollar.get_document("q").unwrap().contains_key("$expr"));
}

fn prepared() -> Vec<(Document, Result<Change, String>)> {
    vec![
        (read(), Ok(Change::Unchanged)),
        (
            read(),
            Ok(Change::Changed {
                document: migrated(),
                fields: fields(),
                depends_on: vec![],
            }),
        ),
        (doc! {"_id": 3}, Err("no key".into())),
    ]
}

#[test]
fn statements_per_mode() {
    let mut stats = BatchStats::default();
    let w = statements(prepared(), 0, WriteMode::InPlace, &mut stats);
    assert_eq!(w.len(), 1, "in place: only the changed document");
    assert!(w[0].1.get_document("q").unwrap().contains_key("$and"));
    assert_eq!(
        (
            stats.counts.skipped,
            stats.counts.changed,
            stats.failed.len()
        ),
        (1, 0, 1)
    );
    assert_eq!(
        stats.counts().failed,
        1,
        "a failure is counted as it is kept"
    );

    let mut stats = BatchStats::default();
    let w = statements(prepared(), 0, WriteMode::Copy, &mut stats);
    assert_eq!(w.len(), 2, "copy: every readable document is upserted");
    assert!(w.iter().all(|(_, s)| s.get_bool("upsert") == Ok(true)));
    assert_eq!(w[1].1.get_document("u").unwrap(), &migrated());
    assert_eq!((stats.counts.skipped, stats.counts.changed), (1, 1));

    let mut stats = BatchStats::default();
    assert!(statements(prepared(), 0, WriteMode::DryRun, &mut stats).is_empty());
    assert_eq!(
        (
            stats.counts.skipped,
            stats.counts.changed,
            stats.failed.len()
        ),
        (1, 1, 1)
    );

    // A retry: unchanged now means our earlier write landed; changed
    // means someone else wrote in between.
    let mut stats = BatchStats::default();
    statements(prepared(), 1, WriteMode::InPlace, &mut stats);
    assert_eq!(
        (
            stats.counts.skipped,
            stats.counts.changed,
            stats.counts.retried
        ),
        (0, 1, 1)
    );
}

#[test]
fn reply_accounting() {
    let ids = || vec![Bson::Int32(1), Bson::Int32(2), Bson::Int32(3)];
    // All matched.
    let mut stats = BatchStats::default();
    let un = outcome(
        ids(),
        &doc! {"n": 3, "ok": 1},
        WriteMode::InPlace,
        &mut stats,
    )
    .unwrap();
    assert!(un.is_empty());
    assert_eq!(stats.counts.changed, 3);
    // One write error, one unmatched: the unmatched candidates are the
    // statements without an error, read again by the worker.
    let reply = doc! {"n": 1, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}]};
    let mut stats = BatchStats::default();
    let un = outcome(ids(), &reply, WriteMode::InPlace, &mut stats).unwrap();
    assert_eq!(un, [Bson::Int32(1), Bson::Int32(3)]);
    assert_eq!(stats.failed[0].id, Bson::Int32(2));
    assert!(stats.failed[0].reason.contains("11000"));
    assert_eq!(stats.counts.changed, 0);
    // An error index out of range (a confused server) is ignored, and
    // repeated indexes count once.
    let reply = doc! {"n": 2, "writeErrors": [{"index": 9}, {"index": 0}, {"index": 0}]};
    let mut stats = BatchStats::default();
    let un = outcome(ids(), &reply, WriteMode::InPlace, &mut stats).unwrap();
    assert!(un.is_empty());
    assert_eq!((stats.failed.len(), stats.counts.changed), (1, 2));
    // Copying never leaves unmatched documents (upserts).
    let mut stats = BatchStats::default();
    assert!(
        outcome(ids(), &doc! {"n": 0}, WriteMode::Copy, &mut stats)
            .unwrap()
            .is_empty()
    );
    // A write concern error fails the batch.
    let reply = doc! {"n": 3, "writeConcernError": {"code": 64, "errmsg": "timeout"}};
    let e = outcome(
        ids(),
        &reply,
        WriteMode::InPlace,
        &mut BatchStats::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("timeout"), "{e}");
}

/// A chunk's statements decoded, with their `_id`s.
fn decoded(c: &Chunk) -> Vec<(Bson, Document)> {
    let stmts = Vec::<Bson>::try_from(&*c.updates).unwrap();
    assert_eq!(stmts.len(), c.ids.len(), "one `_id` a statement");
    c.ids
        .iter()
        .cloned()
        .zip(stmts.into_iter().map(|s| match s {
            Bson::Document(d) => d,
            other => panic!("a statement that is not a document: {other:?}"),
        }))
        .collect()
}

#[test]
fn chunking_keeps_every_statement_once_and_in_order() {
    let writes: Vec<(Bson, Document)> = (0..10)
        .map(|i| {
            (
                Bson::Int32(i),
                doc! {"q": {"_id": i}, "u": {"x": "y".repeat(100)}},
            )
        })
        .collect();
    let all = chunks(writes.clone(), 300).unwrap();
    assert!(all.len() > 1);
    assert!(all.iter().all(|c| !c.ids.is_empty()));
    // Each chunk closes at the first statement that reaches the limit.
    let size = |d: &Document| bson::to_vec(d).unwrap().len();
    for c in &all[..all.len() - 1] {
        let sizes: Vec<usize> = decoded(c).iter().map(|(_, d)| size(d)).collect();
        let total: usize = sizes.iter().sum();
        assert!(total >= 300 && total - sizes[sizes.len() - 1] < 300);
    }
    let back: Vec<(Bson, Document)> = all.iter().flat_map(decoded).collect();
    assert_eq!(back, writes);
    let one = chunks(writes.clone(), usize::MAX).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(decoded(&one[0]), writes);
    assert!(chunks(Vec::new(), 1).unwrap().is_empty());
}

/// The command sent is the unordered bulk `update` with majority,
/// journaled write concern, exactly as when it was built as a
/// `Document`.
#[test]
fn the_update_command_is_unordered_majority_and_journaled() {
    let writes = vec![
        (Bson::Int32(1), stmt()),
        (Bson::Int32(2), upsert(Bson::Int32(2), migrated())),
    ];
    let mut all = chunks(writes.clone(), usize::MAX).unwrap();
    let chunk = all.pop().unwrap();
    assert_eq!(chunk.ids, [Bson::Int32(1), Bson::Int32(2)]);
    let command = update_command("people", chunk.updates)
        .to_document()
        .unwrap();
    let stmts: Vec<Document> = writes.into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        command,
        doc! {
            "update": "people",
            "updates": stmts,
            "ordered": false,
            "writeConcern": {"w": "majority", "j": true},
        }
    );
    // The command's name first (`Document` equality ignores order).
    assert_eq!(
        command.keys().collect::<Vec<_>>(),
        ["update", "updates", "ordered", "writeConcern"]
    );
}

/// A DB pointer (`bson` builds one only by parsing it).
fn db_pointer() -> Bson {
    let ns = b"db.coll\0";
    let mut element = vec![0x0C];
    element.extend_from_slice(b"p\0");
    element.extend_from_slice(&(ns.len() as i32).to_le_bytes());
    element.extend_from_slice(ns);
    element.extend_from_slice(&[7; 12]);
    let mut bytes = ((4 + element.len() + 1) as i32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&element);
    bytes.push(0);
    let d = Document::from_reader(&bytes[..]).unwrap();
    d.get("p").unwrap().clone()
}

/// Statements encoded element by element are the bytes `bson`'s
/// serializer writes: every type, nested in documents, arrays and a scope,
/// and past the depth where `encode` hands over to the serializer.
#[test]
fn statements_encode_as_the_serializer_does() {
    use bson::spec::BinarySubtype;
    let binary = |subtype, bytes: &[u8]| {
        Bson::Binary(bson::Binary {
            subtype,
            bytes: bytes.to_vec(),
        })
    };
    let scalars = vec![
        Bson::Double(-0.5),
        Bson::from("s\u{0}tring"),
        Bson::Boolean(true),
        Bson::Null,
        Bson::Undefined,
        Bson::MinKey,
        Bson::MaxKey,
        Bson::Int32(-7),
        Bson::Int64(1 << 40),
        Bson::DateTime(bson::DateTime::from_millis(-3)),
        Bson::Timestamp(bson::Timestamp {
            time: 1,
            increment: 2,
        }),
        Bson::ObjectId(bson::oid::ObjectId::from_bytes([3; 12])),
        Bson::Decimal128(bson::Decimal128::from_bytes([4; 16])),
        Bson::RegularExpression(bson::Regex {
            pattern: "^a".into(),
            options: "i".into(),
        }),
        Bson::RegularExpression(bson::Regex {
            pattern: "b".into(),
            options: "imx".into(),
        }),
        Bson::JavaScriptCode("f()".into()),
        Bson::Symbol("sym".into()),
        db_pointer(),
        binary(BinarySubtype::Generic, &[1, 2, 3]),
        binary(BinarySubtype::Encrypted, &[1; 90]),
        binary(BinarySubtype::Uuid, &[5; 16]),
        binary(BinarySubtype::BinaryOld, &[6; 4]),
        binary(BinarySubtype::UserDefined(0x80), &[]),
    ];
    let mut doc = Document::new();
    for (i, v) in scalars.iter().enumerate() {
        doc.insert(format!("f{i}"), v.clone());
    }
    doc.insert("array", Bson::Array(scalars.clone()));
    doc.insert(
        "scope",
        Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
            code: "g()".into(),
            scope: doc! {"in": [{"x": scalars[17].clone()}]},
        }),
    );
    doc.insert("empty", Document::new());
    doc.insert("empty_array", Bson::Array(Vec::new()));
    let mut deep = Bson::Document(doc.clone());
    for i in 0..ENCODE_DEPTH + 3 {
        deep = if i % 2 == 0 {
            Bson::Document(doc! {"d": deep})
        } else {
            Bson::Array(vec![deep])
        };
    }
    let mut arrays = Bson::Int32(1);
    for _ in 0..ENCODE_DEPTH + 3 {
        arrays = Bson::Array(vec![arrays]);
    }
    let statement = doc! {"q": {"_id": 1, "$and": [{"a": doc.clone()}]}, "u": {"$set": doc.clone()}, "deep": deep, "arrays": arrays};
    // Handed to the serializer whole: options out of its order.
    let unsorted = doc! {"r": Bson::RegularExpression(bson::Regex { pattern: "p".into(), options: "xi".into() }), "b": doc.clone()};
    for d in [doc, statement, unsorted] {
        assert_eq!(
            encode(&d).unwrap(),
            RawDocumentBuf::from_document(&d).unwrap()
        );
    }
    // A NUL byte in a key or a regular expression: the serializer's
    // refusal, not a panic.
    let nul_key = doc! {"a\0b": 1};
    assert!(encode(&nul_key).is_err());
    let nul_regex = doc! {"in": [Bson::RegularExpression(bson::Regex { pattern: "a\0".into(), options: String::new() })]};
    assert!(encode(&nul_regex).is_err());
}
