//! The spec corpus's `auto` entries through automatic encryption: the corpus
//! document (local and AWS entries; the AWS key through the replayed KMS
//! reply) inserted through `AutoEncrypter` with `corpus-schema.json`.
//! Deterministic fields must equal `corpus-encrypted.json` byte for byte,
//! random ones must decrypt to the corpus value, explicit ones pass through.

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{KeyDocument, KeyVault, MemoryKeyVault};
use csfle::{AutoEncrypter, AutoEncryptionOptions, ClientEncryption};

#[tokio::test]
#[ignore = "needs spec data: the specification's corpus (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn corpus_auto_entries() {
    let spec = spec_dir();
    let dir = spec.join(CSE).join("corpus");
    let vault = MemoryKeyVault::new();
    for k in ["local", "aws"] {
        vault
            .insert_key(
                &KeyDocument::from_document(&read_doc(&dir.join(format!("corpus-key-{k}.json"))))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let kms = spec_kms();
    let schema = read_doc(&dir.join("corpus-schema.json"));
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, kms),
        &doc! {"db.coll": schema},
        AutoEncryptionOptions::default(),
    )
    .unwrap();

    // The corpus restricted to what is usable offline.
    let corpus = read_doc(&dir.join("corpus.json"));
    let expected = read_doc(&dir.join("corpus-encrypted.json"));
    let mut doc = Document::new();
    for (k, v) in &corpus {
        let keep = match v {
            Bson::Document(e) => matches!(e.get_str("kms"), Ok("local" | "aws")),
            _ => true,
        };
        if keep {
            doc.insert(k.clone(), v.clone());
        }
    }
    let cmd = doc! {"insert": "coll", "documents": [doc.clone()], "ordered": true};
    let sent = auto.encrypt_command("db", &cmd).await.unwrap();
    let sent_doc = sent.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();

    let (mut det, mut rand, mut passed) = (0, 0, 0);
    for (name, entry) in &doc {
        let Bson::Document(entry) = entry else {
            assert_eq!(sent_doc.get(name), doc.get(name), "{name}");
            continue;
        };
        let got = sent_doc.get_document(name).unwrap().get("value").unwrap();
        let want = expected.get_document(name).unwrap().get("value").unwrap();
        if entry.get_str("method").unwrap() != "auto" {
            assert_eq!(
                got,
                entry.get("value").unwrap(),
                "{name}: explicit entries pass through"
            );
            passed += 1;
        } else if entry.get_str("algo").unwrap() == "det" {
            assert_eq!(got, want, "{name}: deterministic byte-exact");
            det += 1;
        } else {
            let Bson::Binary(b) = got else {
                panic!("{name}: not encrypted")
            };
            assert_eq!(b.bytes[0], 2, "{name}");
            rand += 1;
        }
    }
    // The reply decrypts back to the corpus, every type exact.
    let back = auto.decrypt_reply(&sent_doc).await.unwrap();
    assert_eq!(back, doc);
    println!(
        "corpus auto: {det} deterministic byte-exact, {rand} random, {passed} explicit entries passed through; reply decrypted exactly"
    );
    assert_eq!((det, rand), (24, 72));
}
