//! The reading operations: `find`, `find_one`, `aggregate`,
//! `count_documents`, `distinct`.

use super::cursor::{Batches, decrypt_one, decrypted_cursor};
use super::macros::{collation_value, hint_value, millis};
use super::{Access, Exec, carries_encryption_information, open_sent, reply_count, run_sent};
use crate::client::collection::EncryptedCollection;
use crate::client::command::Fields;
use crate::client::cursor::Cursor;
use crate::{ClientError, Error};
use bson::{Bson, Document, RawDocumentBuf, doc};
use futures_util::future::BoxFuture;
use futures_util::stream::StreamExt;
use mongodb::ClientSession;
use mongodb::options::{
    AggregateOptions, Collation, CountOptions, DistinctOptions, FindOneOptions, FindOptions, Hint,
    ReadConcern, SelectionCriteria, WriteConcern,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

command_fields!(Find, FindOne, Aggregate, CountDocuments, Distinct);
exec_setters!(session: Find, FindOne, Aggregate, CountDocuments, Distinct);
exec_setters!(reads: Find, FindOne, Aggregate, CountDocuments, Distinct);
exec_setters!(writes: Aggregate);

/// `find`: the matching documents, decrypted, as a stream that follows the
/// driver's cursor (dropping it early kills the cursor on the server).
#[must_use = "an action does nothing until awaited"]
pub struct Find<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

setters!(Find via set: sort, projection, limit, skip, hint, collation, comment, max_time, let_vars, allow_disk_use, min, max);

impl<T> Find<'_, T> {
    /// How many documents the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.cmd
            .insert("batchSize", i32::try_from(size).unwrap_or(i32::MAX));
        self
    }
}

impl<'a, T> Find<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Cursor<'a, T>, Error> {
        let sent = self.coll.encrypt(self.cmd).await?;
        if carries_encryption_information(&sent) {
            let batch_size = batch_size(sent.get("batchSize"));
            return open_sent(self.coll, sent, self.exec, batch_size).await;
        }
        let mut f = Fields::new("find", sent);
        let filter = f.doc("filter")?.unwrap_or_default();
        let mut o = FindOptions::default();
        o.sort = f.doc("sort")?;
        o.projection = f.doc("projection")?;
        o.limit = f.i64("limit")?;
        o.skip = f.u64("skip")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.comment = f.bson("comment");
        o.max_time = f.millis("maxTimeMS")?;
        o.let_vars = f.doc("let")?;
        o.allow_disk_use = f.bool("allowDiskUse")?;
        o.batch_size = f.u32("batchSize")?;
        o.min = f.doc("min")?;
        o.max = f.doc("max")?;
        if f.bool("singleBatch")? == Some(true) {
            // The driver's spelling of a single batch: a negative limit.
            o.limit = Some(-o.limit.unwrap_or(1).abs());
        }
        f.finish()?;
        o.read_concern = self.exec.read_concern;
        o.selection_criteria = self.exec.selection_criteria;
        let coll = self.coll.documents();
        let auto = Arc::clone(self.coll.auto());
        let batches = open_batches!(self.exec.session, coll.find(filter).with_options(o));
        decrypted_cursor(auto, batches).await
    }
}

/// `find` of the first matching document.
#[must_use = "an action does nothing until awaited"]
pub struct FindOne<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

setters!(FindOne via set: sort, projection, skip, hint, collation, comment, max_time, let_vars);

impl<T> FindOne<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<Option<T>, Error> {
        let sent = self.coll.encrypt(self.cmd).await?;
        if carries_encryption_information(&sent) {
            let mut found: Cursor<'_, T> = open_sent(self.coll, sent, self.exec, None).await?;
            return found.next().await.transpose();
        }
        // The driver's own `find_one` (as the plain driver reads one
        // document): a single batch, no cursor left open, and none of a
        // batch cursor's set-up. The analysed command is taken apart into
        // its options, every field taken or refused.
        let mut f = Fields::new("find", sent);
        let filter = f.doc("filter")?.unwrap_or_default();
        let mut o = FindOneOptions::default();
        o.sort = f.doc("sort")?;
        o.projection = f.doc("projection")?;
        o.skip = f.u64("skip")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.comment = f.bson("comment");
        o.max_time = f.millis("maxTimeMS")?;
        o.let_vars = f.doc("let")?;
        // What `find_one` itself sends: the first document, in one batch.
        let limit = f.i64("limit")?;
        let single_batch = f.bool("singleBatch")?;
        for (field, taken) in [
            ("limit", limit == Some(1)),
            ("singleBatch", single_batch == Some(true)),
        ] {
            if !taken {
                return Err(Error::Client(ClientError::UnsupportedOption {
                    command: "find",
                    field: field.into(),
                    reason: "find_one reads one document in one batch".into(),
                }));
            }
        }
        f.finish()?;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let driver = self.coll.documents().clone_with_type::<RawDocumentBuf>();
        let found = with_session!(
            &mut self.exec.session,
            driver.find_one(filter).with_options(o)
        );
        match found {
            None => Ok(None),
            Some(doc) => decrypt_one(self.coll.auto(), &doc).await.map(Some),
        }
    }
}

/// `aggregate`: the results, decrypted, as a stream of documents.
#[must_use = "an action does nothing until awaited"]
pub struct Aggregate<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

setters!(Aggregate via set: allow_disk_use, hint, collation, comment, max_time, let_vars, bypass_document_validation);

impl<T> Aggregate<'_, T> {
    /// How many documents the server returns per batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.cmd.insert(
            "cursor",
            doc! {"batchSize": i32::try_from(size).unwrap_or(i32::MAX)},
        );
        self
    }
}

impl<'a, T> Aggregate<'a, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(self) -> Result<Cursor<'a, Document>, Error> {
        let sent = self.coll.encrypt(self.cmd).await?;
        if carries_encryption_information(&sent) {
            let batch_size = batch_size(
                sent.get_document("cursor")
                    .ok()
                    .and_then(|c| c.get("batchSize")),
            );
            return open_sent(self.coll, sent, self.exec, batch_size).await;
        }
        let mut f = Fields::new("aggregate", sent);
        let pipeline = f.docs("pipeline")?.unwrap_or_default();
        let mut o = AggregateOptions::default();
        if let Some(cursor) = f.doc("cursor")? {
            let mut c = Fields::statement("aggregate", cursor);
            o.batch_size = c.u32("batchSize")?;
            c.finish()?;
        }
        o.allow_disk_use = f.bool("allowDiskUse")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.comment = f.bson("comment");
        o.max_time = f.millis("maxTimeMS")?;
        o.let_vars = f.doc("let")?;
        o.bypass_document_validation = f.bool("bypassDocumentValidation")?;
        f.finish()?;
        o.read_concern = self.exec.read_concern;
        o.selection_criteria = self.exec.selection_criteria;
        o.write_concern = self.exec.write_concern;
        let driver = self.coll.documents();
        let auto = Arc::clone(self.coll.auto());
        let batches = open_batches!(
            self.exec.session,
            driver.aggregate(pipeline).with_options(o)
        );
        decrypted_cursor(auto, batches).await
    }
}

/// `count` of the matching documents: analysed as the `count` command, run
/// by the driver's `count_documents` (whose `$match` is the analysed,
/// encrypted filter).
#[must_use = "an action does nothing until awaited"]
pub struct CountDocuments<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

setters!(CountDocuments via set: limit, skip, hint, collation, max_time, comment);

impl<T> CountDocuments<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<u64, Error> {
        let sent = self.coll.encrypt(self.cmd).await?;
        if carries_encryption_information(&sent) {
            let reply = run_sent(self.coll, sent, &mut self.exec, Access::Read).await?;
            return Ok(reply_count(&reply, "n"));
        }
        let mut f = Fields::new("count", sent);
        let query = f.doc("query")?.unwrap_or_default();
        let mut o = CountOptions::default();
        o.limit = f.u64("limit")?;
        o.skip = f.u64("skip")?;
        o.hint = f.hint("hint")?;
        o.collation = f.collation("collation")?;
        o.max_time = f.millis("maxTimeMS")?;
        o.comment = f.bson("comment");
        f.finish()?;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let driver = self.coll.documents();
        Ok(with_session!(
            &mut self.exec.session,
            driver.count_documents(query).with_options(o)
        ))
    }
}

/// `distinct`: the distinct values of a field, decrypted.
#[must_use = "an action does nothing until awaited"]
pub struct Distinct<'a, T> {
    pub(super) coll: &'a EncryptedCollection<T>,
    pub(super) cmd: Document,
    pub(super) exec: Exec<'a>,
}

setters!(Distinct via set: collation, max_time, comment);

impl<T> Distinct<'_, T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(mut self) -> Result<Vec<Bson>, Error> {
        let sent = self.coll.encrypt(self.cmd).await?;
        if carries_encryption_information(&sent) {
            // The reply comes back decrypted.
            let reply = run_sent(self.coll, sent, &mut self.exec, Access::Read).await?;
            return Ok(reply.get_array("values").cloned().unwrap_or_default());
        }
        let mut f = Fields::new("distinct", sent);
        let key = match f.bson("key") {
            Some(Bson::String(k)) => k,
            _ => {
                return Err(Error::Client(ClientError::UnsupportedOption {
                    command: "distinct",
                    field: "key".into(),
                    reason: "expected a field name".into(),
                }));
            }
        };
        let query = f.doc("query")?.unwrap_or_default();
        let mut o = DistinctOptions::default();
        o.collation = f.collation("collation")?;
        o.max_time = f.millis("maxTimeMS")?;
        o.comment = f.bson("comment");
        f.finish()?;
        o.read_concern = self.exec.read_concern.take();
        o.selection_criteria = self.exec.selection_criteria.take();
        let driver = self.coll.documents();
        let values = with_session!(
            &mut self.exec.session,
            driver.distinct(key, query).with_options(o)
        );
        let reply = self
            .coll
            .auto()
            .client_encryption()
            .decrypt_document(&doc! {"values": values})
            .await?;
        Ok(reply.get_array("values").cloned().unwrap_or_default())
    }
}

/// A command's `batchSize`, for the `getMore`s of a cursor opened as it
/// is (an out-of-range or missing one leaves the server's default).
fn batch_size(value: Option<&Bson>) -> Option<u32> {
    match value {
        Some(Bson::Int32(n)) => u32::try_from(*n).ok(),
        Some(Bson::Int64(n)) => u32::try_from(*n).ok(),
        _ => None,
    }
}

into_future! {
    Find => Result<Cursor<'a, T>, Error>,
    FindOne => Result<Option<T>, Error>,
    Aggregate => Result<Cursor<'a, Document>, Error>,
    CountDocuments => Result<u64, Error>,
    Distinct => Result<Vec<Bson>, Error>,
}

/// The reading operations: each returns its action, which runs when awaited.
impl<T> EncryptedCollection<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// The documents matching `filter`, as a stream that follows the cursor
    /// (`getMore`) and decrypts every batch.
    pub fn find(&self, filter: Document) -> Find<'_, T> {
        Find {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter},
            exec: Exec::default(),
        }
    }

    /// The first document matching `filter`.
    pub fn find_one(&self, filter: Document) -> FindOne<'_, T> {
        FindOne {
            coll: self,
            cmd: doc! {"find": self.name(), "filter": filter, "limit": 1i64, "singleBatch": true},
            exec: Exec::default(),
        }
    }

    /// Runs an aggregation; the results, decrypted, as a stream of documents.
    pub fn aggregate(&self, pipeline: impl IntoIterator<Item = Document>) -> Aggregate<'_, T> {
        let pipeline: Vec<Document> = pipeline.into_iter().collect();
        Aggregate {
            coll: self,
            cmd: doc! {"aggregate": self.name(), "pipeline": pipeline, "cursor": {}},
            exec: Exec::default(),
        }
    }

    /// The number of matching documents (the `count` command, which
    /// automatic encryption can analyze).
    pub fn count_documents(&self, filter: Document) -> CountDocuments<'_, T> {
        CountDocuments {
            coll: self,
            cmd: doc! {"count": self.name(), "query": filter},
            exec: Exec::default(),
        }
    }

    /// The distinct values of `field` among matching documents, decrypted.
    pub fn distinct(&self, field: &str, filter: Document) -> Distinct<'_, T> {
        Distinct {
            coll: self,
            cmd: doc! {"distinct": self.name(), "key": field, "query": filter},
            exec: Exec::default(),
        }
    }
}
