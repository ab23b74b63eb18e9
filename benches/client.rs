//! The encrypted client at the plain driver's cost, on the server at
//! `MONGODB_URI`.
//!
//! Documents of 12 fields (`_id` and 9 plain ones: strings, numbers, a
//! boolean), 2 of them deterministic strings encrypted by the schema map;
//! and the same plain fields with 20 deterministic strings. Each operation
//! runs through `EncryptedCollection` and through the driver's own
//! `Collection`, interleaved (alternating which goes first), and the
//! medians are compared:
//!
//! * reads (`find` of 100 documents, `find_one` by an encrypted field):
//!   the plain driver reads the very documents the encrypted collection
//!   stored, ciphertexts as binaries (`find_one` with the ciphertext of
//!   the value as its filter);
//! * writes (`insert_one`, `insert_many` of 1,000): the plain driver
//!   inserts the same documents with their ciphertexts precomputed.
//!
//! The crypto floor is printed first, measured in the same run: the cost
//! of one field's encryption and decryption (with the lanes the client
//! uses: a document's fields decrypted together, a command's values
//! encrypted together), times the fields each operation encrypts or
//! decrypts. An operation's ratio is its encrypted median over the plain
//! one; its floor, the ratio the crypto alone would give; the rest,
//! "non-crypto", is what the client adds around the crypto (analysis,
//! conversions, copies), as a share of the plain driver's time.
//!
//! `MONGODB_URI=mongodb://127.0.0.1:27217/?directConnection=true cargo bench --bench client`
//! (`CSFLE_BENCH_ROUNDS`, default 41: measured rounds per operation).

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, RawDocumentBuf, doc};
use csfle::keyvault::KeyRing;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::{Algorithm, DataKeyOptions, EncryptedClient, ExplicitEncrypter, KeyRef};
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
/// Documents stored before the reads.
const PRELOADED: i64 = 1_000;
const FIND: i64 = 100;
const INSERT_MANY: usize = 1_000;
const WARMUP: usize = 5;

/// The plaintext of encrypted field `field` of document `i` (SSN-sized).
fn secret(field: &str, i: i64) -> String {
    format!("{field}-{i:09}")
}

/// A document type of the benchmark: as the application writes it, and as
/// the server stores it (the encrypted fields as binaries).
trait Variant:
    Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + csfle::CollectionDocument + 'static
{
    type Stored: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static;
    /// The encrypted fields.
    const ENCRYPTED: &'static [&'static str];
    fn new(i: i64) -> Self;
    /// `stored` with `_id` `id`.
    fn stored_as(stored: &Self::Stored, id: i64) -> Self::Stored;
    /// The ciphertext of `e0` in `stored`.
    fn e0(stored: &Self::Stored) -> &Binary;
}

macro_rules! variant {
    ($app:ident, $stored:ident, [$($e:ident),+ $(,)?]) => {
        #[derive(Clone, Debug, Serialize, Deserialize)]
        struct $app {
            #[serde(rename = "_id")]
            id: i64,
            name: String,
            email: String,
            city: String,
            country: String,
            zip: String,
            phone: String,
            age: i32,
            score: i64,
            active: bool,
            $($e: String,)+
        }

        // A plain serde type: the schema map says what is encrypted.
        impl csfle::CollectionDocument for $app {}

        #[derive(Clone, Debug, Serialize, Deserialize)]
        struct $stored {
            #[serde(rename = "_id")]
            id: i64,
            name: String,
            email: String,
            city: String,
            country: String,
            zip: String,
            phone: String,
            age: i32,
            score: i64,
            active: bool,
            $($e: Binary,)+
        }

        impl Variant for $app {
            type Stored = $stored;
            const ENCRYPTED: &'static [&'static str] = &[$(stringify!($e)),+];

            fn new(i: i64) -> Self {
                $app {
                    id: i,
                    name: format!("person {i}"),
                    email: format!("person{i}@example.com"),
                    city: "Springfield".to_owned(),
                    country: "US".to_owned(),
                    zip: format!("{:05}", i % 100_000),
                    phone: format!("555-{:07}", i % 10_000_000),
                    age: (i % 90) as i32,
                    score: i * 7,
                    active: i % 2 == 0,
                    $($e: secret(stringify!($e), i),)+
                }
            }

            fn stored_as(stored: &$stored, id: i64) -> $stored {
                let mut s = stored.clone();
                s.id = id;
                s
            }

            fn e0(stored: &$stored) -> &Binary {
                &stored.e0
            }
        }
    };
}

variant!(Two, TwoStored, [e0, e1]);
variant!(
    Twenty,
    TwentyStored,
    [
        e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17, e18, e19
    ]
);

/// The medians of `plain` and `encrypted` (each runs one operation and
/// returns how long it took), run alternately, each round starting with
/// the other one.
fn interleaved(
    rounds: usize,
    mut plain: impl FnMut(usize) -> Duration,
    mut encrypted: impl FnMut(usize) -> Duration,
) -> (Duration, Duration) {
    for i in 0..WARMUP {
        plain(i);
        encrypted(i);
    }
    let (mut p, mut e) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for r in 0..rounds {
        let i = WARMUP + r;
        if r % 2 == 0 {
            p.push(plain(i));
            e.push(encrypted(i));
        } else {
            e.push(encrypted(i));
            p.push(plain(i));
        }
    }
    (median(p), median(e))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median time of `f` over `n` runs.
fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// One field's encryption and decryption, with the lanes the client uses.
struct Floor {
    /// Per field, encrypting one document's fields together.
    encrypt_one: Duration,
    /// Per field, encrypting 1,000 documents' fields together.
    encrypt_many: Duration,
    /// Per field, decrypting one document's fields together.
    decrypt: Duration,
}

fn floor<T: Variant>() -> Floor {
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms =
        KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[0x4b; 96]).unwrap());
    let key = csfle::create_data_key(&kms, &local, vec!["floor".into()], None).unwrap();
    let id = KeyRef::Id(key.id);
    let enc = ExplicitEncrypter::new(KeyRing::new([key], kms).unwrap());
    let n = T::ENCRYPTED.len();
    let values: Vec<Bson> = (0..INSERT_MANY as i64)
        .flat_map(|i| T::ENCRYPTED.iter().map(move |f| Bson::from(secret(f, i))))
        .collect();
    let jobs: Vec<(&Bson, &KeyRef, Algorithm)> = values
        .iter()
        .map(|v| (v, &id, Algorithm::Deterministic))
        .collect();
    let encrypt_one = median_of(2_001, || {
        std::hint::black_box(enc.encrypt_many(&jobs[..n]));
    }) / n as u32;
    let encrypt_many = median_of(21, || {
        std::hint::black_box(enc.encrypt_many(&jobs));
    }) / jobs.len() as u32;
    // A document of just the ciphertexts: its walk is next to nothing.
    let mut doc = Document::new();
    for (f, r) in T::ENCRYPTED.iter().zip(enc.encrypt_many(&jobs[..n])) {
        doc.insert(*f, Bson::Binary(r.unwrap()));
    }
    let raw = RawDocumentBuf::from_document(&doc).unwrap();
    let decrypt = median_of(2_001, || {
        std::hint::black_box(enc.decrypt_raw_document(&raw).unwrap());
    }) / n as u32;
    Floor {
        encrypt_one,
        encrypt_many,
        decrypt,
    }
}

/// One line of the report.
fn report(op: &str, fields: usize, plain: Duration, encrypted: Duration, floor: Duration) {
    let p = plain.as_secs_f64();
    let ratio = encrypted.as_secs_f64() / p;
    let floor_ratio = (p + floor.as_secs_f64()) / p;
    let rest = (encrypted.as_secs_f64() - p - floor.as_secs_f64()) / p * 100.0;
    println!(
        "{op:<22} {fields:>6} {:>12.1} µs {:>12.1} µs {ratio:>7.3}× {floor_ratio:>7.3}× {rest:>+10.1} %",
        p * 1e6,
        encrypted.as_secs_f64() * 1e6,
    );
}

/// Every operation on documents of type `T` in `db.enc<N>` (encrypted;
/// the plain driver reads it as stored) and `db.plain<N>` (the plain
/// driver's writes).
fn run<T: Variant>(
    rt: &tokio::runtime::Runtime,
    client: &mongodb::Client,
    encrypted_client: &EncryptedClient,
    db: &str,
    floor: &Floor,
    rounds: usize,
) {
    let n = T::ENCRYPTED.len();
    let name = format!("enc{n}");
    let enc = encrypted_client.database(db).collection::<T>(&name);
    let stored_coll = client.database(db).collection::<T::Stored>(&name);
    let plain_writes = client
        .database(db)
        .collection::<T::Stored>(&format!("plain{n}"));
    let stored: Vec<T::Stored> = rt.block_on(async {
        let people: Vec<T> = (0..PRELOADED).map(T::new).collect();
        enc.insert_many(&people).await.unwrap();
        for c in [&name, &format!("plain{n}")] {
            client
                .database(db)
                .collection::<Document>(c)
                .create_index(mongodb::IndexModel::builder().keys(doc! {"e0": 1}).build())
                .await
                .unwrap();
        }
        stored_coll
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    });
    assert_eq!(stored.len(), PRELOADED as usize);
    let next_id = AtomicI64::new(1_000_000);
    let ids = |count: i64| next_id.fetch_add(count, Ordering::Relaxed);

    let filter = doc! {"_id": {"$lt": FIND}};
    let (p, e) = interleaved(
        rounds,
        |_| {
            let t = Instant::now();
            let v: Vec<T::Stored> = rt.block_on(async {
                stored_coll
                    .find(filter.clone())
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap()
            });
            let d = t.elapsed();
            assert_eq!(v.len(), FIND as usize);
            d
        },
        |_| {
            let t = Instant::now();
            let v: Vec<T> = rt.block_on(async {
                enc.find(filter.clone())
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap()
            });
            let d = t.elapsed();
            assert_eq!(v.len(), FIND as usize);
            d
        },
    );
    report(
        &format!("find {FIND}"),
        n,
        p,
        e,
        floor.decrypt * (FIND as u32 * n as u32),
    );

    let (p, e) = interleaved(
        rounds,
        |i| {
            let ct = T::e0(&stored[i % stored.len()]).clone();
            let filter = doc! {"e0": Bson::Binary(ct)};
            let t = Instant::now();
            let found = rt.block_on(stored_coll.find_one(filter).into_future());
            let d = t.elapsed();
            assert!(found.unwrap().is_some());
            d
        },
        |i| {
            let filter = doc! {"e0": secret("e0", (i % stored.len()) as i64)};
            let t = Instant::now();
            let found = rt.block_on(enc.find_one(filter).into_future());
            let d = t.elapsed();
            assert!(found.unwrap().is_some());
            d
        },
    );
    report(
        "find_one by e0",
        n,
        p,
        e,
        floor.encrypt_one + floor.decrypt * n as u32,
    );

    let (p, e) = interleaved(
        rounds,
        |i| {
            let doc = T::stored_as(&stored[i % stored.len()], ids(1));
            let t = Instant::now();
            rt.block_on(plain_writes.insert_one(&doc).into_future())
                .unwrap();
            t.elapsed()
        },
        |_| {
            let doc = T::new(ids(1));
            let t = Instant::now();
            rt.block_on(enc.insert_one(&doc).into_future()).unwrap();
            t.elapsed()
        },
    );
    report("insert_one", n, p, e, floor.encrypt_one * n as u32);

    let (p, e) = interleaved(
        rounds,
        |_| {
            let first = ids(INSERT_MANY as i64);
            let docs: Vec<T::Stored> = (0..INSERT_MANY)
                .map(|k| T::stored_as(&stored[k % stored.len()], first + k as i64))
                .collect();
            let t = Instant::now();
            rt.block_on(plain_writes.insert_many(&docs).into_future())
                .unwrap();
            t.elapsed()
        },
        |_| {
            let first = ids(INSERT_MANY as i64);
            let docs: Vec<T> = (0..INSERT_MANY as i64).map(|k| T::new(first + k)).collect();
            let t = Instant::now();
            rt.block_on(enc.insert_many(&docs).into_future()).unwrap();
            t.elapsed()
        },
    );
    report(
        &format!("insert_many {INSERT_MANY}"),
        n,
        p,
        e,
        floor.encrypt_many * (INSERT_MANY as u32 * n as u32),
    );
}

fn main() {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("SKIPPED: set MONGODB_URI to benchmark the encrypted client against a server");
        return;
    };
    let rounds = std::env::var("CSFLE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(41);

    // The floor first, before any I/O.
    let floors = [floor::<Two>(), floor::<Twenty>()];
    println!("crypto floor (this run; deterministic strings, one key):");
    for (fields, f) in [2, 20].iter().zip(&floors) {
        println!(
            "  {fields:>2} fields: encrypt {:.0} ns/field (one document), {:.0} ns/field (1,000 documents); decrypt {:.0} ns/field",
            f.encrypt_one.as_secs_f64() * 1e9,
            f.encrypt_many.as_secs_f64() * 1e9,
            f.decrypt.as_secs_f64() * 1e9,
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(mongodb::Client::with_uri_str(&uri)).unwrap();
    let db = format!("csfle_bench_client_{}", std::process::id());
    let kms =
        doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: vec![0x4b; 96] }}};
    let encrypted = rt.block_on(async {
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
            .create_data_key(
                &ProviderName::parse("local").unwrap(),
                DataKeyOptions::default(),
            )
            .await
            .unwrap();
        let key = Bson::Array(vec![Bson::Binary(key.to_binary())]);
        let mut map = Document::new();
        for fields in [Two::ENCRYPTED, Twenty::ENCRYPTED] {
            let mut properties = Document::new();
            for f in fields {
                properties.insert(
                    *f,
                    doc! {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": DET}},
                );
            }
            map.insert(
                format!("{db}.enc{}", fields.len()),
                doc! {"bsonType": "object", "properties": properties},
            );
        }
        EncryptedClient::builder(client.clone())
            .key_vault_namespace(format!("{db}.__keyVault"))
            .kms_providers(kms)
            .schema_map(map)
            .schema_map_only(true)
            .build()
            .await
            .unwrap()
    });

    println!(
        "\n{:<22} {:>6} {:>15} {:>15} {:>8} {:>8} {:>12}",
        "operation", "fields", "plain driver", "encrypted", "ratio", "floor", "non-crypto"
    );
    run::<Two>(&rt, &client, &encrypted, &db, &floors[0], rounds);
    run::<Twenty>(&rt, &client, &encrypted, &db, &floors[1], rounds);

    rt.block_on(client.database(&db).drop().into_future())
        .unwrap();
}
