//! The embedded default, end to end: no server, no cloud.
//!
//! A local master key and a file key vault under `target/csfle-quickstart/`
//! (created on first run, reused after), a data key found by its alternate
//! name, a document whose sensitive fields are encrypted — the SSN
//! deterministically (still queryable for equality), the medical record
//! randomly — then decrypted again.
//!
//! `cargo run --example quickstart`

use bson::{Bson, doc};
use csfle::keyvault::{FileKeyVault, KeyRing};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::{Algorithm, ExplicitEncrypter, KeyRef};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("target/csfle-quickstart");
    std::fs::create_dir_all(dir)?;

    // 1. The local master key: 96 random bytes. Keep it out of the database;
    //    whoever holds it can unwrap every data key.
    let master_key_path = dir.join("master-key.bin");
    if !master_key_path.exists() {
        let mut key = zeroize::Zeroizing::new([0u8; 96]);
        csfle::fill_key_material(&mut key[..])?;
        // Readable by this user only (0600), created afresh: never through
        // a file or link someone else put there.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&master_key_path)?, &key[..])?;
    }
    let master_key = zeroize::Zeroizing::new(std::fs::read(&master_key_path)?);
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms = || -> Result<KmsProviders, csfle::CryptoError> {
        Ok(KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&master_key)?))
    };

    // 2. The file key vault and a data key named "quickstart".
    let vault = FileKeyVault::new(dir.join("key-vault.json"));
    if !vault
        .load()?
        .iter()
        .any(|k| k.key_alt_names.iter().any(|n| n == "quickstart"))
    {
        let key = csfle::create_data_key(&kms()?, &local, vec!["quickstart".into()], None)?;
        vault.insert(&key)?;
        println!("created data key {} in {}", key.id, vault.path().display());
    }
    let encrypter = ExplicitEncrypter::new(KeyRing::new(vault.load()?, kms()?)?);
    let key = KeyRef::AltName("quickstart".into());

    // 3. Encrypt the sensitive fields of a document.
    let patient = doc! {
        "name": "Jon Doe",
        "ssn": "241-01-9094",
        "medicalRecords": [{ "weight": 180, "bloodPressure": "120/80" }],
    };
    let mut stored = patient.clone();
    stored.insert(
        "ssn",
        encrypter.encrypt(patient.get("ssn").unwrap(), &key, Algorithm::Deterministic)?,
    );
    stored.insert(
        "medicalRecords",
        encrypter.encrypt(
            patient.get("medicalRecords").unwrap(),
            &key,
            Algorithm::Random,
        )?,
    );
    println!("as stored:  {}", csfle::ejson::to_canonical_line(&stored));

    // Deterministic: the same plaintext gives the same ciphertext, so an
    // equality query on the encrypted field still finds the document.
    let query = encrypter.encrypt(&Bson::from("241-01-9094"), &key, Algorithm::Deterministic)?;
    assert_eq!(stored.get("ssn"), Some(&Bson::Binary(query)));

    // 4. Decrypt every encrypted field.
    let decrypted = encrypter.decrypt_document(&stored)?;
    println!(
        "decrypted:  {}",
        csfle::ejson::to_canonical_line(&decrypted)
    );
    assert_eq!(decrypted, patient);
    println!("ok: round trip matches");
    Ok(())
}
