//! A typed application on an encrypted collection, as the `mongodb` crate's
//! users write one: a MongoDB key vault, a data key, a schema, CRUD by an
//! encrypted field, a transaction.
//!
//! `MONGODB_URI=mongodb://localhost:27017 cargo run --example encrypted_app`
//! (a replica set, for the transaction). The local master key here is
//! random, so the data is unreadable after the run: in production it comes
//! from a file or a KMS (`aws`, `azure`, `gcp`).

use csfle::bson::{self, Binary, Bson, doc, spec::BinarySubtype};
use csfle::kms::ProviderName;
use csfle::{DataKeyOptions, EncryptedClient, mongodb};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Patient {
    #[serde(rename = "_id")]
    id: i32,
    name: String,
    ssn: String,
    record: MedicalRecord,
}

// A plain serde type: the namespace's schema says what is encrypted.
impl csfle::CollectionDocument for Patient {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MedicalRecord {
    blood_type: String,
    weight_kg: i32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://localhost:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let db = "csfle_example_app";
    client.database(db).drop().await?;

    // 96 random bytes as the local master key (see the module docs).
    let mut master_key = vec![0u8; 96];
    csfle::fill_key_material(&mut master_key)?;
    let kms_providers =
        doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: master_key }}};
    let key_vault = format!("{db}.__keyVault");

    // A data key, through a client with no schema yet.
    let setup = EncryptedClient::builder(client.clone())
        .key_vault_namespace(&key_vault)
        .kms_providers(kms_providers.clone())
        .schema_map_only(true)
        .build()
        .await?;
    let encryption = setup.client_encryption();
    encryption.key_vault().ensure_indexes().await?;
    let key_id = encryption
        .create_data_key(
            &ProviderName::parse("local")?,
            DataKeyOptions::default().with_key_alt_names(["patients"]),
        )
        .await?;

    // The schema: ssn queryable (deterministic), the record random.
    let key = Bson::Array(vec![Bson::Binary(key_id.to_binary())]);
    let schema_map = doc! {format!("{db}.patients"): {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string",
                "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "record": {"encrypt": {"keyId": key, "bsonType": "object",
                "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        },
    }};
    let encrypted = EncryptedClient::builder(client.clone())
        .key_vault_namespace(&key_vault)
        .kms_providers(kms_providers)
        .schema_map(schema_map)
        .build()
        .await?;
    let patients = encrypted.database(db).collection::<Patient>("patients");

    // Create, read by an encrypted field, update, delete.
    let ada = Patient {
        id: 1,
        name: "Ada".into(),
        ssn: "457-55-5462".into(),
        record: MedicalRecord {
            blood_type: "AB+".into(),
            weight_kg: 61,
        },
    };
    patients.insert_one(&ada).await?;
    let found = patients.find_one(doc! {"ssn": "457-55-5462"}).await?;
    assert_eq!(found.as_ref(), Some(&ada));
    patients
        .update_one(
            doc! {"ssn": "457-55-5462"},
            doc! {"$set": {"name": "Ada L."}},
        )
        .await?;

    // What the server holds: ciphertext only.
    let stored = client
        .database(db)
        .collection::<bson::Document>("patients")
        .find_one(doc! {})
        .await?
        .ok_or("the document is missing")?;
    println!("as stored:  {stored}");

    // A transaction: both inserts or neither.
    let mut session = encrypted.start_session().await?;
    encrypted
        .with_transaction(&mut session, async |s| {
            for (id, ssn) in [(2, "111-22-3333"), (3, "444-55-6666")] {
                let p = Patient {
                    id,
                    name: format!("patient {id}"),
                    ssn: ssn.into(),
                    record: MedicalRecord {
                        blood_type: "O-".into(),
                        weight_kg: 70,
                    },
                };
                patients.insert_one(&p).session(s).await?;
            }
            Ok(())
        })
        .await?;
    let all: Vec<Patient> = patients
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    println!("decrypted: {all:?}");
    assert_eq!(all.len(), 3);

    patients.delete_one(doc! {"ssn": "111-22-3333"}).await?;
    assert_eq!(patients.count_documents(doc! {}).await?, 2);
    client.database(db).drop().await?;
    println!("ok: stored encrypted, queried by ciphertext, committed in a transaction");
    Ok(())
}
