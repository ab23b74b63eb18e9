//! Queryable Encryption crypto against libmongocrypt's own vectors,
//! vendored under `tests/data/libmongocrypt/` (Apache-2.0, snapshot
//! `3a65b40d`): every token of both token files, and every QE cipher
//! vector of `test/data/roundtrip/` decrypted. (Encryption with the
//! vectors' IVs needs the fixed random source, which exists only inside
//! the crate: those checks are unit tests in `src/qe/aead.rs`.) Each test
//! counts the vectors it ran, so a test that passes did its work.

#![cfg(feature = "qe")]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;

use csfle::qe::Error;
use csfle::qe::aead::{QeDataKey, fle2_aead_decrypt, fle2_decrypt, fle2v2_aead_decrypt};
use csfle::qe::tokens::*;
use qe_vectors::{data_dir, hex, hex_field};
use serde_json::Value;

/// A vendored file under `test/data/`.
fn data(rel: &str) -> Value {
    let path = data_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Derives every token from the file's root, value and contention factor
/// and compares each with the file; every field of the file besides the
/// three inputs must be a token checked here. Returns how many were.
fn check_tokens(file: &str) -> usize {
    let v = data(&format!("tokens/{file}"));
    let fields = v.as_object().expect("a token file is one object");
    let root = TokenKey::new(&hex_field(&v, "root")).expect("32-byte root");
    let value = hex_field(&v, "value");
    let u = v["contentionFactor"].as_u64().expect("contentionFactor");

    let l1 = CollectionsLevel1Token::derive(&root);
    let server_l1 = ServerTokenDerivationLevel1Token::derive(&root);
    let server_data = ServerDataEncryptionLevel1Token::derive(&root);
    let edc = EdcToken::derive(&l1);
    let esc = EscToken::derive(&l1);
    let ecc = EccToken::derive(&l1);
    let ecoc = EcocToken::derive(&l1);
    let edc_d = EdcDerivedFromDataToken::derive(&edc, &value);
    let esc_d = EscDerivedFromDataToken::derive(&esc, &value);
    let ecc_d = EccDerivedFromDataToken::derive(&ecc, &value);
    let edc_dc = EdcDerivedFromDataTokenAndContentionFactor::derive(&edc_d, u);
    let esc_dc = EscDerivedFromDataTokenAndContentionFactor::derive(&esc_d, u);
    let ecc_dc = EccDerivedFromDataTokenAndContentionFactor::derive(&ecc_d, u);
    let edc_twice = EdcTwiceDerivedToken::derive(&edc_dc);
    let esc_twice_tag = EscTwiceDerivedTagToken::derive(&esc_dc);
    let esc_twice_value = EscTwiceDerivedValueToken::derive(&esc_dc);
    let server_d = ServerDerivedFromDataToken::derive(&server_l1, &value);
    let server_count = ServerCountAndContentionFactorEncryptionToken::derive(&server_d);
    let server_zeros = ServerZerosEncryptionToken::derive(&server_d);
    let anchor_root = AnchorPaddingTokenRoot::derive(&esc);
    let anchor_key = AnchorPaddingKeyToken::derive(&anchor_root);
    let anchor_value = AnchorPaddingValueToken::derive(&anchor_root);
    let edc_text_exact = EdcTextExactToken::derive(&edc);
    let esc_text_exact = EscTextExactToken::derive(&esc);
    let server_text_exact = ServerTextExactToken::derive(&server_l1);
    let edc_text_exact_d = EdcTextExactDerivedFromDataToken::derive(&edc_text_exact, &value);
    let edc_text_exact_dc =
        EdcTextExactDerivedFromDataTokenAndContentionFactorToken::derive(&edc_text_exact_d, u);
    let esc_text_exact_d = EscTextExactDerivedFromDataToken::derive(&esc_text_exact, &value);
    let esc_text_exact_dc =
        EscTextExactDerivedFromDataTokenAndContentionFactorToken::derive(&esc_text_exact_d, u);
    let server_text_exact_d =
        ServerTextExactDerivedFromDataToken::derive(&server_text_exact, &value);
    let edc_text_substring = EdcTextSubstringToken::derive(&edc);
    let esc_text_substring = EscTextSubstringToken::derive(&esc);
    let server_text_substring = ServerTextSubstringToken::derive(&server_l1);
    let edc_text_substring_d =
        EdcTextSubstringDerivedFromDataToken::derive(&edc_text_substring, &value);
    let edc_text_substring_dc =
        EdcTextSubstringDerivedFromDataTokenAndContentionFactorToken::derive(
            &edc_text_substring_d,
            u,
        );
    let esc_text_substring_d =
        EscTextSubstringDerivedFromDataToken::derive(&esc_text_substring, &value);
    let esc_text_substring_dc =
        EscTextSubstringDerivedFromDataTokenAndContentionFactorToken::derive(
            &esc_text_substring_d,
            u,
        );
    let server_text_substring_d =
        ServerTextSubstringDerivedFromDataToken::derive(&server_text_substring, &value);
    let edc_text_suffix = EdcTextSuffixToken::derive(&edc);
    let esc_text_suffix = EscTextSuffixToken::derive(&esc);
    let server_text_suffix = ServerTextSuffixToken::derive(&server_l1);
    let edc_text_suffix_d = EdcTextSuffixDerivedFromDataToken::derive(&edc_text_suffix, &value);
    let edc_text_suffix_dc =
        EdcTextSuffixDerivedFromDataTokenAndContentionFactorToken::derive(&edc_text_suffix_d, u);
    let esc_text_suffix_d = EscTextSuffixDerivedFromDataToken::derive(&esc_text_suffix, &value);
    let esc_text_suffix_dc =
        EscTextSuffixDerivedFromDataTokenAndContentionFactorToken::derive(&esc_text_suffix_d, u);
    let server_text_suffix_d =
        ServerTextSuffixDerivedFromDataToken::derive(&server_text_suffix, &value);
    let edc_text_prefix = EdcTextPrefixToken::derive(&edc);
    let esc_text_prefix = EscTextPrefixToken::derive(&esc);
    let server_text_prefix = ServerTextPrefixToken::derive(&server_l1);
    let edc_text_prefix_d = EdcTextPrefixDerivedFromDataToken::derive(&edc_text_prefix, &value);
    let edc_text_prefix_dc =
        EdcTextPrefixDerivedFromDataTokenAndContentionFactorToken::derive(&edc_text_prefix_d, u);
    let esc_text_prefix_d = EscTextPrefixDerivedFromDataToken::derive(&esc_text_prefix, &value);
    let esc_text_prefix_dc =
        EscTextPrefixDerivedFromDataTokenAndContentionFactorToken::derive(&esc_text_prefix_d, u);
    let server_text_prefix_d =
        ServerTextPrefixDerivedFromDataToken::derive(&server_text_prefix, &value);

    let computed: Vec<(&str, [u8; TOKEN_LEN])> = vec![
        ("collectionsLevel1Token", *l1.as_bytes()),
        ("ServerTokenDerivationLevel1Token", *server_l1.as_bytes()),
        ("serverDataEncryptionLevel1Token", *server_data.as_bytes()),
        ("EDCToken", *edc.as_bytes()),
        ("ESCToken", *esc.as_bytes()),
        ("ECCToken", *ecc.as_bytes()),
        ("ECOCToken", *ecoc.as_bytes()),
        ("EDCDerivedFromDataToken", *edc_d.as_bytes()),
        ("ESCDerivedFromDataToken", *esc_d.as_bytes()),
        ("ECCDerivedFromDataToken", *ecc_d.as_bytes()),
        (
            "EDCDerivedFromDataTokenAndContentionFactor",
            *edc_dc.as_bytes(),
        ),
        (
            "ESCDerivedFromDataTokenAndContentionFactor",
            *esc_dc.as_bytes(),
        ),
        (
            "ECCDerivedFromDataTokenAndContentionFactor",
            *ecc_dc.as_bytes(),
        ),
        ("EDCTwiceDerivedToken", *edc_twice.as_bytes()),
        ("ESCTwiceDerivedTagToken", *esc_twice_tag.as_bytes()),
        ("ESCTwiceDerivedValueToken", *esc_twice_value.as_bytes()),
        ("serverDerivedFromDataToken", *server_d.as_bytes()),
        (
            "serverCountAndContentionFactorEncryptionToken",
            *server_count.as_bytes(),
        ),
        ("serverZerosEncryptionToken", *server_zeros.as_bytes()),
        ("AnchorPaddingTokenRoot", *anchor_root.as_bytes()),
        ("AnchorPaddingKeyToken", *anchor_key.as_bytes()),
        ("AnchorPaddingValueToken", *anchor_value.as_bytes()),
        ("EDCTextExactToken", *edc_text_exact.as_bytes()),
        ("ESCTextExactToken", *esc_text_exact.as_bytes()),
        ("ServerTextExactToken", *server_text_exact.as_bytes()),
        (
            "EDCTextExactDerivedFromDataToken",
            *edc_text_exact_d.as_bytes(),
        ),
        (
            "EDCTextExactDerivedFromDataTokenAndContentionFactorToken",
            *edc_text_exact_dc.as_bytes(),
        ),
        (
            "ESCTextExactDerivedFromDataToken",
            *esc_text_exact_d.as_bytes(),
        ),
        (
            "ESCTextExactDerivedFromDataTokenAndContentionFactorToken",
            *esc_text_exact_dc.as_bytes(),
        ),
        (
            "ServerTextExactDerivedFromDataToken",
            *server_text_exact_d.as_bytes(),
        ),
        ("EDCTextSubstringToken", *edc_text_substring.as_bytes()),
        ("ESCTextSubstringToken", *esc_text_substring.as_bytes()),
        (
            "ServerTextSubstringToken",
            *server_text_substring.as_bytes(),
        ),
        (
            "EDCTextSubstringDerivedFromDataToken",
            *edc_text_substring_d.as_bytes(),
        ),
        (
            "EDCTextSubstringDerivedFromDataTokenAndContentionFactorToken",
            *edc_text_substring_dc.as_bytes(),
        ),
        (
            "ESCTextSubstringDerivedFromDataToken",
            *esc_text_substring_d.as_bytes(),
        ),
        (
            "ESCTextSubstringDerivedFromDataTokenAndContentionFactorToken",
            *esc_text_substring_dc.as_bytes(),
        ),
        (
            "ServerTextSubstringDerivedFromDataToken",
            *server_text_substring_d.as_bytes(),
        ),
        ("EDCTextSuffixToken", *edc_text_suffix.as_bytes()),
        ("ESCTextSuffixToken", *esc_text_suffix.as_bytes()),
        ("ServerTextSuffixToken", *server_text_suffix.as_bytes()),
        (
            "EDCTextSuffixDerivedFromDataToken",
            *edc_text_suffix_d.as_bytes(),
        ),
        (
            "EDCTextSuffixDerivedFromDataTokenAndContentionFactorToken",
            *edc_text_suffix_dc.as_bytes(),
        ),
        (
            "ESCTextSuffixDerivedFromDataToken",
            *esc_text_suffix_d.as_bytes(),
        ),
        (
            "ESCTextSuffixDerivedFromDataTokenAndContentionFactorToken",
            *esc_text_suffix_dc.as_bytes(),
        ),
        (
            "ServerTextSuffixDerivedFromDataToken",
            *server_text_suffix_d.as_bytes(),
        ),
        ("EDCTextPrefixToken", *edc_text_prefix.as_bytes()),
        ("ESCTextPrefixToken", *esc_text_prefix.as_bytes()),
        ("ServerTextPrefixToken", *server_text_prefix.as_bytes()),
        (
            "EDCTextPrefixDerivedFromDataToken",
            *edc_text_prefix_d.as_bytes(),
        ),
        (
            "EDCTextPrefixDerivedFromDataTokenAndContentionFactorToken",
            *edc_text_prefix_dc.as_bytes(),
        ),
        (
            "ESCTextPrefixDerivedFromDataToken",
            *esc_text_prefix_d.as_bytes(),
        ),
        (
            "ESCTextPrefixDerivedFromDataTokenAndContentionFactorToken",
            *esc_text_prefix_dc.as_bytes(),
        ),
        (
            "ServerTextPrefixDerivedFromDataToken",
            *server_text_prefix_d.as_bytes(),
        ),
    ];

    for (name, bytes) in &computed {
        assert_eq!(
            hex_field(&v, name),
            bytes.to_vec(),
            "{file}: {name} differs from libmongocrypt's"
        );
    }
    for name in fields.keys() {
        if !["root", "value", "contentionFactor"].contains(&name.as_str()) {
            assert!(
                computed.iter().any(|(n, _)| n == name),
                "{file}: token {name} is not checked"
            );
        }
    }
    // Debug shows the type, never the bytes.
    assert_eq!(format!("{edc:?}"), "EdcToken(..)");
    assert_eq!(format!("{root:?}"), "TokenKey(..)");
    computed.len()
}

#[test]
fn every_token_of_libmongocrypts_token_files() {
    assert_eq!(check_tokens("mc.json"), 54);
    assert_eq!(check_tokens("server.json"), 54);
}

/// Decrypts every vector of a roundtrip file that has a ciphertext;
/// returns (decrypted to the expected plaintext, refused as expected).
fn decrypt_file(file: &str) -> (usize, usize) {
    let cases = data(&format!("roundtrip/{file}"));
    let cases = cases.as_array().expect("a roundtrip file is an array");
    let (mut decrypted, mut refused) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        // Vectors of an encryption error have no ciphertext.
        let Some(ciphertext) = case["ciphertext"].as_str() else {
            assert!(case["encrypt_error"].is_string(), "{file}: {name}");
            continue;
        };
        let ciphertext = hex(ciphertext);
        let key = hex_field(case, "key");
        let result: Result<Vec<u8>, Error> = match case["algo"].as_str() {
            Some("AES-256-CBC/SHA-256") => {
                let key = QeDataKey::new(&key).expect("96-byte key");
                fle2v2_aead_decrypt(&key, &hex_field(case, "aad"), &ciphertext).map(|p| p.to_vec())
            }
            Some("AES-256-CTR/SHA-256") => {
                let key = QeDataKey::new(&key).expect("96-byte key");
                fle2_aead_decrypt(&key, &hex_field(case, "aad"), &ciphertext).map(|p| p.to_vec())
            }
            Some("AES-256-CTR/NONE") => fle2_decrypt(&key, &ciphertext).map(|p| p.to_vec()),
            other => panic!("{file}: {name}: not a QE algorithm: {other:?}"),
        };
        match case["decrypt_error"].as_str() {
            Some(expected) => {
                let err = result.expect_err(name);
                match expected {
                    "HMAC validation failure" => assert_eq!(err, Error::MacMismatch, "{name}"),
                    "input ciphertext too small" => assert!(
                        matches!(err, Error::InvalidCiphertextLength { .. }),
                        "{name}: {err:?}"
                    ),
                    other => panic!("{file}: {name}: unknown expected error {other}"),
                }
                refused += 1;
            }
            None => {
                assert_eq!(
                    result.unwrap_or_else(|e| panic!("{file}: {name}: {e}")),
                    hex_field(case, "plaintext"),
                    "{file}: {name}"
                );
                decrypted += 1;
            }
        }
    }
    (decrypted, refused)
}

#[test]
fn fle2v2_aead_vectors_decrypt() {
    assert_eq!(decrypt_file("fle2v2-aead-fixed.json"), (2, 0));
    assert_eq!(decrypt_file("fle2v2-aead-generated.json"), (12, 0));
}

#[test]
fn fle2_aead_vectors_decrypt() {
    assert_eq!(decrypt_file("fle2aead-fixed.json"), (2, 0));
    assert_eq!(decrypt_file("fle2aead-generated.json"), (12, 0));
    assert_eq!(decrypt_file("fle2aead-decrypt.json"), (0, 3));
}

#[test]
fn fle2_vectors_decrypt() {
    assert_eq!(decrypt_file("fle2-fixed.json"), (1, 0));
    assert_eq!(decrypt_file("fle2-generated.json"), (4, 0));
    assert_eq!(decrypt_file("aes-ctr.json"), (3, 0));
    assert_eq!(decrypt_file("nist.json"), (2, 0));
}

#[test]
fn errors_and_keys_carry_no_secret() {
    let material: Vec<u8> = (0..96u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let key = QeDataKey::new(&material).unwrap();
    assert_eq!(format!("{key:?}"), "QeDataKey(..)");
    let hex_material: String = material.iter().map(|b| format!("{b:02x}")).collect();
    let errors = [
        fle2v2_aead_decrypt(&key, b"", &[0x42; 80]).unwrap_err(),
        fle2_aead_decrypt(&key, b"", &[0x42; 60]).unwrap_err(),
        fle2_decrypt(&material[..31], &[0x42; 60]).unwrap_err(),
        QeDataKey::new(&material[..95]).unwrap_err(),
    ];
    for e in errors {
        for text in [e.to_string(), format!("{e:?}")] {
            for window in hex_material.as_bytes().windows(8) {
                assert!(!text.as_bytes().windows(8).any(|w| w == window), "{text}");
            }
        }
    }
}
