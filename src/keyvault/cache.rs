//! The cache of unwrapped data keys.

use super::{Clock, Error, KeyCacheOptions, KeyDocument, KeyVault};
use crate::crypto::DataKey;
use crate::key::ProviderName;
use crate::key::{KeyId, KeyRef};
use crate::kms::KmsProviders;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::watch;

/// Counters since the cache was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Key requests answered from the cache.
    pub hits: u64,
    /// Key requests that were not (fetched, or waited on another fetch).
    pub misses: u64,
    /// Key-vault queries sent.
    pub queries: u64,
    /// Key documents fetched and unwrapped (one KMS unwrap each).
    pub unwraps: u64,
    /// Keys dropped for age, size or explicitly.
    pub evictions: u64,
}

#[derive(Clone, Debug)]
enum Fetch {
    Pending,
    Done,
    /// The fetch's own error, which every waiter returns.
    Failed(Error),
}

struct Entry {
    key: Arc<DataKey>,
    alt_names: Vec<String>,
    /// The KMS provider that unwrapped it (for audit records).
    provider: ProviderName,
    expires: Option<Instant>,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    ready: HashMap<KeyId, Entry>,
    alt_names: HashMap<String, KeyId>,
    pending_ids: HashMap<KeyId, watch::Receiver<Fetch>>,
    pending_alts: HashMap<String, watch::Receiver<Fetch>>,
}

impl State {
    fn remove(&mut self, id: KeyId) -> bool {
        match self.ready.remove(&id) {
            Some(e) => {
                for n in e.alt_names {
                    if self.alt_names.get(&n) == Some(&id) {
                        self.alt_names.remove(&n);
                    }
                }
                true
            }
            None => false,
        }
    }
}

/// The key documents of a key-vault reply that answer the query for `ids`
/// and `alts`. The key vault is not trusted: documents that were not asked
/// for are dropped (never unwrapped, never cached), and two documents
/// claiming one alternate name are an error, as in libmongocrypt.
fn checked_reply(
    docs: Vec<KeyDocument>,
    ids: &[KeyId],
    alts: &[String],
) -> Result<Vec<KeyDocument>, Error> {
    let mut seen_ids = HashSet::new();
    let mut owner: HashMap<String, KeyId> = HashMap::new();
    let mut kept = Vec::with_capacity(docs.len());
    for doc in docs {
        let asked = ids.contains(&doc.id) || doc.key_alt_names.iter().any(|n| alts.contains(n));
        if !asked {
            tracing::warn!(key_id = %doc.id, "the key vault returned a key document that was not asked for; ignored");
            continue;
        }
        if !seen_ids.insert(doc.id) {
            return Err(Error::DuplicateKeyId(doc.id));
        }
        for n in &doc.key_alt_names {
            if let Some(other) = owner.insert(n.clone(), doc.id)
                && other != doc.id
            {
                return Err(Error::AmbiguousAltName(n.clone()));
            }
        }
        kept.push(doc);
    }
    Ok(kept)
}

/// Unwrapped data keys, shared by every operation of a client.
///
/// * **Single flight**: a key being fetched is waited for, not fetched again,
///   so concurrent requests for one key cost one key-vault query and one KMS
///   unwrap; a batch of missing keys is fetched with one query.
/// * **Bounded**: entries expire after the TTL and the least recently used is
///   evicted beyond `max_keys`. A dropped key zeroizes its key schedules once
///   the last operation using it ends.
/// * **Observable**: [`stats`](KeyCache::stats), and `tracing` events at
///   debug level with key ids and counts, never key bytes.
pub struct KeyCache {
    options: KeyCacheOptions,
    /// What the time to live is measured by.
    clock: Clock,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    queries: AtomicU64,
    unwraps: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Removes a fetch's pending markers if its owner is dropped mid-fetch, so
/// waiters retry instead of waiting forever.
struct FetchGuard<'c> {
    cache: &'c KeyCache,
    ids: Vec<KeyId>,
    alts: Vec<String>,
    tx: Option<watch::Sender<Fetch>>,
}

impl FetchGuard<'_> {
    fn clear_pending(&self, state: &mut State) {
        for id in &self.ids {
            state.pending_ids.remove(id);
        }
        for n in &self.alts {
            state.pending_alts.remove(n);
        }
    }

    fn finish(&mut self, state: &mut State, outcome: Fetch) {
        self.clear_pending(state);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let cache = self.cache;
            self.clear_pending(&mut cache.lock());
            // Dropping the sender wakes the waiters with "closed": they retry.
            self.tx = None;
        }
    }
}

/// Other requests' fetches to wait for, each with the indexes of the refs
/// it serves.
type Waits = Vec<(watch::Receiver<Fetch>, Vec<usize>)>;

/// What one pass of [`KeyCache::get`] left to do.
struct Pass<'c> {
    waits: Waits,
    /// This request's own fetch, when it has keys to fetch.
    fetch: Option<FetchGuard<'c>>,
    /// The indexes of the refs this request's fetch serves.
    owned: Vec<usize>,
}

/// Waits for other requests' fetches: the refs of one that completed are
/// settled (cached now, or known not to exist); one that failed fails this
/// request with its error.
async fn wait_for_fetches<'r>(
    waits: Waits,
    refs: &'r [KeyRef],
    settled: &mut HashSet<&'r KeyRef>,
) -> Result<(), Error> {
    for (mut rx, idx) in waits {
        // An error means the fetching request was dropped: the
        // next pass fetches again.
        if let Ok(state) = rx.wait_for(|f| !matches!(f, Fetch::Pending)).await {
            if let Fetch::Failed(e) = &*state {
                return Err(e.clone());
            }
            settled.extend(idx.iter().map(|&i| &refs[i]));
        }
    }
    Ok(())
}

impl KeyCache {
    /// An empty cache.
    pub fn new(options: KeyCacheOptions) -> Self {
        KeyCache {
            options,
            clock: Clock::system(),
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            unwraps: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Measures the time to live by `clock` instead of the system clock
    /// (a [`Clock::manual`] in tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is updated only in short critical sections that cannot
        // panic halfway; a poisoned lock still holds a consistent map.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            unwraps: self.unwraps.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Drops one key (after it was deleted or rewrapped).
    pub fn evict(&self, id: KeyId) {
        if self.lock().remove(id) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key_id = %id, "data key evicted");
        }
    }

    /// Drops every key.
    pub fn clear(&self) {
        let mut st = self.lock();
        let n = st.ready.len() as u64;
        st.ready.clear();
        st.alt_names.clear();
        self.evictions.fetch_add(n, Ordering::Relaxed);
    }

    /// A ready key for `r`, if cached and fresh. Expired entries are dropped.
    fn lookup(&self, st: &mut State, r: &KeyRef, now: Instant) -> Option<Arc<DataKey>> {
        let id = match r {
            KeyRef::Id(id) => *id,
            KeyRef::AltName(n) => *st.alt_names.get(n)?,
        };
        let expired = match st.ready.get_mut(&id) {
            None => return None,
            Some(e) if e.expires.is_some_and(|t| t <= now) => true,
            Some(e) => {
                e.last_used = now;
                return Some(Arc::clone(&e.key));
            }
        };
        if expired && st.remove(id) {
            self.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key_id = %id, "data key expired");
        }
        None
    }

    fn insert(&self, st: &mut State, doc: &KeyDocument, key: Arc<DataKey>, now: Instant) {
        st.remove(doc.id);
        for n in &doc.key_alt_names {
            st.alt_names.insert(n.clone(), doc.id);
        }
        let expires = (!self.options.ttl.is_zero()).then(|| now + self.options.ttl);
        st.ready.insert(
            doc.id,
            Entry {
                key,
                alt_names: doc.key_alt_names.clone(),
                provider: doc.master_key.provider().clone(),
                expires,
                last_used: now,
            },
        );
        while st.ready.len() > self.options.max_keys.max(1) {
            let Some(oldest) = st
                .ready
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            st.remove(oldest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key_id = %oldest, "data key evicted for size");
        }
    }

    /// The KMS provider that unwrapped the cached key `id`, if it is cached.
    pub fn provider_of(&self, id: KeyId) -> Option<ProviderName> {
        self.lock().ready.get(&id).map(|e| e.provider.clone())
    }

    /// The data keys for `refs`, in order, fetching the missing ones from
    /// `vault` in one query and unwrapping them with `kms`.
    pub async fn get(
        &self,
        vault: &dyn KeyVault,
        kms: &KmsProviders,
        refs: &[KeyRef],
    ) -> Result<Vec<Arc<DataKey>>, Error> {
        let mut out: Vec<Option<Arc<DataKey>>> = vec![None; refs.len()];
        // Refs whose fetch (ours or another request's) completed: if still
        // missing they do not exist, and are not fetched again.
        let mut settled: HashSet<&KeyRef> = HashSet::new();
        let mut first_pass = true;
        loop {
            let Pass {
                waits,
                fetch,
                owned,
            } = self.pass(refs, &mut out, &settled, first_pass)?;
            first_pass = false;
            if fetch.is_none() && waits.is_empty() {
                break;
            }
            if let Some(guard) = fetch {
                self.fetch_pending(vault, kms, guard).await?;
                settled.extend(owned.iter().map(|&i| &refs[i]));
            }
            wait_for_fetches(waits, refs, &mut settled).await?;
        }
        // The loop ends only once every ref has a key; stay typed regardless.
        out.into_iter()
            .zip(refs)
            .map(|(k, r)| k.ok_or_else(|| Error::not_found(r)))
            .collect()
    }

    /// One pass, under the lock, over the refs still without a key: a
    /// fresh cached key goes into `out`; a ref another request is fetching
    /// is waited for; the rest this request fetches. A ref that is settled
    /// and still missing does not exist. Hits and misses are counted on
    /// the `first_pass` only: once per ref of a request.
    fn pass(
        &self,
        refs: &[KeyRef],
        out: &mut [Option<Arc<DataKey>>],
        settled: &HashSet<&KeyRef>,
        first_pass: bool,
    ) -> Result<Pass<'_>, Error> {
        let mut waits: Waits = Vec::new();
        let mut owned: Vec<usize> = Vec::new();
        let mut st = self.lock();
        let now = self.clock.now();
        let (mut ids, mut alts) = (Vec::new(), Vec::new());
        for (i, r) in refs.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            if let Some(k) = self.lookup(&mut st, r, now) {
                if first_pass {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                out[i] = Some(k);
                continue;
            }
            if first_pass {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            let pending = match r {
                KeyRef::Id(id) => st.pending_ids.get(id),
                KeyRef::AltName(n) => st.pending_alts.get(n),
            };
            if let Some(rx) = pending {
                match waits.iter_mut().find(|(w, _)| w.same_channel(rx)) {
                    Some((_, idx)) => idx.push(i),
                    None => waits.push((rx.clone(), vec![i])),
                }
            } else if settled.contains(r) {
                return Err(Error::not_found(r));
            } else {
                owned.push(i);
                match r {
                    KeyRef::Id(id) if !ids.contains(id) => ids.push(*id),
                    KeyRef::AltName(n) if !alts.contains(n) => alts.push(n.clone()),
                    _ => {}
                }
            }
        }
        let fetch = self.start_fetch(&mut st, ids, alts);
        Ok(Pass {
            waits,
            fetch,
            owned,
        })
    }

    /// Marks `ids` and `alts` as being fetched by the caller, so that other
    /// requests wait for its fetch instead of fetching them again; `None`
    /// when there is nothing to fetch.
    fn start_fetch(
        &self,
        st: &mut State,
        ids: Vec<KeyId>,
        alts: Vec<String>,
    ) -> Option<FetchGuard<'_>> {
        if ids.is_empty() && alts.is_empty() {
            return None;
        }
        let (tx, rx) = watch::channel(Fetch::Pending);
        for id in &ids {
            st.pending_ids.insert(*id, rx.clone());
        }
        for n in &alts {
            st.pending_alts.insert(n.clone(), rx.clone());
        }
        Some(FetchGuard {
            cache: self,
            ids,
            alts,
            tx: Some(tx),
        })
    }

    /// Fetches and caches what `guard` marked as being fetched, then lets
    /// its waiters go: with the keys cached, or with the fetch's error,
    /// which is also this request's.
    async fn fetch_pending(
        &self,
        vault: &dyn KeyVault,
        kms: &KmsProviders,
        mut guard: FetchGuard<'_>,
    ) -> Result<(), Error> {
        let fetched = self.fetch(vault, kms, &guard.ids, &guard.alts).await;
        let mut st = self.lock();
        match fetched {
            Ok(keys) => {
                let now = self.clock.now();
                for (doc, key) in keys {
                    self.insert(&mut st, &doc, key, now);
                }
                guard.finish(&mut st, Fetch::Done);
                Ok(())
            }
            Err(e) => {
                guard.finish(&mut st, Fetch::Failed(e.clone()));
                Err(e)
            }
        }
    }

    async fn fetch(
        &self,
        vault: &dyn KeyVault,
        kms: &KmsProviders,
        ids: &[KeyId],
        alts: &[String],
    ) -> Result<Vec<(KeyDocument, Arc<DataKey>)>, Error> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            ids = ids.len(),
            alt_names = alts.len(),
            "fetching data keys from the key vault"
        );
        let docs = vault.find_keys(ids, alts).await?;
        let docs = checked_reply(docs, ids, alts)?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            let id = doc.id;
            let material = kms
                .unwrap_key_document(&doc)
                .await
                .map_err(|source| Error::Unwrap { id, source })?;
            self.unwraps.fetch_add(1, Ordering::Relaxed);
            let key = DataKey::new(id, &material)
                .map_err(|source| Error::BadKeyMaterial { id, source })?;
            tracing::debug!(key_id = %id, provider = %doc.master_key.provider(), "data key unwrapped");
            out.push((doc, Arc::new(key)));
        }
        Ok(out)
    }
}
