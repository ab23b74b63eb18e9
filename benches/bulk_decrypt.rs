//! The specification's bulk decryption benchmark (client-side-encryption
//! `benchmarks.md`): one document with fields `key0001`…`key1500`, each the
//! deterministic encryption of `"value 0001"`…`"value 1500"`, decrypted whole,
//! repeatedly for one second; the figure is the median docs/s of 10 runs,
//! per thread count. csfle decrypts raw BSON to raw BSON, as libmongocrypt
//! does; with `--features libmongocrypt-bench` libmongocrypt runs the same
//! document in the same process.
//!
//! `cargo bench --features bench --bench bulk_decrypt [-- --runs N --threads 1,2]`

#[path = "support/mod.rs"]
mod support;

use bson::RawDocumentBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` on `threads` threads for one second; returns total docs/s.
fn one_second(threads: usize, op: &(dyn Fn() + Sync)) -> f64 {
    let barrier = Barrier::new(threads);
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < Duration::from_secs(1) {
                        op();
                        n += 1;
                    }
                    n as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap() as u64)
            .collect()
    });
    counts.iter().sum::<u64>() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One series of one-second runs: a name, a thread count and the operation.
struct Series<'a> {
    name: String,
    who: &'static str,
    threads: usize,
    op: &'a (dyn Fn() + Sync),
    samples: Vec<f64>,
}

/// Two one-thread series `(name, who, op)`, measured interleaved: their
/// medians (operations per second).
fn median_pair(
    a: (String, &'static str, &(dyn Fn() + Sync)),
    b: (String, &'static str, &(dyn Fn() + Sync)),
    runs: usize,
) -> (f64, f64) {
    let mut series = [a, b].map(|(name, who, op)| Series {
        name,
        who,
        threads: 1,
        op,
        samples: Vec::new(),
    });
    measure_interleaved(&mut series, runs);
    let [a, b] = series.map(|s| median(s.samples));
    (a, b)
}

/// Runs every series `runs` times, interleaved (run 1 of each series, then
/// run 2 of each, …), so that drift in machine speed hits all of them alike
/// and the ratios measured in the same run stay fair.
fn measure_interleaved(series: &mut [Series<'_>], runs: usize) {
    for s in series.iter() {
        (s.op)(); // warm caches and key caches
    }
    for _ in 0..runs {
        for s in series.iter_mut() {
            s.samples.push(one_second(s.threads, s.op));
        }
    }
    for s in series.iter() {
        println!(
            "{:>28} threads={}: {:>8.1} docs/s (median of {runs} one-second runs)",
            s.name,
            s.threads,
            median(s.samples.clone())
        );
    }
}

fn main() {
    let mut runs = 10;
    let mut thread_counts = vec![1, 2];
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args[i + 1].parse().expect("--runs N");
                i += 1;
            }
            "--threads" => {
                thread_counts = args[i + 1]
                    .split(',')
                    .map(|t| t.parse().expect("--threads 1,2"))
                    .collect();
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }

    let doc = support::bulk_document();
    let raw = RawDocumentBuf::from_document(&doc).unwrap();
    let enc = support::encrypter();
    let plain = enc.decrypt_raw_document(&raw).unwrap();
    assert_eq!(plain.get_str("key1500").unwrap(), "value 1500");
    println!(
        "bulk decrypt: 1500 deterministic string fields, {} bytes encrypted",
        raw.as_bytes().len()
    );

    let csfle_op = || {
        let out = enc
            .decrypt_raw_document(std::hint::black_box(&raw))
            .unwrap();
        std::hint::black_box(out);
    };
    let scalar_op = || {
        let out =
            csfle::__private::decrypt_raw_document_one_by_one(&enc, std::hint::black_box(&raw))
                .unwrap();
        std::hint::black_box(out);
    };
    assert_eq!(
        csfle::__private::decrypt_raw_document_one_by_one(&enc, &raw).unwrap(),
        plain
    );
    let mut series: Vec<Series<'_>> = thread_counts
        .iter()
        .flat_map(|&t| {
            [
                Series {
                    name: "csfle (lanes)".into(),
                    who: "csfle",
                    threads: t,
                    op: &csfle_op,
                    samples: Vec::new(),
                },
                Series {
                    name: "csfle one by one".into(),
                    who: "csfle scalar",
                    threads: t,
                    op: &scalar_op,
                    samples: Vec::new(),
                },
            ]
        })
        .collect();

    #[cfg(feature = "libmongocrypt-bench")]
    let lmc = support::lmc::Lmc::new();
    #[cfg(feature = "libmongocrypt-bench")]
    let lmc_op = || {
        std::hint::black_box(lmc.decrypt_document(std::hint::black_box(&raw)));
    };
    #[cfg(feature = "libmongocrypt-bench")]
    {
        let out = lmc.decrypt_document(&raw);
        assert_eq!(
            bson::RawDocument::from_bytes(out.as_bytes())
                .unwrap()
                .get_str("key0001")
                .unwrap(),
            "value 0001"
        );
        for &t in &thread_counts {
            series.push(Series {
                name: format!("libmongocrypt {}", support::lmc::Lmc::version()),
                who: "libmongocrypt",
                threads: t,
                op: &lmc_op,
                samples: Vec::new(),
            });
        }
    }
    measure_interleaved(&mut series, runs);
    let rows: Vec<(&str, usize, f64)> = series
        .iter()
        .map(|s| (s.who, s.threads, median(s.samples.clone())))
        .collect();

    let get = |who: &str, t: usize| rows.iter().find(|r| r.0 == who && r.1 == t).map(|r| r.2);
    println!(
        "\n| threads | csfle (lanes) docs/s | csfle one by one docs/s | libmongocrypt docs/s | lanes / libmongocrypt | one by one / libmongocrypt | lanes / one by one |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &t in &thread_counts {
        let ours = get("csfle", t).unwrap();
        let scalar = get("csfle scalar", t).unwrap();
        let theirs = get("libmongocrypt", t);
        let ratio = |x: f64| theirs.map_or("-".into(), |y| format!("{:.2}x", x / y));
        println!(
            "| {t} | {ours:.0} | {scalar:.0} | {} | {} | {} | {:.2}x |",
            theirs.map_or("-".into(), |x| format!("{x:.0}")),
            ratio(ours),
            ratio(scalar),
            ours / scalar,
        );
    }
    if let (Some(one), Some(two)) = (get("csfle", 1), get("csfle", 2)) {
        println!("csfle scaling 1 -> 2 threads: {:.2}x", two / one);
    }
    small_documents(runs);
}

/// Small documents (the realistic case) and single fields: `n` encrypted
/// fields per document, decrypted in lanes and one by one; and the
/// encryption of the 1,500 values of the bulk document with `encrypt_many`
/// against one `encrypt` each. Picks nothing itself: the table is what
/// `LANES_FROM_FIELDS` was chosen from.
fn small_documents(runs: usize) {
    use bson::{Bson, doc};
    use csfle::{Algorithm, KeyRef};
    let enc = support::encrypter();
    let key = KeyRef::Id(csfle::KeyId::from_bytes(support::KEY_ID));
    println!(
        "\n| encrypted fields per document | lanes docs/s | one by one docs/s | lanes / one by one | ns per field (lanes / one by one) |"
    );
    println!("|---|---|---|---|---|");
    for n in [1usize, 2, 3, 4, 6, 8, 10, 16, 32] {
        let mut d = doc! {"_id": 1};
        for i in 0..n {
            let v = Bson::String(format!("value {i:04} of a realistic length"));
            d.insert(
                format!("f{i}"),
                enc.encrypt(&v, &key, Algorithm::Deterministic).unwrap(),
            );
            d.insert(format!("p{i}"), i as i32);
        }
        let raw = RawDocumentBuf::from_document(&d).unwrap();
        let lanes = || {
            std::hint::black_box(
                enc.decrypt_raw_document(std::hint::black_box(&raw))
                    .unwrap(),
            );
        };
        let scalar = || {
            std::hint::black_box(
                csfle::__private::decrypt_raw_document_one_by_one(&enc, std::hint::black_box(&raw))
                    .unwrap(),
            );
        };
        let (a, b) = median_pair(
            (format!("{n} fields, lanes"), "lanes", &lanes),
            (format!("{n} fields, one by one"), "scalar", &scalar),
            runs.min(5),
        );
        println!(
            "| {n} | {a:.0} | {b:.0} | {:.2}x | {:.0} / {:.0} |",
            a / b,
            1e9 / (a * n as f64),
            1e9 / (b * n as f64)
        );
    }
    // Encryption of many values at once.
    let values: Vec<Bson> = (1..=1500)
        .map(|i| Bson::String(format!("value {i:04}")))
        .collect();
    let jobs: Vec<(&Bson, &KeyRef, Algorithm)> = values
        .iter()
        .map(|v| (v, &key, Algorithm::Deterministic))
        .collect();
    let many = || {
        std::hint::black_box(enc.encrypt_many(std::hint::black_box(&jobs)));
    };
    let each = || {
        for (v, k, a) in &jobs {
            std::hint::black_box(enc.encrypt(v, k, *a).unwrap());
        }
    };
    let (a, b) = median_pair(
        ("encrypt_many 1500 det".into(), "many", &many),
        ("encrypt x1500 det".into(), "each", &each),
        runs.min(5),
    );
    println!(
        "\ndeterministic encryption of 1500 values: encrypt_many {:.0} ns/value, encrypt one by one {:.0} ns/value ({:.2}x)",
        1e9 / (a * 1500.0),
        1e9 / (b * 1500.0),
        a / b
    );
}
