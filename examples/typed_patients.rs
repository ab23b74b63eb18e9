//! Encryption declared on the Rust type: `#[derive(Encrypted)]` generates
//! the collection's `$jsonSchema`; a typed collection registers it and
//! encrypts and decrypts by it.
//!
//! `MONGODB_URI=mongodb://localhost:27017 cargo run --example typed_patients`
//!
//! It prints the schema the type generates (key names resolved to key
//! ids), stores two patients, finds one by its encrypted SSN, and shows what
//! the server holds. The local master key is random, so the data is
//! unreadable after the run: in production it comes from a file or a KMS.

use csfle::bson::{self, Binary, Bson, doc, spec::BinarySubtype};
use csfle::kms::ProviderName;
use csfle::{DataKeyOptions, Encrypted, EncryptedClient, mongodb};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encrypted)]
#[encrypted(key = "patients")] // the default data key, by alternate name
#[serde(rename_all = "camelCase")]
struct Patient {
    #[serde(rename = "_id")]
    id: i32,
    full_name: String,
    // Deterministic: queryable by equality. bsonType "string" from `String`.
    #[encrypted(deterministic)]
    ssn: String,
    // A nested struct, encrypted whole: bsonType "object".
    #[encrypted(random, key = "records")]
    medical_record: MedicalRecord,
    // Per-document key: the key whose alternate name is in `clinic`.
    #[encrypted(random, key_pointer = "/clinic")]
    notes: String,
    clinic: String,
    // A plain field whose type has encrypted fields of its own.
    address: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[encrypted(random)]
    nickname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encrypted)]
struct MedicalRecord {
    blood_type: String,
    allergies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encrypted)]
#[encrypted(inherit_key)] // its fields use the containing type's key
struct Address {
    city: String,
    #[encrypted(deterministic)]
    street: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://localhost:27017".into());
    let client = mongodb::Client::with_uri_str(&uri).await?;
    let db = "csfle_example_typed";
    client.database(db).drop().await?;

    // 96 random bytes as the local master key (see the module docs).
    let mut master_key = vec![0u8; 96];
    csfle::fill_key_material(&mut master_key)?;
    let kms_providers =
        doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: master_key }}};

    let encrypted = EncryptedClient::builder(client.clone())
        .key_vault_namespace(format!("{db}.__keyVault"))
        .kms_providers(kms_providers)
        .build()
        .await?;
    let encryption = encrypted.client_encryption();
    encryption.key_vault().ensure_indexes().await?;
    for name in ["patients", "records", "north-clinic"] {
        let options = DataKeyOptions::default().with_key_alt_names([name]);
        encryption
            .create_data_key(&ProviderName::parse("local")?, options)
            .await?;
    }

    // The schema the type generates, as automatic encryption uses it.
    let schema = encryption.json_schema::<Patient>().await?;
    println!("$jsonSchema of Patient:");
    println!(
        "{}",
        serde_json::to_string_pretty(&Bson::Document(schema).into_relaxed_extjson())?
    );

    let patients = encrypted
        .database(db)
        .typed_collection::<Patient>("patients")
        .await?;
    let jane = Patient {
        id: 1,
        full_name: "Jane Doe".into(),
        ssn: "123-45-6789".into(),
        medical_record: MedicalRecord {
            blood_type: "AB+".into(),
            allergies: vec!["penicillin".into()],
        },
        notes: "prefers morning appointments".into(),
        clinic: "north-clinic".into(),
        address: Address {
            city: "Springfield".into(),
            street: "742 Evergreen Terrace".into(),
        },
        nickname: None,
    };
    let john = Patient {
        id: 2,
        full_name: "John Roe".into(),
        ssn: "987-65-4321".into(),
        nickname: Some("JR".into()),
        ..jane.clone()
    };
    patients.insert_many([&jane, &john]).await?;

    let found = patients
        .find_one(doc! {"ssn": "987-65-4321"})
        .await?
        .ok_or("not found by its encrypted SSN")?;
    assert_eq!(found, john);
    println!(
        "\nfound by ssn: {} ({})",
        found.full_name, found.medical_record.blood_type
    );

    // What the server holds: ciphertext (binary subtype 6) for every field
    // the type encrypts.
    let stored = client
        .database(db)
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
            Bson::Document(d) => d
                .iter()
                .map(|(k, v)| match v {
                    Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                        format!("{k}: <ciphertext, {} bytes>", b.bytes.len())
                    }
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        println!("  {field}: {shown}");
    }
    for field in ["ssn", "medicalRecord", "notes", "nickname"] {
        assert!(
            matches!(stored.get(field), Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted)
        );
    }
    client.database(db).drop().await?;
    Ok(())
}
