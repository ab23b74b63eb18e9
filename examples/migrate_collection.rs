//! Encrypting an existing collection, then rotating it to a new data key.
//!
//! ```sh
//! MONGODB_URI=mongodb://127.0.0.1:27017 cargo run --example migrate_collection
//! ```
//!
//! Fills `csfle_migrate_example.customers` with plaintext documents, encrypts
//! `ssn` (deterministic, still queryable) and `notes` (random) in place with
//! data key A, then re-encrypts both under data key B (the rotation a key
//! compromise calls for: a rewrap only changes the master key), verifies
//! every document, shows one decrypted, and drops the example database. The
//! same thing from the command line is `csfle migrate` (see docs/migrate.md).

use bson::{Bson, Document, doc};
use csfle::analysis::Namespace;
use csfle::keyvault::{KeyVault, MongoKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::migrate::{Migration, MigrationOptions, Plan};
use csfle::{ClientEncryption, DataKeyOptions, KeyId};
use std::sync::Arc;

/// The plan: which fields end up encrypted, with which key and algorithm.
fn plan(key: KeyId) -> Result<Plan, csfle::migrate::Error> {
    let key = Bson::Array(vec![Bson::Binary(key.to_binary())]);
    Plan::from_schema(
        &doc! {"bsonType": "object", "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string",
                                "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "notes": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        }},
        false,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let db = client.database("csfle_migrate_example");
    db.drop().await?;

    // A plaintext collection, as an application has it before encryption.
    let customers = db.collection::<Document>("customers");
    let docs: Vec<Document> = (0..5_000)
        .map(|i| doc! {"_id": i, "name": format!("customer {i}"), "ssn": format!("555-{:02}-{:04}", i % 100, i), "notes": format!("notes {i}")})
        .collect();
    customers.insert_many(docs).await?;

    let mut master = [0u8; 96];
    csfle::fill_key_material(&mut master)?;
    let kms = KmsProviders::new()
        .with_local(ProviderName::parse("local")?, LocalMasterKey::new(&master)?);
    let vault = MongoKeyVault::new(&client, "csfle_migrate_example.__keyVault")?;
    vault.ensure_indexes().await?;
    let encryption = Arc::new(ClientEncryption::new(vault, kms));
    let local = ProviderName::parse("local")?;
    let key_a = encryption
        .create_data_key(&local, DataKeyOptions::default())
        .await?;
    let key_b = encryption
        .create_data_key(&local, DataKeyOptions::default())
        .await?;

    let source = Namespace::parse("csfle_migrate_example.customers")?;
    let options = MigrationOptions::default()
        .with_workers(4)
        .with_batch_size(500)
        .with_verify(true);
    for (step, key) in [("encrypt with key A", key_a), ("rotate to key B", key_b)] {
        let summary = Migration::new(
            client.clone(),
            source.clone(),
            plan(key)?,
            encryption.clone(),
            options.clone(),
        )
        .run()
        .await?;
        println!("{step}: {}", summary.to_json());
    }

    let stored = customers
        .find_one(doc! {"_id": 42})
        .await?
        .unwrap_or_default();
    println!("stored:    {}", csfle::ejson::to_canonical_line(&stored));
    println!("decrypted: {}", encryption.decrypt_document(&stored).await?);
    db.drop().await?;
    Ok(())
}
