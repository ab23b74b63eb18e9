//! `csfle import`: JSON lines, a JSON array or CSV into a collection,
//! every field the schema encrypts encrypted on the way in (FLE1 by the
//! schema's plan; Queryable Encryption by automatic encryption, in `qe`).

use crate::common::{
    CollectionArgs, Failure, client, print_summary, progress_bar, runtime_error, usage,
};
use crate::csv_values::{self, ColumnType};
use bson::{Bson, Document, RawDocumentBuf, doc};
use clap::{Args, ValueEnum};
use csfle::schema::{EncryptionSchema, FieldInfo};
use csfle::{Algorithm, ejson};
use mongodb::error::ErrorKind;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::mpsc;

#[cfg(feature = "qe")]
mod qe;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputType {
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Insert each document; one whose _id exists fails (duplicate key).
    Insert,
    /// Replace the document matching the upsert fields, or insert it.
    Upsert,
    /// Set the document's fields on the one matching the upsert fields
    /// (keeping its other fields), or insert it.
    Merge,
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    pub(crate) collection: CollectionArgs,
    /// Input file; default standard input.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Input format.
    #[arg(long = "type", value_enum, default_value = "json")]
    pub(crate) kind: InputType,
    /// The JSON input is one array of documents, not one document per line.
    #[arg(long)]
    pub(crate) json_array: bool,
    /// CSV columns (dotted names make sub-documents); with
    /// --columns-have-types each is name.type(), e.g. age.int32().
    #[arg(long, value_name = "A,B.C", value_delimiter = ',')]
    pub(crate) fields: Vec<String>,
    /// The first CSV line names the columns.
    #[arg(long)]
    pub(crate) headerline: bool,
    /// CSV column names carry their types: name.type() with auto(),
    /// string(), int32(), int64(), double(), decimal(), boolean(), date(),
    /// date_ms(), binary(base64|hex). Without it, a field the schema
    /// encrypts takes the schema's bsonType and other fields are guessed.
    #[arg(long)]
    pub(crate) columns_have_types: bool,
    /// Leave empty CSV cells out instead of importing empty strings.
    #[arg(long)]
    pub(crate) ignore_blanks: bool,
    /// The CSV comes from `csfle export` with its default formula
    /// escaping: the leading ' it put before cells a spreadsheet would run
    /// as formulas is taken off (exactly that one), so the values come
    /// back unchanged.
    #[arg(long)]
    pub(crate) formula_escaped: bool,
    /// How documents are written (a Queryable Encryption collection: insert
    /// only).
    #[arg(long, value_enum, default_value = "insert")]
    pub(crate) mode: Mode,
    /// The fields that find the document to replace or merge into
    /// (default _id).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub(crate) upsert_fields: Vec<String>,
    /// Stop at the first bad line (the lines before it are stored).
    #[arg(long)]
    pub(crate) stop_on_error: bool,
    /// Documents per write.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch_size: u32,
    /// Import into a collection that has no schema (nothing is encrypted).
    /// Without it, a collection with no --schema-map or
    /// --encrypted-fields-map entry and neither a schema nor an
    /// encryptedFields on the server is refused.
    #[arg(long)]
    pub(crate) allow_plaintext: bool,
}

/// Encrypted documents per write, as automatic encryption splits batches.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Failures listed in the summary (all are counted, and each is printed).
const MAX_LISTED_FAILURES: usize = 100;
/// The largest document the server stores (its maxBsonObjectSize).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// What the driver adds to a document without `_id` before sending it:
/// an ObjectId element (type byte, "_id\0", 12 bytes).
const GENERATED_ID_BYTES: usize = 1 + 4 + 12;

/// What an update statement adds around its query and document: the
/// statement's own header and terminator, the `q`, `u`, `upsert` and
/// `multi` elements' type bytes and names, the two booleans and a merge's
/// `$set` wrapper (44 bytes in all, rounded up).
const UPDATE_STATEMENT_BYTES: usize = 64;

/// Why a document cannot be encoded (the encoder's message, as before).
fn cannot_store(e: impl std::fmt::Display) -> String {
    format!("cannot be stored: {e}")
}

/// An (encrypted) document encoded as an insert sends it, with its size as
/// sent, or why the server cannot take it: with `query` (the upsert fields
/// an update statement matches on, a copy of some of the document's
/// fields), the size of the whole statement. The driver refuses a document
/// over the server's limit for the whole write, and BSON cannot encode a
/// binary over 16 MiB at all: either would end the import at a batch with
/// no line number. The encoding is the one the size is measured on, kept
/// so that the write does not encode the document again.
fn encoded(d: &Document, query: Option<&Document>) -> Result<(RawDocumentBuf, usize), String> {
    let raw = encode(d)?;
    let mut size = raw.as_bytes().len();
    if let Some(q) = query {
        size += encode(q)?.as_bytes().len() + UPDATE_STATEMENT_BYTES;
    }
    let sent = if d.contains_key("_id") {
        size
    } else {
        size + GENERATED_ID_BYTES
    };
    if sent > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "too large: {sent} bytes once encrypted, the server stores at most {MAX_DOCUMENT_BYTES}"
        ));
    }
    Ok((raw, size))
}

/// `d` encoded (`migrate::encode_document`: element by element, the
/// serializer's bytes), or why it cannot be, in the serializer's words:
/// what the encoder cannot write it leaves to the serializer, whose
/// refusal it is.
fn encode(d: &Document) -> Result<RawDocumentBuf, String> {
    csfle::migrate::encode_document(d).map_err(|e| match bson::to_vec(d) {
        Err(refusal) => cannot_store(refusal),
        Ok(_) => cannot_store(e),
    })
}

/// The warning for an import that inserts documents without `_id` into a
/// collection that already holds some: the server gives each a new `_id`,
/// so nothing can tell a rerun's documents from the first run's.
fn rerun_warning(unit: &str, at: u64, ns: &csfle::analysis::Namespace, mode: Mode) -> String {
    let how = match mode {
        Mode::Insert => "a rerun of this import (--mode insert) stores every such line again",
        Mode::Upsert | Mode::Merge => {
            "such lines are inserted, not matched, so a rerun (with --mode insert too) stores them again"
        }
    };
    format!(
        "warning: {ns} already holds documents and {unit} {at} has no _id: {how} (duplicates); give every {unit} an _id and use --mode upsert for an import that can be rerun"
    )
}

/// One input record: where it was, and the document or why not.
struct Record {
    at: u64,
    doc: Result<Document, String>,
    /// The input cannot be read any further (`doc` says why): the records
    /// before it are imported, then the run ends. Reading again would fail
    /// again, for ever (a directory given as --file).
    ends_input: bool,
}

impl Record {
    fn new(at: u64, doc: Result<Document, String>) -> Record {
        Record {
            at,
            doc,
            ends_input: false,
        }
    }
}

/// `Send`: the records are read on the thread that prepares the batches.
type Records = Box<dyn Iterator<Item = Record> + Send>;

/// The CSV column type of a field the collection encrypts (`None`: not
/// encrypted, its type is guessed).
type EncryptedColumn<'a> = &'a dyn Fn(&str) -> Option<ColumnType>;

/// An FLE1 schema's [`EncryptedColumn`]: an encrypted field takes the
/// schema's type, never a guess (an SSN of digits stays a string).
fn fle1_column(schema: &EncryptionSchema, field: &str) -> Option<ColumnType> {
    match schema.field(field) {
        FieldInfo::Encrypted(e) => Some(
            if e.bson_types.is_empty() || e.bson_types.contains(&bson::spec::ElementType::String) {
                ColumnType::String
            } else {
                csv_values::schema_type(e.bson_types[0])
            },
        ),
        _ => None,
    }
}

/// The input as a stream of records.
fn records(args: &ImportArgs, encrypted: EncryptedColumn<'_>) -> Result<Records, Failure> {
    let input: Box<dyn Read + Send> = match &args.file {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| usage(format!("--file {}: {}", p.display(), e.kind())))?,
        ),
        // Not `stdin().lock()`: the lock cannot move to the thread that
        // reads the input (the BufReader around it locks once per refill).
        None => Box::new(std::io::stdin()),
    };
    let reader = std::io::BufReader::new(input);
    match args.kind {
        InputType::Json if args.json_array => json_array(reader),
        InputType::Json => Ok(Box::new(JsonLines {
            reader,
            line: 0,
            ended: false,
        })),
        InputType::Csv => csv_records(args, encrypted, reader),
    }
}

/// The UTF-8 byte-order mark some editors put at the start of a file;
/// mongoimport skips it, and so does import (CSV: the csv crate does).
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// JSON lines numbered from 1, blank ones skipped, a byte-order mark
/// before the first skipped. A line that is not UTF-8 is that line's
/// failure; any other read error ends the input (one record with
/// `ends_input`), since reading again would only fail again.
struct JsonLines<R> {
    reader: R,
    line: u64,
    ended: bool,
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if self.ended {
                return None;
            }
            let mut bytes = Vec::new();
            self.line += 1;
            match self.reader.read_until(b'\n', &mut bytes) {
                Ok(0) => {
                    self.ended = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.ended = true;
                    return Some(Record {
                        at: self.line,
                        doc: Err(format!("cannot read: {}", e.kind())),
                        ends_input: true,
                    });
                }
            }
            let mut text: &[u8] = &bytes;
            if self.line == 1 {
                text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
            }
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let Ok(text) = std::str::from_utf8(text) else {
                return Some(Record::new(self.line, Err("not valid UTF-8".to_owned())));
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(Record::new(
                self.line,
                ejson::parse_document(text).map_err(|e| e.to_string()),
            ));
        }
    }
}

fn json_array(mut reader: impl Read) -> Result<Records, Failure> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| Failure::Runtime(format!("error: reading the input: {}", e.kind())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Failure::Runtime(format!("error: {}", ejson::describe_json_error(&e))))?;
    let serde_json::Value::Array(items) = value else {
        return Err(Failure::Runtime(
            "error: --json-array: the input is not a JSON array".into(),
        ));
    };
    Ok(Box::new(items.into_iter().enumerate().map(|(i, v)| {
        Record::new(
            i as u64 + 1,
            ejson::parse_document(&v.to_string()).map_err(|e| e.to_string()),
        )
    })))
}

/// How each CSV column is read.
fn csv_columns(
    names: &[String],
    typed: bool,
    encrypted: EncryptedColumn<'_>,
) -> Result<Vec<(String, ColumnType)>, Failure> {
    names
        .iter()
        .map(|spec| {
            if typed {
                return csv_values::typed_column(spec).map_err(usage);
            }
            // An encrypted field takes the collection's type for it, never
            // a guess: an SSN of digits stays a string.
            let ty = encrypted(spec).unwrap_or(ColumnType::Auto);
            Ok((spec.clone(), ty))
        })
        .collect()
}

fn csv_records(
    args: &ImportArgs,
    encrypted: EncryptedColumn<'_>,
    reader: impl Read + Send + 'static,
) -> Result<Records, Failure> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let names: Vec<String> = if args.headerline {
        let mut header = csv::StringRecord::new();
        csv.read_record(&mut header)
            .map_err(|e| Failure::Runtime(format!("error: the header line: {e}")))?;
        header.iter().map(str::to_owned).collect()
    } else if args.fields.is_empty() {
        return Err(usage("--type csv needs --fields or --headerline"));
    } else {
        args.fields.clone()
    };
    let columns = csv_columns(&names, args.columns_have_types, encrypted)?;
    let ignore_blanks = args.ignore_blanks;
    // A read error ends the input: the csv reader would return it again
    // for ever.
    let mut ended = false;
    let formula_escaped = args.formula_escaped;
    Ok(Box::new(csv.into_records().map_while(move |row| {
        if ended {
            return None;
        }
        Some(match row {
            Err(e) => {
                let at = e.position().map_or(0, |p| p.line());
                match e.kind() {
                    csv::ErrorKind::Io(io) => {
                        ended = true;
                        Record {
                            at,
                            doc: Err(format!("cannot read: {}", io.kind())),
                            ends_input: true,
                        }
                    }
                    _ => Record::new(at, Err("not valid CSV".to_owned())),
                }
            }
            Ok(row) => Record::new(
                row.position().map_or(0, |p| p.line()),
                csv_document(&row, &columns, ignore_blanks, formula_escaped),
            ),
        })
    })))
}

/// One CSV row as a document.
fn csv_document(
    row: &csv::StringRecord,
    columns: &[(String, ColumnType)],
    ignore_blanks: bool,
    formula_escaped: bool,
) -> Result<Document, String> {
    if row.len() > columns.len() {
        return Err(format!("{} cells for {} columns", row.len(), columns.len()));
    }
    let mut doc = Document::new();
    for (cell, (name, ty)) in row.iter().zip(columns) {
        let cell = if formula_escaped {
            csv_values::formula_unescape(cell)
        } else {
            cell
        };
        if cell.is_empty() && ignore_blanks {
            continue;
        }
        let v = csv_values::parse(cell, ty).map_err(|e| format!("column '{name}': {e}"))?;
        csv_values::set_path(&mut doc, name, v)?;
    }
    Ok(doc)
}

/// The import's tallies.
#[derive(Default)]
struct Tally {
    imported: u64,
    failed: u64,
    failures: Vec<serde_json::Value>,
}

/// What one write did.
#[derive(Debug, Default, PartialEq)]
struct Written {
    /// The documents stored.
    stored: usize,
    /// The documents refused (position, reason).
    failed: Vec<(u64, String)>,
}

/// How many of `sent` statements a write stored, given the index of its
/// first failed one and how many failed: an ordered write stops at its
/// first error (the statements after it never run), an unordered one runs
/// every statement.
fn stored_count(ordered: bool, sent: usize, first_failed: Option<usize>, failed: usize) -> usize {
    if ordered {
        first_failed.map_or(sent, |i| i.min(sent))
    } else {
        sent.saturating_sub(failed)
    }
}

/// The writes an upsert or merge of `docs` takes, in order: runs of
/// documents that have every upsert field (`true`: upserted) or not
/// (`false`: inserted). Unordered, one run of each (fewest round trips);
/// ordered, consecutive runs in input order, so that a stop at a failed
/// line leaves exactly the lines before it stored.
fn write_runs<T>(
    docs: Vec<(u64, T)>,
    ordered: bool,
    matchable: impl Fn(&T) -> bool,
) -> Vec<(bool, Vec<(u64, T)>)> {
    if !ordered {
        let (matched, unmatched): (Vec<_>, Vec<_>) =
            docs.into_iter().partition(|(_, d)| matchable(d));
        return [(true, matched), (false, unmatched)]
            .into_iter()
            .filter(|(_, run)| !run.is_empty())
            .collect();
    }
    let mut runs: Vec<(bool, Vec<(u64, T)>)> = Vec::new();
    for (at, d) in docs {
        let m = matchable(&d);
        match runs.last_mut() {
            Some((kind, run)) if *kind == m => run.push((at, d)),
            _ => runs.push((m, vec![(at, d)])),
        }
    }
    runs
}

/// The query an upsert or merge statement finds the document by.
fn upsert_query(upsert_fields: &[String], d: &Document) -> Document {
    let mut q = Document::new();
    for f in upsert_fields {
        if let Some(v) = csv_values::field(d, f) {
            q.insert(f.clone(), v.clone());
        }
    }
    q
}

impl Tally {
    /// Counts a write; returns whether any of its documents was refused.
    fn written(&mut self, unit: &str, written: Written) -> bool {
        self.imported += written.stored as u64;
        for (at, reason) in &written.failed {
            self.fail(unit, *at, reason);
        }
        !written.failed.is_empty()
    }

    fn fail(&mut self, unit: &str, at: u64, reason: &str) {
        eprintln!("{unit} {at}: {reason}");
        self.failed += 1;
        if self.failures.len() < MAX_LISTED_FAILURES {
            self.failures
                .push(serde_json::json!({ unit: at, "reason": reason }));
        }
    }
}

/// Why a write of one document failed, without quoting its values (a
/// duplicate-key message quotes the key).
fn write_error_reason(code: i32, message: &str) -> String {
    if code == 11000 {
        "write error 11000: duplicate key".into()
    } else {
        format!(
            "write error {code}: {}",
            message.split(" dup key").next().unwrap_or("")
        )
    }
}

/// A batch that could not be written and whose outcome is unknown: the
/// lines before `at` are stored.
fn write_aborted(unit: &str, at: u64, e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(format!(
        "error: writing the batch starting at {unit} {at}: {e}\nthe {unit}s before it are stored; rerun with --mode upsert (idempotent for documents with an _id)"
    ))
}

/// A document ready to be written, holding only what its write needs: the
/// rest was dropped on the thread that made it (a `Document` freed on the
/// writing thread costs that thread as much as making it, and contends
/// for the allocator's lock with the preparing thread).
enum Outgoing {
    /// Inserted: its encoding as the insert sends it (the one its size was
    /// measured on), and whether the server gives it its `_id` (a rerun
    /// cannot find it again).
    Insert {
        raw: RawDocumentBuf,
        without_id: bool,
    },
    /// Upserted or merged (it has every upsert field): the encrypted
    /// document the update statement is built from.
    Update(Document),
}

impl Outgoing {
    /// `doc` (encrypted) and its encoding, as `mode` writes it.
    fn new(doc: Document, raw: RawDocumentBuf, mode: Mode, upsert_fields: &[String]) -> Self {
        let matchable = mode != Mode::Insert
            && upsert_fields
                .iter()
                .all(|f| csv_values::field(&doc, f).is_some());
        if matchable {
            Outgoing::Update(doc)
        } else {
            Outgoing::Insert {
                without_id: !doc.contains_key("_id"),
                raw,
            }
        }
    }

    /// Whether the server makes up its `_id`.
    fn inserts_without_id(&self) -> bool {
        matches!(
            self,
            Outgoing::Insert {
                without_id: true,
                ..
            }
        )
    }
}

struct Target<'a> {
    db: mongodb::Database,
    coll: mongodb::Collection<Document>,
    /// The same collection, for inserts of documents already encoded.
    raw: mongodb::Collection<RawDocumentBuf>,
    mode: Mode,
    upsert_fields: &'a [String],
    ordered: bool,
    unit: &'static str,
}

impl Target<'_> {
    /// Writes `docs` (with their input positions). A failure whose effect
    /// is unknown (the connection lost mid-write) is an error. Ordered
    /// (--stop-on-error), nothing after the first refused document is
    /// written.
    async fn write(&self, docs: Vec<(u64, Outgoing)>) -> Result<Written, Failure> {
        // Upserts and inserts in runs (a document without every upsert
        // field cannot be matched: it is inserted); an import in insert
        // mode is one run of inserts.
        let runs = write_runs(docs, self.ordered, |o: &Outgoing| {
            matches!(o, Outgoing::Update(_))
        });
        let mut written = Written::default();
        for (_, run) in runs {
            let mut updates = Vec::new();
            let mut inserts = Vec::new();
            for (at, o) in run {
                match o {
                    Outgoing::Update(d) => updates.push((at, d)),
                    Outgoing::Insert { raw, .. } => inserts.push((at, raw)),
                }
            }
            // A run is of one kind: one of the two is empty, and writing
            // nothing sends nothing.
            let w = self.upsert(updates).await?;
            let i = self.insert(inserts).await?;
            written.stored += w.stored + i.stored;
            written.failed.extend(w.failed);
            written.failed.extend(i.failed);
            if self.ordered && !written.failed.is_empty() {
                break;
            }
        }
        written.failed.sort_by_key(|(at, _)| *at);
        Ok(written)
    }

    async fn insert(&self, docs: Vec<(u64, RawDocumentBuf)>) -> Result<Written, Failure> {
        let Some(&(first_at, _)) = docs.first() else {
            return Ok(Written::default());
        };
        // The encoding the size was measured on: the driver copies it
        // instead of encoding the document again.
        let (at, docs): (Vec<u64>, Vec<RawDocumentBuf>) = docs.into_iter().unzip();
        match self.raw.insert_many(docs).ordered(self.ordered).await {
            Ok(_) => Ok(Written {
                stored: at.len(),
                failed: Vec::new(),
            }),
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(m) if m.write_concern_error.is_none() => {
                    let mut first_failed: Option<usize> = None;
                    let mut failed = Vec::new();
                    for w in m.write_errors.iter().flatten() {
                        let Some(&line) = at.get(w.index) else {
                            return Err(write_aborted(
                                self.unit,
                                first_at,
                                "a malformed write error",
                            ));
                        };
                        first_failed = Some(first_failed.map_or(w.index, |i| i.min(w.index)));
                        failed.push((line, write_error_reason(w.code, &w.message)));
                    }
                    Ok(Written {
                        stored: stored_count(self.ordered, at.len(), first_failed, failed.len()),
                        failed,
                    })
                }
                _ => Err(write_aborted(self.unit, first_at, e)),
            },
        }
    }

    async fn upsert(&self, docs: Vec<(u64, Document)>) -> Result<Written, Failure> {
        let Some(&(first_at, _)) = docs.first() else {
            return Ok(Written::default());
        };
        let mut at = Vec::with_capacity(docs.len());
        let mut updates = Vec::with_capacity(docs.len());
        for (line, d) in docs {
            let q = upsert_query(self.upsert_fields, &d);
            let u = match self.mode {
                Mode::Merge => {
                    let mut set = d;
                    set.remove("_id");
                    doc! {"$set": set}
                }
                _ => d,
            };
            at.push(line);
            updates.push(doc! {"q": q, "u": u, "upsert": true, "multi": false});
        }
        let reply = self
            .db
            .run_command(doc! {
                "update": self.coll.name(),
                "updates": updates,
                "ordered": self.ordered,
            })
            .await
            .map_err(|e| write_aborted(self.unit, first_at, e))?;
        self.outcome(&at, &reply)
    }

    /// Sends `command`, an `insert` of a Queryable Encryption collection
    /// as automatic encryption finalized it (its documents' payloads and
    /// the `encryptionInformation` the server needs, which the driver's
    /// typed `insert_many` cannot carry), as it is: `run_command`, without
    /// the driver's retryable writes. `at` are the input positions of its
    /// documents, in order.
    #[cfg(feature = "qe")]
    async fn send_finalized(&self, at: &[u64], command: Document) -> Result<Written, Failure> {
        let Some(&first_at) = at.first() else {
            return Ok(Written::default());
        };
        let reply = self
            .db
            .run_command(command)
            .await
            .map_err(|e| write_aborted(self.unit, first_at, e))?;
        self.outcome(at, &reply)
    }

    /// What a write command's `reply` says of the statements sent for the
    /// input positions `at`: each write error its position's failure (an
    /// index outside the statements sent, or a write concern error, makes
    /// the outcome unknown: an error); the rest stored, counted as the
    /// write was ordered or not.
    fn outcome(&self, at: &[u64], reply: &Document) -> Result<Written, Failure> {
        let Some(&first_at) = at.first() else {
            return Ok(Written::default());
        };
        if reply.get("writeConcernError").is_some() {
            return Err(write_aborted(self.unit, first_at, "write concern error"));
        }
        let mut failed = Vec::new();
        let mut first_failed: Option<usize> = None;
        if let Ok(errors) = reply.get_array("writeErrors") {
            for e in errors.iter().filter_map(Bson::as_document) {
                let index = e
                    .get("index")
                    .and_then(|i| match i {
                        Bson::Int32(i) => usize::try_from(*i).ok(),
                        Bson::Int64(i) => usize::try_from(*i).ok(),
                        _ => None,
                    })
                    .filter(|&i| i < at.len())
                    .ok_or_else(|| write_aborted(self.unit, first_at, "a malformed write error"))?;
                first_failed = Some(first_failed.map_or(index, |i| i.min(index)));
                failed.push((
                    at[index],
                    write_error_reason(
                        e.get_i32("code").unwrap_or_default(),
                        e.get_str("errmsg").unwrap_or(""),
                    ),
                ));
            }
        }
        Ok(Written {
            stored: stored_count(self.ordered, at.len(), first_failed, failed.len()),
            failed,
        })
    }
}

/// `d` if `mode` can write it as it is. An upsert's replacement and a
/// merge's `$set` read a top-level key with a `.` as a path and one
/// starting with `$` as an operator: `{"ssn.x": …}` would write a
/// plaintext below an encrypted field, `{"$set": …}` fields the schema
/// never saw. Such a line is refused (naming the key, never a value).
fn update_safe(mode: Mode, d: Document) -> Result<Document, String> {
    if mode == Mode::Insert {
        return Ok(d);
    }
    if let Some(k) = d.keys().find(|k| k.contains('.') || k.starts_with('$')) {
        return Err(format!(
            "top-level field '{k}': a field name with '.' or a leading '$' is read as a path or an operator by --mode upsert and merge; refused"
        ));
    }
    Ok(d)
}

/// Why an upsert field can never match, if it cannot: it is encrypted
/// with the random algorithm, or is a document holding such fields (a
/// fresh ciphertext each time, so every line would be inserted again).
fn unmatchable_upsert_field(schema: &EncryptionSchema, fields: &[String]) -> Result<(), String> {
    for f in fields {
        let Some(specs) = schema.encrypt_specs_at(f) else {
            // Entries that disagree: nothing can be assumed.
            return Err(format!(
                "--upsert-fields: '{f}': several schema entries match it and disagree about its encryption"
            ));
        };
        if !specs.iter().any(|e| e.algorithm == Algorithm::Random) {
            continue;
        }
        return Err(match schema.field(f) {
            FieldInfo::Encrypted(_) => format!(
                "--upsert-fields: '{f}' is encrypted with the random algorithm: it cannot be matched"
            ),
            _ => format!(
                "--upsert-fields: '{f}' holds fields encrypted with the random algorithm: it cannot be matched"
            ),
        });
    }
    Ok(())
}

/// What the documents of an import are encrypted by.
enum ImportSchema {
    /// An FLE1 `$jsonSchema` (empty: none, with --allow-plaintext).
    Fle1(Document),
    /// A Queryable Encryption collection's `encryptedFields`, already read
    /// strictly as its source requires (an `--encrypted-fields-map` entry,
    /// or the server's).
    Queryable(Document),
}

/// The schema documents are encrypted by: the maps' entry (`--schema-map`
/// or `--encrypted-fields-map`, never both), else the server's
/// `$jsonSchema` validator or `encryptedFields`.
async fn schema_for(
    args: &ImportArgs,
    client: &mongodb::Client,
    ns: &csfle::analysis::Namespace,
) -> Result<ImportSchema, Failure> {
    let maps = args.collection.maps()?;
    if let Some(entry) = maps.schemas.get(ns.to_string()) {
        return match entry {
            Bson::Document(d) => Ok(ImportSchema::Fle1(d.clone())),
            _ => Err(usage(format!(
                "--schema-map: the entry for {ns} must be a document"
            ))),
        };
    }
    if let Some(entry) = maps.encrypted_fields.get(ns.to_string()) {
        return match entry {
            Bson::Document(d) => Ok(ImportSchema::Queryable(d.clone())),
            _ => Err(usage(format!(
                "--encrypted-fields-map: the entry for {ns} must be a document"
            ))),
        };
    }
    use csfle::{MongoSchemaFetcher, RemoteSchema, SchemaFetcher};
    match MongoSchemaFetcher::new(client.clone())
        .collection_schema(&ns.db, &ns.coll)
        .await
        .map_err(runtime_error)?
    {
        RemoteSchema::Schema(s) => Ok(ImportSchema::Fle1(s)),
        RemoteSchema::View => Err(usage(format!("{ns} is a view: cannot import into it"))),
        RemoteSchema::EncryptedFields(fields) => {
            server_encrypted_fields(ns, &fields)?;
            Ok(ImportSchema::Queryable(fields))
        }
        RemoteSchema::Invalid(reason) => Err(usage(format!(
            "the schema of {ns} on the server cannot be read: {reason}"
        ))),
        RemoteSchema::None | RemoteSchema::NoCollection if args.allow_plaintext => {
            Ok(ImportSchema::Fle1(Document::new()))
        }
        RemoteSchema::None | RemoteSchema::NoCollection => Err(usage(format!(
            "{ns} has no schema (no --schema-map or --encrypted-fields-map entry, none on the server): nothing would be encrypted; pass --allow-plaintext to import it as it is"
        ))),
    }
}

/// Checks the server's `encryptedFields` of `ns` as automatic encryption
/// reads it (strictly, `keyId`s only, every query type one csfle
/// implements), before anything is written.
#[cfg(feature = "qe")]
fn server_encrypted_fields(
    ns: &csfle::analysis::Namespace,
    fields: &Document,
) -> Result<(), Failure> {
    use csfle::qe::encrypted_fields::{EncryptedFields, ParseMode};
    EncryptedFields::from_document(fields, ParseMode::Remote)
        .and_then(|f| f.check_supported())
        .map_err(|e| usage(format!("the encryptedFields of {ns} on the server: {e}")))
}

/// Without feature `qe`, a Queryable Encryption collection is refused:
/// nothing here could encrypt for it.
#[cfg(not(feature = "qe"))]
fn server_encrypted_fields(
    ns: &csfle::analysis::Namespace,
    fields: &Document,
) -> Result<(), Failure> {
    let _ = fields;
    Err(usage(format!(
        "{ns} is a Queryable Encryption collection (encryptedFields), which needs csfle-cli's feature `qe`, and this csfle was built without it"
    )))
}

/// One batch of input, read, checked, encrypted and encoded: what the
/// write of a batch starts from.
struct Prepared {
    /// The input records the batch took (what the progress bar counts).
    records: u64,
    /// The documents to write, in input order, with their sizes as sent.
    good: Vec<(u64, Outgoing, usize)>,
    /// Queryable Encryption: the batch's documents as the `insert`
    /// commands automatic encryption finalized, in input order (`good` is
    /// then empty).
    #[cfg(feature = "qe")]
    commands: Vec<qe::Finalized>,
    /// The records refused before any write, in input order.
    bad: Vec<(u64, String)>,
    /// The input could not be read past this record, and why.
    read_failure: Option<(u64, String)>,
}

/// Batches prepared ahead of the one being written: one waits in the
/// channel while the next is made, so a write never waits for an
/// encryption that could have run during the write before it. Also the
/// bound on the memory held: at most three batches (being written,
/// waiting, being made).
const BATCHES_AHEAD: usize = 1;

/// How the documents of an import are encrypted.
// One per import, moved once into the preparer's thread: the variants'
// sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Encrypter {
    /// FLE1: each document made to match the schema's plan, as `csfle
    /// migrate` would.
    Plan {
        plan: csfle::migrate::Plan,
        encryption: csfle::ClientEncryption,
    },
    /// Queryable Encryption: the batch's `insert` commands through
    /// automatic encryption.
    #[cfg(feature = "qe")]
    Queryable(qe::Queryable),
}

/// Reads the input and makes each batch ready to write (parsed, checked
/// against the update modes, encrypted by the plan, encoded and sized; or
/// for a Queryable Encryption collection, finalized as `insert` commands),
/// on a thread of its own, while the runtime's thread writes the batch
/// before: the encryption of batch N+1 overlaps the writes of batch N.
/// Each batch is exactly what the import did in one step before the
/// write; the order of batches is the input's.
struct Preparer {
    records: Records,
    encrypter: Encrypter,
    mode: Mode,
    upsert_fields: Vec<String>,
    batch_size: usize,
    stop_on_error: bool,
}

impl Preparer {
    /// Sends the batches in input order until the input ends, a batch ends
    /// the import (the input unreadable, a refused record with
    /// --stop-on-error), the encryption fails (that failure is the last
    /// message) or the receiver is gone (the import stopped). Runs outside
    /// the runtime (`spawn_blocking`): the key fetches of `conform` run
    /// through `runtime`, whose I/O the importing thread drives meanwhile.
    fn run(
        mut self,
        runtime: &tokio::runtime::Handle,
        batches: &mpsc::Sender<Result<Prepared, Failure>>,
    ) {
        loop {
            // Nothing more is read or encrypted for an import that stopped.
            if batches.is_closed() {
                return;
            }
            let prepared = match self.next_batch(runtime) {
                Ok(Some(prepared)) => prepared,
                Ok(None) => return,
                Err(e) => {
                    let _ = batches.blocking_send(Err(e));
                    return;
                }
            };
            let last =
                prepared.read_failure.is_some() || (self.stop_on_error && !prepared.bad.is_empty());
            if batches.blocking_send(Ok(prepared)).is_err() || last {
                return;
            }
        }
    }

    /// The next batch of `batch_size` records, `None` at the end of the
    /// input. A key vault or KMS failure is the batch's error.
    fn next_batch(
        &mut self,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Option<Prepared>, Failure> {
        let batch: Vec<Record> = self.records.by_ref().take(self.batch_size).collect();
        if batch.is_empty() {
            return Ok(None);
        }
        let records = batch.len() as u64;
        // Parse failures first; the rest go through the plan.
        let mut ready: Vec<(u64, Document)> = Vec::with_capacity(batch.len());
        let mut bad: Vec<(u64, String)> = Vec::new();
        let mut read_failure = None;
        for r in batch {
            if r.ends_input {
                read_failure = Some((r.at, r.doc.err().unwrap_or_default()));
                break;
            }
            match r.doc.and_then(|d| update_safe(self.mode, d)) {
                Ok(d) => ready.push((r.at, d)),
                Err(reason) => bad.push((r.at, reason)),
            }
        }
        let (plan, encryption) = match &self.encrypter {
            Encrypter::Plan { plan, encryption } => (plan, encryption),
            #[cfg(feature = "qe")]
            Encrypter::Queryable(q) => {
                return q
                    .prepare(
                        runtime,
                        records,
                        ready,
                        bad,
                        read_failure,
                        self.stop_on_error,
                    )
                    .map(Some);
            }
        };
        let (at, docs): (Vec<u64>, Vec<Document>) = ready.into_iter().unzip();
        let conformed = runtime
            .block_on(csfle::migrate::conform(encryption, plan, docs))
            .map_err(runtime_error)?;
        // Encoded, with their sizes: a document the server cannot take is
        // its line's failure here, before the write it would abort.
        let mut good: Vec<(u64, Outgoing, usize)> = Vec::with_capacity(conformed.len());
        for (line, c) in at.into_iter().zip(conformed) {
            let sized = c.and_then(|doc| {
                // An upsert or merge statement carries the upsert fields
                // twice (in its query too).
                let query =
                    (self.mode != Mode::Insert).then(|| upsert_query(&self.upsert_fields, &doc));
                encoded(&doc, query.as_ref()).map(|(raw, size)| {
                    (
                        Outgoing::new(doc, raw, self.mode, &self.upsert_fields),
                        size,
                    )
                })
            });
            match sized {
                Ok((o, size)) => good.push((line, o, size)),
                Err(reason) => bad.push((line, reason)),
            }
        }
        bad.sort_by_key(|(line, _)| *line);
        Ok(Some(Prepared {
            records,
            good,
            #[cfg(feature = "qe")]
            commands: Vec::new(),
            bad,
            read_failure,
        }))
    }
}

pub(crate) async fn import(args: ImportArgs) -> Result<(), Failure> {
    let ns = args.collection.namespace()?;
    if args.kind == InputType::Csv && args.json_array {
        return Err(usage("--json-array is for JSON input"));
    }
    if args.kind != InputType::Csv && args.formula_escaped {
        return Err(usage("--formula-escaped is for CSV input"));
    }
    let mongo = args.collection.mongo_client().await?;
    let upsert_fields = if args.upsert_fields.is_empty() {
        vec!["_id".to_owned()]
    } else {
        args.upsert_fields.clone()
    };
    let (encrypter, records) = match schema_for(&args, &mongo, &ns).await? {
        ImportSchema::Fle1(schema_doc) => {
            // An import never stores a ciphertext decrypted (it keeps no
            // audit log of decryptions): such a line is refused.
            let plan = csfle::migrate::Plan::from_schema(&schema_doc, false)
                .map_err(|e| match e {
                    csfle::migrate::Error::Plan(e) => usage(format!("the schema for {ns}: {e}")),
                    e => usage(e),
                })?
                .refusing_decryption();
            let schema = plan.encryption_schema();
            if args.mode != Mode::Insert {
                unmatchable_upsert_field(schema, &upsert_fields).map_err(usage)?;
            }
            let encryption = client(&args.collection.vault).await?;
            let records = records(&args, &|field: &str| fle1_column(schema, field))?;
            (Encrypter::Plan { plan, encryption }, records)
        }
        #[cfg(feature = "qe")]
        ImportSchema::Queryable(fields) => {
            if args.mode != Mode::Insert {
                return Err(usage(format!(
                    "{ns} is a Queryable Encryption collection: import writes it with --mode insert only (an upsert's query and replacement would need encrypting as one update command)"
                )));
            }
            let queryable = qe::Queryable::new(
                client(&args.collection.vault).await?,
                &ns,
                fields,
                args.stop_on_error,
            )?;
            let records = records(&args, &|field: &str| queryable.column_type(field))?;
            (Encrypter::Queryable(queryable), records)
        }
        // Refused by `server_encrypted_fields` (and `--encrypted-fields-map`)
        // already; refused again here, fail closed.
        #[cfg(not(feature = "qe"))]
        ImportSchema::Queryable(fields) => {
            server_encrypted_fields(&ns, &fields)?;
            return Err(usage(format!(
                "{ns} is a Queryable Encryption collection, which needs feature `qe`"
            )));
        }
    };
    let unit = if args.json_array { "document" } else { "line" };
    let coll = mongo.database(&ns.db).collection::<Document>(&ns.coll);
    let target = Target {
        db: mongo.database(&ns.db),
        raw: coll.clone_with_type(),
        coll,
        mode: args.mode,
        upsert_fields: &upsert_fields,
        ordered: args.stop_on_error,
        unit,
    };
    let started = Instant::now();
    let bar = progress_bar(None);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let preparer = Preparer {
        records,
        encrypter,
        mode: args.mode,
        upsert_fields: upsert_fields.clone(),
        batch_size: args.batch_size as usize,
        stop_on_error: args.stop_on_error,
    };
    let (prepared_tx, mut prepared) = mpsc::channel(BATCHES_AHEAD);
    let runtime = tokio::runtime::Handle::current();
    let preparing = tokio::task::spawn_blocking(move || preparer.run(&runtime, &prepared_tx));
    let mut tally = Tally::default();
    let mut stopped = false;
    // The input's end when it could not be read to its end.
    let mut read_failure: Option<(u64, String)> = None;
    let mut checked_ids = false;
    'batches: loop {
        let Some(batch) = prepared.recv().await else {
            // The preparer is done (the channel closes as it returns): the
            // whole input was read, unless it panicked.
            preparing.await.map_err(runtime_error)?;
            break;
        };
        #[cfg_attr(not(feature = "qe"), allow(unused_mut))]
        let mut batch = batch?;
        // The batch's finalized Queryable Encryption inserts (none for an
        // FLE1 collection), written before `good` (empty then).
        #[cfg(feature = "qe")]
        let commands = std::mem::take(&mut batch.commands);
        let Prepared {
            records: records_in_batch,
            mut good,
            mut bad,
            read_failure: unreadable,
            ..
        } = batch;
        if unreadable.is_some() {
            read_failure = unreadable;
        }
        if args.stop_on_error
            && let Some(&(first_bad, _)) = bad.first()
        {
            // Store what comes before the first bad line, then stop.
            good.retain(|(line, _, _)| *line < first_bad);
            bad.truncate(1);
            stopped = true;
        }
        for (line, reason) in &bad {
            tally.fail(unit, *line, reason);
        }
        if !checked_ids {
            let without_id = good
                .iter()
                .find(|(_, o, _)| o.inserts_without_id())
                .map(|(line, _, _)| *line);
            #[cfg(feature = "qe")]
            let without_id =
                without_id.or_else(|| commands.iter().find_map(|c| c.first_without_id));
            if let Some(line) = without_id {
                // Once, before the first such document is written.
                checked_ids = true;
                if matches!(target.coll.estimated_document_count().await, Ok(n) if n > 0) {
                    let warning = rerun_warning(unit, line, &ns, args.mode);
                    bar.suspend(|| eprintln!("{warning}"));
                }
            }
        }
        #[cfg(feature = "qe")]
        for c in commands {
            let written = target.send_finalized(&c.at, c.command).await?;
            if tally.written(unit, written) && args.stop_on_error {
                stopped = true;
                break 'batches;
            }
        }
        // Writes of at most MAX_BATCH_BYTES of encrypted documents.
        let mut chunk: Vec<(u64, Outgoing)> = Vec::new();
        let mut bytes = 0;
        for (line, o, size) in good {
            if !chunk.is_empty() && bytes + size > MAX_BATCH_BYTES {
                let written = target.write(std::mem::take(&mut chunk)).await?;
                if tally.written(unit, written) && args.stop_on_error {
                    stopped = true;
                    break 'batches;
                }
                bytes = 0;
            }
            bytes += size;
            chunk.push((line, o));
        }
        let written = target.write(chunk).await?;
        bar.inc(records_in_batch);
        if (tally.written(unit, written) && args.stop_on_error) || stopped {
            stopped = true;
            break;
        }
        if read_failure.is_some() {
            stopped = true;
            break;
        }
    }
    // A preparer still running (the import stopped early) sees the channel
    // closed at its next batch and ends; it is not waited for (it may be
    // blocked reading standard input).
    drop(prepared);
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    print_summary(serde_json::json!({
        "imported": tally.imported,
        "failed": tally.failed,
        "failures": tally.failures,
        "stopped": stopped,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "docs_per_sec": if seconds > 0.0 { (tally.imported as f64 / seconds).round() } else { 0.0 },
    }));
    if let Some((at, reason)) = read_failure {
        return Err(Failure::Runtime(format!(
            "error: {unit} {at}: {reason}; the input ends there (the {unit}s before it were processed)"
        )));
    }
    if tally.failed > 0 {
        return Err(Failure::Runtime(format!(
            "error: {} {unit}(s) not imported",
            tally.failed
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_modes_refuse_paths_and_operators() {
        for mode in [Mode::Upsert, Mode::Merge] {
            for bad in [
                doc! {"_id": 1, "a.b": 1},
                doc! {"$set": {"ssn": "x"}},
                doc! {"_id": 1, "$x": 1},
            ] {
                let e = update_safe(mode, bad).unwrap_err();
                assert!(e.starts_with("top-level field '"), "{e}");
            }
            assert!(update_safe(mode, doc! {"_id": 1, "a": {"b": 1}}).is_ok());
        }
        assert!(update_safe(Mode::Insert, doc! {"a.b": 1}).is_ok());
    }

    /// An ordered write stops at its first error: the statements after it
    /// are not stored, whatever was sent.
    #[test]
    fn an_ordered_write_stores_only_what_precedes_its_first_error() {
        assert_eq!(stored_count(true, 10, Some(3), 1), 3);
        assert_eq!(stored_count(true, 10, Some(0), 1), 0);
        assert_eq!(stored_count(true, 10, None, 0), 10);
        assert_eq!(stored_count(false, 10, Some(3), 2), 8);
        assert_eq!(stored_count(false, 10, None, 0), 10);
    }

    /// Ordered, upserts and inserts run in input order (a line after the
    /// failed one is never written before it); unordered, one run each.
    #[test]
    fn ordered_upserts_keep_the_input_order() {
        let docs = vec![
            (1, doc! {"_id": 1}),
            (2, doc! {"x": 2}),
            (3, doc! {"_id": 3}),
            (4, doc! {"_id": 4}),
        ];
        let matchable = |d: &Document| d.contains_key("_id");
        let lines = |runs: Vec<(bool, Vec<(u64, Document)>)>| -> Vec<(bool, Vec<u64>)> {
            runs.into_iter()
                .map(|(m, run)| (m, run.into_iter().map(|(at, _)| at).collect()))
                .collect()
        };
        assert_eq!(
            lines(write_runs(docs.clone(), true, matchable)),
            [(true, vec![1]), (false, vec![2]), (true, vec![3, 4])]
        );
        assert_eq!(
            lines(write_runs(docs, false, matchable)),
            [(true, vec![1, 3, 4]), (false, vec![2])]
        );
        assert!(write_runs(Vec::new(), false, matchable).is_empty());
    }

    /// An upsert statement's size counts its query (a copy of the upsert
    /// fields): a document that fits alone but not as a statement is its
    /// line's failure.
    #[test]
    fn an_upsert_statement_counts_its_query() {
        let big = "x".repeat(MAX_DOCUMENT_BYTES / 2);
        let d = doc! {"_id": big.clone(), "y": 1};
        let (raw, alone) = encoded(&d, None).unwrap();
        assert!(alone <= MAX_DOCUMENT_BYTES);
        // What an insert sends is the document's own encoding.
        assert_eq!(raw.as_bytes(), bson::to_vec(&d).unwrap());
        assert_eq!(alone, raw.as_bytes().len());
        let q = upsert_query(&["_id".to_owned()], &d);
        assert_eq!(q, doc! {"_id": big});
        let e = encoded(&d, Some(&q)).unwrap_err();
        assert!(e.starts_with("too large"), "{e}");
        let small = doc! {"_id": 1, "y": 1};
        let q = upsert_query(&["_id".to_owned()], &small);
        assert!(
            encoded(&small, Some(&q)).unwrap().1
                > encoded(&small, None).unwrap().1 + UPDATE_STATEMENT_BYTES
        );
    }

    /// What the encoder leaves to `bson`'s serializer is refused in the
    /// serializer's words (a NUL byte in a name, a binary over 16 MiB);
    /// a binary holds its place in the document's bytes as the serializer
    /// writes it.
    #[test]
    fn documents_are_encoded_or_refused_as_the_serializer_does() {
        let nul = doc! {"a\0b": 1};
        let huge = doc! {"b": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 16 * 1024 * 1024 + 1] }};
        for d in [nul, huge] {
            let refusal = bson::to_vec(&d).unwrap_err();
            assert_eq!(
                encoded(&d, None).unwrap_err(),
                format!("cannot be stored: {refusal}")
            );
        }
        let d = doc! {"_id": 1, "s": "d\u{e9}j\u{e0}", "b": bson::Binary { subtype: bson::spec::BinarySubtype::Encrypted, bytes: vec![1; 90] }};
        assert_eq!(
            encoded(&d, None).unwrap().0.as_bytes(),
            bson::to_vec(&d).unwrap()
        );
    }

    /// An upsert field encrypted with the random algorithm, or a document
    /// holding such a field, never matches: refused.
    #[test]
    fn random_encrypted_upsert_fields_are_refused() {
        let key = Bson::Array(vec![Bson::Binary(
            csfle::KeyId::from_bytes([1; 16]).to_binary(),
        )]);
        let schema = EncryptionSchema::parse(
            &doc! {
                "bsonType": "object",
                "encryptMetadata": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"},
                "properties": {
                    "ssn": {"encrypt": {"bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                    "notes": {"encrypt": {}},
                    "med": {"bsonType": "object", "properties": {"record": {"encrypt": {}}}},
                    "ids": {"bsonType": "object", "properties": {"tax": {"encrypt": {"bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}}}},
                    "name": {"bsonType": "string"},
                },
            },
            csfle::schema::SchemaSource::Local,
        )
        .unwrap();
        for ok in ["_id", "ssn", "ids", "ids.tax", "name", "other"] {
            assert_eq!(
                unmatchable_upsert_field(&schema, &[ok.to_owned()]),
                Ok(()),
                "{ok}"
            );
        }
        for (bad, says) in [
            ("notes", "is encrypted with the random algorithm"),
            ("med.record", "is encrypted with the random algorithm"),
            ("med", "holds fields encrypted with the random algorithm"),
        ] {
            let e =
                unmatchable_upsert_field(&schema, &["_id".to_owned(), bad.to_owned()]).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")) && e.contains(says), "{e}");
        }
    }
}
