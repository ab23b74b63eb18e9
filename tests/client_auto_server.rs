//! Automatic encryption end to end against the server: commands encrypted by
//! `AutoEncrypter`, sent with `run_command`, replies decrypted. Uses the spec
//! legacy test find.json: its key vault data, schema and data, and checks
//! the decrypted results and the stored (encrypted) collection contents.

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{KeyVault, MongoKeyVault};
use csfle::{AutoEncrypter, AutoEncryptionOptions, ClientEncryption};

#[tokio::test]
#[ignore = "needs MONGODB_URI and spec data: the specification's legacy find.json (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn find_json_end_to_end() {
    let uri = service_env("MONGODB_URI");
    let spec = spec_dir();
    let t = read_doc(&spec.join(CSE).join("tests/legacy/find.json"));
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = unique_name("csfle_auto");
    let db = client.database(&dbname);

    // The key vault (the test's key documents) and the encrypted data as stored.
    let vault = MongoKeyVault::new(&client, &format!("{dbname}.datakeys")).unwrap();
    for k in t.get_array("key_vault_data").unwrap() {
        vault
            .collection()
            .insert_one(k.as_document().unwrap().clone())
            .await
            .unwrap();
    }
    vault.ensure_indexes().await.unwrap();
    let data: Vec<Document> = t
        .get_array("data")
        .unwrap()
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect();
    db.collection::<Document>("default")
        .insert_many(data.clone())
        .await
        .unwrap();

    let kms = spec_kms();
    let map = doc! {format!("{dbname}.default"): t.get_document("json_schema").unwrap().clone()};
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, kms),
        &map,
        AutoEncryptionOptions::default(),
    )
    .unwrap();

    let run = |cmd: Document| {
        let (auto, db) = (&auto, &db);
        async move {
            let sent = auto.encrypt_command(db.name(), &cmd).await?;
            let reply = db.run_command(sent).await?;
            auto.decrypt_reply(&reply).await
        }
    };
    let first_batch = |r: &Document| -> Vec<Bson> {
        r.get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .clone()
    };

    // Equality on the deterministic field: the server matches the ciphertext.
    let r = run(doc! {"find": "default", "filter": {"encrypted_string": "string0"}})
        .await
        .unwrap();
    let expected = t.get_array("tests").unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("operations")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .get_array("result")
        .unwrap()
        .clone();
    assert_eq!(first_batch(&r), expected);
    let r = run(doc! {"find": "default", "filter": {"encrypted_string": {"$in": ["string0", "string1"]}}, "sort": {"_id": 1}}).await.unwrap();
    assert_eq!(first_batch(&r).len(), 2);
    assert_eq!(
        first_batch(&r)[1]
            .as_document()
            .unwrap()
            .get_str("random")
            .unwrap(),
        "abc"
    );

    // Insert through automatic encryption: stored encrypted, read back plain.
    run(doc! {"insert": "default", "documents": [{"_id": 9, "encrypted_string": "string9", "random": "xyz"}]}).await.unwrap();
    let raw = db
        .collection::<Document>("default")
        .find_one(doc! {"_id": 9})
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(raw.get("encrypted_string"), Some(Bson::Binary(b)) if b.bytes[0] == 1));
    assert!(matches!(raw.get("random"), Some(Bson::Binary(b)) if b.bytes[0] == 2));
    let r = run(doc! {"find": "default", "filter": {"encrypted_string": "string9"}})
        .await
        .unwrap();
    assert_eq!(
        first_batch(&r),
        vec![Bson::Document(
            doc! {"_id": 9, "encrypted_string": "string9", "random": "xyz"}
        )]
    );
    let r = run(doc! {"count": "default", "query": {"encrypted_string": {"$ne": "string9"}}})
        .await
        .unwrap();
    assert_eq!(
        r.get_i32("n")
            .map(i64::from)
            .or_else(|_| r.get_i64("n"))
            .unwrap(),
        2
    );

    // Refused before anything reaches the server.
    let e = run(doc! {"find": "default", "filter": {"random": "abc"}})
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Cannot query on fields encrypted with the randomized encryption")
    );
    db.drop().await.unwrap();
}
