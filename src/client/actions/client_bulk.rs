//! The client-level bulk write ([`EncryptedClient::bulk_write`]): the
//! `mongodb` crate's write models of one namespace sent as the server's
//! `bulkWrite` command (MongoDB 8.0 and later), encrypted as libmongocrypt
//! 1.10 and later encrypt it.
//!
//! The command is built as the driver builds it
//! (`{bulkWrite: 1, errorsOnly, ordered, …, ops, nsInfo: [{ns}]}`, each
//! insert given an `_id` when its document has none), then goes through
//! automatic encryption on `admin` like any command: on a Queryable
//! Encryption collection every operation is analysed and its values
//! encrypted, the `encryptionInformation` inside the `nsInfo` entry
//! (inserts, or one update or delete: query analysis and the server refuse
//! an update or a delete beside other operations); on a
//! namespace without a schema it is sent as it is; on a namespace with an
//! FLE1 schema it is refused (`analysis::Error::BulkWrite`), nothing sent.
//! Models of more than one namespace are refused before anything is sent,
//! in libmongocrypt's words: query analysis supports one.
//!
//! Operations are sent in batches as drivers batch writes under automatic
//! encryption (2 MiB of operations, 100,000 at most, a batch always holding
//! one), each batch one command in the operation's session, with its write
//! concern; ordered, no batch follows one with a write error. The reply's
//! counts are summed (each at most the operations sent), its results
//! cursor (asked for with `errorsOnly`: the failures only, each operation's
//! at most once) read to the end with `getMore` on `admin.$cmd.bulkWrite`,
//! in the same session. Nothing in the replies is decrypted: the failures
//! are read as the server sent them, and a success result (which could
//! carry a stored ciphertext as an upserted `_id`) is an invalid reply; the
//! result is a summary, as the `mongodb` crate's `SummaryBulkWriteResult`
//! (the upserted `_id`s are not reported). Like the commands other
//! operations send as they are, a
//! `bulkWrite` is not retried by the driver.

use super::write::with_generated_id;
use super::{Exec, reply_count};
use crate::analysis;
use crate::client::collection::EncryptedClient;
use crate::error::{ClientBulkWriteResult, ServerWriteError};
use crate::{ClientError, Error};
use bson::{Bson, Document, doc};
use futures_util::future::BoxFuture;
use mongodb::ClientSession;
use mongodb::options::{UpdateModifications, WriteConcern, WriteModel};
use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::ops::Range;

/// The database the `bulkWrite` command runs on.
const ADMIN: &str = "admin";
/// The collection of its results cursor, for `getMore`.
const RESULTS: &str = "$cmd.bulkWrite";
/// The most plaintext bytes of operations in one command (the limit
/// drivers apply to writes under automatic encryption).
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The server's maxWriteBatchSize.
const MAX_BATCH_OPS: usize = 100_000;

/// A client-level bulk write
/// ([`EncryptedClient::bulk_write`]): awaiting it runs it.
#[must_use = "an action does nothing until awaited"]
pub struct ClientBulkWrite<'a> {
    client: &'a EncryptedClient,
    models: Vec<WriteModel>,
    /// The command's options, in the order they are sent.
    options: Document,
    exec: Exec<'a>,
}

impl<'a> ClientBulkWrite<'a> {
    /// Stop at the first failing operation (the default), or run them
    /// all.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.options.insert("ordered", ordered);
        self
    }

    /// Skip the collection's document validation.
    pub fn bypass_document_validation(mut self, bypass: bool) -> Self {
        self.options.insert("bypassDocumentValidation", bypass);
        self
    }

    /// A comment the server logs and profiles with the command.
    pub fn comment(mut self, comment: impl Into<Bson>) -> Self {
        self.options.insert("comment", comment.into());
        self
    }

    /// Variables for the operations' expressions (`let`; checked by
    /// analysis as every command's: none may read an encrypted field).
    pub fn let_vars(mut self, vars: Document) -> Self {
        self.options.insert("let", vars);
        self
    }

    /// The write concern of this bulk write (else, outside a session, the
    /// client's).
    pub fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.exec.write_concern = Some(concern);
        self
    }

    /// Runs the bulk write in this session (and in its transaction, when
    /// one is started). Key-vault reads and schema lookups stay outside
    /// it, as in libmongocrypt.
    pub fn session(mut self, session: &'a mut ClientSession) -> Self {
        self.exec.session = Some(session);
        self
    }
}

/// What the replies said, summed over the batches.
#[derive(Default)]
struct Outcome {
    result: ClientBulkWriteResult,
    write_errors: BTreeMap<usize, ServerWriteError>,
    write_concern_errors: Vec<ServerWriteError>,
}

/// A reply csfle cannot read.
fn invalid(command: &'static str, reason: &'static str) -> Error {
    Error::Client(ClientError::InvalidReply { command, reason })
}

/// A model the bulk write cannot send.
fn invalid_model(reason: &'static str) -> Error {
    Error::Client(ClientError::InvalidArgument {
        argument: "models",
        reason,
    })
}

/// The namespace of a model; a model this version does not know is
/// refused.
fn model_namespace(model: &WriteModel) -> Result<&mongodb::Namespace, Error> {
    Ok(match model {
        WriteModel::InsertOne(m) => &m.namespace,
        WriteModel::UpdateOne(m) => &m.namespace,
        WriteModel::UpdateMany(m) => &m.namespace,
        WriteModel::ReplaceOne(m) => &m.namespace,
        WriteModel::DeleteOne(m) => &m.namespace,
        WriteModel::DeleteMany(m) => &m.namespace,
        _ => return Err(unknown_model()),
    })
}

fn unknown_model() -> Error {
    invalid_model("a write model csfle does not know")
}

/// The one namespace of `models` (`db.coll`): models of two namespaces
/// are refused in libmongocrypt's words, and so is a namespace the server
/// would read as another one.
fn one_namespace(models: &[WriteModel]) -> Result<String, Error> {
    let mut found: Option<&mongodb::Namespace> = None;
    for model in models {
        let ns = model_namespace(model)?;
        match found {
            None => found = Some(ns),
            Some(first) if first == ns => {}
            Some(_) => return Err(analysis::Error::BulkWriteNamespaces.into()),
        }
    }
    let Some(ns) = found else {
        return Err(invalid_model("a bulk write needs at least one write model"));
    };
    if ns.db.is_empty()
        || ns.coll.is_empty()
        || ns.db.contains(['.', '\0'])
        || ns.coll.contains('\0')
    {
        return Err(invalid_model(
            "a namespace needs a database name without '.' and a collection name",
        ));
    }
    Ok(ns.to_string())
}

/// Inserts `value` under `key` when there is one.
fn put(op: &mut Document, key: &str, value: Option<impl Into<Bson>>) {
    if let Some(v) = value {
        op.insert(key, v.into());
    }
}

/// An update's `updateMods`: update operators (the first key `$`-prefixed,
/// as the driver requires) or a pipeline.
fn update_mods(update: UpdateModifications) -> Result<Bson, Error> {
    match update {
        UpdateModifications::Document(d) => match d.keys().next() {
            Some(k) if k.starts_with('$') => Ok(Bson::Document(d)),
            Some(_) => Err(invalid_model(
                "an update document must only contain update operators",
            )),
            None => Err(invalid_model("an update document must not be empty")),
        },
        UpdateModifications::Pipeline(stages) => Ok(Bson::Array(
            stages.into_iter().map(Bson::Document).collect(),
        )),
        _ => Err(unknown_model()),
    }
}

/// The operation of `model` as the driver writes it (every one naming
/// `nsInfo` entry 0), and for an insert the `_id` of its document
/// (generated when missing, first in the document).
fn operation(model: WriteModel) -> Result<(Document, Option<Bson>), Error> {
    Ok(match model {
        WriteModel::InsertOne(m) => {
            let document = with_generated_id(m.document);
            let id = document.get("_id").cloned().unwrap_or(Bson::Null);
            (doc! {"insert": 0, "document": document}, Some(id))
        }
        WriteModel::UpdateOne(m) => {
            let mut op = doc! {"update": 0, "multi": false, "filter": m.filter, "updateMods": update_mods(m.update)?};
            put(&mut op, "arrayFilters", m.array_filters);
            put(&mut op, "collation", m.collation);
            put(&mut op, "hint", m.hint);
            put(&mut op, "upsert", m.upsert);
            put(&mut op, "sort", m.sort);
            (op, None)
        }
        WriteModel::UpdateMany(m) => {
            let mut op = doc! {"update": 0, "multi": true, "filter": m.filter, "updateMods": update_mods(m.update)?};
            put(&mut op, "arrayFilters", m.array_filters);
            put(&mut op, "collation", m.collation);
            put(&mut op, "hint", m.hint);
            put(&mut op, "upsert", m.upsert);
            (op, None)
        }
        WriteModel::ReplaceOne(m) => {
            if m.replacement
                .keys()
                .next()
                .is_some_and(|k| k.starts_with('$'))
            {
                return Err(invalid_model(
                    "a replacement document must not contain update operators",
                ));
            }
            let mut op =
                doc! {"update": 0, "multi": false, "filter": m.filter, "updateMods": m.replacement};
            put(&mut op, "collation", m.collation);
            put(&mut op, "hint", m.hint);
            put(&mut op, "upsert", m.upsert);
            put(&mut op, "sort", m.sort);
            (op, None)
        }
        WriteModel::DeleteOne(m) => {
            let mut op = doc! {"delete": 0, "multi": false, "filter": m.filter};
            put(&mut op, "collation", m.collation);
            put(&mut op, "hint", m.hint);
            (op, None)
        }
        WriteModel::DeleteMany(m) => {
            let mut op = doc! {"delete": 0, "multi": true, "filter": m.filter};
            put(&mut op, "collation", m.collation);
            put(&mut op, "hint", m.hint);
            (op, None)
        }
        _ => return Err(unknown_model()),
    })
}

/// `ops` cut into the batches sent (ranges of indexes): each under
/// [`MAX_BATCH_BYTES`] of operations and [`MAX_BATCH_OPS`] operations,
/// except a batch of one larger operation.
fn batches(ops: &[Document]) -> Result<Vec<Range<usize>>, Error> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, op) in ops.iter().enumerate() {
        let mut buf = Vec::new();
        op.to_writer(&mut buf)?;
        let size = buf.len();
        if i > start && (bytes.saturating_add(size) > MAX_BATCH_BYTES || i - start == MAX_BATCH_OPS)
        {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
    }
    if start < ops.len() {
        out.push(start..ops.len());
    }
    Ok(out)
}

/// Whether a result of the cursor says its operation succeeded: `ok` 1
/// and no `code`. Anything else is read as a failure.
fn succeeded(entry: &Document) -> bool {
    let ok = match entry.get("ok") {
        Some(Bson::Double(x)) => x.total_cmp(&1.0).is_eq(),
        Some(Bson::Int32(x)) => *x == 1,
        Some(Bson::Int64(x)) => *x == 1,
        Some(Bson::Boolean(b)) => *b,
        _ => false,
    };
    ok && !entry.contains_key("code")
}

/// A results cursor's id.
fn cursor_id(command: &'static str, cursor: &Document) -> Result<i64, Error> {
    match cursor.get("id") {
        Some(Bson::Int64(id)) => Ok(*id),
        Some(Bson::Int32(id)) => Ok(i64::from(*id)),
        _ => Err(invalid(command, "its results cursor has no id")),
    }
}

/// The results of one batch of the cursor (`firstBatch`, `nextBatch`):
/// each naming an operation of the command (`idx`, below `len`), which is
/// model `offset + idx`. The command asks for errors only, so every result
/// must be a failure, each operation's at most once: a success entry (which
/// could carry an upserted `_id` for the client to decrypt) or a second
/// result for one operation is an invalid reply, which also bounds the
/// results, and so the `getMore`s, by the operations. Returns how many
/// results there were.
fn read_results(
    command: &'static str,
    results: &[Bson],
    offset: usize,
    len: usize,
    outcome: &mut Outcome,
) -> Result<usize, Error> {
    for entry in results {
        let Bson::Document(entry) = entry else {
            return Err(invalid(command, "a result is not a document"));
        };
        let idx = match entry.get("idx") {
            Some(Bson::Int32(i)) => usize::try_from(*i).ok(),
            Some(Bson::Int64(i)) => usize::try_from(*i).ok(),
            _ => None,
        };
        let Some(idx) = idx.filter(|i| *i < len) else {
            return Err(invalid(
                command,
                "a result names no operation of the command",
            ));
        };
        if succeeded(entry) {
            return Err(invalid(
                command,
                "a success result in a reply of errors only",
            ));
        }
        match outcome.write_errors.entry(offset + idx) {
            std::collections::btree_map::Entry::Occupied(_) => {
                return Err(invalid(command, "two results for one operation"));
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(ServerWriteError::from_reply(entry));
            }
        }
    }
    Ok(results.len())
}

/// The results array `key` of `cursor`.
fn batch<'c>(command: &'static str, cursor: &'c Document, key: &str) -> Result<&'c [Bson], Error> {
    match cursor.get(key) {
        Some(Bson::Array(results)) => Ok(results.as_slice()),
        _ => Err(invalid(command, "its results cursor has no batch")),
    }
}

impl ClientBulkWrite<'_> {
    /// The write concern sent: this bulk write's, else (outside a session,
    /// where a transaction's rules) the client's.
    fn write_concern_sent(&self) -> Option<WriteConcern> {
        self.exec.write_concern.clone().or_else(|| {
            self.client
                .inner()
                .write_concern()
                .filter(|_| self.exec.session.is_none())
                .cloned()
        })
    }

    /// Runs `command` on `admin` as it is (in the session, if any).
    async fn run_admin(&mut self, command: Document) -> Result<Document, Error> {
        let db = self.client.inner().database(ADMIN);
        let action = db.run_command(command);
        Ok(match self.exec.session.as_deref_mut() {
            None => action.await?,
            Some(s) => action.session(s).await?,
        })
    }

    /// Sends one batch, `ops` (models `offset..offset + ops.len()`) of the
    /// namespace `ns`, and reads its reply and results cursor into
    /// `outcome`.
    async fn send_batch(
        &mut self,
        ns: &str,
        ops: &[Document],
        offset: usize,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let mut command = doc! {"bulkWrite": 1, "errorsOnly": true};
        command.extend(self.options.clone());
        command.insert("ops", ops.to_vec());
        command.insert("nsInfo", vec![doc! {"ns": ns}]);
        let auto = self.client.auto_encrypter();
        let mut sent = auto.encrypt_command_owned(ADMIN, command).await?;
        // No user data: added after analysis, as other operations add
        // their concerns.
        if let Some(concern) = self.write_concern_sent() {
            sent.insert("writeConcern", bson::to_bson(&concern)?);
        }
        let reply = self.run_admin(sent).await?;
        // Each count at most the batch's operations: a hostile reply can
        // neither overflow the sums nor claim more than was sent.
        let r = &mut outcome.result;
        for (sum, key) in [
            (&mut r.inserted_count, "nInserted"),
            (&mut r.matched_count, "nMatched"),
            (&mut r.modified_count, "nModified"),
            (&mut r.upserted_count, "nUpserted"),
            (&mut r.deleted_count, "nDeleted"),
        ] {
            let n = reply_count(&reply, key);
            if n > ops.len() as u64 {
                return Err(invalid("bulkWrite", "a count above the operations sent"));
            }
            *sum += n;
        }
        if let Ok(error) = reply.get_document("writeConcernError") {
            outcome
                .write_concern_errors
                .push(ServerWriteError::from_reply(error));
        }
        let Ok(cursor) = reply.get_document("cursor") else {
            return Err(invalid("bulkWrite", "it has no results cursor"));
        };
        let mut id = cursor_id("bulkWrite", cursor)?;
        read_results(
            "bulkWrite",
            batch("bulkWrite", cursor, "firstBatch")?,
            offset,
            ops.len(),
            outcome,
        )?;
        // Each getMore brings at least one result of the command's
        // operations: more getMores than operations is a cursor that does
        // not end.
        let mut get_mores = 0usize;
        while id != 0 {
            if get_mores > ops.len() {
                self.kill_cursor(id).await;
                return Err(invalid("getMore", "the results cursor does not end"));
            }
            get_mores += 1;
            match self.next_results(id, offset, ops.len(), outcome).await {
                Ok(next) => id = next,
                Err(e) => {
                    self.kill_cursor(id).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// One `getMore` of the results cursor `id`, through automatic
    /// encryption (which sends it as it is); returns the cursor's next id.
    async fn next_results(
        &mut self,
        id: i64,
        offset: usize,
        len: usize,
        outcome: &mut Outcome,
    ) -> Result<i64, Error> {
        let auto = self.client.auto_encrypter();
        let sent = auto
            .encrypt_command_owned(ADMIN, doc! {"getMore": id, "collection": RESULTS})
            .await?;
        let reply = self.run_admin(sent).await?;
        let Ok(cursor) = reply.get_document("cursor") else {
            return Err(invalid("getMore", "it has no results cursor"));
        };
        let next = cursor_id("getMore", cursor)?;
        let n = read_results(
            "getMore",
            batch("getMore", cursor, "nextBatch")?,
            offset,
            len,
            outcome,
        )?;
        if n == 0 && next != 0 {
            return Err(invalid("getMore", "an empty batch of an open cursor"));
        }
        Ok(next)
    }

    /// Closes the results cursor `id` after a failure, best effort: the
    /// failure is what the caller is told.
    async fn kill_cursor(&mut self, id: i64) {
        let _ = self
            .run_admin(doc! {"killCursors": RESULTS, "cursors": [id]})
            .await;
    }

    /// On a Queryable Encryption collection a bulk write holds inserts, or
    /// one update or delete alone (mongocryptd's rule, which analysis
    /// applies to each command): checked over all the models before the
    /// first batch is sent, so a write split into batches is not refused
    /// half done.
    #[cfg(feature = "qe")]
    async fn check_queryable_mix(&self, ns: &str, ops: &[Document]) -> Result<(), Error> {
        let first_other = ops.iter().enumerate().find_map(|(index, op)| {
            op.keys()
                .next()
                .filter(|k| k.as_str() != "insert")
                .map(|k| (index, k.clone()))
        });
        let Some((index, op)) = first_other.filter(|_| ops.len() > 1) else {
            return Ok(());
        };
        let (db, coll) = ns
            .split_once('.')
            .ok_or_else(|| invalid("bulkWrite", "a namespace without a collection"))?;
        if self.client.auto_encrypter().is_queryable(db, coll).await? {
            return Err(analysis::Error::BulkWriteQueryableOps {
                index,
                op,
                ns: ns.to_owned(),
            }
            .into());
        }
        Ok(())
    }

    #[cfg(not(feature = "qe"))]
    async fn check_queryable_mix(&self, _ns: &str, _ops: &[Document]) -> Result<(), Error> {
        Ok(())
    }

    async fn run(mut self) -> Result<ClientBulkWriteResult, Error> {
        let models = std::mem::take(&mut self.models);
        let ns = one_namespace(&models)?;
        let ordered = self.options.get_bool("ordered").unwrap_or(true);
        let mut ops = Vec::with_capacity(models.len());
        let mut inserted: Vec<(usize, Bson)> = Vec::new();
        for (index, model) in models.into_iter().enumerate() {
            let (op, id) = operation(model)?;
            if let Some(id) = id {
                inserted.push((index, id));
            }
            ops.push(op);
        }
        self.check_queryable_mix(&ns, &ops).await?;
        let mut outcome = Outcome::default();
        for range in batches(&ops)? {
            let offset = range.start;
            self.send_batch(&ns, &ops[range], offset, &mut outcome)
                .await?;
            if ordered && !outcome.write_errors.is_empty() {
                break;
            }
        }
        // Ordered, nothing after the first failure was attempted.
        let first_failure = outcome.write_errors.keys().next().copied();
        let attempted = |i: usize| !ordered || first_failure.is_none_or(|f| i <= f);
        let mut result = outcome.result;
        result.inserted_ids = inserted
            .into_iter()
            .filter(|(i, _)| attempted(*i) && !outcome.write_errors.contains_key(i))
            .collect::<HashMap<usize, Bson>>();
        if outcome.write_errors.is_empty() && outcome.write_concern_errors.is_empty() {
            Ok(result)
        } else {
            Err(Error::Client(ClientError::ClientBulkWrite {
                result: Box::new(result),
                write_errors: outcome.write_errors,
                write_concern_errors: outcome.write_concern_errors,
            }))
        }
    }
}

impl<'a> IntoFuture for ClientBulkWrite<'a> {
    type Output = Result<ClientBulkWriteResult, Error>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        // The whole bulk write (schema lookup, keys, KMS, every command)
        // within the client's timeout, if it has one.
        let timeout = self.client.auto_encrypter().options().timeout;
        Box::pin(async move {
            match timeout {
                None => self.run().await,
                Some(after) => tokio::time::timeout(after, self.run())
                    .await
                    .unwrap_or(Err(Error::Client(ClientError::Timeout { after }))),
            }
        })
    }
}

impl EncryptedClient {
    /// A bulk write of `models` (the `mongodb` crate's
    /// [`WriteModel`](mongodb::options::WriteModel)s, in order) as one
    /// server `bulkWrite` command (MongoDB 8.0 and later), with automatic
    /// encryption as libmongocrypt 1.10 and later apply it: every model
    /// must name the same namespace (two are refused, nothing sent); on a
    /// Queryable Encryption collection each operation is analysed like
    /// the collection's own `insert`, `update` or `delete` and its values
    /// encrypted (inserts, or a single update, replacement or delete:
    /// query analysis and the server refuse an update or a delete beside
    /// other operations, "Only insert is supported in BulkWrite with
    /// multiple operations and Queryable Encryption."); on a namespace
    /// without a schema it is sent as it is; on an FLE1 namespace it is
    /// refused, nothing sent. An insert whose document has no `_id` gets
    /// one (an `ObjectId`), returned in
    /// [`ClientBulkWriteResult::inserted_ids`].
    ///
    /// Options are chained on the action (`ordered`,
    /// `bypass_document_validation`, `comment`, `let_vars`,
    /// `write_concern`, `session`); `.await` runs it. When operations fail,
    /// or the write concern is not satisfied, it fails with
    /// [`ClientError::ClientBulkWrite`], which holds each failure by the
    /// index of its model and what the others did. A command that fails
    /// as a whole (a network or server error) fails the bulk write with
    /// that error; earlier batches of a large bulk write stay applied.
    ///
    /// ```no_run
    /// # async fn run(client: csfle::EncryptedClient) -> Result<(), csfle::Error> {
    /// use mongodb::Namespace;
    /// use mongodb::options::{DeleteOneModel, InsertOneModel};
    ///
    /// let ns = Namespace::new("clinic", "patients");
    /// let insert = |ssn: &str| {
    ///     InsertOneModel::builder()
    ///         .namespace(ns.clone())
    ///         .document(bson::doc! {"ssn": ssn})
    ///         .build()
    /// };
    /// let result = client
    ///     .bulk_write([insert("457-55-5462"), insert("457-55-5463")])
    ///     .ordered(false)
    ///     .await?;
    /// assert_eq!(result.inserted_ids.len(), 2);
    /// // An update or a delete of a Queryable Encryption collection goes alone.
    /// let delete = DeleteOneModel::builder()
    ///     .namespace(ns.clone())
    ///     .filter(bson::doc! {"ssn": "457-55-5462"})
    ///     .build();
    /// assert_eq!(client.bulk_write([delete]).await?.deleted_count, 1);
    /// # Ok(()) }
    /// ```
    pub fn bulk_write(
        &self,
        models: impl IntoIterator<Item = impl Into<WriteModel>>,
    ) -> ClientBulkWrite<'_> {
        ClientBulkWrite {
            client: self,
            models: models.into_iter().map(Into::into).collect(),
            options: doc! {"ordered": true},
            exec: Exec::default(),
        }
    }
}
