//! The specification's bulk decryption benchmark (client-side-encryption
//! `benchmarks.md`): one document with fields `key0001`…`key1500`, each the
//! deterministic encryption of `"value 0001"`…`"value 1500"`, decrypted whole,
//! repeatedly for one second; the figure is the median docs/s of 10 runs
//! (`--runs N`; at least 5 for a figure worth quoting), per thread count,
//! every series interleaved, with the spread (min–max) of its runs. csfle
//! decrypts raw BSON to raw BSON, as libmongocrypt does; with `--features
//! libmongocrypt-bench` libmongocrypt runs the same document in the same
//! process (the library the loader finds: `LD_LIBRARY_PATH` picks the build,
//! and its version is printed).
//!
//! It prints the CPU, the SHA-512 kernel that runs (`CSFLE_SHA512_KERNEL`
//! forces one: `avx2`, `avx512`, `scalar`), the AES instructions, and the
//! libmongocrypt version first; then the threads table, the small
//! documents table, and the cost of AES calls per value against one call
//! for the document.
//!
//! `cargo bench --features bench --bench bulk_decrypt [-- --runs N --threads 1,2 --skip-small]`
//! (`--skip-small` leaves out the small documents table and `encrypt_many`,
//! which do not involve libmongocrypt: for a second run against another
//! build).

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

/// The lowest and highest of the runs.
fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
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
        let (lo, hi) = spread(&s.samples);
        println!(
            "{:>28} threads={}: {:>9.1} docs/s (median of {runs} one-second runs; min {lo:.1}, max {hi:.1})",
            s.name,
            s.threads,
            median(s.samples.clone())
        );
    }
}

fn main() {
    let mut runs: usize = 10;
    let mut thread_counts = vec![1, 2];
    let mut skip_small = false;
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
            "--skip-small" => skip_small = true,
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    let runs = runs.max(1);

    support::print_machine();
    if runs < 5 {
        println!("note: {runs} runs per series; the figures quoted take at least 5");
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
    let rows: Vec<(&str, usize, f64, (f64, f64))> = series
        .iter()
        .map(|s| {
            (
                s.who,
                s.threads,
                median(s.samples.clone()),
                spread(&s.samples),
            )
        })
        .collect();

    let row = |who: &str, t: usize| rows.iter().find(|r| r.0 == who && r.1 == t);
    let get = |who: &str, t: usize| row(who, t).map(|r| r.2);
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
    // The spread of the same runs, in the same order of columns.
    println!("\nspread (min–max docs/s of the {runs} runs):\n");
    println!(
        "| threads | csfle (lanes) | csfle one by one | libmongocrypt | lanes / libmongocrypt, worst–best |"
    );
    println!("|---|---|---|---|---|");
    for &t in &thread_counts {
        let range =
            |who: &str| row(who, t).map_or("-".into(), |r| format!("{:.0}–{:.0}", r.3.0, r.3.1));
        let worst_best = match (row("csfle", t), row("libmongocrypt", t)) {
            (Some(ours), Some(theirs)) => format!(
                "{:.2}x–{:.2}x",
                ours.3.0 / theirs.3.1,
                ours.3.1 / theirs.3.0
            ),
            _ => "-".into(),
        };
        println!(
            "| {t} | {} | {} | {} | {worst_best} |",
            range("csfle"),
            range("csfle scalar"),
            range("libmongocrypt"),
        );
    }
    if let (Some(one), Some(two)) = (get("csfle", 1), get("csfle", 2)) {
        println!(
            "\ncsfle scaling 1 -> 2 threads: {:.2}x (medians)",
            two / one
        );
    }
    if let Some(one) = get("csfle", 1) {
        aes_calls(runs, 1e9 / (one * 1500.0));
    }
    if !skip_small {
        small_documents(runs);
    }
}

/// What a call of the AES decryption costs besides its blocks: the 1,500
/// one-block bodies of the bulk document decrypted with one `aes` call
/// each (how csfle decrypted before: its per-call set-up paid per value;
/// on VAES machines the backend broadcasts the 15 round keys into wide
/// registers on every call) against one call for the document (how the
/// planned path decrypts now: the parallel blocks run across values).
/// The round keys themselves are expanded once per data key, when the
/// `DataKey` is built, in both. `per_field_ns`: the document's cost per
/// field (csfle lanes, one thread), to put the difference in proportion.
fn aes_calls(runs: usize, per_field_ns: f64) {
    use aes::Aes256Dec;
    use cbc::cipher::{BlockCipherDecrypt, KeyInit};
    use std::sync::Mutex;
    let dec = Aes256Dec::new_from_slice(&support::DATA_KEY[32..64]).unwrap();
    let blocks = Mutex::new(vec![aes::Block::default(); 1500]);
    let each = || {
        let mut blocks = blocks.lock().unwrap();
        for block in blocks.iter_mut() {
            dec.decrypt_block(std::hint::black_box(block));
        }
    };
    let once = || {
        let mut blocks = blocks.lock().unwrap();
        dec.decrypt_blocks(std::hint::black_box(&mut blocks[..]));
    };
    let (each, once) = median_pair(
        ("AES, one call per value".into(), "each", &each),
        ("AES, one call per document".into(), "once", &once),
        runs.min(5),
    );
    let (each_ns, once_ns) = (1e9 / (each * 1500.0), 1e9 / (once * 1500.0));
    println!(
        "\nAES-256 decryption of a one-block value: {each_ns:.1} ns with a call per value, {once_ns:.1} ns with one call per document; the per-call cost, {:.1} ns, is {:.1}% of the document's {per_field_ns:.0} ns per field (lanes, one thread)",
        each_ns - once_ns,
        100.0 * (each_ns - once_ns) / per_field_ns,
    );
}

/// Small documents (the realistic case) and single fields: `n` encrypted
/// fields per document, decrypted by `decrypt_raw_document` (one walk
/// below four encrypted fields, planned and in lanes from four) and one by
/// one; and the encryption of the 1,500 values of the bulk document with
/// `encrypt_many` against one `encrypt` each. Picks nothing itself: the
/// table is what `LANES_FROM_FIELDS` was chosen from.
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
