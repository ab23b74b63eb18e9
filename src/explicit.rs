//! Explicit encryption: encrypt a value with a named key and algorithm,
//! decrypt a ciphertext, or decrypt every ciphertext in a document.
//!
//! Synchronous and pure: keys come from a [`KeyLookup`], usually a
//! [`KeyRing`](crate::keyvault::KeyRing).

use crate::ciphertext::{self, Fle1Blob};
use crate::crypto::{Algorithm, DataKey, KeyLookup};
use crate::key::{KeyRef, LookupError};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use std::sync::Arc;

pub use crate::nesting::MAX_NESTING;

/// What can go wrong encrypting or decrypting with an [`ExplicitEncrypter`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value's type, the FLE1 blob or the AEAD refused.
    #[error(transparent)]
    Ciphertext(#[from] ciphertext::Error),
    /// The key is not there or not ready.
    #[error(transparent)]
    Key(#[from] LookupError),
    /// A value or document that is not valid BSON.
    #[error("invalid BSON: {0}")]
    InvalidBson(#[from] bson::raw::Error),
    /// A value that cannot be serialized as BSON.
    #[error("invalid BSON: {0}")]
    Unserializable(#[source] bson::raw::Error),
    /// Documents nested deeper than [`MAX_NESTING`].
    #[error("document nesting exceeds {0} levels")]
    TooDeep(usize),
}

impl From<crate::nesting::TooDeep> for Error {
    fn from(e: crate::nesting::TooDeep) -> Self {
        Error::TooDeep(e.limit)
    }
}

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
        encrypt_with_key(&key, value, algorithm)
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

/// The one encryption pipeline, under a key already at hand: the BSON type
/// rules, the plaintext serialized into a buffer that is wiped afterwards,
/// the seal. Every encrypting path of csfle (explicit, automatic,
/// migration) ends here.
pub fn encrypt_with_key(
    key: &DataKey,
    value: RawBsonRef<'_>,
    algorithm: Algorithm,
) -> Result<Vec<u8>, Error> {
    ciphertext::check_encryptable(value, algorithm)?;
    let mut scratch = zeroize::Zeroizing::new(Vec::new());
    Ok(ciphertext::encrypt_value(
        key,
        algorithm,
        value,
        &mut scratch,
    )?)
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
    bson::RawBson::try_from(value.clone()).map_err(Error::Unserializable)
}

fn raw_to_bson(value: RawBsonRef<'_>) -> Result<Bson, Error> {
    Ok(Bson::try_from(value)?)
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
            return Err(LookupError::KeyNotFound(blob.key_id).into());
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
                    let v = v?;
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
            let el = el?;
            let value = el.value()?;
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
