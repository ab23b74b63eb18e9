//! libmongocrypt's fixed-RNG payload vectors, replayed byte for byte.
//! Unit tests (not `tests/`): the fixed random source exists only inside
//! the crate. The files are vendored under `tests/data/libmongocrypt/`
//! (Apache-2.0, snapshot `3a65b40d`) and read at run time; the random
//! bytes each case feeds are libmongocrypt's, in its order, from its
//! `test/test-mongocrypt-ctx-encrypt.c` (transcribed below where they are
//! inline there, read from the vendored `RNG_DATA.h` where they are in a
//! file). Every test counts the vectors it ran.

use super::Error;
use super::aead::QeDataKey;
use super::explicit::{
    QeAlgorithm, QeEncryptOptions, QeKeys, QueryType, RangeOptions, encrypt_range_expression,
    encrypt_value,
};
use super::payload::{INSERT_UPDATE_V2, InsertUpdatePayload, QeKey};
use super::placeholder::{ENCRYPTION_PLACEHOLDER, Placeholder};
use super::random::QeRandom;
use super::range::RangeError;
use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{Bson, Document, RawBson, RawDocumentBuf};
use std::path::PathBuf;

// The reader of the vendored libmongocrypt files, shared with the
// integration tests (one module for the crate: `crate::qe::test_vectors`).
use crate::qe::test_vectors as qe_vectors;
use qe_vectors::hex;

fn data(rel: &str) -> PathBuf {
    qe_vectors::data_dir().join(rel)
}

fn text(rel: &str) -> String {
    let path = data(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An extended JSON file as a document (field order kept).
fn ejson(rel: &str) -> Document {
    qe_vectors::ejson_document(&text(rel))
}

/// The bytes of a C string literal split over lines, as libmongocrypt's
/// `RNG_DATA.h` files define `RNG_DATA`: only `\xNN` escapes inside the
/// quotes.
fn rng_data_h(rel: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text(rel).lines() {
        let (Some(start), Some(end)) = (line.find('"'), line.rfind('"')) else {
            continue;
        };
        assert!(end > start, "{rel}: one quote on a line");
        let literal = &line[start + 1..end];
        let mut rest = literal;
        while !rest.is_empty() {
            let escape = rest
                .strip_prefix("\\x")
                .unwrap_or_else(|| panic!("{rel}: not a \\x escape: {rest}"));
            out.push(u8::from_str_radix(&escape[..2], 16).expect("hex escape"));
            rest = &escape[2..];
        }
    }
    assert!(!out.is_empty(), "{rel}: no RNG_DATA");
    out
}

/// libmongocrypt's test keys (`test/data/keys/`): `ABCDEFAB…` (the user
/// key of most cases) and `12345678…` (the index key).
struct Keys {
    abc: QeDataKey,
    k123: QeDataKey,
}

const ABC_ID: &str = "abcdefab123498761234123456789012";
const K123_ID: &str = "12345678123498761234123456789012";

fn id(s: &str) -> [u8; 16] {
    hex(s).try_into().expect("16 bytes")
}

impl Keys {
    fn load() -> Keys {
        let key = |name: &str| {
            let material = hex(text(&format!("keys/{name}-key-material.txt")).trim());
            QeDataKey::new(&material).expect("96-byte key")
        };
        Keys {
            abc: key("ABCDEFAB123498761234123456789012"),
            k123: key("12345678123498761234123456789012"),
        }
    }

    fn by_id(&self, key_id: &[u8; 16]) -> Option<&QeDataKey> {
        if *key_id == id(ABC_ID) {
            Some(&self.abc)
        } else if *key_id == id(K123_ID) {
            Some(&self.k123)
        } else {
            None
        }
    }

    fn abc(&self) -> QeKey<'_> {
        QeKey {
            id: id(ABC_ID),
            key: &self.abc,
        }
    }

    fn k123(&self) -> QeKey<'_> {
        QeKey {
            id: id(K123_ID),
            key: &self.k123,
        }
    }
}

/// The subtype-6 binaries of `b` whose first byte is one of `first`, in
/// document order.
fn binaries(b: &Bson, first: &[u8], out: &mut Vec<Vec<u8>>) {
    match b {
        Bson::Binary(bin)
            if bin.subtype == BinarySubtype::Encrypted
                && bin.bytes.first().is_some_and(|f| first.contains(f)) =>
        {
            out.push(bin.bytes.clone())
        }
        Bson::Document(d) => d.values().for_each(|v| binaries(v, first, out)),
        Bson::Array(a) => a.iter().for_each(|v| binaries(v, first, out)),
        _ => {}
    }
}

/// The first byte of every payload: 11, 12, 13, 16.
const PAYLOADS: [u8; 4] = [11, 12, 13, 16];

/// One of libmongocrypt's automatic-encryption vectors: every placeholder
/// of `mongocryptd-reply.json`, in order, through [`Placeholder::encrypt`]
/// with one random source, each byte-equal to the payload at the same
/// place in `encrypted-payload.json`. Returns how many payloads matched.
fn auto_vector(dir: &str, rng: Vec<u8>) -> Result<usize, Error> {
    let keys = Keys::load();
    let reply = ejson(&format!("{dir}/mongocryptd-reply.json"));
    let result = Bson::Document(reply.get_document("result").expect("result").clone());
    let mut placeholders = Vec::new();
    binaries(&result, &[ENCRYPTION_PLACEHOLDER], &mut placeholders);
    let mut expected = Vec::new();
    binaries(
        &Bson::Document(ejson(&format!("{dir}/encrypted-payload.json"))),
        &PAYLOADS,
        &mut expected,
    );
    assert!(!placeholders.is_empty(), "{dir}: no placeholder");
    assert_eq!(placeholders.len(), expected.len(), "{dir}");
    let mut rng = QeRandom::fixed(rng);
    for (placeholder, want) in placeholders.iter().zip(&expected) {
        let got = Placeholder::parse(placeholder)?.encrypt(|id| keys.by_id(id), &mut rng)?;
        assert_eq!(hexs(&got), hexs(want), "{dir}");
    }
    Ok(expected.len())
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// test-mongocrypt-ctx-encrypt.c: "First 16 bytes are IV for 'p' field in
/// FLE2InsertUpdatePayload. Second 16 bytes are IV for 'v' field."
const INDEXED_RNG: &str = "c743d675769ea788d5e5c440db240df94cd964104381e661fa1fa05c498ead21";
/// test-mongocrypt-ctx-encrypt.c: "16 bytes of random data are used for
/// IV. This IV produces the expected test ciphertext."
const UNINDEXED_RNG: &str = "4d069564f5a05e9e3523b98f575acb15";

#[test]
fn automatic_encryption_vectors() {
    let mut run = 0;
    // _test_encrypt_fle2_insert_payload, …_unindexed_encrypted_payload,
    // …_find_payload (no random data: find payloads draw none).
    run += auto_vector("fle2-insert-v2", hex(INDEXED_RNG)).unwrap();
    run += auto_vector("fle2-insert-unindexed-v2", hex(UNINDEXED_RNG)).unwrap();
    run += auto_vector("fle2-find-equality-v2", Vec::new()).unwrap();
    assert_eq!(run, 3);
}

#[test]
fn range_insert_and_find_vectors() {
    let mut inserts = 0;
    let mut finds = 0;
    // _test_encrypt_fle2_insert_range_payload_*: the RNG_DATA.h of the
    // matching directory without "-v2".
    for ty in [
        "int32",
        "int64",
        "date",
        "double",
        "double-precision",
        "decimal128",
    ] {
        let rng = rng_data_h(&format!("fle2-insert-range/{ty}/RNG_DATA.h"));
        inserts += auto_vector(&format!("fle2-insert-range/{ty}-v2"), rng)
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
        finds += auto_vector(&format!("fle2-find-range/{ty}-v2"), Vec::new())
            .unwrap_or_else(|e| panic!("{ty}: {e}"));
    }
    assert_eq!((inserts, finds), (6, 6));
    // Decimal128 with precision: refused, typed; skipped by name.
    let rng = rng_data_h("fle2-insert-range/decimal128-precision/RNG_DATA.h");
    for dir in [
        "fle2-insert-range/decimal128-precision-v2",
        "fle2-find-range/decimal128-precision-v2",
    ] {
        let e = auto_vector(dir, rng.clone()).unwrap_err();
        assert_eq!(
            e,
            Error::Range(RangeError::Decimal128PrecisionUnsupported),
            "{dir}"
        );
        eprintln!("skipped (Decimal128 with precision, refused): {dir}");
    }
}

/// The value `v` of a `{v: …}` file.
fn v_of(doc: &Document) -> RawBson {
    RawBson::try_from(doc.get("v").expect("v").clone()).expect("raw value")
}

fn expected_v(rel: &str) -> Vec<u8> {
    match ejson(rel).get("v") {
        Some(Bson::Binary(b)) => b.bytes.clone(),
        other => panic!("{rel}: v is {other:?}"),
    }
}

fn range_options(doc: &Document) -> RangeOptions {
    RangeOptions {
        min: doc.get("min").cloned(),
        max: doc.get("max").cloned(),
        sparsity: doc.get("sparsity").map(|s| match s {
            Bson::Int64(n) => *n,
            other => panic!("sparsity {other:?}"),
        }),
        trim_factor: doc.get("trimFactor").map(|s| match s {
            Bson::Int32(n) => *n,
            other => panic!("trimFactor {other:?}"),
        }),
        precision: doc.get("precision").map(|s| match s {
            Bson::Int32(n) => *n,
            other => panic!("precision {other:?}"),
        }),
    }
}

/// One explicit insert (libmongocrypt's `ee_testcase` without query
/// type): `value` encrypted with `options`, compared with `want`; the
/// random source must have `left` bytes left.
fn explicit_insert(
    value: &RawBson,
    keys: QeKeys<'_>,
    options: &QeEncryptOptions<'_>,
    rng: Vec<u8>,
    want: &[u8],
    left: usize,
) {
    let mut rng = QeRandom::fixed(rng);
    let got = encrypt_value(value.as_raw_bson_ref(), keys, options, &mut rng).unwrap();
    assert_eq!(hexs(&got), hexs(want));
    assert_eq!(rng.fixed_remaining(), Some(left), "random bytes left");
}

/// `_test_encrypt_fle2_explicit`'s Unindexed and Indexed cases.
#[test]
fn explicit_unindexed_and_indexed_vectors() {
    let keys = Keys::load();
    let both = QeKeys {
        user: keys.abc(),
        index: Some(keys.k123()),
    };
    let value = RawBson::String("value123".into());
    let options = |algorithm, contention_factor, query_type| QeEncryptOptions {
        algorithm,
        contention_factor,
        query_type,
        range_options: None,
    };
    let mut run = 0;

    // "Unindexed (v2)": the expected value is inline in the C test.
    let want = base64::engine::general_purpose::STANDARD
        .decode("EKvN76sSNJh2EjQSNFZ4kBICTQaVZPWgXp41I7mPV1rLFVl3jjP90PgD4T+Mtubn/mm4CKsKGaV1yxlic9Dty1Adef4Y+bsLGKhBbCa5eojM/A==")
        .unwrap();
    explicit_insert(
        &value,
        both,
        &options(QeAlgorithm::Unindexed, None, None),
        hex(UNINDEXED_RNG),
        &want,
        0,
    );
    run += 1;

    // "Indexed (v2)".
    let indexed = expected_v("fle2-explicit/insert-indexed-v2.json");
    explicit_insert(
        &value,
        both,
        &options(QeAlgorithm::Indexed, Some(0), None),
        hex(INDEXED_RNG),
        &indexed,
        0,
    );
    run += 1;

    // "Indexed with non-zero ContentionFactor. Random number chosen is 0
    // (v2)" and "… is 1 (v2)": the first 8 bytes are the contention draw.
    for (draw, file) in [
        ("0000000000000000", "fle2-explicit/insert-indexed-v2.json"),
        (
            "0100000000000000",
            "fle2-explicit/insert-indexed-contentionFactor1-v2.json",
        ),
    ] {
        explicit_insert(
            &value,
            both,
            &options(QeAlgorithm::Indexed, Some(1), None),
            hex(&format!("{draw}{INDEXED_RNG}")),
            &expected_v(file),
            0,
        );
        run += 1;
    }

    // "omitted index_key_id defaults to using user_key_id (v2)".
    explicit_insert(
        &value,
        QeKeys {
            user: keys.abc(),
            index: None,
        },
        &options(QeAlgorithm::Indexed, Some(0), None),
        hex(INDEXED_RNG),
        &expected_v("fle2-explicit/insert-indexed-same-user-and-index-key-v2.json"),
        0,
    );
    run += 1;

    // "algorithm='Indexed' with query type (v2)", and with contention
    // factor 1: find payloads draw nothing.
    let value = RawBson::Int32(123456);
    for (cf, file) in [
        (0, "fle2-explicit/find-indexed-v2.json"),
        (1, "fle2-explicit/find-indexed-contentionFactor1-v2.json"),
    ] {
        explicit_insert(
            &value,
            both,
            &options(QeAlgorithm::Indexed, Some(cf), Some(QueryType::Equality)),
            Vec::new(),
            &expected_v(file),
            0,
        );
        run += 1;
    }
    assert_eq!(run, 7);
}

/// The number of edges of a range insert payload (its `g`).
fn edge_count(payload: &[u8]) -> usize {
    assert_eq!(payload[0], INSERT_UPDATE_V2);
    let doc = bson::RawDocument::from_bytes(&payload[1..]).unwrap();
    doc.get_array("g").unwrap().into_iter().count()
}

/// `_test_encrypt_fle2_explicit`'s Range cases: inserts with their
/// `RNG_DATA.h`, finds (expressions, payload id 0 as after
/// `mc_reset_payloadId_for_testing`) with none.
#[test]
fn explicit_range_vectors() {
    let keys = Keys::load();
    let mut inserts = 0;
    for dir in ["int32", "sparsity-2", "double-precision", "double"] {
        let base = format!("fle2-insert-range-explicit/{dir}");
        let range = range_options(&ejson(&format!("{base}/rangeopts.json")));
        let options = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(0),
            query_type: None,
            range_options: Some(&range),
        };
        let value = v_of(&ejson(&format!("{base}/value-to-encrypt.json")));
        let want = expected_v(&format!("{base}/encrypted-payload-v2.json"));
        let rng = rng_data_h(&format!("{base}/RNG_DATA.h"));
        // p and v, then one IV per edge: what is left is the rest.
        let left = rng.len() - 16 * (2 + edge_count(&want));
        explicit_insert(
            &value,
            QeKeys {
                user: keys.abc(),
                index: Some(keys.k123()),
            },
            &options,
            rng,
            &want,
            left,
        );
        inserts += 1;
    }

    let mut finds = 0;
    // (directory, index key, contention factor) as the C test sets them.
    let cases = [
        ("int32", Some(keys.abc()), 4),
        ("double-precision", Some(keys.k123()), 0),
        ("double", Some(keys.k123()), 0),
        ("int32-openinterval", None, 0),
    ];
    for (dir, index, cf) in cases {
        let base = format!("fle2-find-range-explicit/{dir}");
        let range = range_options(&ejson(&format!("{base}/rangeopts.json")));
        let options = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(cf),
            query_type: Some(QueryType::Range),
            range_options: Some(&range),
        };
        let msg = ejson(&format!("{base}/value-to-encrypt.json"));
        let expression = RawDocumentBuf::from_document(msg.get_document("v").unwrap()).unwrap();
        let got = encrypt_range_expression(
            &expression,
            QeKeys {
                user: keys.abc(),
                index,
            },
            &options,
            0,
        )
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
        let want = ejson(&format!("{base}/encrypted-payload-v2.json"));
        let want = RawDocumentBuf::from_document(want.get_document("v").unwrap()).unwrap();
        assert_eq!(hexs(got.as_bytes()), hexs(want.as_bytes()), "{dir}");
        finds += 1;
    }
    assert_eq!((inserts, finds), (4, 4));
}

/// `_test_range_sends_cryptoParams`'s explicit cases: user key
/// `12345678…` (also the index key), contention factor 1, libmongocrypt's
/// `TEST_BIN(1024)` as random data (bytes 1, 2, 3, 1, 2, 3, …): the
/// contention draw is 0x0201030201030201, odd, so 1.
#[test]
fn range_sends_crypto_params_vectors() {
    let keys = Keys::load();
    let user = QeKeys {
        user: keys.k123(),
        index: None,
    };
    let test_bin: Vec<u8> = (0..1024).map(|i| (i % 3) as u8 + 1).collect();
    let opts = |min: Bson, max: Bson, sparsity, trim_factor, precision| RangeOptions {
        min: Some(min),
        max: Some(max),
        sparsity,
        trim_factor,
        precision,
    };
    let mut inserts = 0;
    for (dir, range, value) in [
        (
            "explicit-insert-int32",
            opts(Bson::Int32(0), Bson::Int32(1234567), Some(3), Some(4), None),
            RawBson::Int32(123456),
        ),
        (
            "explicit-insert-int32-defaults",
            opts(Bson::Int32(0), Bson::Int32(1234567), None, None, None),
            RawBson::Int32(123456),
        ),
        (
            "explicit-insert-double",
            opts(
                Bson::Double(0.0),
                Bson::Double(1234567.0),
                Some(3),
                Some(4),
                Some(2),
            ),
            RawBson::Double(123456.0),
        ),
    ] {
        let options = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(1),
            query_type: None,
            range_options: Some(&range),
        };
        let want = expected_v(&format!("range-sends-cryptoParams/{dir}/expected.json"));
        let left = test_bin.len() - 8 - 16 * (2 + edge_count(&want));
        explicit_insert(&value, user, &options, test_bin.clone(), &want, left);
        inserts += 1;
    }
    let mut finds = 0;
    for (dir, range) in [
        (
            "explicit-find-int32-defaults",
            opts(Bson::Int32(0), Bson::Int32(1234567), None, None, None),
        ),
        (
            "explicit-find-int32",
            opts(Bson::Int32(0), Bson::Int32(1234567), Some(3), Some(4), None),
        ),
    ] {
        let options = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(1),
            query_type: Some(QueryType::Range),
            range_options: Some(&range),
        };
        let base = format!("range-sends-cryptoParams/{dir}");
        let msg = ejson(&format!("{base}/to-encrypt.json"));
        let expression = RawDocumentBuf::from_document(msg.get_document("v").unwrap()).unwrap();
        let got = encrypt_range_expression(&expression, user, &options, 0).unwrap();
        let want = ejson(&format!("{base}/expected.json"));
        let want = RawDocumentBuf::from_document(want.get_document("v").unwrap()).unwrap();
        assert_eq!(hexs(got.as_bytes()), hexs(want.as_bytes()), "{dir}");
        finds += 1;
    }
    assert_eq!((inserts, finds), (3, 2));
}

/// Insert payloads decrypt back to their value (what libmongocrypt's
/// decryption does with a payload 11 it meets), with the user key only.
#[test]
fn insert_payloads_decrypt() {
    let keys = Keys::load();
    let mut checked = 0;
    for file in [
        "fle2-explicit/insert-indexed-v2.json",
        "fle2-explicit/insert-indexed-contentionFactor1-v2.json",
        "fle2-explicit/insert-indexed-same-user-and-index-key-v2.json",
        "fle2-insert-range-explicit/int32/encrypted-payload-v2.json",
        "fle2-insert-range-explicit/double/encrypted-payload-v2.json",
    ] {
        let blob = expected_v(file);
        let payload = InsertUpdatePayload::parse(&blob).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(payload.user_key_id(), id(ABC_ID), "{file}");
        let plaintext = payload.decrypt(&keys.abc).unwrap();
        let expected: Vec<u8> = match payload.bson_type() {
            // "value123": int32 length, bytes, NUL.
            2 => [&9i32.to_le_bytes()[..], b"value123\0"].concat(),
            0x10 => 123456i32.to_le_bytes().to_vec(),
            0x01 => 123.456f64.to_le_bytes().to_vec(),
            other => panic!("{file}: type {other}"),
        };
        assert_eq!(&plaintext[..], &expected[..], "{file}");
        assert!(payload.decrypt(&keys.k123).is_err(), "{file}");
        // Truncated anywhere: an error, never a panic.
        for cut in 0..blob.len() {
            if let Ok(p) = InsertUpdatePayload::parse(&blob[..cut]) {
                let _ = p.decrypt(&keys.abc);
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// The token key reaches the payloads: the same key material gives the
/// same `e` (ServerDataEncryptionLevel1Token) in every insert.
#[test]
fn server_token_is_the_index_keys() {
    let keys = Keys::load();
    let token = super::tokens::ServerDataEncryptionLevel1Token::derive(keys.k123.token_key());
    let blob = expected_v("fle2-explicit/insert-indexed-v2.json");
    let doc = bson::RawDocument::from_bytes(&blob[1..]).unwrap();
    assert_eq!(doc.get_binary("e").unwrap().bytes, token.as_bytes());
}
