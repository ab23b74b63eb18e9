//! KMS providers: who wraps and unwraps data-key material.
//!
//! Providers are configured with the drivers' `kmsProviders` document, e.g.
//! `{"local": {"key": <96 bytes>}, "local:backup": {"key": …}}`. A provider is
//! named by its kind and an optional name after a colon, as in the
//! specification's named KMS providers.

mod allowed;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
mod client_key;
mod error;
#[cfg(feature = "gcp")]
mod gcp;
mod hosts;
mod http;
#[cfg(feature = "kmip")]
pub mod kmip;
mod local;
mod provider;
// `pub(crate)`: the crate root re-exports `create_data_key` from here.
pub(crate) mod providers;

pub use allowed::{AllowedMasterKeys, same_master_key};
#[cfg(feature = "aws")]
pub use aws::AwsKms;
#[cfg(feature = "azure")]
pub use azure::AzureKms;
#[cfg(feature = "gcp")]
pub use gcp::GcpKms;
pub use http::{RetryPolicy, TlsOptions};
#[cfg(feature = "kmip")]
pub use kmip::KmipKms;
pub use local::LocalMasterKey;
pub use provider::KmsProvider;
pub use providers::{KmsProviders, ProviderOptions, wipe_document};

pub use crate::key::{
    AllowedHosts, Endpoint, EndpointError, EndpointOrigin, MasterKey, ProviderKind, ProviderName,
};
pub use error::Error;
pub(crate) use hosts::KMIP_DEFAULT_PORT;
// For `allowed`, which checks the host a key operation connects to.
use hosts::key_operation_host;
