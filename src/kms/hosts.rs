//! The hosts and ports a provider connects to when a master key names
//! none, and the host a key operation connects to.

use crate::key::MasterKey;

/// The port of a KMIP endpoint that names none.
pub(crate) const KMIP_DEFAULT_PORT: u16 = crate::key::KMIP_DEFAULT_PORT;

/// GCP Cloud KMS's host, for master keys that name no endpoint.
pub(crate) const GCP_KMS_HOST: &str = "cloudkms.googleapis.com";

/// AWS KMS's regional host, for master keys that name no endpoint.
pub(crate) fn aws_kms_host(region: &str) -> String {
    format!("kms.{region}.amazonaws.com")
}

/// The `host[:port]` a key operation for `master_key` connects to, as
/// written (the provider's default host when the key names none); `None`
/// for keys that need no connection or take their endpoint from
/// `kmsProviders` only.
pub(super) fn key_operation_host(master_key: &MasterKey) -> Option<String> {
    match master_key {
        MasterKey::Local { .. } => None,
        MasterKey::Aws {
            region, endpoint, ..
        } => Some(endpoint.clone().unwrap_or_else(|| aws_kms_host(region))),
        MasterKey::Azure {
            key_vault_endpoint, ..
        } => Some(key_vault_endpoint.clone()),
        MasterKey::Gcp { endpoint, .. } => {
            Some(endpoint.clone().unwrap_or_else(|| GCP_KMS_HOST.to_owned()))
        }
        MasterKey::Kmip { endpoint, .. } => endpoint.clone(),
    }
}
