//! Per-field cost: csfle's encrypt (deterministic, random) and decrypt of one
//! string value, next to the primitive floor — the AES-256-CBC and
//! HMAC-SHA-512 calls the FLE1 format requires, with precomputed key
//! schedules and HMAC states, and nothing else — and, with
//! `--features libmongocrypt-bench`, libmongocrypt's explicit encrypt/decrypt
//! of the same value under the same key.
//!
//! `cargo bench --features bench --bench field` prints the CPU, the SHA-512
//! kernel that runs (`CSFLE_SHA512_KERNEL` forces one) and the
//! libmongocrypt version first, and a table of medians and ratios at the
//! end (the libmongocrypt column read from this library version's own
//! results, so runs against two builds do not mix).

#[path = "support/mod.rs"]
mod support;

use aes::{Aes256Dec, Aes256Enc};
use bson::RawBsonRef;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use criterion::{Criterion, Throughput};
use csfle::__private::{decrypt_value, encrypt_value};
use csfle::{Algorithm, DataKey, Fle1Blob, KeyId};
use hmac::{Hmac, Mac};
use sha2::Sha512;
use std::hint::black_box;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The floor: exactly the primitive calls of the format, precomputed keys.
struct Floor {
    mac: Hmac<Sha512>,
    iv_mac: Hmac<Sha512>,
    enc: Aes256Enc,
    dec: Aes256Dec,
}

impl Floor {
    fn new(k: &[u8; 96]) -> Self {
        Floor {
            mac: <Hmac<Sha512> as KeyInit>::new_from_slice(&k[..32]).unwrap(),
            enc: Aes256Enc::new_from_slice(&k[32..64]).unwrap(),
            dec: Aes256Dec::new_from_slice(&k[32..64]).unwrap(),
            iv_mac: <Hmac<Sha512> as KeyInit>::new_from_slice(&k[64..]).unwrap(),
        }
    }

    fn seal(&self, iv: Option<[u8; 16]>, aad: &[u8], pt: &[u8], out: &mut Vec<u8>) {
        let al = ((aad.len() as u64) * 8).to_be_bytes();
        let iv = iv.unwrap_or_else(|| {
            let mut h = self.iv_mac.clone();
            h.update(aad);
            h.update(&al);
            h.update(pt);
            h.finalize().into_bytes()[..16].try_into().unwrap()
        });
        out.clear();
        out.extend_from_slice(&iv);
        let padded = (pt.len() / 16 + 1) * 16;
        out.resize(16 + padded, 0);
        out[16..16 + pt.len()].copy_from_slice(pt);
        cbc::Encryptor::<&Aes256Enc>::inner_iv_init(&self.enc, &iv.into())
            .encrypt_padded::<Pkcs7>(&mut out[16..], pt.len())
            .unwrap();
        let mut m = self.mac.clone();
        m.update(aad);
        m.update(out);
        m.update(&al);
        let t = m.finalize().into_bytes();
        out.extend_from_slice(&t[..32]);
    }

    fn open(&self, aad: &[u8], ct: &[u8], out: &mut Vec<u8>) {
        let al = ((aad.len() as u64) * 8).to_be_bytes();
        let (body, tag) = ct.split_at(ct.len() - 32);
        let mut m = self.mac.clone();
        m.update(aad);
        m.update(body);
        m.update(&al);
        assert!(bool::from(m.finalize().into_bytes()[..32].ct_eq(tag)));
        out.clear();
        out.extend_from_slice(&body[16..]);
        let iv: [u8; 16] = body[..16].try_into().unwrap();
        let n = cbc::Decryptor::<&Aes256Dec>::inner_iv_init(&self.dec, &iv.into())
            .decrypt_padded::<Pkcs7>(out)
            .unwrap()
            .len();
        out.truncate(n);
    }
}

fn string_plaintext(s: &str) -> Vec<u8> {
    let mut v = ((s.len() + 1) as i32).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

const SIZES: [(&str, usize); 2] = [("20B", 20), ("1KiB", 1024)];

fn benches(c: &mut Criterion) {
    let key = DataKey::new(KeyId::from_bytes(support::KEY_ID), &support::DATA_KEY).unwrap();
    let floor = Floor::new(&support::DATA_KEY);
    #[cfg(feature = "libmongocrypt-bench")]
    let lmc = support::lmc::Lmc::new();

    for (label, len) in SIZES {
        let s: String = "x".repeat(len);
        let value = RawBsonRef::String(&s);
        let pt = string_plaintext(&s);
        let mut aad = [0u8; 18];
        aad[0] = 1;
        aad[1..17].copy_from_slice(&support::KEY_ID);
        aad[17] = 2;
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(2048);
        let det_blob = encrypt_value(&key, Algorithm::Deterministic, value, &mut scratch).unwrap();

        for (op, det) in [("encrypt_det", true), ("encrypt_random", false)] {
            let mut g = c.benchmark_group(format!("{op}/{label}"));
            g.throughput(Throughput::Elements(1));
            let alg = if det {
                Algorithm::Deterministic
            } else {
                Algorithm::Random
            };
            g.bench_function("csfle", |b| {
                b.iter(|| encrypt_value(&key, alg, black_box(value), &mut scratch).unwrap())
            });
            g.bench_function("floor", |b| {
                let iv = if det { None } else { Some([7u8; 16]) };
                b.iter(|| floor.seal(iv, &aad, black_box(&pt), &mut out))
            });
            #[cfg(feature = "libmongocrypt-bench")]
            g.bench_function(
                criterion::BenchmarkId::new("libmongocrypt", support::lmc::Lmc::version()),
                |b| {
                    let raw = bson::RawBson::String(s.clone());
                    b.iter(|| lmc.encrypt(det, black_box(raw.clone())))
                },
            );
            g.finish();
        }

        let mut g = c.benchmark_group(format!("decrypt/{label}"));
        g.throughput(Throughput::Elements(1));
        let blob = Fle1Blob::parse(&det_blob).unwrap();
        let mut plain = Vec::new();
        g.bench_function("csfle", |b| {
            b.iter(|| {
                let blob = Fle1Blob::parse(black_box(&det_blob)).unwrap();
                let v = decrypt_value(&key, &blob, &mut plain, &mut scratch).unwrap();
                black_box(v.as_str().map(str::len));
            })
        });
        g.bench_function("floor", |b| {
            b.iter(|| floor.open(&blob.aad(), black_box(blob.ciphertext), &mut out))
        });
        #[cfg(feature = "libmongocrypt-bench")]
        g.bench_function(
            criterion::BenchmarkId::new("libmongocrypt", support::lmc::Lmc::version()),
            |b| b.iter(|| lmc.decrypt_value(black_box(&det_blob))),
        );
        g.finish();
    }

    // A data-key cache hit, and a whole ClientEncryption::encrypt on a hit.
    // On a hit nothing is awaited, so the futures complete on first poll.
    {
        use csfle::keyvault::{KeyCache, KeyCacheOptions, KeyVault, MemoryKeyVault};
        use futures_util::FutureExt;
        let vault = MemoryKeyVault::new();
        vault
            .insert_key(&support::key_document())
            .now_or_never()
            .unwrap()
            .unwrap();
        let kms = support::kms();
        let cache = KeyCache::new(KeyCacheOptions::default());
        let refs = [csfle::KeyRef::Id(KeyId::from_bytes(support::KEY_ID))];
        cache
            .get(&vault, &kms, &refs)
            .now_or_never()
            .unwrap()
            .unwrap();
        let client = csfle::ClientEncryption::new(vault, support::kms());
        let value = bson::Bson::from("x".repeat(20));
        client
            .encrypt(&value, &refs[0], Algorithm::Deterministic)
            .now_or_never()
            .unwrap()
            .unwrap();
        let vault2 = MemoryKeyVault::new();
        vault2
            .insert_key(&support::key_document())
            .now_or_never()
            .unwrap()
            .unwrap();

        let mut g = c.benchmark_group("key_cache");
        g.throughput(Throughput::Elements(1));
        g.bench_function("hit", |b| {
            b.iter(|| {
                cache
                    .get(&vault2, &kms, black_box(&refs))
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
        g.bench_function("client_encrypt_det_20B_on_hit", |b| {
            b.iter(|| {
                client
                    .encrypt(black_box(&value), &refs[0], Algorithm::Deterministic)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
        g.finish();
    }

    // One SHA-512 block: `sha2`'s compression (its own AVX2 backend where
    // the CPU has it) against the multi-lane kernels csfle's document
    // paths use, per block (eight or four blocks per call).
    let mut g = c.benchmark_group("sha512_block");
    let blocks: Vec<csfle_sha512_lanes::Block> = (0..8u8).map(|i| [i; 128]).collect();
    g.throughput(Throughput::Elements(1));
    let mut state = [0x6a09e667f3bcc908u64; 8];
    g.bench_function("sha2", |b| {
        b.iter(|| {
            sha2::block_api::compress512(black_box(&mut state), std::slice::from_ref(&blocks[0]))
        })
    });
    g.throughput(Throughput::Elements(csfle_sha512_lanes::LANES as u64));
    let mut states4 = [[0x6a09e667f3bcc908u64; 8]; csfle_sha512_lanes::LANES];
    g.bench_function("lanes_x4", |b| {
        b.iter(|| {
            csfle_sha512_lanes::compress512_x4(
                black_box(&mut states4),
                core::array::from_fn(|i| &blocks[i]),
            )
        })
    });
    // An HMAC's end in four lanes: each lane's last inner block and its
    // outer hash (two blocks per lane, the digest kept in the registers).
    g.throughput(Throughput::Elements(2 * csfle_sha512_lanes::LANES as u64));
    let (first, second, tail) = (
        [0x6a09e667f3bcc908u64; 8],
        [0xbb67ae8584caa73bu64; 8],
        [0x5au8; 64],
    );
    g.bench_function("nested_x4", |b| {
        b.iter(|| {
            csfle_sha512_lanes::compress512_nested_x4(
                [black_box(&first); csfle_sha512_lanes::LANES],
                core::array::from_fn(|i| &blocks[i]),
                [&second; csfle_sha512_lanes::LANES],
                &tail,
            )
        })
    });
    g.throughput(Throughput::Elements(csfle_sha512_lanes::WIDE_LANES as u64));
    let mut states8 = [[0x6a09e667f3bcc908u64; 8]; csfle_sha512_lanes::WIDE_LANES];
    g.bench_function("lanes_x8", |b| {
        b.iter(|| {
            csfle_sha512_lanes::compress512_x8(
                black_box(&mut states8),
                core::array::from_fn(|i| &blocks[i]),
            )
        })
    });
    g.finish();

    // The cost of a fork-safe random IV: csfle's per-thread ChaCha12 (one
    // atomic load to detect fork) against asking the OS for every IV.
    let mut g = c.benchmark_group("iv16");
    g.throughput(Throughput::Elements(1));
    let mut iv = [0u8; 16];
    g.bench_function("csfle", |b| {
        b.iter(|| csfle::fill_random(black_box(&mut iv)).unwrap())
    });
    g.bench_function("os_getrandom", |b| {
        use rand::TryRng;
        b.iter(|| {
            rand::rngs::SysRng
                .try_fill_bytes(black_box(&mut iv))
                .unwrap()
        })
    });
    g.finish();
}

/// Criterion's median estimate (ns) for `group/function`, read back from
/// `target/criterion` (`function` may be `name/parameter`).
fn criterion_median(group: &str, func: &str) -> Option<f64> {
    let estimates = std::path::Path::new("target/criterion")
        .join(criterion_safe(group))
        .join(
            func.split('/')
                .map(criterion_safe)
                .collect::<Vec<_>>()
                .join("/"),
        )
        .join("new/estimates.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(estimates).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// A name as criterion spells it in a directory name.
fn criterion_safe(name: &str) -> String {
    name.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_")
}

/// The function id of this run's libmongocrypt: its version is the
/// parameter, so a run against another build reads its own results.
#[cfg(feature = "libmongocrypt-bench")]
fn lmc_function() -> Option<String> {
    Some(format!("libmongocrypt/{}", support::lmc::Lmc::version()))
}

#[cfg(not(feature = "libmongocrypt-bench"))]
fn lmc_function() -> Option<String> {
    None
}

/// Prints per-field figures and ratios from this run's medians.
fn report() {
    println!(
        "\n| operation | csfle | floor | csfle / floor | libmongocrypt | libmongocrypt / csfle |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, _) in SIZES {
        for op in ["encrypt_det", "encrypt_random", "decrypt"] {
            let group = format!("{op}/{label}");
            let (Some(ours), Some(fl)) = (
                criterion_median(&group, "csfle"),
                criterion_median(&group, "floor"),
            ) else {
                continue;
            };
            let lmc = lmc_function().and_then(|f| criterion_median(&group, &f));
            println!(
                "| {group} | {:.0} ns | {:.0} ns | {:.2}x | {} | {} |",
                ours,
                fl,
                ours / fl,
                lmc.map_or("-".into(), |l| format!("{l:.0} ns")),
                lmc.map_or("-".into(), |l| format!("{:.1}x", l / ours)),
            );
        }
    }
    if let (Some(ours), Some(os)) = (
        criterion_median("iv16", "csfle"),
        criterion_median("iv16", "os_getrandom"),
    ) {
        println!(
            "\nrandom 16-byte IV: csfle {ours:.1} ns, OS getrandom per IV {os:.1} ns ({:.1}x)",
            os / ours
        );
    }
    if let (Some(sha2), Some(x4), Some(x8)) = (
        criterion_median("sha512_block", "sha2"),
        criterion_median("sha512_block", "lanes_x4"),
        criterion_median("sha512_block", "lanes_x8"),
    ) {
        let (x4, x8) = (x4 / 4.0, x8 / 8.0);
        println!(
            "SHA-512 compression per block: sha2 {sha2:.1} ns, four lanes {x4:.1} ns ({:.2}x), eight lanes {x8:.1} ns ({:.2}x); kernel: {}",
            sha2 / x4,
            sha2 / x8,
            csfle_sha512_lanes::selected_kernel()
        );
    }
    if let Some(nested) = criterion_median("sha512_block", "nested_x4") {
        println!(
            "HMAC end in four lanes (last inner block and outer block): {:.1} ns per block",
            nested / 8.0
        );
    }
    if let (Some(hit), Some(enc)) = (
        criterion_median("key_cache", "hit"),
        criterion_median("key_cache", "client_encrypt_det_20B_on_hit"),
    ) {
        println!(
            "data-key cache hit: {hit:.1} ns; ClientEncryption::encrypt (det, 20 B) on a hit: {enc:.0} ns"
        );
    }
}

fn main() {
    support::print_machine();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    report();
}
