//! Explicit encryption: encrypt a value with a named key and algorithm,
//! decrypt a ciphertext, or decrypt every ciphertext in a document.
//!
//! Synchronous and pure: keys come from a [`KeyLookup`], usually a
//! [`KeyRing`](crate::keyvault::KeyRing).
//!
//! Decryption reads every subtype-6 value a user can meet: FLE1 blobs
//! (first byte 1 or 2) on the hot path, and, on a side path taken only
//! when one is met, the Queryable Encryption values libmongocrypt decrypts
//! (first byte 4, 6, 7, 9, 11, 14, 15, 16 or 17; feature `qe`), with keys
//! from the same lookup. A QE query (a find payload) or placeholder holds
//! no value and is refused, as is any other first byte.

mod error;
mod queryable;

use crate::ciphertext::{self, Fle1Blob};
use crate::crypto::{Algorithm, DataKey, KeyLookup};
use crate::key::{KeyId, KeyRef, LookupError};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

#[cfg(feature = "qe")]
use crate::qe::explicit::{QeAlgorithm, QeEncryptOptions, QeKeys};

pub use crate::nesting::MAX_NESTING;
pub use error::Error;

/// An explicit encryption algorithm: FLE1's two, or Queryable
/// Encryption's three (feature `qe`).
///
/// FLE1 schemas name only FLE1's ([`Algorithm`], which converts into
/// this): a `$jsonSchema` naming `Indexed`, `Unindexed` or `Range` is
/// refused, since Queryable Encryption declares its fields in
/// `encryptedFields`, never in a schema. Text search (`String`) is not
/// supported: [`from_name`](Self::from_name) refuses it by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncryptionAlgorithm {
    /// FLE1, `AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic`.
    Deterministic,
    /// FLE1, `AEAD_AES_256_CBC_HMAC_SHA_512-Random`.
    Random,
    /// Queryable Encryption, equality-indexed (`Indexed`): an insert
    /// payload (first byte 11), or with the equality query type a find
    /// payload (12). Needs a contention factor.
    #[cfg(feature = "qe")]
    Indexed,
    /// Queryable Encryption, not queryable (`Unindexed`): first byte 16.
    #[cfg(feature = "qe")]
    Unindexed,
    /// Queryable Encryption, range-indexed (`Range`): an insert payload
    /// with edge tokens (11), or for an expression with the range query
    /// type, find payloads (13). Needs a contention factor and range
    /// options.
    #[cfg(feature = "qe")]
    Range,
}

impl EncryptionAlgorithm {
    /// The name the drivers' options use.
    pub const fn name(self) -> &'static str {
        match self {
            EncryptionAlgorithm::Deterministic => Algorithm::Deterministic.name(),
            EncryptionAlgorithm::Random => Algorithm::Random.name(),
            #[cfg(feature = "qe")]
            EncryptionAlgorithm::Indexed => QeAlgorithm::Indexed.name(),
            #[cfg(feature = "qe")]
            EncryptionAlgorithm::Unindexed => QeAlgorithm::Unindexed.name(),
            #[cfg(feature = "qe")]
            EncryptionAlgorithm::Range => QeAlgorithm::Range.name(),
        }
    }

    /// Parses the drivers' name. Text search (`String`, `TextPreview`) and
    /// unknown names are refused; without feature `qe`, so are `Indexed`,
    /// `Unindexed` and `Range`.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        if let Some(fle1) = Algorithm::from_name(name) {
            return Ok(fle1.into());
        }
        match name {
            #[cfg(feature = "qe")]
            "Indexed" => Ok(EncryptionAlgorithm::Indexed),
            #[cfg(feature = "qe")]
            "Unindexed" => Ok(EncryptionAlgorithm::Unindexed),
            #[cfg(feature = "qe")]
            "Range" => Ok(EncryptionAlgorithm::Range),
            #[cfg(not(feature = "qe"))]
            "Indexed" | "Unindexed" | "Range" => {
                Err(Error::QeWithoutFeature(format!("algorithm '{name}'")))
            }
            "String" | "TextPreview" => Err(Error::TextSearchUnsupported),
            _ => Err(Error::UnknownAlgorithm(name.to_owned())),
        }
    }

    /// The FLE1 algorithm, if it is one.
    pub const fn fle1(self) -> Option<Algorithm> {
        match self {
            EncryptionAlgorithm::Deterministic => Some(Algorithm::Deterministic),
            EncryptionAlgorithm::Random => Some(Algorithm::Random),
            #[cfg(feature = "qe")]
            _ => None,
        }
    }

    /// The Queryable Encryption algorithm, if it is one.
    #[cfg(feature = "qe")]
    pub const fn qe(self) -> Option<QeAlgorithm> {
        match self {
            EncryptionAlgorithm::Indexed => Some(QeAlgorithm::Indexed),
            EncryptionAlgorithm::Unindexed => Some(QeAlgorithm::Unindexed),
            EncryptionAlgorithm::Range => Some(QeAlgorithm::Range),
            EncryptionAlgorithm::Deterministic | EncryptionAlgorithm::Random => None,
        }
    }
}

impl From<Algorithm> for EncryptionAlgorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Deterministic => EncryptionAlgorithm::Deterministic,
            Algorithm::Random => EncryptionAlgorithm::Random,
        }
    }
}

#[cfg(feature = "qe")]
impl From<QeAlgorithm> for EncryptionAlgorithm {
    fn from(a: QeAlgorithm) -> Self {
        match a {
            QeAlgorithm::Indexed => EncryptionAlgorithm::Indexed,
            QeAlgorithm::Unindexed => EncryptionAlgorithm::Unindexed,
            QeAlgorithm::Range => EncryptionAlgorithm::Range,
        }
    }
}

impl std::fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

    /// Encrypts many values, each with its key and algorithm: each result is
    /// what [`encrypt`](Self::encrypt) returns for it (byte for byte for
    /// deterministic encryption), with the HMACs in lanes (eight or four at a time).
    pub fn encrypt_many(
        &self,
        values: &[(&Bson, &KeyRef, Algorithm)],
    ) -> Vec<Result<Binary, Error>> {
        let mut results: Vec<Result<Binary, Error>> = Vec::with_capacity(values.len());
        let mut prepared = Vec::with_capacity(values.len());
        for (value, key, algorithm) in values {
            let raw = to_raw(value).and_then(|raw| {
                // The type first: a disallowed type is reported as such
                // even when the key is unknown.
                ciphertext::check_encryptable(raw.as_raw_bson_ref(), *algorithm)?;
                Ok((raw, self.keys.data_key(key)?))
            });
            match raw {
                Ok(p) => {
                    prepared.push(Some(p));
                    results.push(Ok(Binary {
                        subtype: BinarySubtype::Encrypted,
                        bytes: Vec::new(),
                    }));
                }
                Err(e) => {
                    prepared.push(None);
                    results.push(Err(e));
                }
            }
        }
        let todo: Vec<usize> = (0..values.len())
            .filter(|&i| prepared[i].is_some())
            .collect();
        let jobs: Vec<(&DataKey, Algorithm, RawBsonRef<'_>)> = todo
            .iter()
            .filter_map(|&i| {
                let (raw, key) = prepared[i].as_ref()?;
                Some((&**key, values[i].2, raw.as_raw_bson_ref()))
            })
            .collect();
        for (&i, sealed) in todo.iter().zip(ciphertext::encrypt_values(&jobs)) {
            results[i] = sealed.map_err(Error::from).map(|bytes| Binary {
                subtype: BinarySubtype::Encrypted,
                bytes,
            });
        }
        results
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

    /// Encrypts `value` with Queryable Encryption (feature `qe`): an
    /// Unindexed value (first byte 16), an Indexed or Range insert payload
    /// (11), or with the equality query type an equality find payload (12).
    /// The options are checked first, with libmongocrypt's words; a range
    /// query encrypts an expression ([`encrypt_qe_expression`](Self::encrypt_qe_expression)).
    /// Randomness comes from csfle's OS-seeded generator.
    ///
    /// ```
    /// use csfle::{ExplicitEncrypter, KeyRef};
    /// use csfle::keyvault::KeyRing;
    /// use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
    /// use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions};
    ///
    /// let local = ProviderName::of_kind(ProviderKind::Local);
    /// let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[7; 96])?);
    /// let key = csfle::create_data_key(&kms, &local, vec!["qe".into()], None)?;
    /// let enc = ExplicitEncrypter::new(KeyRing::new([key], kms)?);
    ///
    /// let options = QeEncryptOptions::new(QeAlgorithm::Indexed).with_contention_factor(8);
    /// let payload = enc.encrypt_qe(&"457-55-5462".into(), &KeyRef::AltName("qe".into()), &options)?;
    /// assert_eq!(payload.bytes[0], 11);
    /// assert_eq!(enc.decrypt(&payload)?, bson::Bson::from("457-55-5462"));
    /// # Ok::<(), csfle::Error>(())
    /// ```
    #[cfg(feature = "qe")]
    pub fn encrypt_qe(
        &self,
        value: &Bson,
        key: &KeyRef,
        options: &QeEncryptOptions<'_>,
    ) -> Result<Binary, Error> {
        // The options first: a wrong option is reported as such even when
        // the key is unknown.
        check_qe_value_options(options)?;
        let raw = to_raw(value)?;
        let data_key = self.keys.data_key(key)?;
        let bytes = encrypt_qe_with_key(&data_key, raw.as_raw_bson_ref(), options)?;
        Ok(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        })
    }

    /// Encrypts a range query (feature `qe`): `expression` is the `$and`
    /// of one or two bounds on one field, as a match expression
    /// (`{$and: [{age: {$gte: 23}}, {age: {$lte: 35}}]}`) or an aggregate
    /// one (`{$and: [{$gte: ["$age", 23]}, {$lte: ["$age", 35]}]}`);
    /// returned in the same shape with the bounds replaced by find payloads
    /// (13). `options` must be the Range algorithm with the range query
    /// type, a contention factor and the index's range options. The two
    /// payloads are paired by this process's next payload id.
    #[cfg(feature = "qe")]
    pub fn encrypt_qe_expression(
        &self,
        expression: &RawDocument,
        key: &KeyRef,
        options: &QeEncryptOptions<'_>,
    ) -> Result<RawDocumentBuf, Error> {
        options.validate()?;
        let data_key = self.keys.data_key(key)?;
        encrypt_qe_expression_with_key(&data_key, expression, options)
    }

    /// Decrypts a subtype-6 binary: an FLE1 ciphertext or (feature `qe`)
    /// a Queryable Encryption value.
    pub fn decrypt(&self, binary: &Binary) -> Result<Bson, Error> {
        if binary.subtype != BinarySubtype::Encrypted {
            return Err(ciphertext::Error::NotEncrypted {
                subtype: u8::from(binary.subtype),
            }
            .into());
        }
        let mut walker = Walker::new(&self.keys);
        match Fle1Blob::parse(&binary.bytes) {
            Ok(blob) => {
                let value = walker.decrypt_blob(&blob)?;
                raw_to_bson(value)
            }
            Err(fle1) => walker.other_to_bson(&binary.bytes, fle1),
        }
    }

    /// Returns `doc` with every subtype-6 value (at any depth, in documents and
    /// arrays) replaced by its plaintext: FLE1 ciphertexts and (feature
    /// `qe`) Queryable Encryption values, mixed as they come. Other values
    /// are untouched; a subtype-6 value that is neither (a QE query, a
    /// marking, an unknown first byte) fails the whole document.
    pub fn decrypt_document(&self, doc: &Document) -> Result<Document, Error> {
        // Measured without recursion first: the document may come from the
        // server, and may be arbitrarily deep.
        crate::nesting::check(doc)?;
        let mut walker = Walker::new(&self.keys);
        let mut blobs = Vec::new();
        for v in doc.values() {
            collect_bson(v, &mut blobs, 0)?;
        }
        walker.verify_ahead(&blobs)?;
        walker.document(doc, 0)
    }

    /// [`decrypt_document`](Self::decrypt_document) on raw BSON: parses,
    /// decrypts and re-serializes without building a `Document` tree.
    ///
    /// A document with many encrypted values (four or more, the lanes'
    /// threshold) is decrypted in batches: one walk plans the output (runs
    /// of plain elements to copy as they are, the encrypted values, the
    /// documents and arrays holding them); every FLE1 tag is then checked,
    /// eight or four at a time, before any FLE1 value is decrypted; the
    /// values are decrypted together (one AES call for a run of values
    /// under one key) and the output is written from the plan. A document
    /// with fewer is written in one walk, each value checked and decrypted
    /// as the walk meets it, as one-value-at-a-time decryption would. A
    /// Queryable Encryption value (feature `qe`) is opened on its own when
    /// the walk meets it, its tags checked as it is opened. Either way the
    /// first failure in walk order is the error (in a batch, a bad tag
    /// anywhere comes before a value that authenticates but does not
    /// decrypt), and any error leaves nothing decrypted behind (plaintexts
    /// are wiped).
    pub fn decrypt_raw_document(&self, doc: &RawDocument) -> Result<RawDocumentBuf, Error> {
        // Counted without recursion first: the document may come from the
        // server, and may be arbitrarily deep. Below the threshold the count
        // walked all of it and checked its nesting; at the threshold it
        // stopped early (a large document is not walked twice), and the
        // planning walk bounds the depth at every level on its own.
        let encrypted = crate::nesting::count_raw_up_to(doc, LANES_FROM_FIELDS)?;
        self.decrypt_raw_document_measured(doc, encrypted)
    }

    /// [`decrypt_raw_document`](Self::decrypt_raw_document) after its
    /// count: for a caller whose own walk of `doc` counted its `encrypted`
    /// values up to [`LANES_FROM_FIELDS`] (the client's batch scan;
    /// `nesting::count_raw_up_to` here), so the document is not walked
    /// twice. Below the threshold that walk covered the whole document and
    /// checked its nesting; either way the walks below bound the depth on
    /// their own (`check_depth` at every level).
    pub(crate) fn decrypt_raw_document_measured(
        &self,
        doc: &RawDocument,
        encrypted: usize,
    ) -> Result<RawDocumentBuf, Error> {
        let mut walker = Walker::new(&self.keys);
        if encrypted < LANES_FROM_FIELDS {
            // Too few to fill lanes: no plan and no batch to build.
            return walker.write_direct(doc);
        }
        let mut plan = Plan::default();
        let planned = walker.plan(doc, &mut plan, 0);
        // The first failure in walk order wins: a tag before the point
        // where planning stopped, else what stopped it.
        walker.verify_plan(&plan)?;
        planned?;
        walker.write_plan(&plan, doc.as_bytes().len())
    }

    /// [`decrypt_raw_document`](Self::decrypt_raw_document) one value at a
    /// time, never in lanes: the scalar path, for the benchmarks that
    /// compare the two (`crate::__private::decrypt_raw_document_one_by_one`).
    #[cfg(any(test, feature = "fuzzing", feature = "bench"))]
    pub(crate) fn decrypt_raw_document_one_by_one(
        &self,
        doc: &RawDocument,
    ) -> Result<RawDocumentBuf, Error> {
        crate::nesting::check_raw(doc, 0)?;
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
pub(crate) fn encrypt_with_key(
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

/// The checks of a QE value's options that need no key, in
/// libmongocrypt's order and words; then a range query given a value, not
/// an expression, is refused.
#[cfg(feature = "qe")]
pub(crate) fn check_qe_value_options(options: &QeEncryptOptions<'_>) -> Result<(), Error> {
    options.validate()?;
    if options.algorithm == QeAlgorithm::Range && options.query_type.is_some() {
        return Err(
            crate::qe::Error::from(crate::qe::explicit::ExplicitError::ExpressionRequired).into(),
        );
    }
    Ok(())
}

/// Queryable Encryption's encryption under a key already at hand: the
/// data key's bytes as QE splits them, the value's payload with fresh
/// randomness. Both encrypting paths (`ExplicitEncrypter::encrypt_qe` and
/// `ClientEncryption::encrypt`) end here.
#[cfg(feature = "qe")]
pub(crate) fn encrypt_qe_with_key(
    key: &DataKey,
    value: RawBsonRef<'_>,
    options: &QeEncryptOptions<'_>,
) -> Result<Vec<u8>, Error> {
    let qe_key = crate::qe::aead::QeDataKey::from_data_key(key)?;
    let keys = qe_keys(key, &qe_key);
    let mut rng = crate::qe::QeRandom::system();
    Ok(crate::qe::explicit::encrypt_value(
        value, keys, options, &mut rng,
    )?)
}

/// [`encrypt_qe_with_key`] for a range query's expression, with this
/// process's next payload id.
#[cfg(feature = "qe")]
pub(crate) fn encrypt_qe_expression_with_key(
    key: &DataKey,
    expression: &RawDocument,
    options: &QeEncryptOptions<'_>,
) -> Result<RawDocumentBuf, Error> {
    let qe_key = crate::qe::aead::QeDataKey::from_data_key(key)?;
    let keys = qe_keys(key, &qe_key);
    Ok(crate::qe::explicit::encrypt_range_expression(
        expression,
        keys,
        options,
        crate::qe::explicit::next_payload_id(),
    )?)
}

/// One key for both roles: explicit encryption names one key, which
/// encrypts the value and derives the tokens, as the drivers' API does.
#[cfg(feature = "qe")]
fn qe_keys<'a>(key: &DataKey, qe_key: &'a crate::qe::aead::QeDataKey) -> QeKeys<'a> {
    QeKeys {
        user: crate::qe::payload::QeKey {
            id: key.id().bytes(),
            key: qe_key,
        },
        index: None,
    }
}

/// The key a stored subtype-6 value names in the clear (an FLE1 blob's,
/// a QE value's user or server key), and whether it is a QE indexed value,
/// whose client layer is under a key only its server layer names (see
/// [`client_layer_key`]). Other first bytes are refused, with the error
/// decryption would give.
#[cfg_attr(not(feature = "driver"), allow(dead_code))] // used by the client
pub(crate) fn stored_value_key(bytes: &[u8]) -> Result<(KeyId, bool), Error> {
    match Fle1Blob::parse(bytes) {
        Ok(blob) => Ok((blob.key_id, false)),
        Err(fle1) => queryable::value_key(bytes, fle1),
    }
}

/// The key of a QE indexed value's client layer: its server layer opened
/// with the key [`stored_value_key`] named, taken from `keys`. `None` for
/// every other value.
#[cfg_attr(not(feature = "driver"), allow(dead_code))] // used by the client
pub(crate) fn client_layer_key<L: KeyLookup>(
    bytes: &[u8],
    keys: &L,
) -> Result<Option<KeyId>, Error> {
    queryable::client_layer_key(bytes, keys)
}

/// An empty document whose buffer can hold `capacity` bytes: the decrypted
/// document is never larger than the encrypted one, so it never reallocates
/// (growing by doubling would touch fresh pages on every document). Only
/// the one-value-at-a-time comparison path writes documents this way.
#[cfg(any(test, feature = "fuzzing", feature = "bench"))]
fn presized_document(capacity: usize) -> RawDocumentBuf {
    let mut bytes = Vec::with_capacity(capacity.max(5));
    bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
    RawDocumentBuf::from_bytes(bytes).unwrap_or_default()
}

/// A value as raw BSON, ready to serialize as a plaintext.
pub(crate) fn to_raw(value: &Bson) -> Result<bson::RawBson, Error> {
    // `bson` panics writing a key or a regular expression with a NUL byte
    // inside an array (and accepts one at the top, to panic when it is
    // written): every C string of the value is checked first.
    if !cstrings_encodable(value)? {
        return Err(Error::NulInCString);
    }
    bson::RawBson::try_from(value.clone()).map_err(Error::Unserializable)
}

/// Whether every C string of `value` (document keys, a regular
/// expression's pattern and options, at any depth, a code-with-scope's
/// scope included) is free of NUL bytes, which BSON cannot encode. Walked
/// without recursion; fails past [`MAX_NESTING`].
fn cstrings_encodable(value: &Bson) -> Result<bool, Error> {
    let mut stack: Vec<(&Bson, usize)> = vec![(value, 0)];
    let document = |d: &'_ Document| d.keys().any(|k| k.contains('\0'));
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(Error::TooDeep(MAX_NESTING));
        }
        match value {
            Bson::Document(d) => {
                if document(d) {
                    return Ok(false);
                }
                stack.extend(d.values().map(|v| (v, depth + 1)));
            }
            Bson::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
            Bson::RegularExpression(r) if r.pattern.contains('\0') || r.options.contains('\0') => {
                return Ok(false);
            }
            Bson::JavaScriptCodeWithScope(c) => {
                if document(&c.scope) {
                    return Ok(false);
                }
                stack.extend(c.scope.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(true)
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
    /// The Queryable Encryption keys this walk built (side path).
    qe_keys: queryable::KeyCache,
    plaintext: Vec<u8>,
    scratch: Vec<u8>,
    /// Ciphertexts whose tags were checked ahead, in lanes (address
    /// and length), in the order the walk meets them.
    verified: Vec<(usize, usize)>,
    next_verified: usize,
}

/// From this many encrypted values in one document on, their tags are
/// checked in lanes before the walk (`verify_ahead`); below, each value is
/// opened on its own. The crypto layer's threshold, chosen from
/// `benches/bulk_decrypt.rs` (BENCHMARKS.md).
pub(crate) const LANES_FROM_FIELDS: usize = crate::crypto::LANES_FROM_MESSAGES;

/// One piece of a decrypted raw document, as the planning walk found it.
enum Piece<'a> {
    /// Input bytes copied as they are: a run of plain elements.
    Copy(&'a [u8]),
    /// An encrypted element: its name, its FLE1 payload (parsed too) and
    /// the index of its key in [`Plan::keys`].
    Encrypted {
        name: &'a [u8],
        payload: &'a [u8],
        blob: Fle1Blob<'a>,
        key: usize,
    },
    /// A Queryable Encryption element, decrypted while planning (the side
    /// path): its name, its plaintext's type and the index of the
    /// plaintext in [`Plan::plaintexts`].
    Decrypted {
        name: &'a [u8],
        ty: ElementType,
        plaintext: usize,
    },
    /// A document or array element holding encrypted values: its type
    /// and name; its own pieces follow, up to the matching `Close`.
    Open {
        ty: u8,
        name: &'a [u8],
    },
    Close,
}

/// A raw document's decryption, planned.
#[derive(Default)]
struct Plan<'a> {
    pieces: Vec<Piece<'a>>,
    keys: Vec<Arc<DataKey>>,
    /// The plaintexts of the QE elements, wiped when the plan is dropped.
    plaintexts: Vec<Zeroizing<Vec<u8>>>,
}

fn collect_bson<'a>(value: &'a Bson, out: &mut Vec<&'a [u8]>, depth: usize) -> Result<(), Error> {
    match value {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => out.push(&b.bytes),
        Bson::Document(d) => {
            check_depth(depth + 1)?;
            for v in d.values() {
                collect_bson(v, out, depth + 1)?;
            }
        }
        Bson::Array(a) => {
            check_depth(depth + 1)?;
            for v in a {
                collect_bson(v, out, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
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
            qe_keys: queryable::KeyCache::new(),
            plaintext: Vec::new(),
            scratch: Vec::new(),
            verified: Vec::new(),
            next_verified: 0,
        }
    }

    fn key_for(&mut self, id: crate::key::KeyId) -> Result<Arc<DataKey>, Error> {
        if let Some(k) = &self.last
            && k.id() == id
        {
            return Ok(Arc::clone(k));
        }
        let k = self.keys.data_key(&KeyRef::Id(id))?;
        self.last = Some(Arc::clone(&k));
        Ok(k)
    }

    /// Checks the tags of `blobs` (a document's FLE1 payloads, in walk
    /// order) in lanes, when there are enough of them. The error is the one
    /// the walk would meet first: the earliest field that does not parse,
    /// has no key, or fails its tag; nothing is decrypted then.
    fn verify_ahead(&mut self, blobs: &[&[u8]]) -> Result<(), Error> {
        if blobs.len() < LANES_FROM_FIELDS || !crate::crypto::hmac_lanes::lanes_available() {
            return Ok(());
        }
        let mut keys: Vec<Arc<DataKey>> = Vec::new();
        let mut parsed: Vec<(usize, &[u8], Fle1Blob<'_>)> = Vec::with_capacity(blobs.len());
        // The walk stops at the first field without a blob or a key: later
        // fields do not matter.
        let mut stop: Option<Error> = None;
        for &payload in blobs {
            let blob = match Fle1Blob::parse(payload) {
                Ok(blob) => blob,
                // Not FLE1 but Queryable Encryption's: the walk opens it on
                // the side path (or refuses it), and checks the values
                // after it one at a time, so its first error stays the
                // first.
                Err(_) if queryable::is_qe(payload) => break,
                Err(e) => {
                    stop = Some(e.into());
                    break;
                }
            };
            match self.key_index(&mut keys, blob.key_id) {
                Ok(k) => parsed.push((k, payload, blob)),
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            }
        }
        // A tag before the stop is the earlier error.
        verify_in_lanes(parsed.iter().map(|(k, payload, _)| (&*keys[*k], *payload)))?;
        if let Some(e) = stop {
            return Err(e);
        }
        self.verified.clear();
        self.verified.extend(
            parsed
                .iter()
                .map(|(_, _, b)| (b.ciphertext.as_ptr() as usize, b.ciphertext.len())),
        );
        Ok(())
    }

    /// The index in `keys` of the key with this id, looked up once.
    fn key_index(
        &mut self,
        keys: &mut Vec<Arc<DataKey>>,
        id: crate::key::KeyId,
    ) -> Result<usize, Error> {
        if let Some(i) = keys.iter().position(|k| k.id() == id) {
            return Ok(i);
        }
        keys.push(self.key_for(id)?);
        Ok(keys.len() - 1)
    }

    /// Plans `doc` into `plan`; returns whether it holds encrypted values.
    /// Plain elements become copies of their bytes (adjacent ones one
    /// copy); a document or array without encrypted values is copied
    /// whole. Stops at the first element that is not valid BSON, does not
    /// parse as FLE1 or has no key, with the pieces before it planned.
    fn plan<'a>(
        &mut self,
        doc: &'a RawDocument,
        plan: &mut Plan<'a>,
        depth: usize,
    ) -> Result<bool, Error> {
        check_depth(depth)?;
        let bytes = doc.as_bytes();
        // The same bound as `nesting`'s walks, which may not have measured
        // this document (`count_raw_up_to` stops early): its elements sit
        // one level below it, so one here must be within the limit too.
        if bytes.len() > EMPTY_DOCUMENT_LEN {
            check_depth(depth + 1)?;
        }
        let base = bytes.as_ptr() as usize;
        // The run of plain elements not yet planned, as offsets in `bytes`.
        let mut run: Option<(usize, usize)> = None;
        let mut encrypted = false;
        let flush = |plan: &mut Plan<'a>, run: &mut Option<(usize, usize)>| {
            if let Some((start, end)) = run.take() {
                plan.pieces.push(Piece::Copy(&bytes[start..end]));
            }
        };
        for el in doc.iter_elements() {
            let el = match el {
                Ok(el) => el,
                Err(e) => {
                    flush(plan, &mut run);
                    return Err(e.into());
                }
            };
            let name = el.key();
            // The element's bytes: type, name, NUL, value (`name` points
            // into `bytes`).
            let name_at = name.as_ptr() as usize - base;
            let start = name_at - 1;
            let end = name_at + name.len() + 1 + el.len();
            let name = &bytes[name_at..name_at + name.len()];
            match el.element_type() {
                bson::spec::ElementType::Binary => {
                    if let RawBsonRef::Binary(b) = el.value()?
                        && b.subtype == BinarySubtype::Encrypted
                    {
                        flush(plan, &mut run);
                        let blob = match Fle1Blob::parse(b.bytes) {
                            Ok(blob) => blob,
                            Err(fle1) => {
                                // Not FLE1: a QE value, opened now on the
                                // side path (its tags checked as it is
                                // opened) and copied when the plan is
                                // written; or the refusal.
                                let (ty, plaintext) = self.decrypt_other(b.bytes, fle1)?;
                                ciphertext::check_plaintext(ty, &plaintext, &mut self.scratch)?;
                                plan.plaintexts.push(plaintext);
                                plan.pieces.push(Piece::Decrypted {
                                    name,
                                    ty,
                                    plaintext: plan.plaintexts.len() - 1,
                                });
                                encrypted = true;
                                continue;
                            }
                        };
                        let key = self.key_index(&mut plan.keys, blob.key_id)?;
                        plan.pieces.push(Piece::Encrypted {
                            name,
                            payload: b.bytes,
                            blob,
                            key,
                        });
                        encrypted = true;
                        continue;
                    }
                }
                ty @ (bson::spec::ElementType::EmbeddedDocument
                | bson::spec::ElementType::Array) => {
                    let inner = match el.value()? {
                        RawBsonRef::Document(d) => Some(d),
                        // An array is a document with keys "0", "1", …
                        RawBsonRef::Array(a) => Some(RawDocument::from_bytes(a.as_bytes())?),
                        _ => None,
                    };
                    if let Some(inner) = inner {
                        flush(plan, &mut run);
                        let mark = plan.pieces.len();
                        plan.pieces.push(Piece::Open { ty: ty as u8, name });
                        if self.plan(inner, plan, depth + 1)? {
                            plan.pieces.push(Piece::Close);
                            encrypted = true;
                            continue;
                        }
                        // Nothing encrypted inside: copied whole.
                        plan.pieces.truncate(mark);
                    }
                }
                _ => {}
            }
            // Consecutive plain elements are adjacent bytes: one copy.
            match &mut run {
                Some((_, run_end)) => *run_end = end,
                None => run = Some((start, end)),
            }
        }
        flush(plan, &mut run);
        Ok(encrypted)
    }

    /// Checks the tag of every encrypted piece, in walk order, eight or
    /// four at a time; the first failure is the error.
    fn verify_plan(&mut self, plan: &Plan<'_>) -> Result<(), Error> {
        let encrypted = plan
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Encrypted { .. }))
            .count();
        if encrypted < LANES_FROM_FIELDS || !crate::crypto::hmac_lanes::lanes_available() {
            // Too few for lanes: each tag on its own, no batch to build.
            for piece in &plan.pieces {
                if let Piece::Encrypted { payload, key, .. } = piece {
                    ciphertext::verify_payload(&plan.keys[*key], payload)?;
                }
            }
            return Ok(());
        }
        verify_in_lanes(plan.pieces.iter().filter_map(|p| match p {
            Piece::Encrypted { payload, key, .. } => Some((&*plan.keys[*key], *payload)),
            _ => None,
        }))
    }

    /// Decrypts every FLE1 value of a verified plan into `self.plaintext`,
    /// one AES call for each run of values under one key: where each
    /// plaintext is, or why it is not, in plan order. The buffer is sized
    /// up front (the ciphertexts are longer than their plaintexts), so it
    /// never grows: growing would leave a copy of plaintexts behind.
    fn open_all(
        &mut self,
        plan: &Plan<'_>,
    ) -> Vec<Result<std::ops::Range<usize>, crate::crypto::Error>> {
        let encrypted = || {
            plan.pieces.iter().filter_map(|p| match p {
                Piece::Encrypted { blob, key, .. } => Some((*key, blob.ciphertext)),
                _ => None,
            })
        };
        let room: usize = encrypted().map(|(_, c)| c.len()).sum();
        // Nothing is in it (a walker decrypts one document); wiped anyway
        // before it is replaced.
        zeroize::Zeroize::zeroize(&mut self.plaintext);
        self.plaintext = Vec::with_capacity(room);
        let mut results = Vec::new();
        let mut run: Vec<&[u8]> = Vec::new();
        let mut run_key: Option<usize> = None;
        for (key, ciphertext) in encrypted() {
            if run_key != Some(key) {
                if let Some(k) = run_key {
                    crate::crypto::open_verified_many(
                        &plan.keys[k],
                        &run,
                        &mut self.plaintext,
                        &mut results,
                    );
                }
                run.clear();
                run_key = Some(key);
            }
            run.push(ciphertext);
        }
        if let Some(k) = run_key {
            crate::crypto::open_verified_many(
                &plan.keys[k],
                &run,
                &mut self.plaintext,
                &mut results,
            );
        }
        results
    }

    /// Writes the decrypted document from a verified plan. The output
    /// buffer holds plaintexts: on an error it is wiped.
    fn write_plan(&mut self, plan: &Plan<'_>, capacity: usize) -> Result<RawDocumentBuf, Error> {
        let mut opened = self.open_all(plan).into_iter();
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(capacity.max(5)));
        out.extend_from_slice(&[0; 4]);
        let mut open: Vec<usize> = Vec::new();
        for piece in &plan.pieces {
            match piece {
                Piece::Copy(bytes) => out.extend_from_slice(bytes),
                Piece::Encrypted { name, blob, .. } => {
                    // `open_all` gave one result per encrypted piece, in
                    // order.
                    let range = opened
                        .next()
                        .unwrap_or(Err(crate::crypto::Error::InvalidCiphertextLength {
                            len: 0,
                        }))
                        .map_err(ciphertext::Error::from)?;
                    let plaintext = &self.plaintext[range];
                    ciphertext::check_plaintext(blob.original_type, plaintext, &mut self.scratch)?;
                    out.push(blob.original_type as u8);
                    out.extend_from_slice(name);
                    out.push(0);
                    out.extend_from_slice(plaintext);
                }
                Piece::Decrypted {
                    name,
                    ty,
                    plaintext,
                } => {
                    out.push(*ty as u8);
                    out.extend_from_slice(name);
                    out.push(0);
                    out.extend_from_slice(&plan.plaintexts[*plaintext]);
                }
                Piece::Open { ty, name } => {
                    out.push(*ty);
                    out.extend_from_slice(name);
                    out.push(0);
                    open.push(out.len());
                    out.extend_from_slice(&[0; 4]);
                }
                Piece::Close => {
                    out.push(0);
                    let start = open.pop().unwrap_or_default();
                    write_length(&mut out, start)?;
                }
            }
        }
        out.push(0);
        write_length(&mut out, 0)?;
        Ok(RawDocumentBuf::from_bytes(std::mem::take(&mut *out))?)
    }

    /// Writes the decryption of `doc` in one walk, for documents with few
    /// encrypted values: plain elements copied in runs, each encrypted
    /// value checked (`sha2`'s HMAC) and decrypted as the walk meets it,
    /// as one-value-at-a-time decryption does, without a plan. The output
    /// buffer holds plaintexts: on an error it is wiped.
    fn write_direct(&mut self, doc: &RawDocument) -> Result<RawDocumentBuf, Error> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(doc.as_bytes().len().max(5)));
        out.extend_from_slice(&[0; 4]);
        self.direct(doc, &mut out, 0)?;
        out.push(0);
        write_length(&mut out, 0)?;
        Ok(RawDocumentBuf::from_bytes(std::mem::take(&mut *out))?)
    }

    /// One document of [`write_direct`](Self::write_direct), its elements
    /// appended to `out`.
    fn direct(&mut self, doc: &RawDocument, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        check_depth(depth)?;
        let bytes = doc.as_bytes();
        let base = bytes.as_ptr() as usize;
        // The run of plain elements not yet copied, as offsets in `bytes`.
        let mut run: Option<(usize, usize)> = None;
        let flush = |out: &mut Vec<u8>, run: &mut Option<(usize, usize)>| {
            if let Some((start, end)) = run.take() {
                out.extend_from_slice(&bytes[start..end]);
            }
        };
        for el in doc.iter_elements() {
            let el = el?;
            let name = el.key();
            // The element's bytes: type, name, NUL, value (`name` points
            // into `bytes`).
            let name_at = name.as_ptr() as usize - base;
            let start = name_at - 1;
            let end = name_at + name.len() + 1 + el.len();
            let name = &bytes[name_at..name_at + name.len()];
            match el.element_type() {
                ElementType::Binary => {
                    if let RawBsonRef::Binary(b) = el.value()?
                        && b.subtype == BinarySubtype::Encrypted
                    {
                        flush(out, &mut run);
                        self.direct_value(b.bytes, name, out)?;
                        continue;
                    }
                }
                ty @ (ElementType::EmbeddedDocument | ElementType::Array) => {
                    let inner = match el.value()? {
                        RawBsonRef::Document(d) => Some(d),
                        // An array is a document with keys "0", "1", …
                        RawBsonRef::Array(a) => Some(RawDocument::from_bytes(a.as_bytes())?),
                        _ => None,
                    };
                    if let Some(inner) = inner {
                        flush(out, &mut run);
                        out.push(ty as u8);
                        out.extend_from_slice(name);
                        out.push(0);
                        let at = out.len();
                        out.extend_from_slice(&[0; 4]);
                        self.direct(inner, out, depth + 1)?;
                        out.push(0);
                        write_length(out, at)?;
                        continue;
                    }
                }
                _ => {}
            }
            // Consecutive plain elements are adjacent bytes: one copy.
            match &mut run {
                Some((_, run_end)) => *run_end = end,
                None => run = Some((start, end)),
            }
        }
        flush(out, &mut run);
        Ok(())
    }

    /// One encrypted value of [`direct`](Self::direct) (the payload of a
    /// subtype-6 binary), checked, decrypted and appended to `out` as the
    /// element `name`.
    fn direct_value(
        &mut self,
        payload: &[u8],
        name: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let blob = match Fle1Blob::parse(payload) {
            Ok(blob) => blob,
            Err(fle1) => {
                // Not FLE1: a QE value, opened on the side path; or the
                // refusal.
                let (ty, plaintext) = self.decrypt_other(payload, fle1)?;
                ciphertext::check_plaintext(ty, &plaintext, &mut self.scratch)?;
                out.push(ty as u8);
                out.extend_from_slice(name);
                out.push(0);
                out.extend_from_slice(&plaintext);
                return Ok(());
            }
        };
        // The cached key borrowed, not cloned (see `decrypt_blob`).
        if self.last.as_ref().is_none_or(|k| k.id() != blob.key_id) {
            self.last = Some(self.keys.data_key(&KeyRef::Id(blob.key_id))?);
        }
        let Some(key) = self.last.as_deref() else {
            return Err(LookupError::KeyNotFound(blob.key_id).into());
        };
        self.plaintext.clear();
        crate::crypto::open(key, &blob.aad(), blob.ciphertext, &mut self.plaintext)
            .map_err(ciphertext::Error::from)?;
        ciphertext::check_plaintext(blob.original_type, &self.plaintext, &mut self.scratch)?;
        out.push(blob.original_type as u8);
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(&self.plaintext);
        Ok(())
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
        let here = (blob.ciphertext.as_ptr() as usize, blob.ciphertext.len());
        if self.verified.get(self.next_verified) == Some(&here) {
            self.next_verified += 1;
            return Ok(ciphertext::decrypt_verified_value(
                key, blob, plaintext, scratch,
            )?);
        }
        Ok(ciphertext::decrypt_value(key, blob, plaintext, scratch)?)
    }

    /// A subtype-6 value that is not an FLE1 blob (`fle1`: why not): a
    /// Queryable Encryption value, opened on the side path with keys from
    /// the same lookup, as its plaintext's type and bytes; or the refusal.
    fn decrypt_other(
        &mut self,
        bytes: &[u8],
        fle1: ciphertext::Error,
    ) -> Result<(ElementType, Zeroizing<Vec<u8>>), Error> {
        queryable::decrypt(bytes, fle1, self.keys, &mut self.qe_keys)
    }

    /// [`decrypt_other`](Self::decrypt_other), as a value.
    fn other_to_bson(&mut self, bytes: &[u8], fle1: ciphertext::Error) -> Result<Bson, Error> {
        let (ty, plaintext) = self.decrypt_other(bytes, fle1)?;
        raw_to_bson(ciphertext::value_from_plaintext(
            ty,
            &plaintext,
            &mut self.scratch,
        )?)
    }

    fn bson(&mut self, value: &Bson, depth: usize) -> Result<Bson, Error> {
        Ok(match value {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                match Fle1Blob::parse(&b.bytes) {
                    Ok(blob) => raw_to_bson(self.decrypt_blob(&blob)?)?,
                    Err(fle1) => self.other_to_bson(&b.bytes, fle1)?,
                }
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

    /// The one-value-at-a-time raw walk (`decrypt_raw_document_one_by_one`).
    #[cfg(any(test, feature = "fuzzing", feature = "bench"))]
    fn raw_value<'a>(
        &mut self,
        value: RawBsonRef<'a>,
        depth: usize,
        append: &mut dyn FnMut(RawBsonRef<'_>),
    ) -> Result<(), Error> {
        match value {
            RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                match Fle1Blob::parse(b.bytes) {
                    Ok(blob) => append(self.decrypt_blob(&blob)?),
                    Err(fle1) => {
                        let (ty, plaintext) = self.decrypt_other(b.bytes, fle1)?;
                        append(ciphertext::value_from_plaintext(
                            ty,
                            &plaintext,
                            &mut self.scratch,
                        )?);
                    }
                }
            }
            RawBsonRef::Document(d) => {
                let mut sub = RawDocumentBuf::new();
                self.raw_document(d, &mut sub, depth + 1)?;
                append(RawBsonRef::Document(&sub));
            }
            RawBsonRef::Array(a) => {
                check_depth(depth + 1)?;
                let mut sub = bson::RawArrayBuf::new();
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

    #[cfg(any(test, feature = "fuzzing", feature = "bench"))]
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

/// Tags checked per call of the lanes (the HMAC layer hashes them 32 at a
/// time, its blocks in the L1 cache): enough that the call's buffers are
/// allocated a few times per bulk document, not once per 32 values.
const VERIFY_CHUNK: usize = 256;

/// Checks the tags of `(key, FLE1 payload)` jobs in walk order,
/// [`VERIFY_CHUNK`] at a time in lanes; the first failure is the error.
fn verify_in_lanes<'a>(
    mut jobs: impl Iterator<Item = (&'a DataKey, &'a [u8])>,
) -> Result<(), Error> {
    let mut chunk: Vec<(&DataKey, &[u8])> = Vec::with_capacity(VERIFY_CHUNK);
    let mut results = Vec::with_capacity(VERIFY_CHUNK);
    loop {
        chunk.clear();
        chunk.extend(jobs.by_ref().take(VERIFY_CHUNK));
        if chunk.is_empty() {
            return Ok(());
        }
        results.clear();
        ciphertext::verify_payloads(&chunk, &mut results);
        for r in results.drain(..) {
            r?;
        }
    }
}

/// Writes the length of the document starting at `start` of `out` (which
/// ends with it) into its first four bytes.
fn write_length(out: &mut [u8], start: usize) -> Result<(), Error> {
    let len = out.len() - start;
    let len = i32::try_from(len).map_err(|_| Error::TooLarge(len))?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The length of `{}` in BSON: its length and its terminating NUL.
const EMPTY_DOCUMENT_LEN: usize = 5;

fn check_depth(depth: usize) -> Result<(), Error> {
    if depth > MAX_NESTING {
        Err(Error::TooDeep(MAX_NESTING))
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[path = "explicit/to_raw_tests.rs"]
mod to_raw_tests;
