//! Migration throughput against the server at `MONGODB_URI`, as pairs
//! timed interleaved (`CSFLE_BENCH_ROUNDS` rounds, default 10) and
//! reported as medians and their ratio. The collection: 100,000 documents
//! of 7 fields (`CSFLE_MIGRATE_DOCS`: BENCHMARKS.md reports 100,000; a
//! quick check can run fewer), 3 of them encrypted.
//!
//! * `reencrypt_vs_plain_rewrite`: an in-place re-encryption (key A ↔ key
//!   B, each round re-encrypts every document) against a plain
//!   read-and-rewrite of the same collection with the same workers, batch
//!   size and unordered bulk `update`s, without any encryption: what
//!   encryption (and the conditional writes) cost on top of moving the
//!   documents (target ≤ 1.3×).
//! * `migrate_processes`: the `csfle migrate` binary on the same
//!   documents, three processes with 2 workers each sharing the job
//!   through leases against one process with 4 workers (file key vault).
//!
//! `MONGODB_URI=mongodb://127.0.0.1:27217/?directConnection=true cargo bench -p csfle-cli --features bench --bench migrate [-- reencrypt|migrate_processes]`

mod common;

use bson::{Bson, Document, doc};
use common::{Pair, rounds, selected, timed};
use csfle::__private::range_filter;
use csfle::analysis::Namespace;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::migrate::{Migration, MigrationOptions, Plan};
use csfle::{ClientEncryption, DataKeyOptions, KeyId};
use futures_util::TryStreamExt;
use std::cell::Cell;
use std::sync::Arc;

const WORKERS: usize = 4;
const BATCH: usize = 1000;

fn plan(key: KeyId) -> Plan {
    let spec =
        |alg: &str| doc! {"encrypt": {"keyId": [Bson::Binary(key.to_binary())], "algorithm": alg}};
    let det = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
    let random = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
    let mut ssn = spec(det);
    ssn.get_document_mut("encrypt")
        .unwrap()
        .insert("bsonType", "string");
    let schema = doc! {"bsonType": "object", "properties": {
        "ssn": ssn, "dob": spec(random), "notes": spec(random),
    }};
    Plan::from_schema(&schema, false).unwrap()
}

/// Reads every document and writes its three fields back (no encryption):
/// the same cursor, batching, bulk writes and workers as the migration.
async fn plain_rewrite(coll: &mongodb::Collection<Document>, n: i64, round: i64) -> u64 {
    let mut tasks = Vec::new();
    for w in 0..WORKERS as i64 {
        let coll = coll.clone();
        let (min, max) = (n * w / WORKERS as i64, n * (w + 1) / WORKERS as i64);
        tasks.push(tokio::spawn(async move {
            let filter = range_filter(&Bson::Int64(min), &Bson::Int64(max), None);
            let mut cursor = coll
                .find(filter)
                .sort(doc! {"_id": 1})
                .batch_size(BATCH as u32)
                .await
                .unwrap();
            let mut updates = Vec::with_capacity(BATCH);
            let mut written = 0;
            loop {
                let next = cursor.try_next().await.unwrap();
                let end = next.is_none();
                if let Some(d) = next {
                    updates.push(doc! {
                        "q": {"_id": d.get("_id").unwrap().clone()},
                        "u": {"$set": {
                            "ssn": d.get("ssn").unwrap().clone(),
                            "dob": d.get("dob").unwrap().clone(),
                            "notes": d.get("notes").unwrap().clone(),
                            "round": round,
                        }},
                    });
                }
                if updates.len() == BATCH || (end && !updates.is_empty()) {
                    let reply = coll
                        .client()
                        .database(coll.namespace().db.as_str())
                        .run_command(doc! {"update": coll.name(), "updates": std::mem::take(&mut updates), "ordered": false})
                        .await
                        .unwrap();
                    written += reply.get_i32("n").map(i64::from).unwrap_or_default() as u64;
                }
                if end {
                    break;
                }
            }
            written
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

fn main() {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("SKIPPED: set MONGODB_URI to benchmark migrations against a server");
        return;
    };
    let n: usize = std::env::var("CSFLE_MIGRATE_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(mongodb::Client::with_uri_str(&uri)).unwrap();
    let db = format!("csfle_bench_migrate_{}", std::process::id());
    let coll = client.database(&db).collection::<Document>("people");
    let kms = KmsProviders::new().with_local(
        ProviderName::parse("local").unwrap(),
        LocalMasterKey::new(&[0x4b; 96]).unwrap(),
    );
    // A file key vault, so the `csfle` processes of the second group use
    // the same keys.
    let dir = tempfile::tempdir().unwrap();
    let kms_file = dir.path().join("kms.json");
    std::fs::write(
        &kms_file,
        format!(
            r#"{{"local": {{"key": "{}"}}}}"#,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x4b; 96])
        ),
    )
    .unwrap();
    let vault_file = dir.path().join("keys.json");
    let enc = Arc::new(ClientEncryption::new(
        csfle::keyvault::FileKeyVault::new(&vault_file),
        kms,
    ));
    let local = ProviderName::parse("local").unwrap();
    let (key_a, key_b) = rt.block_on(async {
        let docs: Vec<Document> = (0..n as i64)
            .map(|i| {
                doc! {
                    "_id": i,
                    "name": format!("person {i}"),
                    "ssn": format!("{:03}-{:02}-{:04}", i % 1000, i % 100, i % 10_000),
                    "dob": bson::DateTime::from_millis(86_400_000 * (i % 20_000)),
                    "notes": format!("notes about person {i}, forty-ish chars"),
                    "city": "London",
                    "score": i as f64 / 7.0,
                }
            })
            .collect();
        for chunk in docs.chunks(10_000) {
            coll.insert_many(chunk.to_vec()).await.unwrap();
        }
        let a = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        let b = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        (a, b)
    });
    let migrate = |key: KeyId| {
        let migration = Migration::new(
            client.clone(),
            Namespace::parse(&format!("{db}.people")).unwrap(),
            plan(key),
            enc.clone(),
            MigrationOptions::default()
                .with_workers(WORKERS)
                .with_batch_size(BATCH),
        );
        rt.block_on(migration.run()).unwrap()
    };
    // Start encrypted under key A (not measured).
    let first = migrate(key_a);
    assert_eq!(first.changed, n as u64);
    eprintln!(
        "initial encryption of {n} documents: {:.0} docs/s",
        first.docs_per_second()
    );

    let rounds = rounds();
    // Which key the documents are under now: each re-encryption moves
    // them to the other one.
    let under_a = Cell::new(true);
    let next_key = || {
        let to_b = under_a.get();
        under_a.set(!to_b);
        to_b
    };
    if selected("reencrypt_vs_plain_rewrite") {
        let mut round = 0;
        Pair {
            name: "reencrypt_vs_plain_rewrite",
            docs: n as u64,
            rounds,
            target: Some(1.3),
        }
        .run(
            "re-encryption in place, key A <-> key B",
            || {
                let to = if next_key() { key_b } else { key_a };
                let (t, summary) = timed(|| migrate(to));
                assert_eq!(summary.changed, n as u64, "every document re-encrypted");
                t
            },
            "plain read-and-rewrite of the same 3 fields",
            || {
                round += 1;
                let (t, written) = timed(|| rt.block_on(plain_rewrite(&coll, n as i64, round)));
                assert_eq!(written, n as u64);
                t
            },
        );
    }

    // The command line: one process or three sharing the job.
    let map_for = |key: KeyId, name: &str| {
        let path = dir.path().join(name);
        let map = doc! {format!("{db}.people"): plan(key).schema().clone()};
        std::fs::write(&path, csfle::ejson::to_canonical_line(&map)).unwrap();
        path
    };
    let (map_a, map_b) = (map_for(key_a, "a.json"), map_for(key_b, "b.json"));
    // Returns the documents changed over all processes.
    let cli = |map: &std::path::Path, processes: usize, workers: usize| -> u64 {
        let children: Vec<_> = (0..processes)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_csfle"))
                    .args([
                        "migrate",
                        "--uri",
                        &uri,
                        "--source",
                        &format!("{db}.people"),
                    ])
                    .arg("--schema-map")
                    .arg(map)
                    .arg("--kms-providers")
                    .arg(&kms_file)
                    .arg("--key-vault")
                    .arg(&vault_file)
                    .args(["--workers", &workers.to_string()])
                    .args(["--batch-size", &BATCH.to_string()])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success(), "csfle migrate failed");
                let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                s["changed"].as_u64().unwrap()
            })
            .sum()
    };
    let cli_run = |processes: usize, workers: usize| {
        let map = if next_key() { &map_b } else { &map_a };
        let (t, changed) = timed(|| cli(map, processes, workers));
        assert!(changed >= n as u64, "every document re-encrypted");
        t
    };
    if selected("migrate_processes") {
        Pair {
            name: "migrate_processes",
            docs: n as u64,
            rounds,
            target: None,
        }
        .run(
            "three `csfle migrate --workers 2` processes",
            || cli_run(3, 2),
            "one `csfle migrate --workers 4` process",
            || cli_run(1, 4),
        );
    }
    rt.block_on(async { client.database(&db).drop().await })
        .unwrap();
}
