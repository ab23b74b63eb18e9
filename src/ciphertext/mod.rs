//! The FLE1 payload: the bytes inside a BSON binary of subtype 6.
//!
//! ```text
//! blob = blob_subtype(1) ‖ key_uuid(16) ‖ original_bson_type(1) ‖ ciphertext
//!        └────────────── associated data (18 bytes) ──────────┘
//! ```
//!
//! `blob_subtype` is 1 for deterministic and 2 for random encryption (0 is a
//! query-analysis marking, never a ciphertext). The plaintext is the raw BSON
//! value bytes, without type byte or field name; `original_bson_type` carries
//! the type. There is no length field, whatever one copy of the specification
//! suggests: libmongocrypt and every published vector agree.

mod value;

#[cfg(test)]
mod interop_tests;

// `deterministic_allows` is public for the derive's generated code
// (`schema::typed::__private`); the rest is the crate's own.
pub use value::deterministic_allows;
pub(crate) use value::{
    check_encryptable, check_plaintext, decrypt_value, decrypt_verified_value, encrypt_value,
    encrypt_values, value_from_plaintext, verify_payload, verify_payloads,
};

use crate::crypto::{self, Algorithm};
use crate::key::KeyId;
use bson::spec::ElementType;

/// Length of the header that doubles as associated data.
pub(crate) const HEADER_LEN: usize = 18;

/// Deterministic or random, as recorded in the first byte of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobSubtype {
    /// `1`: AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic.
    Deterministic = 1,
    /// `2`: AEAD_AES_256_CBC_HMAC_SHA_512-Random.
    Random = 2,
}

impl BlobSubtype {
    /// The algorithm that produces this subtype.
    pub fn algorithm(self) -> Algorithm {
        match self {
            BlobSubtype::Deterministic => Algorithm::Deterministic,
            BlobSubtype::Random => Algorithm::Random,
        }
    }
}

impl From<Algorithm> for BlobSubtype {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Deterministic => BlobSubtype::Deterministic,
            Algorithm::Random => BlobSubtype::Random,
        }
    }
}

/// A parsed FLE1 ciphertext blob, borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fle1Blob<'a> {
    /// Deterministic or random.
    pub subtype: BlobSubtype,
    /// The data key that encrypted it.
    pub key_id: KeyId,
    /// The BSON type of the plaintext value.
    pub original_type: ElementType,
    /// IV ‖ AES-CBC ciphertext ‖ tag.
    pub ciphertext: &'a [u8],
}

impl<'a> Fle1Blob<'a> {
    /// Parses the payload of a subtype-6 binary. Checks structure only; the
    /// ciphertext is authenticated when decrypted.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let Some(&first) = bytes.first() else {
            return Err(Error::Truncated { len: 0 });
        };
        let subtype = match first {
            1 => BlobSubtype::Deterministic,
            2 => BlobSubtype::Random,
            0 => return Err(Error::Marking),
            other => return Err(Error::UnknownBlobSubtype(other)),
        };
        if bytes.len() < HEADER_LEN + 1 {
            return Err(Error::Truncated { len: bytes.len() });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[1..17]);
        let original_type =
            ElementType::from(bytes[17]).ok_or(Error::UnknownBsonType(bytes[17]))?;
        Ok(Fle1Blob {
            subtype,
            key_id: KeyId::from_bytes(id),
            original_type,
            ciphertext: &bytes[HEADER_LEN..],
        })
    }

    /// Parses a BSON binary, which must be of subtype 6.
    pub fn from_binary(binary: bson::RawBinaryRef<'a>) -> Result<Self, Error> {
        if binary.subtype != bson::spec::BinarySubtype::Encrypted {
            return Err(Error::NotEncrypted {
                subtype: u8::from(binary.subtype),
            });
        }
        Self::parse(binary.bytes)
    }

    /// The associated data: the 18-byte header.
    pub fn aad(&self) -> [u8; HEADER_LEN] {
        header(self.subtype, self.key_id, self.original_type)
    }

    /// Serializes the blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        out.extend_from_slice(&self.aad());
        out.extend_from_slice(self.ciphertext);
        out
    }
}

pub(crate) fn header(subtype: BlobSubtype, key_id: KeyId, ty: ElementType) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = subtype as u8;
    h[1..17].copy_from_slice(&key_id.bytes());
    h[17] = ty as u8;
    h
}

/// What can go wrong reading or producing an FLE1 payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binary is not of subtype 6.
    #[error("expected a BSON binary of subtype 6 (encrypted), got subtype {subtype}")]
    NotEncrypted {
        /// The subtype found.
        subtype: u8,
    },
    /// Fewer bytes than the 18-byte header plus ciphertext.
    #[error("malformed ciphertext: {len} bytes is too short for an FLE1 blob")]
    Truncated {
        /// Length found.
        len: usize,
    },
    /// First byte 0: a query-analysis marking, not ciphertext.
    #[error("malformed ciphertext: found an encryption marking (blob subtype 0), not a ciphertext")]
    Marking,
    /// First byte not 1 or 2.
    #[error("malformed ciphertext, expected blob subtype of 1 or 2, got {0}")]
    UnknownBlobSubtype(u8),
    /// The original-type byte is not a BSON type.
    #[error("malformed ciphertext: unknown original BSON type 0x{0:02x}")]
    UnknownBsonType(u8),
    /// The value's type may never be encrypted (null, undefined, minKey, maxKey).
    #[error("BSON type invalid for encryption: {}", type_name(*.0))]
    NeverEncryptable(ElementType),
    /// The value's type may only be encrypted with the random algorithm.
    #[error("BSON type invalid for deterministic encryption: {}", type_name(*.0))]
    NotDeterministic(ElementType),
    /// The value is itself a subtype-6 binary.
    #[error("BSON binary subtype 6 is invalid for encryption")]
    AlreadyEncrypted,
    /// The value cannot be serialized as BSON (for example a regex with a NUL byte).
    #[error("value cannot be serialized as BSON: {0}")]
    UnserializableValue(String),
    /// The authenticated plaintext is not a well-formed value of the recorded type.
    #[error("decrypted plaintext is not a valid BSON {}: {reason}", type_name(*.ty))]
    MalformedPlaintext {
        /// The type recorded in the blob.
        ty: ElementType,
        /// What was wrong.
        reason: String,
    },
    /// The AEAD layer failed (bad MAC, bad length, …).
    #[error(transparent)]
    Crypto(#[from] crypto::Error),
}

/// The name MongoDB's `$type` uses for a BSON type.
pub(crate) fn type_name(ty: ElementType) -> &'static str {
    use ElementType::*;
    match ty {
        Double => "double",
        String => "string",
        EmbeddedDocument => "object",
        Array => "array",
        Binary => "binData",
        Undefined => "undefined",
        ObjectId => "objectId",
        Boolean => "bool",
        DateTime => "date",
        Null => "null",
        RegularExpression => "regex",
        DbPointer => "dbPointer",
        JavaScriptCode => "javascript",
        Symbol => "symbol",
        JavaScriptCodeWithScope => "javascriptWithScope",
        Int32 => "int",
        Timestamp => "timestamp",
        Int64 => "long",
        Decimal128 => "decimal",
        MaxKey => "maxKey",
        MinKey => "minKey",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors() {
        assert_eq!(Fle1Blob::parse(&[]), Err(Error::Truncated { len: 0 }));
        assert_eq!(Fle1Blob::parse(&[0; 40]), Err(Error::Marking));
        assert_eq!(Fle1Blob::parse(&[3; 40]), Err(Error::UnknownBlobSubtype(3)));
        assert_eq!(Fle1Blob::parse(&[1; 18]), Err(Error::Truncated { len: 18 }));
        let mut b = [1u8; 19];
        b[17] = 0x55;
        assert_eq!(Fle1Blob::parse(&b), Err(Error::UnknownBsonType(0x55)));
    }

    #[test]
    fn round_trip_header() {
        let mut b = vec![2u8];
        b.extend_from_slice(&[9; 16]);
        b.push(0x02);
        b.extend_from_slice(&[7; 64]);
        let blob = Fle1Blob::parse(&b).unwrap();
        assert_eq!(blob.subtype, BlobSubtype::Random);
        assert_eq!(blob.key_id, KeyId::from_bytes([9; 16]));
        assert_eq!(blob.original_type, ElementType::String);
        assert_eq!(blob.to_bytes(), b);
    }
}
