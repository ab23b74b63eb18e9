//! The specification's unified Queryable Encryption tests
//! (`client-side-encryption/tests/unified/fle2v2-*.json`) against the
//! server (`MONGODB_URI`), through csfle's `EncryptedClient`.
//!
//! The test server knows no Queryable Encryption, so the clients reach it
//! through the loopback wire proxy (`tests/common/wire_proxy.rs`) acting
//! for a QE server: the collections' `encryptedFields` (the test's
//! `initialData` `createOptions`, or a `create` that carried them) are put
//! into `listCollections` replies, and the fields the server would refuse
//! (`encryptionInformation`, `create`'s `encryptedFields`) are taken out of
//! the commands after the client sent them. The spec files are read from
//! `$CSFLE_SPEC_DIR` (their licence keeps them out of the repository).
//!
//! What is checked is what the client decides: every `expectError` (the
//! error's text, case-insensitively, as the unified format says; most are
//! refusals raised before anything is sent: range bounds, wrong types,
//! unindexed or encrypted fields in queries and validators, missing keys),
//! every `expectEvents` (the commands csfle's client sent, from command
//! monitoring, matched with the unified format's rules; where the
//! expectation leaves an encrypted value as `{$$type: "binData"}`, the
//! value sent is also checked to be a payload of the field's kind: subtype
//! 6, first byte 11 or 16), the server's state the `testRunner` asserts
//! (collections, indexes), and the results and stored documents that do
//! not depend on what a QE server does with payloads. Those that do (a
//! query on encrypted payloads, documents with `__safeContent__`, data
//! after a write that matched on payloads) are counted as not checked, by
//! reason. A test the runner cannot run (a feature it does not implement,
//! a KMS provider it has no credentials for, an operation csfle refuses by
//! design) is counted as skipped with its reason; nothing is left out
//! silently. Each test has databases of its own (the spec's `default` and
//! `keyvault` renamed), dropped afterwards.

#![cfg(all(feature = "qe", feature = "driver"))]

mod common;
#[path = "common/wire_proxy.rs"]
mod wire_proxy;

use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::legacy::commands_for;
use common::{
    CSE, LOCAL_MASTERKEY_B64, bson_type_name, read_doc, service_env, spec_path, stored_by_id,
    unique_name,
};
use csfle::kms::{KmsProvider, KmsProviders, LocalMasterKey, MasterKey, ProviderName};
use csfle::{EncryptedClient, EncryptedCollection};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, ReturnDocument};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire_proxy::{Listed, WireProxy};

/// The `expectError` cases the run must compare at least: the 50 of the
/// 62 files (counted over the JSON), less the 9 it skips with a reason:
/// the 7 of `Rangev2-DecimalPrecision-Correctness` (csfle refuses decimal
/// range indexes with a precision), the compaction error of an
/// unencrypted client and the state collection name error (both a QE
/// server's). The 41: 7 each in the Int, Long, Date and DoublePrecision
/// `Correctness` files, 2 each in the Double and Decimal ones, 2 in
/// `WrongType`, 2 in `MissingKey`, 1 in `InsertFind-Unindexed`, 3 in
/// `validatorAndPartialFieldExpression`, 1 in `CreateCollection-OldServer`.
const MIN_ERRORS_COMPARED: usize = 41;

/// The tests the run must check at least (of 235): all but the 39 it
/// skips with a reason, each printed (the decimal-with-precision files,
/// compaction, the QE server's own errors, already encrypted values sent
/// without `bypassQueryAnalysis`, `dropCollection` with `encryptedFields`).
/// A test that starts being skipped fails the run until this floor is
/// lowered on purpose.
const MIN_TESTS_CHECKED: usize = 196;

/// FLE2InsertUpdatePayloadV2: what an insert or update sends for an
/// indexed (equality or range) field.
const INSERT_UPDATE_V2: u8 = 11;
/// FLE2UnindexedEncryptedValueV2: what it sends for an unindexed field.
const UNINDEXED_V2: u8 = 16;

/// The keys of a test file the runner reads.
const FILE_KEYS: [&str; 6] = [
    "description",
    "schemaVersion",
    "runOnRequirements",
    "createEntities",
    "initialData",
    "tests",
];

/// Files skipped whole, by name prefix.
const FILE_SKIPS: &[(&str, &str)] = &[(
    "fle2v2-Rangev2-DecimalPrecision-",
    "range indexes on decimal with a precision: csfle refuses every command on such a collection \
     (EncryptedFields::check_supported)",
)];

/// Tests skipped by name: what they check is a QE server's, or a command
/// csfle refuses by design.
const TEST_SKIPS: &[(&str, &str, &str)] = &[
    (
        "fle2v2-Compact.json",
        "Compact works",
        "csfle refuses compactStructuredEncryptionData (it builds no compaction tokens: \
         ClientError::StructuredEncryptionMaintenance)",
    ),
    (
        "fle2v2-Rangev2-Compact.json",
        "Compact works with 'range' fields",
        "csfle refuses compactStructuredEncryptionData (it builds no compaction tokens: \
         ClientError::StructuredEncryptionMaintenance)",
    ),
    (
        "fle2v2-Compact.json",
        "Compact errors on an unencrypted client",
        "the expected error is a QE server's (compaction without tokens); the test server \
         has no such command",
    ),
    (
        "fle2v2-CreateCollection.json",
        "encryptedFields are consulted for metadata collection names",
        "the expected error is a QE server's refusal of state collection names that do not \
         follow enxcol_.<collection>.esc; the test server creates any name",
    ),
];

/// Operations csfle refuses by design (the limits documented in
/// `src/analysis/queryable/mod.rs` and `qe::finalize`): an operation the
/// test expects to succeed that fails with this text skips the test, with
/// the reason. An operation expected to fail must fail as expected.
const CSFLE_REFUSES: &[(&str, &str)] = &[(
    "where only placeholders (first byte 3) are encrypted",
    "csfle refuses a command on a QE collection that carries an already encrypted value (a \
         subtype-6 binary other than a placeholder) unless bypassQueryAnalysis is set \
         (qe::finalize); libmongocrypt sends it as it is",
)];

/// Expected errors csfle words differently from libmongocrypt: the
/// specification's text, and csfle's (as the legacy runner accepts it).
const ERROR_WORDINGS: &[(&str, &str)] = &[("not all keys requested were satisfied", "no data key")];

/// Tests whose commands csfle sends differently from the drivers, on
/// purpose or as a known limit: a mismatch of their events is reported,
/// not failed, and a match says the entry can go.
const KNOWN_EVENT_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "fle2v2-CreateCollection.json",
        "CreateCollection without encryptedFields.",
        "csfle's drop reads the collection's options from the server itself (uncached), and \
         the create reads them again: one listCollections more than the drivers send",
    ),
    (
        "fle2v2-InsertFind-keyAltName.json",
        "Insert and find FLE2 indexed field",
        "csfle resolves the encryptedFieldsMap's keyAltName with a key-vault query of its own, \
         then fetches the key by id to encrypt: one key-vault find more than libmongocrypt",
    ),
    (
        "fle2v2-InsertFind-keyAltName.json",
        "Create translates keyAltName",
        "create_encrypted_collection resolves keyAltNames before it creates the state \
         collections; libmongocrypt resolves them while encrypting the create command, after",
    ),
];

/// What an operation's error says when it needed a KMS provider the runner
/// has no credentials for (the specification fills `$$placeholder`s from
/// the environment).
const NO_CREDENTIALS: &str = "the unified QE runner has no credentials for this KMS provider";

/// The adaptation noted when a filter's spelling is taken for another.
const EQ_SPELLING: &str = "filters: csfle sends {f: v} where mongocryptd writes {f: {$eq: v}} \
                           (or the other way round); the server reads both alike";

/// Where a filter (query) starts in a command or pipeline stage.
const FILTER_KEYS: [&str; 4] = ["filter", "q", "query", "$match"];

/// How a test ends when it does not pass.
enum Stop {
    /// Not run to the end, for this reason (counted and printed).
    Skip(String),
    /// A check failed.
    Fail(String),
}

fn skip(why: impl Into<String>) -> Stop {
    Stop::Skip(why.into())
}

fn fail(why: impl Into<String>) -> Stop {
    Stop::Fail(why.into())
}

/// An error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Refuses (skips the test) when `d` has a key the runner does not read.
fn allowed(d: &Document, keys: &[&str], what: &str) -> Result<(), Stop> {
    match d.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(skip(format!(
            "{what}: '{k}' is not implemented by the runner"
        ))),
        None => Ok(()),
    }
}

fn str_of<'d>(d: &'d Document, key: &str) -> Result<&'d str, Stop> {
    d.get_str(key)
        .map_err(|_| fail(format!("'{key}' missing or not a string")))
}

fn doc_of<'d>(d: &'d Document, key: &str) -> Result<&'d Document, Stop> {
    d.get_document(key)
        .map_err(|_| fail(format!("'{key}' missing or not a document")))
}

fn docs_of(d: &Document, key: &str) -> Result<Vec<Document>, Stop> {
    d.get_array(key)
        .map_err(|_| fail(format!("'{key}' missing or not an array")))?
        .iter()
        .map(|b| {
            b.as_document()
                .cloned()
                .ok_or_else(|| fail(format!("'{key}' holds a non-document")))
        })
        .collect()
}

fn as_i64(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
        _ => None,
    }
}

fn count(n: u64) -> Bson {
    Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX))
}

fn documents(docs: Vec<Document>) -> Option<Bson> {
    Some(Bson::Array(docs.into_iter().map(Bson::Document).collect()))
}

fn contains_key_deep(b: &Bson, key: &str) -> bool {
    match b {
        Bson::Document(d) => d.iter().any(|(k, v)| k == key || contains_key_deep(v, key)),
        Bson::Array(a) => a.iter().any(|v| contains_key_deep(v, key)),
        _ => false,
    }
}

fn has_encrypted_binary(b: &Bson) -> bool {
    match b {
        Bson::Binary(x) => x.subtype == BinarySubtype::Encrypted,
        Bson::Document(d) => d.values().any(has_encrypted_binary),
        Bson::Array(a) => a.iter().any(has_encrypted_binary),
        _ => false,
    }
}

/// Whether a command's query (filter, pipeline, statements' `q`) holds an
/// encrypted payload: its result then depends on what a QE server does.
fn carries_payload(c: &Document) -> bool {
    ["filter", "query", "pipeline"]
        .iter()
        .any(|k| c.get(*k).is_some_and(has_encrypted_binary))
        || ["updates", "deletes"].iter().any(|k| {
            c.get_array(*k).is_ok_and(|stmts| {
                stmts.iter().any(|s| {
                    s.as_document()
                        .and_then(|d| d.get("q"))
                        .is_some_and(has_encrypted_binary)
                })
            })
        })
}

/// The databases of one test: the spec's `default` and `keyvault`,
/// renamed so that tests share nothing and a real server's databases are
/// never touched.
struct Names {
    db: String,
    kv: String,
}

impl Names {
    fn new() -> Self {
        let db = unique_name("csfle_qe_unified");
        Names {
            kv: format!("{db}_kv"),
            db,
        }
    }

    fn db(&self, spec: &str) -> Result<String, String> {
        match spec {
            "default" => Ok(self.db.clone()),
            "keyvault" => Ok(self.kv.clone()),
            other => Err(format!(
                "database '{other}' (the runner maps 'default' and 'keyvault')"
            )),
        }
    }

    fn ns(&self, spec: &str) -> Result<String, String> {
        let (db, coll) = spec
            .split_once('.')
            .ok_or_else(|| format!("namespace '{spec}' is not db.coll"))?;
        Ok(format!("{}.{coll}", self.db(db)?))
    }

    /// An expected command with this test's names: `$db`, and the
    /// namespaces of its `encryptionInformation`.
    fn command(&self, expected: &Document) -> Result<Document, String> {
        let mut c = expected.clone();
        if let Ok(db) = c.get_str("$db").map(str::to_owned) {
            c.insert("$db", self.db(&db)?);
        }
        if let Ok(info) = c.get_document_mut("encryptionInformation")
            && let Ok(schema) = info.get_document("schema").cloned()
        {
            let mut renamed = Document::new();
            for (ns, v) in schema {
                renamed.insert(self.ns(&ns)?, v);
            }
            info.insert("schema", renamed);
        }
        Ok(c)
    }
}

/// A command a client sent, from command monitoring.
#[derive(Clone)]
struct Observed {
    db: String,
    name: String,
    command: Document,
}

/// The command-started events of one client.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Observed>>>);

impl Events {
    fn handler(&self) -> EventHandler<CommandEvent> {
        let events = self.clone();
        EventHandler::callback(move |e: CommandEvent| {
            if let CommandEvent::Started(s) = e {
                events.0.lock().unwrap().push(Observed {
                    db: s.db,
                    name: s.command_name,
                    command: s.command,
                });
            }
        })
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn since(&self, from: usize) -> Vec<Observed> {
        self.0
            .lock()
            .unwrap()
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }
}

/// A KMS provider the runner has no credentials for: every request fails
/// with [`NO_CREDENTIALS`], which skips the test.
#[derive(Debug)]
struct NoCredentials {
    provider: String,
}

impl NoCredentials {
    fn refusal(&self) -> csfle::kms::Error {
        csfle::kms::Error::Remote {
            provider: self.provider.clone(),
            endpoint: "none".into(),
            message: NO_CREDENTIALS.into(),
        }
    }
}

impl KmsProvider for NoCredentials {
    fn wrap<'a>(
        &'a self,
        _master_key: &'a MasterKey,
        _data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, csfle::kms::Error>> {
        Box::pin(std::future::ready(Err(self.refusal())))
    }

    fn unwrap<'a>(
        &'a self,
        _master_key: &'a MasterKey,
        _key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, csfle::kms::Error>> {
        Box::pin(std::future::ready(Err(self.refusal())))
    }
}

/// The KMS providers of an `autoEncryptOpts.kmsProviders`: `local` with
/// its key, any other provider as [`NoCredentials`].
fn kms_providers(spec: &Document) -> Result<KmsProviders, Stop> {
    let mut kms = KmsProviders::new();
    for (name, options) in spec {
        let provider =
            ProviderName::parse(name).map_err(|e| skip(format!("kmsProviders '{name}': {e}")))?;
        if name == "local" || name.starts_with("local:") {
            let key = local_key(options)?;
            let key = LocalMasterKey::new(key.as_slice())
                .map_err(|e| fail(format!("kmsProviders '{name}': {e}")))?;
            kms = kms.with_local(provider, key);
        } else {
            kms = kms.with_provider(
                provider,
                Arc::new(NoCredentials {
                    provider: name.clone(),
                }),
            );
        }
    }
    Ok(kms)
}

/// A local provider's master key: base64 text, binary, or the
/// specification's placeholder for its local key.
fn local_key(options: &Bson) -> Result<zeroize::Zeroizing<Vec<u8>>, Stop> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = match options.as_document().and_then(|d| d.get("key")) {
        Some(Bson::String(s)) => b64.decode(s).map_err(|e| fail(format!("local key: {e}")))?,
        Some(Bson::Binary(b)) => b.bytes.clone(),
        Some(Bson::Document(d)) if d.contains_key("$$placeholder") => b64
            .decode(LOCAL_MASTERKEY_B64)
            .map_err(|e| fail(format!("local key: {e}")))?,
        _ => return Err(skip("kmsProviders.local without a key")),
    };
    Ok(zeroize::Zeroizing::new(bytes))
}

/// Why a comparison did not hold.
enum Mismatch {
    /// The values differ: where and how.
    Differs(String),
    /// The expectation uses what the runner does not implement.
    Unsupported(String),
}

/// A unified-format operator (`$$type`, …): its name and argument.
fn special(d: &Document) -> Option<(&str, &Bson)> {
    if d.len() != 1 {
        return None;
    }
    let (k, v) = d.iter().next()?;
    k.starts_with("$$").then_some((k.as_str(), v))
}

/// The operand of a lone `{$eq: v}`.
fn only_eq(d: &Document) -> Option<&Bson> {
    if d.len() == 1 { d.get("$eq") } else { None }
}

fn integer(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

fn number(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// A value for a mismatch message: binaries by subtype, length and first
/// byte (not their bytes).
fn describe(b: Option<&Bson>) -> String {
    match b {
        None => "nothing".into(),
        Some(Bson::Binary(x)) => format!(
            "binary subtype {:?}, {} bytes, first byte {:?}",
            x.subtype,
            x.bytes.len(),
            x.bytes.first()
        ),
        Some(other) => other.to_string(),
    }
}

/// The unified test format's matching rules ("Evaluating Matches"):
/// extra fields allowed in root-level documents only, numbers equal by
/// value, `$$type`, `$$exists`, `$$unsetOrMatches`; any other `$$`
/// operator makes the test skipped. One adaptation, noted when used: in a
/// filter, `{f: {$eq: v}}` and `{f: v}` are taken as the same.
#[derive(Default)]
struct Matcher {
    eq_spelling: bool,
    /// Subtype-6 binaries (payloads) that matched byte for byte.
    exact_payloads: usize,
}

impl Matcher {
    fn value(
        &mut self,
        e: &Bson,
        a: Option<&Bson>,
        at: &str,
        root: bool,
        filter: bool,
    ) -> Result<(), Mismatch> {
        if let Bson::Document(ed) = e
            && let Some((op, arg)) = special(ed)
        {
            return self.operator(op, arg, a, at, filter);
        }
        let Some(a) = a else {
            return Err(Mismatch::Differs(format!("{at}: missing, expected {e}")));
        };
        if filter {
            if let Bson::Document(ed) = e
                && let Some(v) = only_eq(ed)
                && !matches!(a, Bson::Document(_))
            {
                self.eq_spelling = true;
                return self.value(v, Some(a), at, false, filter);
            }
            if !matches!(e, Bson::Document(_))
                && let Bson::Document(ad) = a
                && let Some(x) = only_eq(ad)
            {
                self.eq_spelling = true;
                return self.value(e, Some(x), at, false, filter);
            }
        }
        match (e, a) {
            (Bson::Document(ed), Bson::Document(ad)) => {
                for (k, ev) in ed {
                    let inner = filter || FILTER_KEYS.contains(&k.as_str());
                    self.value(ev, ad.get(k), &format!("{at}.{k}"), false, inner)?;
                }
                if !root && let Some(extra) = ad.keys().find(|k| !ed.contains_key(k.as_str())) {
                    return Err(Mismatch::Differs(format!(
                        "{at}: unexpected field '{extra}'"
                    )));
                }
                Ok(())
            }
            (Bson::Array(ea), Bson::Array(aa)) => {
                if ea.len() != aa.len() {
                    return Err(Mismatch::Differs(format!(
                        "{at}: {} elements, expected {}",
                        aa.len(),
                        ea.len()
                    )));
                }
                for (i, (x, y)) in ea.iter().zip(aa).enumerate() {
                    self.value(x, Some(y), &format!("{at}[{i}]"), false, filter)?;
                }
                Ok(())
            }
            (Bson::Binary(x), Bson::Binary(y)) => {
                if x != y {
                    return Err(Mismatch::Differs(format!(
                        "{at}: {}, expected {} (not the same bytes)",
                        describe(Some(a)),
                        describe(Some(e))
                    )));
                }
                if x.subtype == BinarySubtype::Encrypted {
                    self.exact_payloads += 1;
                }
                Ok(())
            }
            _ if number(e).is_some() && number(a).is_some() => {
                let same = match (integer(e), integer(a)) {
                    (Some(x), Some(y)) => x == y,
                    _ => number(e) == number(a),
                };
                if same {
                    Ok(())
                } else {
                    Err(Mismatch::Differs(format!("{at}: {a}, expected {e}")))
                }
            }
            _ if e == a => Ok(()),
            _ => Err(Mismatch::Differs(format!(
                "{at}: {}, expected {}",
                describe(Some(a)),
                describe(Some(e))
            ))),
        }
    }

    fn operator(
        &mut self,
        op: &str,
        arg: &Bson,
        a: Option<&Bson>,
        at: &str,
        filter: bool,
    ) -> Result<(), Mismatch> {
        match op {
            "$$type" => {
                let names: Vec<&str> = match arg {
                    Bson::String(s) => vec![s.as_str()],
                    Bson::Array(items) => items.iter().filter_map(Bson::as_str).collect(),
                    _ => {
                        return Err(Mismatch::Unsupported(format!("{at}: $$type of {arg}")));
                    }
                };
                let Some(a) = a else {
                    return Err(Mismatch::Differs(format!(
                        "{at}: missing, expected $$type {names:?}"
                    )));
                };
                let found = bson_type_name(a.element_type());
                let numeric = matches!(found, "int" | "long" | "double" | "decimal");
                if names
                    .iter()
                    .any(|n| *n == found || (*n == "number" && numeric))
                {
                    Ok(())
                } else {
                    Err(Mismatch::Differs(format!(
                        "{at}: type {found}, expected {names:?}"
                    )))
                }
            }
            "$$exists" => match arg {
                Bson::Boolean(want) if a.is_some() == *want => Ok(()),
                Bson::Boolean(want) => Err(Mismatch::Differs(format!(
                    "{at}: {}, expected $$exists {want}",
                    describe(a)
                ))),
                _ => Err(Mismatch::Unsupported(format!("{at}: $$exists of {arg}"))),
            },
            "$$unsetOrMatches" => match a {
                None => Ok(()),
                Some(_) => self.value(arg, a, at, false, filter),
            },
            other => Err(Mismatch::Unsupported(format!(
                "{at}: the unified format's {other} is not implemented by the runner"
            ))),
        }
    }

    /// An operation's result: each document of a list is root-level.
    fn result(&mut self, e: &Bson, a: &Bson) -> Result<(), Mismatch> {
        match (e, a) {
            (Bson::Array(ea), Bson::Array(aa)) => {
                if ea.len() != aa.len() {
                    return Err(Mismatch::Differs(format!(
                        "result: {} documents, expected {}",
                        aa.len(),
                        ea.len()
                    )));
                }
                for (i, (x, y)) in ea.iter().zip(aa).enumerate() {
                    self.value(x, Some(y), &format!("result[{i}]"), true, false)?;
                }
                Ok(())
            }
            _ => self.value(e, Some(a), "result", true, false),
        }
    }
}

/// The paths an `encryptionInformation` encrypts, and whether each is
/// indexed (has `queries`).
fn encrypted_paths(sent: &Document) -> Option<HashMap<String, bool>> {
    let schema = sent
        .get_document("encryptionInformation")
        .ok()?
        .get_document("schema")
        .ok()?;
    let (_, entry) = schema.iter().next()?;
    let fields = entry.as_document()?.get_array("fields").ok()?;
    Some(
        fields
            .iter()
            .filter_map(Bson::as_document)
            .filter_map(|f| {
                Some((
                    f.get_str("path").ok()?.to_owned(),
                    f.contains_key("queries"),
                ))
            })
            .collect(),
    )
}

/// The `$set` of the update document under `key`.
fn update_set<'d>(d: &'d Document, key: &str) -> Option<&'d Document> {
    d.get_document(key).ok()?.get_document("$set").ok()
}

/// The values an expectation leaves as `{$$type: "binData"}` at an
/// encrypted path (of `fields`) checked to be payloads of the field's
/// kind; the number checked.
fn walk_payloads(
    expected: &Document,
    sent: &Document,
    prefix: &str,
    fields: &HashMap<String, bool>,
) -> Result<usize, String> {
    let mut n = 0;
    for (k, e) in expected {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let Bson::Document(ed) = e else { continue };
        if let Some(("$$type", t)) = special(ed) {
            let bin = match t {
                Bson::String(s) => s == "binData",
                Bson::Array(a) => a.iter().any(|x| x.as_str() == Some("binData")),
                _ => false,
            };
            if let (true, Some(&indexed)) = (bin, fields.get(&path)) {
                let want = if indexed {
                    INSERT_UPDATE_V2
                } else {
                    UNINDEXED_V2
                };
                match sent.get(k) {
                    Some(Bson::Binary(b))
                        if b.subtype == BinarySubtype::Encrypted
                            && b.bytes.first() == Some(&want) =>
                    {
                        n += 1;
                    }
                    other => {
                        return Err(format!(
                            "{path}: expected a payload of subtype 6, first byte {want}; sent {}",
                            describe(other)
                        ));
                    }
                }
            }
        } else if let Some(Bson::Document(sd)) = sent.get(k) {
            n += walk_payloads(ed, sd, &path, fields)?;
        }
    }
    Ok(n)
}

/// For an insert, update or findAndModify matched against its
/// expectation: each value left as `{$$type: "binData"}` at a path the
/// command's `encryptionInformation` encrypts is a payload of the field's
/// kind (subtype 6, first byte 11 for an indexed field, 16 for an
/// unindexed one). The number checked.
fn payload_kinds(expected: &Document, sent: &Document) -> Result<usize, String> {
    let Some(fields) = encrypted_paths(sent) else {
        return Ok(0);
    };
    let mut pairs: Vec<(&Document, &Document)> = Vec::new();
    match sent.keys().next().map(String::as_str) {
        Some("insert") => {
            if let (Ok(e), Ok(s)) = (expected.get_array("documents"), sent.get_array("documents")) {
                for (e, s) in e.iter().zip(s) {
                    if let (Bson::Document(e), Bson::Document(s)) = (e, s) {
                        pairs.push((e, s));
                    }
                }
            }
        }
        Some("update") => {
            if let (Ok(e), Ok(s)) = (expected.get_array("updates"), sent.get_array("updates")) {
                for (e, s) in e.iter().zip(s) {
                    if let (Some(e), Some(s)) = (
                        e.as_document().and_then(|d| update_set(d, "u")),
                        s.as_document().and_then(|d| update_set(d, "u")),
                    ) {
                        pairs.push((e, s));
                    }
                }
            }
        }
        Some("findAndModify") => {
            if let (Some(e), Some(s)) = (update_set(expected, "update"), update_set(sent, "update"))
            {
                pairs.push((e, s));
            }
        }
        _ => {}
    }
    let mut n = 0;
    for (e, s) in pairs {
        n += walk_payloads(e, s, "", &fields)?;
    }
    Ok(n)
}

/// What one `expectEvents` entry compared: events, payloads checked by
/// kind, and whether `hello` commands were left out.
struct EventsCompared {
    events: usize,
    payload_kinds: usize,
    hello_left_out: bool,
}

/// One client's `expectEvents` against the commands it sent, in order,
/// as many as expected (unless `ignoreExtraEvents`).
fn compare_events(
    expect: &Document,
    observed: &[Observed],
    names: &Names,
    m: &mut Matcher,
) -> Result<EventsCompared, Mismatch> {
    let unsupported = |s: String| Mismatch::Unsupported(s);
    if let Some(k) = expect
        .keys()
        .find(|k| !["client", "events", "ignoreExtraEvents", "eventType"].contains(&k.as_str()))
    {
        return Err(unsupported(format!(
            "expectEvents: '{k}' is not implemented by the runner"
        )));
    }
    if let Ok(kind) = expect.get_str("eventType")
        && kind != "command"
    {
        return Err(unsupported(format!("expectEvents of type {kind}")));
    }
    let expected = expect
        .get_array("events")
        .map_err(|_| unsupported("expectEvents without events".into()))?;
    let ignore_extra = expect.get_bool("ignoreExtraEvents").unwrap_or(false);
    // create_encrypted_collection asks the server's wire version with
    // hello; the drivers read it from the server description.
    let names_hello = expected.iter().any(|e| {
        e.as_document()
            .and_then(|e| e.get_document("commandStartedEvent").ok())
            .and_then(|s| s.get_str("commandName").ok())
            .is_some_and(|n| n == "hello")
    });
    let sent = observed.len();
    let observed: Vec<&Observed> = observed
        .iter()
        .filter(|o| names_hello || !matches!(o.name.as_str(), "hello" | "isMaster" | "ismaster"))
        .collect();
    let hello_left_out = observed.len() < sent;
    let listing = || {
        observed
            .iter()
            .map(|o| format!("{} on {}", o.name, o.db))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if observed.len() < expected.len() || (!ignore_extra && observed.len() != expected.len()) {
        return Err(Mismatch::Differs(format!(
            "{} events expected, {} sent: [{}]",
            expected.len(),
            observed.len(),
            listing()
        )));
    }
    let mut payload_kinds_checked = 0;
    for (i, (e, o)) in expected.iter().zip(&observed).enumerate() {
        let e = e
            .as_document()
            .ok_or_else(|| unsupported(format!("event {i} is not a document")))?;
        let Ok(started) = e.get_document("commandStartedEvent") else {
            return Err(unsupported(format!(
                "expected event {:?} (the runner records commandStartedEvent only)",
                e.keys().next()
            )));
        };
        if let Some(k) = started
            .keys()
            .find(|k| !["command", "commandName", "databaseName"].contains(&k.as_str()))
        {
            return Err(unsupported(format!(
                "commandStartedEvent: '{k}' is not implemented by the runner"
            )));
        }
        if let Ok(name) = started.get_str("commandName")
            && name != o.name
        {
            return Err(Mismatch::Differs(format!(
                "event {i}: {} sent, {name} expected; sent: [{}]",
                o.name,
                listing()
            )));
        }
        if let Ok(db) = started.get_str("databaseName") {
            let db = names.db(db).map_err(unsupported)?;
            if db != o.db {
                return Err(Mismatch::Differs(format!(
                    "event {i} ({}): database {}, expected {db}",
                    o.name, o.db
                )));
            }
        }
        if let Ok(command) = started.get_document("command") {
            let command = names.command(command).map_err(unsupported)?;
            let compared = m.value(
                &Bson::Document(command.clone()),
                Some(&Bson::Document(o.command.clone())),
                &format!("event {i} ({})", o.name),
                true,
                false,
            );
            match compared {
                Ok(()) => {}
                Err(Mismatch::Differs(d)) => {
                    return Err(Mismatch::Differs(format!(
                        "{d}\n   expected {}\n   sent     {}",
                        csfle::ejson::to_canonical_line(&command),
                        csfle::ejson::to_canonical_line(&o.command)
                    )));
                }
                Err(other) => return Err(other),
            }
            payload_kinds_checked += payload_kinds(&command, &o.command)
                .map_err(|d| Mismatch::Differs(format!("event {i} ({}): {d}", o.name)))?;
        }
    }
    Ok(EventsCompared {
        events: expected.len(),
        payload_kinds: payload_kinds_checked,
        hello_left_out,
    })
}

/// What the passed tests checked.
#[derive(Default)]
struct Tally {
    errors: usize,
    /// Of `errors`: raised before the operation sent any data command
    /// (only schema and key-vault reads, if anything).
    errors_before_sending: usize,
    events: usize,
    payload_kinds: usize,
    payload_bytes: usize,
    results: usize,
    outcomes: usize,
    assertions: usize,
    /// What was not checked because it needs a QE server, by reason.
    unchecked: BTreeMap<String, usize>,
    adapted: BTreeSet<String>,
    known: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.errors += other.errors;
        self.errors_before_sending += other.errors_before_sending;
        self.events += other.events;
        self.payload_kinds += other.payload_kinds;
        self.payload_bytes += other.payload_bytes;
        self.results += other.results;
        self.outcomes += other.outcomes;
        self.assertions += other.assertions;
        for (k, n) in other.unchecked {
            *self.unchecked.entry(k).or_default() += n;
        }
        self.adapted.extend(other.adapted);
        self.known.extend(other.known);
    }

    fn not_checked(&mut self, what: String) {
        *self.unchecked.entry(what).or_default() += 1;
    }
}

/// A client entity: the driver client (through the proxy, its commands
/// monitored) and, with `autoEncryptOpts`, csfle's encrypted client over
/// it.
struct ClientEntity {
    plain: mongodb::Client,
    encrypted: Option<EncryptedClient>,
    /// Its `encryptedFieldsMap`, with this test's namespaces.
    map: Document,
    events: Events,
}

#[derive(Default)]
struct Env {
    clients: HashMap<String, ClientEntity>,
    /// By id: the client's id and the database's name.
    databases: HashMap<String, (String, String)>,
    /// By id: the database's id and the collection's name.
    collections: HashMap<String, (String, String)>,
}

impl Env {
    fn database(&self, id: &str) -> Result<(&ClientEntity, &str), Stop> {
        let (client, db) = self
            .databases
            .get(id)
            .ok_or_else(|| fail(format!("no database entity '{id}'")))?;
        let client = self
            .clients
            .get(client)
            .ok_or_else(|| fail(format!("no client entity '{client}'")))?;
        Ok((client, db.as_str()))
    }

    /// The client an operation on `object` runs with.
    fn client_of(&self, object: &str) -> Option<&ClientEntity> {
        let db = match self.collections.get(object) {
            Some((db, _)) => db.as_str(),
            None => object,
        };
        let (client, _) = self.databases.get(db)?;
        self.clients.get(client)
    }
}

struct Ctx {
    uri: String,
    /// A client straight to the server: setup, assertions, outcomes.
    direct: mongodb::Client,
}

/// A requirement of a server older than 7.0 (the OldServer test) makes
/// the proxy's `hello` replies say 6.0's wire version, 17.
fn wire_version_for(spec: &Document) -> Result<Option<i32>, Stop> {
    let mut old = false;
    for r in spec.get_array("runOnRequirements").into_iter().flatten() {
        let r = r
            .as_document()
            .ok_or_else(|| fail("runOnRequirements holds a non-document"))?;
        allowed(
            r,
            &[
                "minServerVersion",
                "maxServerVersion",
                "topologies",
                "csfle",
                "serverless",
            ],
            "runOnRequirements",
        )?;
        // The test server is not serverless: a test that forbids or allows
        // serverless runs, one that requires it does not.
        match r.get("serverless") {
            None => {}
            Some(Bson::String(s)) if s == "forbid" || s == "allow" => {}
            Some(other) => {
                return Err(skip(format!(
                    "runOnRequirements: serverless {other} (the test server is not serverless)"
                )));
            }
        }
        if let Ok(max) = r.get_str("maxServerVersion")
            && max
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m < 7)
        {
            old = true;
        }
    }
    Ok(old.then_some(17))
}

/// `initialData`: each collection created on the server (its
/// `encryptedFields` listed by the proxy instead, the server refusing
/// them), its documents inserted.
async fn load_initial_data(
    ctx: &Ctx,
    spec: &Document,
    names: &Names,
    proxy: &WireProxy,
) -> Result<(), Stop> {
    for entry in spec.get_array("initialData").into_iter().flatten() {
        let entry = entry
            .as_document()
            .ok_or_else(|| fail("initialData holds a non-document"))?;
        allowed(
            entry,
            &[
                "databaseName",
                "collectionName",
                "documents",
                "createOptions",
            ],
            "initialData",
        )?;
        let db = names.db(str_of(entry, "databaseName")?).map_err(skip)?;
        let coll = str_of(entry, "collectionName")?;
        let mut options = entry
            .get_document("createOptions")
            .cloned()
            .unwrap_or_default();
        match options.remove("encryptedFields") {
            Some(Bson::Document(fields)) => proxy.list(coll, Listed::EncryptedFields(fields)),
            Some(_) => return Err(fail("createOptions.encryptedFields is not a document")),
            None => {}
        }
        allowed(&options, &["validator"], "initialData createOptions")?;
        let mut create = doc! {"create": coll};
        create.extend(options);
        ctx.direct
            .database(&db)
            .run_command(create)
            .await
            .map_err(|e| fail(format!("creating {db}.{coll}: {}", chain(&e))))?;
        let docs = docs_of(entry, "documents")?;
        if !docs.is_empty() {
            ctx.direct
                .database(&db)
                .collection::<Document>(coll)
                .insert_many(docs)
                .await
                .map_err(|e| fail(format!("loading {db}.{coll}: {}", chain(&e))))?;
        }
    }
    Ok(())
}

/// A client entity, through the proxy.
async fn make_client(
    value: &Document,
    names: &Names,
    proxy: &WireProxy,
) -> Result<(String, ClientEntity), Stop> {
    allowed(
        value,
        &["id", "autoEncryptOpts", "observeEvents"],
        "client entity",
    )?;
    let id = str_of(value, "id")?.to_owned();
    for e in value.get_array("observeEvents").into_iter().flatten() {
        if !matches!(
            e.as_str(),
            Some("commandStartedEvent" | "commandSucceededEvent" | "commandFailedEvent")
        ) {
            return Err(skip(format!(
                "observeEvents {e} is not implemented by the runner"
            )));
        }
    }
    let events = Events::default();
    let mut options = ClientOptions::parse(&proxy.uri)
        .await
        .map_err(|e| fail(format!("client options: {e}")))?;
    options.command_event_handler = Some(events.handler());
    let plain =
        mongodb::Client::with_options(options).map_err(|e| fail(format!("client {id}: {e}")))?;
    let Ok(auto) = value.get_document("autoEncryptOpts") else {
        return Ok((
            id,
            ClientEntity {
                plain,
                encrypted: None,
                map: Document::new(),
                events,
            },
        ));
    };
    allowed(
        auto,
        &[
            "keyVaultNamespace",
            "kmsProviders",
            "encryptedFieldsMap",
            "bypassQueryAnalysis",
            "bypassAutoEncryption",
        ],
        "autoEncryptOpts",
    )?;
    let key_vault = names.ns(str_of(auto, "keyVaultNamespace")?).map_err(skip)?;
    let kms = kms_providers(doc_of(auto, "kmsProviders")?)?;
    let mut map = Document::new();
    if let Ok(entries) = auto.get_document("encryptedFieldsMap") {
        for (ns, fields) in entries {
            map.insert(names.ns(ns).map_err(skip)?, fields.clone());
        }
    }
    let mut builder = EncryptedClient::builder(plain.clone())
        .key_vault_namespace(key_vault)
        .kms(kms)
        .encrypted_fields_map(map.clone());
    if let Ok(b) = auto.get_bool("bypassQueryAnalysis") {
        builder = builder.bypass_query_analysis(b);
    }
    if let Ok(b) = auto.get_bool("bypassAutoEncryption") {
        builder = builder.bypass_auto_encryption(b);
    }
    let encrypted = builder
        .build()
        .await
        .map_err(|e| fail(format!("client {id}: {}", chain(&e))))?;
    Ok((
        id,
        ClientEntity {
            plain,
            encrypted: Some(encrypted),
            map,
            events,
        },
    ))
}

async fn create_entities(spec: &Document, names: &Names, proxy: &WireProxy) -> Result<Env, Stop> {
    let mut env = Env::default();
    for entity in spec.get_array("createEntities").into_iter().flatten() {
        let entity = entity
            .as_document()
            .ok_or_else(|| fail("createEntities holds a non-document"))?;
        let (kind, value) = entity
            .iter()
            .next()
            .ok_or_else(|| fail("an empty entity"))?;
        let value = value
            .as_document()
            .ok_or_else(|| fail(format!("entity {kind} is not a document")))?;
        match kind.as_str() {
            "client" => {
                let (id, client) = make_client(value, names, proxy).await?;
                env.clients.insert(id, client);
            }
            "database" => {
                allowed(value, &["id", "client", "databaseName"], "database entity")?;
                let db = names.db(str_of(value, "databaseName")?).map_err(skip)?;
                env.databases.insert(
                    str_of(value, "id")?.to_owned(),
                    (str_of(value, "client")?.to_owned(), db),
                );
            }
            "collection" => {
                allowed(
                    value,
                    &["id", "database", "collectionName"],
                    "collection entity",
                )?;
                env.collections.insert(
                    str_of(value, "id")?.to_owned(),
                    (
                        str_of(value, "database")?.to_owned(),
                        str_of(value, "collectionName")?.to_owned(),
                    ),
                );
            }
            other => {
                return Err(skip(format!(
                    "entity '{other}' is not implemented by the runner"
                )));
            }
        }
    }
    Ok(env)
}

/// What an operation did: its result, or its error's text.
type OpResult = Result<Option<Bson>, String>;

async fn encrypted_collection_op(
    coll: &EncryptedCollection<Document>,
    name: &str,
    args: &Document,
) -> Result<OpResult, Stop> {
    let filter = args.get_document("filter").cloned().unwrap_or_default();
    Ok(match name {
        "insertOne" => {
            allowed(args, &["document"], name)?;
            coll.insert_one(doc_of(args, "document")?)
                .await
                .map(|_| None)
                .map_err(|e| chain(&e))
        }
        "insertMany" => {
            allowed(args, &["documents"], name)?;
            let docs = docs_of(args, "documents")?;
            coll.insert_many(docs.iter())
                .await
                .map(|_| None)
                .map_err(|e| chain(&e))
        }
        "find" => {
            allowed(
                args,
                &["filter", "sort", "limit", "skip", "projection", "batchSize"],
                name,
            )?;
            let mut find = coll.find(filter);
            if let Ok(s) = args.get_document("sort") {
                find = find.sort(s.clone());
            }
            if let Some(n) = args.get("limit").and_then(as_i64) {
                find = find.limit(n);
            }
            if let Some(n) = args.get("skip").and_then(as_i64) {
                find = find.skip(n.unsigned_abs());
            }
            if let Ok(p) = args.get_document("projection") {
                find = find.projection(p.clone());
            }
            if let Some(n) = args.get("batchSize").and_then(as_i64) {
                find = find.batch_size(u32::try_from(n).unwrap_or(u32::MAX));
            }
            match find.await {
                Ok(cursor) => cursor
                    .try_collect::<Vec<Document>>()
                    .await
                    .map(documents)
                    .map_err(|e| chain(&e)),
                Err(e) => Err(chain(&e)),
            }
        }
        "aggregate" => {
            allowed(args, &["pipeline"], name)?;
            match coll.aggregate(docs_of(args, "pipeline")?).await {
                Ok(cursor) => cursor
                    .try_collect::<Vec<Document>>()
                    .await
                    .map(documents)
                    .map_err(|e| chain(&e)),
                Err(e) => Err(chain(&e)),
            }
        }
        "countDocuments" => {
            allowed(args, &["filter"], name)?;
            coll.count_documents(filter)
                .await
                .map(|n| Some(count(n)))
                .map_err(|e| chain(&e))
        }
        "updateOne" | "updateMany" => {
            allowed(args, &["filter", "update"], name)?;
            let Ok(update) = args.get_document("update") else {
                return Err(skip(format!(
                    "{name} with an update pipeline is not implemented by the runner"
                )));
            };
            let updated = if name == "updateOne" {
                coll.update_one(filter, update.clone()).await
            } else {
                coll.update_many(filter, update.clone()).await
            };
            updated
                .map(|r| {
                    Some(Bson::Document(doc! {
                        "matchedCount": count(r.matched_count),
                        "modifiedCount": count(r.modified_count),
                        "upsertedCount": i32::from(r.upserted_id.is_some()),
                    }))
                })
                .map_err(|e| chain(&e))
        }
        "deleteOne" | "deleteMany" => {
            allowed(args, &["filter"], name)?;
            let deleted = if name == "deleteOne" {
                coll.delete_one(filter).await
            } else {
                coll.delete_many(filter).await
            };
            deleted
                .map(|r| {
                    Some(Bson::Document(
                        doc! {"deletedCount": count(r.deleted_count)},
                    ))
                })
                .map_err(|e| chain(&e))
        }
        "findOneAndUpdate" => {
            allowed(args, &["filter", "update", "returnDocument"], name)?;
            let Ok(update) = args.get_document("update") else {
                return Err(skip(format!(
                    "{name} with an update pipeline is not implemented by the runner"
                )));
            };
            let which = match args.get_str("returnDocument") {
                Ok("After") => ReturnDocument::After,
                Ok("Before") | Err(_) => ReturnDocument::Before,
                Ok(other) => return Err(fail(format!("returnDocument '{other}'"))),
            };
            coll.find_one_and_update(filter, update.clone())
                .return_document(which)
                .await
                .map(|found| Some(found.map_or(Bson::Null, Bson::Document)))
                .map_err(|e| chain(&e))
        }
        other => {
            return Err(skip(format!(
                "collection operation {other} is not implemented by the runner"
            )));
        }
    })
}

/// The operations of a client without `autoEncryptOpts` (reading what the
/// server stored, writing plain documents).
async fn plain_collection_op(
    coll: &mongodb::Collection<Document>,
    name: &str,
    args: &Document,
) -> Result<OpResult, Stop> {
    let filter = args.get_document("filter").cloned().unwrap_or_default();
    Ok(match name {
        "insertOne" => {
            allowed(args, &["document"], name)?;
            coll.insert_one(doc_of(args, "document")?)
                .await
                .map(|_| None)
                .map_err(|e| chain(&e))
        }
        "insertMany" => {
            allowed(args, &["documents"], name)?;
            coll.insert_many(docs_of(args, "documents")?)
                .await
                .map(|_| None)
                .map_err(|e| chain(&e))
        }
        "find" => {
            allowed(args, &["filter", "sort", "limit"], name)?;
            let mut find = coll.find(filter);
            if let Ok(s) = args.get_document("sort") {
                find = find.sort(s.clone());
            }
            if let Some(n) = args.get("limit").and_then(as_i64) {
                find = find.limit(n);
            }
            match find.await {
                Ok(cursor) => cursor
                    .try_collect::<Vec<Document>>()
                    .await
                    .map(documents)
                    .map_err(|e| chain(&e)),
                Err(e) => Err(chain(&e)),
            }
        }
        "aggregate" => {
            allowed(args, &["pipeline"], name)?;
            match coll.aggregate(docs_of(args, "pipeline")?).await {
                Ok(cursor) => cursor
                    .try_collect::<Vec<Document>>()
                    .await
                    .map(documents)
                    .map_err(|e| chain(&e)),
                Err(e) => Err(chain(&e)),
            }
        }
        "countDocuments" => {
            allowed(args, &["filter"], name)?;
            coll.count_documents(filter)
                .await
                .map(|n| Some(count(n)))
                .map_err(|e| chain(&e))
        }
        other => {
            return Err(skip(format!(
                "{other} on a client without autoEncryptOpts is not implemented by the runner"
            )));
        }
    })
}

/// The one `create` command a `createCollection` operation is (its
/// `validator` included), as the legacy runner builds it.
fn create_command(op: &Document, name: &str) -> Result<Document, Stop> {
    match commands_for(op, name) {
        Some(Ok(mut commands)) if commands.len() == 1 => Ok(commands.remove(0)),
        _ => Err(fail("createCollection: no create command")),
    }
}

/// `createCollection`: on a Queryable Encryption namespace (the operation's
/// `encryptedFields`, else the client's `encryptedFieldsMap`), csfle's
/// create-collection helper, `ClientEncryption::create_encrypted_collection`
/// (state collections, the collection, its index); its `validator`, when
/// given, is first checked by the client's encrypter, as `run_command`
/// would analyse the `create` (the helper sends no validator). Otherwise
/// the `create` command through the client.
async fn create_collection(
    client: &ClientEntity,
    db: &str,
    op: &Document,
    args: &Document,
    tally: &mut Tally,
) -> Result<OpResult, Stop> {
    allowed(
        args,
        &["collection", "encryptedFields", "validator"],
        "createCollection",
    )?;
    let name = str_of(args, "collection")?;
    let Some(ec) = &client.encrypted else {
        if args.contains_key("encryptedFields") {
            return Err(skip(
                "createCollection with encryptedFields on a client without autoEncryptOpts",
            ));
        }
        let create = create_command(op, name)?;
        return Ok(client
            .plain
            .database(db)
            .run_command(create)
            .await
            .map(|_| None)
            .map_err(|e| chain(&e)));
    };
    let fields = match args.get("encryptedFields") {
        Some(Bson::Document(f)) => Some(f.clone()),
        Some(_) => return Err(fail("createCollection: encryptedFields is not a document")),
        None => client
            .map
            .get_document(format!("{db}.{name}"))
            .ok()
            .cloned(),
    };
    let Some(fields) = fields else {
        let create = create_command(op, name)?;
        return Ok(ec
            .database(db)
            .run_command(create)
            .await
            .map(|_| None)
            .map_err(|e| chain(&e)));
    };
    if args.contains_key("validator") {
        let create = create_command(op, name)?;
        if let Err(e) = ec.auto_encrypter().encrypt_command(db, &create).await {
            return Ok(Err(chain(&e)));
        }
        tally.adapted.insert(
            "createCollection with a validator on a QE namespace: the create command is \
             analysed by the client's encrypter (the validator checked), then \
             create_encrypted_collection makes the collection, without the validator"
                .into(),
        );
    }
    let local = ProviderName::parse("local").map_err(|e| fail(e.to_string()))?;
    let made = ec
        .client_encryption()
        .create_encrypted_collection(&client.plain.database(db), name, fields, &local, None)
        .await;
    Ok(made.map(|_| None).map_err(|e| chain(&e)))
}

async fn database_op(
    client: &ClientEntity,
    db: &str,
    op: &Document,
    name: &str,
    args: &Document,
    tally: &mut Tally,
) -> Result<OpResult, Stop> {
    match name {
        "runCommand" => {
            allowed(args, &["command", "commandName"], name)?;
            let command = doc_of(args, "command")?.clone();
            Ok(match &client.encrypted {
                Some(ec) => ec
                    .database(db)
                    .run_command(command)
                    .await
                    .map_err(|e| chain(&e)),
                None => client
                    .plain
                    .database(db)
                    .run_command(command)
                    .await
                    .map_err(|e| chain(&e)),
            }
            .map(|reply| Some(Bson::Document(reply))))
        }
        "createCollection" => create_collection(client, db, op, args, tally).await,
        "dropCollection" => {
            if args.contains_key("encryptedFields") {
                return Err(skip(
                    "dropCollection with encryptedFields: csfle's drop takes none (it drops the \
                     state collections of a collection its encryptedFieldsMap or the server \
                     lists)",
                ));
            }
            allowed(args, &["collection"], name)?;
            let coll = str_of(args, "collection")?;
            Ok(match &client.encrypted {
                Some(ec) => ec
                    .database(db)
                    .collection::<Document>(coll)
                    .drop()
                    .await
                    .map_err(|e| chain(&e)),
                None => client
                    .plain
                    .database(db)
                    .collection::<Document>(coll)
                    .drop()
                    .await
                    .map_err(|e| chain(&e)),
            }
            .map(|()| None))
        }
        other => Err(skip(format!(
            "database operation {other} is not implemented by the runner"
        ))),
    }
}

/// The `testRunner`'s assertions, on the server itself.
async fn runner_op(
    ctx: &Ctx,
    names: &Names,
    name: &str,
    args: &Document,
    tally: &mut Tally,
) -> Result<OpResult, Stop> {
    let exists = match name {
        "assertCollectionExists" | "assertCollectionNotExists" => {
            allowed(args, &["databaseName", "collectionName"], name)?;
            let db = names.db(str_of(args, "databaseName")?).map_err(skip)?;
            let coll = str_of(args, "collectionName")?;
            let listed = ctx
                .direct
                .database(&db)
                .list_collection_names()
                .await
                .map_err(|e| fail(format!("{name}: {}", chain(&e))))?;
            listed.iter().any(|c| c == coll)
        }
        "assertIndexExists" | "assertIndexNotExists" => {
            allowed(args, &["databaseName", "collectionName", "indexName"], name)?;
            let db = names.db(str_of(args, "databaseName")?).map_err(skip)?;
            let coll = str_of(args, "collectionName")?;
            let index = str_of(args, "indexName")?;
            // A collection that does not exist has no index.
            let indexes = ctx
                .direct
                .database(&db)
                .collection::<Document>(coll)
                .list_index_names()
                .await
                .unwrap_or_default();
            indexes.iter().any(|i| i == index)
        }
        other => {
            return Err(skip(format!(
                "testRunner operation {other} is not implemented by the runner"
            )));
        }
    };
    if exists == name.contains("NotExists") {
        return Err(fail(format!(
            "{name} {args}: it {}",
            if exists { "exists" } else { "does not" }
        )));
    }
    tally.assertions += 1;
    Ok(Ok(None))
}

async fn run_op(
    ctx: &Ctx,
    env: &Env,
    names: &Names,
    op: &Document,
    tally: &mut Tally,
) -> Result<OpResult, Stop> {
    let name = str_of(op, "name")?;
    let object = str_of(op, "object")?;
    let empty = Document::new();
    let args = match op.get("arguments") {
        None => &empty,
        Some(Bson::Document(d)) => d,
        Some(_) => return Err(fail("arguments is not a document")),
    };
    if object == "testRunner" {
        return runner_op(ctx, names, name, args, tally).await;
    }
    if let Some((db_id, coll_name)) = env.collections.get(object) {
        let (client, db) = env.database(db_id)?;
        return match &client.encrypted {
            Some(ec) => {
                let coll = ec.database(db).collection::<Document>(coll_name);
                encrypted_collection_op(&coll, name, args).await
            }
            None => {
                let coll = client.plain.database(db).collection::<Document>(coll_name);
                plain_collection_op(&coll, name, args).await
            }
        };
    }
    if env.databases.contains_key(object) {
        let (client, db) = env.database(object)?;
        return database_op(client, db, op, name, args, tally).await;
    }
    Err(skip(format!(
        "an operation on '{object}', which is no entity the runner made"
    )))
}

/// Whether an operation's error matches the expected text: contained,
/// case-insensitively, or in csfle's words ([`ERROR_WORDINGS`]).
fn error_matches(message: &str, want: &str, tally: &mut Tally) -> bool {
    let lower = message.to_lowercase();
    if lower.contains(&want.to_lowercase()) {
        return true;
    }
    match ERROR_WORDINGS
        .iter()
        .find(|(spec, ours)| want.eq_ignore_ascii_case(spec) && lower.contains(*ours))
    {
        Some((spec, ours)) => {
            tally
                .adapted
                .insert(format!("error '{spec}' compared as csfle's '{ours}'"));
            true
        }
        None => false,
    }
}

/// One test, on databases of its own: `Ok` when every check held.
async fn run_test(
    ctx: &Ctx,
    file: &str,
    spec: &Document,
    test: &Document,
    names: &Names,
    tally: &mut Tally,
) -> Result<(), Stop> {
    let description = str_of(test, "description")?;
    if let Some((_, _, why)) = TEST_SKIPS
        .iter()
        .find(|(f, d, _)| *f == file && *d == description)
    {
        return Err(skip(*why));
    }
    allowed(
        test,
        &["description", "operations", "expectEvents", "outcome"],
        "test",
    )?;
    let proxy = WireProxy::start(&ctx.uri).await;
    proxy.act_as_queryable_server();
    if let Some(version) = wire_version_for(spec)? {
        proxy.max_wire_version(version);
    }
    load_initial_data(ctx, spec, names, &proxy).await?;
    let env = create_entities(spec, names, &proxy).await?;

    // Set once a write matched on encrypted payloads: from then on the
    // test server's data is not what a QE server would hold.
    let mut diverged = false;
    let operations = test
        .get_array("operations")
        .map_err(|_| fail("no operations"))?;
    for (i, op) in operations.iter().enumerate() {
        let op = op
            .as_document()
            .ok_or_else(|| fail(format!("operation {i} is not a document")))?;
        allowed(
            op,
            &["name", "object", "arguments", "expectError", "expectResult"],
            "operation",
        )?;
        let name = str_of(op, "name")?;
        let object = str_of(op, "object")?;
        let label = format!("operation {i} ({name} on {object})");
        let client = env.client_of(object);
        let before = client.map_or(0, |c| c.events.len());
        let outcome = run_op(ctx, &env, names, op, tally).await?;
        let sent = client.map(|c| c.events.since(before)).unwrap_or_default();
        let expected_error = op.get_document("expectError").ok();
        match (outcome, expected_error) {
            (Err(message), _) if message.contains(NO_CREDENTIALS) => {
                return Err(skip(
                    "an operation needs a KMS provider the runner has no credentials for \
                     ($$placeholder)",
                ));
            }
            (Err(message), Some(expect)) => {
                allowed(expect, &["errorContains"], "expectError")?;
                let want = str_of(expect, "errorContains")?;
                if !error_matches(&message, want, tally) {
                    return Err(fail(format!(
                        "{label}: error '{message}', expected one containing '{want}'"
                    )));
                }
                tally.errors += 1;
                let data_sent = sent.iter().any(|o| {
                    let schema_or_handshake =
                        matches!(o.name.as_str(), "listCollections" | "hello");
                    let key_vault_read = o.name == "find" && o.db == names.kv;
                    !(schema_or_handshake || key_vault_read)
                });
                if !data_sent {
                    tally.errors_before_sending += 1;
                }
            }
            (Err(message), None) => {
                if let Some((_, why)) = CSFLE_REFUSES.iter().find(|(m, _)| message.contains(*m)) {
                    return Err(skip(*why));
                }
                return Err(fail(format!("{label}: unexpected error: {message}")));
            }
            (Ok(_), Some(expect)) => {
                return Err(fail(format!(
                    "{label}: succeeded, expected an error ({expect})"
                )));
            }
            (Ok(value), None) => {
                if let Some(expected) = op.get("expectResult") {
                    let why_not = if diverged {
                        Some("an earlier write matched on encrypted payloads".to_owned())
                    } else if contains_key_deep(expected, "__safeContent__") {
                        Some("the documents a QE server stores (__safeContent__)".to_owned())
                    } else if sent.iter().any(|o| carries_payload(&o.command)) {
                        Some("a query on encrypted payloads".to_owned())
                    } else if value.is_none() {
                        Some(format!("the result of {name} (not compared by the runner)"))
                    } else {
                        None
                    };
                    match why_not {
                        Some(why) => tally.not_checked(format!("results: {why}")),
                        None => {
                            let mut m = Matcher::default();
                            match m.result(expected, &value.unwrap_or(Bson::Null)) {
                                Ok(()) => tally.results += 1,
                                Err(Mismatch::Unsupported(why)) => return Err(skip(why)),
                                Err(Mismatch::Differs(d)) => {
                                    return Err(fail(format!("{label}: {d}")));
                                }
                            }
                        }
                    }
                }
                if sent.iter().any(|o| {
                    matches!(o.name.as_str(), "update" | "delete" | "findAndModify")
                        && o.command.contains_key("encryptionInformation")
                }) {
                    diverged = true;
                }
            }
        }
    }

    // Command monitoring may report the last events just after the
    // operation returned.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let known = KNOWN_EVENT_DIFFERENCES
        .iter()
        .find(|(f, d, _)| *f == file && *d == description)
        .map(|(_, _, why)| *why);
    let mut difference = None;
    let mut compared = Tally::default();
    for expect in test.get_array("expectEvents").into_iter().flatten() {
        let expect = expect
            .as_document()
            .ok_or_else(|| fail("expectEvents holds a non-document"))?;
        let id = str_of(expect, "client")?;
        let client = env
            .clients
            .get(id)
            .ok_or_else(|| fail(format!("expectEvents of unknown client '{id}'")))?;
        let mut m = Matcher::default();
        match compare_events(expect, &client.events.since(0), names, &mut m) {
            Ok(c) => {
                compared.events += c.events;
                compared.payload_kinds += c.payload_kinds;
                compared.payload_bytes += m.exact_payloads;
                if m.eq_spelling {
                    compared.adapted.insert(EQ_SPELLING.into());
                }
                if c.hello_left_out {
                    compared.adapted.insert(
                        "hello commands are not compared: create_encrypted_collection asks \
                         the server's wire version with hello, the drivers read it from the \
                         server description"
                            .into(),
                    );
                }
            }
            Err(Mismatch::Unsupported(why)) => return Err(skip(why)),
            Err(Mismatch::Differs(d)) if known.is_some() => difference = Some(d),
            Err(Mismatch::Differs(d)) => return Err(fail(format!("events of {id}: {d}"))),
        }
    }
    match (known, difference) {
        (Some(why), Some(d)) => tally.known.push(format!(
            "{file}: {description}: {why} (seen: {})",
            d.lines().next().unwrap_or_default()
        )),
        (Some(why), None) => {
            tally.known.push(format!(
                "{file}: {description}: NOT seen any more, remove it from \
                 KNOWN_EVENT_DIFFERENCES ({why})"
            ));
            tally.add(compared);
        }
        (None, _) => tally.add(compared),
    }

    for entry in test.get_array("outcome").into_iter().flatten() {
        let entry = entry
            .as_document()
            .ok_or_else(|| fail("outcome holds a non-document"))?;
        allowed(
            entry,
            &["collectionName", "databaseName", "documents"],
            "outcome",
        )?;
        if diverged {
            tally.not_checked(
                "stored documents: after a write that matched on encrypted payloads".into(),
            );
            continue;
        }
        if contains_key_deep(&Bson::Document(entry.clone()), "__safeContent__") {
            tally.not_checked("stored documents: a QE server's (__safeContent__)".into());
            continue;
        }
        let db = names.db(str_of(entry, "databaseName")?).map_err(skip)?;
        let coll = str_of(entry, "collectionName")?;
        let stored: Vec<Bson> = stored_by_id(ctx.direct.database(&db).collection::<Document>(coll))
            .await
            .into_iter()
            .map(Bson::Document)
            .collect();
        let want = entry
            .get_array("documents")
            .map_err(|_| fail("outcome without documents"))?;
        let mut m = Matcher::default();
        match m.value(
            &Bson::Array(want.clone()),
            Some(&Bson::Array(stored)),
            "stored",
            false,
            false,
        ) {
            Ok(()) => tally.outcomes += 1,
            Err(Mismatch::Unsupported(why)) => return Err(skip(why)),
            Err(Mismatch::Differs(d)) => return Err(fail(format!("outcome: {d}"))),
        }
    }
    Ok(())
}

/// What one file's tests did.
#[derive(Default)]
struct FileReport {
    file: String,
    tests: usize,
    checked: usize,
    /// By reason.
    skipped: BTreeMap<String, usize>,
    tally: Tally,
    failures: Vec<String>,
}

async fn run_file(ctx: &Ctx, file: &str, spec: &Document) -> FileReport {
    let mut report = FileReport {
        file: file.to_owned(),
        ..FileReport::default()
    };
    let tests: Vec<&Document> = spec
        .get_array("tests")
        .map(|t| t.iter().filter_map(Bson::as_document).collect())
        .unwrap_or_default();
    report.tests = tests.len();
    let file_skip = FILE_SKIPS
        .iter()
        .find(|(prefix, _)| file.starts_with(*prefix))
        .map(|(_, why)| (*why).to_owned())
        .or_else(|| {
            spec.keys()
                .find(|k| !FILE_KEYS.contains(&k.as_str()))
                .map(|k| format!("file key '{k}' is not implemented by the runner"))
        });
    for test in tests {
        if let Some(why) = &file_skip {
            *report.skipped.entry(why.clone()).or_default() += 1;
            continue;
        }
        let description = test.get_str("description").unwrap_or("(no description)");
        let names = Names::new();
        let mut tally = Tally::default();
        let result = run_test(ctx, file, spec, test, &names, &mut tally).await;
        for db in [&names.db, &names.kv] {
            // Best effort: a database a test never made is no error.
            let _ = ctx.direct.database(db).drop().await;
        }
        match result {
            Ok(()) => {
                report.checked += 1;
                report.tally.add(tally);
            }
            Err(Stop::Skip(why)) => *report.skipped.entry(why).or_default() += 1,
            Err(Stop::Fail(why)) => report
                .failures
                .push(format!("{file}: {description}: {why}")),
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI and spec data: the specification's unified Queryable Encryption tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn unified_queryable_encryption_tests_against_the_server() {
    let uri = service_env("MONGODB_URI");
    let dir = spec_path(CSE).join("tests/unified");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("fle2v2-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fle2v2-*.json in {}", dir.display());
    let ctx = Ctx {
        direct: mongodb::Client::with_uri_str(&uri).await.unwrap(),
        uri,
    };
    let mut reports = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        reports.push(run_file(&ctx, &file, &read_doc(path)).await);
    }

    let mut total = Tally::default();
    let (mut tests, mut checked, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    println!("unified QE tests ({} files):", reports.len());
    for r in reports {
        let t = &r.tally;
        let skips: usize = r.skipped.values().sum();
        println!(
            "{}: {} tests: {} checked, {} skipped; {} errors compared \
             ({} before any data command), {} events compared ({} payloads checked by kind, \
             {} byte for byte), {} results, {} stored collections, {} server assertions",
            r.file,
            r.tests,
            r.checked,
            skips,
            t.errors,
            t.errors_before_sending,
            t.events,
            t.payload_kinds,
            t.payload_bytes,
            t.results,
            t.outcomes,
            t.assertions
        );
        for (why, n) in &r.skipped {
            println!("    skipped x{n}: {why}");
        }
        for (what, n) in &t.unchecked {
            println!("    not checked (needs a QE server) x{n}: {what}");
        }
        tests += r.tests;
        checked += r.checked;
        skipped += skips;
        failures.extend(r.failures);
        total.add(r.tally);
    }
    println!(
        "total: {tests} tests: {checked} checked, {skipped} skipped, {} failed; {} errors compared \
         ({} before any data command), {} events compared ({} payloads by kind, {} byte for byte), \
         {} results, {} stored collections, {} server assertions",
        failures.len(),
        total.errors,
        total.errors_before_sending,
        total.events,
        total.payload_kinds,
        total.payload_bytes,
        total.results,
        total.outcomes,
        total.assertions
    );
    for a in &total.adapted {
        println!("  adapted: {a}");
    }
    for k in &total.known {
        println!("  known difference: {k}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        total.errors >= MIN_ERRORS_COMPARED,
        "{} expectError cases compared, at least {MIN_ERRORS_COMPARED} expected",
        total.errors
    );
    assert!(
        checked >= MIN_TESTS_CHECKED,
        "{checked} tests checked, at least {MIN_TESTS_CHECKED} expected"
    );
    assert!(
        checked > 0 && total.events > 0,
        "nothing checked: {checked} tests, {} events",
        total.events
    );
}
