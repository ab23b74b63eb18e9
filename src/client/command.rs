//! The analysed command, back into the driver's typed operation.
//!
//! Every operation of an [`EncryptedCollection`](super::EncryptedCollection)
//! is first written as the command the server documents and analysed (and
//! encrypted) as such by the fail-closed analyser; what analysis returns is
//! then taken apart here, field by field, into the filter, documents,
//! pipeline and options of the `mongodb` crate's own operation, which the
//! driver runs with its retries, concerns, sessions and server selection.
//! A field this module does not know how to hand to the driver is an
//! error, never dropped: what the server receives is the analysed command.

use crate::{ClientError, Error};
use bson::{Bson, Document};
use mongodb::options::{Collation, Hint};
use std::time::Duration;

/// An analysed command being taken apart; every field must be taken.
pub(super) struct Fields {
    command: &'static str,
    doc: Document,
}

fn wrong(command: &'static str, field: &str, want: &str) -> Error {
    Error::Client(ClientError::UnsupportedOption {
        command,
        field: field.to_owned(),
        reason: format!("expected {want}"),
    })
}

impl Fields {
    /// The sent command of `name` (its first field, the collection, is
    /// taken here).
    pub(super) fn new(name: &'static str, mut sent: Document) -> Self {
        sent.remove(name);
        Fields {
            command: name,
            doc: sent,
        }
    }

    /// A sub-document taken apart the same way (a write statement).
    pub(super) fn statement(command: &'static str, doc: Document) -> Self {
        Fields { command, doc }
    }

    pub(super) fn bson(&mut self, k: &str) -> Option<Bson> {
        self.doc.remove(k)
    }

    pub(super) fn doc(&mut self, k: &str) -> Result<Option<Document>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(Bson::Document(d)) => Ok(Some(d)),
            Some(_) => Err(wrong(self.command, k, "a document")),
        }
    }

    pub(super) fn docs(&mut self, k: &str) -> Result<Option<Vec<Document>>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(Bson::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Bson::Document(d) => Ok(d),
                    _ => Err(wrong(self.command, k, "an array of documents")),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong(self.command, k, "an array of documents")),
        }
    }

    pub(super) fn bool(&mut self, k: &str) -> Result<Option<bool>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(Bson::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(wrong(self.command, k, "a boolean")),
        }
    }

    pub(super) fn i64(&mut self, k: &str) -> Result<Option<i64>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(Bson::Int32(n)) => Ok(Some(n.into())),
            Some(Bson::Int64(n)) => Ok(Some(n)),
            Some(_) => Err(wrong(self.command, k, "an integer")),
        }
    }

    pub(super) fn u64(&mut self, k: &str) -> Result<Option<u64>, Error> {
        self.i64(k)?
            .map(|n| u64::try_from(n).map_err(|_| wrong(self.command, k, "a non-negative integer")))
            .transpose()
    }

    pub(super) fn u32(&mut self, k: &str) -> Result<Option<u32>, Error> {
        self.i64(k)?
            .map(|n| u32::try_from(n).map_err(|_| wrong(self.command, k, "a 32-bit count")))
            .transpose()
    }

    pub(super) fn millis(&mut self, k: &str) -> Result<Option<Duration>, Error> {
        Ok(self.u64(k)?.map(Duration::from_millis))
    }

    pub(super) fn hint(&mut self, k: &str) -> Result<Option<Hint>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(Bson::Document(d)) => Ok(Some(Hint::Keys(d))),
            Some(Bson::String(s)) => Ok(Some(Hint::Name(s))),
            Some(_) => Err(wrong(self.command, k, "index keys or an index name")),
        }
    }

    pub(super) fn collation(&mut self, k: &str) -> Result<Option<Collation>, Error> {
        match self.doc.remove(k) {
            None => Ok(None),
            Some(v) => bson::from_bson(v)
                .map(Some)
                .map_err(|_| wrong(self.command, k, "a collation")),
        }
    }

    /// Every field was handed to the driver.
    pub(super) fn finish(self) -> Result<(), Error> {
        match self.doc.keys().next() {
            None => Ok(()),
            Some(k) => Err(Error::Client(ClientError::UnsupportedOption {
                command: self.command,
                field: k.clone(),
                reason: "the driver's typed operation has no such option".into(),
            })),
        }
    }
}
