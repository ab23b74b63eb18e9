//! The fuzz targets' oracles without cargo-fuzz (needs the `fuzzing`
//! feature, as the fuzz crate does, and `kmip` for the KMIP reply target;
//! `.ci/run` runs it): replays the seed corpus (and any regression inputs
//! kept there), generated commands, and
//! arbitrary bytes through the fuzz targets' entry points. `cargo test --test crate_fuzz_corpus -- --ignored regenerate_` rewrites
//! the generated seeds (they are ours, made here, never copied from spec data).

use bson::{Bson, doc};
use csfle::{Algorithm, KeyRef};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn files(target: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn replay_seed_corpus() {
    let enc = csfle::__private::fixed_encrypter();
    let mut n = 0;
    for f in files("blob_decrypt") {
        csfle::__private::blob_parse_and_decrypt(&enc, &std::fs::read(&f).unwrap());
        n += 1;
    }
    for f in files("key_document") {
        let data = std::fs::read(&f).unwrap();
        if let Ok(text) = std::str::from_utf8(&data) {
            csfle::__private::key_documents(text);
        }
        csfle::__private::key_document_bson(&data);
        n += 1;
    }
    for f in files("ejson_line") {
        let data = std::fs::read(&f).unwrap();
        if let Ok(line) = std::str::from_utf8(&data) {
            csfle::__private::ejson_line(line);
        }
        n += 1;
    }
    let schema = csfle::__private::rewrite_schema();
    for f in files("rewrite") {
        csfle::__private::rewrite_command(&enc, &schema, &std::fs::read(&f).unwrap());
        n += 1;
    }
    let plans = [
        csfle::__private::migration_plan(false),
        csfle::__private::migration_plan(true),
    ];
    for f in files("migrate_document") {
        for plan in &plans {
            csfle::__private::migrate_document(&enc, plan, &std::fs::read(&f).unwrap());
        }
        n += 1;
    }
    for f in files("sha512_lanes") {
        csfle::__private::sha512_lanes(&std::fs::read(&f).unwrap());
        n += 1;
    }
    for f in files("schema_parse") {
        csfle::__private::schema_parse(&enc, &std::fs::read(&f).unwrap());
        n += 1;
    }
    assert!(n >= 30, "seed corpus too small: {n}");
}

/// The QE target's seeds: every one through the target's oracle; the
/// `valid-*` ones, made by `fuzz/make_qe_seeds.py` with Python's
/// `cryptography` (not with csfle), decrypt with csfle to the value they
/// hold, and the `bad-*` ones are refused.
#[cfg(feature = "qe")]
#[test]
fn qe_seed_corpus() {
    use csfle::qe::values::QeValue;
    let key = csfle::__private::qe_fixed_key();
    let key_id: Vec<u8> = (0x40..0x50).collect();
    let hello: &[u8] = b"\x06\x00\x00\x00hello\x00";
    let (mut valid, mut bad) = (0, 0);
    for f in files("qe_value") {
        let data = std::fs::read(&f).unwrap();
        csfle::__private::qe_value(&key, &data);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let plaintext = match QeValue::parse(&data) {
            Ok(QeValue::Unindexed(v)) => {
                assert_eq!(v.key_id().to_vec(), key_id, "{name}");
                v.decrypt(&key).map(|p| p.to_vec())
            }
            Ok(QeValue::Indexed(v)) => v
                .decrypt_server_layer(&key)
                .and_then(|layer| {
                    assert_eq!(layer.client_key_id().to_vec(), key_id, "{name}");
                    layer.decrypt(&key)
                })
                .map(|p| p.to_vec()),
            Ok(other) => panic!("{name}: unknown kind {other:?}"),
            Err(e) => Err(e),
        };
        if name.starts_with("valid-") {
            assert_eq!(
                plaintext.unwrap_or_else(|e| panic!("{name}: {e}")),
                hello,
                "{name}"
            );
            valid += 1;
        } else {
            assert!(plaintext.is_err(), "{name}");
            bad += 1;
        }
    }
    assert_eq!((valid, bad), (6, 3));
}

/// The QE payload target's seeds (made by `fuzz/make_qe_payload_seeds.py`):
/// every one through the target's oracle, and each `placeholder-*` seed
/// turns into a payload with the fuzz key, so the seeds reach the
/// payload code, not only the parsers.
#[cfg(feature = "qe")]
#[test]
fn qe_payload_seed_corpus() {
    use csfle::qe::QeRandom;
    use csfle::qe::placeholder::Placeholder;
    let key = csfle::__private::qe_fixed_key();
    let (mut placeholders, mut others) = (0, 0);
    for f in files("qe_payload") {
        let data = std::fs::read(&f).unwrap();
        csfle::__private::qe_payload(&key, &data);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("placeholder-") {
            let placeholder = Placeholder::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut rng = QeRandom::system();
            placeholder
                .encrypt(|_| Some(&key), &mut rng)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            placeholders += 1;
        } else {
            others += 1;
        }
    }
    assert_eq!((placeholders, others), (6, 3));
}

/// The KMIP reply target's seeds: the golden replies of libmongocrypt's
/// kms-message tests (`src/kms/kmip/tests/vectors.rs`, Apache-2.0), one a
/// file. Each goes through the target's oracle, is a complete TTLV message
/// that the framer hands back whole, and parses as its operation's reply
/// (or, for `*-not-found-*`, as the server's refusal); then every
/// truncation of each seed, which must be refused or parse, never panic.
#[cfg(feature = "kmip")]
#[test]
fn kmip_response_seed_corpus() {
    use csfle::kms::kmip::{self, ResponseFramer, ttlv};
    let mut seeds = 0;
    for f in files("kmip_response") {
        let data = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        csfle::__private::kmip_response(&data);
        ttlv::decode(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut framer = ResponseFramer::new();
        framer.feed(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(framer.is_complete(), "{name}");
        let parsed = if name.contains("not-found") {
            match kmip::parse_secret_data(&data) {
                Err(kmip::Error::Failed { .. }) => Ok(()),
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        } else if name.contains("-get-") {
            kmip::parse_secret_data(&data).map(|s| assert_eq!(s.len(), 96, "{name}"))
        } else if name.contains("-encrypt-") {
            kmip::parse_encrypt(&data).map(|e| assert_eq!(e.iv().len(), 16, "{name}"))
        } else if name.contains("-decrypt-") {
            kmip::parse_decrypt(&data).map(|p| assert_eq!(p.len(), 96, "{name}"))
        } else {
            kmip::parse_unique_identifier(&data).map(|id| assert!(!id.is_empty(), "{name}"))
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        for len in 0..data.len() {
            csfle::__private::kmip_response(&data[..len]);
        }
        seeds += 1;
    }
    assert_eq!(seeds, 9, "fuzz/corpus/kmip_response");
}

#[cfg(feature = "kmip")]
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, and arbitrary bytes behind a reply's header, through
    /// the KMIP reply target.
    #[test]
    fn kmip_response_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
        csfle::__private::kmip_response(&data);
        let mut framed = vec![0x42, 0x00, 0x7B, 0x01];
        framed.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&data);
        csfle::__private::kmip_response(&framed);
    }
}

/// The schema target's generator without cargo-fuzz: thousands of generated
/// schemas (keywords, misspellings, nesting, wrapping, `encrypt` in
/// literals); each is refused or honours every `encrypt` it holds. Both
/// outcomes must occur, or the generator has stopped exploring.
#[test]
fn generated_schemas_are_refused_or_honoured() {
    let enc = csfle::__private::fixed_encrypter();
    let mut accepted = 0;
    for i in 0u32..5000 {
        // A cheap deterministic byte stream per case (xorshift).
        let mut x = i.wrapping_mul(2_654_435_761).wrapping_add(1);
        let input: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Never `B`: that prefix selects the BSON mode.
                match x.to_le_bytes()[0] {
                    b'B' => 0,
                    b => b,
                }
            })
            .collect();
        accepted += usize::from(csfle::__private::schema_parse(&enc, &input));
    }
    eprintln!("{accepted} of 5000 generated schemas accepted, the rest refused");
    assert!(accepted > 50 && accepted < 4950, "{accepted} accepted");
}

#[test]
#[ignore = "writes the seed corpus; run by hand (.ci/run skips it)"]
fn regenerate_seed_corpus() {
    let enc = csfle::__private::fixed_encrypter();
    let write = |target: &str, name: &str, data: &[u8]| {
        std::fs::create_dir_all(corpus(target)).unwrap();
        std::fs::write(corpus(target).join(name), data).unwrap();
    };
    let key = KeyRef::AltName("fuzz".into());
    let values: Vec<Bson> = vec![
        "".into(),
        "value 0001".into(),
        "x".repeat(40).into(),
        Bson::Int32(-1),
        Bson::Int64(1 << 40),
        Bson::Double(1.5),
        Bson::Boolean(true),
        Bson::Document(doc! {"a": [1, "b", {"c": null}]}),
        Bson::Array(vec![Bson::Int32(1)]),
    ];
    let mut doc = bson::Document::new();
    for (i, v) in values.iter().enumerate() {
        for alg in [Algorithm::Deterministic, Algorithm::Random] {
            if let Ok(ct) = enc.encrypt(v, &key, alg) {
                write("blob_decrypt", &format!("blob-{i}-{alg:?}"), &ct.bytes);
                doc.insert(format!("f{i}{alg:?}"), ct);
            }
        }
    }
    let mut bytes = Vec::new();
    doc! {"outer": doc.clone(), "list": [doc.clone()], "plain": 1}
        .to_writer(&mut bytes)
        .unwrap();
    write("blob_decrypt", "document", &bytes);
    write("blob_decrypt", "marking", &[0, 5, 0, 0, 0, 0]);
    write("blob_decrypt", "unknown-subtype", &[9; 40]);

    let kd = csfle::create_data_key(
        &csfle::kms::KmsProviders::new().with_local(
            csfle::kms::ProviderName::of_kind(csfle::kms::ProviderKind::Local),
            csfle::kms::LocalMasterKey::new(&[0x33; 96]).unwrap(),
        ),
        &csfle::kms::ProviderName::of_kind(csfle::kms::ProviderKind::Local),
        vec!["a".into(), "b".into()],
        None,
    )
    .unwrap();
    let line = csfle::ejson::to_canonical_line(&kd.to_document());
    write(
        "key_document",
        "lines",
        format!("{line}\n\n{line}\n").as_bytes(),
    );
    write(
        "key_document",
        "array",
        format!("[{line},\n{line}]").as_bytes(),
    );
    let mut aws = kd.to_document();
    aws.insert(
        "masterKey",
        doc! {"provider": "aws:prod", "region": "r", "key": "k", "endpoint": "e"},
    );
    write(
        "key_document",
        "aws",
        csfle::ejson::to_canonical_line(&aws).as_bytes(),
    );
    let mut bytes = Vec::new();
    kd.to_document().to_writer(&mut bytes).unwrap();
    write("key_document", "bson", &bytes);

    for (i, cmd) in [
        doc! {"insert": "c", "documents": [{"_id": 1, "ssn": "457-55-5462", "notes": "n", "med": {"record": [1, 2]}}]},
        doc! {"find": "c", "filter": {"ssn": "x", "age": {"$gt": 3}}},
        doc! {"find": "c", "filter": {"$or": [{"ssn": {"$in": ["a", "b"]}}, {"ssn": {"$not": {"$eq": "c"}}}]}},
        doc! {"count": "c", "query": {"ssn": {"$exists": true}}},
        doc! {"update": "c", "updates": [{"q": {"ssn": "x"}, "u": {"$set": {"notes": "y", "med.record": 1}}}]},
        doc! {"findAndModify": "c", "query": {"ssn": "x"}, "update": {"ssn": "z"}},
        doc! {"aggregate": "c", "pipeline": [{"$match": {"ssn": "x"}}, {"$limit": 1}], "cursor": {}},
        doc! {"explain": {"find": "c", "filter": {"ssn": "x"}}},
        doc! {"delete": "c", "deletes": [{"q": {"ssn": {"$ne": "x"}}, "limit": 0}]},
    ]
    .iter()
    .enumerate()
    {
        let mut bytes = Vec::new();
        cmd.to_writer(&mut bytes).unwrap();
        write("rewrite", &format!("cmd-{i}"), &bytes);
    }

    // Documents for the migration target: plaintext, already migrated,
    // under another key or algorithm, with unlisted and listed-plain
    // ciphertexts, and ones the plan must refuse.
    let key = csfle::KeyRef::Id(csfle::KeyId::from_bytes([0x11; 16]));
    let det = |v: &str| {
        Bson::Binary(
            enc.encrypt(&v.into(), &key, csfle::Algorithm::Deterministic)
                .unwrap(),
        )
    };
    let random = |v: Bson| Bson::Binary(enc.encrypt(&v, &key, csfle::Algorithm::Random).unwrap());
    for (i, d) in [
        doc! {"_id": 1, "ssn": "457-55-5462", "notes": "n", "med": {"record": [1, 2]}, "plain": "p"},
        doc! {"_id": 2, "ssn": det("a"), "notes": random("n".into()), "med": {"record": random(Bson::Int32(5))}},
        doc! {"_id": 3, "ssn": random("a".into()), "notes": det("n"), "plain": det("p"), "other": random(Bson::Int64(7))},
        doc! {"_id": 4, "ssn": 1.5, "med": [1, 2], "notes": Bson::Null},
        doc! {"_id": 5, "med": det("whole"), "other": [random("x".into()), {"y": det("z")}]},
    ]
    .iter()
    .enumerate()
    {
        let mut bytes = Vec::new();
        d.to_writer(&mut bytes).unwrap();
        write("migrate_document", &format!("doc-{i}"), &bytes);
    }

    for (i, line) in [
        r#"{"v":"héllo","other":{"$numberInt":"5"}}"#,
        r#"{"v":{"$numberLong":"9007199254740993"},"w":1.5,"x":3000000000}"#,
        r#"{"v":{"$oid":"5f0c3a3b9d1e8a0001a1b2c3"},"d":{"$date":"1970-01-01T00:00:00Z"}}"#,
        r#"{"v":{"$regularExpression":{"pattern":"^a","options":"i"}}}"#,
        r#"{"v":{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"5f0c3a3b9d1e8a0001a1b2c3"}}}}"#,
        r#"{"v":{"$code":"f()","$scope":{"x":1}},"s":{"$symbol":"s"}}"#,
        r#"{"v":{"$timestamp":{"t":1,"i":2}},"n":{"$numberDouble":"-Infinity"}}"#,
        r#"{"v":{"$binary":{"base64":"AAECAw==","subType":"06"}}}"#,
        r#"{"v":{"$numberDecimal":"1.5E+10"},"m":{"$minKey":1},"M":{"$maxKey":1}}"#,
        r#"{"v":[1,{"a":null,"b":{"$undefined":true}}]}"#,
    ]
    .iter()
    .enumerate()
    {
        write("ejson_line", &format!("line-{i}"), line.as_bytes());
    }
}

/// The rewrite fuzz target's generator and oracle:
/// thousands of generated commands that put secrets where encrypted fields
/// meet them, none of which may send a secret.
#[test]
fn generated_commands_never_send_a_secret() {
    let enc = csfle::__private::fixed_encrypter();
    let schema = csfle::__private::rewrite_schema();
    // A fixed xorshift stream: the same inputs on every run.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut input = vec![0u8; 96];
    let mut sent = 0;
    for _ in 0..5_000 {
        for b in input.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        sent += usize::from(csfle::__private::rewrite_generated(&enc, &schema, &input));
    }
    // Both kinds occur: commands encrypted and sent, commands refused
    // (most of the classes added for sub-pipelines, operator arguments,
    // arrayFilters, $changeStream/$count, $db and validators are refusals,
    // so about one command in ten is sent).
    eprintln!("{sent} of 5000 generated commands sent (encrypted), the rest refused");
    assert!((250..4_500).contains(&sent), "{sent} sent");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        csfle::__private::blob_parse_and_decrypt(enc(), &data);
        let mut forged = vec![1u8];
        forged.extend_from_slice(&[0x11; 16]);
        forged.extend_from_slice(&data);
        csfle::__private::blob_parse_and_decrypt(enc(), &forged);
    }

    /// The multi-lane SHA-512 and the multi-message HMAC on arbitrary bytes.
    #[test]
    fn sha512_lanes_equal_sha2_and_hmac(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
        csfle::__private::sha512_lanes(&data);
    }
}

fn enc() -> &'static csfle::ExplicitEncrypter<csfle::keyvault::KeyRing> {
    static E: std::sync::OnceLock<csfle::ExplicitEncrypter<csfle::keyvault::KeyRing>> =
        std::sync::OnceLock::new();
    E.get_or_init(csfle::__private::fixed_encrypter)
}
