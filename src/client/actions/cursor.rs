//! A cursor's batches from the driver, decrypted as the stream reaches
//! them: what `find`, `aggregate` and `list_indexes` return (as a
//! [`Cursor`]).

use crate::client::auto::AutoEncrypter;
use crate::client::cursor::Cursor;
use crate::{ClientError, Error};
use futures_util::stream::{self, StreamExt};
use mongodb::ClientSession;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::sync::Arc;

/// Where a cursor's batches come from: the driver's raw batch cursor, on
/// its own or in a session.
pub(super) enum Batches<'a> {
    Implicit(mongodb::raw_batch_cursor::RawBatchCursor),
    Session(
        mongodb::raw_batch_cursor::SessionRawBatchCursor,
        &'a mut ClientSession,
    ),
}

impl Batches<'_> {
    async fn next(
        &mut self,
    ) -> Option<mongodb::error::Result<mongodb::raw_batch_cursor::RawBatch>> {
        match self {
            Batches::Implicit(c) => c.next().await,
            Batches::Session(c, s) => c.stream(s).next().await,
        }
    }
}

/// One batch of a cursor, decrypted (one key-vault query for the batch).
async fn decrypt_batch<U: DeserializeOwned>(
    auto: &AutoEncrypter,
    batch: mongodb::raw_batch_cursor::RawBatch,
) -> Result<VecDeque<U>, Error> {
    let docs = batch
        .doc_slices()?
        .into_iter()
        .map(|d| match d? {
            bson::RawBsonRef::Document(d) => Ok(d),
            _ => Err(Error::Client(ClientError::UnsupportedOption {
                command: "getMore",
                field: "nextBatch".into(),
                reason: "a batch entry that is not a document".into(),
            })),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    decrypt_documents(auto, &docs).await
}

/// Documents read from the server, decrypted together (one key-vault
/// query) and deserialized.
async fn decrypt_documents<U: DeserializeOwned>(
    auto: &AutoEncrypter,
    docs: &[&bson::RawDocument],
) -> Result<VecDeque<U>, Error> {
    // Every document decrypted (or found to hold nothing encrypted, and
    // left as it came) before any is deserialized; each deserialized once,
    // straight from its bytes.
    let decrypted = auto.client_encryption().decrypt_raw_batch(docs).await?;
    docs.iter()
        .zip(decrypted)
        .map(|(d, plain)| -> Result<U, Error> {
            let bytes = match &plain {
                Some(plain) => plain.as_slice(),
                None => d.as_bytes(),
            };
            Ok(bson::from_slice(bytes)?)
        })
        .collect()
}

/// One document read by `find_one`, decrypted as a batch of one (one
/// key-vault query) and deserialized once, straight from its bytes.
pub(super) async fn decrypt_one<U: DeserializeOwned>(
    auto: &AutoEncrypter,
    doc: &bson::RawDocument,
) -> Result<U, Error> {
    decrypt_documents(auto, &[doc])
        .await?
        .pop_front()
        .ok_or(Error::Client(ClientError::InvalidReply {
            command: "find",
            reason: "a decrypted batch of one document held none",
        }))
}

/// The documents of a cursor, decrypted batch by batch. The first batch
/// is decrypted now (a decryption error is the operation's, as in the
/// drivers); the rest as the stream reaches them. Dropping the stream
/// early drops the driver's cursor, which kills it on the server.
pub(super) async fn decrypted_cursor<'a, U>(
    auto: Arc<AutoEncrypter>,
    mut batches: Batches<'a>,
) -> Result<Cursor<'a, U>, Error>
where
    U: DeserializeOwned + Send + 'static,
{
    let first = match batches.next().await {
        Some(batch) => decrypt_batch(&auto, batch?).await?,
        None => VecDeque::new(),
    };
    Ok(Cursor::new(
        stream::try_unfold(
            (first, batches, auto),
            |(mut buffered, mut batches, auto)| async move {
                loop {
                    if let Some(d) = buffered.pop_front() {
                        return Ok(Some((d, (buffered, batches, auto))));
                    }
                    match batches.next().await {
                        None => return Ok(None),
                        Some(batch) => buffered = decrypt_batch(&auto, batch?).await?,
                    }
                }
            },
        )
        .boxed(),
    ))
}
