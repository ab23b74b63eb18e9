//! The instruction-count harness: the hot operations, each a named scenario
//! run a fixed number of times, for callgrind (`.ci/instructions` runs every
//! scenario under valgrind and compares the instructions per iteration with
//! `benches/instructions-baseline.txt`; BENCHMARKS.md, "Instruction counts").
//!
//! Each scenario builds its keys, values and documents first, then hands one
//! operation to [`icount_measured`], which runs it `iterations` times. Under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*icount_measured*'` only that call is counted, so the
//! figure is the operation's and not the set-up's.
//!
//! ```sh
//! cargo bench --features bench --bench instructions -- list
//! cargo bench --features bench --bench instructions -- run decrypt_20b 10000
//! cargo bench --features bench --bench instructions   # every scenario once, natively
//! ```
//!
//! Nothing here reads `../shared`: the 1,500-field document is built as the
//! specification describes it, so a fresh clone runs every scenario.

#[path = "support/mod.rs"]
mod support;

use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use csfle::__private::{decrypt_value, encrypt_value};
use csfle::analysis::{Analysis, NamespaceSchema, analyze};
use csfle::keyvault::{Clock, KeyRing, KeyVault, MemoryKeyVault};
use csfle::schema::{EncryptionSchema, SchemaSource};
use csfle::{
    Algorithm, AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKey, ExplicitEncrypter,
    Fle1Blob, KeyId, KeyRef,
};
use futures_util::FutureExt;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

/// One scenario: its name (the baseline's key), how many times the
/// operation runs (about 1e8 instructions in all, so a run under callgrind
/// takes seconds), and the function that sets it up and runs it.
struct Scenario {
    name: &'static str,
    iterations: u64,
    run: fn(u64),
}

/// Every scenario, in the order `.ci/instructions` prints them. Changing an
/// iteration count changes little (the figure is per iteration) but the
/// amortized set-up inside the measured call, such as the first allocation
/// of a scratch buffer: update the baseline with it.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "decrypt_20b",
        iterations: 10_000,
        run: decrypt_20b,
    },
    Scenario {
        name: "encrypt_20b",
        iterations: 5_000,
        run: encrypt_20b,
    },
    Scenario {
        name: "decrypt_1kib",
        iterations: 2_000,
        run: decrypt_1kib,
    },
    Scenario {
        name: "encrypt_1kib",
        iterations: 1_000,
        run: encrypt_1kib,
    },
    Scenario {
        name: "decrypt_doc_1500",
        iterations: 15,
        run: decrypt_doc_1500,
    },
    Scenario {
        name: "decrypt_reply_100",
        iterations: 40,
        run: decrypt_reply_100,
    },
    Scenario {
        name: "analyse_insert",
        iterations: 3_000,
        run: analyse_insert,
    },
    Scenario {
        name: "rewrite_insert",
        iterations: 1_000,
        run: rewrite_insert,
    },
    Scenario {
        name: "rewrite_find_one",
        iterations: 2_000,
        run: rewrite_find_one,
    },
];

/// The one function callgrind counts: `op`, `iterations` times.
///
/// Its name is unique in the binary (`--toggle-collect` matches
/// `*icount_measured*` against every function entered, and a second
/// matching function entered inside this one would toggle the counting off
/// again), it is never inlined (an inlined copy has no entry to toggle on),
/// and the operation is a `dyn` call to a closure named after its scenario.
#[inline(never)]
fn icount_measured(op: &mut dyn FnMut(), iterations: u64) {
    for _ in 0..iterations {
        op();
    }
}

/// The fixture's data key, its schedules and HMAC states built once.
fn data_key() -> DataKey {
    DataKey::new(KeyId::from_bytes(support::KEY_ID), &support::DATA_KEY)
        .expect("the fixture's data key is 96 bytes")
}

/// The fixture's key, as automatic encryption and the key ring name it.
fn key_ref() -> KeyRef {
    KeyRef::Id(KeyId::from_bytes(support::KEY_ID))
}

/// An explicit encrypter over the fixture's key. The ring's clock stands
/// still, so the unwrapped key never expires during a slow valgrind run
/// (an expiry would add a key unwrap to the count).
fn ring_encrypter() -> ExplicitEncrypter<KeyRing> {
    let ring = KeyRing::new([support::key_document()], support::kms())
        .expect("a ring of one key")
        .with_clock(Clock::manual());
    ExplicitEncrypter::new(ring)
}

/// The per-value core of every encrypting path (`ciphertext::encrypt_value`
/// through `__private`): BSON value to FLE1 blob, deterministic, key known.
fn encrypt_string(len: usize, iterations: u64) {
    let key = data_key();
    let s = "x".repeat(len);
    let mut scratch = Vec::new();
    let mut op = || {
        let blob = encrypt_value(
            &key,
            Algorithm::Deterministic,
            black_box(RawBsonRef::String(&s)),
            &mut scratch,
        )
        .expect("encrypt");
        black_box(blob);
    };
    op();
    icount_measured(&mut op, iterations);
}

/// The per-value core of every decrypting path: parse the blob, check the
/// tag, decrypt, validate the BSON value.
fn decrypt_string(len: usize, iterations: u64) {
    let key = data_key();
    let s = "x".repeat(len);
    let mut scratch = Vec::new();
    let ciphertext = encrypt_value(
        &key,
        Algorithm::Deterministic,
        RawBsonRef::String(&s),
        &mut scratch,
    )
    .expect("encrypt");
    let mut plaintext = Vec::new();
    {
        let blob = Fle1Blob::parse(&ciphertext).expect("parse");
        let value = decrypt_value(&key, &blob, &mut plaintext, &mut scratch).expect("decrypt");
        assert_eq!(value.as_str(), Some(s.as_str()));
    }
    let mut op = || {
        let blob = Fle1Blob::parse(black_box(&ciphertext)).expect("parse");
        let value = decrypt_value(&key, &blob, &mut plaintext, &mut scratch).expect("decrypt");
        black_box(value.as_str().map(str::len));
    };
    icount_measured(&mut op, iterations);
}

fn encrypt_20b(iterations: u64) {
    encrypt_string(20, iterations);
}

fn decrypt_20b(iterations: u64) {
    decrypt_string(20, iterations);
}

fn encrypt_1kib(iterations: u64) {
    encrypt_string(1024, iterations);
}

fn decrypt_1kib(iterations: u64) {
    decrypt_string(1024, iterations);
}

/// The specification's bulk-decrypt document (`key0001`…`key1500`, the
/// deterministic encryptions of `"value 0001"`…`"value 1500"`), decrypted
/// whole from raw BSON to raw BSON, as every cursor batch is: the SHA-512
/// lanes path (AVX2 under valgrind, which reports no AVX-512).
fn decrypt_doc_1500(iterations: u64) {
    let enc = ring_encrypter();
    let key = key_ref();
    let doc: Document = (1..=1500)
        .map(|i| {
            let ct = enc
                .encrypt(
                    &Bson::String(format!("value {i:04}")),
                    &key,
                    Algorithm::Deterministic,
                )
                .expect("encrypt");
            (format!("key{i:04}"), Bson::Binary(ct))
        })
        .collect();
    let raw = RawDocumentBuf::from_document(&doc).expect("the document encodes");
    let plain = enc.decrypt_raw_document(&raw).expect("decrypt");
    assert_eq!(plain.get_str("key1500").expect("key1500"), "value 1500");
    let mut op = || {
        let out = enc.decrypt_raw_document(black_box(&raw)).expect("decrypt");
        black_box(out);
    };
    icount_measured(&mut op, iterations);
}

/// The schema of `app.people`: `ssn` and `account` deterministic, `notes`
/// random (as `benches/rewrite.rs`).
fn people_schema() -> Document {
    let key = Bson::Array(vec![Bson::Binary(
        KeyId::from_bytes(support::KEY_ID).to_binary(),
    )]);
    let det = |t: &str| {
        doc! {"encrypt": {"keyId": key.clone(), "bsonType": t, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}
    };
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": det("string"),
            "account": det("long"),
            "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
        },
    }
}

/// An automatic encrypter with `app.people` in its schema map and the
/// fixture's key in a memory key vault. The key cache's clock stands still:
/// once warm, the cache never expires the key mid-run.
fn auto_encrypter() -> AutoEncrypter {
    let vault = MemoryKeyVault::new();
    vault
        .insert_key(&support::key_document())
        .now_or_never()
        .expect("the memory key vault never waits")
        .expect("insert the key document");
    let encryption = ClientEncryption::new(vault, support::kms()).with_clock(Clock::manual());
    AutoEncrypter::new(
        encryption,
        &doc! {"app.people": people_schema()},
        AutoEncryptionOptions::default(),
    )
    .expect("the schema map")
}

/// An insert of a 10-field document, 3 fields encrypted (2 deterministic, 1
/// random), as `benches/rewrite.rs`.
fn insert_command() -> Document {
    doc! {"insert": "people", "documents": [{
        "_id": 1, "name": "Ada Lovelace", "ssn": "457-55-5462", "age": 36, "account": 1_234_567_i64,
        "city": "London", "notes": "analytical engine", "active": true, "score": 9.5, "tags": ["a", "b"],
    }], "ordered": true}
}

/// A find reply's batch of 100 documents, 2 encrypted fields each (`ssn`
/// deterministic, `notes` random), decrypted by
/// `AutoEncrypter::decrypt_batch`, the entry point every cursor batch of
/// the encrypted client goes through (keys from the warm cache).
fn decrypt_reply_100(iterations: u64) {
    let auto = auto_encrypter();
    let enc = ring_encrypter();
    let key = key_ref();
    let docs: Vec<RawDocumentBuf> = (0..100_i32)
        .map(|i| {
            let ssn = enc
                .encrypt(
                    &Bson::String(format!("457-55-{i:04}")),
                    &key,
                    Algorithm::Deterministic,
                )
                .expect("encrypt ssn");
            let notes = enc
                .encrypt(
                    &Bson::String(format!("notes on person {i}, of a realistic length")),
                    &key,
                    Algorithm::Random,
                )
                .expect("encrypt notes");
            let d = doc! {
                "_id": i, "name": format!("person {i}"), "ssn": ssn, "notes": notes, "age": 20 + i % 50,
            };
            RawDocumentBuf::from_document(&d).expect("the document encodes")
        })
        .collect();
    let batch: Vec<&RawDocument> = docs.iter().map(|d| &**d).collect();
    // Warms the key cache (one key-vault query and unwrap) and checks the
    // result once.
    let plain = auto
        .decrypt_batch(&batch)
        .now_or_never()
        .expect("the memory key vault never waits")
        .expect("decrypt the batch");
    assert_eq!(plain.len(), 100);
    assert_eq!(plain[99].get_str("ssn").expect("ssn"), "457-55-0099");
    let mut op = || {
        let out = auto
            .decrypt_batch(black_box(&batch))
            .now_or_never()
            .expect("the key cache is warm: nothing waits")
            .expect("decrypt the batch");
        black_box(out);
    };
    icount_measured(&mut op, iterations);
}

/// Query analysis of the insert alone (the command with its markings),
/// against the parsed schema.
fn analyse_insert(iterations: u64) {
    let schema =
        EncryptionSchema::parse(&people_schema(), SchemaSource::Local).expect("the schema");
    let insert = insert_command();
    let analysis = analyze(&insert, "app", &|_| NamespaceSchema::Known(Some(&schema)))
        .expect("analyse the insert");
    assert!(matches!(analysis, Analysis::Marked(_)));
    let mut op = || {
        let analysis = analyze(black_box(&insert), "app", &|_| {
            NamespaceSchema::Known(Some(&schema))
        })
        .expect("analyse the insert");
        black_box(analysis);
    };
    icount_measured(&mut op, iterations);
}

/// The whole rewrite of the insert, `AutoEncrypter::encrypt_command`:
/// analysis against the schema map, the key from the warm cache, the three
/// marked values encrypted into the command.
fn rewrite_insert(iterations: u64) {
    let auto = auto_encrypter();
    let insert = insert_command();
    // Warms the key cache and the IV generator.
    let rewritten = auto
        .encrypt_command("app", &insert)
        .now_or_never()
        .expect("the memory key vault never waits")
        .expect("rewrite the insert");
    assert_ne!(rewritten, insert);
    let mut op = || {
        let out = auto
            .encrypt_command("app", black_box(&insert))
            .now_or_never()
            .expect("the key cache is warm: nothing waits")
            .expect("rewrite the insert");
        black_box(out);
    };
    icount_measured(&mut op, iterations);
}

/// The rewrite of what `EncryptedCollection::find_one` sends for a query
/// by an encrypted field (`{find, filter: {ssn: …}, limit: 1,
/// singleBatch: true}`): analysis, the key from the warm cache, one
/// deterministic encryption.
fn rewrite_find_one(iterations: u64) {
    let auto = auto_encrypter();
    let find = doc! {"find": "people", "filter": {"ssn": "457-55-5462"}, "limit": 1_i64, "singleBatch": true};
    let rewritten = auto
        .encrypt_command("app", &find)
        .now_or_never()
        .expect("the memory key vault never waits")
        .expect("rewrite the find");
    assert_ne!(rewritten, find);
    let mut op = || {
        let out = auto
            .encrypt_command("app", black_box(&find))
            .now_or_never()
            .expect("the key cache is warm: nothing waits")
            .expect("rewrite the find");
        black_box(out);
    };
    icount_measured(&mut op, iterations);
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: instructions list | instructions run <scenario> <iterations> | instructions (every scenario once, timed)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // `cargo bench` adds `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => {
            for s in SCENARIOS {
                println!("{} {}", s.name, s.iterations);
            }
            ExitCode::SUCCESS
        }
        ["run", name, iterations] => {
            let Some(scenario) = SCENARIOS.iter().find(|s| s.name == *name) else {
                eprintln!("unknown scenario {name:?} (`list` names them)");
                return ExitCode::from(2);
            };
            let iterations = match iterations.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("iterations: a positive integer, not {iterations:?}");
                    return ExitCode::from(2);
                }
            };
            (scenario.run)(iterations);
            ExitCode::SUCCESS
        }
        // A plain `cargo bench`: every scenario once, natively, so that the
        // harness is exercised; the wall-clock figures are no measure
        // (BENCHMARKS.md has the timed benches).
        [] => {
            for s in SCENARIOS {
                let start = Instant::now();
                (s.run)(s.iterations);
                println!(
                    "{:>18}: {} iterations with set-up in {:.3} s (run `.ci/instructions` for instruction counts)",
                    s.name,
                    s.iterations,
                    start.elapsed().as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
