//! The operations of [`EncryptedCollection`](crate::EncryptedCollection),
//! as the `mongodb` crate shapes them: a method returns an action, options
//! are chained on it, and `.await` runs it
//! (`coll.find(filter).sort(doc! {"_id": 1}).limit(5).await`).
//!
//! Each operation is written as the command the server documents, with
//! every option as its command field, and analysed (and encrypted) as such
//! by automatic encryption, fail closed. The analysed command is then taken
//! apart (`client::command::Fields`) into the driver's own typed operation,
//! which runs it with the driver's retryable reads and writes, the
//! collection's and the operation's read concern, write concern and read
//! preference, server selection, sessions and transactions, and
//! `killCursors` when a cursor is dropped early. Cursors decrypt as they
//! go.
//!
//! Each action's module holds the action, its chained options, what it
//! runs and the `EncryptedCollection` method that returns it; `macros`
//! the macros they are written with, `cursor` the decrypting cursor,
//! `results` what the writes return.

use mongodb::ClientSession;
use mongodb::options::{ReadConcern, SelectionCriteria, WriteConcern};

// First: the macros are in scope in the modules declared after it.
#[macro_use]
mod macros;

mod admin;
mod bulk;
mod cursor;
mod read;
mod results;
mod watch;
mod write;

pub use admin::{CreateIndexes, DropCollection, DropIndexes, EstimatedDocumentCount, ListIndexes};
pub use bulk::{BulkWrite, WriteModel};
pub use read::{Aggregate, CountDocuments, Distinct, Find, FindOne};
pub use results::{DeleteResult, InsertManyResult, InsertOneResult, UpdateResult};
pub use watch::Watch;
pub use write::{Delete, FindAndModify, InsertMany, InsertOne, Replace, Update};

/// How an operation runs besides its command: the session (and so the
/// transaction), the per-operation concerns and read preference. None of
/// them carries application data, so none is part of the analysed command;
/// unset, the collection's apply, as in the driver.
#[derive(Default)]
pub(super) struct Exec<'a> {
    pub(super) session: Option<&'a mut ClientSession>,
    pub(super) read_concern: Option<ReadConcern>,
    pub(super) selection_criteria: Option<SelectionCriteria>,
    pub(super) write_concern: Option<WriteConcern>,
}
