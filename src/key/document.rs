use super::{Endpoint, EndpointOrigin, Error, KeyId, ProviderKind, ProviderName};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, doc};
use std::fmt;

/// Where a data key's material is wrapped: the `masterKey` field of a key
/// document, in the drivers' shape.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterKey {
    /// `{provider: "local"}` (or a named local provider).
    Local {
        /// `local` or `local:<name>`.
        provider: ProviderName,
    },
    /// `{provider: "aws", region, key, endpoint?}`.
    Aws {
        /// `aws` or `aws:<name>`.
        provider: ProviderName,
        /// AWS region.
        region: String,
        /// CMK ARN or alias.
        key: String,
        /// Custom endpoint (`host[:port]`).
        endpoint: Option<String>,
    },
    /// `{provider: "azure", keyVaultEndpoint, keyName, keyVersion?}`.
    Azure {
        /// `azure` or `azure:<name>`.
        provider: ProviderName,
        /// Key Vault host.
        key_vault_endpoint: String,
        /// Key name.
        key_name: String,
        /// Key version.
        key_version: Option<String>,
    },
    /// `{provider: "gcp", projectId, location, keyRing, keyName, keyVersion?, endpoint?}`.
    Gcp {
        /// `gcp` or `gcp:<name>`.
        provider: ProviderName,
        /// Project id.
        project_id: String,
        /// Location.
        location: String,
        /// Key ring.
        key_ring: String,
        /// Key name.
        key_name: String,
        /// Key version.
        key_version: Option<String>,
        /// Custom endpoint.
        endpoint: Option<String>,
    },
    /// `{provider: "kmip", keyId?, endpoint?, delegated?}`.
    Kmip {
        /// `kmip` or `kmip:<name>`.
        provider: ProviderName,
        /// KMIP unique identifier of the secret.
        key_id: Option<String>,
        /// Endpoint.
        endpoint: Option<String>,
        /// Whether the KMIP server encrypts (delegated) or stores a secret.
        delegated: Option<bool>,
    },
}

impl MasterKey {
    /// The provider that wraps this key.
    pub fn provider(&self) -> &ProviderName {
        match self {
            MasterKey::Local { provider }
            | MasterKey::Aws { provider, .. }
            | MasterKey::Azure { provider, .. }
            | MasterKey::Gcp { provider, .. }
            | MasterKey::Kmip { provider, .. } => provider,
        }
    }

    /// The master key for `provider` from the drivers' `masterKey` option
    /// (`None`: no fields, as for local keys). A `provider` field in the
    /// options must agree with `provider`.
    pub fn for_provider(
        provider: &ProviderName,
        options: Option<&Document>,
    ) -> Result<Self, Error> {
        let mut d = options.cloned().unwrap_or_default();
        match d.get("provider") {
            None => {}
            Some(Bson::String(p)) if p == &provider.to_string() => {}
            Some(_) => {
                return Err(Error::InvalidMasterKey(format!(
                    "'provider' in masterKey does not match '{provider}'"
                )));
            }
        }
        d.insert("provider", provider.to_string());
        // The application may spell an endpoint as an https:// URL (Azure
        // portal URIs); it is stored as the host[:port] libmongocrypt keeps.
        for field in ["endpoint", "keyVaultEndpoint"] {
            if let Some(Bson::String(e)) = d.get(field) {
                let plain = super::normalize_application_endpoint(e)
                    .map_err(|e| Error::InvalidMasterKey(format!("'{field}': {e}")))?;
                d.insert(field, plain);
            }
        }
        MasterKey::from_document(&d)
    }

    /// Parses a `masterKey` document. Unknown fields are refused, as
    /// libmongocrypt does, so a typo cannot silently select a default.
    pub fn from_document(doc: &Document) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidMasterKey(reason);
        let provider = match doc.get("provider") {
            Some(Bson::String(s)) => ProviderName::parse(s).map_err(|e| invalid(e.to_string()))?,
            Some(_) => return Err(invalid("'provider' must be a string".into())),
            None => return Err(invalid("missing 'provider'".into())),
        };
        let allowed: &[&str] = match provider.kind() {
            ProviderKind::Local => &[],
            ProviderKind::Aws => &["region", "key", "endpoint"],
            ProviderKind::Azure => &["keyVaultEndpoint", "keyName", "keyVersion"],
            ProviderKind::Gcp => &[
                "projectId",
                "location",
                "keyRing",
                "keyName",
                "keyVersion",
                "endpoint",
            ],
            ProviderKind::Kmip => &["keyId", "endpoint", "delegated"],
        };
        for k in doc.keys() {
            if k != "provider" && !allowed.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "unrecognized field '{k}' for provider '{provider}'"
                )));
            }
        }
        let opt = |field: &str| -> Result<Option<String>, Error> {
            match doc.get(field) {
                None => Ok(None),
                Some(Bson::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(format!("'{field}' must be a string"))),
            }
        };
        let req = |field: &str| -> Result<String, Error> {
            opt(field)?
                .ok_or_else(|| invalid(format!("missing '{field}' for provider '{provider}'")))
        };
        // Endpoints as a key document may hold them: plain host[:port].
        let endpoint = |field: &str| -> Result<Option<String>, Error> {
            let e = opt(field)?;
            if let Some(e) = &e {
                Endpoint::parse(e, EndpointOrigin::KeyDocument)
                    .map_err(|err| invalid(format!("'{field}': {err}")))?;
            }
            Ok(e)
        };
        Ok(match provider.kind() {
            ProviderKind::Local => MasterKey::Local { provider },
            ProviderKind::Aws => MasterKey::Aws {
                region: {
                    let r = req("region")?;
                    if !super::valid_region(&r) {
                        return Err(invalid(super::INVALID_REGION.into()));
                    }
                    r
                },
                key: req("key")?,
                endpoint: endpoint("endpoint")?,
                provider,
            },
            ProviderKind::Azure => MasterKey::Azure {
                key_vault_endpoint: endpoint("keyVaultEndpoint")?.ok_or_else(|| {
                    invalid(format!(
                        "missing 'keyVaultEndpoint' for provider '{provider}'"
                    ))
                })?,
                key_name: req("keyName")?,
                key_version: opt("keyVersion")?,
                provider,
            },
            ProviderKind::Gcp => MasterKey::Gcp {
                project_id: req("projectId")?,
                location: req("location")?,
                key_ring: req("keyRing")?,
                key_name: req("keyName")?,
                key_version: opt("keyVersion")?,
                endpoint: endpoint("endpoint")?,
                provider,
            },
            ProviderKind::Kmip => MasterKey::Kmip {
                key_id: opt("keyId")?,
                endpoint: endpoint("endpoint")?,
                delegated: match doc.get("delegated") {
                    None => None,
                    Some(Bson::Boolean(b)) => Some(*b),
                    Some(_) => return Err(invalid("'delegated' must be a bool".into())),
                },
                provider,
            },
        })
    }

    /// The `masterKey` document.
    pub fn to_document(&self) -> Document {
        let mut d = doc! {"provider": self.provider().to_string()};
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                d.insert(k, v.clone());
            }
        };
        match self {
            MasterKey::Local { .. } => {}
            MasterKey::Aws {
                region,
                key,
                endpoint,
                ..
            } => {
                put("region", &Some(region.clone()));
                put("key", &Some(key.clone()));
                put("endpoint", endpoint);
            }
            MasterKey::Azure {
                key_vault_endpoint,
                key_name,
                key_version,
                ..
            } => {
                put("keyVaultEndpoint", &Some(key_vault_endpoint.clone()));
                put("keyName", &Some(key_name.clone()));
                put("keyVersion", key_version);
            }
            MasterKey::Gcp {
                project_id,
                location,
                key_ring,
                key_name,
                key_version,
                endpoint,
                ..
            } => {
                put("projectId", &Some(project_id.clone()));
                put("location", &Some(location.clone()));
                put("keyRing", &Some(key_ring.clone()));
                put("keyName", &Some(key_name.clone()));
                put("keyVersion", key_version);
                put("endpoint", endpoint);
            }
            MasterKey::Kmip {
                key_id,
                endpoint,
                delegated,
                ..
            } => {
                put("keyId", key_id);
                put("endpoint", endpoint);
                if let Some(b) = delegated {
                    d.insert("delegated", *b);
                }
            }
        }
        d
    }
}

/// The longest `keyMaterial` a key document may hold, in bytes. A 96-byte
/// data key wrapped by any provider is far shorter: 160 bytes under a
/// local or KMIP default-mode master key (IV, AES-CBC, HMAC tag), 128 in
/// KMIP delegated mode, about 150 to 300 as an AWS KMS or GCP ciphertext,
/// and as long as the RSA modulus under Azure's RSA-OAEP (512 bytes for
/// RSA-4096). The bound leaves room for formats to grow while keeping what
/// a hostile key vault can make a reader hold per document small.
pub(crate) const MAX_KEY_MATERIAL_LEN: usize = 2048;

/// A key document as stored in a key vault (`encryption.__keyVault` or a file).
///
/// Serializes to and from BSON through [`KeyDocument::from_document`], which
/// validates every field; a `keyMaterial` longer than 2048 bytes (four
/// times Azure's RSA-4096 wrapping, the longest a provider makes) is
/// refused with [`Error::KeyMaterialTooLong`]. `Debug` shows the id, names
/// and provider, not the wrapped key material.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Document", into = "Document")]
pub struct KeyDocument {
    /// `_id`: the key's UUID.
    pub id: KeyId,
    /// `keyAltNames`: unique alternate names.
    pub key_alt_names: Vec<String>,
    /// `keyMaterial`: the data key wrapped by the master key.
    pub key_material: Vec<u8>,
    /// `creationDate`.
    pub creation_date: DateTime,
    /// `updateDate`.
    pub update_date: DateTime,
    /// `status` (0 = active).
    pub status: i32,
    /// `masterKey`.
    pub master_key: MasterKey,
}

impl KeyDocument {
    /// A new key document: a random UUID `_id` from the operating system's
    /// generator, the current time as creation and update date, status 0.
    /// Alternate names must be distinct.
    pub fn new(
        master_key: MasterKey,
        key_material: Vec<u8>,
        key_alt_names: Vec<String>,
    ) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = key_alt_names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::DuplicateAltName(dup.clone()));
        }
        let id = KeyId::random()?;
        // A key no reader would accept is not written.
        check_key_material_len(id, &key_material)?;
        let now = DateTime::now();
        Ok(KeyDocument {
            id,
            key_alt_names,
            key_material,
            creation_date: now,
            update_date: now,
            status: 0,
            master_key,
        })
    }

    /// Validates and reads a key document.
    pub fn from_document(doc: &Document) -> Result<Self, Error> {
        let id = match doc.get("_id") {
            Some(Bson::Binary(b)) => KeyId::from_binary(b).ok_or_else(|| {
                Error::InvalidKeyDocument(
                    "'_id' must be a UUID (binary subtype 4, 16 bytes)".into(),
                )
            })?,
            _ => {
                return Err(Error::InvalidKeyDocument(
                    "'_id' must be a UUID (binary subtype 4, 16 bytes)".into(),
                ));
            }
        };
        let invalid = |reason: &str| Error::InvalidKeyDocument(format!("key {id}: {reason}"));
        let key_material = match doc.get("keyMaterial") {
            Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Generic => {
                check_key_material_len(id, &b.bytes)?;
                b.bytes.clone()
            }
            _ => return Err(invalid("'keyMaterial' must be a binary of subtype 0")),
        };
        let date = |field: &str| match doc.get(field) {
            Some(Bson::DateTime(d)) => Ok(*d),
            _ => Err(invalid(&format!("'{field}' must be a date"))),
        };
        let status = match doc.get("status") {
            Some(Bson::Int32(i)) => *i,
            Some(Bson::Int64(i)) => {
                i32::try_from(*i).map_err(|_| invalid("'status' out of range"))?
            }
            None => 0,
            _ => return Err(invalid("'status' must be an integer")),
        };
        let key_alt_names = match doc.get("keyAltNames") {
            None => Vec::new(),
            Some(Bson::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Bson::String(s) => Ok(s.clone()),
                    _ => Err(invalid("'keyAltNames' must hold strings")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("'keyAltNames' must be an array")),
        };
        let master_key = match doc.get("masterKey") {
            Some(Bson::Document(d)) => MasterKey::from_document(d)
                .map_err(|e| Error::InvalidKeyDocument(format!("key {id}: {e}")))?,
            _ => return Err(invalid("'masterKey' must be a document")),
        };
        Ok(KeyDocument {
            id,
            key_alt_names,
            key_material,
            creation_date: date("creationDate")?,
            update_date: date("updateDate")?,
            status,
            master_key,
        })
    }

    /// The document to store, in libmongocrypt's field order.
    pub fn to_document(&self) -> Document {
        let mut d = doc! {
            "_id": self.id.to_binary(),
            "keyMaterial": Binary { subtype: BinarySubtype::Generic, bytes: self.key_material.clone() },
            "creationDate": self.creation_date,
            "updateDate": self.update_date,
            "status": self.status,
            "masterKey": self.master_key.to_document(),
        };
        if !self.key_alt_names.is_empty() {
            d.insert("keyAltNames", self.key_alt_names.clone());
        }
        d
    }
}

/// Refuses a `keyMaterial` longer than [`MAX_KEY_MATERIAL_LEN`].
fn check_key_material_len(id: KeyId, key_material: &[u8]) -> Result<(), Error> {
    if key_material.len() > MAX_KEY_MATERIAL_LEN {
        return Err(Error::KeyMaterialTooLong {
            id,
            len: key_material.len(),
            max: MAX_KEY_MATERIAL_LEN,
        });
    }
    Ok(())
}

impl TryFrom<Document> for KeyDocument {
    type Error = Error;
    fn try_from(d: Document) -> Result<Self, Error> {
        KeyDocument::from_document(&d)
    }
}

impl From<KeyDocument> for Document {
    fn from(k: KeyDocument) -> Document {
        k.to_document()
    }
}

impl fmt::Debug for KeyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDocument")
            .field("id", &self.id)
            .field("key_alt_names", &self.key_alt_names)
            .field("status", &self.status)
            .field("master_key", &self.master_key)
            .field(
                "key_material",
                &format_args!("<{} bytes>", self.key_material.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        doc! {
            "_id": KeyId::from_bytes([1; 16]).to_binary(),
            "keyMaterial": Binary { subtype: BinarySubtype::Generic, bytes: vec![2; 160] },
            "creationDate": DateTime::from_millis(1),
            "updateDate": DateTime::from_millis(2),
            "status": 0,
            "masterKey": {"provider": "aws:prod", "region": "us-east-1", "key": "arn"},
            "keyAltNames": ["a", "b"],
        }
    }

    #[test]
    fn round_trip() {
        let k = KeyDocument::from_document(&sample()).unwrap();
        assert_eq!(k.key_alt_names, ["a", "b"]);
        assert_eq!(k.master_key.provider().to_string(), "aws:prod");
        assert_eq!(k.to_document(), sample());
        let via_serde: KeyDocument = bson::from_document(sample()).unwrap();
        assert_eq!(via_serde, k);
        assert!(!format!("{k:?}").contains("[2, 2"));
    }

    #[test]
    fn rejects_bad_documents() {
        let mut d = sample();
        d.insert("_id", "nope");
        assert!(KeyDocument::from_document(&d).is_err());
        let mut d = sample();
        d.insert(
            "masterKey",
            doc! {"provider": "aws", "region": "x", "key": "y", "regoin": 1},
        );
        let e = KeyDocument::from_document(&d).unwrap_err();
        assert!(e.to_string().contains("unrecognized field 'regoin'"), "{e}");
        let mut d = sample();
        d.insert("keyAltNames", vec![Bson::Int32(1)]);
        assert!(KeyDocument::from_document(&d).is_err());
    }

    #[test]
    fn key_material_is_bounded() {
        let with_material = |len: usize| {
            let mut d = sample();
            d.insert(
                "keyMaterial",
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![2; len],
                },
            );
            KeyDocument::from_document(&d)
        };
        // Azure's RSA-4096 wrapping, and the bound itself, are read.
        assert_eq!(with_material(512).unwrap().key_material.len(), 512);
        assert!(with_material(MAX_KEY_MATERIAL_LEN).is_ok());
        for len in [MAX_KEY_MATERIAL_LEN + 1, 1 << 20] {
            let e = with_material(len).unwrap_err();
            assert_eq!(
                e,
                Error::KeyMaterialTooLong {
                    id: KeyId::from_bytes([1; 16]),
                    len,
                    max: 2048,
                }
            );
            assert!(e.to_string().contains("2048"), "{e}");
        }
        let local = MasterKey::from_document(&doc! {"provider": "local"}).unwrap();
        assert!(KeyDocument::new(local.clone(), vec![0; 160], vec![]).is_ok());
        assert!(matches!(
            KeyDocument::new(local, vec![0; MAX_KEY_MATERIAL_LEN + 1], vec![]),
            Err(Error::KeyMaterialTooLong { .. })
        ));
    }
}
