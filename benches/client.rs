//! The encrypted client against the plain driver, on the server at
//! `MONGODB_URI`: the same operations on the same documents (a name, an
//! SSN queried by equality, notes), through `EncryptedCollection` (SSN
//! deterministic, notes random; keys cached) and through the driver's own
//! `Collection` on plaintext. The difference is what automatic encryption
//! costs per operation: analysis, encryption, the typed-operation
//! plumbing and decryption; the ratio is that cost next to the server
//! round trip.
//!
//! `MONGODB_URI=mongodb://127.0.0.1:27217/?directConnection=true cargo bench --bench client`

use bson::{Binary, Bson, Document, doc, spec::BinarySubtype};
use criterion::Criterion;
use csfle::kms::ProviderName;
use csfle::{DataKeyOptions, EncryptedClient};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Person {
    #[serde(rename = "_id")]
    id: i64,
    name: String,
    ssn: String,
    notes: String,
}

// A plain serde type: the namespace's schema says what is encrypted.
impl csfle::CollectionDocument for Person {}

fn person(i: i64) -> Person {
    Person {
        id: i,
        name: format!("person {i}"),
        ssn: format!("{:03}-{:02}-{:04}", i % 1000, i % 100, i),
        notes: format!("notes about person {i}, forty-ish chars"),
    }
}

const PRELOADED: i64 = 10_000;

fn main() {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("SKIPPED: set MONGODB_URI to benchmark the encrypted client against a server");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(mongodb::Client::with_uri_str(&uri)).unwrap();
    let db = format!("csfle_bench_client_{}", std::process::id());
    let kms =
        doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: vec![0x4b; 96] }}};
    let (encrypted, plain) = rt.block_on(async {
        let setup = EncryptedClient::builder(client.clone())
            .key_vault_namespace(format!("{db}.__keyVault"))
            .kms_providers(kms.clone())
            .schema_map_only(true)
            .build()
            .await
            .unwrap();
        let key = setup
            .auto_encrypter()
            .client_encryption()
            .create_data_key(&ProviderName::parse("local").unwrap(), DataKeyOptions::default())
            .await
            .unwrap();
        let key = Bson::Array(vec![Bson::Binary(key.to_binary())]);
        let map = doc! {format!("{db}.encrypted"): {"bsonType": "object", "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "notes": {"encrypt": {"keyId": key, "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        }}};
        let enc = EncryptedClient::builder(client.clone())
            .key_vault_namespace(format!("{db}.__keyVault"))
            .kms_providers(kms)
            .schema_map(map)
            .schema_map_only(true)
            .build()
            .await
            .unwrap()
            .database(&db)
            .collection::<Person>("encrypted");
        let plain = client.database(&db).collection::<Person>("plain");
        let people: Vec<Person> = (0..PRELOADED).map(person).collect();
        enc.insert_many(&people).await.unwrap();
        plain.insert_many(&people).await.unwrap();
        for c in ["encrypted", "plain"] {
            client
                .database(&db)
                .collection::<Document>(c)
                .create_index(mongodb::IndexModel::builder().keys(doc! {"ssn": 1}).build())
                .await
                .unwrap();
        }
        (enc, plain)
    });

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    let next_id = AtomicI64::new(1_000_000);

    let mut g = c.benchmark_group("insert_one");
    g.bench_function("encrypted", |b| {
        b.iter(|| {
            let p = person(next_id.fetch_add(1, Ordering::Relaxed));
            rt.block_on(encrypted.insert_one(&p).into_future()).unwrap()
        })
    });
    g.bench_function("plain_driver", |b| {
        b.iter(|| {
            let p = person(next_id.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async { plain.insert_one(&p).await }).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("find_one_by_ssn");
    let i = AtomicI64::new(0);
    g.bench_function("encrypted", |b| {
        b.iter(|| {
            let ssn = person(i.fetch_add(1, Ordering::Relaxed) % PRELOADED).ssn;
            rt.block_on(encrypted.find_one(doc! {"ssn": ssn}).into_future())
                .unwrap()
                .unwrap()
        })
    });
    g.bench_function("plain_driver", |b| {
        b.iter(|| {
            let ssn = person(i.fetch_add(1, Ordering::Relaxed) % PRELOADED).ssn;
            rt.block_on(async { plain.find_one(doc! {"ssn": ssn}).await })
                .unwrap()
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("find_100");
    g.bench_function("encrypted", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Vec<Person> = encrypted
                    .find(doc! {"_id": {"$lt": 100}})
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                assert_eq!(v.len(), 100);
            })
        })
    });
    g.bench_function("plain_driver", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Vec<Person> = plain
                    .find(doc! {"_id": {"$lt": 100}})
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                assert_eq!(v.len(), 100);
            })
        })
    });
    g.finish();

    c.final_summary();
    rt.block_on(client.database(&db).drop().into_future())
        .unwrap();
}
