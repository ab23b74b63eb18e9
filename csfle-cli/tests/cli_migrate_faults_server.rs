//! `csfle migrate` under faults, against the server (`MONGODB_URI`, started
//! with test commands for `configureFailPoint`): every run ends, and a rerun
//! finishes the job with every stored value decrypted by libmongocrypt
//! (`CSFLE_ORACLE_PYTHON`, the oracle) to its source.
//!
//! * A non-transient server error (`failCommand`, `errorCode: 2`, once, on
//!   `update`) at several moments of a run, with 1, 2 and 4 workers: the
//!   run exits 1 within a bound, prints its summary and how to resume, and
//!   the rerun does not wait for a lease (its leases were let go).
//! * A transient `update` error ("shutting down") costs the run at most a
//!   second or two more than a clean run of the same job.
//! * Three processes started together on one job, a few rounds: each exits
//!   0, none is refused.
//!
//! Every test is `fault_*` (for `.ci/run` to select) and needs the server
//! and the oracle (`#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]`).
//! They take the [`SERVER`] lock: a fail point is the whole server's, the
//! next `update` of any client takes it.

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::FileKeyVault;
use csfle::kms::ProviderName;
use csfle::{ClientEncryption, DataKeyOptions, KeyId};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

/// The fields the plan encrypts.
const ENCRYPTED: [&str; 3] = ["ssn", "dob", "notes"];

/// Documents per job: a few thousand, in batches of 100, so a run lasts
/// long enough for a fault to land mid-way.
const N: usize = 2_000;

/// The lease of every run: longer than any bound below, so a run or a
/// rerun that ends within its bound did not wait for a lease to run out
/// (and the heartbeat, every third of it, never takes the fail point).
const LEASE_SECONDS: &str = "60";

/// How long a faulted run may take to exit once the fault is armed, and a
/// rerun to finish (generous for a loaded 2-core machine; before the fix
/// a faulted run with several workers never exited).
const EXIT_BOUND: Duration = Duration::from_secs(20);
const RERUN_BOUND: Duration = Duration::from_secs(45);

/// One test at a time in this binary (the fail point is the server's).
static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Document `i`: an `Int64` `_id`, plain `name`, and values of several types
/// in the encrypted fields.
fn document(i: usize) -> Document {
    let notes = match i % 4 {
        0 => Bson::String("n".repeat(i % 200)),
        1 => Bson::Int32(i as i32),
        2 => Bson::Document(doc! {"k": i as i64, "tags": ["a", "b"]}),
        _ => Bson::Array(vec![Bson::Double(i as f64 / 4.0), Bson::Boolean(true)]),
    };
    doc! {
        "_id": i as i64,
        "name": format!("person {i}"),
        "ssn": format!("{:03}-{:02}-{:04}", i % 1000, i % 100, i),
        "dob": bson::DateTime::from_millis(86_400_000 * (i as i64 % 20_000)),
        "notes": notes,
    }
}

fn encrypt_spec(key: KeyId, algorithm: &str, bson_type: Option<&str>) -> Document {
    let mut e = doc! {"keyId": [Bson::Binary(key.to_binary())], "algorithm": algorithm};
    if let Some(t) = bson_type {
        e.insert("bsonType", t);
    }
    doc! {"encrypt": e}
}

/// A collection of [`N`] documents, a file key vault with one local key,
/// and the plan (every document satisfies it) in a schema-map file.
struct Job {
    client: mongodb::Client,
    uri: String,
    db: String,
    dir: tempfile::TempDir,
    kms_file: PathBuf,
    vault_file: PathBuf,
    map_file: PathBuf,
}

impl Job {
    async fn new(uri: &str) -> Job {
        let client = mongodb::Client::with_uri_str(uri).await.unwrap();
        let db = unique_name("csfle_migrate_fault");
        let docs: Vec<Document> = (0..N).map(document).collect();
        client
            .database(&db)
            .collection::<Document>("people")
            .insert_many(docs)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kms_file = write_local_kms_file(dir.path());
        let vault_file = dir.path().join("keys.json");
        let key = ClientEncryption::new(FileKeyVault::new(&vault_file), local_kms())
            .create_data_key(
                &ProviderName::parse("local").unwrap(),
                DataKeyOptions::default(),
            )
            .await
            .unwrap();
        let plan = doc! {"bsonType": "object", "properties": {
            "ssn": encrypt_spec(key, RANDOM, None),
            "dob": encrypt_spec(key, DET, Some("date")),
            "notes": encrypt_spec(key, RANDOM, None),
        }};
        let map_file = dir.path().join("schema-map.json");
        std::fs::write(
            &map_file,
            csfle::ejson::to_canonical_line(&doc! {format!("{db}.people"): plan}),
        )
        .unwrap();
        Job {
            client,
            uri: uri.to_owned(),
            db,
            dir,
            kms_file,
            vault_file,
            map_file,
        }
    }

    /// `csfle migrate` of the job with `workers` workers.
    fn command(&self, workers: usize, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args(["migrate", "--uri", &self.uri])
            .args(["--source", &format!("{}.people", self.db)])
            .arg("--schema-map")
            .arg(&self.map_file)
            .arg("--kms-providers")
            .arg(&self.kms_file)
            .arg("--key-vault")
            .arg(&self.vault_file)
            .args(["--checkpoint-namespace", &format!("{}.ckpt", self.db)])
            .args(["--workers", &workers.to_string()])
            .args(["--batch-size", "100"])
            .args(["--lease-seconds", LEASE_SECONDS])
            .args(extra);
        c
    }

    /// Documents the run's ranges have read so far.
    async fn read_so_far(&self) -> i64 {
        let ranges = stored_by_id(self.client.database(&self.db).collection("ckpt")).await;
        ranges
            .iter()
            .filter(|r| r.get_str("kind") == Ok("range"))
            .map(|r| r.get_i64("read").unwrap_or(0))
            .sum()
    }

    /// Every stored document is its source with the plan's fields
    /// encrypted, and libmongocrypt decrypts each of those values to its
    /// source.
    async fn assert_every_value_decrypts(&self) {
        let stored = stored_by_id(self.client.database(&self.db).collection("people")).await;
        assert_eq!(stored.len(), N, "document count");
        let mut values = Vec::with_capacity(N * ENCRYPTED.len());
        for (i, d) in stored.iter().enumerate() {
            let source = document(i);
            assert_eq!(d.get("_id"), source.get("_id"), "document {i}");
            assert_eq!(d.get("name"), source.get("name"), "document {i}");
            for f in ENCRYPTED {
                let v = d.get(f).unwrap().clone();
                assert!(
                    matches!(&v, Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::Encrypted),
                    "document {i}: {f} left plaintext"
                );
                values.push((v, source.get(f).unwrap().clone()));
            }
        }
        let python = service_env("CSFLE_ORACLE_PYTHON");
        let keys = file_vault_key_documents(&self.vault_file);
        let version = assert_libmongocrypt_decrypts(&python, &keys, &values);
        eprintln!(
            "libmongocrypt {version} decrypted {} stored values",
            values.len()
        );
    }

    async fn drop(&self) {
        self.client.database(&self.db).drop().await.unwrap();
    }
}

/// A `csfle migrate` process, its output going to files (no pipe to fill).
struct Running {
    child: std::process::Child,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
    tag: String,
}

/// How a process ended.
struct Ended {
    /// It was still running at the bound, and was killed.
    killed: bool,
    code: Option<i32>,
    /// From the start, or from when [`Running::end`] was asked to count.
    took: Duration,
    stdout: String,
    stderr: String,
    /// Which process, and how long it ran.
    tag: String,
}

impl Ended {
    fn assert_ended(&self, bound: Duration) {
        assert!(
            !self.killed,
            "{}: still running {bound:?} on (killed); stderr: {}",
            self.tag, self.stderr
        );
    }

    /// The JSON summary line (the last line of standard output).
    fn summary(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("no summary line; stderr: {}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("summary {line:?}: {e}"))
    }
}

fn spawn(mut c: Command, dir: &Path, tag: &str) -> Running {
    let stdout = dir.join(format!("{tag}.out"));
    let stderr = dir.join(format!("{tag}.err"));
    c.stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    Running {
        child: c.spawn().unwrap(),
        started: Instant::now(),
        stdout,
        stderr,
        tag: tag.to_owned(),
    }
}

impl Running {
    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the process to end, at most `bound` after `since` (then it
    /// is killed: a run that does not end is the bug; see [`Ended::killed`]).
    async fn end(mut self, since: Instant, bound: Duration) -> Ended {
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if since.elapsed() > bound {
                self.child.kill().unwrap(); // SIGKILL
                self.child.wait().unwrap();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ended {
            killed: status.is_none(),
            code: status.and_then(|s| s.code()),
            took: since.elapsed(),
            stdout: std::fs::read_to_string(&self.stdout).unwrap(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
            tag: format!("{} (ran {:?})", self.tag, self.started.elapsed()),
        }
    }
}

/// `BadValue`: not transient.
const BAD_VALUE: i32 = 2;
/// `ShutdownInProgress`: transient, and a state change for the driver
/// (the server is marked unknown until its monitor sees it again).
const SHUTDOWN_IN_PROGRESS: i32 = 91;

/// The server fails the next `update` command (any client's) with `code`.
async fn fail_next_update(client: &mongodb::Client, code: i32) {
    client
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["update"], "errorCode": code},
        })
        .await
        .expect("configureFailPoint (the server needs test commands enabled)");
}

async fn fail_point_off(client: &mongodb::Client) {
    client
        .database("admin")
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": "off"})
        .await
        .unwrap();
}

/// For each moment (documents read by the run before the fault is armed;
/// 1: once the first batch is checkpointed): a run with `workers` workers
/// takes one non-transient `update` error, exits 1 within [`EXIT_BOUND`]
/// with its summary and a "resume with:" line; the rerun (with
/// `--verify`) finishes within [`RERUN_BOUND`], well inside the lease, and
/// libmongocrypt decrypts every stored value to its source.
async fn an_update_error_ends_the_run(workers: usize) {
    let _server = SERVER.lock().await;
    let uri = service_env("MONGODB_URI");
    for at in [1, N as i64 / 4, N as i64 / 2] {
        let job = Job::new(&uri).await;
        let tag = format!("{workers} workers, fault after {at} documents");
        let mut run = spawn(
            job.command(workers, &[]),
            job.dir.path(),
            &format!("faulted-{at}"),
        );
        while job.read_so_far().await < at {
            assert!(!run.exited(), "{tag}: the run ended before the fault");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fail_next_update(&job.client, BAD_VALUE).await;
        let armed = Instant::now();
        let ended = run.end(armed, EXIT_BOUND).await;
        fail_point_off(&job.client).await;
        ended.assert_ended(EXIT_BOUND);
        println!(
            "{tag}: exit {:?} {:?} after the fault",
            ended.code, ended.took
        );
        assert_eq!(ended.code, Some(1), "{tag}: {}", ended.stderr);
        assert!(
            ended.stderr.contains("server error during migration"),
            "{tag}: {}",
            ended.stderr
        );
        let resume = ended
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("resume with: "))
            .unwrap_or_else(|| panic!("{tag}: no resume line in {}", ended.stderr));
        assert!(resume.contains("migrate"), "{tag}: {resume}");
        let partial = ended.summary();
        assert_eq!(partial["finished_run"], false, "{tag}: {partial}");
        assert!(
            partial["read"].as_u64().unwrap() < N as u64,
            "{tag}: {partial}"
        );

        let rerun = spawn(
            job.command(workers, &["--verify"]),
            job.dir.path(),
            &format!("rerun-{at}"),
        );
        let ended = rerun.end(Instant::now(), RERUN_BOUND).await;
        ended.assert_ended(RERUN_BOUND);
        assert_eq!(ended.code, Some(0), "{tag}, rerun: {}", ended.stderr);
        let s = ended.summary();
        println!("{tag}, rerun in {:?}: {s}", ended.took);
        assert_eq!(s["resumed"], true, "{tag}: {s}");
        assert_eq!(s["failed"], 0, "{tag}: {s}");
        assert_eq!(s["verify"]["checked"], N as u64, "{tag}: {s}");
        assert_eq!(s["verify"]["mismatched"], 0, "{tag}: {s}");
        job.assert_every_value_decrypts().await;
        job.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_update_error_ends_a_run_of_1_worker() {
    an_update_error_ends_the_run(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_update_error_ends_a_run_of_2_workers() {
    an_update_error_ends_the_run(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_update_error_ends_a_run_of_4_workers() {
    an_update_error_ends_the_run(4).await;
}

/// One transient `update` error (a "shutting down" reply) costs a run about
/// nothing: it is retried after a tenth of a second, and the CLI's polling
/// monitor sees the server again at once (a streaming one waited for its
/// next heartbeat, ~9 s). Compared with a clean run of the same job;
/// libmongocrypt decrypts every stored value afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_transient_update_error_is_ridden_out_at_once() {
    let _server = SERVER.lock().await;
    let uri = service_env("MONGODB_URI");
    let clean = Job::new(&uri).await;
    let start = Instant::now();
    let ended = spawn(clean.command(4, &[]), clean.dir.path(), "clean")
        .end(start, RERUN_BOUND)
        .await;
    ended.assert_ended(RERUN_BOUND);
    assert_eq!(ended.code, Some(0), "clean run: {}", ended.stderr);
    let clean_took = ended.took;
    clean.drop().await;

    let job = Job::new(&uri).await;
    let start = Instant::now();
    let mut run = spawn(job.command(4, &[]), job.dir.path(), "transient");
    while job.read_so_far().await < 1 {
        assert!(!run.exited(), "the run ended before the fault");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fail_next_update(&job.client, SHUTDOWN_IN_PROGRESS).await;
    let ended = run.end(start, RERUN_BOUND).await;
    fail_point_off(&job.client).await;
    ended.assert_ended(RERUN_BOUND);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    let s = ended.summary();
    println!(
        "clean run {clean_took:?}, with one transient error {:?}: {s}",
        ended.took
    );
    assert!(s["transient_retries"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    // A second of cost, and as much again for a loaded machine's noise.
    assert!(
        ended.took < clean_took + Duration::from_secs(2),
        "one transient error cost {:?}",
        ended.took.saturating_sub(clean_took)
    );
    job.assert_every_value_decrypts().await;
    job.drop().await;
}

/// Three processes started together on one job, 2 workers each, three
/// rounds (a race that struck once in three runs): every process exits 0
/// within the bound (none refused by its preflight), every summary says
/// nothing failed, every verification (at least one process verifies)
/// checked every document, and libmongocrypt decrypts every stored value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_three_concurrent_starts_all_finish() {
    let _server = SERVER.lock().await;
    let uri = service_env("MONGODB_URI");
    for round in 0..3 {
        let job = Job::new(&uri).await;
        let start = Instant::now();
        let runs: Vec<Running> = (0..3)
            .map(|p| {
                spawn(
                    job.command(2, &["--verify"]),
                    job.dir.path(),
                    &format!("round-{round}-process-{p}"),
                )
            })
            .collect();
        let mut verified = 0;
        for (p, run) in runs.into_iter().enumerate() {
            let ended = run.end(start, RERUN_BOUND).await;
            ended.assert_ended(RERUN_BOUND);
            assert_eq!(
                ended.code,
                Some(0),
                "round {round}, process {p}: {}",
                ended.stderr
            );
            let s = ended.summary();
            println!("round {round}, process {p} in {:?}: {s}", ended.took);
            assert_eq!(s["failed"], 0, "round {round}, process {p}: {s}");
            if !s["verify"].is_null() {
                verified += 1;
                assert_eq!(s["verify"]["checked"], N as u64, "{s}");
                assert_eq!(s["verify"]["mismatched"], 0, "{s}");
            }
        }
        assert!(verified >= 1, "round {round}: nobody verified");
        job.assert_every_value_decrypts().await;
        job.drop().await;
    }
}
