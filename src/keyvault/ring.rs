use super::{Clock, Error, KeyCacheOptions, KeyDocument};
use crate::crypto::DataKey;
use crate::key::KeyId;
use crate::kms::KmsProviders;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// An unwrapped key and when it expires (`None`: never).
type Unwrapped = (Arc<DataKey>, Option<Instant>);

/// Key documents plus the KMS providers that unwrap them, with each data key
/// unwrapped on first use and kept, ready, for the key cache's time to live
/// (60 s by default, as the `KeyCache` of `ClientEncryption`): after that the
/// unwrapped key is dropped (and zeroized once no operation uses it) and
/// unwrapped again on next use.
///
/// This is the synchronous, in-memory key source behind
/// [`ExplicitEncrypter`](crate::ExplicitEncrypter); it suits the embedded
/// default (file key vault, local master key) and tests.
#[derive(Debug)]
pub struct KeyRing {
    documents: HashMap<KeyId, KeyDocument>,
    alt_names: HashMap<String, KeyId>,
    providers: KmsProviders,
    ttl: Duration,
    /// What the time to live is measured by.
    clock: Clock,
    unwrapped: RwLock<HashMap<KeyId, Unwrapped>>,
}

impl KeyRing {
    /// Builds a ring. Duplicate ids or alternate names are refused.
    pub fn new(
        documents: impl IntoIterator<Item = KeyDocument>,
        providers: KmsProviders,
    ) -> Result<Self, Error> {
        let mut by_id = HashMap::new();
        let mut alt_names = HashMap::new();
        for doc in documents {
            for name in &doc.key_alt_names {
                if alt_names.insert(name.clone(), doc.id).is_some() {
                    return Err(Error::DuplicateAltName(name.clone()));
                }
            }
            let id = doc.id;
            if by_id.insert(id, doc).is_some() {
                return Err(Error::DuplicateKeyId(id));
            }
        }
        Ok(KeyRing {
            documents: by_id,
            alt_names,
            providers,
            ttl: KeyCacheOptions::default().ttl,
            clock: Clock::system(),
            unwrapped: RwLock::new(HashMap::new()),
        })
    }

    /// Keeps unwrapped keys for `options.ttl` (`Duration::ZERO`: for the
    /// life of the ring) instead of the default 60 s.
    pub fn with_cache_options(mut self, options: KeyCacheOptions) -> Self {
        self.ttl = options.ttl;
        self
    }

    /// Measures the time to live by `clock` instead of the system clock
    /// (a [`Clock::manual`] in tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The data key with this id, unwrapping it on first use and again
    /// after the time to live.
    pub fn data_key(&self, id: KeyId) -> Result<Arc<DataKey>, Error> {
        let now = self.clock.now();
        if let Some((k, expires)) = self.read_cache().get(&id)
            && expires.is_none_or(|t| t > now)
        {
            return Ok(Arc::clone(k));
        }
        let doc = self.documents.get(&id).ok_or(Error::KeyNotFound(id))?;
        let material = self
            .providers
            .unwrap_key_local(&doc.master_key, &doc.key_material)
            .map_err(|source| Error::Unwrap { id, source })?;
        let key = Arc::new(
            DataKey::new(id, &material).map_err(|source| Error::BadKeyMaterial { id, source })?,
        );
        let expires = (!self.ttl.is_zero()).then(|| now + self.ttl);
        let mut cache = self.unwrapped.write().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (_, e)| e.is_none_or(|t| t > now));
        let entry = cache.entry(id).or_insert((key, expires));
        Ok(Arc::clone(&entry.0))
    }

    /// Whether the key with this id is unwrapped and fresh.
    pub fn is_unwrapped(&self, id: KeyId) -> bool {
        self.read_cache()
            .get(&id)
            .is_some_and(|(_, e)| e.is_none_or(|t| t > self.clock.now()))
    }

    /// The data key with this alternate name.
    pub fn data_key_by_alt_name(&self, name: &str) -> Result<Arc<DataKey>, Error> {
        let id = *self
            .alt_names
            .get(name)
            .ok_or_else(|| Error::AltNameNotFound(name.into()))?;
        self.data_key(id)
    }

    /// The key document with this id.
    pub fn document(&self, id: KeyId) -> Option<&KeyDocument> {
        self.documents.get(&id)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyId, Unwrapped>> {
        // A poisoned lock only means another thread panicked mid-insert of an
        // Arc; the map itself is always consistent.
        self.unwrapped.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl crate::crypto::KeyLookup for KeyRing {
    fn data_key(&self, key: &crate::key::KeyRef) -> Result<Arc<DataKey>, crate::key::LookupError> {
        match key {
            crate::key::KeyRef::Id(id) => KeyRing::data_key(self, *id),
            crate::key::KeyRef::AltName(n) => self.data_key_by_alt_name(n),
        }
        .map_err(|e| e.into_lookup_error(key))
    }
}
