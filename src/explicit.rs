//! Explicit encryption: encrypt a value with a named key and algorithm,
//! decrypt a ciphertext, or decrypt every ciphertext in a document.
//!
//! Synchronous and pure: keys come from a [`KeyLookup`], usually a
//! [`KeyRing`](crate::keyvault::KeyRing).

use crate::ciphertext::{self, Fle1Blob};
use crate::crypto::{Algorithm, DataKey, KeyId};
use crate::{Error, keyvault};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use std::sync::Arc;

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

/// A source of ready data keys.
pub trait KeyLookup {
    /// The data key a [`KeyRef`] names.
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, keyvault::Error>;
}

impl KeyLookup for keyvault::KeyRing {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, keyvault::Error> {
        match key {
            KeyRef::Id(id) => keyvault::KeyRing::data_key(self, *id),
            KeyRef::AltName(n) => self.data_key_by_alt_name(n),
        }
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for Arc<T> {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, keyvault::Error> {
        (**self).data_key(key)
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for &T {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, keyvault::Error> {
        (**self).data_key(key)
    }
}

pub use crate::nesting::MAX_NESTING;

/// Encrypts and decrypts single values and whole documents with keys from a
/// [`KeyLookup`].
///
/// ```
/// use csfle::{Algorithm, ExplicitEncrypter, KeyRef};
/// use csfle::keyvault::{KeyDocument, KeyRing};
/// use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName, ProviderKind};
///
/// let local = ProviderName::of_kind(ProviderKind::Local);
/// let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[7; 96])?);
/// let key = csfle::create_data_key(&kms, &local, vec!["demo".into()], None)?;
/// let enc = ExplicitEncrypter::new(KeyRing::new([key], kms)?);
///
/// let ct = enc.encrypt(&"secret".into(), &KeyRef::AltName("demo".into()), Algorithm::Deterministic)?;
/// assert_eq!(enc.decrypt(&ct)?, bson::Bson::from("secret"));
/// # Ok::<(), csfle::Error>(())
/// ```
#[derive(Debug)]
pub struct ExplicitEncrypter<L> {
    keys: L,
}

impl<L: KeyLookup> ExplicitEncrypter<L> {
    /// An encrypter over `keys`.
    pub fn new(keys: L) -> Self {
        ExplicitEncrypter { keys }
    }

    /// The key source.
    pub fn keys(&self) -> &L {
        &self.keys
    }

    /// Encrypts `value`, returning a subtype-6 binary.
    pub fn encrypt(
        &self,
        value: &Bson,
        key: &KeyRef,
        algorithm: Algorithm,
    ) -> Result<Binary, Error> {
        let raw = to_raw(value)?;
        let bytes = self.encrypt_raw(raw.as_raw_bson_ref(), key, algorithm)?;
        Ok(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        })
    }

    /// Encrypts a borrowed raw value, returning the FLE1 blob bytes.
    pub fn encrypt_raw(
        &self,
        value: RawBsonRef<'_>,
        key: &KeyRef,
        algorithm: Algorithm,
    ) -> Result<Vec<u8>, Error> {
        // Check the type first: a disallowed type is reported as such even
        // when the key is unknown.
        ciphertext::check_encryptable(value, algorithm)?;
        let key = self.keys.data_key(key)?;
        // The serialized plaintext: wiped when done.
        let mut scratch = zeroize::Zeroizing::new(Vec::new());
        Ok(ciphertext::encrypt_value(
            &key,
            algorithm,
            value,
            &mut scratch,
        )?)
    }

    /// Decrypts a subtype-6 binary.
    pub fn decrypt(&self, binary: &Binary) -> Result<Bson, Error> {
        let blob = Fle1Blob::from_binary(bson::RawBinaryRef {
            subtype: binary.subtype,
            bytes: &binary.bytes,
        })?;
        let mut walker = Walker::new(&self.keys);
        let value = walker.decrypt_blob(&blob)?;
        raw_to_bson(value)
    }

    /// Returns `doc` with every subtype-6 value (at any depth, in documents and
    /// arrays) replaced by its plaintext. Other values are untouched.
    pub fn decrypt_document(&self, doc: &Document) -> Result<Document, Error> {
        // Measured without recursion first: the document may come from the
        // server, and may be arbitrarily deep.
        crate::nesting::check(doc)?;
        let mut walker = Walker::new(&self.keys);
        walker.document(doc, 0)
    }

    /// [`decrypt_document`](Self::decrypt_document) on raw BSON: parses,
    /// decrypts and re-serializes without building a `Document` tree.
    pub fn decrypt_raw_document(&self, doc: &RawDocument) -> Result<RawDocumentBuf, Error> {
        crate::nesting::check_raw(doc)?;
        let mut walker = Walker::new(&self.keys);
        let mut out = presized_document(doc.as_bytes().len());
        walker.raw_document(doc, &mut out, 0)?;
        Ok(out)
    }
}

/// An empty document whose buffer can hold `capacity` bytes: the decrypted
/// document is never larger than the encrypted one, so it never reallocates
/// (growing by doubling would touch fresh pages on every document).
fn presized_document(capacity: usize) -> RawDocumentBuf {
    let mut bytes = Vec::with_capacity(capacity.max(5));
    bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
    RawDocumentBuf::from_bytes(bytes).unwrap_or_default()
}

/// A value as raw BSON, ready to serialize as a plaintext.
pub(crate) fn to_raw(value: &Bson) -> Result<bson::RawBson, Error> {
    bson::RawBson::try_from(value.clone()).map_err(|e| Error::InvalidValue(e.to_string()))
}

fn raw_to_bson(value: RawBsonRef<'_>) -> Result<Bson, Error> {
    Bson::try_from(value).map_err(|e| Error::InvalidValue(e.to_string()))
}

/// Per-call decryption state: reusable buffers and the last key used, so a
/// document whose fields share a key looks it up once. The buffers hold
/// plaintexts and are wiped (their whole capacity) when the walk ends.
struct Walker<'k, L> {
    keys: &'k L,
    last: Option<Arc<DataKey>>,
    plaintext: Vec<u8>,
    scratch: Vec<u8>,
}

impl<L> Drop for Walker<'_, L> {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.plaintext.zeroize();
        self.scratch.zeroize();
    }
}

impl<'k, L: KeyLookup> Walker<'k, L> {
    fn new(keys: &'k L) -> Self {
        Walker {
            keys,
            last: None,
            plaintext: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn decrypt_blob(&mut self, blob: &Fle1Blob<'_>) -> Result<RawBsonRef<'_>, Error> {
        // Borrow the cached key rather than cloning the Arc per field: with
        // several threads on one key, a shared reference count would bounce
        // between cores on every value.
        if self.last.as_ref().is_none_or(|k| k.id() != blob.key_id) {
            self.last = Some(self.keys.data_key(&KeyRef::Id(blob.key_id))?);
        }
        let Walker {
            last: Some(key),
            plaintext,
            scratch,
            ..
        } = self
        else {
            return Err(keyvault::Error::KeyNotFound(blob.key_id).into());
        };
        Ok(ciphertext::decrypt_value(key, blob, plaintext, scratch)?)
    }

    fn bson(&mut self, value: &Bson, depth: usize) -> Result<Bson, Error> {
        Ok(match value {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                let blob = Fle1Blob::parse(&b.bytes)?;
                raw_to_bson(self.decrypt_blob(&blob)?)?
            }
            Bson::Document(d) => Bson::Document(self.document(d, depth + 1)?),
            Bson::Array(a) => {
                check_depth(depth + 1)?;
                Bson::Array(
                    a.iter()
                        .map(|v| self.bson(v, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            other => other.clone(),
        })
    }

    fn document(&mut self, doc: &Document, depth: usize) -> Result<Document, Error> {
        check_depth(depth)?;
        let mut out = Document::new();
        for (k, v) in doc {
            out.insert(k.clone(), self.bson(v, depth)?);
        }
        Ok(out)
    }

    fn raw_value<'a>(
        &mut self,
        value: RawBsonRef<'a>,
        depth: usize,
        append: &mut dyn FnMut(RawBsonRef<'_>),
    ) -> Result<(), Error> {
        match value {
            RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                let blob = Fle1Blob::parse(b.bytes)?;
                append(self.decrypt_blob(&blob)?);
            }
            RawBsonRef::Document(d) => {
                let mut sub = RawDocumentBuf::new();
                self.raw_document(d, &mut sub, depth + 1)?;
                append(RawBsonRef::Document(&sub));
            }
            RawBsonRef::Array(a) => {
                check_depth(depth + 1)?;
                let mut sub = RawArrayBuf::new();
                for v in a {
                    let v = v.map_err(|e| Error::InvalidValue(e.to_string()))?;
                    self.raw_value(v, depth + 1, &mut |x| sub.push(x.to_raw_bson()))?;
                }
                append(RawBsonRef::Array(&sub));
            }
            other => append(other),
        }
        Ok(())
    }

    fn raw_document(
        &mut self,
        doc: &RawDocument,
        out: &mut RawDocumentBuf,
        depth: usize,
    ) -> Result<(), Error> {
        check_depth(depth)?;
        for el in doc.iter_elements() {
            let el = el.map_err(|e| Error::InvalidValue(e.to_string()))?;
            let value = el.value().map_err(|e| Error::InvalidValue(e.to_string()))?;
            let key = el.key();
            self.raw_value(value, depth, &mut |v| out.append_ref(key, v))?;
        }
        Ok(())
    }
}

fn check_depth(depth: usize) -> Result<(), Error> {
    if depth > MAX_NESTING {
        Err(Error::TooDeep(MAX_NESTING))
    } else {
        Ok(())
    }
}

/// 96 bytes of new key material: `custom` (checked for length) or bytes
/// straight from the operating system's generator.
pub(crate) fn data_key_material(
    custom: Option<&[u8]>,
) -> Result<zeroize::Zeroizing<[u8; crate::crypto::DATA_KEY_LEN]>, Error> {
    use crate::crypto::DATA_KEY_LEN;
    let mut material = zeroize::Zeroizing::new([0u8; DATA_KEY_LEN]);
    match custom {
        Some(m) if m.len() == DATA_KEY_LEN => material.copy_from_slice(m),
        Some(m) => {
            return Err(crate::crypto::Error::InvalidKeyLength {
                expected: DATA_KEY_LEN,
                actual: m.len(),
            }
            .into());
        }
        None => crate::crypto::fill_key_material(&mut material[..])?,
    }
    Ok(material)
}

/// A new key document: random UUID `_id`, the current time as creation and
/// update date, status 0. Alternate names must be distinct.
pub(crate) fn new_key_document(
    master_key: keyvault::MasterKey,
    key_material: Vec<u8>,
    key_alt_names: Vec<String>,
) -> Result<keyvault::KeyDocument, Error> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = key_alt_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(keyvault::Error::DuplicateAltName(dup.clone()).into());
    }
    let now = bson::DateTime::now();
    Ok(keyvault::KeyDocument {
        id: KeyId::random()?,
        key_alt_names,
        key_material,
        creation_date: now,
        update_date: now,
        status: 0,
        master_key,
    })
}

/// Creates a new data key wrapped by the local master key `provider`, as the
/// drivers' `createDataKey` does: 96 random bytes from the OS-seeded CSPRNG,
/// or the given `key_material` (which must be 96 bytes), a random UUID `_id`,
/// and the current time as creation and update date. The caller stores it.
/// Keys wrapped by a remote KMS are created with
/// [`ClientEncryption::create_data_key`](crate::ClientEncryption::create_data_key).
pub fn create_data_key(
    providers: &crate::kms::KmsProviders,
    provider: &crate::kms::ProviderName,
    key_alt_names: Vec<String>,
    key_material: Option<&[u8]>,
) -> Result<keyvault::KeyDocument, Error> {
    let material = data_key_material(key_material)?;
    let (master_key, wrapped) = providers.wrap_key_local(provider, &material[..])?;
    new_key_document(master_key, wrapped, key_alt_names)
}
