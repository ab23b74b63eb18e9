//! The FLE1 authenticated encryption scheme, `AEAD_AES_256_CBC_HMAC_SHA_512`.
//!
//! This layer is pure: it turns bytes into bytes. It knows nothing of BSON
//! values, key documents or KMS providers. [`DataKey`] owns the precomputed
//! AES key schedules and keyed HMAC states of one 96-byte data key, so the
//! hot path never re-derives them.

mod aead;
mod data_key;
pub(crate) mod hmac_lanes;
mod lookup;
mod rng;

#[cfg(test)]
pub(crate) use aead::IV_LEN;
pub(crate) use aead::{MIN_CIPHERTEXT_LEN, ciphertext_len};
pub(crate) use data_key::new_key_material;
// What users name is re-exported at the crate root.
pub use data_key::{DATA_KEY_LEN, DataKey};
pub use lookup::KeyLookup;
pub use rng::{fill_key_material, fill_random};

pub(crate) use aead::{
    FramedJob, IvMode, LANES_FROM_MESSAGES, SealJob, open, open_verified, open_verified_many, seal,
    seal_many, verify_framed, verify_framed_one,
};

/// The two FLE1 encryption algorithms.
///
/// Spelled in key documents, schemas and driver options as
/// `AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic` and `…-Random`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// The IV is derived from the key, the associated data and the plaintext,
    /// so equal plaintexts give equal ciphertexts and can be queried for
    /// equality. Leaks equality; allowed for fewer BSON types.
    Deterministic,
    /// A fresh random IV for every encryption. Not queryable.
    Random,
}

impl Algorithm {
    /// The name MongoDB uses for this algorithm.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Deterministic => "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
            Algorithm::Random => "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
        }
    }

    /// Parses MongoDB's algorithm name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic" => Some(Algorithm::Deterministic),
            "AEAD_AES_256_CBC_HMAC_SHA_512-Random" => Some(Algorithm::Random),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What can go wrong in the AEAD layer. Never carries key bytes or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Key material had the wrong length (data keys and local master keys are 96 bytes).
    #[error("key material must be {expected} bytes, got {actual}")]
    InvalidKeyLength {
        /// Required length.
        expected: usize,
        /// Length supplied.
        actual: usize,
    },
    /// The ciphertext cannot be IV ‖ whole AES blocks ‖ 32-byte tag.
    #[error(
        "invalid ciphertext length {len}: expected at least {MIN_CIPHERTEXT_LEN} bytes, IV and tag plus a whole number of 16-byte blocks"
    )]
    InvalidCiphertextLength {
        /// Length supplied.
        len: usize,
    },
    /// The HMAC tag did not match: wrong key, or the data was altered.
    #[error("HMAC validation failure: wrong key or tampered ciphertext")]
    MacMismatch,
    /// The tag was valid but the PKCS#7 padding was not (only a key holder can produce this).
    #[error("bad PKCS#7 padding after successful authentication")]
    BadPadding,
    /// FLE1 does not encrypt an empty plaintext.
    #[error("plaintext must not be empty")]
    EmptyPlaintext,
    /// The operating system's random generator failed.
    #[error("operating system random generator failed: {0}")]
    Rng(String),
}
