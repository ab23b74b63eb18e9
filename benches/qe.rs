//! Queryable Encryption per value: csfle's pure QE core
//! (`csfle::qe::explicit::encrypt_value`, `csfle::qe::values`) and, with
//! `--features libmongocrypt-bench`, libmongocrypt's explicit
//! encryption and decryption of the same values under the same keys
//! (through the `mongocrypt` crate; keys cached by libmongocrypt after the
//! first call, as csfle's are decrypted once).
//!
//! * `qe_indexed_insert/string20`: an Indexed insert payload (11) of a
//!   20-byte string, contention factor 0;
//! * `qe_equality_find/string20`: its equality find payload (12);
//! * `qe_unindexed/string20`: an Unindexed value (16);
//! * `qe_range_insert/int32`, `…/int64`: a Range insert payload (11) over
//!   the type's whole domain, default sparsity (2) and trim factor (6);
//! * `qe_decrypt_iev/equality`, `…/range`: decryption of a stored indexed
//!   value (14, 15): libmongocrypt's vendored vectors
//!   `test/data/iev-v2/FLECrudTest-insertOneV2.json` and
//!   `…-insertOneRangeV2.json` (two keys each: the server layer's and the
//!   client layer's).
//!
//! QE v2 arrived in libmongocrypt 1.8.0: run the comparison with
//! libmongocrypt 1.20.2 (`LD_LIBRARY_PATH=/opt/libmongocrypt-1.20.2/lib`),
//! not Debian's 1.7.2. `cargo bench --bench qe` prints a table of medians
//! and ratios at the end.

#[path = "support/mod.rs"]
mod support;

use bson::RawBsonRef;
use criterion::{Criterion, Throughput};
use csfle::qe::QeRandom;
use csfle::qe::aead::QeDataKey;
use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions, QeKeys, QueryType, RangeOptions};
use csfle::qe::payload::QeKey;
use csfle::qe::values::QeValue;
use std::hint::black_box;
use std::time::Duration;

/// The operations, in the report's order.
const OPERATIONS: [&str; 7] = [
    "qe_indexed_insert/string20",
    "qe_equality_find/string20",
    "qe_unindexed/string20",
    "qe_range_insert/int32",
    "qe_range_insert/int64",
    "qe_decrypt_iev/equality",
    "qe_decrypt_iev/range",
];

/// Hex digits as bytes (the vectors' encoding).
fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// A stored indexed value of libmongocrypt's `test/data/iev-v2/` and its
/// two keys.
struct Iev {
    payload: Vec<u8>,
    server_key_id: [u8; 16],
    server_key: Vec<u8>,
    client_key_id: [u8; 16],
    client_key: Vec<u8>,
    plaintext: Vec<u8>,
}

fn iev(file: &str) -> Iev {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libmongocrypt/test/data/iev-v2")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON vector");
    let field = |name: &str| hex(v[name].as_str().expect("a hex field"));
    let id = |name: &str| -> [u8; 16] { field(name).try_into().expect("a 16-byte key id") };
    Iev {
        payload: field("payload"),
        server_key_id: id("S_KeyId"),
        server_key: field("S_Key"),
        client_key_id: id("K_KeyId"),
        client_key: field("K_Key"),
        plaintext: field("bson_value"),
    }
}

/// csfle's decryption of a stored indexed value: both layers.
fn decrypt_iev(payload: &[u8], server: &QeDataKey, client: &QeDataKey) -> usize {
    let QeValue::Indexed(value) = QeValue::parse(payload).expect("an indexed value") else {
        panic!("not an indexed value");
    };
    let layer = value
        .decrypt_server_layer(server)
        .expect("the server layer");
    layer.decrypt(client).expect("the client layer").len()
}

/// Before timing: csfle reads the vector as the file says (key ids,
/// plaintext).
fn check_iev(v: &Iev, server: &QeDataKey, client: &QeDataKey) {
    let QeValue::Indexed(value) = QeValue::parse(&v.payload).expect("an indexed value") else {
        panic!("not an indexed value");
    };
    assert_eq!(value.server_key_id(), v.server_key_id);
    let layer = value
        .decrypt_server_layer(server)
        .expect("the server layer");
    assert_eq!(layer.client_key_id(), v.client_key_id);
    let plaintext = layer.decrypt(client).expect("the client layer");
    assert_eq!(&plaintext[..], &v.plaintext[..]);
}

fn options(
    algorithm: QeAlgorithm,
    contention_factor: Option<i64>,
    query_type: Option<QueryType>,
    range_options: Option<&RangeOptions>,
) -> QeEncryptOptions<'_> {
    QeEncryptOptions {
        algorithm,
        contention_factor,
        query_type,
        range_options,
    }
}

fn whole_domain_i32() -> RangeOptions {
    RangeOptions::default()
        .with_min(i32::MIN)
        .with_max(i32::MAX)
}

fn whole_domain_i64() -> RangeOptions {
    RangeOptions::default()
        .with_min(i64::MIN)
        .with_max(i64::MAX)
}

fn benches(c: &mut Criterion) {
    let key = QeDataKey::new(&support::DATA_KEY).expect("96 bytes");
    let keys = QeKeys {
        user: QeKey {
            id: support::KEY_ID,
            key: &key,
        },
        index: None,
    };
    let mut rng = QeRandom::system();
    let s20 = "x".repeat(20);
    let string20 = RawBsonRef::String(&s20);
    let int32 = RawBsonRef::Int32(1_234_567);
    let int64 = RawBsonRef::Int64(1_234_567_890_123);
    let range32 = whole_domain_i32();
    let range64 = whole_domain_i64();
    let indexed = options(QeAlgorithm::Indexed, Some(0), None, None);
    let equality = options(
        QeAlgorithm::Indexed,
        Some(0),
        Some(QueryType::Equality),
        None,
    );
    let unindexed = options(QeAlgorithm::Unindexed, None, None, None);
    let range_insert32 = options(QeAlgorithm::Range, Some(0), None, Some(&range32));
    let range_insert64 = options(QeAlgorithm::Range, Some(0), None, Some(&range64));
    // The order of OPERATIONS[5..].
    let ievs = [
        iev("FLECrudTest-insertOneV2.json"),
        iev("FLECrudTest-insertOneRangeV2.json"),
    ];

    #[cfg(feature = "libmongocrypt-bench")]
    let lmc = {
        // One document per key: libmongocrypt refuses duplicate `_id`s
        // (both vectors use the same two keys).
        let mut docs = vec![(support::KEY_ID, support::key_document())];
        for v in &ievs {
            for (id, material) in [
                (v.server_key_id, &v.server_key),
                (v.client_key_id, &v.client_key),
            ] {
                if docs.iter().all(|(known, _)| *known != id) {
                    docs.push((id, lmc::key_document(id, material)));
                }
            }
        }
        let lmc = lmc::QeLmc::new(docs);
        println!("libmongocrypt {}", lmc::QeLmc::version());
        // Both sides agree before anything is timed: libmongocrypt makes
        // QE v2 payloads, reads csfle's, and decrypts the vectors.
        let theirs = lmc.encrypt_payload(
            bson::RawBson::String(s20.clone()),
            mongocrypt::ctx::Algorithm::Indexed,
            Some(0),
            None,
            None,
        );
        assert_eq!(
            theirs[0],
            csfle::qe::payload::INSERT_UPDATE_V2,
            "libmongocrypt {} predates QE v2 (1.8.0): run with LD_LIBRARY_PATH=/opt/libmongocrypt-1.20.2/lib",
            lmc::QeLmc::version()
        );
        let ours = csfle::qe::explicit::encrypt_value(string20, keys, &indexed, &mut rng)
            .expect("csfle encrypts");
        let back = lmc.decrypt(&ours);
        assert_eq!(back.get_str("v").expect("a string"), s20);
        for v in &ievs {
            // {v: value}: length ‖ type ‖ "v\0" ‖ value ‖ 0.
            let back = lmc.decrypt(&v.payload);
            let b = back.as_bytes();
            assert_eq!(
                &b[7..b.len() - 1],
                &v.plaintext[..],
                "libmongocrypt decrypts the vector to its value"
            );
        }
        lmc
    };

    let encrypt_cases: [(&str, RawBsonRef<'_>, &QeEncryptOptions<'_>); 5] = [
        (OPERATIONS[0], string20, &indexed),
        (OPERATIONS[1], string20, &equality),
        (OPERATIONS[2], string20, &unindexed),
        (OPERATIONS[3], int32, &range_insert32),
        (OPERATIONS[4], int64, &range_insert64),
    ];
    for (group, value, o) in encrypt_cases {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.bench_function("csfle", |b| {
            b.iter(|| {
                csfle::qe::explicit::encrypt_value(black_box(value), keys, o, &mut rng)
                    .expect("csfle encrypts")
            })
        });
        #[cfg(feature = "libmongocrypt-bench")]
        {
            let raw = value.to_raw_bson();
            let (algorithm, query_type, range) = lmc::options_of(o);
            g.bench_function(
                criterion::BenchmarkId::new("libmongocrypt", lmc::QeLmc::version()),
                |b| {
                    b.iter(|| {
                        lmc.encrypt_payload(
                            black_box(raw.clone()),
                            algorithm,
                            o.contention_factor,
                            query_type,
                            range.as_ref(),
                        )
                    })
                },
            );
        }
        g.finish();
    }

    for (i, v) in ievs.iter().enumerate() {
        let server = QeDataKey::new(&v.server_key).expect("96 bytes");
        let client = QeDataKey::new(&v.client_key).expect("96 bytes");
        check_iev(v, &server, &client);
        let mut g = c.benchmark_group(OPERATIONS[5 + i]);
        g.throughput(Throughput::Elements(1));
        g.bench_function("csfle", |b| {
            b.iter(|| decrypt_iev(black_box(&v.payload), &server, &client))
        });
        #[cfg(feature = "libmongocrypt-bench")]
        g.bench_function(
            criterion::BenchmarkId::new("libmongocrypt", lmc::QeLmc::version()),
            |b| b.iter(|| lmc.decrypt(black_box(&v.payload))),
        );
        g.finish();
    }
}

#[cfg(feature = "libmongocrypt-bench")]
mod lmc {
    use bson::{Document, RawBson, RawDocumentBuf, doc};
    use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions, QueryType};
    use mongocrypt::ctx::{Algorithm, Ctx, State};

    /// A key document for `material`, wrapped by the benchmarks' local
    /// master key, with the `_id` a vector names.
    pub fn key_document(id: [u8; 16], material: &[u8]) -> csfle::keyvault::KeyDocument {
        let local = csfle::kms::ProviderName::of_kind(csfle::kms::ProviderKind::Local);
        let mut k = csfle::create_data_key(&super::support::kms(), &local, vec![], Some(material))
            .expect("a local key");
        k.id = csfle::KeyId::from_bytes(id);
        k
    }

    /// libmongocrypt's options for csfle's: algorithm, query type, range
    /// options.
    pub fn options_of(
        o: &QeEncryptOptions<'_>,
    ) -> (Algorithm, Option<&'static str>, Option<Document>) {
        let algorithm = match o.algorithm {
            QeAlgorithm::Indexed => Algorithm::Indexed,
            QeAlgorithm::Unindexed => Algorithm::Unindexed,
            QeAlgorithm::Range => Algorithm::Range,
            #[allow(unreachable_patterns)]
            _ => panic!("an algorithm this benchmark does not know"),
        };
        let query_type = o.query_type.map(|q| match q {
            QueryType::Equality => "equality",
            QueryType::Range => "range",
            #[allow(unreachable_patterns)]
            _ => panic!("a query type this benchmark does not know"),
        });
        let range = o.range_options.map(|r| {
            let mut d = Document::new();
            if let Some(min) = &r.min {
                d.insert("min", min.clone());
            }
            if let Some(max) = &r.max {
                d.insert("max", max.clone());
            }
            if let Some(sparsity) = r.sparsity {
                d.insert("sparsity", sparsity);
            }
            if let Some(trim_factor) = r.trim_factor {
                d.insert("trimFactor", trim_factor);
            }
            if let Some(precision) = r.precision {
                d.insert("precision", precision);
            }
            d
        });
        (algorithm, query_type, range)
    }

    /// libmongocrypt with the benchmarks' local master key, serving key
    /// documents from memory: on each request, the ones whose `_id` the
    /// filter names (it refuses documents it did not ask for).
    pub struct QeLmc {
        crypt: mongocrypt::Crypt,
        keys: Vec<([u8; 16], RawDocumentBuf)>,
    }

    impl QeLmc {
        pub fn new(keys: Vec<([u8; 16], csfle::keyvault::KeyDocument)>) -> Self {
            let kms = doc! {"local": {"key": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: super::support::MASTER_KEY.to_vec() }}};
            let crypt = mongocrypt::Crypt::builder()
                .kms_providers(&kms)
                .expect("local KMS")
                .build()
                .expect("a libmongocrypt handle");
            let keys = keys
                .into_iter()
                .map(|(id, k)| {
                    let doc = RawDocumentBuf::from_document(&k.to_document()).expect("BSON");
                    (id, doc)
                })
                .collect();
            QeLmc { crypt, keys }
        }

        pub fn version() -> &'static str {
            mongocrypt::version()
        }

        fn run(&self, mut ctx: Ctx) -> RawDocumentBuf {
            let mut out = None;
            loop {
                match ctx.state().expect("a state") {
                    State::NeedMongoKeys => {
                        let filter = ctx.mongo_op().expect("a key filter").as_bytes().to_vec();
                        for (id, doc) in &self.keys {
                            if filter.windows(id.len()).any(|w| w == id.as_slice()) {
                                ctx.mongo_feed(doc).expect("a key document");
                            }
                        }
                        ctx.mongo_done().expect("keys fed");
                    }
                    State::Ready => {
                        out = Some(ctx.finalize().expect("finalized").to_raw_document_buf())
                    }
                    State::Done => break,
                    other => panic!("unexpected libmongocrypt state {other:?}"),
                }
            }
            out.expect("finalized")
        }

        /// Explicit encryption; the payload's bytes.
        pub fn encrypt_payload(
            &self,
            value: RawBson,
            algorithm: Algorithm,
            contention_factor: Option<i64>,
            query_type: Option<&str>,
            range: Option<&Document>,
        ) -> Vec<u8> {
            let mut builder = self
                .crypt
                .ctx_builder()
                .key_id(&super::support::KEY_ID)
                .expect("key id")
                .algorithm(algorithm)
                .expect("algorithm");
            if let Some(cf) = contention_factor {
                builder = builder.contention_factor(cf).expect("contention factor");
            }
            if let Some(q) = query_type {
                builder = builder.query_type(q).expect("query type");
            }
            if let Some(r) = range {
                builder = builder.algorithm_range(r.clone()).expect("range options");
            }
            let ctx = builder.build_explicit_encrypt(value).expect("encrypt init");
            let out = self.run(ctx);
            out.get_binary("v").expect("a payload").bytes.to_vec()
        }

        /// Explicit decryption of a subtype-6 payload: `{v: value}`.
        pub fn decrypt(&self, blob: &[u8]) -> RawDocumentBuf {
            let ctx = self
                .crypt
                .ctx_builder()
                .build_explicit_decrypt(blob)
                .expect("decrypt init");
            self.run(ctx)
        }
    }
}

/// Criterion's median estimate (ns) for `group/function`, read back from
/// `target/criterion`. A parameterised function (`libmongocrypt/<version>`)
/// is found by its first path component.
fn criterion_median(group: &str, func: &str) -> Option<f64> {
    let base = std::path::Path::new("target/criterion")
        .join(group.replace('/', "_"))
        .join(func);
    let estimates = if base.join("new/estimates.json").exists() {
        base.join("new/estimates.json")
    } else {
        std::fs::read_dir(&base)
            .ok()?
            .filter_map(|e| e.ok())
            .next()?
            .path()
            .join("new/estimates.json")
    };
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(estimates).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Prints per-value figures and ratios from this run's medians.
fn report() {
    println!("\n| operation | csfle | libmongocrypt | csfle / libmongocrypt |");
    println!("|---|---|---|---|");
    for group in OPERATIONS {
        let Some(ours) = criterion_median(group, "csfle") else {
            continue;
        };
        let lmc = criterion_median(group, "libmongocrypt");
        println!(
            "| {group} | {ours:.0} ns | {} | {} |",
            lmc.map_or("-".into(), |l| format!("{l:.0} ns")),
            lmc.map_or("-".into(), |l| format!("{:.2}x", ours / l)),
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    report();
}
