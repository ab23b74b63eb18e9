//! The schema model against the specification's data: every schema in the
//! legacy tests parses, or fails with the error that test expects; the
//! corpus schema describes exactly the corpus `auto` fields.

mod common;

use bson::{Bson, Document};
use common::*;
use csfle::schema::{EncryptKey, EncryptionSchema, FieldInfo, SchemaSource};
use csfle::{Algorithm, KeyId};

/// The errors a test expects that come from the schema itself.
const SCHEMA_ERRORS: [&str; 4] = [
    "Invalid schema",
    "'encrypt' cannot be used in conjunction with",
    "only allowed with a remote schema",
    "Invalid schema containing the 'encrypt' keyword",
];

#[test]
#[ignore = "needs spec data: the specification's legacy tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn legacy_test_schemas() {
    let spec = spec_dir();
    let (mut ok, mut refused) = (0, 0);
    for entry in std::fs::read_dir(spec.join(CSE).join("tests/legacy")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        // Queryable Encryption's tests: not FLE1 schemas.
        if file.starts_with("fle2v2-") {
            continue;
        }
        let t = read_doc(&path);
        let remote = t.get_document("json_schema").ok().cloned();
        for test in t.get_array("tests").unwrap() {
            let test = test.as_document().unwrap();
            let name = format!("{file}: {}", test.get_str("description").unwrap());
            let expected = test
                .get_array("operations")
                .unwrap()
                .iter()
                .filter_map(|op| {
                    op.as_document()?
                        .get_document("result")
                        .ok()?
                        .get_str("errorContains")
                        .ok()
                })
                .find(|e| SCHEMA_ERRORS.iter().any(|s| e.contains(s)))
                .map(str::to_owned);
            let local = test
                .get_document("clientOptions")
                .and_then(|c| c.get_document("autoEncryptOpts"))
                .and_then(|a| a.get_document("schemaMap"))
                .ok();
            let mut schemas: Vec<(Document, SchemaSource)> = Vec::new();
            match local {
                Some(map) => {
                    for (_, s) in map {
                        schemas.push((s.as_document().unwrap().clone(), SchemaSource::Local));
                    }
                }
                None => schemas.extend(remote.clone().map(|s| (s, SchemaSource::Remote))),
            }
            for (schema, source) in schemas {
                match (EncryptionSchema::parse(&schema, source), &expected) {
                    (Ok(_), None) => ok += 1,
                    (Err(e), Some(want)) => {
                        assert!(
                            e.to_string().contains(want.as_str()),
                            "{name}: got '{e}', want '{want}'"
                        );
                        refused += 1;
                    }
                    (Ok(_), Some(want)) => panic!("{name}: parsed, but the test expects '{want}'"),
                    (Err(e), None) => panic!("{name}: refused a valid schema: {e}"),
                }
            }
        }
    }
    println!("legacy schemas: {ok} parsed, {refused} refused with the expected error");
    assert_eq!((ok, refused), (76, 6));
}

#[test]
#[ignore = "needs spec data: the specification's corpus (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn corpus_schema_matches_the_corpus() {
    let spec = spec_dir();
    let dir = spec.join(CSE).join("corpus");
    let schema = EncryptionSchema::parse(
        &read_doc(&dir.join("corpus-schema.json")),
        SchemaSource::Remote,
    )
    .unwrap();
    let corpus = read_doc(&dir.join("corpus.json"));
    let id_of = |kms: &str| {
        // LOCALAAAAAAAAAAAAAAAAA==, AWSAAAAAAAAAAAAAAAAAAA==, …
        let b = format!("{}{}==", kms.to_uppercase(), "A".repeat(22 - kms.len()));
        KeyId::from_bytes(b64(&b).try_into().unwrap())
    };
    let (mut encrypted, mut plain) = (0, 0);
    for (name, entry) in &corpus {
        let Bson::Document(entry) = entry else {
            continue;
        };
        let field = format!("{name}.value");
        let info = schema.field(&field);
        if entry.get_str("method").unwrap() == "auto" {
            let FieldInfo::Encrypted(spec) = info else {
                panic!("{field}: {info:?}")
            };
            let algo = match entry.get_str("algo").unwrap() {
                "det" => Algorithm::Deterministic,
                _ => Algorithm::Random,
            };
            assert_eq!(spec.algorithm, algo, "{field}");
            let kms = entry.get_str("kms").unwrap();
            let key = match entry.get_str("identifier").unwrap() {
                "id" => EncryptKey::Id(id_of(kms)),
                _ => EncryptKey::AltNamePointer(format!("/altname_{kms}")),
            };
            assert_eq!(spec.key, key, "{field}");
            assert_eq!(schema.field(name), FieldInfo::ContainsEncrypted);
            encrypted += 1;
        } else {
            assert_eq!(info, FieldInfo::Plain, "{field}");
            plain += 1;
        }
    }
    println!(
        "corpus schema: {encrypted} auto fields encrypted as listed, {plain} explicit fields plain"
    );
    assert_eq!(encrypted, 240);
}

#[test]
#[ignore = "needs spec data: the specification's limits and external schemas (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn other_spec_schemas_parse() {
    let spec = spec_dir();
    for f in ["limits/limits-schema.json", "external/external-schema.json"] {
        let s = read_doc(&spec.join(CSE).join(f));
        let schema = EncryptionSchema::parse(&s, SchemaSource::Local).unwrap();
        assert!(schema.has_encrypted_fields(), "{f}");
    }
}
