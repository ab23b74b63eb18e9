//! Spec prose tests 5 (views are prohibited) and 6 (corpus), end to end
//! against the server with automatic encryption.
//!
//! Prose 6 is adapted: the test server refuses `encrypt` in collection
//! validators, so the corpus schema is given as a local schema map (the
//! spec's step 9 variant); entries of cloud KMS providers are left out
//! (their keys are not recoverable offline); the AWS key is unwrapped through
//! the recorded KMS reply.

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{KeyVault, MongoKeyVault};
use csfle::{
    Algorithm, AutoEncrypter, AutoEncryptionOptions, ClientEncryption, EncryptedClient, KeyId,
    KeyRef, MongoSchemaFetcher,
};
use std::sync::Arc;

async fn test_db(client: &mongodb::Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    client.database(&name).drop().await.unwrap();
    name
}

/// Prose test 5: inserting into a view through automatic encryption fails.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn prose_5_views_are_prohibited() {
    let uri = service_env("MONGODB_URI");
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = test_db(&client, "csfle_prose5").await;
    let db = client.database(&dbname);
    db.run_command(doc! {"create": "coll"}).await.unwrap();
    db.run_command(doc! {"create": "view", "viewOn": "coll", "pipeline": []})
        .await
        .unwrap();
    let vault = MongoKeyVault::new(&client, &format!("{dbname}.datakeys")).unwrap();
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, spec_kms()),
        &doc! {},
        AutoEncryptionOptions::default(),
    )
    .unwrap()
    .with_remote_schemas(Arc::new(MongoSchemaFetcher::new(client.clone())));
    let enc = EncryptedClient::new(client.clone(), auto);
    let err = enc
        .database(&dbname)
        .collection::<Document>("view")
        .insert_one(&doc! {"a": 1})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot auto encrypt a view"),
        "{err}"
    );
    db.drop().await.unwrap();
}

/// Prose test 6 (adapted): the corpus.
#[tokio::test]
#[ignore = "needs MONGODB_URI and spec data: the specification's corpus (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn prose_6_corpus() {
    let uri = service_env("MONGODB_URI");
    let spec = spec_dir();
    let dir = spec.join(CSE).join("corpus");
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = test_db(&client, "csfle_prose6").await;

    let vault = MongoKeyVault::new(&client, &format!("{dbname}.datakeys")).unwrap();
    for k in ["local", "aws"] {
        vault
            .collection()
            .insert_one(read_doc(&dir.join(format!("corpus-key-{k}.json"))))
            .await
            .unwrap();
    }
    vault.ensure_indexes().await.unwrap();
    let client_encryption = ClientEncryption::new(vault.clone(), spec_kms());
    let map = doc! {format!("{dbname}.coll"): read_doc(&dir.join("corpus-schema.json"))};
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, spec_kms()),
        &map,
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let client_encrypted = EncryptedClient::new(client.clone(), auto);

    let full = read_doc(&dir.join("corpus.json"));
    let corpus: Document = full
        .iter()
        .filter(|(_, v)| !matches!(v, Bson::Document(e) if !matches!(e.get_str("kms"), Ok("local" | "aws"))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    // Step 5: corpus_copied, explicit entries encrypted explicitly.
    let mut copied = Document::new();
    for (name, v) in &corpus {
        let Bson::Document(e) = v else {
            copied.insert(name.clone(), v.clone());
            continue;
        };
        if e.get_str("method").unwrap() == "auto" {
            copied.insert(name.clone(), v.clone());
            continue;
        }
        let kms_name = e.get_str("kms").unwrap();
        let key = match e.get_str("identifier").unwrap() {
            "id" => {
                let b = format!(
                    "{}{}==",
                    kms_name.to_uppercase(),
                    "A".repeat(22 - kms_name.len())
                );
                KeyRef::Id(KeyId::from_bytes(b64(&b).try_into().unwrap()))
            }
            _ => KeyRef::AltName(kms_name.into()),
        };
        let algo = if e.get_str("algo").unwrap() == "det" {
            Algorithm::Deterministic
        } else {
            Algorithm::Random
        };
        let mut out = e.clone();
        match client_encryption
            .encrypt(e.get("value").unwrap(), &key, algo)
            .await
        {
            Ok(ct) if e.get_bool("allowed").unwrap() => {
                out.insert("value", ct);
            }
            Err(_) if !e.get_bool("allowed").unwrap() => {}
            other => panic!(
                "{name}: allowed={} but {other:?}",
                e.get_bool("allowed").unwrap()
            ),
        }
        copied.insert(name.clone(), out);
    }

    // Step 6–7: insert and find through automatic encryption.
    let coll = client_encrypted
        .database(&dbname)
        .collection::<Document>("coll");
    coll.insert_one(&copied).await.unwrap();
    let decrypted = coll
        .find_one(doc! {"_id": "client_side_encryption_corpus"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decrypted, corpus, "corpus_decrypted exactly matches corpus");

    // Step 8: the stored document against corpus-encrypted.json.
    let expected = read_doc(&dir.join("corpus-encrypted.json"));
    let actual = client
        .database(&dbname)
        .collection::<Document>("coll")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let (mut det, mut rand, mut refused) = (0, 0, 0);
    for (name, e) in &expected {
        let Bson::Document(e) = e else { continue };
        if !corpus.contains_key(name) {
            continue;
        }
        let want = e.get("value").unwrap();
        let got = actual.get_document(name).unwrap().get("value").unwrap();
        if !e.get_bool("allowed").unwrap() {
            assert_eq!(
                got,
                corpus.get_document(name).unwrap().get("value").unwrap(),
                "{name}"
            );
            refused += 1;
            continue;
        }
        if e.get_str("algo").unwrap() == "det" {
            assert_eq!(got, want, "{name}");
            det += 1;
        } else {
            assert_ne!(got, want, "{name}");
            rand += 1;
        }
        let (Bson::Binary(g), Bson::Binary(w)) = (got, want) else {
            panic!("{name}")
        };
        assert_eq!(
            client_encryption.decrypt(g).await.unwrap(),
            client_encryption.decrypt(w).await.unwrap(),
            "{name}"
        );
    }
    println!(
        "prose 6 (adapted): {det} det equal, {rand} random differ and decrypt equal, {refused} refused stay plaintext"
    );
    assert_eq!((det, rand, refused), (72 + 17, 144 + 17, 56));
    client.database(&dbname).drop().await.unwrap();
}
