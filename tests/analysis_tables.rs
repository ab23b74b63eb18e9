//! Query analysis fails closed, proved by tables.
//!
//! The hostile table holds commands that would send a plaintext of an
//! encrypted field (or could) in every way found so far: projections and
//! expressions, `min`/`max`, unknown fields, cross-collection stages, writes
//! from pipelines, views, validators, mixed updates, injected markings.
//! Each must be refused for the right reason: the error names the field or
//! namespace that made it unsafe. The legitimate table holds commands that
//! must still go through, encrypted where the schema says, with no
//! plaintext of an encrypted field left in them.

use bson::{Bson, Document, doc};
use csfle::analysis::{Analysis, Namespace, NamespaceSchema, analyze, encrypt_markings};
use csfle::schema::{EncryptionSchema, SchemaSource};
use std::collections::HashMap;
use std::sync::OnceLock;

mod common;
use common::tables::*;

/// `app.people` and `other.people2` encrypt `ssn` (and more); `app.plain`
/// has a schema without encryption; `app.unknown` cannot be looked up;
/// everything else has no schema.
fn schemas() -> &'static HashMap<String, EncryptionSchema> {
    static S: OnceLock<HashMap<String, EncryptionSchema>> = OnceLock::new();
    S.get_or_init(|| {
        let mut m = HashMap::new();
        for ns in ["app.people", "other.people2"] {
            m.insert(
                ns.to_owned(),
                EncryptionSchema::parse(&people_schema(), SchemaSource::Local).unwrap(),
            );
        }
        m.insert(
            "app.plain".to_owned(),
            EncryptionSchema::parse(
                &doc! {"properties": {"a": {"bsonType": "int"}}},
                SchemaSource::Local,
            )
            .unwrap(),
        );
        m
    })
}

fn lookup(ns: &Namespace) -> NamespaceSchema<'static> {
    if ns.to_string() == "app.unknown" {
        return NamespaceSchema::Unknown;
    }
    NamespaceSchema::Known(schemas().get(&ns.to_string()))
}

/// What would be sent: the analysed command with markings encrypted, or
/// the original when nothing needs encrypting.
fn send(cmd: &Document) -> Result<(Document, bool), String> {
    match analyze(cmd, "app", &lookup).map_err(|e| e.to_string())? {
        Analysis::Unchanged => Ok((cmd.clone(), false)),
        Analysis::Marked(m) => {
            let enc = common::fixed_encrypter();
            encrypt_markings(&m, enc.keys())
                .map(|d| (d, true))
                .map_err(|e| e.to_string())
        }
    }
}

fn carries_secret(doc: &Document) -> bool {
    let mut bytes = Vec::new();
    doc.to_writer(&mut bytes).unwrap();
    [SECRET, SECRET2]
        .iter()
        .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
}

#[test]
fn hostile_commands_are_refused_for_the_right_reason() {
    let cases = hostile();
    eprintln!(
        "hostile table: {} commands; legitimate table: {} commands",
        cases.len(),
        legitimate().len()
    );
    assert!(cases.len() >= 220, "{} hostile cases", cases.len());
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
                )
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
    ] {
        assert!(commands.contains(c), "no hostile {c}");
    }
    eprintln!("{} hostile commands refused", cases.len());
}

#[test]
fn legitimate_commands_still_work_encrypted() {
    let cases = legitimate();
    assert!(cases.len() >= 45, "{} legitimate cases", cases.len());
    for (name, cmd, marked) in &cases {
        let (sent, was_marked) = send(cmd).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(was_marked, *marked, "{name}: {sent}");
        assert!(!carries_secret(&sent), "{name}: plaintext left in {sent}");
    }
    eprintln!("{} legitimate commands sent", cases.len());
}

/// mongocryptd's explain reply: `{explain: <marked>, verbosity}`, the
/// server's default verbosity when the command had none.
#[test]
fn explain_carries_verbosity() {
    let (sent, _) =
        send(&doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}, "$db": "app"})
            .unwrap();
    assert_eq!(
        sent.keys().collect::<Vec<_>>(),
        ["explain", "verbosity", "$db"]
    );
    assert_eq!(sent.get_str("verbosity"), Ok("allPlansExecution"));
    let (sent, _) = send(&doc! {"explain": {"find": "people", "filter": {"ssn": SECRET}}, "verbosity": "queryPlanner"}).unwrap();
    assert_eq!(sent.get_str("verbosity"), Ok("queryPlanner"));
}

/// Schemas read the way JSON Schema means them.
#[test]
fn schema_entries_that_disagree_are_refused() {
    let det = |k: Bson| doc! {"encrypt": {"keyId": k, "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}};
    // A property and a pattern matching it, one encrypted, one not.
    let s = EncryptionSchema::parse(
        &doc! {"properties": {"ssn": {"bsonType": "string"}}, "patternProperties": {"^ss": det(key())}},
        SchemaSource::Local,
    )
    .unwrap();
    let e = analyze(
        &doc! {"find": "c", "filter": {"ssn": SECRET}},
        "app",
        &|_| NamespaceSchema::Known(Some(&s)),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("disagree") && e.contains("ssn"), "{e}");
    // Two patterns that overlap on a field and disagree.
    let s = EncryptionSchema::parse(
        &doc! {"patternProperties": {"^secret": det(key()), "_x$": {"bsonType": "string"}}},
        SchemaSource::Local,
    )
    .unwrap();
    let lookup = |_: &Namespace| NamespaceSchema::Known(Some(&s));
    let e = analyze(
        &doc! {"insert": "c", "documents": [{"secret_x": SECRET}]},
        "app",
        &lookup,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("disagree") && e.contains("secret_x"), "{e}");
    // Patterns that do not overlap are fine.
    assert!(matches!(
        analyze(
            &doc! {"insert": "c", "documents": [{"secret_a": SECRET, "b_x": "x"}]},
            "app",
            &lookup
        )
        .unwrap(),
        Analysis::Marked(_)
    ));
    // Encrypted names with '.' or a leading '$'.
    for name in ["a.b", "$a"] {
        let e = EncryptionSchema::parse(
            &doc! {"properties": {name: det(key())}},
            SchemaSource::Local,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot contain '.' or start with '$'"), "{e}");
    }
}

/// The specification's wording where mongocryptd has one.
#[test]
fn spec_wording() {
    let e = send(&doc! {"insert": "people", "documents": [{"ssn": 1.5}]}).unwrap_err();
    assert!(
        e.starts_with("Cannot use deterministic encryption for element of type: double"),
        "{e}"
    );
    let e = send(&doc! {"update": "people", "updates": [{"q": {}, "u": {"$set": {"notes": "x"}}}]})
        .unwrap_err();
    assert!(
        e.starts_with("A non-static (JSONPointer) keyId is not supported"),
        "{e}"
    );
}

/// Raw BSON `{"a": {"a": … {"x": "s"}}}`, `levels` deep, built without
/// recursion (serializing a deep `Document` would recurse).
fn deep_raw(levels: usize) -> Vec<u8> {
    let mut inner = Vec::new();
    doc! {"x": "s"}.to_writer(&mut inner).unwrap();
    let mut out = Vec::with_capacity(inner.len() + 8 * levels);
    for k in (1..=levels).rev() {
        out.extend_from_slice(&((inner.len() + 8 * k) as u32).to_le_bytes());
        out.extend_from_slice(&[0x03, b'a', 0]);
    }
    out.extend_from_slice(&inner);
    out.extend(std::iter::repeat_n(0u8, levels));
    out
}

/// Every walk is bounded: 100,000 levels of nesting are a typed error, on
/// a thread with a 256 KiB stack, for analysis, schema parsing, the
/// marking walkers and reply decryption.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    const LEVELS: usize = 100_000;
    let mut deep = doc! {"x": SECRET};
    for _ in 0..LEVELS {
        deep = doc! {"a": deep};
    }
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let too_deep = |e: String| assert!(e.contains("nesting exceeds"), "{e}");
            let cmd = doc! {"find": "people", "filter": {"name": Bson::Document(deep)}};
            too_deep(send(&cmd).unwrap_err());
            let filter = cmd.get_document("filter").unwrap();
            // Schema parsing.
            let e = EncryptionSchema::parse(filter, SchemaSource::Local)
                .unwrap_err()
                .to_string();
            assert!(e.contains("too deep"), "{e}");
            // The marking walkers.
            too_deep(csfle::analysis::marking_keys(&cmd).unwrap_err().to_string());
            let enc = common::fixed_encrypter();
            too_deep(encrypt_markings(&cmd, enc.keys()).unwrap_err().to_string());
            // Reply decryption, synchronous and through automatic encryption.
            too_deep(enc.decrypt_document(&cmd).unwrap_err().to_string());
            let auto = csfle::AutoEncrypter::new(
                csfle::ClientEncryption::new(
                    csfle::keyvault::MemoryKeyVault::new(),
                    csfle::kms::KmsProviders::new(),
                ),
                &Document::new(),
                csfle::AutoEncryptionOptions::default(),
            )
            .unwrap();
            let reply = futures_util::FutureExt::now_or_never(auto.decrypt_reply(&cmd)).unwrap();
            too_deep(reply.unwrap_err().to_string());
            let raw = deep_raw(LEVELS);
            let raw = bson::RawDocument::from_bytes(&raw).unwrap();
            too_deep(enc.decrypt_raw_document(raw).unwrap_err().to_string());
            // Dropping 100,000 levels recursively would itself overflow.
            std::mem::forget(cmd);
        })
        .unwrap();
    handle.join().unwrap();
}
