//! Automatic encryption of commands and decryption of replies, from a schema
//! map, with in-process query analysis.

use super::ClientEncryption;
use crate::analysis::{self, Analysis};
use crate::crypto::DataKey;
use crate::keyvault::{self, KeyVault};
use crate::schema::{EncryptionSchema, SchemaSource};
use crate::{Error, KeyLookup, KeyRef};
use bson::{Bson, Document};
use std::collections::HashMap;
use std::sync::Arc;

/// Options of automatic encryption, as in the drivers' `AutoEncryptionOpts`.
#[derive(Clone, Debug, Default)]
pub struct AutoEncryptionOptions {
    /// Refuse commands on namespaces the schema map does not list, instead
    /// of sending them unchanged.
    pub require_schema: bool,
    /// Send commands unchanged and only decrypt replies (the drivers'
    /// `bypassAutoEncryption`).
    pub bypass_auto_encryption: bool,
}

/// Encrypts outgoing commands by a schema map and decrypts replies.
#[derive(Debug)]
pub struct AutoEncrypter<V> {
    encryption: ClientEncryption<V>,
    schemas: HashMap<String, EncryptionSchema>,
    options: AutoEncryptionOptions,
}

/// Keys fetched for one command, by the reference its markings use.
struct MarkingKeys(Vec<(KeyRef, Arc<DataKey>)>);

impl KeyLookup for MarkingKeys {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, keyvault::Error> {
        self.0
            .iter()
            .find(|(r, _)| r == key)
            .map(|(_, k)| Arc::clone(k))
            .ok_or_else(|| match key {
                KeyRef::Id(id) => keyvault::Error::KeyNotFound(*id),
                KeyRef::AltName(n) => keyvault::Error::AltNameNotFound(n.clone()),
            })
    }
}

impl<V: KeyVault> AutoEncrypter<V> {
    /// An encrypter for the schema map `{"db.coll": <$jsonSchema>}`; every
    /// schema is validated now.
    pub fn new(
        encryption: ClientEncryption<V>,
        schema_map: &Document,
        options: AutoEncryptionOptions,
    ) -> Result<Self, Error> {
        let mut schemas = HashMap::new();
        for (ns, schema) in schema_map {
            let Bson::Document(schema) = schema else {
                return Err(Error::InvalidValue(format!(
                    "schema for '{ns}' must be a document"
                )));
            };
            let parsed = EncryptionSchema::parse(schema, SchemaSource::Local)
                .map_err(|e| Error::InvalidValue(format!("schema for '{ns}': {e}")))?;
            schemas.insert(ns.clone(), parsed);
        }
        Ok(AutoEncrypter {
            encryption,
            schemas,
            options,
        })
    }

    /// The explicit-encryption client underneath (key management, cache).
    pub fn client_encryption(&self) -> &ClientEncryption<V> {
        &self.encryption
    }

    /// The command to send for `command` on database `db`: unchanged when
    /// nothing needs encrypting, otherwise with every marked value encrypted
    /// (all keys fetched in one key-vault query, through the cache).
    pub async fn encrypt_command(&self, db: &str, command: &Document) -> Result<Document, Error> {
        if self.options.bypass_auto_encryption {
            return Ok(command.clone());
        }
        let (name, coll) = analysis::command_target(command)?;
        let inner_coll = match (name, command.get("explain")) {
            ("explain", Some(Bson::Document(inner))) => analysis::command_target(inner)?.1,
            _ => coll,
        };
        let ns = inner_coll.map(|c| format!("{db}.{c}"));
        if self.options.require_schema
            && let Some(ns) = &ns
            && !self.schemas.contains_key(ns)
        {
            return Err(Error::InvalidValue(format!(
                "no schema for namespace '{ns}'"
            )));
        }
        let schema = ns.as_ref().and_then(|ns| self.schemas.get(ns));
        match analysis::analyze(command, &|_| schema)? {
            Analysis::Unchanged => Ok(command.clone()),
            Analysis::Marked(marked) => {
                let refs = analysis::marking_keys(&marked)?;
                let keys = self.encryption.data_keys(&refs).await?;
                let lookup = MarkingKeys(refs.into_iter().zip(keys).collect());
                analysis::encrypt_markings(&marked, &lookup)
            }
        }
    }

    /// A reply with every encrypted value decrypted.
    pub async fn decrypt_reply(&self, reply: &Document) -> Result<Document, Error> {
        self.encryption.decrypt_document(reply).await
    }
}
