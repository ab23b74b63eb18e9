//! Query analysis: which values of a command must be encrypted, done
//! in-process (what `mongocryptd` / `crypt_shared` do for the drivers).
//!
//! [`analyze`] takes a command and the collection's [`EncryptionSchema`] and
//! returns the command to send, with every value to encrypt replaced by a
//! *marking*: a subtype-6 binary whose first byte is 0 followed by the BSON
//! document `{a: 1|2, ki: <key UUID> | ka: <alt name>, v: <value>}`, the
//! format mongocryptd uses. [`encrypt_markings`] then replaces the markings
//! with ciphertexts, given ready keys. Filters are emitted in mongocryptd's
//! normalised form (`{f: v}` becomes `{f: {$eq: v}}`, several predicates an
//! `$and`), but only when something is encrypted: otherwise the original
//! command goes out unchanged.
//!
//! Fail closed: an operator, stage or command this layer cannot make safe is
//! an error, never a plaintext value sent where a ciphertext belongs.

use crate::ciphertext;
use crate::crypto::{Algorithm, KeyId};
use crate::schema::{EncryptKey, EncryptSpec, EncryptionSchema, FieldInfo};
use crate::{KeyLookup, KeyRef};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Document, doc};

/// Why a command cannot be sent with automatic encryption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not on the automatic-encryption allow-list.
    #[error("command not supported for auto encryption: {0}")]
    UnsupportedCommand(String),
    /// A database-level command (e.g. `aggregate: 1`).
    #[error("non-collection command not supported for auto encryption: {0}")]
    NonCollectionCommand(String),
    /// A query on a randomly encrypted field.
    #[error("Cannot query on fields encrypted with the randomized encryption: '{0}'")]
    RandomizedQuery(String),
    /// An operator other than the equality family on an encrypted field.
    #[error("Invalid match expression operator on encrypted field '{path}': {op}")]
    InvalidOperator {
        /// The field.
        path: String,
        /// The operator.
        op: String,
    },
    /// An operator that can never be used with encryption ($text, $where, …).
    #[error("Unsupported match expression operator for encryption: {0}")]
    UnsupportedOperator(String),
    /// `{f: null}` or `{f: {$eq: null}}` on an encrypted field.
    #[error("Illegal equality to null predicate for encrypted field: '{0}'")]
    NullEquality(String),
    /// `null` inside `$in` on an encrypted field.
    #[error("Illegal equality to null inside $in against an encrypted field: '{0}'")]
    NullInIn(String),
    /// A value whose type cannot be encrypted there.
    #[error("Cannot encrypt element of type {ty} at '{path}'{detail}")]
    CannotEncryptType {
        /// The field.
        path: String,
        /// The value's type.
        ty: &'static str,
        /// Why, when more can be said.
        detail: String,
    },
    /// An insert of `Timestamp(0, 0)`, which the server would replace.
    #[error(
        "A command that inserts cannot supply Timestamp(0, 0) for an encrypted top-level field at path '{0}'"
    )]
    TimestampZero(String),
    /// An update operator that cannot apply to ciphertext.
    #[error("{0} not allowed on encrypted values")]
    UpdateOperator(&'static str),
    /// A positional update below an encrypted field.
    #[error("Cannot encrypt fields below '$' positional update operator: '{0}'")]
    Positional(String),
    /// An array-filter update of an encrypted field.
    #[error("Array update operations not allowed on encrypted values: '{0}'")]
    ArrayUpdate(String),
    /// `$rename` between fields encrypted differently.
    #[error(
        "$rename between two encrypted fields must have the same metadata or both be unencrypted"
    )]
    Rename,
    /// A path inside an encrypted value.
    #[error("Invalid operation on a path below an encrypted field: '{0}'")]
    BelowEncrypted(String),
    /// A validator or partial filter comparing encrypted fields.
    #[error("Comparison to encrypted fields not supported: '{0}'")]
    ComparisonToEncrypted(String),
    /// `distinct` on a field whose key is a JSON pointer.
    #[error("The distinct key is not allowed to be marked for encryption with a non-UUID keyId")]
    DistinctPointer,
    /// A JSON-pointer key whose field is missing or not a string.
    #[error(
        "the keyId pointer '{pointer}' of encrypted field '{path}' must name a string field of the document"
    )]
    KeyPointer {
        /// The encrypted field.
        path: String,
        /// The pointer.
        pointer: String,
    },
    /// An aggregation stage that could move encrypted fields untracked.
    #[error("aggregation stage {0} is not supported on a collection with encrypted fields")]
    UnsupportedStage(String),
    /// Sorting on an encrypted field.
    #[error("sorting on encrypted field '{0}' is not supported")]
    SortOnEncrypted(String),
    /// A pipeline-style update on a collection with encrypted fields.
    #[error("pipeline updates are not supported on a collection with encrypted fields")]
    PipelineUpdate,
    /// A command with a malformed shape.
    #[error("malformed command: {0}")]
    Malformed(String),
}

/// What to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Analysis {
    /// Nothing to encrypt: send the original command.
    Unchanged,
    /// The command with markings, to pass to [`encrypt_markings`].
    Marked(Document),
}

/// Commands sent without analysis.
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

struct Ctx<'s> {
    schema: &'s EncryptionSchema,
    marked: bool,
}

fn type_name(ty: ElementType) -> &'static str {
    ciphertext::type_name(ty)
}

impl Ctx<'_> {
    /// A marking for `value` in field `path`. `root` is the whole document
    /// being written, against which a JSON-pointer `keyId` is resolved.
    fn mark(
        &mut self,
        spec: &EncryptSpec,
        value: &Bson,
        path: &str,
        root: Option<&Document>,
    ) -> Result<Bson, Error> {
        let ty = value.element_type();
        let cannot = |detail: String| Error::CannotEncryptType {
            path: path.to_owned(),
            ty: type_name(ty),
            detail,
        };
        if !spec.bson_types.is_empty() && !spec.bson_types.contains(&ty) {
            let want: Vec<&str> = spec.bson_types.iter().map(|t| type_name(*t)).collect();
            return Err(cannot(format!(
                ": the schema declares {}",
                want.join(" or ")
            )));
        }
        if let Bson::Binary(b) = value
            && b.subtype == BinarySubtype::Encrypted
        {
            return Err(cannot(": the value is already encrypted".into()));
        }
        let raw = crate::explicit::to_raw(value).map_err(|e| cannot(format!(": {e}")))?;
        ciphertext::check_encryptable(raw.as_raw_bson_ref(), spec.algorithm)
            .map_err(|e| cannot(format!(": {e}")))?;
        let mut m = doc! {"a": if spec.algorithm == Algorithm::Deterministic { 1 } else { 2 }};
        match &spec.key {
            EncryptKey::Id(id) => {
                m.insert("ki", id.to_binary());
            }
            EncryptKey::AltNamePointer(pointer) => {
                let name = root
                    .and_then(|r| resolve_pointer(r, pointer))
                    .ok_or_else(|| Error::KeyPointer {
                        path: path.to_owned(),
                        pointer: pointer.clone(),
                    })?;
                m.insert("ka", name);
            }
        }
        m.insert("v", value.clone());
        let mut bytes = vec![0u8];
        m.to_writer(&mut bytes)
            .map_err(|e| Error::Malformed(e.to_string()))?;
        self.marked = true;
        Ok(Bson::Binary(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        }))
    }

    /// Marks the encrypted fields of a document being written (insert,
    /// replacement, `$set` of a sub-document). `prefix` is its path.
    fn write_document(
        &mut self,
        doc: &Document,
        prefix: &str,
        top: bool,
        root: Option<&Document>,
    ) -> Result<Document, Error> {
        let mut out = Document::new();
        for (k, v) in doc {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(k.clone(), self.write_value(v, &path, root, top)?);
        }
        Ok(out)
    }

    fn write_value(
        &mut self,
        v: &Bson,
        path: &str,
        root: Option<&Document>,
        top: bool,
    ) -> Result<Bson, Error> {
        match self.schema.field(path) {
            FieldInfo::Plain => Ok(v.clone()),
            FieldInfo::Encrypted(spec) => {
                if top
                    && let Bson::Timestamp(t) = v
                    && t.time == 0
                    && t.increment == 0
                {
                    return Err(Error::TimestampZero(path.to_owned()));
                }
                let spec = spec.clone();
                self.mark(&spec, v, path, root)
            }
            FieldInfo::ContainsEncrypted => match v {
                Bson::Document(d) => Ok(Bson::Document(self.write_document(d, path, false, root)?)),
                Bson::Array(_) => Err(Error::CannotEncryptType {
                    path: path.to_owned(),
                    ty: "array",
                    detail:
                        ": the schema has encrypted fields below it, which cannot be inside arrays"
                            .into(),
                }),
                other => Ok(other.clone()),
            },
            FieldInfo::BelowEncrypted(_) => Err(Error::BelowEncrypted(path.to_owned())),
        }
    }

    /// Rewrites a match expression into normalised form with markings.
    fn filter(&mut self, filter: &Document) -> Result<Document, Error> {
        let mut preds = Vec::new();
        for (k, v) in filter {
            match k.as_str() {
                "$and" | "$or" | "$nor" => {
                    let Bson::Array(items) = v else {
                        return Err(Error::Malformed(format!("{k} needs an array")));
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        let Bson::Document(d) = item else {
                            return Err(Error::Malformed(format!("{k} needs documents")));
                        };
                        out.push(Bson::Document(self.filter(d)?));
                    }
                    preds.push(doc! {k.clone(): out});
                }
                "$comment" => preds.push(doc! {k.clone(): v.clone()}),
                "$text" | "$where" | "$expr" | "$jsonSchema" | "$sampleRate" => {
                    return Err(Error::UnsupportedOperator(k.clone()));
                }
                op if op.starts_with('$') => return Err(Error::UnsupportedOperator(op.to_owned())),
                path => self.field_predicates(path, v, &mut preds)?,
            }
        }
        Ok(match preds.len() {
            0 => Document::new(),
            1 => preds.pop().unwrap_or_default(),
            _ => doc! {"$and": preds},
        })
    }

    fn field_predicates(
        &mut self,
        path: &str,
        v: &Bson,
        preds: &mut Vec<Document>,
    ) -> Result<(), Error> {
        let ops: Vec<(String, Bson)> = match v {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            Bson::RegularExpression(_) => vec![("$regex".into(), v.clone())],
            other => vec![("$eq".into(), other.clone())],
        };
        match self.schema.field(path) {
            FieldInfo::Plain => {
                for (op, arg) in ops {
                    preds.push(doc! {path: {op: arg}});
                }
            }
            FieldInfo::BelowEncrypted(_) => return Err(Error::BelowEncrypted(path.to_owned())),
            FieldInfo::ContainsEncrypted => {
                for (op, arg) in ops {
                    if op != "$exists" {
                        return Err(Error::InvalidOperator {
                            path: path.to_owned(),
                            op: format!("{op} on a document containing encrypted fields"),
                        });
                    }
                    preds.push(doc! {path: {op: arg}});
                }
            }
            FieldInfo::Encrypted(spec) => {
                let spec = spec.clone();
                for (op, arg) in ops {
                    let rewritten = self.encrypted_operator(&spec, path, &op, &arg)?;
                    preds.push(doc! {path: {op: rewritten}});
                }
            }
        }
        Ok(())
    }

    fn encrypted_operator(
        &mut self,
        spec: &EncryptSpec,
        path: &str,
        op: &str,
        arg: &Bson,
    ) -> Result<Bson, Error> {
        if op == "$exists" {
            return Ok(arg.clone());
        }
        if matches!(op, "$text" | "$where") {
            return Err(Error::UnsupportedOperator(op.to_owned()));
        }
        if spec.algorithm == Algorithm::Random {
            return Err(Error::RandomizedQuery(path.to_owned()));
        }
        match op {
            "$eq" | "$ne" => {
                if matches!(arg, Bson::Null) {
                    return Err(Error::NullEquality(path.to_owned()));
                }
                if matches!(arg, Bson::RegularExpression(_)) {
                    return Err(Error::InvalidOperator {
                        path: path.to_owned(),
                        op: "$regex".into(),
                    });
                }
                self.mark(spec, arg, path, None)
            }
            "$in" | "$nin" => {
                let Bson::Array(items) = arg else {
                    return Err(Error::Malformed(format!("{op} needs an array")));
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Bson::Null => return Err(Error::NullInIn(path.to_owned())),
                        Bson::RegularExpression(_) => {
                            return Err(Error::InvalidOperator {
                                path: path.to_owned(),
                                op: "$regex".into(),
                            });
                        }
                        other => out.push(self.mark(spec, other, path, None)?),
                    }
                }
                Ok(Bson::Array(out))
            }
            "$not" => {
                let Bson::Document(inner) = arg else {
                    return Err(Error::InvalidOperator {
                        path: path.to_owned(),
                        op: "$not".into(),
                    });
                };
                let mut out = Document::new();
                for (k, v) in inner {
                    out.insert(k.clone(), self.encrypted_operator(spec, path, k, v)?);
                }
                Ok(Bson::Document(out))
            }
            other => Err(Error::InvalidOperator {
                path: path.to_owned(),
                op: other.to_owned(),
            }),
        }
    }

    fn check_paths_plain(
        &self,
        paths: impl Iterator<Item = String>,
        err: impl Fn(String) -> Error,
    ) -> Result<(), Error> {
        for p in paths {
            if !matches!(self.schema.field(&p), FieldInfo::Plain) {
                return Err(err(p));
            }
        }
        Ok(())
    }

    fn sort(&self, sort: Option<&Bson>) -> Result<(), Error> {
        if let Some(Bson::Document(s)) = sort {
            self.check_paths_plain(s.keys().cloned(), Error::SortOnEncrypted)?;
        }
        Ok(())
    }

    /// An update document (`u`), operator style or replacement.
    fn update(&mut self, u: &Bson) -> Result<Bson, Error> {
        let u = match u {
            Bson::Array(_) => {
                return if self.schema.has_encrypted_fields() {
                    Err(Error::PipelineUpdate)
                } else {
                    Ok(u.clone())
                };
            }
            Bson::Document(d) => d,
            _ => {
                return Err(Error::Malformed(
                    "update must be a document or a pipeline".into(),
                ));
            }
        };
        if !u.keys().next().is_some_and(|k| k.starts_with('$')) {
            return Ok(Bson::Document(self.write_document(u, "", true, Some(u))?));
        }
        let mut out = Document::new();
        for (op, fields) in u {
            let Bson::Document(fields) = fields else {
                return Err(Error::Malformed(format!("{op} needs a document")));
            };
            let touches = |path: &str| {
                !matches!(self.schema.field(&encrypted_prefix(path)), FieldInfo::Plain)
            };
            let rewritten = match op.as_str() {
                "$set" | "$setOnInsert" => {
                    let mut set = Document::new();
                    for (path, v) in fields {
                        set.insert(path.clone(), self.set_path(path, v)?);
                    }
                    set
                }
                "$unset" => fields.clone(),
                "$rename" => {
                    for (from, to) in fields {
                        let to = to
                            .as_str()
                            .ok_or_else(|| Error::Malformed("$rename needs strings".into()))?;
                        let (a, b) = (self.schema.field(from), self.schema.field(to));
                        let same = match (a, b) {
                            (FieldInfo::Plain, FieldInfo::Plain) => true,
                            (FieldInfo::Encrypted(x), FieldInfo::Encrypted(y)) => x == y,
                            _ => false,
                        };
                        if !same {
                            return Err(Error::Rename);
                        }
                    }
                    fields.clone()
                }
                "$inc" | "$mul" | "$max" | "$min" | "$currentDate" | "$pop" | "$pull"
                | "$pullAll" | "$push" | "$addToSet" | "$bit" => {
                    if fields.keys().any(|p| touches(p)) {
                        return Err(Error::UpdateOperator(match op.as_str() {
                            "$inc" | "$mul" => "$inc and $mul",
                            "$max" | "$min" => "$max and $min",
                            "$currentDate" => "$currentDate",
                            "$pop" => "$pop",
                            "$pull" => "$pull",
                            "$pullAll" => "$pullAll",
                            "$push" => "$push",
                            "$addToSet" => "$addToSet",
                            _ => "$bit",
                        }));
                    }
                    fields.clone()
                }
                other => return Err(Error::UnsupportedOperator(other.to_owned())),
            };
            out.insert(op.clone(), rewritten);
        }
        Ok(Bson::Document(out))
    }

    fn set_path(&mut self, path: &str, v: &Bson) -> Result<Bson, Error> {
        let segments: Vec<&str> = path.split('.').collect();
        if let Some(i) = segments
            .iter()
            .position(|s| *s == "$" || s.starts_with("$["))
        {
            let prefix = segments[..i].join(".");
            if !matches!(self.schema.field(&prefix), FieldInfo::Plain) {
                return Err(if segments[i] == "$" {
                    Error::Positional(path.to_owned())
                } else {
                    Error::ArrayUpdate(path.to_owned())
                });
            }
            return Ok(v.clone());
        }
        // A `$set` has no whole document to resolve a JSON-pointer key against.
        self.write_value(v, path, None, false)
    }
}

/// Resolves a JSON pointer (`/a/b`, RFC 6901 escapes) to a string field of `root`.
pub(crate) fn resolve_pointer<'d>(root: &'d Document, pointer: &str) -> Option<&'d str> {
    let mut parts = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"));
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_document()?.get(&p)?;
    }
    cur.as_str()
}

/// The longest leading part of `path` before any positional segment.
fn encrypted_prefix(path: &str) -> String {
    path.split('.')
        .take_while(|s| !s.starts_with('$'))
        .collect::<Vec<_>>()
        .join(".")
}

fn get_doc<'d>(cmd: &'d Document, key: &str) -> Result<Option<&'d Document>, Error> {
    match cmd.get(key) {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(_) => Err(Error::Malformed(format!("'{key}' must be a document"))),
    }
}

/// Analyzes `command` against `schema_for(collection)`.
pub fn analyze<'s>(
    command: &Document,
    schema_for: &dyn Fn(&str) -> Option<&'s EncryptionSchema>,
) -> Result<Analysis, Error> {
    let (name, coll) = command_target(command)?;
    if is_bypassed(name) {
        return Ok(Analysis::Unchanged);
    }
    if name == "explain" {
        let Some(Bson::Document(inner)) = command.get("explain") else {
            return Err(Error::Malformed("explain needs a command document".into()));
        };
        return Ok(match analyze(inner, schema_for)? {
            Analysis::Unchanged => Analysis::Unchanged,
            Analysis::Marked(inner) => {
                let mut out = command.clone();
                out.insert("explain", inner);
                Analysis::Marked(out)
            }
        });
    }
    const COLLECTION_COMMANDS: &[&str] = &[
        "insert",
        "find",
        "update",
        "delete",
        "findAndModify",
        "aggregate",
        "count",
        "distinct",
        "create",
        "createIndexes",
        "collMod",
    ];
    if !COLLECTION_COMMANDS.contains(&name) {
        return Err(Error::UnsupportedCommand(name.to_owned()));
    }
    let Some(coll) = coll else {
        return Err(Error::NonCollectionCommand(name.to_owned()));
    };
    let Some(schema) = schema_for(coll).filter(|s| s.has_encrypted_fields()) else {
        return Ok(Analysis::Unchanged);
    };
    let mut ctx = Ctx {
        schema,
        marked: false,
    };
    let mut out = command.clone();
    match name {
        "insert" => {
            let Some(Bson::Array(docs)) = command.get("documents") else {
                return Err(Error::Malformed("insert needs 'documents'".into()));
            };
            let mut marked = Vec::with_capacity(docs.len());
            for d in docs {
                let Bson::Document(d) = d else {
                    return Err(Error::Malformed("documents must be documents".into()));
                };
                marked.push(Bson::Document(ctx.write_document(d, "", true, Some(d))?));
            }
            out.insert("documents", marked);
        }
        "find" | "count" | "distinct" => {
            let key = if name == "find" { "filter" } else { "query" };
            if let Some(f) = get_doc(command, key)? {
                out.insert(key, ctx.filter(f)?);
            }
            if name == "find" {
                ctx.sort(command.get("sort"))?;
            }
            if name == "distinct"
                && let Some(Bson::String(k)) = command.get("key")
                && let FieldInfo::Encrypted(spec) = schema.field(k)
                && matches!(spec.key, EncryptKey::AltNamePointer(_))
            {
                return Err(Error::DistinctPointer);
            }
        }
        "delete" | "update" => {
            let list = if name == "delete" {
                "deletes"
            } else {
                "updates"
            };
            let Some(Bson::Array(stmts)) = command.get(list) else {
                return Err(Error::Malformed(format!("{name} needs '{list}'")));
            };
            let mut rewritten = Vec::with_capacity(stmts.len());
            for s in stmts {
                let Bson::Document(s) = s else {
                    return Err(Error::Malformed(format!("bad {name} statement")));
                };
                let mut s = s.clone();
                if let Some(q) = get_doc(&s, "q")? {
                    let q = ctx.filter(q)?;
                    s.insert("q", q);
                }
                // Only update statements have `u`.
                if let Some(u) = s.get("u").cloned() {
                    s.insert("u", ctx.update(&u)?);
                }
                rewritten.push(Bson::Document(s));
            }
            out.insert(list, rewritten);
        }
        "findAndModify" => {
            if let Some(q) = get_doc(command, "query")? {
                out.insert("query", ctx.filter(q)?);
            }
            if let Some(u) = command.get("update") {
                out.insert("update", ctx.update(u)?);
            }
            ctx.sort(command.get("sort"))?;
        }
        "aggregate" => {
            let Some(Bson::Array(stages)) = command.get("pipeline") else {
                return Err(Error::Malformed("aggregate needs 'pipeline'".into()));
            };
            let mut rewritten = Vec::with_capacity(stages.len());
            for stage in stages {
                let Bson::Document(stage) = stage else {
                    return Err(Error::Malformed("bad stage".into()));
                };
                let (op, arg) = stage
                    .iter()
                    .next()
                    .ok_or_else(|| Error::Malformed("empty stage".into()))?;
                let new = match op.as_str() {
                    "$match" => {
                        let Bson::Document(f) = arg else {
                            return Err(Error::Malformed("$match needs a document".into()));
                        };
                        doc! {"$match": ctx.filter(f)?}
                    }
                    "$limit" | "$skip" | "$count" | "$sample" | "$indexStats" | "$collStats" => {
                        stage.clone()
                    }
                    "$sort" => {
                        ctx.sort(Some(arg))?;
                        stage.clone()
                    }
                    other => return Err(Error::UnsupportedStage(other.to_owned())),
                };
                rewritten.push(Bson::Document(new));
            }
            out.insert("pipeline", rewritten);
        }
        "create" | "collMod" => {
            if let Some(v) = get_doc(command, "validator")? {
                check_no_encrypted_comparison(schema, v)?;
            }
        }
        "createIndexes" => {
            if let Some(Bson::Array(indexes)) = command.get("indexes") {
                for i in indexes {
                    if let Some(p) = i
                        .as_document()
                        .and_then(|d| d.get_document("partialFilterExpression").ok())
                    {
                        check_no_encrypted_comparison(schema, p)?;
                    }
                }
            }
        }
        _ => return Err(Error::UnsupportedCommand(name.to_owned())),
    }
    Ok(if ctx.marked {
        Analysis::Marked(out)
    } else {
        Analysis::Unchanged
    })
}

/// Refuses a validator or partial filter that compares an encrypted field
/// (the server would compare against ciphertext).
fn check_no_encrypted_comparison(
    schema: &EncryptionSchema,
    filter: &Document,
) -> Result<(), Error> {
    for (k, v) in filter {
        if k.starts_with('$') {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Bson::Document(d) = item {
                        check_no_encrypted_comparison(schema, d)?;
                    }
                }
            }
            continue;
        }
        if !matches!(schema.field(k), FieldInfo::Plain) {
            return Err(Error::ComparisonToEncrypted(k.clone()));
        }
    }
    Ok(())
}

/// A marking decoded.
struct Marking {
    algorithm: Algorithm,
    key: KeyRef,
    value: Bson,
}

fn decode_marking(bytes: &[u8]) -> Result<Marking, crate::Error> {
    let bad = |m: &str| crate::Error::InvalidValue(format!("malformed marking: {m}"));
    let doc = Document::from_reader(&bytes[1..]).map_err(|e| bad(&e.to_string()))?;
    let algorithm = match doc.get_i32("a") {
        Ok(1) => Algorithm::Deterministic,
        Ok(2) => Algorithm::Random,
        _ => return Err(bad("'a' must be 1 or 2")),
    };
    let key = match (doc.get("ki"), doc.get("ka")) {
        (Some(Bson::Binary(b)), None) => {
            KeyRef::Id(KeyId::from_binary(b).ok_or_else(|| bad("'ki' must be a UUID"))?)
        }
        (None, Some(Bson::String(s))) => KeyRef::AltName(s.clone()),
        _ => return Err(bad("exactly one of 'ki' and 'ka'")),
    };
    let value = doc.get("v").cloned().ok_or_else(|| bad("missing 'v'"))?;
    Ok(Marking {
        algorithm,
        key,
        value,
    })
}

fn is_marking(b: &Binary) -> bool {
    b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&0)
}

fn walk_markings(
    value: &Bson,
    f: &mut dyn FnMut(&Binary) -> Result<(), crate::Error>,
) -> Result<(), crate::Error> {
    match value {
        Bson::Binary(b) if is_marking(b) => f(b),
        Bson::Document(d) => d.values().try_for_each(|v| walk_markings(v, f)),
        Bson::Array(a) => a.iter().try_for_each(|v| walk_markings(v, f)),
        _ => Ok(()),
    }
}

/// The keys the markings in `command` need, each once, for one key-vault query.
pub fn marking_keys(command: &Document) -> Result<Vec<KeyRef>, crate::Error> {
    let mut keys = Vec::new();
    walk_markings(&Bson::Document(command.clone()), &mut |b| {
        let k = decode_marking(&b.bytes)?.key;
        if !keys.contains(&k) {
            keys.push(k);
        }
        Ok(())
    })?;
    Ok(keys)
}

fn replace_markings(value: &Bson, keys: &dyn KeyLookup) -> Result<Bson, crate::Error> {
    Ok(match value {
        Bson::Binary(b) if is_marking(b) => {
            let m = decode_marking(&b.bytes)?;
            Bson::Binary(crate::ExplicitEncrypter::new(keys).encrypt(
                &m.value,
                &m.key,
                m.algorithm,
            )?)
        }
        Bson::Document(d) => {
            let mut out = Document::new();
            for (k, v) in d {
                out.insert(k.clone(), replace_markings(v, keys)?);
            }
            Bson::Document(out)
        }
        Bson::Array(a) => Bson::Array(
            a.iter()
                .map(|v| replace_markings(v, keys))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Replaces every marking in `command` with its ciphertext.
pub fn encrypt_markings(
    command: &Document,
    keys: &dyn KeyLookup,
) -> Result<Document, crate::Error> {
    match replace_markings(&Bson::Document(command.clone()), keys)? {
        Bson::Document(d) => Ok(d),
        _ => Err(crate::Error::InvalidValue(
            "command is not a document".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSource;

    fn schema() -> EncryptionSchema {
        let key = Bson::Array(vec![Bson::Binary(KeyId::from_bytes([7; 16]).to_binary())]);
        EncryptionSchema::parse(
            &doc! {
                "bsonType": "object",
                "properties": {
                    "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                    "notes": {"encrypt": {"keyId": "/owner", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
                },
            },
            SchemaSource::Local,
        )
        .unwrap()
    }

    fn run(cmd: Document) -> Result<Analysis, Error> {
        let s = schema();
        analyze(&cmd, &|_| Some(&s))
    }

    fn marking(v: &Bson) -> Document {
        let Bson::Binary(b) = v else {
            panic!("not a marking: {v:?}")
        };
        assert_eq!(b.bytes[0], 0);
        Document::from_reader(&b.bytes[1..]).unwrap()
    }

    #[test]
    fn pointer_keys_mark_with_the_alt_name() {
        let Analysis::Marked(c) =
            run(doc! {"insert": "c", "documents": [{"owner": "alice", "notes": "x", "ssn": "1"}]})
                .unwrap()
        else {
            panic!()
        };
        let d = c.get_array("documents").unwrap()[0]
            .as_document()
            .unwrap()
            .clone();
        assert_eq!(
            marking(d.get("notes").unwrap()).get_str("ka").unwrap(),
            "alice"
        );
        assert_eq!(marking(d.get("ssn").unwrap()).get_i32("a").unwrap(), 1);
        assert_eq!(d.get_str("owner").unwrap(), "alice");
        let err = run(doc! {"insert": "c", "documents": [{"notes": "x"}]}).unwrap_err();
        assert!(matches!(err, Error::KeyPointer { .. }), "{err}");
        let owner = doc! {"owner": {"a/b": "bob"}};
        assert_eq!(resolve_pointer(&owner, "/owner/a~1b"), Some("bob"));
        assert_eq!(resolve_pointer(&owner, "/owner"), None);
        let err = run(doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"notes": "x"}}}]})
            .unwrap_err();
        assert!(matches!(err, Error::KeyPointer { .. }), "{err}");
    }

    #[test]
    fn fails_closed() {
        let cases = [
            doc! {"find": "c", "filter": {"$expr": {"$eq": ["$ssn", "1"]}}},
            doc! {"find": "c", "filter": {"ssn": {"$gt": "1"}}},
            doc! {"find": "c", "filter": {"ssn": {"$regex": "^1"}}},
            doc! {"find": "c", "filter": {"notes": "x"}},
            doc! {"find": "c", "filter": {"ssn": "1"}, "sort": {"ssn": 1}},
            doc! {"aggregate": "c", "pipeline": [{"$project": {"ssn": 1}}], "cursor": {}},
            doc! {"update": "c", "updates": [{"q": {}, "u": [{"$set": {"a": 1}}]}]},
            doc! {"insert": "c", "documents": [{"ssn": 5}]},
            doc! {"mapReduce": "c"},
            doc! {"aggregate": 1, "pipeline": []},
        ];
        for c in cases {
            assert!(run(c.clone()).is_err(), "{c}");
        }
    }

    #[test]
    fn nothing_to_encrypt_leaves_the_command_alone() {
        for c in [
            doc! {"find": "c", "filter": {"_id": 1}},
            doc! {"find": "c", "filter": {"notes": {"$exists": true}}},
            doc! {"ping": 1},
            doc! {"getMore": 1_i64, "collection": "c"},
            doc! {"delete": "c", "deletes": [{"q": {"x": {"$gt": 1}}, "limit": 0}]},
        ] {
            assert_eq!(run(c.clone()).unwrap(), Analysis::Unchanged, "{c}");
        }
    }

    #[test]
    fn explain_wraps_the_analyzed_command() {
        let Analysis::Marked(c) = run(
            doc! {"explain": {"find": "c", "filter": {"ssn": "1"}}, "verbosity": "queryPlanner"},
        )
        .unwrap() else {
            panic!()
        };
        let inner = c.get_document("explain").unwrap();
        marking(
            inner
                .get_document("filter")
                .unwrap()
                .get_document("ssn")
                .unwrap()
                .get("$eq")
                .unwrap(),
        );
        assert_eq!(c.get_str("verbosity").unwrap(), "queryPlanner");
    }
}
