//! [`KmsProvider`], what every KMS provider implements.

use super::Error;
use crate::key::{Endpoint, MasterKey};
use futures_util::future::BoxFuture;
use std::fmt;
use zeroize::Zeroizing;

/// A key management service that wraps and unwraps data-key material.
///
/// Implemented by [`LocalMasterKey`](super::LocalMasterKey); the cloud
/// providers implement it over their HTTP APIs, and tests implement it to
/// replay recorded replies.
/// Implementations must never put key material or credentials in errors.
pub trait KmsProvider: Send + Sync + fmt::Debug {
    /// Encrypts `data_key` under `master_key`, returning the `keyMaterial`.
    fn wrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>>;

    /// Decrypts `key_material` that was wrapped under `master_key`.
    fn unwrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>>;

    /// Encrypts `data_key` for a new key document and returns the
    /// `masterKey` to store with the `keyMaterial`: `master_key` itself
    /// (the default), or completed by the provider. A KMIP provider given
    /// no `keyId` makes a new object on the server and stores its id.
    fn wrap_new_key<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<(MasterKey, Vec<u8>), Error>> {
        Box::pin(async move {
            let wrapped = self.wrap(master_key, data_key).await?;
            Ok((master_key.clone(), wrapped))
        })
    }

    /// The endpoint the application configured for this provider (a KMIP
    /// server's `kmsProviders` endpoint, with its port), which key
    /// documents may name without an allow-list entry. None by default.
    fn configured_endpoint(&self) -> Option<&Endpoint> {
        None
    }
}
