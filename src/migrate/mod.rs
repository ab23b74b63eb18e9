//! Collection migration: encrypt, re-encrypt or decrypt every document of a
//! collection to match a plan, safely.
//!
//! * **Plan**: a `$jsonSchema` (a schema-map entry) says which fields end up
//!   encrypted with which key and algorithm ([`Plan`]). Values already
//!   encrypted with any key in the vault are decrypted first, so plaintext →
//!   encrypted, old key → new key, deterministic ↔ random and encrypted →
//!   plaintext all work. An encrypted field the plan does not name stays
//!   as it is unless `decrypt_unlisted`.
//! * **Safety**: in place, each write is conditional on the changed fields
//!   (and the fields their keys are named by) still holding the values that
//!   were read, and only those fields are set, so concurrent application
//!   writes are never overwritten; a document changed in between is read
//!   again and retried. Per-worker checkpoints in a collection make a
//!   killed run resumable: the transform is idempotent (a value already
//!   under the target key and algorithm is left alone), so documents
//!   written but not yet checkpointed are simply found done on the rerun.
//!   Copying to another collection upserts by `_id`, equally idempotent.
//! * **Throughput**: workers over `_id` ranges (type-aware bounds), a
//!   streaming cursor each, keys fetched once per batch (through the
//!   cache), encryption on the blocking pool, unordered bulk `update`s.
//!
//! ```no_run
//! # async fn run(client: mongodb::Client, encryption: csfle::ClientEncryption, schema: bson::Document) -> Result<(), Box<dyn std::error::Error>> {
//! use csfle::analysis::Namespace;
//! use csfle::migrate::{Migration, MigrationOptions, Plan};
//! let plan = Plan::from_schema(&schema, false)?;
//! let migration = Migration::new(client, Namespace::parse("hr.people")?, plan, encryption, MigrationOptions::default());
//! let summary = migration.run().await?;
//! println!("{} changed, {} failed", summary.changed, summary.failed.len());
//! # Ok(()) }
//! ```

mod checkpoint;
mod conform;
mod counts;
mod error;
mod job;
mod keys;
mod lease;
mod options;
mod plan;
mod preflight;
// `pub(crate)`: the benchmark hooks (`crate::__private::range_filter`)
// reach `range_filter` here.
pub(crate) mod ranges;
mod retry;
mod run;
mod summary;
mod verify;
mod worker;
mod write;

pub use conform::{conform, encode_document};
pub use error::Error;
pub use job::Migration;
pub use options::{MigrationOptions, Progress};
pub use plan::{Change, DocumentError, Plan};
pub use summary::{FailedDocument, JobTotals, MigrationSummary, VerifySummary};

// A `db.collection` name: the one namespace type of csfle, at home in
// `analysis`.
use crate::analysis::Namespace;
