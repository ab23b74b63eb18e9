//! Differential test against libmongocrypt itself (PyPI `pymongocrypt`, run
//! by `tests/oracle/libmongocrypt_oracle.py` with `$CSFLE_ORACLE_PYTHON`).
//!
//! Random values of every allowed type and random strings of 0–300
//! characters, under fresh keys created by both sides:
//! * deterministic ciphertexts are byte-identical both ways;
//! * each side decrypts the other's random ciphertexts;
//! * each side unwraps the other's local-KMS key documents;
//! * both refuse the disallowed types.
//!
//! The seed is printed; `CSFLE_DIFF_SEED=<n>` reproduces a run.

mod common;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use common::{b64, b64e};
use csfle::keyvault::{KeyDocument, KeyRing};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::{Algorithm, ExplicitEncrypter, KeyId, KeyRef};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Value, json};

fn run_oracle(python: &str, request: &Value) -> (String, Vec<Value>) {
    let v = common::run_libmongocrypt_oracle(python, request);
    (
        v["libmongocrypt"].as_str().unwrap().to_owned(),
        v["results"].as_array().unwrap().clone(),
    )
}

fn to_bson_bytes(doc: &Document) -> Vec<u8> {
    let mut v = Vec::new();
    doc.to_writer(&mut v).unwrap();
    v
}

fn v_doc(value: &Bson) -> Vec<u8> {
    to_bson_bytes(&doc! {"v": value.clone()})
}

fn result_bson(r: &Value, what: &str) -> Document {
    let Some(b) = r["bson"].as_str() else {
        panic!("{what}: libmongocrypt error: {}", r["error"]);
    };
    Document::from_reader(&b64(b)[..]).unwrap()
}

fn random_string(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..=300);
    const EXTRA: &[char] = &['é', 'ß', '中', '文', '🔐', 'Ω', '\u{7f}', '"', '\\'];
    (0..len)
        .map(|_| {
            if rng.random_bool(0.8) {
                rng.random_range(0x20u8..0x7f) as char
            } else {
                EXTRA[rng.random_range(0..EXTRA.len())]
            }
        })
        .collect()
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    let mut b = vec![0u8; len];
    rng.fill_bytes(&mut b);
    b
}

fn random_oid(rng: &mut StdRng) -> bson::oid::ObjectId {
    let mut b = [0u8; 12];
    rng.fill_bytes(&mut b);
    bson::oid::ObjectId::from_bytes(b)
}

/// A value of a type allowed for both algorithms.
fn random_det_value(rng: &mut StdRng) -> Bson {
    match rng.random_range(0..11) {
        0 | 1 => Bson::String(random_string(rng)),
        2 => Bson::ObjectId(random_oid(rng)),
        3 => Bson::DateTime(bson::DateTime::from_millis(rng.random())),
        4 => {
            let pattern: String = random_string(rng).chars().take(40).collect();
            let opts: String = "imsux".chars().filter(|_| rng.random_bool(0.4)).collect();
            Bson::RegularExpression(bson::Regex {
                pattern,
                options: opts,
            })
        }
        5 => Bson::try_from(
            json!({"$dbPointer": {"$ref": "db.coll", "$id": {"$oid": random_oid(rng).to_hex()}}}),
        )
        .unwrap(),
        6 => Bson::JavaScriptCode(random_string(rng)),
        7 => Bson::Symbol(random_string(rng)),
        8 => Bson::Int32(rng.random()),
        9 => Bson::Timestamp(bson::Timestamp {
            time: rng.random(),
            increment: rng.random(),
        }),
        _ => {
            if rng.random_bool(0.5) {
                Bson::Int64(rng.random())
            } else {
                let subtypes = [
                    BinarySubtype::Generic,
                    BinarySubtype::Function,
                    BinarySubtype::Uuid,
                    BinarySubtype::Md5,
                    BinarySubtype::UserDefined(0x80),
                ];
                let subtype = subtypes[rng.random_range(0..subtypes.len())];
                let bytes = if subtype == BinarySubtype::Uuid {
                    random_bytes(rng, 0)
                        .into_iter()
                        .chain((0..16).map(|_| rng.random()))
                        .collect()
                } else {
                    random_bytes(rng, 64)
                };
                Bson::Binary(Binary { subtype, bytes })
            }
        }
    }
}

/// A value of a type allowed only for random encryption.
fn random_rand_only_value(rng: &mut StdRng, depth: usize) -> Bson {
    match rng.random_range(0..6) {
        0 => Bson::Double(f64::from_bits(rng.random())),
        1 => Bson::Boolean(rng.random()),
        2 => {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            Bson::Decimal128(bson::Decimal128::from_bytes(b))
        }
        3 => Bson::Document(random_document(rng, depth)),
        4 => Bson::Array(
            (0..rng.random_range(0..6))
                .map(|_| random_any(rng, depth + 1))
                .collect(),
        ),
        _ => Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
            code: random_string(rng),
            scope: random_document(rng, depth),
        }),
    }
}

fn random_any(rng: &mut StdRng, depth: usize) -> Bson {
    if depth < 3 && rng.random_bool(0.3) {
        random_rand_only_value(rng, depth + 1)
    } else {
        match rng.random_range(0..8) {
            0 => Bson::Null,
            1 => Bson::Boolean(rng.random()),
            _ => random_det_value(rng),
        }
    }
}

fn random_document(rng: &mut StdRng, depth: usize) -> Document {
    (0..rng.random_range(0..5))
        .map(|i| (format!("f{i}"), random_any(rng, depth + 1)))
        .collect()
}

#[test]
#[ignore = "needs CSFLE_ORACLE_PYTHON"]
fn differential_against_libmongocrypt() {
    let python = common::service_env("CSFLE_ORACLE_PYTHON");
    let seed: u64 = std::env::var("CSFLE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            csfle::fill_random(&mut b).unwrap();
            u64::from_le_bytes(b)
        });
    println!("CSFLE_DIFF_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut master = [0u8; 96];
    rng.fill_bytes(&mut master);
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms =
        || KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&master).unwrap());

    // Our keys: two random, one with custom material.
    let mut custom = [0u8; 96];
    rng.fill_bytes(&mut custom);
    let mut keys: Vec<KeyDocument> = vec![
        csfle::create_data_key(&kms(), &local, vec![], None).unwrap(),
        csfle::create_data_key(&kms(), &local, vec![], None).unwrap(),
        csfle::create_data_key(&kms(), &local, vec![], Some(&custom)).unwrap(),
    ];

    // libmongocrypt's keys: one random, one with custom material.
    rng.fill_bytes(&mut custom);
    let (version, created) = run_oracle(
        &python,
        &json!({
            "local_master_key": b64e(&master),
            "keys": [],
            "ops": [{"op": "create_key"}, {"op": "create_key", "key_material": b64e(&custom)}],
        }),
    );
    println!("libmongocrypt {version}");
    for (i, r) in created.iter().enumerate() {
        let doc = result_bson(r, "create_key");
        let kd = KeyDocument::from_document(&doc).unwrap();
        if i == 1 {
            let unwrapped = kms()
                .unwrap_key_local(&kd.master_key, &kd.key_material)
                .unwrap();
            assert_eq!(
                &unwrapped[..],
                &custom[..],
                "we unwrap libmongocrypt's wrapping"
            );
        }
        keys.push(kd);
    }
    let key_ids: Vec<KeyId> = keys.iter().map(|k| k.id).collect();
    let key_bytes: Vec<String> = keys
        .iter()
        .map(|k| b64e(&to_bson_bytes(&k.to_document())))
        .collect();
    let enc = ExplicitEncrypter::new(KeyRing::new(keys, kms()).unwrap());

    // Build the batch.
    #[derive(Debug)]
    enum Check {
        DetEqual(Vec<u8>),     // our det blob; libmongocrypt must produce the same
        TheyDecryptOurs(Bson), // libmongocrypt decrypts our random blob to this
        WeDecryptTheirs(Bson), // we decrypt libmongocrypt's random blob to this
        BothRefuse(Bson, Algorithm),
    }
    let mut ops = Vec::new();
    let mut checks = Vec::new();
    let mut det_values: Vec<(Bson, KeyRef)> = Vec::new();
    let n_values = 300;
    let (mut det_n, mut rand_n, mut strings) = (0, 0, 0);
    for i in 0..n_values {
        let det_allowed = rng.random_bool(0.6);
        let value = if det_allowed {
            if i % 3 == 0 {
                Bson::String(random_string(&mut rng))
            } else {
                random_det_value(&mut rng)
            }
        } else {
            random_rand_only_value(&mut rng, 0)
        };
        if matches!(value, Bson::String(_)) {
            strings += 1;
        }
        let id = key_ids[i % key_ids.len()];
        let id_b64 = b64e(&id.bytes());
        if det_allowed {
            let ours = enc
                .encrypt(&value, &KeyRef::Id(id), Algorithm::Deterministic)
                .unwrap();
            assert_eq!(enc.decrypt(&ours).unwrap(), value);
            ops.push(json!({"op": "encrypt", "key_id": id_b64, "algorithm": "det", "bson": b64e(&v_doc(&value))}));
            checks.push(Check::DetEqual(ours.bytes));
            det_values.push((value.clone(), KeyRef::Id(id)));
            det_n += 1;
        }
        let ours = enc
            .encrypt(&value, &KeyRef::Id(id), Algorithm::Random)
            .unwrap();
        ops.push(json!({"op": "decrypt", "bson": b64e(&v_doc(&Bson::Binary(ours)))}));
        checks.push(Check::TheyDecryptOurs(value.clone()));
        ops.push(json!({"op": "encrypt", "key_id": id_b64, "algorithm": "rand", "bson": b64e(&v_doc(&value))}));
        checks.push(Check::WeDecryptTheirs(value));
        rand_n += 1;
    }
    let refused = [
        (Bson::Null, Algorithm::Random),
        (Bson::MinKey, Algorithm::Random),
        (Bson::MaxKey, Algorithm::Deterministic),
        (Bson::Undefined, Algorithm::Random),
        (Bson::Double(1.5), Algorithm::Deterministic),
        (Bson::Boolean(true), Algorithm::Deterministic),
        (Bson::Document(doc! {"a": 1}), Algorithm::Deterministic),
        (Bson::Array(vec![Bson::Int32(1)]), Algorithm::Deterministic),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Encrypted,
                bytes: vec![1; 40],
            }),
            Algorithm::Random,
        ),
    ];
    for (value, alg) in refused {
        let algo = if alg == Algorithm::Deterministic {
            "det"
        } else {
            "rand"
        };
        ops.push(json!({"op": "encrypt", "key_id": b64e(&key_ids[0].bytes()), "algorithm": algo, "bson": b64e(&v_doc(&value))}));
        checks.push(Check::BothRefuse(value, alg));
    }

    let (_, results) = run_oracle(
        &python,
        &json!({"local_master_key": b64e(&master), "keys": key_bytes, "ops": ops}),
    );
    assert_eq!(results.len(), checks.len());
    // Their ciphertexts in one document, and their deterministic ones in
    // order, for the batch paths below.
    let (mut theirs_doc, mut want_doc) = (Document::new(), Document::new());
    let mut det_theirs: Vec<Vec<u8>> = Vec::new();
    for (i, (check, r)) in checks.iter().zip(&results).enumerate() {
        match check {
            Check::DetEqual(ours) => {
                let theirs = result_bson(r, "det encrypt");
                let Some(Bson::Binary(b)) = theirs.get("v") else {
                    panic!("op {i}")
                };
                assert_eq!(
                    b64e(&b.bytes),
                    b64e(ours),
                    "op {i}: deterministic ciphertext differs"
                );
                det_theirs.push(b.bytes.clone());
                theirs_doc.insert(format!("d{i}"), Bson::Binary(b.clone()));
                want_doc.insert(format!("d{i}"), det_values[det_theirs.len() - 1].0.clone());
            }
            Check::TheyDecryptOurs(value) => {
                let theirs = result_bson(r, "decrypt");
                assert_eq!(
                    to_bson_bytes(&theirs),
                    v_doc(value),
                    "op {i}: libmongocrypt decrypted our blob differently"
                );
            }
            Check::WeDecryptTheirs(value) => {
                let theirs = result_bson(r, "rand encrypt");
                let Some(Bson::Binary(b)) = theirs.get("v") else {
                    panic!("op {i}")
                };
                let ours = enc.decrypt(b).unwrap();
                assert_eq!(
                    v_doc(&ours),
                    v_doc(value),
                    "op {i}: we decrypted their blob differently"
                );
                theirs_doc.insert(format!("r{i}"), Bson::Binary(b.clone()));
                want_doc.insert(format!("r{i}"), value.clone());
            }
            Check::BothRefuse(value, alg) => {
                assert!(
                    r["error"].is_string(),
                    "op {i}: libmongocrypt accepted {value:?} ({alg:?})"
                );
                assert!(enc.encrypt(value, &KeyRef::Id(key_ids[0]), *alg).is_err());
            }
        }
    }
    // The batch paths (multi-lane HMACs): libmongocrypt's ciphertexts, all
    // in one document, decrypt whole; `encrypt_many` of the deterministic
    // values is libmongocrypt's output byte for byte.
    let raw = bson::RawDocumentBuf::from_document(&theirs_doc).unwrap();
    let whole = enc.decrypt_raw_document(&raw).unwrap();
    assert_eq!(
        to_bson_bytes(&whole.to_document().unwrap()),
        to_bson_bytes(&want_doc)
    );
    let jobs: Vec<(&Bson, &KeyRef, Algorithm)> = det_values
        .iter()
        .map(|(v, k)| (v, k, Algorithm::Deterministic))
        .collect();
    let batched: Vec<Vec<u8>> = enc
        .encrypt_many(&jobs)
        .into_iter()
        .map(|r| r.unwrap().bytes)
        .collect();
    assert_eq!(batched, det_theirs);
    println!(
        "batch paths: {} of libmongocrypt's ciphertexts decrypted as one document, {} deterministic values encrypt_many'd byte-identical",
        theirs_doc.len(),
        det_theirs.len()
    );
    println!(
        "libmongocrypt {version}: {det_n} deterministic byte-identical, {rand_n} random values cross-decrypted both ways ({strings} strings), {} keys cross-unwrapped, 9 refusals agreed",
        key_ids.len()
    );
}
