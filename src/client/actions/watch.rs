//! `watch`: a change stream whose events come back decrypted (the full
//! document, the updated fields, pre- and post-images), resumed by the
//! driver after transient errors.

use super::Exec;
use crate::client::auto::AutoEncrypter;
use crate::client::collection::EncryptedCollection;
use crate::client::command::Fields;
use crate::client::cursor::Cursor;
use crate::{ClientError, Error};
use bson::{Bson, Document, Timestamp, doc};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use mongodb::ClientSession;
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::options::{
    ChangeStreamOptions, Collation, FullDocumentBeforeChangeType, FullDocumentType, ReadConcern,
    SelectionCriteria,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;
use std::time::Duration;

exec_setters!(session: Watch);
exec_setters!(reads: Watch);

/// The `$changeStream` stage fields, which analysis sees (the others are
/// cursor options).
const STAGE_FIELDS: [&str; 6] = [
    "fullDocument",
    "fullDocumentBeforeChange",
    "resumeAfter",
    "startAfter",
    "startAtOperationTime",
    "showExpandedEvents",
];

/// `watch`: change events, decrypted, as a stream.
#[must_use = "an action does nothing until awaited"]
pub struct Watch<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) pipeline: Vec<Document>,
    pub(super) options: ChangeStreamOptions,
    pub(super) exec: Exec<'a>,
}

impl<T> Watch<'_, T> {
    /// Stages after `$changeStream` (`$match` on event fields, …), analysed
    /// against the shape of change events.
    pub fn pipeline(mut self, pipeline: impl IntoIterator<Item = Document>) -> Self {
        self.pipeline = pipeline.into_iter().collect();
        self
    }

    /// Whether update events carry the whole document (`fullDocument`).
    pub fn full_document(mut self, full: FullDocumentType) -> Self {
        self.options.full_document = Some(full);
        self
    }

    /// Whether events carry the pre-image (`fullDocumentBeforeChange`).
    pub fn full_document_before_change(mut self, before: FullDocumentBeforeChangeType) -> Self {
        self.options.full_document_before_change = Some(before);
        self
    }

    /// Resume after this event.
    pub fn resume_after(mut self, token: ResumeToken) -> Self {
        self.options.resume_after = Some(token);
        self
    }

    /// Start after this event (also after an invalidate).
    pub fn start_after(mut self, token: ResumeToken) -> Self {
        self.options.start_after = Some(token);
        self
    }

    /// Start at this cluster time.
    pub fn start_at_operation_time(mut self, time: Timestamp) -> Self {
        self.options.start_at_operation_time = Some(time);
        self
    }

    /// Whether to show expanded events (DDL and more).
    pub fn show_expanded_events(mut self, show: bool) -> Self {
        self.options.show_expanded_events = Some(show);
        self
    }

    /// How many events the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.options.batch_size = Some(size);
        self
    }

    /// How long the server waits for new events before an empty batch.
    pub fn max_await_time(mut self, time: Duration) -> Self {
        self.options.max_await_time = Some(time);
        self
    }

    /// The collation of the pipeline.
    pub fn collation(mut self, collation: Collation) -> Self {
        self.options.collation = Some(collation);
        self
    }

    /// A comment the server logs with the command.
    pub fn comment(mut self, comment: impl Into<Bson>) -> Self {
        self.options.comment = Some(comment.into());
        self
    }
}

/// An event as the driver delivers it (raw), decrypted, then typed.
async fn decrypt_event<T: DeserializeOwned>(
    auto: &AutoEncrypter,
    event: Document,
) -> Result<ChangeStreamEvent<T>, Error> {
    Ok(bson::from_document(
        auto.client_encryption().decrypt_document(&event).await?,
    )?)
}

impl<'a, T> Watch<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<Cursor<'a, ChangeStreamEvent<T>>, Error> {
        let stage: Document = bson::to_document(&self.options)?
            .into_iter()
            .filter(|(k, _)| STAGE_FIELDS.contains(&k.as_str()))
            .collect();
        let mut pipeline = vec![doc! {"$changeStream": stage}];
        pipeline.extend(std::mem::take(&mut self.pipeline));
        let cmd = doc! {"aggregate": self.coll.name(), "pipeline": pipeline, "cursor": {}};
        let mut f = Fields::new("aggregate", self.coll.encrypt(cmd).await?);
        let mut sent = f.docs("pipeline")?.unwrap_or_default().into_iter();
        f.doc("cursor")?;
        f.finish()?;
        let mut first = match sent.next() {
            Some(d) => Fields::statement("aggregate", d),
            None => {
                return Err(Error::Client(ClientError::UnsupportedOption {
                    command: "aggregate",
                    field: "pipeline".into(),
                    reason: "the $changeStream stage is missing".into(),
                }));
            }
        };
        let stage = first.doc("$changeStream")?.unwrap_or_default();
        first.finish()?;
        let analysed: ChangeStreamOptions = bson::from_document(stage)?;
        let o = &mut self.options;
        o.full_document = analysed.full_document;
        o.full_document_before_change = analysed.full_document_before_change;
        o.resume_after = analysed.resume_after;
        o.start_after = analysed.start_after;
        o.start_at_operation_time = analysed.start_at_operation_time;
        o.show_expanded_events = analysed.show_expanded_events;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let rest: Vec<Document> = sent.collect();
        let driver = self.coll.documents();
        let auto = std::sync::Arc::clone(self.coll.auto());
        match self.exec.session {
            None => {
                let events = driver
                    .watch()
                    .pipeline(rest)
                    .with_options(self.options)
                    .await?
                    .with_type::<Document>();
                Ok(Cursor::new(
                    events
                        .then(move |e| {
                            let auto = std::sync::Arc::clone(&auto);
                            async move { decrypt_event(&auto, e?).await }
                        })
                        .boxed(),
                ))
            }
            Some(s) => {
                let events = driver
                    .watch()
                    .pipeline(rest)
                    .with_options(self.options)
                    .session(&mut *s)
                    .await?
                    .with_type::<Document>();
                Ok(Cursor::new(
                    stream::try_unfold((events, s, auto), |(mut events, s, auto)| async move {
                        match events.next(s).await? {
                            None => Ok(None),
                            Some(e) => {
                                Ok(Some((decrypt_event(&auto, e).await?, (events, s, auto))))
                            }
                        }
                    })
                    .boxed(),
                ))
            }
        }
    }
}

into_future! {
    Watch => Result<Cursor<'a, ChangeStreamEvent<T>>, Error>,
}

impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// A change stream over this collection, its events decrypted.
    pub fn watch(&self) -> Watch<'_, T> {
        Watch {
            coll: self,
            pipeline: Vec::new(),
            options: ChangeStreamOptions::default(),
            exec: Exec::default(),
        }
    }
}
