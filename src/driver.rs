//! The edge to the `mongodb` crate that every layer talking to a server
//! shares (the key vault collection, the encrypted client, migration, the
//! crate's error): what it reads out of the driver's errors.

/// The server's error code a driver error carries: a command error's, a
/// write error's, or an `insertMany`'s first write error's.
pub(crate) fn driver_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some(w.code)
        }
        mongodb::error::ErrorKind::InsertMany(i) => i
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}
