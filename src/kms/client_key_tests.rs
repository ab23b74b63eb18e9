use super::*;

fn plain_identity() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn plain_keys_pass_and_take_no_password() {
    let (cert, key) = plain_identity();
    let pem = Zeroizing::new(format!("{cert}{key}").into_bytes());
    assert_eq!(unlock(pem.clone(), None).unwrap(), pem);
    let err = unlock(pem, Some("secret")).unwrap_err();
    assert!(err.contains("not encrypted"), "{err}");
}

#[test]
fn legacy_openssl_pem_is_refused_with_the_conversion() {
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
        DEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
        -----END EC PRIVATE KEY-----\n";
    for password in [None, Some("pw")] {
        let err = unlock(Zeroizing::new(legacy.as_bytes().to_vec()), password).unwrap_err();
        assert!(
            err.contains("openssl pkcs8 -topk8 -v2 aes-256-cbc"),
            "{err}"
        );
    }
}

#[cfg(feature = "kmip")]
fn encrypted_identity(password: &str) -> (String, String, Zeroizing<Vec<u8>>) {
    use pkcs8::der::Decode;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = Zeroizing::new(key.serialize_der());
    let info = pkcs8::PrivateKeyInfoRef::from_der(&der).unwrap();
    // Few iterations: the test is about the format, not the cost.
    let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        1000,
        b"saltsalt",
        [7; 16],
    )
    .unwrap();
    let encrypted = info
        .encrypt_with_params(params, password)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    (cert.pem(), encrypted.to_string(), der)
}

#[cfg(feature = "kmip")]
#[test]
fn encrypted_pkcs8_is_decrypted_with_the_password() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, encrypted, der) = encrypted_identity("correct horse");
    let pem = Zeroizing::new(format!("{cert}{encrypted}").into_bytes());
    let unlocked = unlock(pem.clone(), Some("correct horse")).unwrap();
    let text = String::from_utf8(unlocked.to_vec()).unwrap();
    assert!(!text.contains("ENCRYPTED"), "{text}");
    assert_eq!(CertificateDer::pem_slice_iter(&unlocked).count(), 1);
    let key = PrivateKeyDer::from_pem_slice(&unlocked).unwrap();
    assert_eq!(key.secret_der(), &der[..]);

    for (password, why) in [
        (Some("wrong horse"), "does not decrypt"),
        (None, "give tlsCertificateKeyFilePassword"),
    ] {
        let err = unlock(pem.clone(), password).unwrap_err();
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("horse"), "{err}");
    }
    let twice = Zeroizing::new(format!("{cert}{encrypted}{encrypted}").into_bytes());
    assert!(unlock(twice, Some("correct horse")).is_err());
    let cut = Zeroizing::new(format!("{cert}{}", &encrypted[..encrypted.len() / 2]).into_bytes());
    assert!(unlock(cut, Some("correct horse")).is_err());
}
