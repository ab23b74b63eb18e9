//! Explicit encryption with the key vault on a MongoDB server.
//!
//! ```sh
//! MONGODB_URI=mongodb://127.0.0.1:27017 cargo run --example explicit_mongodb
//! ```
//!
//! Creates a data key in `csfle_example.__keyVault` (with the unique index on
//! `keyAltNames`), stores a document with an encrypted, still queryable SSN in
//! `csfle_example.patients`, finds it by the encrypted value, decrypts it,
//! rotates the master key with a rewrap, and drops the example database.

use bson::{Bson, Document, doc};
use csfle::keyvault::{KeyVault, MongoKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyRef, RewrapOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;

    // Two local master keys: "local:2025" wraps the key first, "local:2026"
    // after rotation. In production these come from a KMS or a secret store.
    let (mut old, mut new) = ([0u8; 96], [0u8; 96]);
    csfle::fill_key_material(&mut old)?;
    csfle::fill_key_material(&mut new)?;
    let kms = KmsProviders::new()
        .with_local(
            ProviderName::parse("local:2025")?,
            LocalMasterKey::new(&old)?,
        )
        .with_local(
            ProviderName::parse("local:2026")?,
            LocalMasterKey::new(&new)?,
        );

    let vault = MongoKeyVault::new(&client, "csfle_example.__keyVault")?;
    vault.ensure_indexes().await?;
    let encryption = ClientEncryption::new(vault, kms);

    let key_id = encryption
        .create_data_key(
            &ProviderName::parse("local:2025")?,
            DataKeyOptions::default().with_key_alt_names(["patients-ssn"]),
        )
        .await?;
    println!("created data key {key_id}");

    let key = KeyRef::AltName("patients-ssn".into());
    let ssn = encryption
        .encrypt(&Bson::from("457-55-5462"), &key, Algorithm::Deterministic)
        .await?;
    let patients = client
        .database("csfle_example")
        .collection::<Document>("patients");
    patients
        .insert_one(doc! {"name": "Jon Doe", "ssn": ssn})
        .await?;

    // Deterministic encryption: query by the ciphertext of the value.
    let query = encryption
        .encrypt(&Bson::from("457-55-5462"), &key, Algorithm::Deterministic)
        .await?;
    let stored = patients
        .find_one(doc! {"ssn": query})
        .await?
        .ok_or("document not found by encrypted SSN")?;
    println!("stored:    {}", csfle::ejson::to_canonical_line(&stored));
    let plain = encryption.decrypt_document(&stored).await?;
    println!("decrypted: {}", csfle::ejson::to_canonical_line(&plain));

    // Rotate the master key: the data key is re-wrapped, ciphertexts stay valid.
    let r = encryption
        .rewrap_many_data_key(
            doc! {},
            Some(RewrapOptions::new(ProviderName::parse("local:2026")?)),
        )
        .await?;
    println!("rewrapped {} of {} keys", r.modified, r.matched);
    let again = encryption.decrypt_document(&stored).await?;
    assert_eq!(again, plain);
    println!("cache: {:?}", encryption.cache_stats());

    client.database("csfle_example").drop().await?;
    Ok(())
}
