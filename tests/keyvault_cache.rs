//! The data-key cache and ClientEncryption over the in-memory key vault:
//! single flight under concurrency, TTL, size bound, deletion, rewrap.

use bson::Bson;
use csfle::keyvault::{KeyCacheOptions, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyId, KeyRef, RewrapOptions};
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
) -> (Arc<ClientEncryption<MemoryKeyVault>>, Vec<KeyId>) {
    let ce =
        ClientEncryption::with_cache_options(MemoryKeyVault::new(), kms(&[("local", 1)]), options);
    let local = ProviderName::parse("local").unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let opts = DataKeyOptions {
            key_alt_names: vec![format!("key{i}")],
            ..Default::default()
        };
        ids.push(ce.create_data_key(&local, opts).await.unwrap());
    }
    (Arc::new(ce), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_over_ten_keys_fetch_each_key_once() {
    let (ce, ids) = client_with_keys(10, KeyCacheOptions::default()).await;
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
    for (qids, _) in ce.key_vault().queries() {
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
    let (ce, _) = client_with_keys(3, KeyCacheOptions::default()).await;
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
    let (ce, ids) = client_with_keys(
        1,
        KeyCacheOptions {
            ttl: Duration::from_millis(150),
            max_keys: 10,
        },
    )
    .await;
    let id = ids[0];
    let enc = |ce: Arc<ClientEncryption<MemoryKeyVault>>| async move {
        ce.encrypt(&Bson::from("v"), &KeyRef::Id(id), Algorithm::Random)
            .await
            .unwrap()
    };
    enc(Arc::clone(&ce)).await;
    enc(Arc::clone(&ce)).await;
    assert_eq!((ce.cache_stats().unwraps, ce.cache_stats().hits), (1, 1));
    tokio::time::sleep(Duration::from_millis(250)).await;
    enc(Arc::clone(&ce)).await;
    let s = ce.cache_stats();
    assert_eq!((s.unwraps, s.evictions), (2, 1), "{s:?}");
}

#[tokio::test]
async fn zero_ttl_never_expires() {
    let (ce, ids) = client_with_keys(
        1,
        KeyCacheOptions {
            ttl: Duration::ZERO,
            max_keys: 10,
        },
    )
    .await;
    for _ in 0..3 {
        ce.encrypt(&Bson::from("v"), &KeyRef::Id(ids[0]), Algorithm::Random)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ce.cache_stats().unwraps, 1);
}

#[tokio::test]
async fn size_bound_evicts_least_recently_used() {
    let (ce, ids) = client_with_keys(
        5,
        KeyCacheOptions {
            ttl: Duration::ZERO,
            max_keys: 3,
        },
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
    let (ce, ids) = client_with_keys(1, KeyCacheOptions::default()).await;
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
    let (ce, _) = client_with_keys(1, KeyCacheOptions::default()).await;
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
    assert_eq!(ce.key_vault().queries().len(), 1);
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
    assert_eq!(ce.key_vault().queries().len(), 1);
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
            Some(RewrapOptions {
                provider: ProviderName::parse("local:new").unwrap(),
                master_key: None,
            }),
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
