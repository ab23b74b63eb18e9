//! The MongoDB client layer: `ClientEncryption` (explicit encryption and
//! data keys over a key vault), automatic encryption (`AutoEncrypter`) and
//! the encrypted client, database and collections shaped like the
//! `mongodb` crate's, with the audit hook asked before every decryption.

// `pub(crate)`: the crate root's `action` module re-exports the operation
// types from here.
pub(crate) mod actions;
mod audit;
mod auto;
mod builder;
mod collection;
mod command;
mod cursor;
// `pub(crate)`: the crate root's `action` module re-exports the actions of
// `ClientEncryption::encrypt` and `encrypt_expression`.
pub(crate) mod encrypt;
mod encryption;
mod fast_path;
#[cfg(feature = "qe")]
mod queryable_collection;
mod remote_schema;
mod typed_queryable;

pub use actions::{DeleteResult, InsertManyResult, InsertOneResult, UpdateResult, WriteModel};
pub use audit::{AuditSink, AuditedKey, DecryptionEvent};
pub use auto::{AutoEncrypter, AutoEncryptionOptions};
pub use builder::{ClientSource, EncryptedClientBuilder};
pub use collection::{EncryptedClient, EncryptedCollection, EncryptedDatabase};
pub use cursor::Cursor;
pub use encryption::{ClientEncryption, DataKeyOptions, RewrapOptions, RewrapResult};
// For `migrate`, which reads key ids out of documents and hands the keys
// of a batch to its workers.
pub(crate) use encryption::{ResolvedKeys, collect_key_ids};
pub use remote_schema::{MongoSchemaFetcher, RemoteSchema, SchemaFetcher};
