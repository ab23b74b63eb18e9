//! The JSON schema model of automatic encryption: which fields of a
//! collection are encrypted, with which key and algorithm.
//!
//! Parses `$jsonSchema` documents as MongoDB's CSFLE uses them (from a
//! client-side schema map, or a collection validator on the server) and
//! refuses the schemas mongocryptd refuses, with its wording. Pure: no I/O.

use crate::crypto::Algorithm;
use crate::key::KeyId;
use bson::spec::ElementType;
use bson::{Bson, Document};
use regex::Regex;
use std::collections::HashSet;

pub mod typed;

/// Where a schema came from. Some keywords are only meaningful on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaSource {
    /// The client's schema map.
    Local,
    /// A collection's `$jsonSchema` validator, read from the server.
    Remote,
}

/// The data key an encrypted field uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptKey {
    /// A fixed key: `keyId: [UUID]`.
    Id(KeyId),
    /// `keyId: "/field"`: the key whose alternate name is the value of that
    /// field of the same document (random encryption only).
    AltNamePointer(String),
}

/// How one field is encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptSpec {
    /// The data key.
    pub key: EncryptKey,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The declared BSON types (empty: any type the algorithm allows).
    pub bson_types: Vec<ElementType>,
}

/// What the schema says about a field path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldInfo<'s> {
    /// The field is encrypted.
    Encrypted(&'s EncryptSpec),
    /// The field is below an encrypted field (inside its ciphertext).
    BelowEncrypted(&'s EncryptSpec),
    /// The field is a document that contains encrypted fields.
    ContainsEncrypted,
    /// Nothing in or below the field is encrypted.
    Plain,
    /// Several `properties` / `patternProperties` entries match a segment
    /// of the path and disagree about encryption: nothing can be assumed.
    Conflict,
}

#[derive(Clone, Debug)]
enum Node {
    Encrypted(EncryptSpec),
    Object(ObjectNode),
    Plain,
}

#[derive(Clone, Debug, Default)]
struct ObjectNode {
    properties: Vec<(String, Node)>,
    pattern_properties: Vec<(Regex, Node)>,
    additional: Option<Box<Node>>,
}

impl Node {
    fn is_plain(&self) -> bool {
        matches!(self, Node::Plain)
    }

    fn specs<'s>(&'s self, out: &mut Vec<&'s EncryptSpec>) {
        match self {
            Node::Encrypted(spec) => out.push(spec),
            Node::Object(o) => o.specs(out),
            Node::Plain => {}
        }
    }
}

/// Whether two schema nodes say the same about encryption.
fn agree(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Plain, Node::Plain) => true,
        (Node::Encrypted(x), Node::Encrypted(y)) => x == y,
        (Node::Object(_) | Node::Plain, Node::Object(_) | Node::Plain) => {
            signature(a, "") == signature(b, "")
        }
        _ => false,
    }
}

/// Every encrypted path below `node` (patterns by their regex, additional
/// properties as `*`) with its specification, sorted.
fn signature<'n>(node: &'n Node, prefix: &str) -> Vec<(String, &'n EncryptSpec)> {
    let mut out = Vec::new();
    match node {
        Node::Plain => {}
        Node::Encrypted(spec) => out.push((prefix.to_owned(), spec)),
        Node::Object(o) => {
            let children = o
                .properties
                .iter()
                .map(|(n, c)| (n.clone(), c))
                .chain(
                    o.pattern_properties
                        .iter()
                        .map(|(re, c)| (format!("/{}/", re.as_str()), c)),
                )
                .chain(o.additional.as_deref().map(|c| ("*".to_owned(), c)));
            for (name, child) in children {
                out.extend(signature(child, &format!("{prefix}.{name}")));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A child lookup: JSON Schema applies every matching `properties` and
/// `patternProperties` entry, so when they disagree about encryption the
/// answer is a conflict, never the first match.
enum Child<'n> {
    Node(&'n Node),
    Unnamed,
    Conflict,
}

impl ObjectNode {
    /// The node for the property `name`: every named property and matching
    /// pattern (which must agree), else `additionalProperties`.
    fn child(&self, name: &str) -> Child<'_> {
        let mut found: Option<&Node> = None;
        let named = self
            .properties
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c);
        let patterns = self
            .pattern_properties
            .iter()
            .filter(|(re, _)| re.is_match(name))
            .map(|(_, c)| c);
        for node in named.chain(patterns) {
            match found {
                None => found = Some(node),
                Some(first) if !agree(first, node) => return Child::Conflict,
                Some(_) => {}
            }
        }
        match found.or(self.additional.as_deref()) {
            Some(n) => Child::Node(n),
            None => Child::Unnamed,
        }
    }

    fn has_encrypted(&self) -> bool {
        self.properties.iter().any(|(_, n)| !n.is_plain())
            || self.pattern_properties.iter().any(|(_, n)| !n.is_plain())
            || self.additional.as_deref().is_some_and(|n| !n.is_plain())
    }

    fn specs<'s>(&'s self, out: &mut Vec<&'s EncryptSpec>) {
        let nodes = self.properties.iter().map(|(_, n)| n);
        let patterns = self.pattern_properties.iter().map(|(_, n)| n);
        for n in nodes.chain(patterns).chain(self.additional.as_deref()) {
            n.specs(out);
        }
    }
}

/// A parsed, validated encryption schema for one collection.
#[derive(Clone, Debug)]
pub struct EncryptionSchema {
    root: ObjectNode,
}

/// Why a schema is refused. Messages follow mongocryptd's where the
/// specification's tests check them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structural problem (encrypt in arrays, in logical keywords, below a
    /// parent that is not an object, a malformed keyword…).
    #[error("Invalid schema: {0}")]
    Invalid(String),
    /// `encrypt` next to another keyword.
    #[error("Invalid schema: 'encrypt' cannot be used in conjunction with '{0}'")]
    EncryptWithSibling(String),
    /// `_id` marked for encryption.
    #[error("Invalid schema containing the 'encrypt' keyword. '_id' cannot be encrypted")]
    EncryptOnId,
    /// A schema still wrapped in `{"$jsonSchema": …}` (at the location).
    #[error(
        "Invalid schema: the schema is wrapped in {{\"$jsonSchema\": …}} (at {0}): unwrap it; a schema map entry is the $jsonSchema document itself"
    )]
    Wrapped(String),
    /// A schema map key that is not `db.collection`.
    #[error("'{0}' is not a namespace: a schema map key must be \"db.collection\"")]
    BadNamespace(String),
    /// A `keyId` JSON pointer naming an encrypted field: its plaintext
    /// would be sent to the key vault as a key name.
    #[error(
        "Invalid schema: keyId pointer '{0}' names an encrypted field (or one inside it): its plaintext would be sent to the key vault as a key's alternate name"
    )]
    KeyPointerToEncrypted(String),
    /// `required` in a client-side schema.
    #[error("JSON schema keyword 'required' is only allowed with a remote schema")]
    RequiredInLocalSchema,
    /// A type deriving `Encrypted` whose schema cannot be made (a field
    /// without a key, an unknown key name, encrypted fields a schema cannot
    /// describe).
    #[error("`{rust_type}`, field `{field}`: {reason}")]
    Type {
        /// The Rust type.
        rust_type: &'static str,
        /// Its field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The keywords of MongoDB's `$jsonSchema` (the manual's "$jsonSchema –
/// available keywords") and the two of encryption. Anything else is
/// refused: a keyword a parser ignores is a schema that encrypts nothing.
pub const KEYWORDS: [&str; 31] = [
    "additionalItems",
    "additionalProperties",
    "allOf",
    "anyOf",
    "bsonType",
    "dependencies",
    "description",
    "encrypt",
    "encryptMetadata",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "items",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "oneOf",
    "pattern",
    "patternProperties",
    "properties",
    "required",
    "title",
    "type",
    "uniqueItems",
];

/// JSON Schema keywords the manual lists as omitted from `$jsonSchema`.
const OMITTED: [&str; 6] = ["$ref", "$schema", "default", "definitions", "format", "id"];

/// The `type` names `$jsonSchema` supports (not `integer`).
const JSON_TYPES: [&str; 6] = ["object", "array", "number", "boolean", "string", "null"];

/// Where a schema node sits: where the model follows encryption, or inside
/// a keyword whose sub-schemas it does not follow (they may not encrypt).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Context {
    Modelled,
    /// Under `allOf`/`anyOf`/`oneOf`/`not`/`dependencies` of the node at `at`.
    Logical {
        keyword: &'static str,
        at: String,
    },
    /// Under `items`/`additionalItems` of the node at `at`.
    Array {
        keyword: &'static str,
        at: String,
    },
}

impl Context {
    /// The context of a sub-schema of `keyword` of the node at `path`: the
    /// outermost keyword that stops the model names the refusal.
    fn below(&self, keyword: &'static str, array: bool, path: &str) -> Context {
        let at = path.to_owned();
        match self {
            Context::Modelled if array => Context::Array { keyword, at },
            Context::Modelled => Context::Logical { keyword, at },
            other => other.clone(),
        }
    }

    /// The refusal of `encrypt`/`encryptMetadata` in this context.
    fn refusal(&self) -> Option<Error> {
        match self {
            Context::Modelled => None,
            Context::Logical { keyword, at } => Some(Error::Invalid(format!(
                "'{keyword}' at '{}' may not contain encrypted fields",
                display_path(at)
            ))),
            Context::Array { keyword, at } => Some(Error::Invalid(format!(
                "encrypted fields inside arrays are not supported ('{keyword}' at '{}')",
                display_path(at)
            ))),
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

/// A location in the raw schema document: the keys and array indexes from
/// its root.
type Location = Vec<String>;

/// `location` as a JSON pointer into the schema document (RFC 6901
/// escapes; the root, whose pointer is empty, is shown as `/`).
fn pointer(location: &[String]) -> String {
    if location.is_empty() {
        return "/".to_owned();
    }
    location
        .iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// What the parser read of the raw document, for the cross-check: the
/// locations of the `encrypt`/`encryptMetadata` keywords it consumed and of
/// the property names it recorded, and the `enum` literals it skipped.
struct Reader {
    source: SchemaSource,
    consumed: HashSet<Location>,
    literals: HashSet<Location>,
    /// The location of the node being read.
    location: Location,
}

impl Reader {
    fn new(source: SchemaSource) -> Self {
        Reader {
            source,
            consumed: HashSet::new(),
            literals: HashSet::new(),
            location: Vec::new(),
        }
    }

    fn at(&self, key: &str) -> Location {
        let mut l = self.location.clone();
        l.push(key.to_owned());
        l
    }

    /// Records `key` of the current location as read (a keyword consumed
    /// or a property name).
    fn record(&mut self, key: &str) {
        let l = self.at(key);
        self.consumed.insert(l);
    }

    /// Runs `f` with the location `steps` deeper.
    fn within<T>(&mut self, steps: &[&str], f: impl FnOnce(&mut Self) -> T) -> T {
        let depth = self.location.len();
        self.location.extend(steps.iter().map(|s| (*s).to_owned()));
        let out = f(self);
        self.location.truncate(depth);
        out
    }

    /// The independent check: every key named `encrypt` or
    /// `encryptMetadata` anywhere in `doc` (outside `enum` literals) is one
    /// the parser consumed or recorded as a property name. Anything else is
    /// an `encrypt` the model would ignore.
    fn cross_check(&self, doc: &Document, at: &mut Location, depth: usize) -> Result<(), Error> {
        for (k, v) in doc {
            at.push(k.clone());
            if (k == "encrypt" || k == "encryptMetadata") && !self.consumed.contains(&*at) {
                return Err(Error::Invalid(format!(
                    "'{k}' at {} is neither a keyword nor a property name the schema is read by: refused rather than ignored",
                    pointer(at)
                )));
            }
            self.cross_check_value(v, at, depth + 1)?;
            at.pop();
        }
        Ok(())
    }

    fn cross_check_value(&self, v: &Bson, at: &mut Location, depth: usize) -> Result<(), Error> {
        if self.literals.contains(&*at) {
            return Ok(());
        }
        if depth > crate::nesting::MAX_NESTING {
            return Err(Error::Invalid(format!(
                "the schema is too deep: more than {} levels",
                crate::nesting::MAX_NESTING
            )));
        }
        match v {
            Bson::Document(d) => self.cross_check(d, at, depth),
            Bson::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(i.to_string());
                    self.cross_check_value(item, at, depth + 1)?;
                    at.pop();
                }
                Ok(())
            }
            Bson::JavaScriptCodeWithScope(c) => {
                at.push("$scope".to_owned());
                self.cross_check(&c.scope, at, depth + 1)?;
                at.pop();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Refuses every keyword that is not `$jsonSchema`'s or encryption's.
fn check_keywords(doc: &Document, at: &[String]) -> Result<(), Error> {
    for k in doc.keys() {
        let k = k.as_str();
        if KEYWORDS.contains(&k) {
            continue;
        }
        let at = pointer(at);
        return Err(if k == "$jsonSchema" {
            Error::Wrapped(at)
        } else if OMITTED.contains(&k) {
            Error::Invalid(format!(
                "$jsonSchema keyword '{k}' is not currently supported (at {at})"
            ))
        } else {
            Error::Invalid(format!("Unknown $jsonSchema keyword: {k} (at {at})"))
        });
    }
    Ok(())
}

fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

/// A count (`maxLength`, `minItems`…): a non-negative whole number.
fn is_count(v: &Bson) -> bool {
    match v {
        Bson::Int32(n) => *n >= 0,
        Bson::Int64(n) => *n >= 0,
        Bson::Double(d) => d.is_finite() && *d >= 0.0 && d.fract() == 0.0,
        _ => false,
    }
}

fn is_positive_number(v: &Bson) -> bool {
    match v {
        Bson::Int32(n) => *n > 0,
        Bson::Int64(n) => *n > 0,
        Bson::Double(d) => d.is_finite() && *d > 0.0,
        // Decimal128 has no arithmetic in bson: its sign is not checked.
        Bson::Decimal128(_) => true,
        _ => false,
    }
}

/// A string or a non-empty array of strings, each accepted by `known`,
/// without repeats.
fn is_type_list(v: &Bson, known: impl Fn(&str) -> bool) -> bool {
    match type_names(v) {
        Some(names) => {
            !names.is_empty()
                && names.iter().all(|&n| known(n))
                && names
                    .iter()
                    .enumerate()
                    .all(|(i, n)| !names[..i].contains(n))
        }
        None => false,
    }
}

/// What a keyword's value must be, when it is not: the value-holding
/// keywords (sub-schema keywords are checked where they are read).
fn shape_error(keyword: &str, v: &Bson) -> Option<&'static str> {
    let (ok, what) = match keyword {
        "description" | "title" | "pattern" => (matches!(v, Bson::String(_)), "a string"),
        "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" => {
            (matches!(v, Bson::Boolean(_)), "a boolean")
        }
        "maximum" | "minimum" => (is_number(v), "a number"),
        "multipleOf" => (is_positive_number(v), "a positive number"),
        "maxItems" | "maxLength" | "maxProperties" | "minItems" | "minLength" | "minProperties" => {
            (is_count(v), "a non-negative whole number")
        }
        "enum" => (
            matches!(v, Bson::Array(a) if !a.is_empty()),
            "a non-empty array",
        ),
        "required" => (
            matches!(v, Bson::Array(a) if !a.is_empty()) && is_type_list(v, |_| true),
            "a non-empty array of unique strings",
        ),
        "bsonType" => (
            is_type_list(v, |n| n == "number" || element_type(n).is_some()),
            "a BSON type name or an array of them",
        ),
        "type" => (
            is_type_list(v, |n| JSON_TYPES.contains(&n)),
            "a JSON type name (object, array, number, boolean, string, null) or an array of them",
        ),
        _ => (true, ""),
    };
    if ok { None } else { Some(what) }
}

fn shape(keyword: &str, what: &str, at: &[String]) -> Error {
    Error::Invalid(format!(
        "$jsonSchema keyword '{keyword}' must be {what} (at {})",
        pointer(at)
    ))
}

/// The value-holding keywords' shapes.
fn check_shapes(doc: &Document, at: &[String]) -> Result<(), Error> {
    for (k, v) in doc {
        if let Some(what) = shape_error(k, v) {
            return Err(shape(k, what, at));
        }
    }
    if doc.contains_key("type") && doc.contains_key("bsonType") {
        return Err(Error::Invalid(format!(
            "Cannot specify both $jsonSchema keywords 'type' and 'bsonType' (at {})",
            pointer(at)
        )));
    }
    Ok(())
}

fn type_names(value: &Bson) -> Option<Vec<&str>> {
    match value {
        Bson::String(s) => Some(vec![s.as_str()]),
        Bson::Array(a) => a.iter().map(|v| v.as_str()).collect(),
        _ => None,
    }
}

fn declares_object(doc: &Document) -> Option<bool> {
    let t = doc.get("bsonType").or_else(|| doc.get("type"))?;
    Some(type_names(t).is_some_and(|names| names == ["object"]))
}

fn element_type(name: &str) -> Option<ElementType> {
    use ElementType::*;
    Some(match name {
        "double" => Double,
        "string" => String,
        "object" => EmbeddedDocument,
        "array" => Array,
        "binData" => Binary,
        "undefined" => Undefined,
        "objectId" => ObjectId,
        "bool" => Boolean,
        "date" => DateTime,
        "null" => Null,
        "regex" => RegularExpression,
        "dbPointer" => DbPointer,
        "javascript" => JavaScriptCode,
        "symbol" => Symbol,
        "javascriptWithScope" => JavaScriptCodeWithScope,
        "int" => Int32,
        "timestamp" => Timestamp,
        "long" => Int64,
        "decimal" => Decimal128,
        "minKey" => MinKey,
        "maxKey" => MaxKey,
        _ => return None,
    })
}

#[derive(Clone, Debug, Default)]
struct Metadata {
    key: Option<EncryptKey>,
    algorithm: Option<Algorithm>,
}

fn parse_key(value: &Bson, path: &str) -> Result<EncryptKey, Error> {
    match value {
        Bson::Array(a) => match a.as_slice() {
            [Bson::Binary(b)] => KeyId::from_binary(b).map(EncryptKey::Id).ok_or_else(|| {
                Error::Invalid(format!(
                    "'{path}': keyId must hold a UUID (binary subtype 4)"
                ))
            }),
            _ => Err(Error::Invalid(format!(
                "'{path}': keyId must be an array of exactly one UUID"
            ))),
        },
        Bson::String(s) if s.starts_with('/') && s.len() > 1 => {
            Ok(EncryptKey::AltNamePointer(s.clone()))
        }
        _ => Err(Error::Invalid(format!(
            "'{path}': keyId must be an array of one UUID or a JSON pointer such as \"/altName\""
        ))),
    }
}

/// FLE1's two algorithms, nothing else (an allow-list): Queryable
/// Encryption's algorithms are never FLE1 schema algorithms (QE declares
/// its fields in `encryptedFields`), and are refused by name.
fn parse_algorithm(value: &Bson, path: &str) -> Result<Algorithm, Error> {
    let name = value.as_str();
    if let Some(algorithm) = name.and_then(Algorithm::from_name) {
        return Ok(algorithm);
    }
    if let Some(qe @ ("Indexed" | "Unindexed" | "Range" | "String" | "TextPreview")) = name {
        return Err(Error::Invalid(format!(
            "'{path}': unknown encryption algorithm '{qe}': it is Queryable Encryption's, declared in encryptedFields, never in a $jsonSchema"
        )));
    }
    Err(Error::Invalid(format!(
        "'{path}': unknown encryption algorithm {value}"
    )))
}

fn parse_metadata(doc: &Document, inherited: &Metadata, path: &str) -> Result<Metadata, Error> {
    let mut m = inherited.clone();
    for (k, v) in doc {
        match k.as_str() {
            "keyId" => m.key = Some(parse_key(v, path)?),
            "algorithm" => m.algorithm = Some(parse_algorithm(v, path)?),
            other => {
                return Err(Error::Invalid(format!(
                    "'{path}': unknown encryptMetadata field '{other}'"
                )));
            }
        }
    }
    Ok(m)
}

fn parse_encrypt(value: &Bson, inherited: &Metadata, path: &str) -> Result<EncryptSpec, Error> {
    let Bson::Document(doc) = value else {
        return Err(Error::Invalid(format!(
            "'{path}': 'encrypt' must be a document"
        )));
    };
    let mut meta = inherited.clone();
    let mut bson_types = Vec::new();
    for (k, v) in doc {
        match k.as_str() {
            "keyId" => meta.key = Some(parse_key(v, path)?),
            "algorithm" => meta.algorithm = Some(parse_algorithm(v, path)?),
            "bsonType" => {
                let names = type_names(v).ok_or_else(|| {
                    Error::Invalid(format!("'{path}': bsonType must be a string or an array"))
                })?;
                for n in names {
                    bson_types.push(element_type(n).ok_or_else(|| {
                        Error::Invalid(format!("'{path}': unknown bsonType '{n}'"))
                    })?);
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "'{path}': unknown 'encrypt' field '{other}'"
                )));
            }
        }
    }
    let key = meta.key.ok_or_else(|| {
        Error::Invalid(format!(
            "'{path}': no keyId in 'encrypt' or an enclosing encryptMetadata"
        ))
    })?;
    let algorithm = meta.algorithm.ok_or_else(|| {
        Error::Invalid(format!(
            "'{path}': no algorithm in 'encrypt' or an enclosing encryptMetadata"
        ))
    })?;
    if algorithm == Algorithm::Deterministic {
        if matches!(key, EncryptKey::AltNamePointer(_)) {
            return Err(Error::Invalid(format!(
                "'{path}': a JSON pointer keyId is only allowed with the random algorithm"
            )));
        }
        match bson_types.as_slice() {
            [ty] => {
                // The deterministic type rules of the encryption core.
                // mongocryptd's wording, which it gives only once a value
                // of the type is encrypted.
                if !crate::ciphertext::deterministic_allows(*ty) {
                    return Err(Error::Invalid(format!(
                        "'{path}': Cannot use deterministic encryption for element of type: {}",
                        crate::ciphertext::type_name(*ty)
                    )));
                }
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "'{path}': deterministic encryption requires exactly one bsonType"
                )));
            }
        }
    }
    Ok(EncryptSpec {
        key,
        algorithm,
        bson_types,
    })
}

/// What differs between two specifications of one field.
fn spec_difference(a: &EncryptSpec, b: &EncryptSpec) -> String {
    let mut parts = Vec::new();
    if a.algorithm != b.algorithm {
        parts.push(format!("algorithm {} vs {}", a.algorithm, b.algorithm));
    }
    if a.key != b.key {
        let key = |k: &EncryptKey| match k {
            EncryptKey::Id(id) => format!("key {id}"),
            EncryptKey::AltNamePointer(p) => format!("key pointer {p}"),
        };
        parts.push(format!("{} vs {}", key(&a.key), key(&b.key)));
    }
    if a.bson_types != b.bson_types {
        let names = |t: &[ElementType]| {
            t.iter()
                .map(|t| crate::ciphertext::type_name(*t))
                .collect::<Vec<_>>()
                .join(",")
        };
        parts.push(format!(
            "bsonType [{}] vs [{}]",
            names(&a.bson_types),
            names(&b.bson_types)
        ));
    }
    parts.join(", ")
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// One schema node at `path`: an encrypted field, or an object whose
/// `properties`, `patternProperties` and `additionalProperties` are nodes
/// in turn (`Plain` when nothing in it is encrypted, except at the root).
fn parse_node(
    doc: &Document,
    path: &str,
    inherited: &Metadata,
    is_root: bool,
    ctx: &Context,
    r: &mut Reader,
) -> Result<Node, Error> {
    check_keywords(doc, &r.location)?;
    if let Some(encrypt) = doc.get("encrypt") {
        return parse_encrypted_node(doc, encrypt, path, inherited, ctx, r);
    }
    let meta = parse_node_metadata(doc, path, inherited, ctx, r)?;
    if r.source == SchemaSource::Local && doc.contains_key("required") {
        return Err(Error::RequiredInLocalSchema);
    }
    check_shapes(doc, &r.location)?;
    if doc.contains_key("enum") {
        // Literal values: an `encrypt` key in them is data, not a keyword.
        let literal = r.at("enum");
        r.literals.insert(literal);
    }
    parse_unmodelled(doc, path, &meta, ctx, r)?;

    let mut node = ObjectNode::default();
    parse_properties(doc, path, &meta, ctx, r, &mut node)?;
    parse_pattern_properties(doc, path, &meta, ctx, r, &mut node)?;
    parse_additional_properties(doc, path, &meta, ctx, r, &mut node)?;
    object_node(doc, path, is_root, node)
}

/// A node with `encrypt`: the field's specification, which nothing may sit
/// beside.
fn parse_encrypted_node(
    doc: &Document,
    encrypt: &Bson,
    path: &str,
    inherited: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<Node, Error> {
    if let Some(refused) = ctx.refusal() {
        return Err(refused);
    }
    if let Some(sibling) = doc.keys().find(|k| *k != "encrypt") {
        return Err(Error::EncryptWithSibling(sibling.clone()));
    }
    if path == "_id" {
        return Err(Error::EncryptOnId);
    }
    let spec = parse_encrypt(encrypt, inherited, path)?;
    r.record("encrypt");
    Ok(Node::Encrypted(spec))
}

/// The metadata a node's fields inherit: its own `encryptMetadata` over
/// `inherited`, or `inherited` alone.
fn parse_node_metadata(
    doc: &Document,
    path: &str,
    inherited: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<Metadata, Error> {
    let meta = match doc.get("encryptMetadata") {
        None => inherited.clone(),
        Some(m) => {
            if let Some(refused) = ctx.refusal() {
                return Err(refused);
            }
            let Bson::Document(m) = m else {
                return Err(Error::Invalid(format!(
                    "'{path}': encryptMetadata must be a document"
                )));
            };
            let meta = parse_metadata(m, inherited, path)?;
            r.record("encryptMetadata");
            meta
        }
    };
    Ok(meta)
}

/// `properties`: each named field's node, into `node`.
fn parse_properties(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
    node: &mut ObjectNode,
) -> Result<(), Error> {
    if let Some(props) = doc.get("properties") {
        let Bson::Document(props) = props else {
            return Err(shape("properties", "a document of schemas", &r.location));
        };
        for (name, sub) in props {
            let Bson::Document(sub) = sub else {
                return Err(Error::Invalid(format!(
                    "'{}': a schema must be a document",
                    child_path(path, name)
                )));
            };
            r.within(&["properties"], |r| r.record(name));
            let sub_path = child_path(path, name);
            let child = r.within(&["properties", name.as_str()], |r| {
                parse_node(sub, &sub_path, meta, false, ctx, r)
            })?;
            if !child.is_plain() && (name.contains('.') || name.starts_with('$')) {
                return Err(Error::Invalid(format!(
                    "'{sub_path}': an encrypted field's name cannot contain '.' or start with '$'"
                )));
            }
            node.properties.push((name.clone(), child));
        }
    }
    Ok(())
}

/// `patternProperties`: the node of the fields each pattern matches, into
/// `node` where the model follows it.
fn parse_pattern_properties(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
    node: &mut ObjectNode,
) -> Result<(), Error> {
    if let Some(patterns) = doc.get("patternProperties") {
        let Bson::Document(patterns) = patterns else {
            return Err(shape(
                "patternProperties",
                "a document of schemas",
                &r.location,
            ));
        };
        for (pattern, sub) in patterns {
            let Bson::Document(sub) = sub else {
                return Err(Error::Invalid(format!(
                    "'{path}': a schema must be a document"
                )));
            };
            r.within(&["patternProperties"], |r| r.record(pattern));
            let sub_path = child_path(path, pattern);
            let child = r.within(&["patternProperties", pattern.as_str()], |r| {
                parse_node(sub, &sub_path, meta, false, ctx, r)
            })?;
            // Under a keyword the model does not follow the node is only
            // validated; its regex (PCRE on the server) is not needed.
            if *ctx == Context::Modelled {
                let re = Regex::new(pattern).map_err(|e| {
                    Error::Invalid(format!("'{path}': bad patternProperties regex: {e}"))
                })?;
                node.pattern_properties.push((re, child));
            }
        }
    }
    Ok(())
}

/// `additionalProperties`: the node of the fields nothing else names, into
/// `node` when it is a schema.
fn parse_additional_properties(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
    node: &mut ObjectNode,
) -> Result<(), Error> {
    match doc.get("additionalProperties") {
        None | Some(Bson::Boolean(_)) => {}
        Some(Bson::Document(sub)) => {
            let sub_path = child_path(path, "*");
            let child = r.within(&["additionalProperties"], |r| {
                parse_node(sub, &sub_path, meta, false, ctx, r)
            })?;
            node.additional = Some(Box::new(child));
        }
        Some(_) => {
            return Err(shape(
                "additionalProperties",
                "a boolean or a schema",
                &r.location,
            ));
        }
    }
    Ok(())
}

/// What an object node becomes once its fields are read: `Plain` when
/// nothing in it is encrypted (the root stays an object), refused when it
/// holds encrypted fields without being declared an object.
fn object_node(doc: &Document, path: &str, is_root: bool, node: ObjectNode) -> Result<Node, Error> {
    // The root keeps its plain properties too: a migration plan lists the
    // fields that must end up plaintext there.
    if !node.has_encrypted() {
        return Ok(if is_root {
            Node::Object(node)
        } else {
            Node::Plain
        });
    }
    // A document holding encrypted fields must be declared an object (the
    // root may leave its type implicit, but not declare another one).
    match (is_root, declares_object(doc)) {
        (_, Some(true)) | (true, None) => Ok(Node::Object(node)),
        (_, Some(false)) => Err(Error::Invalid(format!(
            "'{}' contains encrypted fields but is not of bsonType 'object'",
            display_path(path)
        ))),
        (false, None) => Err(Error::Invalid(format!(
            "'{path}' contains encrypted fields and must declare bsonType 'object'"
        ))),
    }
}

/// The keywords whose sub-schemas the model does not follow (logical
/// keywords, array keywords, `dependencies`): every sub-schema is read for
/// its keywords and shapes, and may not encrypt.
fn parse_unmodelled(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<(), Error> {
    parse_logical(doc, path, meta, ctx, r)?;
    parse_array_schemas(doc, path, meta, ctx, r)?;
    parse_dependencies(doc, path, meta, ctx, r)
}

/// `allOf`, `anyOf`, `oneOf`, `not`: each sub-schema read at the node's own
/// path.
fn parse_logical(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<(), Error> {
    for keyword in ["allOf", "anyOf", "oneOf"] {
        let Some(value) = doc.get(keyword) else {
            continue;
        };
        let schemas = match value {
            Bson::Array(a) if !a.is_empty() => a,
            _ => return Err(shape(keyword, "a non-empty array of schemas", &r.location)),
        };
        let below = ctx.below(keyword, false, path);
        for (i, sub) in schemas.iter().enumerate() {
            let Bson::Document(sub) = sub else {
                return Err(shape(keyword, "a non-empty array of schemas", &r.location));
            };
            let index = i.to_string();
            r.within(&[keyword, index.as_str()], |r| {
                parse_node(sub, path, meta, false, &below, r)
            })?;
        }
    }
    match doc.get("not") {
        None => {}
        Some(Bson::Document(sub)) => {
            let below = ctx.below("not", false, path);
            r.within(&["not"], |r| parse_node(sub, path, meta, false, &below, r))?;
        }
        Some(_) => return Err(shape("not", "a schema", &r.location)),
    }
    Ok(())
}

/// `items`, `additionalItems`: each sub-schema read as an array element's.
fn parse_array_schemas(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<(), Error> {
    match doc.get("items") {
        None => {}
        Some(Bson::Document(sub)) => {
            let below = ctx.below("items", true, path);
            r.within(&["items"], |r| {
                parse_node(sub, path, meta, false, &below, r)
            })?;
        }
        Some(Bson::Array(schemas)) => {
            let below = ctx.below("items", true, path);
            for (i, sub) in schemas.iter().enumerate() {
                let Bson::Document(sub) = sub else {
                    return Err(shape(
                        "items",
                        "a schema or an array of schemas",
                        &r.location,
                    ));
                };
                let index = i.to_string();
                r.within(&["items", index.as_str()], |r| {
                    parse_node(sub, path, meta, false, &below, r)
                })?;
            }
        }
        Some(_) => {
            return Err(shape(
                "items",
                "a schema or an array of schemas",
                &r.location,
            ));
        }
    }
    match doc.get("additionalItems") {
        None | Some(Bson::Boolean(_)) => {}
        Some(Bson::Document(sub)) => {
            let below = ctx.below("additionalItems", true, path);
            r.within(&["additionalItems"], |r| {
                parse_node(sub, path, meta, false, &below, r)
            })?;
        }
        Some(_) => {
            return Err(shape(
                "additionalItems",
                "a boolean or a schema",
                &r.location,
            ));
        }
    }
    Ok(())
}

/// `dependencies`: each schema read at the node's own path; property-name
/// lists only checked.
fn parse_dependencies(
    doc: &Document,
    path: &str,
    meta: &Metadata,
    ctx: &Context,
    r: &mut Reader,
) -> Result<(), Error> {
    match doc.get("dependencies") {
        None => {}
        Some(Bson::Document(deps)) => {
            let below = ctx.below("dependencies", false, path);
            for (name, dep) in deps {
                r.within(&["dependencies"], |r| r.record(name));
                match dep {
                    Bson::Document(sub) => {
                        r.within(&["dependencies", name.as_str()], |r| {
                            parse_node(sub, path, meta, false, &below, r)
                        })?;
                    }
                    Bson::Array(_) if is_type_list(dep, |_| true) => {}
                    _ => {
                        return Err(shape(
                            "dependencies",
                            "a document of schemas or non-empty arrays of unique property names",
                            &r.location,
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(shape(
                "dependencies",
                "a document of schemas or arrays of property names",
                &r.location,
            ));
        }
    }
    Ok(())
}

impl EncryptionSchema {
    /// Parses and validates a `$jsonSchema` document. A schema nested more
    /// than [`MAX_NESTING`](crate::nesting::MAX_NESTING) levels is refused
    /// before it is walked.
    ///
    /// Strict: every node may hold only the keywords of MongoDB's
    /// `$jsonSchema` ([`KEYWORDS`]), with values of the right shape; an
    /// unknown keyword, a misspelling, a JSON Schema keyword MongoDB does
    /// not have and a schema still wrapped in `{"$jsonSchema": …}` are
    /// refused with their location. Then, independently of the parser, every
    /// key named `encrypt` or `encryptMetadata` in the document must be one
    /// the parser read as a keyword or property name, or lie in an `enum`
    /// literal; and a `keyId` pointer may not name an encrypted field.
    pub fn parse(schema: &Document, source: SchemaSource) -> Result<Self, Error> {
        crate::nesting::check(schema)
            .map_err(|e| Error::Invalid(format!("the schema is too deep: {e}")))?;
        let mut reader = Reader::new(source);
        let root = match parse_node(
            schema,
            "",
            &Metadata::default(),
            true,
            &Context::Modelled,
            &mut reader,
        )? {
            Node::Object(o) => o,
            Node::Plain => ObjectNode::default(),
            // parse_node refuses `encrypt` at the root as a sibling-less
            // encrypt of the whole document: treat as invalid.
            Node::Encrypted(_) => {
                return Err(Error::Invalid(
                    "the whole document cannot be encrypted".into(),
                ));
            }
        };
        reader.cross_check(schema, &mut Vec::new(), 0)?;
        let parsed = EncryptionSchema { root };
        parsed.check_key_pointers()?;
        Ok(parsed)
    }

    /// A `keyId` pointer resolves against the whole document: one naming
    /// an encrypted field (or a field inside one) would send that field's
    /// plaintext to the key vault as a key name.
    fn check_key_pointers(&self) -> Result<(), Error> {
        for spec in self.encrypt_specs() {
            let EncryptKey::AltNamePointer(p) = &spec.key else {
                continue;
            };
            // RFC 6901 unescaping, in the order the resolver applies it.
            let segments: Vec<String> = p
                .strip_prefix('/')
                .unwrap_or(p)
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect();
            match self.lookup(segments.iter().map(String::as_str)) {
                FieldInfo::Encrypted(_) | FieldInfo::BelowEncrypted(_) | FieldInfo::Conflict => {
                    return Err(Error::KeyPointerToEncrypted(p.clone()));
                }
                FieldInfo::ContainsEncrypted | FieldInfo::Plain => {}
            }
        }
        Ok(())
    }

    /// Whether any field is encrypted.
    pub fn has_encrypted_fields(&self) -> bool {
        self.root.has_encrypted()
    }

    /// Whether the schema names the dotted field `path` at all (a property,
    /// a matching pattern property or `additionalProperties`), encrypted or
    /// not. A named field without `encrypt` is one the schema says is
    /// plaintext; an unnamed one it says nothing about.
    pub fn is_listed(&self, path: &str) -> bool {
        let mut node = &self.root;
        for part in path.split('.') {
            match node.child(part) {
                Child::Unnamed => return false,
                Child::Node(Node::Object(o)) => node = o,
                Child::Node(Node::Encrypted(_) | Node::Plain) | Child::Conflict => return true,
            }
        }
        true
    }

    /// How this schema (called `mine` in the lines) and `other` (`theirs`)
    /// disagree about encryption: one line per field encrypted in one and
    /// not the other, or encrypted differently (algorithm, key, BSON type).
    /// Empty when they agree. Plain keywords (validators) are not compared.
    pub fn encryption_differences(
        &self,
        other: &EncryptionSchema,
        mine: &str,
        theirs: &str,
    ) -> Vec<String> {
        let root = |s: &EncryptionSchema| Node::Object(s.root.clone());
        let (a, b) = (root(self), root(other));
        let (ours, others) = (signature(&a, ""), signature(&b, ""));
        let name = |p: &str| p.trim_start_matches('.').to_owned();
        let mut out = Vec::new();
        for (path, spec) in &ours {
            match others.iter().find(|(p, _)| p == path) {
                None => out.push(format!(
                    "'{}' is encrypted in the {mine}, not in the {theirs}",
                    name(path)
                )),
                Some((_, other)) if other != spec => out.push(format!(
                    "'{}' is encrypted differently ({mine} vs {theirs}): {}",
                    name(path),
                    spec_difference(spec, other)
                )),
                Some(_) => {}
            }
        }
        for (path, _) in &others {
            if !ours.iter().any(|(p, _)| p == path) {
                out.push(format!(
                    "'{}' is encrypted in the {theirs}, not in the {mine}",
                    name(path)
                ));
            }
        }
        out
    }

    /// Every `encrypt` specification in the schema.
    pub fn encrypt_specs(&self) -> Vec<&EncryptSpec> {
        let mut out = Vec::new();
        self.root.specs(&mut out);
        out
    }

    /// Every `encrypt` specification at or below the dotted field `path`:
    /// the field's own when it is encrypted (or below an encrypted field),
    /// those of the fields inside it when it is a document; empty when
    /// nothing there is encrypted. `None` when schema entries that
    /// disagree about encryption match a segment of the path.
    pub fn encrypt_specs_at(&self, path: &str) -> Option<Vec<&EncryptSpec>> {
        let mut node = &self.root;
        let mut out = Vec::new();
        for part in path.split('.') {
            match node.child(part) {
                Child::Conflict => return None,
                Child::Unnamed | Child::Node(Node::Plain) => return Some(out),
                Child::Node(Node::Encrypted(spec)) => {
                    out.push(spec);
                    return Some(out);
                }
                Child::Node(Node::Object(o)) => node = o,
            }
        }
        node.specs(&mut out);
        Some(out)
    }

    /// What the schema says about the dotted field `path`.
    pub fn field(&self, path: &str) -> FieldInfo<'_> {
        self.lookup(path.split('.'))
    }

    /// What the schema says about the field reached by `parts`.
    fn lookup<'p>(&self, parts: impl Iterator<Item = &'p str>) -> FieldInfo<'_> {
        let mut node = &self.root;
        let mut parts = parts.peekable();
        while let Some(part) = parts.next() {
            match node.child(part) {
                Child::Conflict => return FieldInfo::Conflict,
                Child::Unnamed | Child::Node(Node::Plain) => return FieldInfo::Plain,
                Child::Node(Node::Encrypted(spec)) => {
                    return if parts.peek().is_none() {
                        FieldInfo::Encrypted(spec)
                    } else {
                        FieldInfo::BelowEncrypted(spec)
                    };
                }
                Child::Node(Node::Object(o)) => node = o,
            }
        }
        FieldInfo::ContainsEncrypted
    }
}

/// A schema map entry refused: its namespace, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema map entry '{namespace}': {source}")]
#[non_exhaustive]
pub struct MapError {
    /// The entry's key.
    pub namespace: String,
    /// What is wrong.
    #[source]
    pub source: Error,
}

/// One schema map entry `ns: entry`, as every schema map is read.
fn parse_map_entry(ns: &str, entry: &Bson) -> Result<EncryptionSchema, Error> {
    if !crate::wire::is_namespace(ns) {
        return Err(Error::BadNamespace(ns.to_owned()));
    }
    let Bson::Document(schema) = entry else {
        return Err(Error::Invalid(
            "a schema map entry must be a document".into(),
        ));
    };
    EncryptionSchema::parse(schema, SchemaSource::Local)
}

/// Every entry of the schema map `{"db.coll": <$jsonSchema>, …}`, parsed
/// on its own: for reporting every refusal of a map at once (`csfle
/// preview --check-schema-map`).
pub fn parse_schema_map_entries(map: &Document) -> Vec<(String, Result<EncryptionSchema, Error>)> {
    map.iter()
        .map(|(ns, entry)| (ns.clone(), parse_map_entry(ns, entry)))
        .collect()
}

/// The schema map `{"db.coll": <$jsonSchema>, …}` parsed: the one way every
/// schema map (the client builder's, the CLI's `--schema-map`, migration
/// plans, `import`, `preview`) is read. A key that is not `db.coll`, an
/// entry that is not a document, and every schema [`EncryptionSchema::parse`]
/// refuses (a client-side schema) is refused, the first one found.
pub fn parse_schema_map(map: &Document) -> Result<Vec<(String, EncryptionSchema)>, MapError> {
    map.iter()
        .map(|(ns, entry)| match parse_map_entry(ns, entry) {
            Ok(schema) => Ok((ns.clone(), schema)),
            Err(source) => Err(MapError {
                namespace: ns.clone(),
                source,
            }),
        })
        .collect()
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
