//! Queryable Encryption declared on the Rust type: `#[derive(Encrypted)]`
//! with `#[encrypted(queryable = …)]` fields generates the collection's
//! `encryptedFields`; `create_encrypted_collection` creates the collection
//! with it (and its state collections); a typed collection encrypts, queries
//! and decrypts by it.
//!
//! `MONGODB_URI=mongodb://localhost:27017/?replicaSet=rs0 cargo run --example queryable_patients`
//!
//! It prints the `encryptedFields` the type generates, creates the
//! collection, stores three patients, finds one by its encrypted SSN
//! (equality) and two by their encrypted age (range), and shows what the
//! server holds. Queryable Encryption needs a MongoDB 7.0+ replica set or
//! sharded cluster, and the range field 8.0+ (range queries are GA in 8.0).
//! Against an older server, `create_encrypted_collection` stops before
//! creating anything with the specification's error
//! (`ClientError::IncompatibleServer`): the example prints it and exits
//! successfully. The local master key is random, so the data is unreadable
//! after the run: in production it comes from a file or a KMS.

use csfle::bson::{self, Binary, Bson, doc, spec::BinarySubtype};
use csfle::kms::ProviderName;
use csfle::{ClientError, DataKeyOptions, Encrypted, EncryptedClient, mongodb};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

/// The server's code for a command field it does not know (`IDLUnknownField`).
const UNKNOWN_FIELD: i32 = 40415;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encrypted)]
#[serde(rename_all = "camelCase")]
struct Patient {
    #[serde(rename = "_id")]
    id: i32,
    full_name: String,
    // Equality queries; its data key by alternate name. Contention 0: no
    // spreading of equal values (more frequency leakage, cheaper queries).
    #[encrypted(queryable = "equality", key_alt_name = "ssn-key", contention = 0)]
    ssn: String,
    // Range queries over 0..=150 (bsonType "int" from `i32`).
    #[encrypted(
        queryable = "range",
        key_alt_name = "age-key",
        contention = 0,
        min = 0,
        max = 150,
        sparsity = 1,
        trim_factor = 1
    )]
    age: i32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://localhost:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let db_name = "csfle_example_queryable";
    let db = client.database(db_name);
    db.drop().await?;

    // 96 random bytes as the local master key (see the module docs).
    let mut master_key = vec![0u8; 96];
    csfle::fill_key_material(&mut master_key)?;
    let kms_providers =
        doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: master_key }}};

    let encrypted = EncryptedClient::builder(client.clone())
        .key_vault_namespace(format!("{db_name}.__keyVault"))
        .kms_providers(kms_providers)
        .build()
        .await?;
    let encryption = encrypted.client_encryption();
    encryption.key_vault().ensure_indexes().await?;
    let local = ProviderName::parse("local")?;
    for name in ["ssn-key", "age-key"] {
        let options = DataKeyOptions::default().with_key_alt_names([name]);
        encryption.create_data_key(&local, options).await?;
    }

    // The encryptedFields the type generates (keys by alternate name).
    let fields =
        Patient::encrypted_fields()?.ok_or("Patient has no Queryable Encryption fields")?;
    println!("encryptedFields of Patient:");
    println!(
        "{}",
        serde_json::to_string_pretty(&Bson::Document(fields.clone()).into_relaxed_extjson())?
    );

    // The collection, its state collections and the __safeContent__
    // index; the server's version is checked first.
    match encryption
        .create_encrypted_collection(&db, "patients", fields, &local, None)
        .await
    {
        Ok(created) => println!(
            "\ncreated {db_name}.patients with (keys resolved to ids):\n{}",
            serde_json::to_string_pretty(&Bson::Document(created).into_relaxed_extjson())?
        ),
        Err(csfle::Error::Client(ClientError::CreateEncryptedCollection { source, .. }))
            if matches!(
                *source,
                csfle::Error::Client(ClientError::IncompatibleServer { .. })
            ) =>
        {
            println!("\n{source}");
            println!(
                "Queryable Encryption needs MongoDB 7.0 or later (a replica set or sharded cluster), \
                 and this example's range field 8.0 or later: nothing was created. \
                 Run it with MONGODB_URI naming such a deployment."
            );
            db.drop().await?;
            return Ok(());
        }
        // A server that reports a Queryable Encryption wire version but
        // does not know `create`'s `encryptedFields` (IDLUnknownField, as
        // the MongoDB-wire test server of `.ci/run` answers): no QE there
        // either. The data keys it made stay in the example's key vault,
        // which is dropped below.
        Err(csfle::Error::Client(ClientError::CreateEncryptedCollection { source, .. }))
            if source.code() == Some(UNKNOWN_FIELD) =>
        {
            println!("\n{source}");
            println!(
                "This server does not support Queryable Encryption (it does not know \
                 `encryptedFields`): nothing was stored. Run the example with MONGODB_URI \
                 naming a MongoDB 7.0+ (range: 8.0+) replica set or sharded cluster."
            );
            db.drop().await?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }

    // The typed collection checks the type against the server's
    // encryptedFields, then encrypts every command by it.
    let patients = encrypted
        .database(db_name)
        .typed_collection::<Patient>("patients")
        .await?;
    let ann = Patient {
        id: 1,
        full_name: "Ann Smith".into(),
        ssn: "123-45-6789".into(),
        age: 34,
    };
    let bob = Patient {
        id: 2,
        full_name: "Bob Jones".into(),
        ssn: "987-65-4321".into(),
        age: 71,
    };
    let cid = Patient {
        id: 3,
        full_name: "Cid Brown".into(),
        ssn: "555-12-3456".into(),
        age: 45,
    };
    patients.insert_many([&ann, &bob, &cid]).await?;

    // Equality: the SSN goes out as an equality find payload.
    let found = patients
        .find_one(doc! {"ssn": "987-65-4321"})
        .await?
        .ok_or("not found by its encrypted SSN")?;
    assert_eq!(found, bob);
    println!(
        "\nequality find, ssn 987-65-4321: {} ({})",
        found.full_name, found.age
    );

    // Range: both bounds go out as range find payloads.
    let in_range: Vec<Patient> = patients
        .find(doc! {"age": {"$gte": 30, "$lte": 50}})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    assert_eq!(in_range, [ann, cid]);
    println!("range find, 30 <= age <= 50:");
    for p in &in_range {
        println!("  {} ({})", p.full_name, p.age);
    }

    // What the server holds: ciphertext (binary subtype 6) for the
    // encrypted fields, and the tags it keeps for them.
    let stored = client
        .database(db_name)
        .collection::<bson::Document>("patients")
        .find_one(doc! {"_id": 2})
        .await?
        .ok_or("stored document missing")?;
    println!("stored on the server:");
    for (field, value) in &stored {
        let shown = match value {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                format!("<ciphertext, {} bytes>", b.bytes.len())
            }
            Bson::Array(tags) if field == "__safeContent__" => format!("<{} tags>", tags.len()),
            other => other.to_string(),
        };
        println!("  {field}: {shown}");
    }
    for field in ["ssn", "age"] {
        assert!(
            matches!(stored.get(field), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted)
        );
    }
    db.drop().await?;
    Ok(())
}
