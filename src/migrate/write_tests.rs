//! Unit tests of `write.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

//! The statements are checked by what they do: a small model of the
//! server's matching (`$eq` with its array and numeric rules, `$expr` over
//! `$$ROOT`), of the aggregation expressions the update pipeline uses
//! (`$replaceWith`, `$cond`, `$and`, `$eq` between values, `$type` with
//! `"missing"`, `$literal`, `$mergeObjects`, field paths) and of
//! replacement, applied to the document as a concurrent writer left it.

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
        other => panic!("operator {other} not modelled"),
    }
}

fn matches(doc: &Document, query: &Document) -> bool {
    query.iter().all(|(k, v)| match (k.as_str(), v) {
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

/// An aggregation expression's value over `doc` (`None`: missing), for
/// the expressions the statements use; anything else panics.
fn eval(doc: &Document, e: &Bson) -> Option<Bson> {
    let truth = |v: Option<Bson>| v == Some(Bson::Boolean(true));
    match e {
        Bson::String(s) if s == "$$ROOT" => Some(Bson::Document(doc.clone())),
        Bson::String(s) if s.starts_with("$$") => panic!("variable {s} not modelled"),
        Bson::String(s) if s.starts_with('$') => {
            assert!(!s.contains('.'), "path {s} not modelled");
            doc.get(&s[1..]).cloned()
        }
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            assert_eq!(d.len(), 1, "{d}");
            let (op, arg) = d.iter().next().unwrap();
            let args = || arg.as_array().unwrap();
            Some(match op.as_str() {
                "$literal" => arg.clone(),
                "$type" => {
                    Bson::String(eval(doc, arg).map_or("missing", |v| type_alias(&v)).into())
                }
                // Between values: no array traversal; numbers by value
                // across types.
                "$eq" => Bson::Boolean(match (eval(doc, &args()[0]), eval(doc, &args()[1])) {
                    (Some(x), Some(y)) => equal(&x, &y),
                    (None, None) => true,
                    _ => false,
                }),
                "$and" => Bson::Boolean(args().iter().all(|c| truth(eval(doc, c)))),
                "$cond" => {
                    let a = args();
                    assert_eq!(a.len(), 3);
                    return if truth(eval(doc, &a[0])) {
                        eval(doc, &a[1])
                    } else {
                        eval(doc, &a[2])
                    };
                }
                // Later documents' fields replace earlier ones in place;
                // new ones are appended.
                "$mergeObjects" => {
                    let mut out = Document::new();
                    for part in args() {
                        match eval(doc, part) {
                            Some(Bson::Document(p)) => out.extend(p),
                            other => panic!("$mergeObjects of {other:?}"),
                        }
                    }
                    Bson::Document(out)
                }
                other => panic!("expression {other} not modelled"),
            })
        }
        // An expression object: each field evaluated.
        Bson::Document(d) => Some(Bson::Document(
            d.iter()
                .filter_map(|(k, v)| Some((k.clone(), eval(doc, v)?)))
                .collect(),
        )),
        // An array expression: each element evaluated, missing as null.
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .map(|i| eval(doc, i).unwrap_or(Bson::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Applies one update statement to the collection `coll` (by `_id`);
/// returns whether it modified the document, as `nModified` counts.
fn apply(coll: &mut [Document], stmt: &Document) -> bool {
    let q = stmt.get_document("q").unwrap();
    let Some(doc) = coll.iter_mut().find(|d| matches(d, q)) else {
        return false;
    };
    let before = bson::to_vec(&*doc).unwrap();
    match stmt.get("u").unwrap() {
        Bson::Array(pipeline) => {
            for stage in pipeline {
                let stage = stage.as_document().unwrap();
                let e = stage
                    .get("$replaceWith")
                    .unwrap_or_else(|| panic!("stage {stage} not modelled"));
                let Some(Bson::Document(replaced)) = eval(doc, e) else {
                    panic!("$replaceWith of a non-document")
                };
                *doc = replaced;
            }
        }
        Bson::Document(u) if u.keys().all(|k| !k.starts_with('$')) => *doc = u.clone(),
        u => panic!("update {u} not modelled"),
    }
    bson::to_vec(&*doc).unwrap() != before
}

/// The fields a statement merges into the document, as sent.
fn merged(stmt: &Document) -> Document {
    let u = stmt.get_array("u").unwrap();
    let cond = u[0]
        .as_document()
        .unwrap()
        .get_document("$replaceWith")
        .unwrap()
        .get_array("$cond")
        .unwrap();
    let merge = cond[1]
        .as_document()
        .unwrap()
        .get_array("$mergeObjects")
        .unwrap();
    merge[1].as_document().unwrap().clone()
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
    conditional_update(&read(), migrated(), &fields(), &["keyName".into()]).document()
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
    // The same fields in the same order, the changed ones in their places.
    assert_eq!(
        bson::to_vec(&coll[0]).unwrap(),
        bson::to_vec(&migrated()).unwrap()
    );
    let set = merged(&stmt());
    assert_eq!(set.keys().collect::<Vec<_>>(), ["ssn", "n", "tags"]);
    // Selected by `_id` alone: the server's `_id` lookup, no query to plan.
    assert_eq!(stmt().get_document("q").unwrap(), &doc! {"_id": 1});
    // Strings compared by their bytes, whatever the collection's default
    // collation (a change of case is a change).
    assert_eq!(
        stmt().get_document("collation").unwrap(),
        &doc! {"locale": "simple"}
    );
}

#[test]
fn new_values_are_written_as_values_never_as_expressions() {
    // A plaintext written back by a decrypting migration may look like a
    // field path or an operator.
    let mut new = read();
    new.insert("ssn", "$other");
    new.insert("n", doc! {"$literal": 1});
    new.insert("tags", "$$ROOT");
    let stmt = conditional_update(&read(), new.clone(), &fields(), &[]).document();
    let mut coll = vec![read()];
    assert!(apply(&mut coll, &stmt));
    assert_eq!(bson::to_vec(&coll[0]).unwrap(), bson::to_vec(&new).unwrap());
}

#[test]
fn a_field_read_as_missing_must_still_be_missing() {
    // `keyName` names the key; missing when read, and added meanwhile.
    let mut orig = read();
    orig.remove("keyName");
    let stmt = conditional_update(&orig, migrated(), &fields(), &["keyName".into()]).document();
    let mut coll = vec![orig.clone()];
    coll[0].insert("keyName", Bson::Null);
    assert!(!apply(&mut coll, &stmt), "null is not missing");
    let mut coll = vec![orig.clone()];
    assert!(apply(&mut coll, &stmt));
}

#[test]
fn ciphertexts_are_compared_together_and_beside_plain_values() {
    // Re-encryption: three fields hold ciphertexts, the key's name is
    // plain.
    let blob = |byte| {
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Encrypted,
            bytes: vec![byte; 33],
        })
    };
    let mut orig = read();
    for (f, b) in [("ssn", 1), ("n", 2), ("tags", 3)] {
        orig.insert(f, blob(b));
    }
    let mut new = orig.clone();
    for (f, b) in [("ssn", 11), ("n", 12), ("tags", 13)] {
        new.insert(f, blob(b));
    }
    let stmt = conditional_update(&orig, new.clone(), &fields(), &["keyName".into()]).document();
    let mut coll = vec![orig.clone()];
    assert!(apply(&mut coll, &stmt));
    assert_eq!(bson::to_vec(&coll[0]).unwrap(), bson::to_vec(&new).unwrap());
    let changes: [(&str, Option<Bson>); 6] = [
        ("ssn", Some(blob(9))),
        ("n", None),
        ("tags", Some(Bson::Null)),
        ("tags", Some(Bson::Array(vec![blob(3)]))),
        ("keyName", Some("k2".into())),
        ("keyName", None),
    ];
    for (field, meanwhile) in changes {
        let mut coll = vec![orig.clone()];
        match &meanwhile {
            Some(v) => coll[0].insert(field, v.clone()),
            None => coll[0].remove(field),
        };
        let before = coll[0].clone();
        assert!(!apply(&mut coll, &stmt), "{field}: {meanwhile:?}");
        assert_eq!(coll[0], before);
    }
}

#[test]
fn a_ciphertext_is_compared_by_subtype_and_bytes() {
    let blob = |subtype, byte| {
        Bson::Binary(bson::Binary {
            subtype,
            bytes: vec![byte; 65],
        })
    };
    let encrypted = bson::spec::BinarySubtype::Encrypted;
    let mut orig = read();
    orig.insert("ssn", blob(encrypted, 1));
    let mut new = orig.clone();
    new.insert("ssn", blob(encrypted, 2));
    let stmt = conditional_update(&orig, new.clone(), &["ssn".into()], &[]).document();
    for meanwhile in [
        blob(encrypted, 3),
        blob(bson::spec::BinarySubtype::Generic, 1),
        Bson::Array(vec![blob(encrypted, 1)]),
    ] {
        let mut coll = vec![orig.clone()];
        coll[0].insert("ssn", meanwhile.clone());
        assert!(!apply(&mut coll, &stmt), "{meanwhile:?}");
        assert_eq!(coll[0].get("ssn"), Some(&meanwhile));
    }
    let mut coll = vec![orig];
    assert!(apply(&mut coll, &stmt));
    assert_eq!(coll[0], new);
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
    let stmt = conditional_update(&orig, new.clone(), &["a.b".into()], &[]).document();
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
    let dollar = conditional_update(&orig, new.clone(), &["$x".into()], &[]).document();
    assert!(dollar.get_document("q").unwrap().contains_key("$expr"));
    // The empty name is no field path either.
    let empty = conditional_update(&orig, new, &["".into()], &[]).document();
    assert!(empty.get_document("q").unwrap().contains_key("$expr"));
    assert_eq!(
        empty.get_document("collation").unwrap(),
        &doc! {"locale": "simple"}
    );
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
    // The conditional pipeline.
    assert!(w[0].1.document().get_array("u").is_ok());
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
    assert!(
        w.iter()
            .all(|(_, s)| s.document().get_bool("upsert") == Ok(true))
    );
    assert_eq!(w[1].1.document().get_document("u").unwrap(), &migrated());
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
        &doc! {"n": 3, "nModified": 3, "ok": 1},
        WriteMode::InPlace,
        &mut stats,
    )
    .unwrap();
    assert!(un.is_empty());
    assert_eq!(stats.counts.changed, 3);
    // One write error, one unmatched: the unmatched candidates are the
    // statements without an error, read again by the worker.
    let reply = doc! {"n": 2, "nModified": 1, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}]};
    let mut stats = BatchStats::default();
    let un = outcome(ids(), &reply, WriteMode::InPlace, &mut stats).unwrap();
    assert_eq!(un, [Bson::Int32(1), Bson::Int32(3)]);
    assert_eq!(stats.failed[0].id, Bson::Int32(2));
    assert!(stats.failed[0].reason.contains("11000"));
    assert_eq!(stats.counts.changed, 0);
    // Every statement is read again, as the server does not say which
    // one did not write:
    for reply in [
        // each matched its document by `_id`, one left it as it was (its
        // conditions failed);
        doc! {"n": 3, "nModified": 2, "ok": 1},
        // more modified or matched than sent (each statement updates one
        // document at most): not trusted;
        doc! {"n": 3, "nModified": 4, "ok": 1},
        doc! {"n": 4, "nModified": 3, "ok": 1},
        // no `nModified` (a confused server).
        doc! {"n": 3},
    ] {
        let mut stats = BatchStats::default();
        let un = outcome(ids(), &reply, WriteMode::InPlace, &mut stats).unwrap();
        assert_eq!(un, ids(), "{reply}");
        assert_eq!(stats.counts.changed, 0);
    }
    // An error index out of range (a confused server) is ignored, and
    // repeated indexes count once.
    let reply =
        doc! {"n": 2, "nModified": 2, "writeErrors": [{"index": 9}, {"index": 0}, {"index": 0}]};
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
    let reply =
        doc! {"n": 3, "nModified": 3, "writeConcernError": {"code": 64, "errmsg": "timeout"}};
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
/// Statements given as documents.
fn as_statements(writes: &[(Bson, Document)]) -> Vec<(Bson, Statement)> {
    writes
        .iter()
        .map(|(id, d)| (id.clone(), d.clone().into()))
        .collect()
}

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
    let all = chunks(as_statements(&writes), 300).unwrap();
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
    let one = chunks(as_statements(&writes), usize::MAX).unwrap();
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
    let mut all = chunks(as_statements(&writes), usize::MAX).unwrap();
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

#[test]
fn a_value_append_cannot_write_goes_to_the_serializer_never_a_panic() {
    let regex = |pattern: &str, options: &str| {
        Bson::RegularExpression(bson::Regex {
            pattern: pattern.into(),
            options: options.into(),
        })
    };
    // As read (in the condition) and as written (a decrypted value).
    for value in [
        regex("a\0b", "i"),
        regex("ab", "xi"),
        Bson::Document(doc! {"a\0b": 1}),
    ] {
        let mut orig = read();
        orig.insert("ssn", value.clone());
        let stmt = conditional_update(&orig, migrated(), &["ssn".into()], &[]);
        let mut new = read();
        new.insert("ssn", value.clone());
        let back = conditional_update(&read(), new, &["ssn".into()], &[]);
        for s in [stmt, back] {
            let sent = chunks(vec![(Bson::Int32(1), s)], usize::MAX);
            let nul = matches!(&value, Bson::RegularExpression(r) if r.pattern.contains('\0'))
                || matches!(&value, Bson::Document(_));
            assert_eq!(sent.is_err(), nul, "{value:?}");
        }
    }
}

/// Every binary subtype (the old one with 0 to 5 payload bytes, the
/// non-canonical `Reserved(2)` and `UserDefined(2)` the serializer writes
/// as the old subtype), empty and non-ASCII strings: the serializer's
/// bytes, at the top, in documents and in arrays; a binary over 16 MiB is
/// the serializer's refusal, never an element with a wrong length.
#[test]
fn encode_writes_every_binary_and_string_as_the_serializer() {
    let subtypes = [
        BinarySubtype::Generic,
        BinarySubtype::Function,
        BinarySubtype::BinaryOld,
        BinarySubtype::UuidOld,
        BinarySubtype::Uuid,
        BinarySubtype::Md5,
        BinarySubtype::Encrypted,
        BinarySubtype::Column,
        BinarySubtype::Sensitive,
        BinarySubtype::Reserved(2),
        BinarySubtype::Reserved(0x7f),
        BinarySubtype::UserDefined(2),
        BinarySubtype::UserDefined(0x80),
    ];
    let mut doc = doc! {"empty": "", "accents": "d\u{e9}j\u{e0} \u{1F600}", "nul": "a\0b"};
    for (i, subtype) in subtypes.into_iter().enumerate() {
        for len in 0..6 {
            let b = Bson::Binary(bson::Binary {
                subtype,
                bytes: (0..len).collect(),
            });
            doc.insert(format!("b{i}_{len}"), b.clone());
            doc.insert(format!("a{i}_{len}"), vec![b.clone()]);
            doc.insert(format!("d{i}_{len}"), doc! {"x": b});
        }
    }
    assert_eq!(
        encode(&doc).unwrap(),
        RawDocumentBuf::from_document(&doc).unwrap()
    );
    let huge = bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![0; 16 * 1024 * 1024 + 1],
    };
    for d in [
        doc! {"h": huge.clone()},
        doc! {"h": [huge.clone()]},
        doc! {"h": {"x": huge}},
    ] {
        assert!(RawDocumentBuf::from_document(&d).is_err());
        assert!(encode(&d).is_err());
    }
}
