//! # csfle — client-side field level encryption for MongoDB, in pure Rust
//!
//! csfle encrypts individual fields of MongoDB documents on the client, so
//! the server only ever stores and returns ciphertext. Its output is MongoDB's
//! FLE1 format — `AEAD_AES_256_CBC_HMAC_SHA_512`, BSON binary subtype 6 —
//! byte for byte: what csfle encrypts, every official driver (through
//! libmongocrypt) decrypts, and the other way round. Deterministic
//! encryption is byte-identical to libmongocrypt's.
//!
//! It needs no C library, no `mongocryptd` and no `crypt_shared`.
//!
//! ## What it refuses, and why
//!
//! * **Deterministic encryption of `double`, `decimal128`, `bool`, documents,
//!   arrays and code-with-scope.** libmongocrypt refuses them; equality on
//!   these types is either ill-defined (floating point, field order) or leaks
//!   too much (two-valued booleans).
//! * **Encrypting `null`, `undefined`, `minKey`, `maxKey`**: they carry no
//!   value to hide, and an empty plaintext is not a valid FLE1 plaintext.
//! * **Encrypting a ciphertext** (binary subtype 6): double encryption makes
//!   values unreadable to other drivers.
//! * **AES-GCM or any other scheme**: only the FLE1 wire format is produced,
//!   because only it is readable by the rest of the MongoDB ecosystem.
//!
//! ## Design
//!
//! The core does no I/O: it takes values and returns values, like rustls.
//!
//! ```text
//!  plaintext value ─▶ ExplicitEncrypter::encrypt ─▶ FLE1 blob (binary subtype 6)
//!                          ▲
//!  key document ─▶ kms (unwrap with master key) ─▶ DataKey (precomputed AES + HMAC state)
//! ```
//!
//! ## The public API
//!
//! What applications name is at the crate root or in a module named for
//! what it holds, and has one public path there (the one exception: the
//! traits `Encrypted` and `CollectionDocument` of [`schema::typed`] are
//! also at the root, beside the derive, as `serde::Serialize` is).
//!
//! * The crate root: explicit encryption ([`ExplicitEncrypter`] over a
//!   [`KeyLookup`], [`DataKey`], [`Algorithm`], [`EncryptionAlgorithm`],
//!   [`KeyId`], [`KeyRef`], [`Fle1Blob`]), [`create_data_key`], key material
//!   ([`fill_key_material`]), the command field Queryable Encryption adds
//!   ([`ENCRYPTION_INFORMATION`]), [`Error`] and the error of each layer it
//!   wraps ([`CryptoError`], [`CiphertextError`], [`KeyError`],
//!   [`LookupError`], [`ExplicitError`], [`TooDeep`]); with feature
//!   `driver`, `ClientEncryption`, `AutoEncrypter`, `EncryptedClient` and
//!   its builder, database and collections, their options and results, the
//!   audit hook (`AuditSink`), and `ClientError`, what they fail with
//!   (`Error::Client`).
//! * [`kms`]: `kmsProviders`, the [`kms::KmsProvider`] trait, the local
//!   master key, and (features `aws`, `azure`, `gcp`) AWS KMS, Azure Key
//!   Vault and GCP Cloud KMS, with their TLS options, retries, allowed
//!   hosts and allowed master keys.
//! * [`keyvault`]: the object-safe [`keyvault::KeyVault`] trait
//!   (`Arc<dyn KeyVault>`) with file, in-memory and (feature `driver`)
//!   MongoDB stores, key documents, the data-key cache, and the
//!   synchronous [`keyvault::KeyRing`].
//! * [`schema`]: the JSON schema model of automatic encryption, and
//!   [`schema::typed`]: schemas declared on Rust types, what
//!   `#[derive(Encrypted)]` (feature `derive`) generates.
//! * [`analysis`]: in-process query analysis, fail closed over the whole
//!   command (a command and the schemas of every namespace it touches in,
//!   the command with markings out; then markings to ciphertexts): what
//!   automatic encryption runs, usable without the driver.
//! * [`ejson`]: Extended JSON lines for files and the command line.
//! * `migrate` (feature `driver`): whole-collection encryption,
//!   re-encryption and decryption, resumable and verified.
//! * `action` (feature `driver`): the operations of an encrypted
//!   collection (`Find`, `InsertOne`, …), what its methods return.
//! * `qe` (feature `qe`): Queryable Encryption: the token chain, the
//!   three QE ciphers, stored values, payloads, range math and explicit
//!   encryption's options (`qe::explicit`: `QueryType`, `RangeOptions`).
//!   `ClientEncryption::encrypt` and `ExplicitEncrypter::encrypt_qe` encrypt
//!   with it; every decrypting path reads QE values beside FLE1's
//!   (docs/queryable-encryption.md).
//!
//! ## Layers
//!
//! Inside, bottom first; each imports only those above it in this list
//! (checked by `tests/crate_module_graph.rs`), and the pure ones (no I/O) build
//! alone with `--no-default-features`:
//!
//! * `wire` (pure): what the server's protocol names that several layers
//!   share (the `encryptionInformation` field, the `db.collection` rule).
//! * `key` (pure): key data: [`KeyId`], [`KeyRef`], provider names,
//!   `masterKey`s and key documents, KMS endpoints, [`LookupError`].
//! * `nesting` (pure): the one bounded walk over BSON trees every walker
//!   uses (commands, schemas and replies are untrusted and may be
//!   arbitrarily deep).
//! * `crypto` (pure): the AEAD over bytes, [`DataKey`], the fork-safe IV
//!   generator, the synchronous [`KeyLookup`].
//! * `ciphertext` (pure): the FLE1 blob and the BSON type rules.
//! * `schema` (pure).
//! * `explicit` (pure): [`ExplicitEncrypter`], synchronous encrypt and
//!   decrypt of values and whole documents with ready keys; the one
//!   encryption pipeline.
//! * `analysis` (pure).
//! * `ejson` (pure).
//! * `qe` (pure, feature `qe`).
//! * `driver` (feature `driver`): the `mongodb` edge the layers that talk
//!   to a server share (the server's code in a driver error).
//! * `kms`, then `keyvault`.
//! * `error`: [`Error`], every layer's error below it kept whole (and,
//!   feature `driver`, `ClientError`: the client edge's and the driver's);
//!   it names nothing of `client` or `migrate`, which return it.
//! * `client` (feature `driver`): `ClientEncryption`, the drivers'
//!   explicit-encryption API (async): data keys in a key vault, cached
//!   unwrapped keys, key rotation by rewrap; `AutoEncrypter` and
//!   `EncryptedClient` → `EncryptedDatabase` → `EncryptedCollection<T>`,
//!   automatic encryption shaped like the `mongodb` crate; the audit hook
//!   (`AuditSink`) asked before every decryption.
//! * `migrate` (feature `driver`).
//!
//! ## Getting started
//!
//! ```
//! use csfle::{Algorithm, ExplicitEncrypter, KeyRef};
//! use csfle::keyvault::KeyRing;
//! use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
//! use bson::doc;
//!
//! // A local master key (in production: 96 random bytes kept out of the database).
//! let local = ProviderName::of_kind(ProviderKind::Local);
//! let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[1; 96])?);
//! let key = csfle::create_data_key(&kms, &local, vec!["ssn-key".into()], None)?;
//! let enc = ExplicitEncrypter::new(KeyRing::new([key], kms)?);
//!
//! let ssn = enc.encrypt(&"457-55-5462".into(), &KeyRef::AltName("ssn-key".into()), Algorithm::Deterministic)?;
//! let stored = doc! { "name": "Ada", "ssn": ssn };
//! assert_eq!(enc.decrypt_document(&stored)?, doc! { "name": "Ada", "ssn": "457-55-5462" });
//! # Ok::<(), csfle::Error>(())
//! ```
//!
//! ## Cargo features
//!
//! * `driver` (default): the MongoDB edge through the `mongodb` crate and
//!   Tokio: the key vault collection, `ClientEncryption`, the encrypted
//!   client, collection migration.
//! * `qe` (default, pure): Queryable Encryption: explicit encryption
//!   (Indexed, Unindexed, Range) and the decryption of QE values (adds
//!   RustCrypto's `ctr`). Without it, a QE value is an error naming the
//!   feature.
//! * Without default features: the pure core plus the file and memory key
//!   vaults and the local KMS; no `mongodb`, `tokio` or HTTP.
//! * `aws`: AWS KMS through `aws-sdk-kms` (rustls with ring, no C build).
//! * `azure`: Azure Key Vault (RSA-OAEP-256 `wrapkey` / `unwrapkey`).
//! * `gcp`: GCP Cloud KMS (service-account JWTs, `:encrypt` / `:decrypt`).
//! * `kmip`: KMIP's TTLV messages (sans I/O; no provider yet).
//! * `cloud-kms`: `aws`, `azure`, `gcp` and `kmip`.
//! * `fuzzing`: the fuzz targets' entry points and oracles (they panic on a
//!   broken invariant); for the fuzz crate and its corpus replay, never for
//!   production builds.
//! * `bench`: the benchmarks' hooks (the one-value-at-a-time decryption,
//!   the SHA-512 kernels, the per-value FLE1 calls); `cargo bench` needs it
//!   for the `field`, `bulk_decrypt` and `migrate` benchmarks. Like
//!   `fuzzing`, it adds nothing to the public API: both only open the
//!   hidden `__private` module, which has no stability promise.
//! * `libmongocrypt-bench`: builds the comparison benchmark against the C
//!   libmongocrypt (through the `mongocrypt` crate; needs
//!   `libmongocrypt-dev`); implies `bench`. Off by default: default builds
//!   need no C library.
//! * `scalar-sha512`: never use the multi-lane SHA-512 kernels of
//!   `csfle-sha512-lanes` (every compression goes through `sha2`).
//!
//! The `csfle` command line is the `csfle-cli` crate. This crate has no
//! `unsafe` code: the SIMD SHA-512 kernels (`csfle-sha512-lanes`) and the
//! fork hook of the IV generator (`csfle-fork-generation`) are crates of
//! their own.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

// The derive's generated code names `::csfle`, also in this crate's own
// tests.
extern crate self as csfle;

// Modules are private unless they are the API (see "The public API"
// above); what users name from the private ones is re-exported below.
pub mod analysis;
mod ciphertext;
#[cfg(feature = "driver")]
mod client;
mod crypto;
// The `mongodb` edge shared by the layers that talk to a server.
#[cfg(feature = "driver")]
mod driver;
pub mod ejson;
mod error;
mod explicit;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing;
mod key;
pub mod keyvault;
pub mod kms;
#[cfg(feature = "driver")]
pub mod migrate;
mod nesting;
#[cfg(feature = "qe")]
pub mod qe;
pub mod schema;
mod wire;

/// The `bson` crate csfle is built with: use it for documents passed to
/// csfle, so the versions agree.
pub use bson;
/// The `mongodb` crate csfle is built with (feature `driver`).
#[cfg(feature = "driver")]
pub use mongodb;

pub use ciphertext::{BlobSubtype, Error as CiphertextError, Fle1Blob};
pub use crypto::{
    Algorithm, DATA_KEY_LEN, DataKey, Error as CryptoError, KeyLookup, fill_key_material,
    fill_random,
};
pub use explicit::{EncryptionAlgorithm, Error as ExplicitError, ExplicitEncrypter, MAX_NESTING};
pub use key::{Error as KeyError, KeyId, KeyRef, LookupError};
pub use kms::providers::create_data_key;
pub use nesting::TooDeep;
pub use wire::ENCRYPTION_INFORMATION;

/// `#[derive(Encrypted)]`: a type's encryption schema, declared on the
/// type (see [`schema::typed`]).
#[cfg(feature = "derive")]
pub use csfle_derive::Encrypted;
/// The bound of an encrypted collection's document type: derived types,
/// `bson::Document`, and plain types that opt in. Also at
/// [`schema::typed::CollectionDocument`], with the rest of the typed
/// schemas.
pub use schema::typed::CollectionDocument;
/// The trait `#[derive(Encrypted)]` implements, named like the derive (as
/// `serde::Serialize` is). Also at [`schema::typed::Encrypted`].
pub use schema::typed::Encrypted;

#[cfg(feature = "driver")]
pub use client::{
    AuditSink, AuditedKey, AutoEncrypter, AutoEncryptionOptions, ClientEncryption, ClientSource,
    Cursor, DataKeyOptions, DecryptionEvent, DeleteResult, EncryptedClient, EncryptedClientBuilder,
    EncryptedCollection, EncryptedDatabase, InsertManyResult, InsertOneResult, MongoSchemaFetcher,
    RemoteSchema, RewrapOptions, RewrapResult, SchemaFetcher, UpdateResult, WriteModel,
};
pub use error::Error;
#[cfg(feature = "driver")]
pub use error::{
    AuditError, BulkWriteFailure, BulkWriteResult, ClientBulkWriteResult, ClientError,
    ServerWriteError,
};

/// The operations of an [`EncryptedCollection`], of
/// [`EncryptedClient::bulk_write`] and of
/// [`ClientEncryption::encrypt`] (and, feature `qe`, `encrypt_expression`),
/// as the `mongodb` crate shapes them: a method returns one of these
/// actions, options are chained on it, and `.await` runs it
/// (`coll.find(filter).sort(doc! {"_id": 1}).limit(5).await`,
/// `encryption.encrypt(&value, &key, Indexed).contention_factor(8).await`).
/// Each collection operation is analysed (and encrypted) as the command the
/// server documents, fail closed, then run through the driver's own typed
/// operation; cursors decrypt as they go.
#[cfg(feature = "driver")]
pub mod action {
    pub use crate::client::actions::{
        Aggregate, BulkWrite, ClientBulkWrite, CountDocuments, CreateIndexes, Delete, Distinct,
        DropCollection, DropIndexes, EstimatedDocumentCount, Find, FindAndModify, FindOne,
        InsertMany, InsertOne, ListIndexes, Replace, Update, Watch,
    };
    pub use crate::client::encrypt::Encrypt;
    #[cfg(feature = "qe")]
    pub use crate::client::encrypt::EncryptExpression;
}

/// Hooks for the fuzz targets (`fuzz/`), their corpus replay
/// (`tests/crate_fuzz_corpus.rs`) and the benchmarks (`benches/`): panicking
/// oracles, the one-value-at-a-time paths the lanes are compared with,
/// the SHA-512 kernels. Not a public API: compiled only with the features
/// `fuzzing` or `bench`, hidden from the documentation, and free to change
/// in any release. Never for production builds.
#[cfg(any(test, feature = "fuzzing", feature = "bench"))]
#[doc(hidden)]
pub mod __private {
    #[cfg(any(test, feature = "fuzzing"))]
    pub use crate::fuzzing::*;

    use crate::{
        Algorithm, CiphertextError, DataKey, ExplicitEncrypter, ExplicitError, Fle1Blob, KeyLookup,
    };
    use bson::{RawBsonRef, RawDocument, RawDocumentBuf};

    /// [`ExplicitEncrypter::decrypt_raw_document`] one value at a time,
    /// never in lanes: the scalar path the lanes are measured against.
    pub fn decrypt_raw_document_one_by_one<L: KeyLookup>(
        encrypter: &ExplicitEncrypter<L>,
        doc: &RawDocument,
    ) -> Result<RawDocumentBuf, ExplicitError> {
        encrypter.decrypt_raw_document_one_by_one(doc)
    }

    /// Encrypts one value with `key`, returning the FLE1 blob: the
    /// per-value core of every encrypting path, without a key lookup.
    /// `scratch` is reused between calls.
    pub fn encrypt_value(
        key: &DataKey,
        algorithm: Algorithm,
        value: RawBsonRef<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<u8>, CiphertextError> {
        crate::ciphertext::encrypt_value(key, algorithm, value, scratch)
    }

    /// Decrypts a parsed blob with `key` (whose id must match the blob's):
    /// the per-value core of every decrypting path, without a key lookup.
    /// The value borrows from `scratch`.
    pub fn decrypt_value<'s>(
        key: &DataKey,
        blob: &Fle1Blob<'_>,
        plaintext: &mut Vec<u8>,
        scratch: &'s mut Vec<u8>,
    ) -> Result<RawBsonRef<'s>, CiphertextError> {
        crate::ciphertext::decrypt_value(key, blob, plaintext, scratch)
    }

    /// The filter a migration worker reads its `_id` range `[min, max)`
    /// with (after `after` when it resumes), for the benchmark's plain
    /// rewrite that reads as the migration does.
    #[cfg(feature = "driver")]
    pub fn range_filter(
        min: &bson::Bson,
        max: &bson::Bson,
        after: Option<&bson::Bson>,
    ) -> bson::Document {
        crate::migrate::ranges::range_filter(min, max, after)
    }
}
