//! Decryption's side path: the subtype-6 values that are not FLE1 blobs.
//!
//! Every decrypting walk tries FLE1 first (its hot path stays as it was)
//! and comes here only when a value's first byte is not 1 or 2. Queryable
//! Encryption's stored values and insert payloads are opened as
//! libmongocrypt's `_replace_ciphertext_with_plaintext` opens them
//! (`mongocrypt-ctx-decrypt.c`), with keys from the walk's own key
//! lookup; its queries and placeholders are refused; any other
//! first byte gets FLE1's own error. Without feature `qe`, every QE first
//! byte is refused naming the feature.

use super::error::Error;
use crate::ciphertext;

/// What a first byte names, as libmongocrypt's `mc_fle_blob_subtype_t`
/// numbers them.
enum Kind {
    /// A value libmongocrypt decrypts: FLE2InsertUpdatePayload (4),
    /// FLE2UnindexedEncryptedValue (6), FLE2IndexedEqualityEncryptedValue
    /// (7), FLE2IndexedRangeEncryptedValue (9), FLE2InsertUpdatePayloadV2
    /// (11), FLE2IndexedEqualityEncryptedValueV2 (14),
    /// FLE2IndexedRangeEncryptedValueV2 (15),
    /// FLE2UnindexedEncryptedValueV2 (16), FLE2IndexedTextEncryptedValue
    /// (17).
    Value,
    /// Queryable Encryption's, but no value: what it is.
    NoValue(&'static str),
    /// Not Queryable Encryption's (FLE1's error applies).
    Other,
}

fn kind(first: u8) -> Kind {
    match first {
        4 | 6 | 7 | 9 | 11 | 14 | 15 | 16 | 17 => Kind::Value,
        3 => Kind::NoValue("a Queryable Encryption placeholder (a marking for the client)"),
        5 | 12 => Kind::NoValue("an equality find payload (a query's tokens, not a stored value)"),
        10 | 13 => Kind::NoValue("a range find payload (a query's tokens, not a stored value)"),
        18 => Kind::NoValue("a text-search find payload (a query's tokens, not a stored value)"),
        _ => Kind::Other,
    }
}

/// Whether `bytes` starts with one of Queryable Encryption's first bytes
/// (a value, a query or a placeholder): the walk, not the FLE1 lanes,
/// handles it.
pub(super) fn is_qe(bytes: &[u8]) -> bool {
    bytes
        .first()
        .is_some_and(|&b| !matches!(kind(b), Kind::Other))
}

/// The error for a value that is not FLE1's and that this build does not
/// decrypt: a QE query or placeholder, a QE value without feature `qe`,
/// or (`fle1`) FLE1's own error for anything else.
fn refusal(bytes: &[u8], fle1: ciphertext::Error) -> Error {
    let Some(&first) = bytes.first() else {
        return fle1.into();
    };
    match kind(first) {
        Kind::Other => fle1.into(),
        _ if !cfg!(feature = "qe") => Error::QeWithoutFeature(format!("blob subtype {first}")),
        Kind::NoValue(what) => Error::NotDecryptable {
            subtype: first,
            what,
        },
        Kind::Value => Error::NotDecryptable {
            subtype: first,
            what: "a Queryable Encryption value this build does not read",
        },
    }
}

#[cfg(feature = "qe")]
pub(super) use enabled::{KeyCache, client_layer_key, decrypt, value_key};

#[cfg(not(feature = "qe"))]
pub(super) use disabled::{KeyCache, client_layer_key, decrypt, value_key};

/// Feature `qe`: the values are read and opened.
#[cfg(feature = "qe")]
mod enabled {
    use super::{Error, refusal};
    use crate::ciphertext;
    use crate::crypto::KeyLookup;
    use crate::key::{KeyId, KeyRef};
    use crate::qe::aead::QeDataKey;
    use crate::qe::payload::{
        INSERT_UPDATE_V1, INSERT_UPDATE_V2, InsertUpdatePayload, InsertUpdatePayloadV1,
    };
    use crate::qe::values::{
        INDEXED_EQUALITY_V1, INDEXED_EQUALITY_V2, INDEXED_RANGE_V1, INDEXED_RANGE_V2, INDEXED_TEXT,
        QeValue, UNINDEXED_V1, UNINDEXED_V2,
    };
    use bson::spec::ElementType;
    use std::sync::Arc;
    use zeroize::Zeroizing;

    /// The QE keys one walk built from its lookup's data keys, so a
    /// document whose QE fields share a key builds it once.
    #[derive(Default)]
    pub(crate) struct KeyCache(Vec<(KeyId, Arc<QeDataKey>)>);

    impl KeyCache {
        /// An empty cache.
        pub(crate) fn new() -> Self {
            KeyCache(Vec::new())
        }

        /// The QE form of the data key with this id.
        fn get<L: KeyLookup>(&mut self, keys: &L, id: [u8; 16]) -> Result<Arc<QeDataKey>, Error> {
            let id = KeyId::from_bytes(id);
            if let Some((_, key)) = self.0.iter().find(|(known, _)| *known == id) {
                return Ok(Arc::clone(key));
            }
            let data_key = keys.data_key(&KeyRef::Id(id))?;
            let key = Arc::new(QeDataKey::from_data_key(&data_key)?);
            self.0.push((id, Arc::clone(&key)));
            Ok(key)
        }
    }

    /// The key a stored value names in the clear, and whether it is
    /// indexed (the explicit layer's `stored_value_key`).
    pub(crate) fn value_key(bytes: &[u8], fle1: ciphertext::Error) -> Result<(KeyId, bool), Error> {
        let (id, indexed) = match bytes.first() {
            Some(&INSERT_UPDATE_V1) => (InsertUpdatePayloadV1::parse(bytes)?.user_key_id(), false),
            Some(&INSERT_UPDATE_V2) => (InsertUpdatePayload::parse(bytes)?.user_key_id(), false),
            Some(
                &(UNINDEXED_V1 | UNINDEXED_V2 | INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1
                | INDEXED_EQUALITY_V2 | INDEXED_RANGE_V2 | INDEXED_TEXT),
            ) => match QeValue::parse(bytes)? {
                QeValue::Unindexed(value) => (value.key_id(), false),
                QeValue::Indexed(value) => (value.server_key_id(), true),
            },
            _ => return Err(refusal(bytes, fle1)),
        };
        Ok((KeyId::from_bytes(id), indexed))
    }

    /// The key of an indexed value's client layer (the explicit layer's
    /// `client_layer_key`).
    pub(crate) fn client_layer_key<L: KeyLookup>(
        bytes: &[u8],
        keys: &L,
    ) -> Result<Option<KeyId>, Error> {
        match bytes.first() {
            Some(
                &(INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1 | INDEXED_EQUALITY_V2 | INDEXED_RANGE_V2
                | INDEXED_TEXT),
            ) => {}
            _ => return Ok(None),
        }
        let QeValue::Indexed(value) = QeValue::parse(bytes)? else {
            return Ok(None);
        };
        let server_key = KeyCache::default().get(keys, value.server_key_id())?;
        let layer = value.decrypt_server_layer(&server_key)?;
        Ok(Some(KeyId::from_bytes(layer.client_key_id())))
    }

    /// Opens a value that is not an FLE1 blob (`fle1`: why not): its
    /// plaintext's BSON type and the bytes of the value. Insert payloads
    /// and unindexed values take one key (the user key they name); indexed
    /// values two, the server layer's (named in the clear) and the client
    /// layer's (named inside the server layer), usually the same key.
    pub(crate) fn decrypt<L: KeyLookup>(
        bytes: &[u8],
        fle1: ciphertext::Error,
        keys: &L,
        cache: &mut KeyCache,
    ) -> Result<(ElementType, Zeroizing<Vec<u8>>), Error> {
        let (bson_type, plaintext) = match bytes.first() {
            Some(&INSERT_UPDATE_V1) => {
                let payload = InsertUpdatePayloadV1::parse(bytes)?;
                let key = cache.get(keys, payload.user_key_id())?;
                (payload.bson_type(), payload.decrypt(&key)?)
            }
            Some(&INSERT_UPDATE_V2) => {
                let payload = InsertUpdatePayload::parse(bytes)?;
                let key = cache.get(keys, payload.user_key_id())?;
                (payload.bson_type(), payload.decrypt(&key)?)
            }
            Some(
                &(UNINDEXED_V1 | UNINDEXED_V2 | INDEXED_EQUALITY_V1 | INDEXED_RANGE_V1
                | INDEXED_EQUALITY_V2 | INDEXED_RANGE_V2 | INDEXED_TEXT),
            ) => match QeValue::parse(bytes)? {
                QeValue::Unindexed(value) => {
                    let key = cache.get(keys, value.key_id())?;
                    (value.bson_type(), value.decrypt(&key)?)
                }
                QeValue::Indexed(value) => {
                    let server_key = cache.get(keys, value.server_key_id())?;
                    let layer = value.decrypt_server_layer(&server_key)?;
                    let client_key = cache.get(keys, layer.client_key_id())?;
                    (value.bson_type(), layer.decrypt(&client_key)?)
                }
            },
            _ => return Err(refusal(bytes, fle1)),
        };
        let ty =
            ElementType::from(bson_type).ok_or(ciphertext::Error::UnknownBsonType(bson_type))?;
        Ok((ty, plaintext))
    }
}

/// Without feature `qe`: every QE first byte is refused, naming the
/// feature.
#[cfg(not(feature = "qe"))]
mod disabled {
    use super::{Error, refusal};
    use crate::ciphertext;
    use crate::crypto::KeyLookup;
    use crate::key::KeyId;
    use bson::spec::ElementType;
    use zeroize::Zeroizing;

    /// Nothing to cache without QE.
    pub(crate) struct KeyCache;

    impl KeyCache {
        /// The (empty) cache.
        pub(crate) fn new() -> Self {
            KeyCache
        }
    }

    pub(crate) fn value_key(bytes: &[u8], fle1: ciphertext::Error) -> Result<(KeyId, bool), Error> {
        Err(refusal(bytes, fle1))
    }

    pub(crate) fn client_layer_key<L: KeyLookup>(
        _bytes: &[u8],
        _keys: &L,
    ) -> Result<Option<KeyId>, Error> {
        Ok(None)
    }

    pub(crate) fn decrypt<L: KeyLookup>(
        bytes: &[u8],
        fle1: ciphertext::Error,
        _keys: &L,
        _cache: &mut KeyCache,
    ) -> Result<(ElementType, Zeroizing<Vec<u8>>), Error> {
        Err(refusal(bytes, fle1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_byte_has_one_kind() {
        let values: Vec<u8> = (0..=255u8)
            .filter(|&b| matches!(kind(b), Kind::Value))
            .collect();
        assert_eq!(values, [4, 6, 7, 9, 11, 14, 15, 16, 17]);
        let no_value: Vec<u8> = (0..=255u8)
            .filter(|&b| matches!(kind(b), Kind::NoValue(_)))
            .collect();
        assert_eq!(no_value, [3, 5, 10, 12, 13, 18]);
        // FLE1's bytes, the marking and everything unassigned: FLE1's error.
        for b in [0u8, 1, 2, 8, 19, 255] {
            assert!(matches!(kind(b), Kind::Other), "{b}");
            assert!(!is_qe(&[b, 0, 0]));
        }
        assert!(!is_qe(&[]));
    }

    #[test]
    fn refusals_name_what_the_value_is() {
        let fle1 = || ciphertext::Error::UnknownBlobSubtype(99);
        assert!(matches!(
            refusal(&[99, 0], fle1()),
            Error::Ciphertext(ciphertext::Error::UnknownBlobSubtype(99))
        ));
        assert!(matches!(
            refusal(&[], ciphertext::Error::Truncated { len: 0 }),
            Error::Ciphertext(ciphertext::Error::Truncated { len: 0 })
        ));
        for b in [12u8, 13, 3] {
            let e = refusal(&[b, 0], fle1()).to_string();
            if cfg!(feature = "qe") {
                assert!(e.contains("holds no value to decrypt"), "{e}");
            } else {
                assert!(e.contains("without its feature `qe`"), "{e}");
            }
        }
        if !cfg!(feature = "qe") {
            let e = refusal(&[14, 0], fle1()).to_string();
            assert!(
                e.contains("blob subtype 14 is Queryable Encryption's"),
                "{e}"
            );
        }
    }
}
