use super::Error;
use super::hmac_lanes::HmacPads;
use crate::key::KeyId;
use aes::{Aes256Dec, Aes256Enc};
use cbc::cipher::KeyInit;
use hmac::Hmac;
use sha2::Sha512;
use std::fmt;

/// Length of a data key: MAC key ‖ encryption key ‖ IV key, 32 bytes each.
pub const DATA_KEY_LEN: usize = 96;

/// A decrypted 96-byte data key, ready to use.
///
/// Holds the AES-256 encryption and decryption key schedules and the keyed
/// HMAC-SHA-512 states (inner and outer pads already absorbed) for the MAC and
/// IV keys, computed once. Every field zeroizes itself on drop. Without
/// feature `qe` the raw key bytes are not kept; with it they are (wiped on
/// drop), because Queryable Encryption splits the same 96 bytes differently
/// (encryption key ‖ MAC key ‖ token key) and builds its own key state from
/// them when a QE value needs it, so QE keys come through the same lookups
/// and caches as FLE1 keys. `Debug` shows only the key id.
pub struct DataKey {
    id: KeyId,
    pub(super) mac: Hmac<Sha512>,
    pub(super) iv_mac: Hmac<Sha512>,
    pub(super) enc: Aes256Enc,
    pub(super) dec: Aes256Dec,
    /// The same two HMAC keys as pad states, for the multi-lane paths.
    pub(super) mac_pads: HmacPads,
    pub(super) iv_pads: HmacPads,
    /// The key material itself, for Queryable Encryption's split.
    #[cfg(feature = "qe")]
    material: zeroize::Zeroizing<[u8; DATA_KEY_LEN]>,
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
            mac_pads: HmacPads::new(&material[..32]),
            iv_pads: HmacPads::new(&material[64..]),
            #[cfg(feature = "qe")]
            material: {
                let mut kept = zeroize::Zeroizing::new([0u8; DATA_KEY_LEN]);
                // The length was checked above.
                kept.copy_from_slice(material);
                kept
            },
        })
    }

    /// The 96 bytes of key material, for Queryable Encryption's ciphers
    /// (`qe::aead::QeDataKey::from_data_key`); nothing else reads them.
    #[cfg(feature = "qe")]
    pub(crate) fn material(&self) -> &[u8; DATA_KEY_LEN] {
        &self.material
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// 96 bytes of new data-key material: `custom` (checked for length) or
/// bytes straight from the operating system's generator. Wiped on drop.
pub(crate) fn new_key_material(
    custom: Option<&[u8]>,
) -> Result<zeroize::Zeroizing<[u8; DATA_KEY_LEN]>, Error> {
    let mut material = zeroize::Zeroizing::new([0u8; DATA_KEY_LEN]);
    match custom {
        Some(m) if m.len() == DATA_KEY_LEN => material.copy_from_slice(m),
        Some(m) => {
            return Err(Error::InvalidKeyLength {
                expected: DATA_KEY_LEN,
                actual: m.len(),
            });
        }
        None => super::fill_key_material(&mut material[..])?,
    }
    Ok(material)
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
}
