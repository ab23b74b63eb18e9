//! `csfle export` and `csfle import` against the server at `MONGODB_URI`,
//! with 100,000 documents (`CSFLE_TOOLS_DOCS`) of 3 encrypted fields:
//!
//! * export (decrypting) vs the same export with `--keep-encrypted` (the
//!   same query, cursor and JSON writer, no decryption);
//! * import (encrypting per the schema) vs a plain `insert_many` of the
//!   same documents through the driver, in batches of 1000.
//!
//! Both sides run the release `csfle` binary or the driver in this process
//! against the same server, in the same run.
//!
//! `MONGODB_URI=mongodb://127.0.0.1:27217/?directConnection=true cargo bench -p csfle-cli --bench tools`

use bson::{Bson, Document, doc};
use criterion::{Criterion, SamplingMode, Throughput};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{ClientEncryption, DataKeyOptions};
use std::future::IntoFuture;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn document(i: i64) -> Document {
    doc! {
        "_id": i,
        "name": format!("person {i}"),
        "ssn": format!("{:03}-{:02}-{:04}", i % 1000, i % 100, i % 10_000),
        "dob": bson::DateTime::from_millis(86_400_000 * (i % 20_000)),
        "notes": format!("notes about person {i}, forty-ish chars"),
        "city": "London",
        "score": i as f64 / 7.0,
    }
}

fn main() {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        eprintln!("SKIPPED: set MONGODB_URI to benchmark export and import against a server");
        return;
    };
    let n: i64 = std::env::var("CSFLE_TOOLS_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(mongodb::Client::with_uri_str(&uri)).unwrap();
    let db = format!("csfle_bench_tools_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let master = [0x4b; 96];
    let kms_file = dir.path().join("kms.json");
    std::fs::write(
        &kms_file,
        format!(
            r#"{{"local": {{"key": "{}"}}}}"#,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, master)
        ),
    )
    .unwrap();
    let vault_file = dir.path().join("keys.json");
    let enc = ClientEncryption::new(
        csfle::keyvault::FileKeyVault::new(&vault_file),
        KmsProviders::new().with_local(
            ProviderName::parse("local").unwrap(),
            LocalMasterKey::new(&master).unwrap(),
        ),
    );
    let key = rt
        .block_on(enc.create_data_key(
            &ProviderName::parse("local").unwrap(),
            DataKeyOptions::default(),
        ))
        .unwrap();
    let spec = |alg: &str| {
        doc! {"encrypt": {"keyId": [Bson::Binary(key.to_binary())], "algorithm": format!("AEAD_AES_256_CBC_HMAC_SHA_512-{alg}")}}
    };
    let mut ssn = spec("Deterministic");
    ssn.get_document_mut("encrypt")
        .unwrap()
        .insert("bsonType", "string");
    let schema = doc! {"bsonType": "object", "properties": {
        "ssn": ssn, "dob": spec("Random"), "notes": spec("Random"),
    }};
    let map_file = dir.path().join("map.json");
    let map = doc! {format!("{db}.people"): schema.clone(), format!("{db}.imported"): schema};
    std::fs::write(&map_file, csfle::ejson::to_canonical_line(&map)).unwrap();
    let docs: Vec<Document> = (0..n).map(document).collect();
    let input = dir.path().join("people.jsonl");
    let text: String = docs
        .iter()
        .map(|d| csfle::ejson::to_canonical_line(d) + "\n")
        .collect();
    std::fs::write(&input, text).unwrap();

    let csfle = |command: &str, coll: &str, extra: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_csfle"))
            .args([command, "--uri", &uri, "--ns", &format!("{db}.{coll}")])
            .arg("--schema-map")
            .arg(&map_file)
            .arg("--kms-providers")
            .arg(&kms_file)
            .arg("--key-vault")
            .arg(&vault_file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        serde_json::from_str(err.lines().last().unwrap()).unwrap()
    };
    // The collection to export: imported once, not measured.
    let input_arg = input.display().to_string();
    let s = csfle("import", "people", &["--file", &input_arg]);
    assert_eq!(s["imported"], n);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group(format!("tools/{n}_docs_3_encrypted_fields"));
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(n as u64));
    for (name, extra) in [
        ("export_decrypting", &[][..]),
        ("export_keep_encrypted", &["--keep-encrypted"][..]),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let s = csfle("export", "people", extra);
                    total += t.elapsed();
                    assert_eq!(s["exported"], n);
                }
                total
            })
        });
    }
    let imported = client.database(&db).collection::<Document>("imported");
    g.bench_function("import_encrypting", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(imported.drop().into_future()).unwrap();
                let t = Instant::now();
                let s = csfle("import", "imported", &["--file", &input_arg]);
                total += t.elapsed();
                assert_eq!(s["imported"], n);
            }
            total
        })
    });
    g.bench_function("plain_insert_many", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(imported.drop().into_future()).unwrap();
                let t = Instant::now();
                rt.block_on(async {
                    for chunk in docs.chunks(1000) {
                        imported.insert_many(chunk.to_vec()).await.unwrap();
                    }
                });
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    c.final_summary();
    rt.block_on(async { client.database(&db).drop().await })
        .unwrap();
}
