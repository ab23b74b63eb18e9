//! Property tests: round trips, determinism, tamper detection, and no panic on
//! arbitrary input.

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, doc};
use csfle::keyvault::KeyRing;
use csfle::{Algorithm, ExplicitEncrypter, KeyRef};
use proptest::prelude::*;
use std::sync::OnceLock;

mod common;

fn encrypter() -> &'static ExplicitEncrypter<KeyRing> {
    static E: OnceLock<ExplicitEncrypter<KeyRing>> = OnceLock::new();
    E.get_or_init(common::fixed_encrypter)
}

fn key() -> KeyRef {
    KeyRef::AltName("fuzz".into())
}

fn det_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        ".{0,300}".prop_map(Bson::String),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<i64>().prop_map(|m| Bson::DateTime(bson::DateTime::from_millis(m))),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
        (any::<u32>(), any::<u32>()).prop_map(|(t, i)| Bson::Timestamp(bson::Timestamp {
            time: t,
            increment: i
        })),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        "[^\u{0}]{0,50}".prop_map(Bson::JavaScriptCode),
    ]
}

fn rand_only_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<u64>().prop_map(|b| Bson::Double(f64::from_bits(b))),
        any::<bool>().prop_map(Bson::Boolean),
        any::<[u8; 16]>().prop_map(|b| Bson::Decimal128(bson::Decimal128::from_bytes(b))),
        proptest::collection::vec(det_value(), 0..5).prop_map(Bson::Array),
        proptest::collection::vec(("[a-z]{1,5}", det_value()), 0..5)
            .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
    ]
}

fn bytes_of(v: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    doc! {"v": v.clone()}.to_writer(&mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn det_round_trip_and_determinism(v in det_value()) {
        let e = encrypter();
        let a = e.encrypt(&v, &key(), Algorithm::Deterministic).unwrap();
        let b = e.encrypt(&v, &key(), Algorithm::Deterministic).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.bytes[0], 1);
        prop_assert_eq!(bytes_of(&e.decrypt(&a).unwrap()), bytes_of(&v));
    }

    #[test]
    fn random_round_trip_and_fresh_iv(v in prop_oneof![det_value(), rand_only_value()]) {
        let e = encrypter();
        let a = e.encrypt(&v, &key(), Algorithm::Random).unwrap();
        let b = e.encrypt(&v, &key(), Algorithm::Random).unwrap();
        prop_assert_ne!(&a.bytes, &b.bytes);
        prop_assert_eq!(a.bytes[0], 2);
        prop_assert_eq!(bytes_of(&e.decrypt(&a).unwrap()), bytes_of(&v));
    }

    #[test]
    fn rand_only_types_refuse_det(v in rand_only_value()) {
        prop_assert!(encrypter().encrypt(&v, &key(), Algorithm::Deterministic).is_err());
    }

    #[test]
    fn flipping_any_bit_is_detected(v in det_value(), det in any::<bool>(), bit in any::<prop::sample::Index>()) {
        let e = encrypter();
        let alg = if det { Algorithm::Deterministic } else { Algorithm::Random };
        let mut ct = e.encrypt(&v, &key(), alg).unwrap();
        let i = bit.index(ct.bytes.len() * 8);
        ct.bytes[i / 8] ^= 1 << (i % 8);
        prop_assert!(e.decrypt(&ct).is_err(), "bit {} flipped and still decrypted", i);
    }

    #[test]
    fn truncation_and_extension_are_detected(v in det_value(), cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..40)) {
        let e = encrypter();
        let ct = e.encrypt(&v, &key(), Algorithm::Random).unwrap();
        let n = cut.index(ct.bytes.len());
        let short = Binary { subtype: BinarySubtype::Encrypted, bytes: ct.bytes[..n].to_vec() };
        prop_assert!(e.decrypt(&short).is_err());
        let mut long = ct.clone();
        long.bytes.extend_from_slice(&extra);
        prop_assert!(e.decrypt(&long).is_err());
    }

    #[test]
    fn raw_and_tree_document_decryption_agree(vals in proptest::collection::vec(prop_oneof![det_value(), rand_only_value()], 0..8)) {
        let e = encrypter();
        let mut plain = bson::Document::new();
        let mut enc = bson::Document::new();
        for (i, v) in vals.iter().enumerate() {
            plain.insert(format!("p{i}"), v.clone());
            enc.insert(format!("p{i}"), v.clone());
            let ct = e.encrypt(v, &key(), Algorithm::Random).unwrap();
            plain.insert(format!("e{i}"), doc! {"nested": [v.clone()]});
            enc.insert(format!("e{i}"), doc! {"nested": [ct]});
        }
        let tree = e.decrypt_document(&enc).unwrap();
        prop_assert_eq!(bytes_of(&Bson::Document(tree)), bytes_of(&Bson::Document(plain.clone())));
        let raw = bson::RawDocumentBuf::from_document(&enc).unwrap();
        let out = e.decrypt_raw_document(&raw).unwrap();
        prop_assert_eq!(out.into_bytes(), bson::to_vec(&plain).unwrap());
    }
}

#[test]
fn nesting_limit_is_an_error_not_a_stack_overflow() {
    // Built iteratively: bson's own recursive serializer would overflow first.
    let mut d = doc! {"x": 1};
    let mut raw = bson::RawDocumentBuf::from_document(&d).unwrap();
    for _ in 0..1000 {
        d = doc! {"d": d};
        let mut outer = bson::RawDocumentBuf::new();
        outer.append("d", raw);
        raw = outer;
    }
    let e = encrypter();
    assert!(matches!(
        e.decrypt_raw_document(&raw),
        Err(csfle::ExplicitError::TooDeep(_))
    ));
    assert!(matches!(
        e.decrypt_document(&d),
        Err(csfle::ExplicitError::TooDeep(_))
    ));
    // Dropping a 1000-deep Document recurses inside bson; leak it instead.
    std::mem::forget(d);

    // Enough encrypted values before (or after) the deep part for the
    // planned path, whose count stops early and leaves the depth to the
    // planning walk: still the nesting error, before or after them.
    let encrypted = |i: i32| {
        e.encrypt(&Bson::Int32(i), &key(), Algorithm::Deterministic)
            .unwrap()
    };
    for deep_first in [false, true] {
        let mut outer = bson::RawDocumentBuf::new();
        if deep_first {
            outer.append("deep", raw.clone());
        }
        for i in 0..8 {
            outer.append(format!("f{i}"), bson::RawBson::Binary(encrypted(i)));
        }
        if !deep_first {
            outer.append("deep", raw.clone());
        }
        assert!(
            matches!(
                e.decrypt_raw_document(&outer),
                Err(csfle::ExplicitError::TooDeep(_))
            ),
            "deep part first: {deep_first}"
        );
    }

    // At the limit exactly, and one past it: the same answer with no
    // encrypted value, with three (one at a time) and with eight (planned,
    // the count stopping before the deep part), and from the tree path.
    for levels in [
        csfle::MAX_NESTING - 2,
        csfle::MAX_NESTING - 1,
        csfle::MAX_NESTING,
    ] {
        // `levels` documents around `{x: 1}`: its `x` is `levels + 1` deep.
        let mut deep = bson::RawDocumentBuf::new();
        deep.append("x", 1);
        for _ in 0..levels {
            let mut outer = bson::RawDocumentBuf::new();
            outer.append("d", deep);
            deep = outer;
        }
        let mut answers = Vec::new();
        for n in [0, 3, 8] {
            let mut outer = bson::RawDocumentBuf::new();
            for i in 0..n {
                outer.append(format!("f{i}"), bson::RawBson::Binary(encrypted(i)));
            }
            outer.append("deep", deep.clone());
            let raw = e.decrypt_raw_document(&outer);
            let tree = e.decrypt_document(&outer.to_document().unwrap());
            assert_eq!(raw.is_ok(), tree.is_ok(), "{levels} levels, {n} encrypted");
            answers.push(raw.is_ok());
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{levels} levels: {answers:?}"
        );
        // `deep` under the root: `x` is `levels + 2` deep.
        assert_eq!(answers[0], levels + 2 <= csfle::MAX_NESTING, "{levels}");
    }
}
