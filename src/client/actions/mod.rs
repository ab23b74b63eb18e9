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
//! go. A command on a Queryable Encryption collection that carries
//! `encryptionInformation` (which no typed operation has) is sent as it is
//! instead, with `run_command` or `run_cursor_command`, in the operation's
//! session, with its concerns and read preference, but without the
//! driver's retries.
//!
//! Each action's module holds the action, its chained options, what it
//! runs and the `EncryptedCollection` method that returns it; `macros`
//! the macros they are written with, `cursor` the decrypting cursor,
//! `results` what the writes return. `client_bulk` is the one action of
//! `EncryptedClient`: the server's client-level `bulkWrite` command, sent
//! as analysis made it (it has no typed operation to take it apart into).

use crate::client::auto::ENCRYPTION_INFORMATION;
use crate::client::collection::EncryptedCollection;
use crate::client::cursor::Cursor;
use crate::{ClientError, Error};
use bson::{Bson, Document};
use cursor::{Batches, decrypted_cursor};
use mongodb::ClientSession;
use mongodb::options::{ReadConcern, RunCursorCommandOptions, SelectionCriteria, WriteConcern};
use serde::de::DeserializeOwned;
use std::sync::Arc;

// First: the macros are in scope in the modules declared after it.
#[macro_use]
mod macros;

mod admin;
mod bulk;
mod client_bulk;
mod cursor;
mod read;
mod results;
mod watch;
mod write;

pub use admin::{CreateIndexes, DropCollection, DropIndexes, EstimatedDocumentCount, ListIndexes};
pub use bulk::{BulkWrite, WriteModel};
pub use client_bulk::ClientBulkWrite;
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

/// Whether an analysed command carries `encryptionInformation`: a command
/// on a Queryable Encryption collection, which the driver's typed
/// operations cannot carry, so it is sent as it is ([`run_sent`],
/// [`open_sent`]).
pub(super) fn carries_encryption_information(sent: &Document) -> bool {
    sent.contains_key(ENCRYPTION_INFORMATION)
}

/// Whether a command sent as it is reads or writes: which concern it
/// takes, and whether it follows the read preference.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

/// `sent` with the read or write concern it runs with: the operation's
/// own, else (outside a session, where a transaction's concerns rule)
/// the collection's. Placed before `encryptionInformation`, which stays
/// last, where libmongocrypt puts it.
fn with_concern<T>(
    coll: &EncryptedCollection<T>,
    mut sent: Document,
    exec: &Exec<'_>,
    access: Access,
) -> Result<Document, Error> {
    let driver = coll.documents();
    let own_only = exec.session.is_some();
    let concern = match access {
        Access::Read => exec
            .read_concern
            .clone()
            .or_else(|| driver.read_concern().filter(|_| !own_only).cloned())
            .map(|c| bson::to_bson(&c).map(|v| ("readConcern", v))),
        Access::Write => exec
            .write_concern
            .clone()
            .or_else(|| driver.write_concern().filter(|_| !own_only).cloned())
            .map(|c| bson::to_bson(&c).map(|v| ("writeConcern", v))),
    };
    if let Some(concern) = concern {
        let (key, value) = concern?;
        let info = sent.remove(ENCRYPTION_INFORMATION);
        sent.insert(key, value);
        if let Some(info) = info {
            sent.insert(ENCRYPTION_INFORMATION, info);
        }
    }
    Ok(sent)
}

/// The read preference of a command sent as it is: a read follows the
/// operation's, else the collection's; a write goes to the primary.
fn selection<T>(
    coll: &EncryptedCollection<T>,
    exec: &Exec<'_>,
    access: Access,
) -> Option<SelectionCriteria> {
    match access {
        Access::Read => exec
            .selection_criteria
            .clone()
            .or_else(|| coll.documents().selection_criteria().cloned()),
        Access::Write => None,
    }
}

/// Runs `sent`, an analysed command that carries `encryptionInformation`,
/// as it is on the collection's database (in the operation's session, if
/// any), and returns the reply decrypted. A write error or write concern
/// error in the reply fails the operation ([`ClientError::Write`]).
///
/// Unlike the typed operations, the driver does not retry such a command
/// (retryable writes and reads apply to its typed operations only).
pub(super) async fn run_sent<T>(
    coll: &EncryptedCollection<T>,
    sent: Document,
    exec: &mut Exec<'_>,
    access: Access,
) -> Result<Document, Error> {
    let sent = with_concern(coll, sent, exec, access)?;
    let criteria = selection(coll, exec, access);
    let db = coll.database().inner();
    let mut action = db.run_command(sent);
    if let Some(criteria) = criteria {
        action = action.selection_criteria(criteria);
    }
    let reply = match exec.session.as_deref_mut() {
        None => action.await?,
        Some(s) => action.session(s).await?,
    };
    // Errors are read from the reply as the server sent it, before
    // anything is decrypted: a hostile server could otherwise put a stored
    // ciphertext into `errInfo` and have the client decrypt it into the
    // error's details, where a `{:?}` log would print it.
    if let Ok(errors) = reply.get_array("writeErrors")
        && let Some(Bson::Document(first)) = errors.first()
    {
        return Err(Error::Client(ClientError::write(first)));
    }
    if let Ok(error) = reply.get_document("writeConcernError") {
        return Err(Error::Client(ClientError::write(error)));
    }
    coll.auto()
        .client_encryption()
        .decrypt_document(&reply)
        .await
}

/// Opens the cursor of `sent`, an analysed `find` or `aggregate` that
/// carries `encryptionInformation`, sent as it is (in the operation's
/// session, if any); its batches are decrypted as the stream reaches them.
/// `batch_size` is the command's, for the `getMore`s.
pub(super) async fn open_sent<'a, T, U>(
    coll: &EncryptedCollection<T>,
    sent: Document,
    exec: Exec<'a>,
    batch_size: Option<u32>,
) -> Result<Cursor<'a, U>, Error>
where
    U: DeserializeOwned + Send + 'static,
{
    let sent = with_concern(coll, sent, &exec, Access::Read)?;
    let mut options = RunCursorCommandOptions::default();
    options.selection_criteria = selection(coll, &exec, Access::Read);
    options.batch_size = batch_size;
    let db = coll.database().inner();
    let auto = Arc::clone(coll.auto());
    let batches = open_batches!(
        exec.session,
        db.run_cursor_command(sent).with_options(options)
    );
    decrypted_cursor(auto, batches).await
}

/// A count in a command's reply (`n`, `nModified`): absent counts 0, as
/// the driver reads it.
pub(super) fn reply_count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}
