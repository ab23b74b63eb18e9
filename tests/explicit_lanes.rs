//! The multi-lane paths against the one-field-at-a-time paths, byte for byte
//! (no service needed; every `cargo test`):
//!
//! * `encrypt_many` equals `encrypt` per value (deterministic ciphertexts
//!   byte-identical, random ones decrypt to the same value);
//! * documents with 0–24 encrypted values (top level, nested, in arrays,
//!   several keys, values of 0–1,000 bytes) decrypt, raw and as trees, to
//!   what field-by-field decryption gives;
//! * a bad tag, a truncated ciphertext or a missing key anywhere is the
//!   error the field-by-field walk meets first, and nothing is returned;
//! * automatic encryption's markings are replaced as one value at a time
//!   would replace them.
//!
//! Whether the AVX2 kernel runs here is printed; with the `scalar-sha512`
//! feature every path is `sha2`'s, and these tests must pass unchanged.

mod common;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use common::StaticKeys;
use csfle::{Algorithm, ExplicitEncrypter, KeyId, KeyRef};
use proptest::prelude::*;

fn keys() -> StaticKeys {
    let mut k = StaticKeys::default();
    for i in 1..=3u8 {
        k.add(KeyId::from_bytes([i; 16]), &[i.wrapping_mul(37); 96], &[]);
    }
    k
}

fn key(i: u8) -> KeyRef {
    KeyRef::Id(KeyId::from_bytes([i; 16]))
}

/// A value of some type allowed for `algorithm`, from a seed.
fn value(seed: u64, len: usize, algorithm: Algorithm) -> Bson {
    match seed % 5 {
        1 => Bson::Int64(seed as i64),
        2 => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: (0..len).map(|i| (seed as usize + i) as u8).collect(),
        }),
        3 => Bson::Int32(seed as i32),
        4 if algorithm == Algorithm::Random => {
            Bson::Document(doc! {"n": seed as i64, "s": "x".repeat(len)})
        }
        _ => Bson::String(
            (0..len)
                .map(|i| char::from(b'a' + ((seed as usize + i) % 26) as u8))
                .collect(),
        ),
    }
}

#[derive(Clone, Debug)]
struct Field {
    key: u8,
    algorithm: Algorithm,
    seed: u64,
    len: usize,
    /// 0: top level, 1: in a sub-document, 2: in an array.
    place: u8,
}

fn field() -> impl Strategy<Value = Field> {
    (1u8..=3, any::<bool>(), any::<u64>(), 0usize..1000, 0u8..3).prop_map(
        |(key, det, seed, len, place)| Field {
            key,
            algorithm: if det {
                Algorithm::Deterministic
            } else {
                Algorithm::Random
            },
            seed,
            len,
            place,
        },
    )
}

/// The plaintext document and its encrypted twin, each value encrypted on
/// its own (the scalar path).
fn documents(enc: &ExplicitEncrypter<StaticKeys>, fields: &[Field]) -> (Document, Document) {
    let (mut plain, mut encrypted) = (doc! {"_id": 1}, doc! {"_id": 1});
    let (mut sub_p, mut sub_e) = (Document::new(), Document::new());
    let (mut arr_p, mut arr_e) = (Vec::new(), Vec::new());
    for (i, f) in fields.iter().enumerate() {
        let v = value(f.seed, f.len, f.algorithm);
        let c = Bson::Binary(enc.encrypt(&v, &key(f.key), f.algorithm).unwrap());
        let name = format!("f{i}");
        match f.place {
            0 => {
                plain.insert(&name, v);
                encrypted.insert(&name, c);
            }
            1 => {
                sub_p.insert(&name, v);
                sub_e.insert(&name, c);
            }
            _ => {
                arr_p.push(v);
                arr_e.push(c);
            }
        }
        plain.insert(format!("plain{i}"), i as i32);
        encrypted.insert(format!("plain{i}"), i as i32);
    }
    plain.insert("sub", sub_p);
    encrypted.insert("sub", sub_e);
    plain.insert("arr", arr_p);
    encrypted.insert("arr", arr_e);
    (plain, encrypted)
}

/// The payloads of the encrypted values, in walk order.
fn ciphertexts(d: &mut Document) -> Vec<&mut Vec<u8>> {
    let mut out = Vec::new();
    for (_, v) in d.iter_mut() {
        let inner: Vec<&mut Bson> = match v {
            Bson::Document(s) => s.iter_mut().map(|(_, v)| v).collect(),
            Bson::Array(a) => a.iter_mut().collect(),
            v => vec![v],
        };
        for v in inner {
            if let Bson::Binary(b) = v
                && b.subtype == BinarySubtype::Encrypted
            {
                out.push(&mut b.bytes);
            }
        }
    }
    out
}

/// The first error a field-by-field decryption meets, in walk order.
fn first_field_error(enc: &ExplicitEncrypter<StaticKeys>, d: &Document) -> Option<String> {
    let mut values: Vec<&Bson> = Vec::new();
    for v in d.values() {
        match v {
            Bson::Document(s) => values.extend(s.values()),
            Bson::Array(a) => values.extend(a.iter()),
            v => values.push(v),
        }
    }
    values.into_iter().find_map(|v| match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            enc.decrypt(b).err().map(|e| e.to_string())
        }
        _ => None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn documents_decrypt_as_field_by_field(fields in proptest::collection::vec(field(), 0..25)) {
        let enc = ExplicitEncrypter::new(keys());
        let (plain, encrypted) = documents(&enc, &fields);
        prop_assert_eq!(enc.decrypt_document(&encrypted).unwrap(), plain.clone());
        let raw = bson::to_raw_document_buf(&encrypted).unwrap();
        let back = enc.decrypt_raw_document(&raw).unwrap();
        // Byte for byte the plaintext document: every value is written
        // back exactly as it was serialized before encryption.
        let want = bson::RawDocumentBuf::from_document(&plain).unwrap();
        prop_assert_eq!(back.as_bytes(), want.as_bytes());
        prop_assert_eq!(back.to_document().unwrap(), plain);
    }

    #[test]
    fn any_bad_field_is_the_walks_first_error(
        fields in proptest::collection::vec(field(), 1..25),
        bad in any::<prop::sample::Index>(),
        how in 0u8..4,
        at in any::<prop::sample::Index>(),
    ) {
        let enc = ExplicitEncrypter::new(keys());
        let (_, mut encrypted) = documents(&enc, &fields);
        let mut slots = ciphertexts(&mut encrypted);
        let j = bad.index(slots.len());
        let bytes = &mut *slots[j];
        match how {
            // A flipped bit anywhere after the header: tag or body.
            0 => { let i = 18 + at.index(bytes.len() - 18); bytes[i] ^= 0x01; }
            // A flipped bit in the tag.
            1 => { let n = bytes.len(); bytes[n - 1 - at.index(32)] ^= 0x80; }
            // Truncated by one AES block.
            2 => { let n = bytes.len(); bytes.truncate(n - 16); }
            // A key nobody has.
            _ => bytes[1..17].copy_from_slice(&[9; 16]),
        }
        drop(slots);
        let want = first_field_error(&enc, &encrypted).expect("a field was spoiled");
        let got = enc.decrypt_document(&encrypted).unwrap_err().to_string();
        prop_assert_eq!(&got, &want);
        let raw = bson::to_raw_document_buf(&encrypted).unwrap();
        let got = enc.decrypt_raw_document(&raw).unwrap_err().to_string();
        prop_assert_eq!(&got, &want);
    }

    #[test]
    fn encrypt_many_equals_encrypt(fields in proptest::collection::vec(field(), 0..25)) {
        let enc = ExplicitEncrypter::new(keys());
        let values: Vec<Bson> = fields.iter().map(|f| value(f.seed, f.len, f.algorithm)).collect();
        let refs: Vec<KeyRef> = fields.iter().map(|f| key(f.key)).collect();
        let jobs: Vec<(&Bson, &KeyRef, Algorithm)> = values
            .iter()
            .zip(&refs)
            .zip(&fields)
            .map(|((v, k), f)| (v, k, f.algorithm))
            .collect();
        let many = enc.encrypt_many(&jobs);
        prop_assert_eq!(many.len(), fields.len());
        for (((v, k), f), got) in values.iter().zip(&refs).zip(&fields).zip(many) {
            let got = got.unwrap();
            match f.algorithm {
                Algorithm::Deterministic => {
                    prop_assert_eq!(got, enc.encrypt(v, k, f.algorithm).unwrap());
                }
                Algorithm::Random => prop_assert_eq!(&enc.decrypt(&got).unwrap(), v),
            }
        }
    }
}

#[test]
fn encrypt_many_keeps_each_values_error() {
    let enc = ExplicitEncrypter::new(keys());
    let ok = Bson::String("x".into());
    let float = Bson::Double(1.5);
    let jobs = [
        (&ok, &key(1), Algorithm::Deterministic),
        (&float, &key(1), Algorithm::Deterministic),
        (&ok, &key(7), Algorithm::Random),
        (&ok, &key(2), Algorithm::Random),
    ];
    let got = enc.encrypt_many(&jobs);
    assert!(got[0].is_ok() && got[3].is_ok());
    assert_eq!(
        got[1].as_ref().unwrap_err().to_string(),
        enc.encrypt(&float, &key(1), Algorithm::Deterministic)
            .unwrap_err()
            .to_string()
    );
    assert!(got[2].is_err());
}
