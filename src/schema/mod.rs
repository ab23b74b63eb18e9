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

const LOGICAL: [&str; 4] = ["anyOf", "allOf", "oneOf", "not"];
const ARRAY_KEYWORDS: [&str; 2] = ["items", "additionalItems"];

/// Whether `value` mentions `encrypt` or `encryptMetadata` anywhere.
fn mentions_encryption(value: &Bson) -> bool {
    // The bounded walk: a document too deep to walk counts as mentioning
    // encryption, so it is refused rather than trusted.
    struct Found;
    impl From<crate::nesting::TooDeep> for Found {
        fn from(_: crate::nesting::TooDeep) -> Self {
            Found
        }
    }
    crate::nesting::visit(value, &mut |v| match v {
        Bson::Document(d) if d.keys().any(|k| k == "encrypt" || k == "encryptMetadata") => {
            Err(Found)
        }
        _ => Ok(()),
    })
    .is_err()
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

fn parse_algorithm(value: &Bson, path: &str) -> Result<Algorithm, Error> {
    value
        .as_str()
        .and_then(Algorithm::from_name)
        .ok_or_else(|| Error::Invalid(format!("'{path}': unknown encryption algorithm {value}")))
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
                if !crate::ciphertext::deterministic_allows(*ty) {
                    return Err(Error::Invalid(format!(
                        "'{path}': deterministic encryption is not allowed for bsonType '{}'",
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

fn parse_node(
    doc: &Document,
    path: &str,
    inherited: &Metadata,
    is_root: bool,
    source: SchemaSource,
) -> Result<Node, Error> {
    if let Some(encrypt) = doc.get("encrypt") {
        if let Some(sibling) = doc.keys().find(|k| *k != "encrypt") {
            return Err(Error::EncryptWithSibling(sibling.clone()));
        }
        if path == "_id" {
            return Err(Error::EncryptOnId);
        }
        return Ok(Node::Encrypted(parse_encrypt(encrypt, inherited, path)?));
    }
    let meta = match doc.get("encryptMetadata") {
        Some(Bson::Document(m)) => parse_metadata(m, inherited, path)?,
        Some(_) => {
            return Err(Error::Invalid(format!(
                "'{path}': encryptMetadata must be a document"
            )));
        }
        None => inherited.clone(),
    };
    if source == SchemaSource::Local && doc.contains_key("required") {
        return Err(Error::RequiredInLocalSchema);
    }
    for kw in LOGICAL {
        if doc.get(kw).is_some_and(mentions_encryption) {
            return Err(Error::Invalid(format!(
                "'{kw}' at '{path}' may not contain encrypted fields"
            )));
        }
    }
    for kw in ARRAY_KEYWORDS {
        if doc.get(kw).is_some_and(mentions_encryption) {
            return Err(Error::Invalid(format!(
                "encrypted fields inside arrays are not supported ('{kw}' at '{path}')"
            )));
        }
    }

    let mut node = ObjectNode::default();
    if let Some(props) = doc.get("properties") {
        let Bson::Document(props) = props else {
            return Err(Error::Invalid(format!(
                "'{path}': properties must be a document"
            )));
        };
        for (name, sub) in props {
            let Bson::Document(sub) = sub else {
                return Err(Error::Invalid(format!(
                    "'{path}.{name}': a schema must be a document"
                )));
            };
            let child = parse_node(sub, &child_path(path, name), &meta, false, source)?;
            if !child.is_plain() && (name.contains('.') || name.starts_with('$')) {
                return Err(Error::Invalid(format!(
                    "'{}': an encrypted field's name cannot contain '.' or start with '$'",
                    child_path(path, name)
                )));
            }
            node.properties.push((name.clone(), child));
        }
    }
    if let Some(patterns) = doc.get("patternProperties") {
        let Bson::Document(patterns) = patterns else {
            return Err(Error::Invalid(format!(
                "'{path}': patternProperties must be a document"
            )));
        };
        for (pattern, sub) in patterns {
            let Bson::Document(sub) = sub else {
                return Err(Error::Invalid(format!(
                    "'{path}': a schema must be a document"
                )));
            };
            let re = Regex::new(pattern).map_err(|e| {
                Error::Invalid(format!("'{path}': bad patternProperties regex: {e}"))
            })?;
            let child = parse_node(sub, &child_path(path, pattern), &meta, false, source)?;
            node.pattern_properties.push((re, child));
        }
    }
    if let Some(Bson::Document(sub)) = doc.get("additionalProperties") {
        let child = parse_node(sub, &child_path(path, "*"), &meta, false, source)?;
        node.additional = Some(Box::new(child));
    }

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
            if path.is_empty() { "<root>" } else { path }
        ))),
        (false, None) => Err(Error::Invalid(format!(
            "'{path}' contains encrypted fields and must declare bsonType 'object'"
        ))),
    }
}

impl EncryptionSchema {
    /// Parses and validates a `$jsonSchema` document. A schema nested more
    /// than [`MAX_NESTING`](crate::nesting::MAX_NESTING) levels is refused
    /// before it is walked.
    pub fn parse(schema: &Document, source: SchemaSource) -> Result<Self, Error> {
        crate::nesting::check(schema)
            .map_err(|e| Error::Invalid(format!("the schema is too deep: {e}")))?;
        let root = match parse_node(schema, "", &Metadata::default(), true, source)? {
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
        Ok(EncryptionSchema { root })
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

    /// What the schema says about the dotted field `path`.
    pub fn field(&self, path: &str) -> FieldInfo<'_> {
        let mut node = &self.root;
        let mut parts = path.split('.').peekable();
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

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn key() -> Bson {
        Bson::Array(vec![Bson::Binary(KeyId::from_bytes([1; 16]).to_binary())])
    }

    #[test]
    fn inheritance_and_lookup() {
        let s = doc! {
            "bsonType": "object",
            "encryptMetadata": {"keyId": key(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"},
            "properties": {
                "ssn": {"encrypt": {"bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "med": {"bsonType": "object", "properties": {"notes": {"encrypt": {}}}},
                "name": {"bsonType": "string"},
            },
            "patternProperties": {"^secret_": {"encrypt": {"keyId": "/owner"}}},
        };
        let schema = EncryptionSchema::parse(&s, SchemaSource::Local).unwrap();
        let FieldInfo::Encrypted(ssn) = schema.field("ssn") else {
            panic!()
        };
        assert_eq!(ssn.algorithm, Algorithm::Deterministic);
        assert_eq!(ssn.key, EncryptKey::Id(KeyId::from_bytes([1; 16])));
        let FieldInfo::Encrypted(notes) = schema.field("med.notes") else {
            panic!()
        };
        assert_eq!(notes.algorithm, Algorithm::Random);
        assert!(matches!(
            schema.field("med.notes.x"),
            FieldInfo::BelowEncrypted(_)
        ));
        assert_eq!(schema.field("med"), FieldInfo::ContainsEncrypted);
        assert_eq!(schema.field("name"), FieldInfo::Plain);
        assert_eq!(schema.field("other.deep"), FieldInfo::Plain);
        let FieldInfo::Encrypted(p) = schema.field("secret_x") else {
            panic!()
        };
        assert_eq!(p.key, EncryptKey::AltNamePointer("/owner".into()));
    }

    #[test]
    fn refusals() {
        let bad = |s: Document| {
            EncryptionSchema::parse(&s, SchemaSource::Local)
                .unwrap_err()
                .to_string()
        };
        let det = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
        assert!(bad(doc! {"properties": {"a": {"encrypt": {"keyId": "/x", "bsonType": "string", "algorithm": det}}}})
            .contains("JSON pointer keyId is only allowed with the random algorithm"));
        assert!(
            bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": det}}}})
                .contains("requires exactly one bsonType")
        );
        assert!(bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "bsonType": "double", "algorithm": det}}}})
            .contains("not allowed for bsonType 'double'"));
        assert!(
            bad(doc! {"properties": {"a": {"encrypt": {"bsonType": "string"}}}})
                .contains("no keyId")
        );
        assert!(
            bad(doc! {"properties": {"a": {"items": {"encrypt": {}}}}}).contains("inside arrays")
        );
        assert!(
            bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": "AES-GCM"}}}})
                .contains("unknown encryption algorithm")
        );
        // Without encryption anywhere, unknown keywords and untyped parents are fine.
        EncryptionSchema::parse(
            &doc! {"properties": {"a": {"properties": {"b": {"bsonType": "int"}}}}},
            SchemaSource::Local,
        )
        .unwrap();
    }
}
