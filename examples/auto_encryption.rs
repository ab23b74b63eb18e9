//! Automatic encryption: a schema map says which fields are encrypted; every
//! command is rewritten in-process (no mongocryptd), replies are decrypted.
//!
//! ```sh
//! cargo run --example auto_encryption                      # offline: shows what would be sent
//! MONGODB_URI=mongodb://127.0.0.1:27017 cargo run --example auto_encryption   # and runs it
//! ```

use bson::{Bson, Document, doc};
use csfle::keyvault::MemoryKeyVault;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKeyOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut master = [0u8; 96];
    csfle::fill_key_material(&mut master)?;
    let local = ProviderName::parse("local")?;
    let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&master)?);
    // An in-memory key vault keeps the example self-contained; use a
    // MongoKeyVault or FileKeyVault in an application.
    let encryption = ClientEncryption::new(MemoryKeyVault::new(), kms);
    let key_id = encryption
        .create_data_key(&local, DataKeyOptions::default())
        .await?;
    let key = Bson::Array(vec![Bson::Binary(key_id.to_binary())]);

    let schema_map = doc! {
        "hospital.patients": {
            "bsonType": "object",
            "encryptMetadata": {"keyId": key},
            "properties": {
                "ssn": {"encrypt": {"bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "medicalRecords": {"encrypt": {"bsonType": "array", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
            },
        },
    };
    let auto = AutoEncrypter::new(encryption, &schema_map, AutoEncryptionOptions::default())?;

    let commands = [
        doc! {"insert": "patients", "documents": [{
            "_id": 1, "name": "Jon Doe", "ssn": "241-01-9094",
            "medicalRecords": [{"weight": 180, "bloodPressure": "120/80"}],
        }]},
        doc! {"find": "patients", "filter": {"ssn": "241-01-9094"}},
    ];
    for cmd in &commands {
        println!("command: {}", csfle::ejson::to_canonical_line(cmd));
        println!(
            "sent:    {}",
            csfle::ejson::to_canonical_line(&auto.encrypt_command("hospital", cmd).await?)
        );
    }
    // Refused, never sent: a range query on an encrypted field.
    let refused = auto
        .encrypt_command(
            "hospital",
            &doc! {"find": "patients", "filter": {"ssn": {"$gt": "2"}}},
        )
        .await
        .unwrap_err();
    println!("refused: {refused}");

    if let Ok(uri) = std::env::var("MONGODB_URI") {
        let db = mongodb::Client::with_uri_str(&uri)
            .await?
            .database("hospital");
        db.collection::<Document>("patients").drop().await?;
        for cmd in &commands {
            let reply = db
                .run_command(auto.encrypt_command("hospital", cmd).await?)
                .await?;
            println!(
                "reply:   {}",
                csfle::ejson::to_canonical_line(&auto.decrypt_reply(&reply).await?)
            );
        }
        db.drop().await?;
    }
    Ok(())
}
