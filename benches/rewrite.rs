//! Automatic-encryption rewrite cost per command: analysis alone, and the
//! whole `AutoEncrypter::encrypt_command` (analysis + encryption, keys from a
//! warm cache). Commands: an insert of a 10-field document with 3 encrypted
//! fields, and a find with an encrypted `$in` of 10 values.
//!
//! `cargo bench --bench rewrite`

#[path = "support/mod.rs"]
mod support;

use bson::{Bson, doc};
use criterion::{Criterion, Throughput};
use csfle::analysis::{NamespaceSchema, analyze};
use csfle::keyvault::{KeyVault, MemoryKeyVault};
use csfle::schema::{EncryptionSchema, SchemaSource};
use csfle::{AutoEncrypter, AutoEncryptionOptions, ClientEncryption, KeyId};
use futures_util::FutureExt;
use std::hint::black_box;
use std::time::Duration;

fn main() {
    let key = Bson::Array(vec![Bson::Binary(
        KeyId::from_bytes(support::KEY_ID).to_binary(),
    )]);
    let det = |t: &str| doc! {"encrypt": {"keyId": key.clone(), "bsonType": t, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}};
    let schema_doc = doc! {
        "bsonType": "object",
        "properties": {
            "ssn": det("string"),
            "account": det("long"),
            "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        },
    };
    let schema = EncryptionSchema::parse(&schema_doc, SchemaSource::Local).unwrap();
    let insert = doc! {"insert": "people", "documents": [{
        "_id": 1, "name": "Ada Lovelace", "ssn": "457-55-5462", "age": 36, "account": 1_234_567_i64,
        "city": "London", "notes": "analytical engine", "active": true, "score": 9.5, "tags": ["a", "b"],
    }], "ordered": true};
    let values: Vec<Bson> = (0..10)
        .map(|i| Bson::from(format!("457-55-{i:04}")))
        .collect();
    let find = doc! {"find": "people", "filter": {"ssn": {"$in": values}}};

    let vault = MemoryKeyVault::new();
    vault
        .insert_key(&support::key_document())
        .now_or_never()
        .unwrap()
        .unwrap();
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, support::kms()),
        &doc! {"app.people": schema_doc.clone()},
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    // Warm the key cache; from then on encrypt_command never waits.
    auto.encrypt_command("app", &insert)
        .now_or_never()
        .unwrap()
        .unwrap();

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for (name, cmd) in [
        ("insert_10_fields_3_encrypted", &insert),
        ("find_in_10", &find),
    ] {
        let mut g = c.benchmark_group(format!("rewrite/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("analysis", |b| {
            b.iter(|| {
                analyze(black_box(cmd), "app", &|_| {
                    NamespaceSchema::Known(Some(&schema))
                })
                .unwrap()
            })
        });
        g.bench_function("encrypt_command", |b| {
            b.iter(|| {
                auto.encrypt_command("app", black_box(cmd))
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
        g.finish();
    }
    c.final_summary();
}
