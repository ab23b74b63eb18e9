//! `csfle find` and `csfle export`: a selection of a collection, its filter
//! encrypted by automatic encryption, its documents decrypted, written as
//! MongoDB's database tools write them.

use crate::audit::{audited, field_names, filter_shape};
use crate::common::{
    AtomicOutput, CollectionArgs, Failure, print_summary, progress_bar, runtime_error, usage,
};
use bson::{Bson, Document, RawDocumentBuf, doc};
use clap::{Args, ValueEnum};
use csfle::{ENCRYPTION_INFORMATION, ejson};
use futures_util::StreamExt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum JsonFormat {
    /// Every BSON type spelled out: types survive a round trip.
    Canonical,
    /// Numbers and dates as plain JSON where they can be: for reading.
    Relaxed,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportType {
    Json,
    Csv,
}

/// Which documents: the query of `find` and `export`.
#[derive(Args)]
pub(crate) struct SelectionArgs {
    #[command(flatten)]
    pub(crate) collection: CollectionArgs,
    /// Query filter (Extended JSON); equality on deterministically
    /// encrypted fields works, and on a Queryable Encryption collection
    /// equality on its equality fields and ranges on its range fields;
    /// anything that cannot be made safe is refused.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub(crate) filter: String,
    /// Projection (Extended JSON).
    #[arg(long, value_name = "JSON")]
    pub(crate) projection: Option<String>,
    /// Sort (Extended JSON).
    #[arg(long, value_name = "JSON")]
    pub(crate) sort: Option<String>,
    /// Documents to skip.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) skip: u64,
    #[command(flatten)]
    pub(crate) audit: crate::common::AuditArgs,
    /// Query a collection that has no schema (nothing in it is encrypted:
    /// the filter goes out as written). Without it, a collection with no
    /// --schema-map or --encrypted-fields-map entry and neither a schema
    /// nor an encryptedFields on the server is refused before the query is
    /// sent.
    #[arg(long)]
    pub(crate) allow_plaintext: bool,
}

#[derive(Args)]
pub(crate) struct FindArgs {
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    /// At most N documents (0: all).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: u64,
    /// Extended JSON flavour of the output.
    #[arg(long, value_enum, default_value = "relaxed")]
    pub(crate) json_format: JsonFormat,
    /// Indented output instead of one document per line.
    #[arg(long)]
    pub(crate) pretty: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    /// At most N documents (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) limit: u64,
    /// Output file (mode 0600); default standard output. Written to a
    /// temporary file beside it and moved into place when the export is
    /// complete: an export that fails leaves nothing at FILE. An existing
    /// FILE is refused unless --force.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long, requires = "out")]
    pub(crate) force: bool,
    /// Output format.
    #[arg(long = "type", value_enum, default_value = "json")]
    pub(crate) kind: ExportType,
    /// Extended JSON flavour (JSON output).
    #[arg(long, value_enum, default_value = "canonical")]
    pub(crate) json_format: JsonFormat,
    /// One JSON array instead of one document per line.
    #[arg(long)]
    pub(crate) json_array: bool,
    /// Indented JSON.
    #[arg(long)]
    pub(crate) pretty: bool,
    /// CSV columns: field names, nested fields by dotted path (a.b, a.0).
    #[arg(long, value_name = "A,B.C", value_delimiter = ',')]
    pub(crate) fields: Vec<String>,
    /// CSV without the header line.
    #[arg(long)]
    pub(crate) no_header_line: bool,
    /// CSV cells as mongoexport writes them. By default a cell a
    /// spreadsheet would run as a formula (first character =, +, -, @,
    /// tab or carriage return, and not a number) gets a leading '; `csfle
    /// import --formula-escaped` takes it back.
    #[arg(long)]
    pub(crate) no_formula_escape: bool,
    /// Write the stored ciphertext untouched (an export that stays
    /// encrypted); nothing is decrypted.
    #[arg(long)]
    pub(crate) keep_encrypted: bool,
}

/// A parsed selection.
struct Query {
    filter: Document,
    projection: Option<Document>,
    sort: Option<Document>,
    skip: u64,
    limit: u64,
}

fn parse_json(flag: &str, text: &str) -> Result<Document, Failure> {
    ejson::parse_document(text).map_err(|e| usage(format!("{flag}: {e}")))
}

impl SelectionArgs {
    fn query(&self, limit: u64) -> Result<Query, Failure> {
        Ok(Query {
            filter: parse_json("--filter", &self.filter)?,
            projection: self
                .projection
                .as_deref()
                .map(|p| parse_json("--projection", p))
                .transpose()?,
            sort: self
                .sort
                .as_deref()
                .map(|s| parse_json("--sort", s))
                .transpose()?,
            skip: self.skip,
            limit,
        })
    }
}

impl Query {
    /// What the audit log records of it: shapes and names, no values.
    fn audit_details(&self) -> Document {
        let mut d = doc! {"filter_shape": filter_shape(&self.filter)};
        if let Some(p) = &self.projection {
            d.insert("projection_fields", field_names(p));
        }
        if let Some(s) = &self.sort {
            d.insert("sort_fields", field_names(s));
        }
        d.insert("skip", i64::try_from(self.skip).unwrap_or(i64::MAX));
        d.insert("limit", i64::try_from(self.limit).unwrap_or(i64::MAX));
        d
    }

    /// The `find` command automatic encryption analyses. Skip, limit and
    /// batch size are in it for a Queryable Encryption collection's
    /// command, which is sent as it is; on any other collection the
    /// driver's typed `find` takes them from [`Query`].
    fn command(&self, coll: &str) -> Document {
        let mut cmd = doc! {"find": coll, "filter": self.filter.clone()};
        if let Some(p) = &self.projection {
            cmd.insert("projection", p.clone());
        }
        if let Some(s) = &self.sort {
            cmd.insert("sort", s.clone());
        }
        if self.skip > 0 {
            cmd.insert("skip", i64::try_from(self.skip).unwrap_or(i64::MAX));
        }
        if self.limit > 0 {
            cmd.insert("limit", i64::try_from(self.limit).unwrap_or(i64::MAX));
        }
        cmd.insert("batchSize", BATCH as i32);
        cmd
    }
}

/// Documents per decryption batch (one key-vault lookup each).
const BATCH: usize = 1000;

/// The export's output buffer (stdout or the --out file).
const OUTPUT_BUFFER: usize = 256 * 1024;

/// The field where the server keeps the tags of a Queryable Encryption
/// document's indexed values.
const SAFE_CONTENT: &str = "__safeContent__";

/// Whether `ns` holds Queryable Encryption documents: as the maps list it
/// (`listed`), else as the server configures it (its `encryptedFields`),
/// the sources automatic encryption reads, in its order.
async fn is_queryable(
    client: &csfle::EncryptedClient,
    listed: Option<bool>,
    ns: &csfle::analysis::Namespace,
) -> Result<bool, Failure> {
    if let Some(queryable) = listed {
        return Ok(queryable);
    }
    use csfle::{MongoSchemaFetcher, RemoteSchema, SchemaFetcher};
    Ok(matches!(
        MongoSchemaFetcher::new(client.inner().clone())
            .collection_schema(&ns.db, &ns.coll)
            .await
            .map_err(runtime_error)?,
        RemoteSchema::EncryptedFields(_)
    ))
}

/// `d` without its top-level `__safeContent__`, when it has one: the
/// server's tags for the ciphertexts it stores, meaningless once the
/// values are decrypted, and refused by automatic encryption in a
/// document written again (the server makes them anew), so that a
/// decrypted export of a Queryable Encryption collection imports back.
fn without_safe_content(d: &RawDocumentBuf) -> Result<Option<RawDocumentBuf>, Failure> {
    if d.get(SAFE_CONTENT).map_err(runtime_error)?.is_none() {
        return Ok(None);
    }
    let mut out = RawDocumentBuf::new();
    for element in d.iter() {
        let (key, value) = element.map_err(runtime_error)?;
        if key != SAFE_CONTENT {
            out.append_ref(key, value);
        }
    }
    Ok(Some(out))
}

/// Runs the query: the filter through automatic encryption, the cursor
/// read in batches, each batch decrypted (unless `decrypt` is false; on a
/// thread of its own, see [`decrypted`]) and handed to `each`, in the
/// cursor's order. Returns how many documents were handed over. `listed`
/// is how the maps list the namespace ([`Maps::lists_queryable`]):
/// decrypted documents of a Queryable Encryption collection are handed
/// over without `__safeContent__`.
///
/// [`Maps::lists_queryable`]: crate::common::Maps::lists_queryable
async fn run_query(
    client: &csfle::EncryptedClient,
    ns: &csfle::analysis::Namespace,
    listed: Option<bool>,
    query: &Query,
    decrypt: bool,
    progress: bool,
    mut each: impl FnMut(&RawDocumentBuf) -> Result<(), Failure>,
) -> Result<u64, Failure> {
    let auto = client.auto_encrypter();
    let sent = auto
        .encrypt_command(&ns.db, &query.command(&ns.coll))
        .await
        .map_err(|e| match e {
            csfle::Error::Client(csfle::ClientError::MissingSchema { .. }) => usage(format!(
                "{ns} has no schema (no --schema-map or --encrypted-fields-map entry, none on the server): the filter would go out as written and nothing would be decrypted; pass --allow-plaintext to query it anyway"
            )),
            e => runtime_error(e),
        })?;
    let strip_safe_content = decrypt && is_queryable(client, listed, ns).await?;
    let (cursor, bar) = if sent.contains_key(ENCRYPTION_INFORMATION) {
        // A Queryable Encryption find: its payloads need the
        // encryptionInformation beside them, which the driver's typed
        // `find` cannot carry, so the command goes as automatic encryption
        // made it (skip, limit and batch size in it), without the driver's
        // retryable reads. Its count would need the same, so the progress
        // bar has no total.
        let mut options = mongodb::options::RunCursorCommandOptions::default();
        options.batch_size = Some(BATCH as u32);
        let cursor = client
            .inner()
            .database(&ns.db)
            .run_cursor_command(sent)
            .with_options(options)
            .await
            .map_err(runtime_error)?;
        let bar = progress.then(|| progress_bar(None));
        (cursor.with_type::<RawDocumentBuf>(), bar)
    } else {
        let filter = sent.get_document("filter").cloned().unwrap_or_default();
        let coll = client
            .inner()
            .database(&ns.db)
            .collection::<RawDocumentBuf>(&ns.coll);
        let bar = if progress {
            let mut count = coll.count_documents(filter.clone()).skip(query.skip);
            if query.limit > 0 {
                count = count.limit(query.limit);
            }
            Some(progress_bar(Some(count.await.map_err(runtime_error)?)))
        } else {
            None
        };
        let mut find = coll.find(filter).skip(query.skip).batch_size(BATCH as u32);
        if let Ok(p) = sent.get_document("projection") {
            find = find.projection(p.clone());
        }
        if let Ok(s) = sent.get_document("sort") {
            find = find.sort(s.clone());
        }
        if query.limit > 0 {
            find = find.limit(i64::try_from(query.limit).unwrap_or(i64::MAX));
        }
        (find.await.map_err(runtime_error)?, bar)
    };
    let mut chunks = cursor.ready_chunks(BATCH);
    let mut n = 0u64;
    let mut hand_over = |docs: Vec<RawDocumentBuf>| -> Result<(), Failure> {
        for d in &docs {
            let stripped = if strip_safe_content {
                without_safe_content(d)?
            } else {
                None
            };
            each(stripped.as_ref().unwrap_or(d))?;
        }
        n += docs.len() as u64;
        if let Some(b) = &bar {
            b.inc(docs.len() as u64);
        }
        Ok(())
    };
    if decrypt {
        decrypted(client, &mut chunks, &mut hand_over).await?;
    } else {
        while let Some(chunk) = chunks.next().await {
            hand_over(fetched(chunk)?)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(n)
}

/// One batch of the cursor, or its failure.
fn fetched(
    chunk: Vec<mongodb::error::Result<RawDocumentBuf>>,
) -> Result<Vec<RawDocumentBuf>, Failure> {
    chunk
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(runtime_error)
}

/// A batch decrypted on the decryption thread, or why it could not be.
type Decrypted = Result<Vec<RawDocumentBuf>, Failure>;

/// Hands over the cursor's batches decrypted, in order, decrypting on a
/// thread of its own: batch N is decrypted there while this thread fetches
/// batch N+1 and writes batch N-1, so the decryption adds little to the
/// export's time beyond what the same export takes without it (the
/// cursor and the writing are exactly those of `--keep-encrypted`). What
/// is handed over, and on a failure what was handed over before it, is
/// what decrypting each batch in turn here gave. The thread is waited for
/// before this returns, whatever happened: nothing is decrypted after the
/// command's end (its audit record lists the keys used).
async fn decrypted<S>(
    client: &csfle::EncryptedClient,
    chunks: &mut S,
    hand_over: &mut impl FnMut(Vec<RawDocumentBuf>) -> Result<(), Failure>,
) -> Result<(), Failure>
where
    S: futures_util::Stream<Item = Vec<mongodb::error::Result<RawDocumentBuf>>> + Unpin,
{
    let (to_decrypt, batches) = mpsc::channel::<Vec<RawDocumentBuf>>(1);
    let (results, from_decrypt) = mpsc::channel::<Decrypted>(1);
    let runtime = tokio::runtime::Handle::current();
    let client = client.clone();
    // Outside the runtime: its thread (this one) drives the I/O of the
    // key fetches meanwhile.
    let thread = tokio::task::spawn_blocking(move || {
        runtime.block_on(decrypt_batches(&client, batches, results))
    });
    // Both channel ends are dropped when this returns, so the thread stops
    // after the batch it holds, if any.
    let handed = hand_over_decrypted(chunks, to_decrypt, from_decrypt, hand_over).await;
    let joined = thread.await.map_err(runtime_error);
    handed.and(joined)
}

/// The decryption thread's work: each batch received decrypted (one
/// key-vault query each) and sent back, in order, until the batches end,
/// a batch fails (its failure is the last thing sent) or the results are
/// no longer wanted.
async fn decrypt_batches(
    client: &csfle::EncryptedClient,
    mut batches: mpsc::Receiver<Vec<RawDocumentBuf>>,
    results: mpsc::Sender<Decrypted>,
) {
    while let Some(docs) = batches.recv().await {
        let refs: Vec<&bson::RawDocument> = docs.iter().map(|d| d.as_ref()).collect();
        let result = client
            .auto_encrypter()
            .decrypt_batch(&refs)
            .await
            .map_err(runtime_error);
        let failed = result.is_err();
        if results.send(result).await.is_err() || failed {
            return;
        }
    }
}

/// The cursor side of [`decrypted`]: fetches batches and sends them to be
/// decrypted, keeping one with the decryption thread while the next is
/// fetched, and hands over what comes back. A cursor failure ends the
/// fetching; it is returned once the batches before it are handed over.
async fn hand_over_decrypted<S>(
    chunks: &mut S,
    to_decrypt: mpsc::Sender<Vec<RawDocumentBuf>>,
    mut from_decrypt: mpsc::Receiver<Decrypted>,
    hand_over: &mut impl FnMut(Vec<RawDocumentBuf>) -> Result<(), Failure>,
) -> Result<(), Failure>
where
    S: futures_util::Stream<Item = Vec<mongodb::error::Result<RawDocumentBuf>>> + Unpin,
{
    // Batches sent to be decrypted and not yet handed over.
    let mut in_flight = 0usize;
    let mut cursor_failure = None;
    while let Some(chunk) = chunks.next().await {
        let docs = match fetched(chunk) {
            Ok(docs) => docs,
            Err(e) => {
                cursor_failure = Some(e);
                break;
            }
        };
        // Refused only once the thread has stopped: at a failure, which
        // `from_decrypt` gives after the batches before it.
        if to_decrypt.send(docs).await.is_err() {
            break;
        }
        in_flight += 1;
        if in_flight > 1 {
            match from_decrypt.recv().await {
                Some(docs) => hand_over(docs?)?,
                // The thread ended early (a panic): its join says why.
                None => break,
            }
            in_flight -= 1;
        }
    }
    // No more batches: the thread ends once it has sent back what it has.
    drop(to_decrypt);
    while let Some(docs) = from_decrypt.recv().await {
        hand_over(docs?)?;
    }
    match cursor_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write_failed(e: std::io::Error) -> Failure {
    Failure::Runtime(format!("error: writing output: {e}"))
}

/// One document as Extended JSON text.
fn json_text(d: &RawDocumentBuf, format: JsonFormat, pretty: bool) -> Result<String, Failure> {
    let doc: Document = d.to_document().map_err(runtime_error)?;
    let value = match format {
        JsonFormat::Canonical if !pretty => return Ok(ejson::to_canonical_line(&doc)),
        JsonFormat::Canonical => ejson::to_canonical(&Bson::Document(doc)),
        JsonFormat::Relaxed => Bson::Document(doc).into_relaxed_extjson(),
    };
    Ok(if pretty {
        serde_json::to_string_pretty(&value).map_err(runtime_error)?
    } else {
        value.to_string()
    })
}

pub(crate) async fn find(args: FindArgs) -> Result<(), Failure> {
    let sel = &args.selection;
    let ns = sel.collection.namespace()?;
    let query = sel.query(args.limit)?;
    let maps = sel.collection.maps()?;
    let listed = maps.lists_queryable(&ns.to_string());
    crate::audit::require_audit_log(sel.audit.audit_log.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (format, pretty) = (args.json_format, args.pretty);
    let documents = AtomicU64::new(0);
    let counted = &documents;
    let details = query.audit_details();
    audited(
        sel.audit.audit_log.as_deref(),
        "find",
        Some(&ns.to_string()),
        details,
        &documents,
        move |sink| async move {
            let client = sel
                .collection
                .encrypted_client(maps, sink, !sel.allow_plaintext)
                .await?;
            run_query(&client, &ns, listed, &query, true, false, |d| {
                writeln!(out, "{}", json_text(d, format, pretty)?).map_err(write_failed)?;
                counted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .await?;
            // Out before the end record says the run was whole.
            out.flush().map_err(write_failed)
        },
    )
    .await
}

pub(crate) async fn export(args: ExportArgs) -> Result<(), Failure> {
    let sel = &args.selection;
    let ns = sel.collection.namespace()?;
    let query = sel.query(args.limit)?;
    if args.kind == ExportType::Csv && args.fields.is_empty() {
        return Err(usage("--type csv needs --fields"));
    }
    if args.kind == ExportType::Csv && (args.json_array || args.pretty) {
        return Err(usage("--json-array and --pretty are for JSON output"));
    }
    let maps = sel.collection.maps()?;
    let listed = maps.lists_queryable(&ns.to_string());
    if !args.keep_encrypted {
        crate::audit::require_audit_log(sel.audit.audit_log.as_deref())?;
    }
    // Before connecting: an existing --out is refused, the temporary file
    // is made (and removed again if anything below fails).
    let out_file = match &args.out {
        Some(p) => Some(AtomicOutput::create("--out", p, args.force)?),
        None => None,
    };
    let sink: Box<dyn Write> = match &out_file {
        Some(f) => Box::new(f.writer()?),
        None => Box::new(std::io::stdout().lock()),
    };
    // Large writes: an export is megabytes, written through one buffer.
    let mut writer = Writer::new(
        &args,
        std::io::BufWriter::with_capacity(OUTPUT_BUFFER, sink),
    )?;
    let mut details = query.audit_details();
    details.insert("keep_encrypted", args.keep_encrypted);
    let started = Instant::now();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let decrypt = !args.keep_encrypted;
    let documents = AtomicU64::new(0);
    let counted = &documents;
    let exported = audited(
        sel.audit.audit_log.as_deref(),
        "export",
        Some(&ns.to_string()),
        details,
        &documents,
        move |sink| async move {
            let client = sel
                .collection
                .encrypted_client(maps, sink, !sel.allow_plaintext)
                .await?;
            let exported = run_query(&client, &ns, listed, &query, decrypt, progress, |d| {
                writer.write(d)?;
                counted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .await?;
            // The output is whole and in place before the end record says
            // the run was: a failed flush or rename is the run's failure.
            writer.finish()?;
            if let Some(f) = out_file {
                f.commit()?;
            }
            Ok(exported)
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    print_summary(serde_json::json!({
        "exported": exported,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "docs_per_sec": if seconds > 0.0 { (exported as f64 / seconds).round() } else { 0.0 },
    }));
    Ok(())
}

/// The export formats.
enum Writer<W: Write> {
    Json {
        out: W,
        format: JsonFormat,
        pretty: bool,
        array: bool,
        first: bool,
    },
    Csv {
        out: Box<csv::Writer<W>>,
        fields: Vec<String>,
        formula_escape: bool,
    },
}

impl<W: Write> Writer<W> {
    fn new(args: &ExportArgs, out: W) -> Result<Self, Failure> {
        Ok(match args.kind {
            ExportType::Json => Writer::Json {
                out,
                format: args.json_format,
                pretty: args.pretty,
                array: args.json_array,
                first: true,
            },
            ExportType::Csv => {
                let mut out = csv::Writer::from_writer(out);
                if !args.no_header_line {
                    out.write_record(&args.fields).map_err(csv_failed)?;
                }
                Writer::Csv {
                    out: Box::new(out),
                    fields: args.fields.clone(),
                    formula_escape: !args.no_formula_escape,
                }
            }
        })
    }

    fn write(&mut self, d: &RawDocumentBuf) -> Result<(), Failure> {
        match self {
            Writer::Json {
                out,
                format,
                pretty,
                array,
                first,
            } => {
                let text = json_text(d, *format, *pretty)?;
                let lead = match (*array, *first) {
                    (true, true) => "[",
                    (true, false) => ",",
                    (false, _) => "",
                };
                *first = false;
                // Three plain writes into the buffer, not a formatted one.
                out.write_all(lead.as_bytes())
                    .and_then(|()| out.write_all(text.as_bytes()))
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(write_failed)
            }
            Writer::Csv {
                out,
                fields,
                formula_escape,
            } => {
                let doc = d.to_document().map_err(runtime_error)?;
                let row: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        let cell = crate::csv_values::field(&doc, f)
                            .map_or(String::new(), crate::csv_values::format);
                        if *formula_escape {
                            crate::csv_values::formula_escape(cell)
                        } else {
                            cell
                        }
                    })
                    .collect();
                out.write_record(&row).map_err(csv_failed)
            }
        }
    }

    fn finish(self) -> Result<(), Failure> {
        match self {
            Writer::Json {
                mut out,
                array,
                first,
                ..
            } => {
                if array {
                    writeln!(out, "{}", if first { "[]" } else { "]" }).map_err(write_failed)?;
                }
                out.flush().map_err(write_failed)
            }
            Writer::Csv { mut out, .. } => out.flush().map_err(write_failed),
        }
    }
}

fn csv_failed(e: csv::Error) -> Failure {
    Failure::Runtime(format!("error: writing CSV: {e}"))
}
