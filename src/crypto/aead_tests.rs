use super::*;
use crate::key::KeyId;

/// The AEAD's published known-answer vectors (draft-mcgrew §5.4, as
/// libmongocrypt's test data carries them, vendored in
/// `tests/data/libmongocrypt/`): with the given IV of each.
#[test]
fn mcgrew_known_answer_vectors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libmongocrypt/test/data/roundtrip/mcgrew.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let hex = |v: &serde_json::Value| -> Vec<u8> {
        let s = v.as_str().expect("hex string");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    };
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON array");
    assert!(!cases.is_empty());
    for c in &cases {
        let key = DataKey::new(KeyId::from_bytes([0; 16]), &hex(&c["key"])).unwrap();
        let iv: [u8; IV_LEN] = hex(&c["iv"]).try_into().unwrap();
        let (aad, plaintext) = (hex(&c["aad"]), hex(&c["plaintext"]));
        let mut ct = Vec::new();
        seal(&key, IvMode::Given(iv), &aad, &plaintext, &mut ct).unwrap();
        assert_eq!(ct, hex(&c["ciphertext"]), "{}", c["name"]);
        let mut back = Vec::new();
        open(&key, &aad, &ct, &mut back).unwrap();
        assert_eq!(back, plaintext);
    }
}

fn key(byte: u8) -> DataKey {
    DataKey::new(
        KeyId::from_bytes([byte; 16]),
        &[byte; crate::crypto::DATA_KEY_LEN],
    )
    .unwrap()
}

#[test]
fn lengths() {
    assert_eq!(ciphertext_len(1), 64);
    assert_eq!(ciphertext_len(15), 64);
    assert_eq!(ciphertext_len(16), 80);
}

#[test]
fn det_is_deterministic_and_random_is_not() {
    let k = key(7);
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    seal(&k, IvMode::Deterministic, b"aad", b"hello", &mut a).unwrap();
    seal(&k, IvMode::Deterministic, b"aad", b"hello", &mut b).unwrap();
    seal(&k, IvMode::Random, b"aad", b"hello", &mut c).unwrap();
    seal(&k, IvMode::Random, b"aad", b"hello", &mut d).unwrap();
    assert_eq!(a, b);
    assert_ne!(c, d);
    for ct in [&a, &c, &d] {
        let mut p = Vec::new();
        open(&k, b"aad", ct, &mut p).unwrap();
        assert_eq!(p, b"hello");
    }
}

#[test]
fn wrong_aad_or_key_fails_mac() {
    let mut ct = Vec::new();
    seal(&key(1), IvMode::Random, b"aad", b"x", &mut ct).unwrap();
    let mut p = Vec::new();
    assert_eq!(open(&key(1), b"aaD", &ct, &mut p), Err(Error::MacMismatch));
    assert_eq!(open(&key(2), b"aad", &ct, &mut p), Err(Error::MacMismatch));
}

/// IV ‖ AES-CBC-PKCS7(plaintext) ‖ a tag of zeros (the decryption
/// after verification does not read the tag).
fn cbc_ciphertext(k: &DataKey, iv: [u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
    let padded = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let mut body = vec![0u8; padded];
    body[..plaintext.len()].copy_from_slice(plaintext);
    cbc::Encryptor::<&Aes256Enc>::inner_iv_init(&k.enc, &iv.into())
        .encrypt_padded::<Pkcs7>(&mut body, plaintext.len())
        .unwrap();
    let mut ct = iv.to_vec();
    ct.extend_from_slice(&body);
    ct.extend_from_slice(&[0u8; TAG_LEN]);
    ct
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    /// Many ciphertexts decrypted in one AES call are what
    /// `open_verified` makes of each: the same plaintext, or the same
    /// error for a bad length, bad padding (a flipped byte in the
    /// block before the last flips that byte of the last plaintext
    /// block) or an empty plaintext.
    #[test]
    fn open_verified_many_equals_open_verified(
        values in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70),
                proptest::prelude::any::<[u8; IV_LEN]>(),
                0u8..5,
                proptest::prelude::any::<proptest::sample::Index>(),
            ),
            0..12,
        ),
    ) {
        let k = key(9);
        let cts: Vec<Vec<u8>> = values
            .iter()
            .map(|(plaintext, iv, spoil, at)| {
                let mut ct = cbc_ciphertext(&k, *iv, plaintext);
                let n = ct.len();
                match spoil {
                    1 => ct[n - TAG_LEN - 2 * BLOCK_LEN + at.index(BLOCK_LEN)] ^= 0x5a,
                    2 => ct.truncate(n - 1),
                    3 => ct.truncate(IV_LEN + TAG_LEN),
                    _ => {}
                }
                ct
            })
            .collect();
        let refs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
        let (mut out, mut results) = (Vec::new(), Vec::new());
        open_verified_many(&k, &refs, &mut out, &mut results);
        proptest::prop_assert_eq!(results.len(), cts.len());
        for (ct, got) in cts.iter().zip(&results) {
            let mut buf = Vec::new();
            let want = open_verified(&k, ct, &mut buf).map(|()| buf);
            let got = got.clone().map(|range| out[range].to_vec());
            proptest::prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn bad_lengths() {
    let mut p = Vec::new();
    for len in [0, 1, 63, 65, 79] {
        assert_eq!(
            open(&key(1), b"", &vec![0; len], &mut p),
            Err(Error::InvalidCiphertextLength { len })
        );
    }
    assert_eq!(
        seal(&key(1), IvMode::Random, b"", b"", &mut p),
        Err(Error::EmptyPlaintext)
    );
}
