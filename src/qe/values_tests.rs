//! Unit tests of `values.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// The unindexed vectors of libmongocrypt's test/test-mc-fle2-payload-uev.c
// and test-mc-fle2-payload-uev-v2.c (Apache-2.0, snapshot 3a65b40d).
const UEV_KEY_ID: &str = "abcdefab123498761234123456789012";
const UEV_KEY: &str = "a7ddbc4c8be00d51f68d9d8e485f351c8edc8d2206b24d8e0e1816d005fbe520e489125047d647b0d8684bfbdbf09c304085ed086aba6c2b2b1677ccc91ced8847a733bf5e5682c84b3ee7969e4a5fe0e0c21e5e3ee190595a55f83147d8de2a";
const UEV_PLAINTEXT: &[u8] = b"\x09\x00\x00\x00value123\x00";
const UEV_V1_CIPHERTEXT: &str = "4d069564f5a05e9e3523b98f575acb153b70d6d5f38dc752132c6928aaae8e5928e537a2ce407d847434d3d755635f9f80888371e7e1f9e42b9b70a485";
const UEV_V2_CIPHERTEXT: &str = "abcdefabdeadbeeffeedbacc012345671f7c9cf4b09b2baa7f8752b9fb7a8c77469f00a1fb1735ed5b4b941f151bad3d709a1f3555788fef373088d47ceb9677";
/// Encrypted in CTR mode with a valid tag: fails CBC's block check.
const UEV_V2_CTR_CIPHERTEXT: &str = "abcdefabdeadbeeffeedbacc012345679fc22f7a164b528b1018bb11752b904cb6ee00c837d7e0b4d32b47be3617bc3783507dd676b21d772058b17794726884d79dd851aa8786bafdd544dab9";

fn uev(subtype: &str, ciphertext: &str) -> Vec<u8> {
    hex(&format!("{subtype}{UEV_KEY_ID}02{ciphertext}"))
}

#[test]
fn unindexed_vectors_decrypt() {
    let key = QeDataKey::new(&hex(UEV_KEY)).unwrap();
    for (subtype, ct) in [("06", UEV_V1_CIPHERTEXT), ("10", UEV_V2_CIPHERTEXT)] {
        let blob = uev(subtype, ct);
        let QeValue::Unindexed(value) = QeValue::parse(&blob).unwrap() else {
            panic!("not unindexed");
        };
        assert_eq!(value.key_id().to_vec(), hex(UEV_KEY_ID));
        assert_eq!(value.bson_type(), 2);
        assert_eq!(&value.decrypt(&key).unwrap()[..], UEV_PLAINTEXT);
        // libmongocrypt's wrong key: byte 32 (the MAC key's first) zeroed.
        let mut wrong = hex(UEV_KEY);
        wrong[32] = 0;
        let wrong = QeDataKey::new(&wrong).unwrap();
        assert_eq!(value.decrypt(&wrong), Err(Error::MacMismatch));
        // The associated data covers the prefix: another BSON type fails.
        let mut other = blob.clone();
        other[17] = 0x10;
        let other = UnindexedValue::parse(&other).unwrap();
        assert_eq!(other.decrypt(&key), Err(Error::MacMismatch));
    }
    // No ciphertext, and CTR output under v2: refused.
    let key_ok = QeDataKey::new(&hex(UEV_KEY)).unwrap();
    let empty = uev("10", "");
    assert!(matches!(
        UnindexedValue::parse(&empty).unwrap().decrypt(&key_ok),
        Err(Error::InvalidCiphertextLength { .. })
    ));
    let ctr = uev("10", UEV_V2_CTR_CIPHERTEXT);
    assert!(matches!(
        UnindexedValue::parse(&ctr).unwrap().decrypt(&key_ok),
        Err(Error::InvalidCiphertextLength { .. })
    ));
}

#[test]
fn short_and_foreign_values_are_errors() {
    for len in 0..PREFIX_LEN + 20 {
        for first in [6u8, 7, 9, 14, 15, 16, 17, 1, 12, 255] {
            let mut blob = vec![0u8; len];
            if let Some(b) = blob.first_mut() {
                *b = first;
            }
            // Never a panic; indexed values this short are refused.
            let parsed = QeValue::parse(&blob);
            if len < PREFIX_LEN || (![6, 16].contains(&first) && len < PREFIX_LEN + 17) {
                assert!(parsed.is_err(), "{first} {len}");
            }
        }
    }
    assert_eq!(
        QeValue::parse(&[12; 40]),
        Err(Error::UnexpectedSubtype {
            expected: "6, 7, 9, 14, 15, 16 or 17",
            actual: 12
        })
    );
}

#[test]
fn counts_are_checked_against_the_bytes() {
    // Range v2 claiming 255 edges over 200 bytes.
    let mut blob = vec![INDEXED_RANGE_V2];
    blob.extend_from_slice(&[0; UUID_LEN]);
    blob.push(0x10);
    blob.push(255);
    blob.extend_from_slice(&[0; 200]);
    assert!(matches!(
        IndexedValue::parse(&blob),
        Err(Error::InvalidValue { subtype: 15, .. })
    ));
    // Range v2 with edge count 0.
    blob[PREFIX_LEN] = 0;
    assert!(matches!(
        IndexedValue::parse(&blob),
        Err(Error::InvalidValue { subtype: 15, .. })
    ));
    // Text claiming u32::MAX edges: no overflow, no allocation.
    let mut blob = vec![INDEXED_TEXT];
    blob.extend_from_slice(&[0; UUID_LEN]);
    blob.push(2);
    blob.extend_from_slice(&u32::MAX.to_le_bytes());
    blob.extend_from_slice(&u32::MAX.to_le_bytes());
    blob.extend_from_slice(&u32::MAX.to_le_bytes());
    blob.extend_from_slice(&[0; 200]);
    assert!(matches!(
        IndexedValue::parse(&blob),
        Err(Error::InvalidValue { subtype: 17, .. })
    ));
    // Text whose edge count is below substrings + suffixes + 1.
    let mut blob = vec![INDEXED_TEXT];
    blob.extend_from_slice(&[0; UUID_LEN]);
    blob.push(2);
    blob.extend_from_slice(&2u32.to_le_bytes());
    blob.extend_from_slice(&1u32.to_le_bytes());
    blob.extend_from_slice(&1u32.to_le_bytes());
    blob.extend_from_slice(&[0; 400]);
    assert!(matches!(
        IndexedValue::parse(&blob),
        Err(Error::InvalidValue { subtype: 17, .. })
    ));
}

#[test]
fn v1_inner_length_is_checked() {
    // An InnerEncrypted that decrypts (FLE2 has no MAC) to a length
    // field larger than the bytes: refused, not read past.
    let key = QeDataKey::new(&hex(UEV_KEY)).unwrap();
    let token = ServerDataEncryptionLevel1Token::derive(key.token_key());
    let mut inner = u64::MAX.to_le_bytes().to_vec();
    inner.extend_from_slice(&[0xab; UUID_LEN]);
    inner.extend_from_slice(&[0; 40]);
    let mut rng = crate::qe::QeRandom::system();
    let encrypted = crate::qe::aead::fle2_encrypt(token.as_bytes(), &inner, &mut rng).unwrap();
    let mut blob = vec![INDEXED_EQUALITY_V1];
    blob.extend_from_slice(&[0; UUID_LEN]);
    blob.push(2);
    blob.extend_from_slice(&encrypted);
    let value = IndexedValue::parse(&blob).unwrap();
    assert!(matches!(
        value.decrypt_server_layer(&key),
        Err(Error::InvalidValue { subtype: 7, .. })
    ));
    // A length below 16 too.
    inner[..8].copy_from_slice(&3u64.to_le_bytes());
    let encrypted = crate::qe::aead::fle2_encrypt(token.as_bytes(), &inner, &mut rng).unwrap();
    blob.truncate(PREFIX_LEN);
    blob.extend_from_slice(&encrypted);
    let value = IndexedValue::parse(&blob).unwrap();
    assert!(matches!(
        value.decrypt_server_layer(&key),
        Err(Error::InvalidValue { subtype: 7, .. })
    ));
    // A fitting length reads K_KeyId and the client value.
    inner[..8].copy_from_slice(&(16u64 + 40).to_le_bytes());
    let encrypted = crate::qe::aead::fle2_encrypt(token.as_bytes(), &inner, &mut rng).unwrap();
    blob.truncate(PREFIX_LEN);
    blob.extend_from_slice(&encrypted);
    let layer = IndexedValue::parse(&blob)
        .unwrap()
        .decrypt_server_layer(&key)
        .unwrap();
    assert_eq!(layer.client_key_id(), [0xab; UUID_LEN]);
    // 40 zero bytes are not a valid FLE2AEAD ciphertext (too short).
    assert!(layer.decrypt(&key).is_err());
}
