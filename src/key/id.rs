use super::Error;
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

    /// [`from_binary`](Self::from_binary) of a binary read in place.
    pub(crate) fn from_raw_binary(binary: bson::RawBinaryRef<'_>) -> Option<Self> {
        if binary.subtype != bson::spec::BinarySubtype::Uuid {
            return None;
        }
        Some(KeyId(binary.bytes.try_into().ok()?))
    }

    /// A random (version 4) UUID straight from the operating system's
    /// generator.
    pub fn random() -> Result<Self, Error> {
        use rand::TryRng;
        let mut b = [0u8; 16];
        rand::rngs::SysRng
            .try_fill_bytes(&mut b)
            .map_err(|e| Error::Rng(e.to_string()))?;
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

/// Names a data key: by id or by one of its alternate names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyRef {
    /// The key's `_id`.
    Id(KeyId),
    /// One of the key's `keyAltNames`.
    AltName(String),
}

impl From<KeyId> for KeyRef {
    fn from(id: KeyId) -> Self {
        KeyRef::Id(id)
    }
}

impl fmt::Display for KeyRef {
    /// The id as a UUID, an alternate name quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Id(id) => fmt::Display::fmt(id, f),
            KeyRef::AltName(n) => write!(f, "'{n}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_key_ids_are_v4() {
        let id = KeyId::random().unwrap();
        assert_eq!(id.bytes()[6] >> 4, 4);
        assert_ne!(id, KeyId::random().unwrap());
    }
}
