//! QE values as the server stores them and returns them to clients, read
//! and decrypted as libmongocrypt reads them (`mc-fle2-payload-uev*.c`,
//! `mc-fle2-payload-iev*.c`).
//!
//! Each is the payload of a BSON binary of subtype 6 whose first byte
//! names the kind:
//!
//! ```text
//! unindexed, v1 (6) and v2 (16):
//!   subtype(1) ‖ key UUID(16) ‖ BSON type(1) ‖ C
//!   C = FLE2AEAD (v1) or FLE2v2AEAD (v2) with AD = the first 18 bytes
//!
//! indexed v2: equality (14), range (15), text (17):
//!   subtype(1) ‖ S_KeyId(16) ‖ BSON type(1)
//!   ‖ range: edge count(u8, ≥ 1) | text: edge count, substring count, suffix count (u32 LE each)
//!   ‖ ServerEncryptedValue ‖ metadata blocks (96 bytes each; equality: 1, range and text: edge count)
//!   ServerEncryptedValue = FLE2(ServerDataEncryptionLevel1Token of S_Key, K_KeyId(16) ‖ ClientEncryptedValue)
//!   ClientEncryptedValue = FLE2v2AEAD(K_Key, AD = K_KeyId, value)
//!
//! indexed v1: equality (7), range (9):
//!   subtype(1) ‖ S_KeyId(16) ‖ BSON type(1) ‖ InnerEncrypted
//!   InnerEncrypted = FLE2(ServerDataEncryptionLevel1Token of S_Key,
//!                         length(u64 LE) ‖ K_KeyId(16) ‖ ClientEncryptedValue(length − 16) ‖ tokens…)
//!   ClientEncryptedValue = FLE2AEAD(K_Key, AD = K_KeyId, value)
//! ```
//!
//! The decrypted value is the bytes of a BSON value of the stored type
//! (what follows the element name in a BSON element). An indexed value
//! takes two keys: the server layer's (`S_KeyId`, in the clear) and the
//! client layer's (`K_KeyId`, found only inside the server layer); both are
//! the same key when libmongocrypt wrote the value. Counts are checked
//! against the bytes present before anything is read or allocated, so a
//! value that lies about its size is an error, never a panic or a large
//! allocation.

use super::Error;
use super::aead::{QeDataKey, fle2_aead_decrypt, fle2_decrypt, fle2v2_aead_decrypt, unindexed_aad};
use super::tokens::ServerDataEncryptionLevel1Token;
use zeroize::Zeroizing;

/// First byte of an unindexed value, FLE2 v1.
pub const UNINDEXED_V1: u8 = 6;
/// First byte of an indexed equality value, FLE2 v1.
pub const INDEXED_EQUALITY_V1: u8 = 7;
/// First byte of an indexed range value, FLE2 v1.
pub const INDEXED_RANGE_V1: u8 = 9;
/// First byte of an indexed equality value, v2.
pub const INDEXED_EQUALITY_V2: u8 = 14;
/// First byte of an indexed range value, v2.
pub const INDEXED_RANGE_V2: u8 = 15;
/// First byte of an unindexed value, v2.
pub const UNINDEXED_V2: u8 = 16;
/// First byte of an indexed text-search value.
pub const INDEXED_TEXT: u8 = 17;

/// Length of a key UUID.
const UUID_LEN: usize = 16;
/// subtype ‖ key UUID ‖ BSON type.
const PREFIX_LEN: usize = 1 + UUID_LEN + 1;
/// One metadata block: encrypted count, tag, encrypted zeros.
const METADATA_BLOCK_LEN: u64 = 96;
/// The shortest ServerEncryptedValue: IV and one byte.
const MIN_SERVER_ENCRYPTED_LEN: u64 = 17;

/// A stored QE value, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QeValue<'a> {
    /// Unindexed (subtypes 6 and 16).
    Unindexed(UnindexedValue<'a>),
    /// Indexed: equality, range or text (subtypes 7, 9, 14, 15, 17).
    Indexed(IndexedValue<'a>),
}

impl<'a> QeValue<'a> {
    /// Parses a stored QE value (the bytes of a subtype-6 binary).
    /// Payloads a client sends (insert and find payloads) are not stored
    /// values and are refused here.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        match blob.first() {
            Some(&(UNINDEXED_V1 | UNINDEXED_V2)) => {
                UnindexedValue::parse(blob).map(QeValue::Unindexed)
            }
            Some(
                &(INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1 | INDEXED_EQUALITY_V2 | INDEXED_RANGE_V2
                | INDEXED_TEXT),
            ) => IndexedValue::parse(blob).map(QeValue::Indexed),
            Some(&actual) => Err(Error::UnexpectedSubtype {
                expected: "6, 7, 9, 14, 15, 16 or 17",
                actual,
            }),
            None => Err(Error::InvalidValue {
                subtype: 0,
                reason: "empty",
            }),
        }
    }
}

/// The fixed prefix of a stored value: subtype, key UUID, BSON type, and
/// the bytes after them.
type Prefix<'a> = (u8, [u8; UUID_LEN], u8, &'a [u8]);

/// The fixed prefix every stored value starts with.
fn prefix(blob: &[u8]) -> Result<Prefix<'_>, Error> {
    let subtype = blob.first().copied().unwrap_or(0);
    let short = Error::InvalidValue {
        subtype,
        reason: "shorter than subtype, key UUID and BSON type",
    };
    if blob.len() < PREFIX_LEN {
        return Err(short);
    }
    let (head, rest) = blob.split_at(PREFIX_LEN);
    let key_id: [u8; UUID_LEN] = head[1..1 + UUID_LEN].try_into().map_err(|_| short)?;
    Ok((subtype, key_id, head[PREFIX_LEN - 1], rest))
}

/// An unindexed value (FLE2 v1 subtype 6, v2 subtype 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnindexedValue<'a> {
    subtype: u8,
    key_id: [u8; UUID_LEN],
    bson_type: u8,
    ciphertext: &'a [u8],
}

impl<'a> UnindexedValue<'a> {
    /// Parses subtype ‖ key UUID ‖ BSON type ‖ ciphertext.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        let (subtype, key_id, bson_type, ciphertext) = prefix(blob)?;
        if subtype != UNINDEXED_V1 && subtype != UNINDEXED_V2 {
            return Err(Error::UnexpectedSubtype {
                expected: "6 or 16",
                actual: subtype,
            });
        }
        Ok(UnindexedValue {
            subtype,
            key_id,
            bson_type,
            ciphertext,
        })
    }

    /// The value's first byte: 6 (v1) or 16 (v2).
    pub fn subtype(&self) -> u8 {
        self.subtype
    }

    /// The UUID of the data key that decrypts it.
    pub fn key_id(&self) -> [u8; UUID_LEN] {
        self.key_id
    }

    /// The BSON type of the plaintext.
    pub fn bson_type(&self) -> u8 {
        self.bson_type
    }

    /// Decrypts with the key named by [`key_id`](Self::key_id): the bytes
    /// of a BSON value of type [`bson_type`](Self::bson_type).
    pub fn decrypt(&self, key: &QeDataKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        let aad = unindexed_aad(self.subtype, &self.key_id, self.bson_type);
        if self.subtype == UNINDEXED_V1 {
            fle2_aead_decrypt(key, &aad, self.ciphertext)
        } else {
            fle2v2_aead_decrypt(key, &aad, self.ciphertext)
        }
    }
}

/// An indexed value: equality, range or text, v1 or v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedValue<'a> {
    subtype: u8,
    server_key_id: [u8; UUID_LEN],
    bson_type: u8,
    server_encrypted: &'a [u8],
}

impl<'a> IndexedValue<'a> {
    /// Parses the value, checking that its counts fit its bytes.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        let (subtype, server_key_id, bson_type, rest) = prefix(blob)?;
        let invalid = |reason| Error::InvalidValue { subtype, reason };
        let (blocks, rest): (u64, &[u8]) = match subtype {
            INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1 => {
                // InnerEncrypted runs to the end; FLE2 needs IV and a byte.
                if (rest.len() as u64) < MIN_SERVER_ENCRYPTED_LEN {
                    return Err(invalid("InnerEncrypted shorter than IV and one byte"));
                }
                (0, rest)
            }
            INDEXED_EQUALITY_V2 => (1, rest),
            INDEXED_RANGE_V2 => match rest.split_first() {
                Some((&edges, rest)) if edges > 0 => (u64::from(edges), rest),
                Some(_) => return Err(invalid("range edge count is 0")),
                None => return Err(invalid("no range edge count")),
            },
            INDEXED_TEXT => {
                if rest.len() < 12 {
                    return Err(invalid("no text tag counts"));
                }
                let (counts, rest) = rest.split_at(12);
                let count = |i: usize| -> u64 {
                    let mut le = [0u8; 4];
                    le.copy_from_slice(&counts[4 * i..4 * i + 4]);
                    u64::from(u32::from_le_bytes(le))
                };
                let (edges, substrings, suffixes) = (count(0), count(1), count(2));
                if edges < substrings + suffixes + 1 {
                    return Err(invalid(
                        "text edge count below substring count + suffix count + 1",
                    ));
                }
                (edges, rest)
            }
            actual => {
                return Err(Error::UnexpectedSubtype {
                    expected: "7, 9, 14, 15 or 17",
                    actual,
                });
            }
        };
        // At most 2^32 blocks of 96 bytes: no overflow in u64.
        let metadata_len = blocks * METADATA_BLOCK_LEN;
        let available = rest.len() as u64;
        if available < MIN_SERVER_ENCRYPTED_LEN + metadata_len {
            return Err(invalid(
                "shorter than its ServerEncryptedValue and metadata blocks",
            ));
        }
        // Fits in usize: it is at most `rest.len()`.
        let server_len =
            usize::try_from(available - metadata_len).map_err(|_| invalid("length overflow"))?;
        Ok(IndexedValue {
            subtype,
            server_key_id,
            bson_type,
            server_encrypted: &rest[..server_len],
        })
    }

    /// The value's first byte.
    pub fn subtype(&self) -> u8 {
        self.subtype
    }

    /// The UUID of the data key of the server layer (`S_KeyId`).
    pub fn server_key_id(&self) -> [u8; UUID_LEN] {
        self.server_key_id
    }

    /// The BSON type of the plaintext.
    pub fn bson_type(&self) -> u8 {
        self.bson_type
    }

    fn is_v1(&self) -> bool {
        matches!(self.subtype, INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1)
    }

    /// Decrypts the server layer with the key named by
    /// [`server_key_id`](Self::server_key_id), giving the client layer and
    /// the id of its key. Nothing authenticates this layer: a wrong key
    /// gives a client layer whose key is not found or whose tag fails.
    pub fn decrypt_server_layer(&self, server_key: &QeDataKey) -> Result<ClientLayer, Error> {
        let subtype = self.subtype;
        let invalid = |reason| Error::InvalidValue { subtype, reason };
        let token = ServerDataEncryptionLevel1Token::derive(server_key.token_key());
        let inner = fle2_decrypt(token.as_bytes(), self.server_encrypted)?;
        let (client_key_id, client_encrypted) = if self.is_v1() {
            // length(u64 LE) ‖ K_KeyId ‖ ClientEncryptedValue(length − 16) ‖ …
            if inner.len() < 8 + UUID_LEN {
                return Err(invalid(
                    "InnerEncrypted shorter than its length and K_KeyId",
                ));
            }
            let mut le = [0u8; 8];
            le.copy_from_slice(&inner[..8]);
            let length = u64::from_le_bytes(le);
            let value_len = length
                .checked_sub(UUID_LEN as u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= inner.len() - 8 - UUID_LEN)
                .ok_or(invalid("InnerEncrypted length does not fit"))?;
            let start = 8 + UUID_LEN;
            (&inner[8..start], &inner[start..start + value_len])
        } else {
            // K_KeyId ‖ ClientEncryptedValue
            if inner.len() <= UUID_LEN {
                return Err(invalid("ServerEncryptedValue not longer than K_KeyId"));
            }
            (&inner[..UUID_LEN], &inner[UUID_LEN..])
        };
        let client_key_id: [u8; UUID_LEN] =
            client_key_id.try_into().map_err(|_| invalid("K_KeyId"))?;
        Ok(ClientLayer {
            v1: self.is_v1(),
            client_key_id,
            client_encrypted: client_encrypted.to_vec(),
        })
    }
}

/// The client layer of an indexed value, after the server layer's
/// decryption: still encrypted and authenticated, under `K_KeyId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLayer {
    v1: bool,
    client_key_id: [u8; UUID_LEN],
    client_encrypted: Vec<u8>,
}

impl ClientLayer {
    /// The UUID of the data key that decrypts this layer (`K_KeyId`).
    pub fn client_key_id(&self) -> [u8; UUID_LEN] {
        self.client_key_id
    }

    /// Decrypts with the key named by
    /// [`client_key_id`](Self::client_key_id), the tag covering the key
    /// id: the bytes of a BSON value of the stored type.
    pub fn decrypt(&self, client_key: &QeDataKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.v1 {
            fle2_aead_decrypt(client_key, &self.client_key_id, &self.client_encrypted)
        } else {
            fle2v2_aead_decrypt(client_key, &self.client_key_id, &self.client_encrypted)
        }
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
