//! `EncryptedCollection<T>` against the server: every operation with serde
//! types, cursors across getMore, data stored encrypted, refusals.

mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::MongoKeyVault;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{
    AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKeyOptions, EncryptedClient,
};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Patient {
    #[serde(rename = "_id")]
    id: i32,
    name: String,
    ssn: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    notes: Option<String>,
}

// A plain serde type: the namespace's schema says what is encrypted.
impl csfle::CollectionDocument for Patient {}

fn patient(id: i32, ssn: &str) -> Patient {
    Patient {
        id,
        name: format!("p{id}"),
        ssn: ssn.into(),
        notes: Some(format!("note {id}")),
    }
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn every_operation_through_automatic_encryption() {
    let uri = service_env("MONGODB_URI");
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = unique_name("csfle_coll");

    let kms = KmsProviders::new().with_local(
        ProviderName::parse("local").unwrap(),
        LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
    );
    let ce = ClientEncryption::new(
        MongoKeyVault::new(&client, &format!("{dbname}.__keyVault")).unwrap(),
        kms,
    );
    let key_id = create_local_key(&ce).await;
    let key = Bson::Array(vec![Bson::Binary(key_id.to_binary())]);
    let map = doc! {format!("{dbname}.patients"): {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "notes": {"encrypt": {"keyId": key, "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        },
    }};
    let auto = AutoEncrypter::new(ce, &map, AutoEncryptionOptions::default()).unwrap();
    let enc = EncryptedClient::new(client.clone(), auto);
    let db = enc.database(&dbname);
    let coll = db.collection::<Patient>("patients");

    // insert_one / insert_many
    coll.insert_one(&patient(1, "111")).await.unwrap();
    let more: Vec<Patient> = (2..=5)
        .map(|i| patient(i, if i % 2 == 0 { "222" } else { "333" }))
        .collect();
    assert_eq!(coll.insert_many(&more).await.unwrap().inserted_ids.len(), 4);

    // Stored encrypted.
    let raw = client
        .database(&dbname)
        .collection::<Document>("patients")
        .find_one(doc! {"_id": 1})
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(raw.get("ssn"), Some(Bson::Binary(b)) if b.bytes[0] == 1));
    assert!(matches!(raw.get("notes"), Some(Bson::Binary(b)) if b.bytes[0] == 2));
    assert_eq!(raw.get_str("name").unwrap(), "p1");

    // find with a small batch size: crosses getMore, every batch decrypted.
    let all: Vec<Patient> = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .batch_size(2)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], patient(1, "111"));
    // Driver-style options: skip, limit, projection, sort.
    let page: Vec<Document> = db
        .collection::<Document>("patients")
        .find(doc! {"ssn": {"$in": ["111", "222", "333"]}})
        .sort(doc! {"_id": -1})
        .skip(1)
        .limit(2)
        .projection(doc! {"ssn": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        page,
        [doc! {"_id": 4, "ssn": "222"}, doc! {"_id": 3, "ssn": "333"}]
    );
    assert_eq!(
        coll.count_documents(doc! {"ssn": "222"})
            .limit(1)
            .await
            .unwrap(),
        1
    );
    let evens: Vec<Patient> = coll
        .find(doc! {"ssn": "222"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(evens.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(
        coll.find_one(doc! {"ssn": {"$in": ["111"]}}).await.unwrap(),
        Some(patient(1, "111"))
    );
    assert_eq!(
        coll.count_documents(doc! {"ssn": {"$ne": "222"}})
            .await
            .unwrap(),
        3
    );
    let mut ssns: Vec<String> = coll
        .distinct("ssn", doc! {})
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    ssns.sort();
    assert_eq!(ssns, ["111", "222", "333"]);

    // updates
    let r = coll
        .update_one(doc! {"ssn": "111"}, doc! {"$set": {"notes": "updated"}})
        .await
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    assert_eq!(
        coll.find_one(doc! {"_id": 1})
            .await
            .unwrap()
            .unwrap()
            .notes
            .as_deref(),
        Some("updated")
    );
    let r = coll
        .update_many(doc! {"ssn": "222"}, doc! {"$set": {"name": "even"}})
        .await
        .unwrap();
    assert_eq!(r.modified_count, 2);
    let r = coll
        .replace_one(doc! {"ssn": "333"}, &patient(3, "999"))
        .await
        .unwrap();
    assert_eq!(r.matched_count, 1);
    assert_eq!(
        coll.find_one(doc! {"ssn": "999"})
            .await
            .unwrap()
            .unwrap()
            .id,
        3
    );
    let r = coll
        .replace_one(doc! {"ssn": "777"}, &patient(7, "777"))
        .upsert(true)
        .await
        .unwrap();
    assert_eq!(r.upserted_id, Some(Bson::Int32(7)));

    // find-and-modify family returns the document before, decrypted
    let before = coll
        .find_one_and_update(doc! {"ssn": "999"}, doc! {"$set": {"ssn": "998"}})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.ssn, "999");
    let after = coll
        .find_one_and_update(doc! {"ssn": "998"}, doc! {"$set": {"notes": "after"}})
        .return_document(mongodb::options::ReturnDocument::After)
        .projection(doc! {"_id": 1, "ssn": 1, "name": 1, "notes": 1})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.notes.as_deref(), Some("after"));
    // An upsert through update_one: the new document's encrypted field is stored encrypted.
    let r = coll
        .update_one(doc! {"_id": 42}, doc! {"$set": {"ssn": "420", "name": "u"}})
        .upsert(true)
        .await
        .unwrap();
    assert_eq!(r.upserted_id, Some(Bson::Int32(42)));
    assert_eq!(
        coll.find_one_and_delete(doc! {"ssn": "420"})
            .await
            .unwrap()
            .unwrap()
            .id,
        42
    );
    assert_eq!(
        coll.find_one(doc! {"ssn": "998"})
            .await
            .unwrap()
            .unwrap()
            .id,
        3
    );
    let before = coll
        .find_one_and_replace(doc! {"ssn": "998"}, &patient(3, "997"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.ssn, "998");
    let gone = coll
        .find_one_and_delete(doc! {"ssn": "997"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.id, 3);

    // aggregate with an encrypted $match
    let docs: Vec<Document> = coll
        .aggregate(vec![
            doc! {"$match": {"ssn": "222"}},
            doc! {"$sort": {"_id": -1}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        docs.iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect::<Vec<_>>(),
        [4, 2]
    );
    assert_eq!(docs[0].get_str("ssn").unwrap(), "222");

    // deletes
    assert_eq!(
        coll.delete_one(doc! {"ssn": "222"})
            .await
            .unwrap()
            .deleted_count,
        1
    );
    assert_eq!(
        coll.delete_many(doc! {"ssn": {"$in": ["222", "333", "777"]}})
            .await
            .unwrap()
            .deleted_count,
        3
    );
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);

    // run_command goes through the same path
    let reply = db
        .run_command(doc! {"find": "patients", "filter": {"ssn": "111"}})
        .await
        .unwrap();
    assert_eq!(
        reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .len(),
        1
    );

    // Refused before reaching the server.
    assert!(coll.find(doc! {"notes": "x"}).await.is_err());
    assert!(
        coll.update_one(doc! {}, doc! {"$inc": {"ssn": 1}})
            .await
            .is_err()
    );
    assert!(
        coll.update_one(doc! {}, doc! {"ssn": "x"}).await.is_err(),
        "replacement passed to update_one"
    );
    client.database(&dbname).drop().await.unwrap();
}

/// The builder, as an application coming from the `mongodb` crate writes
/// it: the key vault collection on the same deployment, the KMS providers
/// document, a schema map; then a duplicate `_id` keeps the server's code.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn builder_and_server_error_codes() {
    let uri = service_env("MONGODB_URI");
    let client = csfle::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let dbname = unique_name("csfle_builder");
    let kms = local_kms_document();
    // A key first, through a client with no schema map.
    let keys = EncryptedClient::builder(client.clone())
        .key_vault_namespace(format!("{dbname}.__keyVault"))
        .kms_providers(kms.clone())
        .schema_map_only(true)
        .build()
        .await
        .unwrap();
    let key_id = keys
        .auto_encrypter()
        .client_encryption()
        .create_data_key(
            &ProviderName::parse("local").unwrap(),
            DataKeyOptions::default(),
        )
        .await
        .unwrap();
    let key = Bson::Array(vec![Bson::Binary(key_id.to_binary())]);
    let map = doc! {format!("{dbname}.patients"): {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key, "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
        },
    }};
    let enc = EncryptedClient::builder(client.clone())
        .key_vault_namespace(format!("{dbname}.__keyVault"))
        .kms_providers(kms)
        .schema_map(map)
        .build()
        .await
        .unwrap();
    let coll = enc.database(&dbname).collection::<Patient>("patients");
    coll.insert_one(&patient(1, "111")).await.unwrap();
    let found = coll.find_one(doc! {"ssn": "111"}).await.unwrap();
    assert_eq!(found, Some(patient(1, "111")));
    let stored = client
        .database(&dbname)
        .collection::<Document>("patients")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(stored.get("ssn"), Some(Bson::Binary(b)) if b.subtype == bson::spec::BinarySubtype::Encrypted)
    );
    let e = coll.insert_one(&patient(1, "111")).await.unwrap_err();
    assert_eq!(e.code(), Some(11000), "{e}");
    client.database(&dbname).drop().await.unwrap();
}

/// What the builder refuses before touching a server.
#[tokio::test]
async fn builder_refusals() {
    // Creating a client does not connect.
    let client = csfle::mongodb::Client::with_uri_str("mongodb://127.0.0.1:9")
        .await
        .unwrap();
    let e = EncryptedClient::builder(client.clone())
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("KMS providers"), "{e}");
    let kms = local_kms_document();
    let e = EncryptedClient::builder(client.clone())
        .kms_providers(kms.clone())
        .schema_map(doc! {"app.people": {"properties": {"_id": {"encrypt": {}}}}})
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            csfle::Error::Client(csfle::ClientError::InvalidSchema { ref namespace, .. })
                if namespace == "app.people"
        ),
        "{e}"
    );
    let e = EncryptedClient::builder(client)
        .key_vault_namespace("no-dot")
        .kms_providers(kms)
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-dot"), "{e}");
}
