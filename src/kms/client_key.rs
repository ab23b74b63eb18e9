//! The private key of `tlsCertificateKeyFile`, plain or encrypted.
//!
//! An encrypted key is PKCS#8 `ENCRYPTED PRIVATE KEY` with PBES2 (PBKDF2
//! with HMAC-SHA-256/384/512 or scrypt, AES-CBC or AES-GCM): what `openssl
//! pkcs8 -topk8 -v2 aes-256-cbc` writes. It is decrypted with
//! `tlsCertificateKeyFilePassword` once, when the TLS options are read,
//! and the file's PEM is kept with the key in plain PKCS#8 instead, in a
//! zeroizing buffer, so every provider's TLS stack takes it unchanged.
//! OpenSSL's legacy encrypted PEM (`Proc-Type: 4,ENCRYPTED`, an MD5-based
//! key derivation) is refused with the command that converts it. Errors
//! never quote the password, the key or the file.

use zeroize::Zeroizing;

/// What a legacy OpenSSL key is told.
const LEGACY_PEM: &str = "the private key is in OpenSSL's legacy encrypted PEM \
    (Proc-Type: 4,ENCRYPTED), which is not supported; convert it to encrypted PKCS#8 with \
    `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out new.pem` (and put the \
    certificate back in the file)";

const ENCRYPTED_BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
#[cfg(feature = "kmip")]
const ENCRYPTED_END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The PEM of `tlsCertificateKeyFile` ready for a TLS stack: as read when
/// its key is plain, with the key decrypted by `password` when it is
/// encrypted PKCS#8. A password for a plain key, an encrypted key without
/// one, and a legacy encrypted PEM are refused. The reason names no value.
pub(crate) fn unlock(
    pem: Zeroizing<Vec<u8>>,
    password: Option<&str>,
) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if find(&pem, b"Proc-Type: 4,ENCRYPTED").is_some() {
        return Err(LEGACY_PEM);
    }
    let encrypted = find(&pem, ENCRYPTED_BEGIN).is_some();
    match (encrypted, password) {
        (false, None) => Ok(pem),
        (false, Some(_)) => {
            Err("the private key is not encrypted, yet tlsCertificateKeyFilePassword is given")
        }
        (true, None) => Err("the private key is encrypted: give tlsCertificateKeyFilePassword"),
        (true, Some(password)) => decrypt(&pem, password.as_bytes()),
    }
}

#[cfg(not(feature = "kmip"))]
fn decrypt(_pem: &[u8], _password: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    Err("encrypted private keys need csfle built with the `kmip` feature")
}

/// The file's PEM with its one `ENCRYPTED PRIVATE KEY` block replaced by
/// the decrypted key as `PRIVATE KEY` (PKCS#8), after the certificates.
#[cfg(feature = "kmip")]
fn decrypt(pem: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    const NOT_PEM: &str = "the encrypted private key is not a valid PEM block";
    let start = find(pem, ENCRYPTED_BEGIN).ok_or(NOT_PEM)?;
    let after_begin = pem.get(start..).ok_or(NOT_PEM)?;
    let end = find(after_begin, ENCRYPTED_END)
        .map(|i| start + i + ENCRYPTED_END.len())
        .ok_or(NOT_PEM)?;
    let rest = pem.get(end..).ok_or(NOT_PEM)?;
    if find(rest, ENCRYPTED_BEGIN).is_some() {
        return Err("the file holds more than one encrypted private key");
    }
    let block = pem
        .get(start..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or(NOT_PEM)?;
    let (label, document) = pkcs8::der::Document::from_pem(block).map_err(|_| NOT_PEM)?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(NOT_PEM);
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
        .map_err(|_| "the encrypted private key is not PKCS#8 EncryptedPrivateKeyInfo")?;
    let key = info.decrypt(password).map_err(|_| {
        "tlsCertificateKeyFilePassword does not decrypt the private key, or its encryption is \
         not PBES2 (PBKDF2 with HMAC-SHA-2, or scrypt; AES)"
    })?;
    let key_pem = key
        .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|_| "the decrypted private key cannot be encoded")?;
    let mut out = Zeroizing::new(Vec::with_capacity(
        pem.len().saturating_add(key_pem.len()).saturating_add(1),
    ));
    out.extend_from_slice(pem.get(..start).ok_or(NOT_PEM)?);
    out.extend_from_slice(rest);
    out.push(b'\n');
    out.extend_from_slice(key_pem.as_bytes());
    Ok(out)
}

#[cfg(test)]
#[path = "client_key_tests.rs"]
mod tests;
