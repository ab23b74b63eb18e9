//! The three QE ciphers, as libmongocrypt's `mongocrypt-crypto.c` defines
//! them (`_mcFLE2v2AEADAlgorithm`, `_mcFLE2AEADAlgorithm`,
//! `_mcFLE2Algorithm`).
//!
//! ```text
//! FLE2v2AEAD (v2 values):   IV(16) ‖ AES-256-CBC-PKCS7(Ke, IV, P) ‖ HMAC-SHA-256(Km, AD ‖ IV ‖ S)
//! FLE2AEAD   (v1 values):   IV(16) ‖ AES-256-CTR(Ke, IV, P)       ‖ HMAC-SHA-256(Km, AD ‖ IV ‖ S)
//! FLE2       (server layer): IV(16) ‖ AES-256-CTR(K, IV, P)
//!
//! data key (96 bytes) = Ke(32) ‖ Km(32) ‖ token key(32)
//! ```
//!
//! Note the split differs from FLE1's (there the MAC key comes first), and
//! the tag is the whole HMAC-SHA-256 with no length block after the
//! associated data. The CTR counter is the whole 16-byte IV, big-endian,
//! as OpenSSL's `EVP_aes_256_ctr`. `S` is the ciphertext without IV and
//! tag. The associated data `AD` is the payload's: for unindexed values
//! `subtype ‖ key UUID ‖ BSON type`, for indexed values the key UUID and
//! more; the FLE2 layer has none and its 32-byte key is a token
//! (`ServerDataEncryptionLevel1Token`, `ECOCToken`, …).
//!
//! Tags are checked in constant time before anything is decrypted. Lengths
//! are checked before anything else, so no input panics. An empty
//! plaintext is refused both ways, as libmongocrypt refuses it.

use super::Error;
use super::random::QeRandom;
use super::tokens::{TOKEN_LEN, TokenKey, hmac_sha256};
use aes::{Aes256Dec, Aes256Enc};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Length of a data key: encryption key ‖ MAC key ‖ token key.
pub const QE_DATA_KEY_LEN: usize = 96;
/// Length of the IV that starts every QE ciphertext.
pub const IV_LEN: usize = 16;
/// Length of the HMAC-SHA-256 tag that ends FLE2AEAD and FLE2v2AEAD
/// ciphertexts.
pub const TAG_LEN: usize = 32;
/// AES block length.
const BLOCK_LEN: usize = 16;
/// Length of each third of a data key, and of an AES-256 key.
const KEY_PART_LEN: usize = 32;
/// The longest plaintext libmongocrypt encrypts: its lengths are u32 and
/// leave room for IV, a padding block and the tag.
const MAX_PLAINTEXT_LEN: u64 = u32::MAX as u64 - (IV_LEN + BLOCK_LEN + TAG_LEN) as u64;

/// A decrypted 96-byte data key, ready for the QE ciphers: the AES-256
/// key schedules of its first third, the keyed HMAC-SHA-256 state of its
/// second, and its last third as the root of the token chain.
///
/// Every field zeroizes itself on drop; the raw key bytes are not kept
/// beyond the token key. `Debug` prints nothing of it.
pub struct QeDataKey {
    enc: Aes256Enc,
    dec: Aes256Dec,
    mac: Hmac<Sha256>,
    token_key: TokenKey,
}

impl QeDataKey {
    /// Builds the key from 96 bytes of key material (`keyMaterial` of a
    /// key document, unwrapped).
    pub fn new(material: &[u8]) -> Result<Self, Error> {
        if material.len() != QE_DATA_KEY_LEN {
            return Err(Error::InvalidKeyLength {
                expected: QE_DATA_KEY_LEN,
                actual: material.len(),
            });
        }
        let (ke, rest) = material.split_at(KEY_PART_LEN);
        let (km, _) = rest.split_at(KEY_PART_LEN);
        let km: &[u8; KEY_PART_LEN] = km.try_into().map_err(|_| Error::InvalidKeyLength {
            expected: QE_DATA_KEY_LEN,
            actual: material.len(),
        })?;
        Ok(QeDataKey {
            enc: aes_enc(ke)?,
            dec: Aes256Dec::new_from_slice(ke).map_err(|_| Error::InvalidKeyLength {
                expected: KEY_PART_LEN,
                actual: ke.len(),
            })?,
            mac: hmac_sha256(km),
            token_key: TokenKey::from_data_key(material)?,
        })
    }

    /// The QE form of a data key fetched like any other (a key ring, the
    /// key cache of a `ClientEncryption`): the same 96 bytes, split as QE
    /// splits them. Built per use; the FLE1 key keeps only the bytes.
    pub(crate) fn from_data_key(key: &crate::crypto::DataKey) -> Result<Self, Error> {
        Self::new(&key.material()[..])
    }

    /// The root of this key's token chain (its last 32 bytes).
    pub fn token_key(&self) -> &TokenKey {
        &self.token_key
    }

    /// HMAC-SHA-256(Km, AD ‖ IV ‖ S).
    fn tag(&self, aad: &[u8], iv_and_body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(aad);
        mac.update(iv_and_body);
        mac.finalize().into_bytes().into()
    }

    /// Checks the tag at the end of `ciphertext` in constant time and
    /// returns IV ‖ S. `ciphertext` is at least `TAG_LEN` long.
    fn verified<'c>(&self, aad: &[u8], ciphertext: &'c [u8]) -> Result<&'c [u8], Error> {
        let len = ciphertext.len();
        let split = len
            .checked_sub(TAG_LEN)
            .ok_or(Error::InvalidCiphertextLength {
                len,
                reason: "shorter than the tag",
            })?;
        let (iv_and_body, received) = ciphertext.split_at(split);
        let expected = self.tag(aad, iv_and_body);
        if bool::from(expected[..].ct_eq(received)) {
            Ok(iv_and_body)
        } else {
            Err(Error::MacMismatch)
        }
    }
}

impl fmt::Debug for QeDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QeDataKey(..)")
    }
}

/// An AES-256 encryption key schedule from 32 bytes.
fn aes_enc(key: &[u8]) -> Result<Aes256Enc, Error> {
    Aes256Enc::new_from_slice(key).map_err(|_| Error::InvalidKeyLength {
        expected: KEY_PART_LEN,
        actual: key.len(),
    })
}

/// Refuses plaintexts libmongocrypt refuses: empty or too long.
fn check_plaintext(plaintext: &[u8]) -> Result<(), Error> {
    if plaintext.is_empty() {
        return Err(Error::EmptyPlaintext);
    }
    if plaintext.len() as u64 > MAX_PLAINTEXT_LEN {
        return Err(Error::PlaintextTooLong {
            len: plaintext.len(),
        });
    }
    Ok(())
}

/// A fresh IV from `rng`.
fn draw_iv(rng: &mut QeRandom) -> Result<[u8; IV_LEN], Error> {
    let mut iv = [0u8; IV_LEN];
    rng.fill(&mut iv)?;
    Ok(iv)
}

/// Splits IV ‖ S.
fn split_iv(iv_and_body: &[u8]) -> Result<([u8; IV_LEN], &[u8]), Error> {
    let len = iv_and_body.len();
    let short = Error::InvalidCiphertextLength {
        len,
        reason: "shorter than the IV",
    };
    if len < IV_LEN {
        return Err(short);
    }
    let (iv, body) = iv_and_body.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| short)?;
    Ok((iv, body))
}

/// XORs the AES-256-CTR keystream for `iv` (a 128-bit big-endian counter,
/// wrapping as OpenSSL's does) into `buf`.
fn ctr_apply(enc: &Aes256Enc, iv: &[u8; IV_LEN], buf: &mut [u8]) -> Result<(), Error> {
    let core = <ctr::CtrCore<&Aes256Enc, ctr::flavors::Ctr128BE> as InnerIvInit>::inner_iv_init(
        enc,
        &(*iv).into(),
    );
    let mut cipher = ctr::Ctr128BE::<&Aes256Enc>::from_core(core);
    cipher
        .try_apply_keystream(buf)
        .map_err(|_| Error::KeystreamExhausted)
}

/// FLE2v2AEAD encryption (AES-256-CBC + HMAC-SHA-256), for v2 values: a
/// fresh IV from `rng`, then IV ‖ S ‖ T.
pub fn fle2v2_aead_encrypt(
    key: &QeDataKey,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    check_plaintext(plaintext)?;
    let iv = draw_iv(rng)?;
    let padded_len = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    let mut out = Vec::with_capacity(IV_LEN + padded_len + TAG_LEN);
    out.extend_from_slice(&iv);
    out.resize(IV_LEN + padded_len, 0);
    out[IV_LEN..IV_LEN + plaintext.len()].copy_from_slice(plaintext);
    // Cannot fail: the buffer after the IV was sized for the padded
    // plaintext above.
    let encrypted = cbc::Encryptor::<&Aes256Enc>::inner_iv_init(&key.enc, &iv.into())
        .encrypt_padded::<Pkcs7>(&mut out[IV_LEN..], plaintext.len())
        .is_ok();
    if !encrypted {
        out.zeroize();
        return Err(Error::PlaintextTooLong {
            len: plaintext.len(),
        });
    }
    let tag = key.tag(aad, &out);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// FLE2v2AEAD decryption: checks the tag over `aad` ‖ IV ‖ S, then
/// decrypts and unpads.
pub fn fle2v2_aead_decrypt(
    key: &QeDataKey,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let len = ciphertext.len();
    if len < IV_LEN + BLOCK_LEN + TAG_LEN {
        return Err(Error::InvalidCiphertextLength {
            len,
            reason: "input ciphertext too small: IV, one AES block and the tag are at least 64 bytes",
        });
    }
    if !(len - IV_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN) {
        return Err(Error::InvalidCiphertextLength {
            len,
            reason: "the CBC ciphertext is not a whole number of 16-byte blocks",
        });
    }
    let iv_and_body = key.verified(aad, ciphertext)?;
    let (iv, body) = split_iv(iv_and_body)?;
    let mut out = Zeroizing::new(body.to_vec());
    let plain_len = cbc::Decryptor::<&Aes256Dec>::inner_iv_init(&key.dec, &iv.into())
        .decrypt_padded::<Pkcs7>(&mut out[..])
        .map_err(|_| Error::BadPadding)?
        .len();
    out.truncate(plain_len);
    if plain_len == 0 {
        return Err(Error::EmptyPlaintext);
    }
    Ok(out)
}

/// FLE2AEAD decryption (AES-256-CTR + HMAC-SHA-256), for v1 values
/// (FLE2 v1, before MongoDB 7.0): checks the tag over `aad` ‖ IV ‖ S,
/// then decrypts. csfle reads these values but never writes them.
pub fn fle2_aead_decrypt(
    key: &QeDataKey,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let len = ciphertext.len();
    if len <= IV_LEN + TAG_LEN {
        return Err(Error::InvalidCiphertextLength {
            len,
            reason: "input ciphertext too small: IV and tag are 48 bytes and the plaintext is not empty",
        });
    }
    let iv_and_body = key.verified(aad, ciphertext)?;
    let (iv, body) = split_iv(iv_and_body)?;
    let mut out = Zeroizing::new(body.to_vec());
    ctr_apply(&key.enc, &iv, &mut out[..])?;
    Ok(out)
}

/// FLE2 encryption (AES-256-CTR, no MAC), the server-level layer: a fresh
/// IV from `rng`, then IV ‖ S. `key` is 32 bytes, a token's.
pub fn fle2_encrypt(key: &[u8], plaintext: &[u8], rng: &mut QeRandom) -> Result<Vec<u8>, Error> {
    check_plaintext(plaintext)?;
    let enc = aes_enc(key)?;
    let iv = draw_iv(rng)?;
    let mut out = Vec::with_capacity(IV_LEN + plaintext.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(plaintext);
    if let Err(e) = ctr_apply(&enc, &iv, &mut out[IV_LEN..]) {
        out.zeroize();
        return Err(e);
    }
    Ok(out)
}

/// FLE2 decryption (AES-256-CTR, no MAC): IV ‖ S with a 32-byte `key`.
/// Nothing authenticates this layer: a wrong key gives garbage, which the
/// layer above must reject.
pub fn fle2_decrypt(key: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let len = ciphertext.len();
    if len <= IV_LEN {
        return Err(Error::InvalidCiphertextLength {
            len,
            reason: "input ciphertext too small: the IV is 16 bytes and the plaintext is not empty",
        });
    }
    let enc = aes_enc(key)?;
    let (iv, body) = split_iv(ciphertext)?;
    let mut out = Zeroizing::new(body.to_vec());
    ctr_apply(&enc, &iv, &mut out[..])?;
    Ok(out)
}

/// The associated data of an unindexed value (FLE2 v1 subtype 6 and v2
/// subtype 16), as libmongocrypt's `mc-fle2-payload-uev-common.c` builds
/// it: blob subtype ‖ key UUID ‖ original BSON type.
pub fn unindexed_aad(blob_subtype: u8, key_uuid: &[u8; 16], bson_type: u8) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[0] = blob_subtype;
    aad[1..17].copy_from_slice(key_uuid);
    aad[17] = bson_type;
    aad
}

// The token length and the AES-256 key length agree: FLE2 keys are tokens.
const _: () = assert!(TOKEN_LEN == KEY_PART_LEN);

#[cfg(test)]
#[path = "aead_tests.rs"]
mod tests;
