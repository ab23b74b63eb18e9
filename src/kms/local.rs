use super::Error;
use crate::crypto::{self, DATA_KEY_LEN, DataKey, IvMode};
use crate::key::KeyId;
use base64::Engine;
use bson::{Bson, Document};
use std::fmt;
use zeroize::Zeroizing;

/// A 96-byte local master key (key-encryption key).
///
/// Wraps data keys exactly as libmongocrypt does: the FLE1 AEAD with a random
/// IV and no associated data, so `keyMaterial` is IV ‖ AES-CBC(DEK) ‖ tag,
/// 160 bytes for a 96-byte data key. `Debug` never shows the key.
pub struct LocalMasterKey {
    kek: DataKey,
}

impl LocalMasterKey {
    /// Builds a master key from 96 bytes.
    pub fn new(key: &[u8]) -> Result<Self, crypto::Error> {
        Ok(LocalMasterKey {
            // The KEK is used through the same AEAD as data keys; its id is unused.
            kek: DataKey::new(KeyId::from_bytes([0; 16]), key)?,
        })
    }

    /// Parses `{"key": <binary or base64 string>}` from `kmsProviders`.
    pub(crate) fn from_options(provider: &str, options: &Document) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidOptions {
            provider: provider.into(),
            reason: reason.into(),
        };
        for k in options.keys() {
            if k != "key" {
                return Err(invalid(&format!("unexpected field '{k}'")));
            }
        }
        let bytes: Zeroizing<Vec<u8>> = match options.get("key") {
            Some(Bson::Binary(b)) => Zeroizing::new(b.bytes.clone()),
            Some(Bson::String(s)) => Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| invalid("'key' is not valid base64"))?,
            ),
            Some(_) => return Err(invalid("'key' must be a binary or a base64 string")),
            None => return Err(invalid("missing 'key'")),
        };
        if bytes.len() != DATA_KEY_LEN {
            return Err(invalid(&format!(
                "'key' must be {DATA_KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        LocalMasterKey::new(&bytes).map_err(Error::Crypto)
    }

    /// Encrypts data-key material for storage in `keyMaterial`.
    pub fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(crypto::ciphertext_len(data_key.len()));
        crypto::seal(&self.kek, IvMode::Random, &[], data_key, &mut out)?;
        Ok(out)
    }

    /// Decrypts `keyMaterial` into the data key bytes.
    pub fn unwrap_key(&self, key_material: &[u8]) -> Result<Zeroizing<Vec<u8>>, crypto::Error> {
        let mut out = Zeroizing::new(Vec::with_capacity(key_material.len()));
        crypto::open(&self.kek, &[], key_material, &mut out)?;
        Ok(out)
    }
}

impl super::KmsProvider for LocalMasterKey {
    fn wrap<'a>(
        &'a self,
        _master_key: &'a crate::key::MasterKey,
        data_key: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(std::future::ready(self.wrap_key(data_key)))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a crate::key::MasterKey,
        key_material: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>> {
        Box::pin(std::future::ready(
            self.unwrap_for(master_key, key_material),
        ))
    }
}

impl LocalMasterKey {
    /// [`unwrap_key`](Self::unwrap_key), with a failure reported against the
    /// provider `master_key` names (the async and sync paths both use this).
    pub(crate) fn unwrap_for(
        &self,
        master_key: &crate::key::MasterKey,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.unwrap_key(key_material)
            .map_err(|source| Error::Unwrap {
                provider: master_key.provider().to_string(),
                source,
            })
    }
}

impl fmt::Debug for LocalMasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalMasterKey { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap() {
        let kek = LocalMasterKey::new(&[3; 96]).unwrap();
        let wrapped = kek.wrap_key(&[9; 96]).unwrap();
        assert_eq!(wrapped.len(), 160);
        assert_eq!(&kek.unwrap_key(&wrapped).unwrap()[..], &[9; 96]);
        let other = LocalMasterKey::new(&[4; 96]).unwrap();
        assert_eq!(
            other.unwrap_key(&wrapped).unwrap_err(),
            crypto::Error::MacMismatch
        );
        assert_eq!(format!("{kek:?}"), "LocalMasterKey { .. }");
    }

    #[test]
    fn options() {
        let doc = bson::doc! {"key": base64::engine::general_purpose::STANDARD.encode([1u8; 96])};
        assert!(LocalMasterKey::from_options("local", &doc).is_ok());
        let short = bson::doc! {"key": "AAAA"};
        let err = LocalMasterKey::from_options("local", &short).unwrap_err();
        assert!(err.to_string().contains("96 bytes"), "{err}");
        assert!(!err.to_string().contains("AAAA"));
    }
}
