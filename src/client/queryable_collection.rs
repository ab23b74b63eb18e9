//! [`ClientEncryption::create_encrypted_collection`]: a Queryable
//! Encryption collection created as the specification's "Create Encrypted
//! Collection" helper creates it, its missing data keys created first.

use super::encryption::{ClientEncryption, DataKeyOptions};
use crate::key::KeyId;
use crate::kms::ProviderName;
use crate::qe::encrypted_fields::{EncryptedFields, KeyIdOrAltName, ParseMode};
use crate::{ClientError, Error};
use bson::{Bson, Document, doc};
use std::collections::HashMap;

/// The wire version of MongoDB 7.0, the first server with Queryable
/// Encryption's current protocol.
const QE_MIN_WIRE_VERSION: i32 = 21;

/// The index every Queryable Encryption collection has on the tags the
/// server keeps (`__safeContent__`), named as the drivers name it.
const SAFE_CONTENT_INDEX: &str = "__safeContent___1";

/// A failure of the helper, carrying `encrypted_fields` as it stands (the
/// ids of the keys created so far filled in).
fn failed(namespace: &str, encrypted_fields: &Document, source: Error) -> Error {
    Error::Client(ClientError::CreateEncryptedCollection {
        namespace: namespace.to_owned(),
        encrypted_fields: Box::new(encrypted_fields.clone()),
        source: Box::new(source),
    })
}

/// The server's `maxWireVersion`, from `hello` (0 when it says none: too
/// old, or not a server that says).
async fn max_wire_version(db: &mongodb::Database) -> Result<i32, Error> {
    let hello = db.run_command(doc! {"hello": 1}).await?;
    Ok(match hello.get("maxWireVersion") {
        Some(Bson::Int32(v)) => *v,
        Some(Bson::Int64(v)) => i32::try_from(*v).unwrap_or(i32::MAX),
        _ => 0,
    })
}

/// Runs one command of the helper on `db`.
async fn run(db: &mongodb::Database, command: Document) -> Result<(), Error> {
    db.run_command(command).await?;
    Ok(())
}

impl ClientEncryption {
    /// Creates the Queryable Encryption collection `name` in `db` (feature
    /// `qe`), creating a data key (wrapped by `provider` with
    /// `master_key`, as [`create_data_key`](Self::create_data_key) does)
    /// for every field of `encrypted_fields` whose `keyId` is `null`; the
    /// mongodb crate's `create_encrypted_collection`. Returns the
    /// `encryptedFields` the collection was created with: every `keyId`
    /// filled in (`keyAltName`s resolved through the key vault).
    ///
    /// `encrypted_fields` is read strictly first
    /// ([`EncryptedFields::parse`], as a create-collection call), and a
    /// query type csfle does not implement is refused, before anything is
    /// created. Then, as the specification's create-collection helper
    /// does, each step only after the one before succeeded:
    ///
    /// 1. the server's wire version is checked: below 21 (MongoDB 7.0)
    ///    fails with [`ClientError::IncompatibleServer`] ("Driver support
    ///    of Queryable Encryption is incompatible with server. Upgrade
    ///    server to use Queryable Encryption."). Checked before any key is
    ///    created, so that an old server leaves no unused key behind;
    /// 2. the data keys are created, in field order;
    /// 3. the state collections `enxcol_.<name>.esc` and
    ///    `enxcol_.<name>.ecoc` (or the names `encrypted_fields` gives)
    ///    are created clustered on `_id`
    ///    (`{clusteredIndex: {key: {_id: 1}, unique: true}}`);
    /// 4. the collection is created with the `encryptedFields`;
    /// 5. the index `{__safeContent__: 1}` is created on it.
    ///
    /// Any failure after `encrypted_fields` was read is a
    /// [`ClientError::CreateEncryptedCollection`] holding the
    /// `encryptedFields` with the keys created so far, so that they can be
    /// used or deleted; its `source` is what failed. The commands are sent
    /// through `db`'s client as they are (no automatic encryption is
    /// involved).
    ///
    /// This does not change the automatic encryption of any existing
    /// [`EncryptedClient`](crate::EncryptedClient): one whose
    /// `encryptedFieldsMap` does not list the new collection reads its
    /// `encryptedFields` from the server (after its cached answer for the
    /// namespace expires); configure clients after creating the
    /// collection.
    ///
    /// ```no_run
    /// # async fn run(ce: csfle::ClientEncryption, db: mongodb::Database) -> Result<(), csfle::Error> {
    /// use csfle::kms::ProviderName;
    ///
    /// let fields = ce
    ///     .create_encrypted_collection(
    ///         &db,
    ///         "patients",
    ///         bson::doc! {"fields": [
    ///             {"path": "ssn", "keyId": bson::Bson::Null, "bsonType": "string",
    ///              "queries": {"queryType": "equality"}},
    ///         ]},
    ///         &ProviderName::parse("local")?,
    ///         None,
    ///     )
    ///     .await?;
    /// # let _ = fields;
    /// # Ok(()) }
    /// ```
    pub async fn create_encrypted_collection(
        &self,
        db: &mongodb::Database,
        name: &str,
        encrypted_fields: Document,
        provider: &ProviderName,
        master_key: Option<Document>,
    ) -> Result<Document, Error> {
        let namespace = format!("{}.{name}", db.name());
        let mut fields = EncryptedFields::from_document(&encrypted_fields, ParseMode::Create)
            .and_then(|f| {
                f.check_supported()?;
                Ok(f)
            })
            .map_err(|e| failed(&namespace, &encrypted_fields, e.into()))?;
        let wire = max_wire_version(db)
            .await
            .map_err(|e| failed(&namespace, &encrypted_fields, e))?;
        if wire < QE_MIN_WIRE_VERSION {
            return Err(failed(
                &namespace,
                &encrypted_fields,
                Error::Client(ClientError::IncompatibleServer {
                    max_wire_version: wire,
                }),
            ));
        }
        // The keys, in field order; the document returned on failure
        // carries each one as soon as it exists. `parse` read one field
        // per element of `fields`, in order.
        let mut filled = encrypted_fields.clone();
        let mut created: HashMap<String, [u8; 16]> = HashMap::new();
        for (index, field) in fields.fields().iter().enumerate() {
            if !matches!(field.key(), KeyIdOrAltName::ToCreate) {
                continue;
            }
            let options = DataKeyOptions {
                master_key: master_key.clone(),
                ..DataKeyOptions::default()
            };
            let id = self
                .create_data_key(provider, options)
                .await
                .map_err(|e| failed(&namespace, &filled, e))?;
            set_key_id(&mut filled, index, id);
            created.insert(field.path().to_owned(), id.bytes());
        }
        let names: Vec<String> = fields
            .key_alt_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut named: HashMap<String, [u8; 16]> = HashMap::new();
        if !names.is_empty() {
            let keys = self
                .key_vault()
                .find_keys(&[], &names)
                .await
                .map_err(|e| failed(&namespace, &filled, e.into()))?;
            for key in keys {
                for n in key.key_alt_names {
                    named.insert(n, key.id.bytes());
                }
            }
        }
        fields
            .resolve_keys(|field| match field.key() {
                KeyIdOrAltName::ToCreate => created.get(field.path()).copied(),
                KeyIdOrAltName::AltName(n) => named.get(n).copied(),
                _ => None,
            })
            .map_err(|e| failed(&namespace, &filled, e.into()))?;
        let sent: Document = match fields.to_create_document() {
            Ok(raw) => raw
                .to_document()
                .map_err(|e| failed(&namespace, &filled, e.into()))?,
            Err(e) => return Err(failed(&namespace, &filled, e.into())),
        };
        let clustered = doc! {"key": {"_id": 1}, "unique": true};
        let steps = [
            doc! {"create": fields.esc_collection_name(name), "clusteredIndex": clustered.clone()},
            doc! {"create": fields.ecoc_collection_name(name), "clusteredIndex": clustered},
            doc! {"create": name, "encryptedFields": sent.clone()},
            doc! {"createIndexes": name, "indexes": [
                {"name": SAFE_CONTENT_INDEX, "key": {"__safeContent__": 1}},
            ]},
        ];
        for step in steps {
            run(db, step)
                .await
                .map_err(|e| failed(&namespace, &sent, e))?;
        }
        tracing::debug!(
            namespace,
            keys_created = created.len(),
            "Queryable Encryption collection created"
        );
        Ok(sent)
    }
}

/// Puts `id` as the `keyId` of the field at `index` of `encrypted_fields`
/// (in place of its `null`).
fn set_key_id(encrypted_fields: &mut Document, index: usize, id: KeyId) {
    if let Ok(fields) = encrypted_fields.get_array_mut("fields")
        && let Some(Bson::Document(field)) = fields.get_mut(index)
    {
        field.insert("keyId", Bson::Binary(id.to_binary()));
    }
}
