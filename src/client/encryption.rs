//! [`ClientEncryption`]: explicit encryption and data-key management over a
//! key vault, as the MongoDB drivers offer it, plus key rotation (rewrap).

use super::audit::{AuditSink, AuditedKey, DecryptionEvent};
use super::cursor::Cursor;
use crate::Error;
use crate::ciphertext;
use crate::crypto::DataKey;
use crate::crypto::KeyLookup;
use crate::explicit::ExplicitEncrypter;
use crate::key::KeyId;
use crate::key::{KeyRef, LookupError};
use crate::keyvault::{
    self, CacheStats, KeyCache, KeyCacheOptions, KeyDocument, KeyMaterialUpdate, KeyVault,
};
use crate::kms::{KmsProviders, ProviderName};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Options of [`ClientEncryption::create_data_key`]: [`Default`] (a local
/// key, no alternate names, random material) and the `with_*` setters.
///
/// ```
/// # use csfle::DataKeyOptions;
/// let options = DataKeyOptions::default().with_key_alt_names(["ssn-key"]);
/// assert_eq!(options.key_alt_names, ["ssn-key"]);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DataKeyOptions {
    /// The `masterKey` document for the provider (`None` for local keys).
    pub master_key: Option<Document>,
    /// Alternate names; each must be unique in the key vault.
    pub key_alt_names: Vec<String>,
    /// 96 bytes of key material to use instead of random bytes.
    pub key_material: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl DataKeyOptions {
    /// Sets the provider's `masterKey` document (`{"region": …, "key": …}`
    /// for AWS, `{"keyVaultEndpoint": …, "keyName": …}` for Azure, …).
    pub fn with_master_key(mut self, master_key: Document) -> Self {
        self.master_key = Some(master_key);
        self
    }

    /// Sets the alternate names.
    pub fn with_key_alt_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.key_alt_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Uses `material` (96 bytes, checked when the key is created) instead
    /// of random bytes. The copy kept here is wiped on drop; the caller's
    /// `material` is the caller's to wipe.
    pub fn with_key_material(mut self, material: &[u8]) -> Self {
        self.key_material = Some(zeroize::Zeroizing::new(material.to_vec()));
        self
    }
}

/// Options of [`ClientEncryption::rewrap_many_data_key`]: the provider to
/// wrap with ([`new`](Self::new)) and its `masterKey`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RewrapOptions {
    /// The provider to wrap with from now on.
    pub provider: ProviderName,
    /// Its `masterKey` document (`None` for local keys).
    pub master_key: Option<Document>,
}

impl RewrapOptions {
    /// Rewrap with `provider` (a local provider needs no `masterKey`).
    pub fn new(provider: ProviderName) -> Self {
        RewrapOptions {
            provider,
            master_key: None,
        }
    }

    /// Sets the provider's `masterKey` document.
    pub fn with_master_key(mut self, master_key: Document) -> Self {
        self.master_key = Some(master_key);
        self
    }
}

/// What a rewrap did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapResult {
    /// Keys matched by the filter (and unwrapped).
    pub matched: u64,
    /// Keys the bulk write modified.
    pub modified: u64,
}

/// The most key documents one [`ClientEncryption::verify_keys`] reads: a
/// vault holding more is verified in parts (by filter), never loaded whole.
const MAX_KEYS_TO_VERIFY: usize = 10_000;

/// Unwraps one [`ClientEncryption::verify_keys`] has in flight at once, so
/// that round trips to a remote KMS overlap.
const VERIFY_CONCURRENCY: usize = 8;

/// Explicit encryption and key management, like the drivers' `ClientEncryption`.
///
/// Over any key vault, held as `Arc<dyn KeyVault>`: a
/// [`MongoKeyVault`](keyvault::MongoKeyVault) in production, a
/// [`FileKeyVault`](keyvault::FileKeyVault) for the embedded default, a
/// [`MemoryKeyVault`](keyvault::MemoryKeyVault) in tests.
/// Unwrapped keys are cached ([`KeyCache`]).
#[derive(Debug)]
pub struct ClientEncryption {
    vault: Arc<dyn KeyVault>,
    kms: KmsProviders,
    cache: KeyCache,
    audit: Option<Arc<dyn AuditSink>>,
}

/// The keys fetched for one operation, by the reference it asked with,
/// looked up without further I/O.
#[derive(Default)]
pub(crate) struct ResolvedKeys(HashMap<KeyRef, Arc<DataKey>>);

impl KeyLookup for ResolvedKeys {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, LookupError> {
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| LookupError::not_found(key))
    }
}

/// Collects the key ids of every subtype-6 value in a document (any
/// depth): FLE1 blobs' keys, and Queryable Encryption values' user or
/// server keys (an indexed value's client key is named only inside its
/// server layer: see [`ClientEncryption::add_client_layer_keys`]).
pub(crate) fn collect_key_ids(value: &Bson, out: &mut Vec<KeyRef>) -> Result<(), Error> {
    collect_value_keys(value, out).map(|_| ())
}

/// [`collect_key_ids`], also telling whether a QE indexed value was met.
fn collect_value_keys(value: &Bson, out: &mut Vec<KeyRef>) -> Result<bool, Error> {
    let mut indexed = false;
    // Replies come from the server: the walk is bounded, not recursive.
    crate::nesting::visit(value, &mut |v| {
        if let Bson::Binary(b) = v
            && b.subtype == BinarySubtype::Encrypted
        {
            indexed |= note_value_key(&b.bytes, out)?;
        }
        Ok::<(), Error>(())
    })?;
    Ok(indexed)
}

/// The key ids of every subtype-6 value of a batch of raw documents, each
/// once, in the order a bounded walk of each document meets them (its
/// values last first), and whether a QE indexed value was met: what
/// [`ClientEncryption::decrypt_raw_documents`] fetches first.
pub(crate) fn batch_keys(docs: &[&bson::RawDocument]) -> Result<(Vec<KeyRef>, bool), Error> {
    // Read from the raw batch (bounded walk; nothing is parsed into a tree).
    let mut refs = Vec::new();
    let mut indexed = false;
    for d in docs {
        crate::nesting::visit_raw(d, &mut |v| {
            if let bson::RawBsonRef::Binary(b) = v
                && b.subtype == BinarySubtype::Encrypted
            {
                indexed |= note_value_key(b.bytes, &mut refs)?;
            }
            Ok::<(), Error>(())
        })?;
    }
    Ok((refs, indexed))
}

/// Adds the key a subtype-6 value names in the clear to `out` (once);
/// returns whether the value is a QE indexed value, whose client layer is
/// under a key only its server layer names.
fn note_value_key(bytes: &[u8], out: &mut Vec<KeyRef>) -> Result<bool, Error> {
    let (id, indexed) = crate::explicit::stored_value_key(bytes)?;
    let r = KeyRef::Id(id);
    if !out.contains(&r) {
        out.push(r);
    }
    Ok(indexed)
}

/// Adds the client-layer key of a QE indexed value to `out` unless `keys`
/// already has it (or `out` does).
fn note_client_key(bytes: &[u8], keys: &ResolvedKeys, out: &mut Vec<KeyRef>) -> Result<(), Error> {
    if let Some(id) = crate::explicit::client_layer_key(bytes, keys)? {
        let r = KeyRef::Id(id);
        if !keys.0.contains_key(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(())
}

impl ClientEncryption {
    /// A client over `vault`, unwrapping with `kms`, with the default cache
    /// (60 s TTL, 1024 keys).
    pub fn new(vault: impl KeyVault + 'static, kms: KmsProviders) -> Self {
        Self::with_cache_options(vault, kms, KeyCacheOptions::default())
    }

    /// A client with explicit cache options.
    pub fn with_cache_options(
        vault: impl KeyVault + 'static,
        kms: KmsProviders,
        cache: KeyCacheOptions,
    ) -> Self {
        Self::from_shared_vault(Arc::new(vault), kms, cache)
    }

    /// A client over a key vault shared with other clients, or chosen at
    /// run time (the command line opens a file or a MongoDB vault).
    pub fn from_shared_vault(
        vault: Arc<dyn KeyVault>,
        kms: KmsProviders,
        cache: KeyCacheOptions,
    ) -> Self {
        ClientEncryption {
            vault,
            kms,
            cache: KeyCache::new(cache),
            audit: None,
        }
    }

    /// Expires cached keys by `clock` instead of the system clock (a
    /// [`Clock::manual`](keyvault::Clock::manual) in tests of the time to
    /// live).
    pub fn with_clock(mut self, clock: keyvault::Clock) -> Self {
        self.cache.set_clock(clock);
        self
    }

    /// Asks `sink` before every decryption (see [`AuditSink`]); a refusal
    /// fails the operation with nothing decrypted.
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The key vault.
    pub fn key_vault(&self) -> &Arc<dyn KeyVault> {
        &self.vault
    }

    /// The KMS providers.
    pub fn kms_providers(&self) -> &KmsProviders {
        &self.kms
    }

    /// The cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The data keys for `refs`, through the cache (one key-vault query for
    /// all the missing ones).
    pub async fn data_keys(&self, refs: &[KeyRef]) -> Result<Vec<Arc<DataKey>>, Error> {
        Ok(self.cache.get(&*self.vault, &self.kms, refs).await?)
    }

    /// Creates a data key wrapped by `provider` (with the `masterKey`
    /// options for it) and stores it; returns its id.
    pub async fn create_data_key(
        &self,
        provider: &ProviderName,
        options: DataKeyOptions,
    ) -> Result<KeyId, Error> {
        let material =
            crate::crypto::new_key_material(options.key_material.as_deref().map(|m| m.as_slice()))?;
        let (master_key, wrapped) = self
            .kms
            .wrap_key(provider, options.master_key.as_ref(), &material[..])
            .await?;
        let key = KeyDocument::new(master_key, wrapped, options.key_alt_names)
            .map_err(keyvault::Error::from)?;
        self.vault.insert_key(&key).await?;
        tracing::debug!(key_id = %key.id, provider = %provider, "data key created");
        Ok(key.id)
    }

    /// Decrypts a subtype-6 binary: an FLE1 ciphertext or (feature `qe`) a
    /// Queryable Encryption value (a stored value or an insert payload;
    /// a query, a find payload, is refused).
    pub async fn decrypt(&self, value: &Binary) -> Result<Bson, Error> {
        if value.subtype != BinarySubtype::Encrypted {
            return Err(ciphertext::Error::NotEncrypted {
                subtype: u8::from(value.subtype),
            }
            .into());
        }
        let mut refs = Vec::new();
        let indexed = note_value_key(&value.bytes, &mut refs)?;
        let mut keys = self.keys_to_decrypt(&refs, 1).await?;
        if indexed {
            let mut more = Vec::new();
            note_client_key(&value.bytes, &keys, &mut more)?;
            self.add_client_layer_keys(&mut keys, &more, 1).await?;
        }
        Ok(ExplicitEncrypter::new(keys).decrypt(value)?)
    }

    /// Decrypts every subtype-6 value in `doc` (FLE1 and, feature `qe`,
    /// Queryable Encryption values, mixed as they come), fetching all the
    /// keys it needs with one key-vault query (a second one for the
    /// client-layer keys of QE indexed values, if the first did not bring
    /// them).
    pub async fn decrypt_document(&self, doc: &Document) -> Result<Document, Error> {
        let mut refs = Vec::new();
        let mut indexed = false;
        for v in doc.values() {
            indexed |= collect_value_keys(v, &mut refs)?;
        }
        let mut keys = self.keys_to_decrypt(&refs, 1).await?;
        if indexed {
            let mut more = Vec::new();
            for v in doc.values() {
                crate::nesting::visit(v, &mut |v| {
                    if let Bson::Binary(b) = v
                        && b.subtype == BinarySubtype::Encrypted
                    {
                        note_client_key(&b.bytes, &keys, &mut more)?;
                    }
                    Ok::<(), Error>(())
                })?;
            }
            self.add_client_layer_keys(&mut keys, &more, 1).await?;
        }
        Ok(ExplicitEncrypter::new(keys).decrypt_document(doc)?)
    }

    /// Decrypts a batch of raw documents (a cursor's batch), fetching every
    /// key the batch needs with one key-vault query.
    pub async fn decrypt_raw_documents(
        &self,
        docs: &[&bson::RawDocument],
    ) -> Result<Vec<bson::RawDocumentBuf>, Error> {
        let (refs, indexed) = batch_keys(docs)?;
        let mut keys = self.keys_to_decrypt(&refs, docs.len()).await?;
        if indexed {
            let mut more = Vec::new();
            for d in docs {
                crate::nesting::visit_raw(d, &mut |v| {
                    if let bson::RawBsonRef::Binary(b) = v
                        && b.subtype == BinarySubtype::Encrypted
                    {
                        note_client_key(b.bytes, &keys, &mut more)?;
                    }
                    Ok::<(), Error>(())
                })?;
            }
            self.add_client_layer_keys(&mut keys, &more, docs.len())
                .await?;
        }
        let encrypter = ExplicitEncrypter::new(keys);
        Ok(docs
            .iter()
            .map(|d| encrypter.decrypt_raw_document(d))
            .collect::<Result<_, _>>()?)
    }

    /// A cursor's batch decrypted as
    /// [`decrypt_raw_documents`](Self::decrypt_raw_documents) decrypts it,
    /// byte for byte and refusal for refusal, in fewer passes: one light
    /// scan of the batch ([`scan_batch`](super::fast_path::scan_batch))
    /// finds the key ids in the order the full walk would, and which
    /// documents hold an encrypted value; a document without one is left
    /// as it came (`None`: the bytes the full path would copy unchanged),
    /// the others are decrypted by the same code without being measured
    /// again. A batch the scan does not take whole (anything malformed, a
    /// subtype-6 value that is not an FLE1 blob, such as a Queryable
    /// Encryption value) goes through `decrypt_raw_documents` itself,
    /// before anything else happened. Decrypted bytes are wiped when
    /// dropped.
    pub(crate) async fn decrypt_raw_batch(
        &self,
        docs: &[&bson::RawDocument],
    ) -> Result<Vec<Option<Zeroizing<Vec<u8>>>>, Error> {
        let Some(scan) = super::fast_path::scan_batch(docs) else {
            return Ok(self
                .decrypt_raw_documents(docs)
                .await?
                .into_iter()
                .map(|d| Some(Zeroizing::new(d.into_bytes())))
                .collect());
        };
        // The same refs, asked for the same number of documents, as the
        // full path: the same key-vault query and audit event.
        let keys = self.keys_to_decrypt(&scan.refs, docs.len()).await?;
        let encrypter = ExplicitEncrypter::new(keys);
        // Every document before any is deserialized, in order, as the full
        // path does: the first error is the same one.
        docs.iter()
            .zip(&scan.encrypted)
            .map(
                |(d, &encrypted)| -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
                    if encrypted == 0 {
                        return Ok(None);
                    }
                    let plain = encrypter.decrypt_raw_document_measured(d, encrypted)?;
                    Ok(Some(Zeroizing::new(plain.into_bytes())))
                },
            )
            .collect()
    }

    /// The keys for `refs` (one key-vault query for the missing ones),
    /// ready for a synchronous encrypt or decrypt.
    pub(crate) async fn resolved(&self, refs: &[KeyRef]) -> Result<ResolvedKeys, Error> {
        let keys = self.data_keys(refs).await?;
        Ok(ResolvedKeys(refs.iter().cloned().zip(keys).collect()))
    }

    /// Adds `more` (the client-layer keys of QE indexed values that
    /// `keys` lacks, named only inside their server layers) to `keys`,
    /// asking the audit sink about them first, as libmongocrypt fetches
    /// them in a second round. libmongocrypt writes both layers under one
    /// key, so `more` is usually empty and nothing is asked.
    async fn add_client_layer_keys(
        &self,
        keys: &mut ResolvedKeys,
        more: &[KeyRef],
        documents: usize,
    ) -> Result<(), Error> {
        if more.is_empty() {
            return Ok(());
        }
        let extra = self.keys_to_decrypt(more, documents).await?;
        keys.0.extend(extra.0);
        Ok(())
    }

    /// The keys for a decryption of `documents` documents, after the audit
    /// sink (if any) accepted it. Nothing to decrypt asks no one.
    async fn keys_to_decrypt(
        &self,
        refs: &[KeyRef],
        documents: usize,
    ) -> Result<ResolvedKeys, Error> {
        let keys = self.resolved(refs).await?;
        if let Some(sink) = &self.audit
            && !refs.is_empty()
        {
            let audited: Vec<AuditedKey> = refs
                .iter()
                .filter_map(|r| match r {
                    KeyRef::Id(id) => Some(AuditedKey {
                        id: *id,
                        provider: self.cache.provider_of(*id),
                    }),
                    KeyRef::AltName(_) => None,
                })
                .collect();
            sink.before_decrypt(&DecryptionEvent {
                keys: &audited,
                documents,
            })?;
        }
        Ok(keys)
    }

    /// The `$jsonSchema` of a type deriving [`Encrypted`](crate::Encrypted),
    /// its key alternate names resolved to key ids through the key vault
    /// (one query). It is what
    /// [`EncryptedDatabase::typed_collection`](crate::EncryptedDatabase::typed_collection)
    /// registers, and what a MongoDB server takes as a collection's
    /// `validator: {$jsonSchema: …}`.
    pub async fn json_schema<T: crate::Encrypted>(&self) -> Result<Document, Error> {
        let template = T::schema_template();
        let names: Vec<String> = template
            .key_alt_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut ids = HashMap::new();
        if !names.is_empty() {
            for key in self.vault.find_keys(&[], &names).await? {
                for n in key.key_alt_names {
                    ids.insert(n, key.id);
                }
            }
        }
        Ok(template.to_json_schema(&|n| ids.get(n).copied())?)
    }

    /// The key document with this id.
    pub async fn get_key(&self, id: KeyId) -> Result<Option<KeyDocument>, Error> {
        Ok(self.vault.find_keys(&[id], &[]).await?.into_iter().next())
    }

    /// The key document with this alternate name.
    pub async fn get_key_by_alt_name(&self, name: &str) -> Result<Option<KeyDocument>, Error> {
        Ok(self
            .vault
            .find_keys(&[], &[name.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// Every key document, as a [`Cursor`] (a stream of
    /// `Result<KeyDocument, Error>`).
    pub async fn get_keys(&self) -> Result<Cursor<'static, KeyDocument>, Error> {
        let s = self.vault.find_matching(Document::new()).await?;
        Ok(Cursor::new(Box::pin(s.map_err(Error::from))))
    }

    /// Checks that the key documents matching `filter` (an empty document:
    /// all of them) unwrap through this client's KMS providers, each into a
    /// valid data key; returns how many were checked. A wrong master key, a
    /// provider missing from the KMS providers, a master key or KMS host
    /// the allow-lists refuse, or a KMS the application cannot reach is
    /// found now rather than at the first encryption or decryption that
    /// needs the key.
    ///
    /// The first key that does not unwrap fails the check with
    /// [`keyvault::Error::Unwrap`] (or
    /// [`BadKeyMaterial`](keyvault::Error::BadKeyMaterial)) naming its id,
    /// never its material. Keys are unwrapped as they are read, up to 8 at
    /// once, and the read stops at the first failure. At most 10,000 key
    /// documents are read: the 10,001st fails the check with
    /// [`keyvault::Error::TooManyKeysToVerify`] (the keys before it were
    /// unwrapped); verify such a vault in parts. Key documents are not
    /// collected first, so a hostile vault cannot make the check hold
    /// thousands of them at once. The unwrapped keys are not cached (each
    /// is unwrapped again at its first use), and nothing is decrypted, so
    /// the audit sink is not asked.
    ///
    /// A key vault shared with applications that use other master keys is
    /// verified by filter, e.g. `doc! {"masterKey.provider": "aws:billing"}`
    /// (a file or memory key vault evaluates field equality, `$eq`, `$ne`,
    /// `$in`, `$nin`, `$exists`, `$and`, `$or` and `$nor`, and refuses any
    /// other operator).
    ///
    /// ```no_run
    /// # async fn run(encryption: csfle::ClientEncryption) -> Result<(), csfle::Error> {
    /// let checked = encryption.verify_keys(bson::doc! {}).await?;
    /// println!("{checked} data keys unwrap");
    /// # Ok(()) }
    /// ```
    pub async fn verify_keys(&self, filter: Document) -> Result<u64, Error> {
        use futures_util::StreamExt;
        let kms = &self.kms;
        // Each key is unwrapped as it comes, and counted; the stream is not
        // pulled past the bound, and the key past it fails the check.
        let checked = self
            .vault
            .find_matching(filter)
            .await?
            .take(MAX_KEYS_TO_VERIFY + 1)
            .enumerate()
            .map(|(index, key)| async move {
                if index >= MAX_KEYS_TO_VERIFY {
                    return Err(keyvault::Error::TooManyKeysToVerify {
                        limit: MAX_KEYS_TO_VERIFY,
                    });
                }
                let k = key?;
                let material = kms
                    .unwrap_key_document(&k)
                    .await
                    .map_err(|source| keyvault::Error::Unwrap { id: k.id, source })?;
                // Built and dropped (zeroized) at once: the material must
                // be a data key, not merely decrypt.
                DataKey::new(k.id, &material)
                    .map_err(|source| keyvault::Error::BadKeyMaterial { id: k.id, source })?;
                Ok::<(), keyvault::Error>(())
            })
            .buffer_unordered(VERIFY_CONCURRENCY)
            .try_fold(
                0u64,
                |n, ()| async move { Ok::<u64, keyvault::Error>(n + 1) },
            )
            .await?;
        tracing::debug!(keys = checked, "data keys verified");
        Ok(checked)
    }

    /// Deletes a key document (and drops it from the cache); returns the
    /// number deleted.
    pub async fn delete_key(&self, id: KeyId) -> Result<u64, Error> {
        let n = self.vault.delete_key(id).await?;
        self.cache.evict(id);
        Ok(n)
    }

    /// Adds an alternate name; returns the key document as it was before.
    pub async fn add_key_alt_name(
        &self,
        id: KeyId,
        name: &str,
    ) -> Result<Option<KeyDocument>, Error> {
        Ok(self.vault.add_key_alt_name(id, name).await?)
    }

    /// Removes an alternate name; returns the key document as it was before.
    pub async fn remove_key_alt_name(
        &self,
        id: KeyId,
        name: &str,
    ) -> Result<Option<KeyDocument>, Error> {
        let before = self.vault.remove_key_alt_name(id, name).await?;
        // The cached name → id mapping must not outlive the name.
        self.cache.evict(id);
        Ok(before)
    }

    /// Re-wraps every key matching `filter`: unwraps each with its current
    /// provider and wraps it with `options.provider` (or, without options,
    /// its current provider again), then writes them all in one bulk write.
    /// The data keys themselves do not change, so existing ciphertexts stay
    /// readable.
    pub async fn rewrap_many_data_key(
        &self,
        filter: Document,
        options: Option<RewrapOptions>,
    ) -> Result<RewrapResult, Error> {
        let keys: Vec<KeyDocument> = self
            .vault
            .find_matching(filter)
            .await?
            .try_collect()
            .await?;
        let mut updates = Vec::with_capacity(keys.len());
        for k in &keys {
            let material = self
                .kms
                .unwrap_key_document(k)
                .await
                .map_err(|source| keyvault::Error::Unwrap { id: k.id, source })?;
            // Without options, wrap again under the key's own master key.
            let current = k.master_key.to_document();
            let (provider, master_key) = match &options {
                Some(o) => (&o.provider, o.master_key.as_ref()),
                None => (k.master_key.provider(), Some(&current)),
            };
            let (master_key, key_material) =
                self.kms.wrap_key(provider, master_key, &material).await?;
            updates.push(KeyMaterialUpdate {
                id: k.id,
                master_key,
                key_material,
            });
        }
        let modified = self.vault.update_key_materials(&updates).await?;
        for k in &keys {
            self.cache.evict(k.id);
        }
        tracing::info!(matched = keys.len(), modified, "data keys rewrapped");
        Ok(RewrapResult {
            matched: keys.len() as u64,
            modified,
        })
    }
}
