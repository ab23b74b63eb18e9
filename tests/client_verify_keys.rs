//! `verify_keys`: a key vault whose keys the KMS providers do not unwrap
//! fails when the client is built, not at the first operation. No server:
//! the key vault is in memory, and building a client does not connect.

use bson::doc;
use csfle::keyvault::{KeyDocument, KeyMaterialUpdate, KeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::{ClientEncryption, DataKeyOptions, EncryptedClient, KeyId};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Local master keys of 96 copies of a byte, by provider name.
fn kms(names: &[(&str, u8)]) -> KmsProviders {
    names.iter().fold(KmsProviders::new(), |k, (name, byte)| {
        k.with_local(
            ProviderName::parse(name).unwrap(),
            LocalMasterKey::new(&[*byte; 96]).unwrap(),
        )
    })
}

/// A data key wrapped by `provider` (configured in `kms`), stored in `vault`.
async fn create_key(vault: &MemoryKeyVault, kms: KmsProviders, provider: &str) -> KeyId {
    ClientEncryption::new(vault.clone(), kms)
        .create_data_key(
            &ProviderName::parse(provider).unwrap(),
            DataKeyOptions::default(),
        )
        .await
        .unwrap()
}

/// A client that is never connected: the builder makes no round trip to
/// the server with an application key vault.
async fn unconnected() -> csfle::mongodb::Client {
    csfle::mongodb::Client::with_uri_str("mongodb://127.0.0.1:9")
        .await
        .unwrap()
}

async fn build(
    vault: &MemoryKeyVault,
    kms: KmsProviders,
    verify: bool,
) -> Result<EncryptedClient, csfle::Error> {
    EncryptedClient::builder(unconnected().await)
        .key_vault(vault.clone())
        .kms(kms)
        .verify_keys(verify)
        .build()
        .await
}

#[tokio::test]
async fn a_wrong_master_key_fails_the_build_with_verify_keys() {
    let vault = MemoryKeyVault::new();
    let id = create_key(&vault, kms(&[("local", 1)]), "local").await;

    // The wrong master key: built without verification, the client starts
    // and the first use of the key fails.
    let unverified = build(&vault, kms(&[("local", 2)]), false).await.unwrap();
    let e = unverified
        .client_encryption()
        .encrypt(
            &"x".into(),
            &csfle::KeyRef::Id(id),
            csfle::Algorithm::Random,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&id.to_string()), "{e}");

    // With verification, the build itself fails, naming the key.
    let e = build(&vault, kms(&[("local", 2)]), true)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&e, csfle::Error::KeyVault(csfle::keyvault::Error::Unwrap { id: failed, .. }) if *failed == id),
        "{e:?}"
    );
    let shown = format!("{e} {e:?}");
    assert!(shown.contains(&id.to_string()), "{shown}");
    // Neither master key nor the stored key material is in the error.
    let doc = ClientEncryption::new(vault.clone(), kms(&[("local", 1)]))
        .get_key(id)
        .await
        .unwrap()
        .unwrap();
    let material = common_b64(&doc.key_material);
    assert!(!shown.contains(&material[..24]), "{shown}");
    assert!(!shown.contains(&common_b64(&[2; 96])[..24]), "{shown}");

    // The right master key: verified and built.
    let client = build(&vault, kms(&[("local", 1)]), true).await.unwrap();
    client
        .client_encryption()
        .encrypt(
            &"x".into(),
            &csfle::KeyRef::Id(id),
            csfle::Algorithm::Random,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_provider_missing_from_the_kms_providers_fails_verification() {
    let vault = MemoryKeyVault::new();
    let both = kms(&[("local:a", 1), ("local:b", 2)]);
    create_key(&vault, both, "local:a").await;
    let b = create_key(&vault, kms(&[("local:b", 2)]), "local:b").await;
    let only_a = kms(&[("local:a", 1)]);

    let e = build(&vault, kms(&[("local:a", 1)]), true)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&e, csfle::Error::KeyVault(csfle::keyvault::Error::Unwrap { id, .. }) if *id == b),
        "{e:?}"
    );
    // This application's keys alone, by filter: verified.
    let ce = ClientEncryption::new(vault.clone(), only_a);
    assert_eq!(
        ce.verify_keys(doc! {"masterKey.provider": "local:a"})
            .await
            .unwrap(),
        1
    );
    assert!(ce.verify_keys(doc! {}).await.is_err());
    // An empty vault has nothing to refuse.
    let empty = ClientEncryption::new(MemoryKeyVault::new(), kms(&[("local", 1)]));
    assert_eq!(empty.verify_keys(doc! {}).await.unwrap(), 0);
}

/// A vault serving `copies` copies of one key document from `find_matching`
/// and counting how many the reader pulled.
#[derive(Debug)]
struct Copies {
    doc: KeyDocument,
    copies: usize,
    pulled: Arc<AtomicUsize>,
}

type VaultResult<T> = Result<T, csfle::keyvault::Error>;

impl KeyVault for Copies {
    fn find_keys<'a>(
        &'a self,
        _ids: &'a [KeyId],
        _names: &'a [String],
    ) -> BoxFuture<'a, VaultResult<Vec<KeyDocument>>> {
        Box::pin(async move { Ok(vec![self.doc.clone()]) })
    }
    fn find_matching<'a>(
        &'a self,
        _filter: bson::Document,
    ) -> BoxFuture<'a, VaultResult<BoxStream<'static, VaultResult<KeyDocument>>>> {
        let doc = self.doc.clone();
        let pulled = Arc::clone(&self.pulled);
        let copies = self.copies;
        Box::pin(async move {
            let keys: BoxStream<'static, _> =
                Box::pin(futures_util::stream::iter((0..copies).map(move |_| {
                    pulled.fetch_add(1, Ordering::Relaxed);
                    Ok(doc.clone())
                })));
            Ok(keys)
        })
    }
    fn insert_key<'a>(&'a self, _key: &'a KeyDocument) -> BoxFuture<'a, VaultResult<()>> {
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
    ) -> BoxFuture<'a, VaultResult<Option<KeyDocument>>> {
        Box::pin(async move { Ok(None) })
    }
    fn remove_key_alt_name<'a>(
        &'a self,
        _id: KeyId,
        _name: &'a str,
    ) -> BoxFuture<'a, VaultResult<Option<KeyDocument>>> {
        Box::pin(async move { Ok(None) })
    }
    fn update_key_materials<'a>(
        &'a self,
        _updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, VaultResult<u64>> {
        Box::pin(async move { Ok(0) })
    }
    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, VaultResult<()>> {
        Box::pin(async move { Ok(()) })
    }
}

/// A vault larger than one verification reads fails at the first key past
/// the bound, and is not read past it; keys are verified as they are read.
#[tokio::test]
async fn a_huge_vault_is_refused_unread() {
    let source = MemoryKeyVault::new();
    let id = create_key(&source, kms(&[("local", 1)]), "local").await;
    let doc = ClientEncryption::new(source, kms(&[("local", 1)]))
        .get_key(id)
        .await
        .unwrap()
        .unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let vault = Copies {
        doc: doc.clone(),
        copies: 25_000,
        pulled: Arc::clone(&pulled),
    };
    let e = EncryptedClient::builder(unconnected().await)
        .key_vault(vault)
        .kms(kms(&[("local", 1)]))
        .verify_keys(true)
        .build()
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            csfle::Error::KeyVault(csfle::keyvault::Error::TooManyKeysToVerify { limit: 10_000 })
        ),
        "{e:?}"
    );
    assert_eq!(pulled.load(Ordering::Relaxed), 10_001);

    // A key that does not unwrap stops the read at once: the key documents
    // are unwrapped as they come, never collected first.
    let pulled = Arc::new(AtomicUsize::new(0));
    let wrong_master_key = ClientEncryption::new(
        Copies {
            doc: doc.clone(),
            copies: 25_000,
            pulled: Arc::clone(&pulled),
        },
        kms(&[("local", 2)]),
    );
    let e = wrong_master_key.verify_keys(doc! {}).await.unwrap_err();
    assert!(
        matches!(&e, csfle::Error::KeyVault(csfle::keyvault::Error::Unwrap { id: failed, .. }) if *failed == id),
        "{e:?}"
    );
    // The first unwrap fails; at most the unwraps in flight (8) and the
    // stream's look-ahead were read.
    assert!(pulled.load(Ordering::Relaxed) <= 16, "{pulled:?}");

    // At the bound, the keys are unwrapped: the wrong master key is found
    // (after a few unwraps, not 10,000).
    let at_bound = ClientEncryption::new(
        Copies {
            doc,
            copies: 10_000,
            pulled: Arc::new(AtomicUsize::new(0)),
        },
        kms(&[("local", 2)]),
    );
    let e = at_bound.verify_keys(doc! {}).await.unwrap_err();
    assert!(
        matches!(&e, csfle::Error::KeyVault(csfle::keyvault::Error::Unwrap { id: failed, .. }) if *failed == id),
        "{e:?}"
    );
}

fn common_b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}
