use super::Error;
use super::aead::DATA_KEY_LEN;
use aes::{Aes256Dec, Aes256Enc};
use cbc::cipher::KeyInit;
use hmac::Hmac;
use sha2::Sha512;
use std::fmt;

/// The 16-byte UUID that names a data key (`_id` of its key document,
/// bytes 1..17 of every FLE1 blob it produced).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// Wraps raw UUID bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        KeyId(bytes)
    }

    /// The raw UUID bytes.
    pub const fn bytes(&self) -> [u8; 16] {
        self.0
    }

    /// The id as a BSON binary of subtype 4 (UUID), as stored in `_id`.
    pub fn to_binary(&self) -> bson::Binary {
        bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: self.0.to_vec(),
        }
    }

    /// Reads a subtype-4 binary of 16 bytes.
    pub fn from_binary(binary: &bson::Binary) -> Option<Self> {
        if binary.subtype != bson::spec::BinarySubtype::Uuid {
            return None;
        }
        Some(KeyId(binary.bytes.as_slice().try_into().ok()?))
    }

    /// Creates a random (version 4) UUID from the process CSPRNG.
    pub fn random() -> Result<Self, Error> {
        let mut b = [0u8; 16];
        super::fill_random(&mut b)?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(KeyId(b))
    }
}

impl fmt::Display for KeyId {
    /// Hyphenated UUID form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&bson::Uuid::from_bytes(self.0), f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A decrypted 96-byte data key, ready to use.
///
/// Holds the AES-256 encryption and decryption key schedules and the keyed
/// HMAC-SHA-512 states (inner and outer pads already absorbed) for the MAC and
/// IV keys, computed once. Every field zeroizes itself on drop; the raw key
/// bytes are not kept. `Debug` shows only the key id.
pub struct DataKey {
    id: KeyId,
    pub(super) mac: Hmac<Sha512>,
    pub(super) iv_mac: Hmac<Sha512>,
    pub(super) enc: Aes256Enc,
    pub(super) dec: Aes256Dec,
}

impl DataKey {
    /// Builds a data key from its id and 96 bytes of key material
    /// (MAC key ‖ encryption key ‖ IV key).
    pub fn new(id: KeyId, material: &[u8]) -> Result<Self, Error> {
        if material.len() != DATA_KEY_LEN {
            return Err(Error::InvalidKeyLength {
                expected: DATA_KEY_LEN,
                actual: material.len(),
            });
        }
        let invalid = |_| Error::InvalidKeyLength {
            expected: DATA_KEY_LEN,
            actual: material.len(),
        };
        Ok(DataKey {
            id,
            mac: <Hmac<Sha512> as KeyInit>::new_from_slice(&material[..32]).map_err(invalid)?,
            enc: Aes256Enc::new_from_slice(&material[32..64]).map_err(invalid)?,
            dec: Aes256Dec::new_from_slice(&material[32..64]).map_err(invalid)?,
            iv_mac: <Hmac<Sha512> as KeyInit>::new_from_slice(&material[64..]).map_err(invalid)?,
        })
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_id() {
        let k = DataKey::new(KeyId::from_bytes([0xab; 16]), &[0x5a; 96]).unwrap();
        let s = format!("{k:?}");
        assert_eq!(
            s,
            "DataKey { id: KeyId(abababab-abab-abab-abab-abababababab), .. }"
        );
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            DataKey::new(KeyId::from_bytes([0; 16]), &[0; 64]).unwrap_err(),
            Error::InvalidKeyLength {
                expected: 96,
                actual: 64
            }
        );
    }

    #[test]
    fn random_key_ids_are_v4() {
        let id = KeyId::random().unwrap();
        assert_eq!(id.bytes()[6] >> 4, 4);
        assert_ne!(id, KeyId::random().unwrap());
    }
}
