//! `csfle import` and `csfle export` against the server at `MONGODB_URI`,
//! with 100,000 documents of 7 fields, 3 of them encrypted (the count is
//! `CSFLE_TOOLS_DOCS`: BENCHMARKS.md reports 100,000; a quick check can
//! run fewer), as the pairs the performance targets name, each timed
//! interleaved (`CSFLE_BENCH_ROUNDS` rounds, default 10) and reported as
//! medians and their ratio:
//!
//! * `import`: `csfle import` of a JSON lines file (encrypting per the
//!   schema) against the driver's `insert_many` of the same documents,
//!   plain, in batches of 1000 (target ≤ 1.3×), and against the same
//!   `insert_many` of the documents as the import stores them (their
//!   ciphertexts made beforehand: the server's share of the import);
//! * `export`: `csfle export` decrypting against the same export with
//!   `--keep-encrypted` (the same query, cursor and JSON writer, no
//!   decryption; target ≤ 1.15×).
//!
//! The `csfle` side runs the release binary as a new process each time
//! (start-up, connection and key unwrap included); the driver side runs in
//! this process. Both against the same server, in the same run.
//!
//! `MONGODB_URI=mongodb://127.0.0.1:27217/?directConnection=true cargo bench -p csfle-cli --bench tools [-- import|export]`

mod common;

use bson::{Bson, Document, RawDocumentBuf, doc};
use common::{Pair, rounds, selected, timed};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{ClientEncryption, DataKeyOptions};
use futures_util::TryStreamExt;
use std::future::IntoFuture;
use std::process::{Command, Stdio};

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

/// How long the driver's `insert_many` of `docs` into `coll` takes, in
/// batches of 1000.
fn insert_in_batches<T: serde::Serialize + Send + Sync>(
    rt: &tokio::runtime::Runtime,
    coll: &mongodb::Collection<T>,
    docs: &[T],
) -> std::time::Duration {
    let (t, ()) = timed(|| {
        rt.block_on(async {
            for chunk in docs.chunks(1000) {
                coll.insert_many(chunk).await.unwrap();
            }
        })
    });
    t
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

    let rounds = rounds();
    if selected("export") {
        let export = |extra: &[&str]| {
            let (t, s) = timed(|| csfle("export", "people", extra));
            assert_eq!(s["exported"], n);
            t
        };
        Pair {
            name: "export",
            docs: n as u64,
            rounds,
            target: Some(1.15),
        }
        .run(
            "csfle export (decrypting)",
            || export(&[][..]),
            "csfle export --keep-encrypted",
            || export(&["--keep-encrypted"][..]),
        );
    }
    if selected("import") {
        let imported = client.database(&db).collection::<Document>("imported");
        let empty = || rt.block_on(imported.drop().into_future()).unwrap();
        // The same documents as the import stores them (the collection
        // imported above, in `_id` order): what the server is sent, its
        // ciphertexts made beforehand.
        let stored: Vec<RawDocumentBuf> = rt.block_on(async {
            let cursor = client
                .database(&db)
                .collection::<RawDocumentBuf>("people")
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await
                .unwrap();
            cursor.try_collect().await.unwrap()
        });
        assert_eq!(stored.len() as i64, n);
        let imported_raw = client
            .database(&db)
            .collection::<RawDocumentBuf>("imported");
        let mut csfle_import = || {
            empty();
            let (t, s) = timed(|| csfle("import", "imported", &["--file", &input_arg]));
            assert_eq!(s["imported"], n);
            t
        };
        let mut plain = || {
            empty();
            insert_in_batches(&rt, &imported, &docs)
        };
        let mut encrypted = || {
            empty();
            insert_in_batches(&rt, &imported_raw, &stored)
        };
        Pair {
            name: "import",
            docs: n as u64,
            rounds,
            target: Some(1.3),
        }
        .run_series(&mut [
            (
                "csfle import (encrypting, JSON lines file)",
                &mut csfle_import,
            ),
            ("driver insert_many (plain, batches of 1000)", &mut plain),
            (
                "driver insert_many (as stored: ciphertexts made beforehand)",
                &mut encrypted,
            ),
        ]);
    }
    rt.block_on(async { client.database(&db).drop().await })
        .unwrap();
}
