//! The commands automatic encryption supports: each one's allow-list of
//! fields, and what is analysed in each.

use super::context::{Ctx, Error, Namespace, NamespaceSchema, Pass, Resolved, without_markings};
use super::pipelines::{self, Kind};
#[cfg(feature = "qe")]
use super::queryable;
use super::shape::Shape;
use super::{bulk_write, expressions, filters, markings, updates};
use crate::schema::{EncryptKey, FieldInfo};
use bson::{Bson, Document, doc};

/// What to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Analysis {
    /// Nothing to encrypt: send the original command.
    Unchanged,
    /// The command with markings, to pass to
    /// [`encrypt_markings`](markings::encrypt_markings).
    Marked(Document),
}

/// Commands sent without analysis (the specification's list, plus
/// commands that carry no user data).
const BYPASS: &[&str] = &[
    "abortTransaction",
    "authenticate",
    "buildInfo",
    "buildinfo",
    "commitTransaction",
    "connectionStatus",
    "dbStats",
    "collStats",
    "drop",
    "dropDatabase",
    "dropIndexes",
    "endSessions",
    "getCmdLineOpts",
    "getLog",
    "getMore",
    "getnonce",
    "hello",
    "hostInfo",
    "isMaster",
    "ismaster",
    "killAllSessions",
    "killAllSessionsByPattern",
    "killCursors",
    "killSessions",
    "listCollections",
    "listDatabases",
    "listIndexes",
    "logout",
    "ping",
    "refreshSessions",
    "saslContinue",
    "saslStart",
    "serverStatus",
    "startSession",
    "whatsmyuri",
    "createSearchIndexes",
    "dropSearchIndex",
    "updateSearchIndex",
    "listSearchIndexes",
];

/// Whether the command `name` is sent without analysis (getMore, hello, …).
pub fn is_bypassed(name: &str) -> bool {
    BYPASS.contains(&name)
}

/// The command's name (its first key) and collection (a string value, or
/// `None` for `1`).
pub fn command_target(command: &Document) -> Result<(&str, Option<&str>), Error> {
    let (name, value) = command
        .iter()
        .next()
        .ok_or_else(|| Error::Malformed("empty command".into()))?;
    Ok((name.as_str(), value.as_str()))
}

/// Fields any command may carry that hold no user data (sessions,
/// transactions, concerns, API versioning, time limits, comments).
const GENERIC: &[&str] = &[
    "$db",
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "$clusterTime",
    "readConcern",
    "writeConcern",
    "$readPreference",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "maxTimeMS",
    "comment",
];

/// The collection commands analysed, and the fields each may have besides
/// its name and [`GENERIC`]. Every field listed is either analysed below or
/// holds no user data.
const COMMANDS: &[(&str, &[&str])] = &[
    (
        "insert",
        &["documents", "ordered", "bypassDocumentValidation"],
    ),
    (
        "find",
        &[
            "filter",
            "projection",
            "sort",
            "hint",
            "skip",
            "limit",
            "batchSize",
            "singleBatch",
            "max",
            "min",
            "returnKey",
            "showRecordId",
            "tailable",
            "oplogReplay",
            "noCursorTimeout",
            "awaitData",
            "allowPartialResults",
            "collation",
            "allowDiskUse",
            "let",
        ],
    ),
    (
        "update",
        &["updates", "ordered", "bypassDocumentValidation", "let"],
    ),
    ("delete", &["deletes", "ordered", "let"]),
    (
        "findAndModify",
        &[
            "query",
            "sort",
            "remove",
            "update",
            "new",
            "fields",
            "upsert",
            "bypassDocumentValidation",
            "collation",
            "arrayFilters",
            "hint",
            "let",
        ],
    ),
    (
        "aggregate",
        &[
            "pipeline",
            "explain",
            "allowDiskUse",
            "cursor",
            "bypassDocumentValidation",
            "collation",
            "hint",
            "let",
        ],
    ),
    ("count", &["query", "limit", "skip", "hint", "collation"]),
    ("distinct", &["key", "query", "collation", "hint"]),
    (
        "create",
        &[
            "capped",
            "size",
            "max",
            "storageEngine",
            "validator",
            "validationLevel",
            "validationAction",
            "indexOptionDefaults",
            "viewOn",
            "pipeline",
            "collation",
            "timeseries",
            "expireAfterSeconds",
            "clusteredIndex",
            "changeStreamPreAndPostImages",
        ],
    ),
    (
        "collMod",
        &[
            "validator",
            "validationLevel",
            "validationAction",
            "index",
            "viewOn",
            "pipeline",
            "expireAfterSeconds",
            "changeStreamPreAndPostImages",
            "cappedSize",
            "cappedMax",
            "timeseries",
        ],
    ),
    ("createIndexes", &["indexes", "commitQuorum"]),
];

/// The fields of the client-level `bulkWrite` besides its name and
/// [`GENERIC`]: `ops` and `nsInfo` (read in `bulk_write`), `let` (checked
/// like every command's), and options that hold no user data. Any other
/// field is refused, whatever the namespace.
const BULK_WRITE: &[&str] = &[
    "ops",
    "nsInfo",
    "ordered",
    "bypassDocumentValidation",
    "let",
    "errorsOnly",
];

const UPDATE_STATEMENT: &[&str] = &[
    "q",
    "u",
    "upsert",
    "multi",
    "arrayFilters",
    "collation",
    "hint",
    "c",
    "sort",
];
const DELETE_STATEMENT: &[&str] = &["q", "limit", "collation", "hint"];

/// Whether `name` is a collection command analysis supports.
pub(crate) fn is_supported(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _)| *n == name)
}

pub(crate) fn analyze<'s>(
    command: &Document,
    db: &str,
    schemas: &dyn Fn(&Namespace) -> NamespaceSchema<'s>,
) -> Result<Analysis, Error> {
    run(command, db, schemas, Pass::Mark)
}

/// The checks of [`analyze`] on a command the application encrypted
/// itself (`bypass_query_analysis`): where a value would be marked, it
/// must already be a ciphertext of the kind expected there.
pub(crate) fn verify_bypassed<'s>(
    command: &Document,
    db: &str,
    schemas: &dyn Fn(&Namespace) -> NamespaceSchema<'s>,
) -> Result<(), Error> {
    match run(command, db, schemas, Pass::VerifyBypassed)? {
        Analysis::Unchanged => Ok(()),
        // `run` refuses a verification that marked anything; kept closed
        // all the same.
        Analysis::Marked(_) => Err(Error::Malformed(
            "internal error: a value was marked while verifying a bypassed command; refusing it"
                .into(),
        )),
    }
}

/// One analysis of `command`, marking values or verifying them (`pass`):
/// the same dispatch and walkers either way.
fn run<'s>(
    command: &Document,
    db: &str,
    schemas: &dyn Fn(&Namespace) -> NamespaceSchema<'s>,
    pass: Pass,
) -> Result<Analysis, Error> {
    let (name, _) = command_target(command)?;
    if is_bypassed(name) {
        return Ok(Analysis::Unchanged);
    }
    // One bounded walk before anything else walks or copies the command:
    // its depth, and no marking the application could have planted.
    // Verifying, only the depth first: a marking or placeholder where the
    // schema encrypts is refused by the walk, naming its field, and one
    // anywhere else after it.
    match pass {
        Pass::Mark => markings::refuse_input_markings(command)?,
        Pass::VerifyBypassed => crate::nesting::check(command)?,
    }
    let mut cx = Ctx::new(db, schemas, pass);
    let out = match name {
        "explain" => explain(&mut cx, command)?,
        "bulkWrite" => bulk_write_command(&mut cx, command)?,
        _ => collection_command(&mut cx, command)?,
    };
    if let (Some(ns), Some(field)) = (cx.encrypted(), cx.unknown.first()) {
        return Err(Error::UnknownField {
            command: name.to_owned(),
            field: field.clone(),
            ns: ns.to_string(),
        });
    }
    if pass == Pass::VerifyBypassed {
        // Nothing was marked, and the command is sent as written: it may
        // hold no marking or placeholder anywhere (each holds a value in
        // plaintext, and no step after this would encrypt it).
        markings::refuse_input_markings(command)?;
        // A verification makes no marking or placeholder: one made means a
        // walker did not look at the pass, and the command, sent as
        // written, would carry that value in plaintext.
        #[cfg(feature = "qe")]
        let made = cx.made + cx.placeholders;
        #[cfg(not(feature = "qe"))]
        let made = cx.made;
        if made > 0 {
            return Err(Error::Malformed(
                "internal error: a value was marked while verifying a bypassed command; refusing it"
                    .into(),
            ));
        }
        return Ok(Analysis::Unchanged);
    }
    // Every marking made must be in what is sent: one made in a stage or
    // sub-pipeline whose rewrite was dropped would leave the original,
    // plaintext value in the command.
    let placed = markings::count_markings(&out)?;
    if placed != cx.made {
        return Err(Error::MarkingsLost {
            made: cx.made,
            placed,
        });
    }
    // The same for Queryable Encryption placeholders.
    #[cfg(feature = "qe")]
    let placeholders = {
        let placed = queryable::count_placeholders(&out)?;
        if placed != cx.placeholders {
            return Err(Error::MarkingsLost {
                made: cx.placeholders,
                placed,
            });
        }
        cx.placeholders
    };
    #[cfg(not(feature = "qe"))]
    let placeholders = 0;
    Ok(if cx.made > 0 || placeholders > 0 {
        Analysis::Marked(out)
    } else {
        Analysis::Unchanged
    })
}

/// A command's own `$db` must name the database it is analysed for: its
/// namespaces are resolved there.
fn check_db(cmd: &Document, db: &str) -> Result<(), Error> {
    match cmd.get("$db") {
        None => Ok(()),
        Some(Bson::String(d)) if d == db => Ok(()),
        Some(Bson::String(d)) => Err(Error::DatabaseMismatch {
            found: d.clone(),
            analysed: db.to_owned(),
        }),
        Some(_) => Err(Error::Malformed("'$db' must be a string".into())),
    }
}

/// `{explain: <command>, verbosity}`, sent back as mongocryptd does: the
/// analysed command under `explain`, then `verbosity` (the server's
/// default, `allPlansExecution`, when absent), then the other fields.
fn explain(cx: &mut Ctx<'_, '_>, command: &Document) -> Result<Document, Error> {
    let Some(Bson::Document(inner)) = command.get("explain") else {
        return Err(Error::Malformed("explain needs a command document".into()));
    };
    check_db(command, cx.db)?;
    for k in command.keys() {
        if !matches!(k.as_str(), "explain" | "verbosity") && !GENERIC.contains(&k.as_str()) {
            cx.unknown.push(k.clone());
        }
    }
    let analysed = collection_command(cx, inner)?;
    let verbosity = command
        .get("verbosity")
        .cloned()
        .unwrap_or_else(|| Bson::from("allPlansExecution"));
    let mut out = doc! {"explain": analysed, "verbosity": verbosity};
    for (k, v) in command {
        if !matches!(k.as_str(), "explain" | "verbosity") {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// The client-level `bulkWrite` (run on `admin`, writing to the one
/// namespace of its `nsInfo`): its namespace read first (libmongocrypt's
/// refusals), its fields checked against [`BULK_WRITE`] and [`GENERIC`]
/// (any other refused, whatever the namespace), then its operations
/// analysed for that namespace (`bulk_write`).
fn bulk_write_command(cx: &mut Ctx<'_, '_>, cmd: &Document) -> Result<Document, Error> {
    let ns = bulk_write::namespace(cmd)?;
    check_db(cmd, cx.db)?;
    if let Some(k) = cmd
        .keys()
        .skip(1)
        .find(|k| !GENERIC.contains(&k.as_str()) && !BULK_WRITE.contains(&k.as_str()))
    {
        return Err(Error::BulkWriteField(k.clone()));
    }
    bulk_write::analyze(cx, &ns, cmd)
}

fn get_doc<'d>(cmd: &'d Document, key: &str) -> Result<Option<&'d Document>, Error> {
    match cmd.get(key) {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(_) => Err(Error::Malformed(format!("'{key}' must be a document"))),
    }
}

/// `let` variables: evaluated without a document, but checked like any
/// expression.
fn let_vars(shape: &Shape<'_>, cmd: &Document, key: &str) -> Result<(), Error> {
    if let Some(vars) = get_doc(cmd, key)? {
        vars.values()
            .try_for_each(|v| expressions::check(shape, v))?;
    }
    Ok(())
}

/// One collection command: its fields checked against its allow-list in
/// [`COMMANDS`], the schema of its collection looked up, and what it
/// carries analysed by the function for the command.
fn collection_command<'s>(cx: &mut Ctx<'_, 's>, cmd: &Document) -> Result<Document, Error> {
    let (name, coll) = command_target(cmd)?;
    let Some((_, fields)) = COMMANDS.iter().find(|(n, _)| *n == name) else {
        return Err(Error::UnsupportedCommand(name.to_owned()));
    };
    let Some(coll) = coll else {
        return Err(Error::NonCollectionCommand(name.to_owned()));
    };
    check_db(cmd, cx.db)?;
    let ns = Namespace::new(cx.db, coll);
    let resolved = cx.resolve(&ns)?;
    for k in cmd.keys().skip(1) {
        if !GENERIC.contains(&k.as_str())
            && !fields.contains(&k.as_str())
            && !queryable_field(resolved, name, k)
        {
            cx.unknown.push(k.clone());
        }
    }
    // A Queryable Encryption collection: its own walkers, after the same
    // allow-lists.
    #[cfg(feature = "qe")]
    if let Resolved::Queryable(encrypted_fields) = resolved {
        return queryable::collection_command(cx, &ns, encrypted_fields, name, cmd);
    }
    let schema = resolved.fle1(&ns)?;
    let shape = Shape::of(ns.clone(), schema);
    let mut out = cmd.clone();
    match name {
        "insert" => insert_documents(cx, &shape, cmd, &mut out)?,
        "find" | "count" | "distinct" => find_count_or_distinct(cx, &shape, name, cmd, &mut out)?,
        "delete" | "update" => delete_or_update_statements(cx, &shape, name, cmd, &mut out)?,
        "findAndModify" => find_and_modify(cx, &shape, cmd, &mut out)?,
        "aggregate" => aggregate(cx, &shape, cmd, &mut out)?,
        "create" | "collMod" => create_or_coll_mod(cx, &ns, &shape, name, cmd)?,
        "createIndexes" => create_indexes(&shape, cmd)?,
        _ => return Err(Error::UnsupportedCommand(name.to_owned())),
    }
    Ok(out)
}

/// Whether `command` may carry `field` because its collection is a
/// Queryable Encryption one (`create`'s `encryptedFields`).
#[cfg(feature = "qe")]
fn queryable_field(resolved: Resolved<'_>, command: &str, field: &str) -> bool {
    matches!(resolved, Resolved::Queryable(_)) && queryable::allows_field(command, field)
}

/// Without Queryable Encryption no collection is one.
#[cfg(not(feature = "qe"))]
fn queryable_field(_: Resolved<'_>, _: &str, _: &str) -> bool {
    false
}

/// `insert`: the encrypted fields of each document marked.
fn insert_documents<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let Some(Bson::Array(docs)) = cmd.get("documents") else {
        return Err(Error::Malformed("insert needs 'documents'".into()));
    };
    if shape.encrypted() {
        let mut marked = Vec::with_capacity(docs.len());
        for d in docs {
            let Bson::Document(d) = d else {
                return Err(Error::Malformed("documents must be documents".into()));
            };
            marked.push(Bson::Document(updates::write_document(
                cx,
                shape,
                d,
                "",
                true,
                Some(d),
            )?));
        }
        out.insert("documents", marked);
    }
    Ok(())
}

/// `find`, `count`, `distinct`: the filter marked; what else `find` reads
/// (sort, projection, `min`/`max`, `let`) and `distinct`'s key checked.
fn find_count_or_distinct<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    name: &str,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let key = if name == "find" { "filter" } else { "query" };
    if let Some(f) = get_doc(cmd, key)?
        && shape.encrypted()
    {
        out.insert(key, filters::filter(cx, shape, f)?);
    }
    if name == "find" {
        filters::sort(shape, cmd.get("sort"))?;
        if let Some(p) = get_doc(cmd, "projection")? {
            filters::projection(shape, p, "")?;
        }
        filters::min_max(shape, cmd.get("min"))?;
        filters::min_max(shape, cmd.get("max"))?;
        let_vars(shape, cmd, "let")?;
    }
    if name == "distinct"
        && let Some(Bson::String(k)) = cmd.get("key")
        && let FieldInfo::Encrypted(spec) = shape.field(k)?
        && matches!(spec.key, EncryptKey::AltNamePointer(_))
    {
        return Err(Error::DistinctPointer);
    }
    Ok(())
}

/// `delete`, `update`: each statement's filter and update marked, its
/// fields checked against the statement's allow-list.
fn delete_or_update_statements<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    name: &str,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let (list, allowed) = if name == "delete" {
        ("deletes", DELETE_STATEMENT)
    } else {
        ("updates", UPDATE_STATEMENT)
    };
    let Some(Bson::Array(stmts)) = cmd.get(list) else {
        return Err(Error::Malformed(format!("{name} needs '{list}'")));
    };
    let mut rewritten = Vec::with_capacity(stmts.len());
    for s in stmts {
        let Bson::Document(s) = s else {
            return Err(Error::Malformed(format!("bad {name} statement")));
        };
        for k in s.keys() {
            if !allowed.contains(&k.as_str()) {
                cx.unknown.push(format!("{list}.{k}"));
            }
        }
        let mut s = s.clone();
        if let Some(q) = get_doc(&s, "q")?
            && shape.encrypted()
        {
            let q = filters::filter(cx, shape, q)?;
            s.insert("q", q);
        }
        if let Some(u) = s.get("u").cloned() {
            updates::array_filters(shape, &u, s.get("arrayFilters"))?;
            s.insert("u", updates::update(cx, shape, &u)?);
        } else if s.contains_key("arrayFilters") {
            updates::array_filters(shape, &Bson::Null, s.get("arrayFilters"))?;
        }
        filters::sort(shape, s.get("sort"))?;
        let_vars(shape, &s, "c")?;
        rewritten.push(Bson::Document(s));
    }
    out.insert(list, rewritten);
    let_vars(shape, cmd, "let")?;
    Ok(())
}

/// `findAndModify`: the query and the update marked, what else it reads
/// checked.
fn find_and_modify<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    if let Some(q) = get_doc(cmd, "query")?
        && shape.encrypted()
    {
        out.insert("query", filters::filter(cx, shape, q)?);
    }
    updates::array_filters(
        shape,
        cmd.get("update").unwrap_or(&Bson::Null),
        cmd.get("arrayFilters"),
    )?;
    if let Some(u) = cmd.get("update") {
        out.insert("update", updates::update(cx, shape, u)?);
    }
    filters::sort(shape, cmd.get("sort"))?;
    if let Some(p) = get_doc(cmd, "fields")? {
        filters::projection(shape, p, "")?;
    }
    let_vars(shape, cmd, "let")?;
    Ok(())
}

/// `aggregate`: the pipeline analysed from the collection's documents.
fn aggregate<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let Some(Bson::Array(stages)) = cmd.get("pipeline") else {
        return Err(Error::Malformed("aggregate needs 'pipeline'".into()));
    };
    let_vars(shape, cmd, "let")?;
    let mut current = shape.clone();
    let rewritten = pipelines::pipeline(cx, &mut current, stages, Kind::Aggregate)?;
    out.insert("pipeline", rewritten);
    Ok(())
}

/// `create`, `collMod`: a view's source and pipeline, and the validator.
fn create_or_coll_mod<'s>(
    cx: &mut Ctx<'_, 's>,
    ns: &Namespace,
    shape: &Shape<'s>,
    name: &str,
    cmd: &Document,
) -> Result<(), Error> {
    if let Some(view_on) = cmd.get("viewOn") {
        view(cx, ns, shape, view_on, cmd.get("pipeline"))?;
    } else if cmd.contains_key("pipeline") {
        return Err(Error::Malformed(format!(
            "{name}: 'pipeline' without 'viewOn'"
        )));
    }
    if let Some(v) = get_doc(cmd, "validator")? {
        filters::validator(shape, v, "validator")?;
    }
    Ok(())
}

/// `createIndexes`: each index's partial filter, checked like a
/// validator.
fn create_indexes(shape: &Shape<'_>, cmd: &Document) -> Result<(), Error> {
    let indexes = match cmd.get("indexes") {
        Some(Bson::Array(indexes)) => indexes,
        // The server refuses it too; never passed on unread.
        _ => {
            return Err(Error::Malformed(
                "createIndexes: 'indexes' must be an array".into(),
            ));
        }
    };
    for i in indexes {
        let Bson::Document(i) = i else {
            return Err(Error::Malformed("an index must be a document".into()));
        };
        match i.get("partialFilterExpression") {
            None => {}
            Some(Bson::Document(p)) => filters::validator(shape, p, "partialFilterExpression")?,
            Some(_) => {
                return Err(Error::Malformed(
                    "partialFilterExpression must be a document".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A view (`create` / `collMod` with `viewOn`): refused when it would read
/// a collection with encrypted fields, directly or through its pipeline,
/// or when the schema map encrypts fields of the view's own name.
fn view<'s>(
    cx: &mut Ctx<'_, 's>,
    view_ns: &Namespace,
    own: &Shape<'s>,
    view_on: &Bson,
    stages: Option<&Bson>,
) -> Result<(), Error> {
    let Bson::String(source) = view_on else {
        return Err(Error::Malformed("viewOn must be a collection name".into()));
    };
    if own.encrypted() {
        return Err(Error::View {
            view: view_ns.to_string(),
            ns: view_ns.to_string(),
        });
    }
    let source = Namespace::new(cx.db, source.clone());
    let schema = cx.schema(&source)?;
    let mut shape = Shape::of(source.clone(), schema);
    if shape.encrypted() {
        return Err(Error::View {
            view: view_ns.to_string(),
            ns: source.to_string(),
        });
    }
    if let Some(p) = stages {
        let Bson::Array(p) = p else {
            return Err(Error::Malformed("a view pipeline must be an array".into()));
        };
        without_markings(
            cx,
            view_ns,
            "a view definition is stored on the server",
            |cx| pipelines::pipeline(cx, &mut shape, p, Kind::Stored),
        )?;
        if shape.encrypted() {
            return Err(Error::View {
                view: view_ns.to_string(),
                ns: shape.ns().to_string(),
            });
        }
    }
    Ok(())
}
