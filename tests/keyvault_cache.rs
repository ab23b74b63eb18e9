//! The data-key cache and ClientEncryption over the in-memory key vault:
//! single flight under concurrency, TTL, size bound, deletion, rewrap.

#[path = "common/recording_vault.rs"]
mod recording_vault;

use bson::Bson;
use csfle::keyvault::{Clock, KeyCacheOptions, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyId, KeyRef, RewrapOptions};
use recording_vault::RecordingKeyVault;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn kms(names: &[(&str, u8)]) -> KmsProviders {
    names.iter().fold(KmsProviders::new(), |k, (name, byte)| {
        k.with_local(
            ProviderName::parse(name).unwrap(),
            LocalMasterKey::new(&[*byte; 96]).unwrap(),
        )
    })
}

async fn client_with_keys(
    n: usize,
    options: KeyCacheOptions,
) -> (Arc<ClientEncryption>, Vec<KeyId>, RecordingKeyVault) {
    client_with_keys_on(n, options, Clock::system()).await
}

/// [`client_with_keys`] whose cache expires keys by `clock`: the tests of
/// the time to live move a manual clock instead of sleeping, so a busy
/// machine cannot stretch a "within the TTL" step past the TTL.
async fn client_with_keys_on(
    n: usize,
    options: KeyCacheOptions,
    clock: Clock,
) -> (Arc<ClientEncryption>, Vec<KeyId>, RecordingKeyVault) {
    // The vault is a handle: the test keeps one to read its query log.
    let vault = RecordingKeyVault::new();
    let ce = ClientEncryption::with_cache_options(vault.clone(), kms(&[("local", 1)]), options)
        .with_clock(clock);
    let local = ProviderName::parse("local").unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let opts = DataKeyOptions::default().with_key_alt_names([format!("key{i}")]);
        ids.push(ce.create_data_key(&local, opts).await.unwrap());
    }
    (Arc::new(ce), ids, vault)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_over_ten_keys_fetch_each_key_once() {
    let (ce, ids, vault) = client_with_keys(10, KeyCacheOptions::default()).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (ce, barrier) = (Arc::clone(&ce), Arc::clone(&barrier));
            let id = ids[t % 10];
            tokio::spawn(async move {
                barrier.wait().await;
                let ct = ce
                    .encrypt(
                        &Bson::from(format!("task {t}")),
                        &KeyRef::Id(id),
                        Algorithm::Random,
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    ce.decrypt(&ct).await.unwrap(),
                    Bson::from(format!("task {t}"))
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = ce.cache_stats();
    // Exactly one KMS unwrap per key, and each key id in exactly one query.
    assert_eq!(stats.unwraps, 10, "{stats:?}");
    let mut per_id: HashMap<KeyId, usize> = HashMap::new();
    for (qids, _) in vault.queries() {
        for id in qids {
            *per_id.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_id.len(), 10);
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");
    assert_eq!(
        stats.hits + stats.misses,
        128,
        "64 encrypts + 64 decrypts: {stats:?}"
    );
    println!(
        "64 tasks over 10 keys: {} key-vault queries, {} unwraps, {} hits, {} misses",
        stats.queries, stats.unwraps, stats.hits, stats.misses
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alt_name_requests_are_single_flight_too() {
    let (ce, _, _) = client_with_keys(3, KeyCacheOptions::default()).await;
    let tasks: Vec<_> = (0..30)
        .map(|t| {
            let ce = Arc::clone(&ce);
            tokio::spawn(async move {
                ce.encrypt(
                    &Bson::from("x"),
                    &KeyRef::AltName(format!("key{}", t % 3)),
                    Algorithm::Deterministic,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ce.cache_stats().unwraps, 3);
}

#[tokio::test]
async fn ttl_expiry_refetches() {
    let clock = Clock::manual();
    let (ce, ids, _) = client_with_keys_on(
        1,
        KeyCacheOptions::default()
            .with_ttl(Duration::from_secs(60))
            .with_max_keys(10),
        clock.clone(),
    )
    .await;
    let id = ids[0];
    let enc = |ce: Arc<ClientEncryption>| async move {
        ce.encrypt(&Bson::from("v"), &KeyRef::Id(id), Algorithm::Random)
            .await
            .unwrap()
    };
    enc(Arc::clone(&ce)).await;
    clock.advance(Duration::from_secs(59));
    enc(Arc::clone(&ce)).await;
    assert_eq!((ce.cache_stats().unwraps, ce.cache_stats().hits), (1, 1));
    clock.advance(Duration::from_secs(2));
    enc(Arc::clone(&ce)).await;
    let s = ce.cache_stats();
    assert_eq!((s.unwraps, s.evictions), (2, 1), "{s:?}");
}

#[tokio::test]
async fn zero_ttl_never_expires() {
    let clock = Clock::manual();
    let (ce, ids, _) = client_with_keys_on(
        1,
        KeyCacheOptions::default()
            .with_ttl(Duration::ZERO)
            .with_max_keys(10),
        clock.clone(),
    )
    .await;
    for _ in 0..3 {
        ce.encrypt(&Bson::from("v"), &KeyRef::Id(ids[0]), Algorithm::Random)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(86_400));
    }
    assert_eq!(ce.cache_stats().unwraps, 1);
}

#[tokio::test]
async fn size_bound_evicts_least_recently_used() {
    let (ce, ids, _) = client_with_keys(
        5,
        KeyCacheOptions::default()
            .with_ttl(Duration::ZERO)
            .with_max_keys(3),
    )
    .await;
    for id in &ids {
        ce.encrypt(&Bson::from("v"), &KeyRef::Id(*id), Algorithm::Random)
            .await
            .unwrap();
    }
    assert_eq!(ce.cache_stats().evictions, 2);
    // The last three are cached; the first must be fetched again.
    ce.encrypt(&Bson::from("v"), &KeyRef::Id(ids[4]), Algorithm::Random)
        .await
        .unwrap();
    assert_eq!(ce.cache_stats().unwraps, 5);
    ce.encrypt(&Bson::from("v"), &KeyRef::Id(ids[0]), Algorithm::Random)
        .await
        .unwrap();
    assert_eq!(ce.cache_stats().unwraps, 6);
}

#[tokio::test]
async fn deleted_key_is_gone_from_the_cache() {
    let (ce, ids, _) = client_with_keys(1, KeyCacheOptions::default()).await;
    let ct = ce
        .encrypt(&Bson::from("v"), &KeyRef::Id(ids[0]), Algorithm::Random)
        .await
        .unwrap();
    assert_eq!(ce.delete_key(ids[0]).await.unwrap(), 1);
    let err = ce.decrypt(&ct).await.unwrap_err();
    assert!(err.to_string().contains("no data key with id"), "{err}");
    assert_eq!(ce.delete_key(ids[0]).await.unwrap(), 0);
}

#[tokio::test]
async fn missing_keys_are_typed_errors_and_not_refetched_in_a_loop() {
    let (ce, _, vault) = client_with_keys(1, KeyCacheOptions::default()).await;
    let err = ce
        .encrypt(
            &Bson::from("v"),
            &KeyRef::AltName("nope".into()),
            Algorithm::Random,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            csfle::Error::KeyVault(csfle::keyvault::Error::AltNameNotFound(_))
        ),
        "{err:?}"
    );
    assert_eq!(vault.queries().len(), 1);
    // A disallowed type fails before any key-vault query.
    let err = ce
        .encrypt(
            &Bson::Null,
            &KeyRef::AltName("nope".into()),
            Algorithm::Random,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, csfle::Error::Ciphertext(_)));
    assert_eq!(vault.queries().len(), 1);
}

#[tokio::test]
async fn rewrap_between_local_master_keys_keeps_old_ciphertexts_readable() {
    let both = || kms(&[("local:old", 1), ("local:new", 2)]);
    let vault = MemoryKeyVault::new();
    let ce = ClientEncryption::new(vault, both());
    let old = ProviderName::parse("local:old").unwrap();
    let id = ce
        .create_data_key(&old, DataKeyOptions::default())
        .await
        .unwrap();
    let ct = ce
        .encrypt(
            &Bson::from("test"),
            &KeyRef::Id(id),
            Algorithm::Deterministic,
        )
        .await
        .unwrap();
    let r = ce
        .rewrap_many_data_key(
            bson::doc! {},
            Some(RewrapOptions::new(
                ProviderName::parse("local:new").unwrap(),
            )),
        )
        .await
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    let doc = ce.get_key(id).await.unwrap().unwrap();
    assert_eq!(doc.master_key.provider().to_string(), "local:new");
    assert_eq!(ce.decrypt(&ct).await.unwrap(), Bson::from("test"));
    let again = ce
        .encrypt(
            &Bson::from("test"),
            &KeyRef::Id(id),
            Algorithm::Deterministic,
        )
        .await
        .unwrap();
    assert_eq!(again, ct, "same data key, same deterministic ciphertext");
}

/// A key vault under an attacker's control: every query returns every
/// document it holds, whatever was asked.
#[derive(Debug)]
struct HostileVault(Vec<csfle::keyvault::KeyDocument>);

use futures_util::future::BoxFuture;

type VaultResult<T> = Result<T, csfle::keyvault::Error>;

impl csfle::keyvault::KeyVault for HostileVault {
    fn find_keys<'a>(
        &'a self,
        _ids: &'a [KeyId],
        _names: &'a [String],
    ) -> BoxFuture<'a, VaultResult<Vec<csfle::keyvault::KeyDocument>>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
    fn find_matching<'a>(
        &'a self,
        _filter: bson::Document,
    ) -> BoxFuture<
        'a,
        VaultResult<
            futures_util::stream::BoxStream<'static, VaultResult<csfle::keyvault::KeyDocument>>,
        >,
    > {
        Box::pin(async move {
            let keys: futures_util::stream::BoxStream<'static, _> = Box::pin(
                futures_util::stream::iter(self.0.clone().into_iter().map(Ok)),
            );
            Ok(keys)
        })
    }
    fn insert_key<'a>(
        &'a self,
        _key: &'a csfle::keyvault::KeyDocument,
    ) -> BoxFuture<'a, VaultResult<()>> {
        Box::pin(async move {
            Err(csfle::keyvault::Error::UnsupportedFilter(
                "read-only".into(),
            ))
        })
    }
    fn delete_key<'a>(&'a self, _id: KeyId) -> BoxFuture<'a, VaultResult<u64>> {
        Box::pin(async move { Ok(0) })
    }
    fn add_key_alt_name<'a>(
        &'a self,
        _id: KeyId,
        _name: &'a str,
    ) -> BoxFuture<'a, VaultResult<Option<csfle::keyvault::KeyDocument>>> {
        Box::pin(async move { Ok(None) })
    }
    fn remove_key_alt_name<'a>(
        &'a self,
        _id: KeyId,
        _name: &'a str,
    ) -> BoxFuture<'a, VaultResult<Option<csfle::keyvault::KeyDocument>>> {
        Box::pin(async move { Ok(None) })
    }
    fn update_key_materials<'a>(
        &'a self,
        _updates: &'a [csfle::keyvault::KeyMaterialUpdate],
    ) -> BoxFuture<'a, VaultResult<u64>> {
        Box::pin(async move { Ok(0) })
    }
    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, VaultResult<()>> {
        Box::pin(async move { Ok(()) })
    }
}

/// Key documents made by a real client, to be served by a hostile vault.
async fn documents(alt_names: &[&[&str]]) -> Vec<csfle::keyvault::KeyDocument> {
    let mut out = Vec::new();
    for names in alt_names {
        // One vault per key, so the same alt name can be on several keys.
        let ce = ClientEncryption::new(MemoryKeyVault::new(), kms(&[("local", 1)]));
        let id = ce
            .create_data_key(
                &ProviderName::parse("local").unwrap(),
                DataKeyOptions::default().with_key_alt_names(names.iter().map(|s| s.to_string())),
            )
            .await
            .unwrap();
        out.push(ce.get_key(id).await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn documents_not_asked_for_are_neither_unwrapped_nor_cached() {
    let docs = documents(&[&["a"], &["b"], &["c"]]).await;
    let (a, b) = (docs[0].id, docs[1].id);
    let ce = ClientEncryption::new(HostileVault(docs), kms(&[("local", 1)]));
    ce.encrypt(&Bson::from("x"), &KeyRef::Id(a), Algorithm::Random)
        .await
        .unwrap();
    let stats = ce.cache_stats();
    assert_eq!(stats.unwraps, 1, "only the key asked for: {stats:?}");
    // The key not asked for was not cached: using it is a new query.
    ce.encrypt(&Bson::from("x"), &KeyRef::Id(b), Algorithm::Random)
        .await
        .unwrap();
    let stats = ce.cache_stats();
    assert_eq!((stats.queries, stats.unwraps), (2, 2), "{stats:?}");
}

#[tokio::test]
async fn one_alt_name_on_two_keys_is_an_error() {
    let docs = documents(&[&["shared", "a"], &["shared"]]).await;
    let ce = ClientEncryption::new(HostileVault(docs), kms(&[("local", 1)]));
    let e = ce
        .encrypt(
            &Bson::from("x"),
            &KeyRef::AltName("shared".into()),
            Algorithm::Random,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate keyAltNames"), "{e}");
    // Nothing was unwrapped or cached from that reply.
    assert_eq!(ce.cache_stats().unwraps, 0);
    // Asked by its other name, the first key is the only one asked for
    // (the second is dropped, unread), so it works.
    ce.encrypt(
        &Bson::from("x"),
        &KeyRef::AltName("a".into()),
        Algorithm::Random,
    )
    .await
    .unwrap();
    assert_eq!(ce.cache_stats().unwraps, 1);
}

/// A key deleted behind the client's back (another process, the database)
/// keeps working only until its cache entry expires.
#[tokio::test]
async fn a_key_deleted_elsewhere_stops_working_after_the_ttl() {
    let options = KeyCacheOptions::default().with_ttl(Duration::from_secs(60));
    let clock = Clock::manual();
    let (ce, ids, _) = client_with_keys_on(1, options, clock.clone()).await;
    let ct = ce
        .encrypt(&Bson::from("x"), &KeyRef::Id(ids[0]), Algorithm::Random)
        .await
        .unwrap();
    // Not through `ce.delete_key`, which would evict the key at once.
    assert_eq!(ce.key_vault().delete_key(ids[0]).await.unwrap(), 1);
    clock.advance(Duration::from_secs(59));
    assert_eq!(ce.decrypt(&ct).await.unwrap(), Bson::from("x"));
    clock.advance(Duration::from_secs(2));
    let e = ce.decrypt(&ct).await.unwrap_err().to_string();
    assert!(e.contains("no data key"), "{e}");
}

#[test]
fn key_ring_entries_expire_like_the_cache() {
    use csfle::keyvault::{KeyDocument, KeyRing};
    let kms = kms(&[("local", 1)]);
    let local = ProviderName::parse("local").unwrap();
    let (master_key, material) = kms.wrap_key_local(&local, &[5u8; 96]).unwrap();
    let id = KeyId::from_bytes([3; 16]);
    let doc = KeyDocument::from_document(&bson::doc! {
        "_id": Bson::Binary(id.to_binary()),
        "keyMaterial": Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: material }),
        "creationDate": bson::DateTime::now(),
        "updateDate": bson::DateTime::now(),
        "status": 0,
        "masterKey": master_key.to_document(),
    })
    .unwrap();
    let clock = Clock::manual();
    let ring = KeyRing::new([doc], kms)
        .unwrap()
        .with_cache_options(KeyCacheOptions::default().with_ttl(Duration::from_secs(60)))
        .with_clock(clock.clone());
    ring.data_key(id).unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(ring.is_unwrapped(id));
    clock.advance(Duration::from_secs(2));
    assert!(!ring.is_unwrapped(id), "dropped after the TTL");
    ring.data_key(id).unwrap();
    assert!(ring.is_unwrapped(id), "unwrapped again on use");
}
