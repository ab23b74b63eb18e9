use super::DataKey;
use crate::key::{KeyRef, LookupError};
use std::sync::Arc;

/// A synchronous source of ready data keys: a
/// [`KeyRing`](crate::keyvault::KeyRing), the keys a
/// `ClientEncryption` fetched for one command, or
/// an application's own store.
pub trait KeyLookup {
    /// The data key a [`KeyRef`] names.
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, LookupError>;
}

impl<T: KeyLookup + ?Sized> KeyLookup for Arc<T> {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, LookupError> {
        (**self).data_key(key)
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for &T {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, LookupError> {
        (**self).data_key(key)
    }
}
