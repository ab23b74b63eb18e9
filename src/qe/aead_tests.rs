use super::*;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A vendored libmongocrypt roundtrip file.
fn roundtrip(file: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libmongocrypt/test/data/roundtrip")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("JSON") {
        serde_json::Value::Array(cases) => cases,
        _ => panic!("{file}: not an array"),
    }
}

fn field(case: &serde_json::Value, name: &str) -> Vec<u8> {
    hex(case[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing")))
}

/// Encrypts every vector of `file` with its own IV through the fixed
/// source and compares byte for byte; returns (byte-equal, refused as
/// expected).
fn encrypt_file(file: &str) -> (usize, usize) {
    let (mut equal, mut refused) = (0, 0);
    for case in roundtrip(file) {
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        if case["ignore_ciphertext_mismatch_on_encrypt"].as_bool() == Some(true) {
            continue;
        }
        let key = field(&case, "key");
        let iv = field(&case, "iv");
        let plaintext = field(&case, "plaintext");
        let mut rng = QeRandom::fixed(iv);
        let result = match case["algo"].as_str() {
            Some("AES-256-CBC/SHA-256") => {
                let key = QeDataKey::new(&key).unwrap();
                fle2v2_aead_encrypt(&key, &field(&case, "aad"), &plaintext, &mut rng)
            }
            Some("AES-256-CTR/NONE") => fle2_encrypt(&key, &plaintext, &mut rng),
            other => panic!("{file}: {name}: no QE encryption for {other:?}"),
        };
        match case["encrypt_error"].as_str() {
            Some(expected) => {
                let err = result.expect_err(&name);
                assert_eq!(expected, "input plaintext too small", "{name}");
                assert_eq!(err, Error::EmptyPlaintext, "{name}");
                refused += 1;
            }
            None => {
                assert_eq!(result.expect(&name), field(&case, "ciphertext"), "{name}");
                // The fixed source gave exactly one IV.
                assert_eq!(rng.fill(&mut [0u8; 1]), Err(Error::RandomExhausted));
                equal += 1;
            }
        }
    }
    (equal, refused)
}

#[test]
fn fle2v2_aead_vectors_encrypt_byte_equal() {
    assert_eq!(encrypt_file("fle2v2-aead-fixed.json"), (2, 1));
    assert_eq!(encrypt_file("fle2v2-aead-generated.json"), (12, 0));
}

#[test]
fn fle2_vectors_encrypt_byte_equal() {
    assert_eq!(encrypt_file("fle2-fixed.json"), (1, 0));
    assert_eq!(encrypt_file("fle2-generated.json"), (4, 0));
    assert_eq!(encrypt_file("aes-ctr.json"), (3, 0));
    assert_eq!(encrypt_file("nist.json"), (2, 0));
}

fn key() -> QeDataKey {
    let material: Vec<u8> = (0..96u8).collect();
    QeDataKey::new(&material).unwrap()
}

#[test]
fn v2_roundtrip_and_tamper() {
    let key = key();
    let mut rng = QeRandom::system();
    for len in [1usize, 15, 16, 17, 100] {
        let plaintext = vec![0x5a; len];
        let ct = fle2v2_aead_encrypt(&key, b"ad", &plaintext, &mut rng).unwrap();
        assert_eq!(ct.len(), IV_LEN + (len / 16 + 1) * 16 + TAG_LEN);
        assert_eq!(
            &fle2v2_aead_decrypt(&key, b"ad", &ct).unwrap()[..],
            &plaintext[..]
        );
        assert_eq!(
            fle2v2_aead_decrypt(&key, b"ae", &ct),
            Err(Error::MacMismatch)
        );
        for i in [0, IV_LEN, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert_eq!(
                fle2v2_aead_decrypt(&key, b"ad", &bad),
                Err(Error::MacMismatch)
            );
        }
    }
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let key = key();
    for len in 0..200 {
        let ct = vec![0u8; len];
        assert!(fle2v2_aead_decrypt(&key, b"", &ct).is_err());
        assert!(fle2_aead_decrypt(&key, b"", &ct).is_err());
        if len <= IV_LEN {
            assert!(fle2_decrypt(&[0; 32], &ct).is_err());
        }
    }
    assert!(matches!(
        fle2v2_aead_decrypt(&key, b"", &[0; 65]),
        Err(Error::InvalidCiphertextLength { len: 65, .. })
    ));
    assert!(matches!(
        fle2_aead_decrypt(&key, b"", &[0; 48]),
        Err(Error::InvalidCiphertextLength { len: 48, .. })
    ));
    assert_eq!(
        fle2_decrypt(&[0; 31], &[0; 20]),
        Err(Error::InvalidKeyLength {
            expected: 32,
            actual: 31
        })
    );
    assert_eq!(
        QeDataKey::new(&[0; 95]).unwrap_err(),
        Error::InvalidKeyLength {
            expected: 96,
            actual: 95
        }
    );
    let mut rng = QeRandom::system();
    assert_eq!(
        fle2_encrypt(&[0; 32], b"", &mut rng),
        Err(Error::EmptyPlaintext)
    );
}

#[test]
fn fle2_roundtrip_and_counter_wrap() {
    // An IV at the top of the counter space: the keystream wraps to
    // zero, as OpenSSL's does.
    let key = [7u8; 32];
    let mut rng = QeRandom::fixed(vec![0xff; IV_LEN]);
    let plaintext = vec![1u8; 40];
    let ct = fle2_encrypt(&key, &plaintext, &mut rng).unwrap();
    assert_eq!(&fle2_decrypt(&key, &ct).unwrap()[..], &plaintext[..]);
    // Block 1 of the keystream is AES(0): the same as block 0 of IV 0.
    let mut rng = QeRandom::fixed(vec![0; IV_LEN]);
    let zero_iv = fle2_encrypt(&key, &plaintext[..16], &mut rng).unwrap();
    assert_eq!(ct[IV_LEN + 16..IV_LEN + 32], zero_iv[IV_LEN..]);
}

#[test]
fn debug_prints_nothing() {
    assert_eq!(format!("{:?}", key()), "QeDataKey(..)");
    assert_eq!(format!("{:?}", key().token_key()), "TokenKey(..)");
}

#[test]
fn unindexed_aad_layout() {
    let aad = unindexed_aad(16, &[0xab; 16], 0x02);
    assert_eq!(aad[0], 16);
    assert_eq!(&aad[1..17], &[0xab; 16]);
    assert_eq!(aad[17], 2);
}
