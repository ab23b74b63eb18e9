//! [`KmipKms`]: data keys wrapped by a KMIP server, in libmongocrypt's two
//! modes (see the [module documentation](super) for the exchanges).

use super::transport::{Connector, DEFAULT_PORT};
use super::{CallError, Operation, Request, SECRET_DATA_LEN, request};
use crate::key::MasterKey;
use crate::kms::http::{RetryPolicy, TlsOptions};
use crate::kms::{Endpoint, EndpointOrigin, Error, KmsProvider, LocalMasterKey};
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A KMIP server as a KMS provider (`kmsProviders: {"kmip": {"endpoint":
/// "host[:port]"}}`).
///
/// Default mode: the server keeps a 96-byte SecretData that wraps data
/// keys exactly as a local master key does. Delegated mode (`masterKey:
/// {"delegated": true}`): the server keeps an AES-256 key and encrypts and
/// decrypts the data keys itself; it is refused unless allowed
/// ([`allow_delegated`](Self::allow_delegated)). `Debug` shows the name,
/// the endpoint and whether delegated mode is allowed.
pub struct KmipKms {
    name: String,
    /// The configured endpoint, its port filled in.
    endpoint: Endpoint,
    connector: Connector,
    /// Whether `masterKey`s with `"delegated": true` are served.
    delegated_allowed: bool,
}

impl std::fmt::Debug for KmipKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmipKms")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.to_string())
            .field("delegated_allowed", &self.delegated_allowed)
            .finish_non_exhaustive()
    }
}

/// What a KMIP `masterKey` asks for, resolved against the provider.
struct Target<'m> {
    /// Where to connect: the master key's endpoint, else the provider's.
    endpoint: Endpoint,
    key_id: Option<&'m str>,
    delegated: bool,
}

impl KmipKms {
    /// A provider from its `kmsProviders` entry, `{"endpoint":
    /// "host[:port]"}` (port 5696 when none is given), and its TLS
    /// options. The endpoint is required: KMIP has no default server and
    /// no on-demand credentials.
    pub fn from_options(
        name: &str,
        options: &Document,
        tls: &TlsOptions,
        retry: RetryPolicy,
    ) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidOptions {
            provider: name.to_owned(),
            reason,
        };
        if let Some(k) = options.keys().find(|k| k.as_str() != "endpoint") {
            return Err(invalid(format!("unexpected field '{k}'")));
        }
        let endpoint = match options.get("endpoint") {
            Some(Bson::String(e)) if !e.is_empty() => e,
            Some(_) => return Err(invalid("'endpoint' must be a non-empty string".into())),
            None => return Err(invalid("missing 'endpoint' (host[:port])".into())),
        };
        let endpoint = Endpoint::parse(endpoint, EndpointOrigin::KeyDocument)
            .map_err(|e| invalid(e.to_string()))?
            .with_default_port(DEFAULT_PORT);
        let connector = Connector::new(tls, retry).map_err(invalid)?;
        Ok(KmipKms {
            name: name.to_owned(),
            endpoint,
            connector,
            delegated_allowed: false,
        })
    }

    /// Serves (with `true`) or refuses (the default) master keys in
    /// delegated mode, with
    /// [`Error::KmipDelegatedNotAllowed`] before any connection. What
    /// delegated mode risks, and why the default mode is recommended:
    /// [`ProviderOptions::allow_kmip_delegated`](crate::kms::ProviderOptions::allow_kmip_delegated).
    pub fn allow_delegated(mut self, allow: bool) -> Self {
        self.delegated_allowed = allow;
        self
    }

    /// The configured endpoint, with its port (5696 when none was given).
    /// Key documents may name it without an allow-list entry.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn target<'m>(&self, master_key: &'m MasterKey) -> Result<Target<'m>, Error> {
        let MasterKey::Kmip {
            key_id,
            endpoint,
            delegated,
            ..
        } = master_key
        else {
            return Err(Error::InvalidMasterKey(format!(
                "provider '{}' needs a KMIP masterKey",
                self.name
            )));
        };
        let delegated = delegated.unwrap_or(false);
        if delegated && !self.delegated_allowed {
            return Err(Error::KmipDelegatedNotAllowed {
                provider: self.name.clone(),
            });
        }
        if key_id.as_deref() == Some("") {
            return Err(Error::InvalidMasterKey(
                "KMIP 'keyId' must not be empty".into(),
            ));
        }
        let endpoint = match endpoint {
            Some(e) => Endpoint::parse(e, EndpointOrigin::KeyDocument)
                .map_err(Error::InvalidEndpoint)?
                .with_default_port(DEFAULT_PORT),
            None => self.endpoint.clone(),
        };
        Ok(Target {
            endpoint,
            key_id: key_id.as_deref(),
            delegated,
        })
    }

    /// A `keyId` the operation cannot do without.
    fn required_key_id<'m>(&self, target: &Target<'m>) -> Result<&'m str, Error> {
        target.key_id.ok_or_else(|| {
            Error::InvalidMasterKey(format!(
                "a KMIP masterKey for provider '{}' needs 'keyId' here",
                self.name
            ))
        })
    }

    /// Sends the request `request` built and reads its reply with `parse`.
    async fn exchange<T>(
        &self,
        endpoint: &Endpoint,
        operation: Operation,
        request: Result<Request, super::Error>,
        parse: impl FnOnce(&[u8]) -> Result<T, CallError> + Send,
    ) -> Result<T, Error> {
        let fail = |attempts: u32, source: CallError| Error::Kmip {
            provider: self.name.clone(),
            endpoint: endpoint.to_string(),
            operation,
            attempts,
            source,
        };
        let request = request.map_err(|e| fail(0, CallError::Request(e)))?;
        let (reply, attempts) = self
            .connector
            .call(endpoint, &request)
            .await
            .map_err(|f| fail(f.attempts, f.error))?;
        parse(reply.as_slice()).map_err(|e| fail(attempts, e))
    }

    /// Get: the SecretData `key_id` as a local master key.
    async fn get_secret(&self, endpoint: &Endpoint, key_id: &str) -> Result<SecretData, Error> {
        self.exchange(endpoint, Operation::Get, request::get(key_id), |reply| {
            let secret = super::parse_secret_data(reply).map_err(CallError::Reply)?;
            answers(
                reply,
                Operation::Get,
                Some(key_id),
                Some(request::OBJECT_SECRET_DATA),
            )?;
            if secret.len() != SECRET_DATA_LEN {
                return Err(CallError::SecretDataLength {
                    actual: secret.len(),
                });
            }
            Ok(SecretData(secret.into_zeroizing()))
        })
        .await
    }

    /// Activate `key_id`; the reply must name it.
    async fn activate(&self, endpoint: &Endpoint, key_id: &str) -> Result<(), Error> {
        self.exchange(
            endpoint,
            Operation::Activate,
            request::activate(key_id),
            |reply| {
                // A well-formed identifier, and the one activated.
                super::parse_unique_identifier(reply).map_err(CallError::Reply)?;
                answers(reply, Operation::Activate, Some(key_id), None)
            },
        )
        .await
    }

    /// Default mode without a `keyId`: Register 96 bytes from the operating
    /// system's generator, Activate, Get (as libmongocrypt does); the bytes
    /// read back must be the ones registered. Returns the new object's id
    /// and the master key.
    async fn register_secret(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(String, LocalMasterKey), Error> {
        let secret = crate::crypto::new_key_material(None)?;
        let key_id = self
            .exchange(
                endpoint,
                Operation::Register,
                request::register_secret_data(&secret[..]),
                |reply| {
                    let key_id = super::parse_unique_identifier(reply).map_err(CallError::Reply)?;
                    answers(reply, Operation::Register, None, None)?;
                    Ok(key_id)
                },
            )
            .await?;
        self.activate(endpoint, &key_id).await?;
        let fetched = self.get_secret(endpoint, &key_id).await?;
        if !bool::from(fetched.0.as_slice().ct_eq(&secret[..])) {
            return Err(Error::Kmip {
                provider: self.name.clone(),
                endpoint: endpoint.to_string(),
                operation: Operation::Get,
                attempts: 1,
                source: CallError::SecretDataMismatch,
            });
        }
        let kek = fetched.master_key()?;
        Ok((key_id, kek))
    }

    /// Delegated mode without a `keyId`: Create an AES-256 key, Activate it.
    async fn create_aes_key(&self, endpoint: &Endpoint) -> Result<String, Error> {
        let key_id = self
            .exchange(
                endpoint,
                Operation::Create,
                request::create_aes_256(),
                |reply| {
                    let key_id = super::parse_unique_identifier(reply).map_err(CallError::Reply)?;
                    answers(
                        reply,
                        Operation::Create,
                        None,
                        Some(request::OBJECT_SYMMETRIC_KEY),
                    )?;
                    Ok(key_id)
                },
            )
            .await?;
        self.activate(endpoint, &key_id).await?;
        Ok(key_id)
    }

    /// Encrypt on the server; `keyMaterial` is IV ‖ ciphertext, and the
    /// ciphertext must be the AES-CBC (PKCS#5) length of `data_key`.
    async fn encrypt(
        &self,
        endpoint: &Endpoint,
        key_id: &str,
        data_key: &[u8],
    ) -> Result<Vec<u8>, Error> {
        // PKCS#5 always pads, a whole block when the length is a multiple
        // of 16: 112 bytes for a 96-byte data key.
        let expected = (data_key.len() / 16 + 1) * 16;
        self.exchange(
            endpoint,
            Operation::Encrypt,
            request::encrypt(key_id, data_key),
            |reply| {
                let encrypted = super::parse_encrypt(reply).map_err(CallError::Reply)?;
                answers(reply, Operation::Encrypt, Some(key_id), None)?;
                if encrypted.data().len() != expected {
                    return Err(CallError::CiphertextLength {
                        expected,
                        actual: encrypted.data().len(),
                    });
                }
                Ok(encrypted.key_material())
            },
        )
        .await
    }

    /// Delegated wrap: Encrypt, then Decrypt of the result, which must
    /// give `data_key` back (compared in constant time) before the
    /// `keyMaterial` is returned to be stored, as the default mode reads
    /// back the SecretData it registers.
    async fn wrap_delegated(
        &self,
        endpoint: &Endpoint,
        key_id: &str,
        data_key: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let key_material = self.encrypt(endpoint, key_id, data_key).await?;
        let back = self.decrypt(endpoint, key_id, &key_material).await?;
        if !bool::from(back.as_slice().ct_eq(data_key)) {
            return Err(Error::Kmip {
                provider: self.name.clone(),
                endpoint: endpoint.to_string(),
                operation: Operation::Decrypt,
                attempts: 1,
                source: CallError::WrapMismatch,
            });
        }
        Ok(key_material)
    }

    /// Delegated unwrap: Decrypt on the server.
    async fn decrypt(
        &self,
        endpoint: &Endpoint,
        key_id: &str,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.exchange(
            endpoint,
            Operation::Decrypt,
            request::decrypt_key_material(key_id, key_material),
            |reply| {
                let data_key = super::parse_decrypt(reply).map_err(CallError::Reply)?;
                answers(reply, Operation::Decrypt, Some(key_id), None)?;
                Ok(data_key.into_zeroizing())
            },
        )
        .await
    }

    /// Wraps under an existing KMIP object (`keyId` required).
    async fn wrap_existing(
        &self,
        master_key: &MasterKey,
        data_key: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let target = self.target(master_key)?;
        let key_id = self.required_key_id(&target)?;
        if target.delegated {
            self.wrap_delegated(&target.endpoint, key_id, data_key)
                .await
        } else {
            let kek = self
                .get_secret(&target.endpoint, key_id)
                .await?
                .master_key()?;
            kek.wrap_key(data_key)
        }
    }

    /// Wraps for a new key document: under the given `keyId`, or under a
    /// new object (Register or Create, then Activate) whose id is stored.
    async fn wrap_new(
        &self,
        master_key: &MasterKey,
        data_key: &[u8],
    ) -> Result<(MasterKey, Vec<u8>), Error> {
        let target = self.target(master_key)?;
        if target.key_id.is_some() {
            let wrapped = self.wrap_existing(master_key, data_key).await?;
            return Ok((master_key.clone(), wrapped));
        }
        let (key_id, wrapped) = if target.delegated {
            let key_id = self.create_aes_key(&target.endpoint).await?;
            let wrapped = self
                .wrap_delegated(&target.endpoint, &key_id, data_key)
                .await?;
            (key_id, wrapped)
        } else {
            let (key_id, kek) = self.register_secret(&target.endpoint).await?;
            (key_id, kek.wrap_key(data_key)?)
        };
        let MasterKey::Kmip {
            provider,
            endpoint,
            delegated,
            ..
        } = master_key
        else {
            // `target` accepted only a KMIP master key.
            return Err(Error::InvalidMasterKey(format!(
                "provider '{}' needs a KMIP masterKey",
                self.name
            )));
        };
        let stored = MasterKey::Kmip {
            provider: provider.clone(),
            key_id: Some(key_id),
            endpoint: endpoint.clone(),
            delegated: *delegated,
        };
        Ok((stored, wrapped))
    }

    /// Unwraps `key_material`: Get and the local unwrap, or Decrypt on the
    /// server (delegated).
    async fn unwrap_material(
        &self,
        master_key: &MasterKey,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let target = self.target(master_key)?;
        let key_id = self.required_key_id(&target)?;
        if target.delegated {
            self.decrypt(&target.endpoint, key_id, key_material).await
        } else {
            let kek = self
                .get_secret(&target.endpoint, key_id)
                .await?
                .master_key()?;
            kek.unwrap_for(master_key, key_material)
        }
    }
}

/// Checks that `reply` answers `operation` on `key_id` (when the request
/// named one) with an object of `object_type` (when given); another object
/// named is [`CallError::UnexpectedIdentifier`].
fn answers(
    reply: &[u8],
    operation: Operation,
    key_id: Option<&str>,
    object_type: Option<u32>,
) -> Result<(), CallError> {
    super::response::check_answers(reply, operation, key_id, object_type).map_err(|e| match e {
        super::Error::WrongUniqueIdentifier => CallError::UnexpectedIdentifier,
        other => CallError::Reply(other),
    })
}

/// The 96 bytes of a SecretData, zeroized when dropped.
struct SecretData(Zeroizing<Vec<u8>>);

impl SecretData {
    fn master_key(&self) -> Result<LocalMasterKey, Error> {
        LocalMasterKey::new(&self.0).map_err(Error::Crypto)
    }
}

impl KmsProvider for KmipKms {
    fn wrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(self.wrap_existing(master_key, data_key))
    }

    fn wrap_new_key<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<(MasterKey, Vec<u8>), Error>> {
        Box::pin(self.wrap_new(master_key, data_key))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>> {
        Box::pin(self.unwrap_material(master_key, key_material))
    }

    fn configured_endpoint(&self) -> Option<&Endpoint> {
        Some(&self.endpoint)
    }
}
