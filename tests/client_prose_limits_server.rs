//! Spec prose test 4: BSON size limits and batch splitting (the Queryable
//! Encryption steps 7–8 do not apply), against the server.

mod common;

use bson::{Document, doc};
use common::*;
use csfle::keyvault::MongoKeyVault;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{AutoEncrypter, AutoEncryptionOptions, ClientEncryption, EncryptedClient};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use std::sync::{Arc, Mutex};

#[tokio::test]
#[ignore = "needs MONGODB_URI and spec data: the specification's limits/ files (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn prose_4_bson_size_limits_and_batch_splitting() {
    let uri = service_env("MONGODB_URI");
    let spec = spec_dir();
    let dir = spec.join(CSE).join("limits");
    let inserts = Arc::new(Mutex::new(0usize));
    let mut options = mongodb::options::ClientOptions::parse(&uri).await.unwrap();
    let sink = Arc::clone(&inserts);
    options.command_event_handler = Some(EventHandler::callback(move |e: CommandEvent| {
        if let CommandEvent::Started(s) = e
            && s.command_name == "insert"
        {
            *sink.lock().unwrap() += 1;
        }
    }));
    let client = mongodb::Client::with_options(options).unwrap();
    let dbname = unique_name("csfle_prose4");

    let vault = MongoKeyVault::new(&client, &format!("{dbname}.datakeys")).unwrap();
    vault
        .collection()
        .insert_one(read_doc(&dir.join("limits-key.json")))
        .await
        .unwrap();
    let kms = KmsProviders::new().with_local(
        ProviderName::parse("local").unwrap(),
        LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
    );
    let map = doc! {format!("{dbname}.coll"): read_doc(&dir.join("limits-schema.json"))};
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, kms),
        &map,
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let coll = EncryptedClient::new(client.clone(), auto)
        .database(&dbname)
        .collection::<Document>("coll");
    let limits_doc = read_doc(&dir.join("limits-doc.json"));
    let with = |id: &str, n: usize, base: Option<&Document>| {
        let mut d = base.cloned().unwrap_or_default();
        d.insert("_id", id);
        d.insert("unencrypted", "a".repeat(n));
        d
    };
    // The driver delivers command events asynchronously: let them settle
    // before reading the count.
    let count = || async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        *inserts.lock().unwrap()
    };
    const MIB2: usize = 2_097_152;
    const MIB16: usize = 16_777_216;

    // 1. Over 2 MiB, under 16 MiB.
    coll.insert_one(&with("over_2mib_under_16mib", MIB2, None))
        .await
        .unwrap();
    // 2. Under 2 MiB before encryption, over it after.
    coll.insert_one(&with(
        "encryption_exceeds_2mib",
        MIB2 - 2000,
        Some(&limits_doc),
    ))
    .await
    .unwrap();
    // 3. Two documents over 2 MiB: split after the first.
    let before = count().await;
    coll.insert_many(&[
        with("over_2mib_1", MIB2, None),
        with("over_2mib_2", MIB2, None),
    ])
    .await
    .unwrap();
    assert_eq!(count().await - before, 2);
    // 4. Two documents that exceed 2 MiB once encrypted: split after the first.
    let before = count().await;
    coll.insert_many(&[
        with("encryption_exceeds_2mib_1", MIB2 - 2000, Some(&limits_doc)),
        with("encryption_exceeds_2mib_2", MIB2 - 2000, Some(&limits_doc)),
    ])
    .await
    .unwrap();
    assert_eq!(count().await - before, 2);
    // 5. Just under 16 MiB.
    coll.insert_one(&with("under_16mib", MIB16 - 2000, None))
        .await
        .unwrap();
    // 6. Over 16 MiB once encrypted: refused.
    let err = coll
        .insert_one(&with(
            "encryption_exceeds_16mib",
            MIB16 - 2000,
            Some(&limits_doc),
        ))
        .await
        .unwrap_err();
    println!(
        "prose 4: over-16MiB document refused: {}",
        err.to_string().chars().take(160).collect::<String>()
    );
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 7);
    // Optional: many small documents stay in one batch.
    let before = count().await;
    let small: Vec<Document> = (0..50).map(|i| doc! {"_id": format!("small{i}")}).collect();
    coll.insert_many(&small).await.unwrap();
    assert_eq!(count().await - before, 1);
    client.database(&dbname).drop().await.unwrap();
}
