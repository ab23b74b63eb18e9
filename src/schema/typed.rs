//! Encryption declared on Rust types: what `#[derive(Encrypted)]` generates
//! and the `$jsonSchema` it becomes.
//!
//! The derive (crate `csfle-derive`, re-exported as `csfle::Encrypted`)
//! implements [`Encrypted`] for a struct: a [`SchemaTemplate`] listing its
//! encrypted fields (by their serialized names), the algorithm and key of
//! each, and the nested types that hold encrypted fields. The BSON type of a
//! field comes from its Rust type through [`EncryptedBsonType`], never from
//! the spelling of the type. Key alternate names are resolved to key ids
//! through the key vault when a typed collection is opened
//! ([`SchemaTemplate::to_json_schema`] takes the resolver), because FLE1
//! schemas name fixed keys by UUID.
//!
//! A type may instead declare Queryable Encryption fields
//! (`#[encrypted(queryable = …)]`, [`FieldShape::Queryable`]): its
//! template then gives the collection's `encryptedFields`
//! ([`SchemaTemplate::encrypted_fields`], [`Encrypted::encrypted_fields`])
//! and no `$jsonSchema` ([`SchemaTemplate::to_json_schema`] refuses it).
//! One type, nested types included, uses one scheme: the derive refuses
//! both kinds of attribute in one type at compile time, and a type that
//! reaches both through its nested types is refused when either document
//! is made. `encryptedFields` paths are dotted: a nested type's fields are
//! below the field that holds it.
//!
//! Fail closed: a plain field's type must implement [`FieldSchema`] (types
//! known to be plain, derived types, and wrappers, sequences, maps, tuples
//! and enums of them), so a type csfle cannot see into never hides
//! encrypted fields; shapes a schema cannot describe are refused when the
//! schema is made. [`CollectionDocument`] is what an encrypted collection
//! holds: a derived type declares its schema through it, so it is never
//! written without it.
//!
//! Pure: no I/O.

use super::Error;
use crate::crypto::Algorithm;
use crate::key::KeyId;
use bson::spec::ElementType;
use bson::{Bson, Document, doc};

/// A type whose documents have encrypted fields; implemented by
/// `#[derive(Encrypted)]`.
pub trait Encrypted {
    /// The type's encryption schema, key alternate names not yet resolved.
    fn schema_template() -> SchemaTemplate;

    /// The type's Queryable Encryption `encryptedFields` document
    /// ([`SchemaTemplate::encrypted_fields`]): `Ok(None)` for a type
    /// without Queryable Encryption fields (an FLE1 type, or a plain one).
    fn encrypted_fields() -> Result<Option<Document>, Error> {
        Self::schema_template().encrypted_fields()
    }
}

/// The BSON type a Rust type serializes to (with `bson`'s serializer), as a
/// schema's `encrypt.bsonType` names it.
///
/// Implemented for the std and `bson` types whose BSON type is fixed; a
/// struct deriving [`Encrypted`] is an `object`. A type serde renders some
/// other way (`chrono` dates as strings, `uuid::Uuid` as a string) takes
/// `#[encrypted(bson_type = "…")]` on the field instead.
#[diagnostic::on_unimplemented(
    message = "csfle cannot tell which BSON type `{Self}` serializes to",
    label = "no `EncryptedBsonType` for this type",
    note = "name it on the field: `#[encrypted(random, bson_type = \"string\")]` (the $jsonSchema bsonType serde produces), or derive `Encrypted` on the type"
)]
pub trait EncryptedBsonType {
    /// The BSON type of a serialized value.
    const BSON_TYPE: ElementType;
    /// Whether a value may serialize as `null` (`Option<T>`), which cannot
    /// be encrypted.
    const NULLABLE: bool = false;
}

macro_rules! bson_types {
    ($($t:ty => $e:ident),* $(,)?) => {
        $(impl EncryptedBsonType for $t {
            const BSON_TYPE: ElementType = ElementType::$e;
        })*
    };
}

// As `bson`'s serializer writes them: small integers (and `u16`) as int32,
// `u32` and `u64` as int64 (a `u64` past `i64::MAX` fails to serialize),
// `f32` widened to double, `char` as a one-character string.
bson_types! {
    String => String, str => String, char => String,
    i8 => Int32, i16 => Int32, i32 => Int32, u8 => Int32, u16 => Int32,
    i64 => Int64, u32 => Int64, u64 => Int64,
    f32 => Double, f64 => Double,
    bool => Boolean,
    bson::DateTime => DateTime,
    bson::oid::ObjectId => ObjectId,
    bson::Uuid => Binary,
    bson::Binary => Binary,
    bson::Decimal128 => Decimal128,
    bson::Timestamp => Timestamp,
    bson::Regex => RegularExpression,
    bson::JavaScriptCodeWithScope => JavaScriptCodeWithScope,
    bson::Document => EmbeddedDocument,
    bson::RawDocumentBuf => EmbeddedDocument,
    bson::RawArrayBuf => Array,
    serde_bytes::ByteBuf => Binary,
    serde_bytes::Bytes => Binary,
}

impl<const N: usize> EncryptedBsonType for serde_bytes::ByteArray<N> {
    const BSON_TYPE: ElementType = ElementType::Binary;
}

impl<T: EncryptedBsonType + ?Sized> EncryptedBsonType for &T {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

impl<T: EncryptedBsonType + ?Sized> EncryptedBsonType for Box<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

impl<T: EncryptedBsonType + ?Sized> EncryptedBsonType for std::sync::Arc<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

impl<T: EncryptedBsonType + ?Sized> EncryptedBsonType for std::rc::Rc<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

// serde writes what these hold.
macro_rules! bson_type_of_content {
    ($($w:ident)::+) => {
        impl<T: EncryptedBsonType + ?Sized> EncryptedBsonType for $($w)::+<T> {
            const BSON_TYPE: ElementType = T::BSON_TYPE;
            const NULLABLE: bool = T::NULLABLE;
        }
    };
}
bson_type_of_content!(std::cell::RefCell);
bson_type_of_content!(std::sync::Mutex);
bson_type_of_content!(std::sync::RwLock);

impl<T: EncryptedBsonType + Copy> EncryptedBsonType for std::cell::Cell<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}
impl<T: EncryptedBsonType> EncryptedBsonType for std::cmp::Reverse<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}
impl<T: EncryptedBsonType> EncryptedBsonType for std::num::Wrapping<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}
impl<T: EncryptedBsonType> EncryptedBsonType for std::num::Saturating<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

impl<T: EncryptedBsonType + ToOwned + ?Sized> EncryptedBsonType for std::borrow::Cow<'_, T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = T::NULLABLE;
}

impl<T: EncryptedBsonType> EncryptedBsonType for Option<T> {
    const BSON_TYPE: ElementType = T::BSON_TYPE;
    const NULLABLE: bool = true;
}

// Sequences are arrays whatever they hold (`Vec<u8>` too: only
// `serde_bytes` makes bytes a binary).
impl<T> EncryptedBsonType for Vec<T> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T> EncryptedBsonType for [T] {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T, const N: usize> EncryptedBsonType for [T; N] {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T> EncryptedBsonType for std::collections::VecDeque<T> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T> EncryptedBsonType for std::collections::LinkedList<T> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T> EncryptedBsonType for std::collections::BinaryHeap<T> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T> EncryptedBsonType for std::collections::BTreeSet<T> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<T, S> EncryptedBsonType for std::collections::HashSet<T, S> {
    const BSON_TYPE: ElementType = ElementType::Array;
}
impl<K, V> EncryptedBsonType for std::collections::BTreeMap<K, V> {
    const BSON_TYPE: ElementType = ElementType::EmbeddedDocument;
}
impl<K, V, S> EncryptedBsonType for std::collections::HashMap<K, V, S> {
    const BSON_TYPE: ElementType = ElementType::EmbeddedDocument;
}

/// The data key a type or a field names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// A key alternate name, resolved to the key's id when the schema is
    /// made.
    AltName(&'static str),
    /// A key id (UUID).
    Id([u8; 16]),
    /// A JSON pointer to the document field holding the key's alternate
    /// name (random encryption only).
    Pointer(&'static str),
}

/// How a derived type's fields are encrypted, as the derive wrote it.
#[derive(Clone, Debug)]
pub struct SchemaTemplate {
    /// The Rust type's name, for messages.
    pub rust_type: &'static str,
    /// The type's default key (`#[encrypted(key = "…")]` on the type).
    pub key: Option<KeySpec>,
    /// The type names no key and takes the one of the type containing it
    /// (`#[encrypted(inherit_key)]`).
    pub inherit_key: bool,
    /// The fields that are encrypted or hold encrypted fields.
    pub fields: Vec<FieldTemplate>,
}

/// One field of a [`SchemaTemplate`].
#[derive(Clone, Debug)]
pub struct FieldTemplate {
    /// The field's name in the document (after serde's renames).
    pub name: &'static str,
    /// The field's name in the Rust type.
    pub rust_field: &'static str,
    /// What the field is.
    pub shape: FieldShape,
}

/// What a [`FieldTemplate`] is.
#[derive(Clone, Debug)]
pub enum FieldShape {
    /// An encrypted field.
    Encrypted {
        /// The algorithm.
        algorithm: Algorithm,
        /// The field's own key (else the type's).
        key: Option<KeySpec>,
        /// The BSON type of its value.
        bson_type: ElementType,
    },
    /// A Queryable Encryption field (`#[encrypted(queryable = …)]`).
    Queryable {
        /// The field's own data key: an id or an alternate name (Queryable
        /// Encryption takes one key per field, never the type's).
        key: KeySpec,
        /// The BSON type of its value.
        bson_type: ElementType,
        /// The queries it supports.
        index: QueryIndex,
    },
    /// A plain field whose type may hold encrypted fields.
    Nested(Nested),
    /// A `#[serde(flatten)]` field: its fields are written into this
    /// document, where the type's schema does not describe them.
    Flattened(Nested),
    /// A field whose value is written some other way than its type's
    /// schema says: it must not hold encrypted fields.
    Opaque {
        /// What its type holds, when the type has a schema (else
        /// [`Nested::None`]).
        nested: Nested,
        /// Why the type's schema does not describe what is written.
        reason: OpaqueReason,
    },
}

/// The queries a [`FieldShape::Queryable`] field supports, as the derive
/// wrote them: the `queries` of its `encryptedFields` entry. Options left
/// `None` take the server's defaults (contention 8, sparsity 2, the trim
/// factor libmongocrypt computes, an integer type's limits as bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QueryIndex {
    /// `queryable = "none"`: encrypted, not queryable (no `queries`).
    Unindexed,
    /// `queryable = "equality"`.
    Equality {
        /// The maximum contention factor (`contention`).
        contention: Option<i64>,
    },
    /// `queryable = "range"`.
    Range(RangeSpec),
}

/// The options of a range index (`queryable = "range"`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct RangeSpec {
    /// The maximum contention factor (`contention`).
    pub contention: Option<i64>,
    /// The smallest indexed value (`min`).
    pub min: Option<RangeBound>,
    /// The largest indexed value (`max`).
    pub max: Option<RangeBound>,
    /// `sparsity`.
    pub sparsity: Option<i64>,
    /// `trimFactor` (`trim_factor`).
    pub trim_factor: Option<i32>,
    /// `precision` (double only).
    pub precision: Option<i32>,
}

/// A range bound as written in the attribute: its BSON value is the
/// field's type (an `Int` bound of a `date` field is milliseconds since the
/// epoch, of a `double` field the same number as a double).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeBound {
    /// An integer literal.
    Int(i64),
    /// A floating-point literal.
    Float(f64),
}

impl RangeBound {
    /// The bound as a value of the BSON type `ty`, if it is one: an `Int`
    /// for `int` (when it fits), `long`, `date` and `double` (when exact,
    /// |v| ≤ 2^53), a finite `Float` for `double`.
    pub fn to_bson(self, ty: ElementType) -> Option<Bson> {
        match (self, ty) {
            (RangeBound::Int(v), ElementType::Int32) => i32::try_from(v).ok().map(Bson::Int32),
            (RangeBound::Int(v), ElementType::Int64) => Some(Bson::Int64(v)),
            (RangeBound::Int(v), ElementType::DateTime) => {
                Some(Bson::DateTime(bson::DateTime::from_millis(v)))
            }
            // Exact: every integer of magnitude up to 2^53 is a double.
            (RangeBound::Int(v), ElementType::Double) if v.unsigned_abs() <= 1 << 53 => {
                Some(Bson::Double(v as f64))
            }
            (RangeBound::Float(v), ElementType::Double) if v.is_finite() => Some(Bson::Double(v)),
            _ => None,
        }
    }
}

/// Why a field is [`FieldShape::Opaque`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpaqueReason {
    /// `#[encrypted(plain)]`: the field is declared to hold no encrypted
    /// field.
    DeclaredPlain,
    /// serde's `with`/`serialize_with` writes the field.
    CustomSerializer,
}

/// The type of a plain field, seen through wrappers and collections:
/// whether it holds a type deriving [`Encrypted`], and how. The nested
/// template is built on demand (a type may contain itself).
#[derive(Clone, Copy, Debug)]
pub enum Nested {
    /// It does not: a type known to be plain.
    None,
    /// A struct deriving `Encrypted` (possibly behind `Option`, `Box`,
    /// `Rc`, `Mutex`, a transparent newtype, …).
    Object(fn() -> SchemaTemplate),
    /// A sequence (or tuple) of such values.
    Array(fn() -> SchemaTemplate),
    /// A map whose keys or values are such values.
    Map(fn() -> SchemaTemplate),
    /// An enum whose variants hold such values.
    Enum(fn() -> SchemaTemplate),
}

impl Nested {
    fn template(&self) -> Option<SchemaTemplate> {
        match self {
            Nested::None => None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) | Nested::Enum(t) => Some(t()),
        }
    }
}

/// The types a field of a type deriving [`Encrypted`] may have without
/// `#[encrypted(…)]`: types known to be plain, types deriving `Encrypted`,
/// and wrappers and collections of them. A field of any other type does
/// not compile (fail closed: a type csfle cannot see into might hold
/// encrypted fields); `#[encrypted(plain)]` on the field declares a
/// foreign type plain.
#[diagnostic::on_unimplemented(
    message = "csfle cannot tell whether `{Self}` holds encrypted fields",
    label = "neither known to be plain nor deriving `Encrypted`",
    note = "derive `Encrypted` on `{Self}` (without `#[encrypted]` fields it is plain), or, if it is a foreign type that holds no encrypted field, mark the field `#[encrypted(plain)]`"
)]
pub trait FieldSchema {
    /// What the type holds.
    fn nested() -> Nested;
}

/// A type an `EncryptedCollection` may hold (the bound of
/// `EncryptedDatabase::collection` and its siblings, feature `driver`).
///
/// `#[derive(Encrypted)]` implements it: a collection of such a type whose
/// schema has encrypted fields refuses every operation until the namespace
/// is opened with `EncryptedDatabase::typed_collection`, which registers
/// the type's schema (so a derived type is never written or queried
/// without it). `bson::Document`, `bson::RawDocumentBuf`, `bson::Bson` and
/// `serde_json::Value` implement it with no schema of their own.
///
/// A plain serde type opts in with an empty impl:
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Visit {
///     room: u32,
/// }
/// impl csfle::CollectionDocument for Visit {}
/// ```
///
/// It then declares no schema of its own: the namespace's schema map entry
/// or server `$jsonSchema` alone decides what is encrypted, as for
/// `bson::Document`. Implement it by hand only for types that hold no type
/// deriving `Encrypted`; deriving `Encrypted` on a type without
/// `#[encrypted]` fields also makes it a document type, with its fields
/// checked.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not declared as a document type of an encrypted collection",
    label = "no `CollectionDocument` for this type",
    note = "derive `csfle::Encrypted` on it and open the collection with `typed_collection`, or, for a plain type whose namespace's schema map or server schema says what is encrypted, declare it with an empty `impl csfle::CollectionDocument for {Self}`"
)]
pub trait CollectionDocument {
    /// The schema the type declares (`#[derive(Encrypted)]`), if any.
    fn declared_schema() -> Option<DeclaredSchema> {
        None
    }
}

/// The schema a [`CollectionDocument`] declares.
#[derive(Clone, Copy, Debug)]
pub struct DeclaredSchema {
    /// The type, to match the namespace's registered typed collection.
    pub type_id: std::any::TypeId,
    /// The type's name, for messages.
    pub rust_type: &'static str,
    /// The type's template.
    pub template: fn() -> SchemaTemplate,
}

impl DeclaredSchema {
    /// The schema of `T`.
    pub fn of<T: Encrypted + 'static>() -> Self {
        DeclaredSchema {
            type_id: std::any::TypeId::of::<T>(),
            rust_type: std::any::type_name::<T>(),
            template: T::schema_template,
        }
    }
}

impl CollectionDocument for bson::Document {}
impl CollectionDocument for bson::RawDocumentBuf {}
impl CollectionDocument for Bson {}
impl CollectionDocument for serde_json::Value {}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(impl FieldSchema for $t {
            fn nested() -> Nested {
                Nested::None
            }
        })*
    };
}

// The plain types (the table in the derive's documentation).
plain! {
    bool, char, (),
    i8, i16, i32, i64, i128, isize,
    u8, u16, u32, u64, u128, usize,
    f32, f64,
    str, String,
    std::num::NonZeroI8, std::num::NonZeroI16, std::num::NonZeroI32, std::num::NonZeroI64,
    std::num::NonZeroI128, std::num::NonZeroIsize,
    std::num::NonZeroU8, std::num::NonZeroU16, std::num::NonZeroU32, std::num::NonZeroU64,
    std::num::NonZeroU128, std::num::NonZeroUsize,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicI32, std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicU32, std::sync::atomic::AtomicU64,
    std::net::IpAddr, std::net::Ipv4Addr, std::net::Ipv6Addr,
    std::net::SocketAddr, std::net::SocketAddrV4, std::net::SocketAddrV6,
    std::time::Duration, std::time::SystemTime,
    std::path::Path, std::path::PathBuf,
    std::ffi::OsStr, std::ffi::OsString,
    Bson, bson::Document, bson::RawDocumentBuf, bson::RawDocument,
    bson::RawArrayBuf, bson::RawArray, bson::RawBson,
    bson::DateTime, bson::oid::ObjectId, bson::Uuid, bson::Binary,
    bson::Decimal128, bson::Timestamp, bson::Regex,
    bson::JavaScriptCodeWithScope, bson::DbPointer, bson::RawJavaScriptCodeWithScope,
    serde_bytes::ByteBuf, serde_bytes::Bytes,
    serde_json::Value,
}

impl<const N: usize> FieldSchema for serde_bytes::ByteArray<N> {
    fn nested() -> Nested {
        Nested::None
    }
}

// `PhantomData` is written as a unit, whatever it names.
impl<T: ?Sized> FieldSchema for std::marker::PhantomData<T> {
    fn nested() -> Nested {
        Nested::None
    }
}

impl SchemaTemplate {
    /// Whether any field, at any depth, is encrypted.
    pub fn has_encrypted_fields(&self) -> bool {
        self.encrypts(&mut Vec::new())
    }

    /// `has_encrypted_fields`, with the types being walked (a type met
    /// again adds nothing new).
    fn encrypts(&self, walking: &mut Vec<&'static str>) -> bool {
        if walking.contains(&self.rust_type) {
            return false;
        }
        walking.push(self.rust_type);
        let found = self.fields.iter().any(|f| match &f.shape {
            FieldShape::Encrypted { .. } | FieldShape::Queryable { .. } => true,
            FieldShape::Nested(n)
            | FieldShape::Flattened(n)
            | FieldShape::Opaque { nested: n, .. } => {
                n.template().is_some_and(|t| t.encrypts(walking))
            }
        });
        walking.pop();
        found
    }

    /// Every key alternate name the schema names, once each, in order.
    pub fn key_alt_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        self.collect_alt_names(&mut out, &mut Vec::new());
        out
    }

    fn collect_alt_names(&self, out: &mut Vec<&'static str>, walking: &mut Vec<&'static str>) {
        if walking.contains(&self.rust_type) {
            return;
        }
        walking.push(self.rust_type);
        fn add(out: &mut Vec<&'static str>, k: &Option<KeySpec>) {
            if let Some(KeySpec::AltName(n)) = k
                && !out.contains(n)
            {
                out.push(n);
            }
        }
        add(out, &self.key);
        for f in &self.fields {
            match &f.shape {
                FieldShape::Encrypted { key, .. } => add(out, key),
                FieldShape::Queryable { key, .. } => add(out, &Some(*key)),
                FieldShape::Nested(n) => {
                    if let Some(t) = n.template() {
                        t.collect_alt_names(out, walking);
                    }
                }
                FieldShape::Flattened(_) | FieldShape::Opaque { .. } => {}
            }
        }
        walking.pop();
    }

    /// The `$jsonSchema` of the type: `bsonType: "object"`, the encrypted
    /// fields under `properties` (nested types as nested objects), the
    /// type's key as `encryptMetadata`. Alternate names go through
    /// `resolve` (name → key id; `None`: no such key).
    ///
    /// Refused: a field with no key anywhere, an alternate name that does
    /// not resolve, encrypted fields the schema could not describe
    /// (inside a sequence or map, flattened into the parent, or in a type
    /// that contains itself), and Queryable Encryption fields (their type
    /// has [`encrypted_fields`](Self::encrypted_fields) instead).
    pub fn to_json_schema(
        &self,
        resolve: &dyn Fn(&str) -> Option<KeyId>,
    ) -> Result<Document, Error> {
        self.object(resolve, false, "", &mut Vec::new())
    }

    fn object(
        &self,
        resolve: &dyn Fn(&str) -> Option<KeyId>,
        key_above: bool,
        path: &str,
        walking: &mut Vec<&'static str>,
    ) -> Result<Document, Error> {
        let refuse = |field: &FieldTemplate, reason: String| Error::Type {
            rust_type: self.rust_type,
            field: field.rust_field,
            reason,
        };
        walking.push(self.rust_type);
        let has_key = self.key.is_some() || key_above;
        let mut properties = Document::new();
        for f in &self.fields {
            let field_path = super::child_path(path, f.name);
            match &f.shape {
                FieldShape::Encrypted {
                    algorithm,
                    key,
                    bson_type,
                } => {
                    let mut encrypt = Document::new();
                    match key {
                        Some(k) => {
                            encrypt.insert("keyId", key_json(k, resolve, self, f)?);
                        }
                        None if has_key => {}
                        None => {
                            return Err(refuse(
                                f,
                                format!(
                                    "'{field_path}' is encrypted but no key is named for it, \
                                     on its type or on a type containing it"
                                ),
                            ));
                        }
                    }
                    encrypt.insert("bsonType", crate::ciphertext::type_name(*bson_type));
                    encrypt.insert("algorithm", algorithm.name());
                    properties.insert(f.name, doc! { "encrypt": encrypt });
                }
                FieldShape::Queryable { .. } => {
                    return Err(refuse(
                        f,
                        format!(
                            "'{field_path}' is a Queryable Encryption field \
                             (`#[encrypted(queryable = …)]`): a type with Queryable \
                             Encryption fields has an encryptedFields, not an FLE1 \
                             $jsonSchema, and one collection uses one scheme"
                        ),
                    ));
                }
                FieldShape::Nested(n) => {
                    let Some(t) = n.template().filter(|t| t.has_encrypted_fields()) else {
                        continue;
                    };
                    if walking.contains(&t.rust_type) {
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' holds a `{}` inside a `{}`, and it has \
                                 encrypted fields: a schema cannot describe unbounded depth",
                                t.rust_type, t.rust_type
                            ),
                        ));
                    }
                    match n {
                        Nested::Object(_) => {}
                        Nested::Enum(_) => {
                            return Err(refuse(
                                f,
                                format!(
                                    "'{field_path}' holds the enum `{}`, and a variant of it \
                                     holds encrypted fields: a schema cannot say which variant \
                                     is written; encrypt the whole field instead",
                                    t.rust_type
                                ),
                            ));
                        }
                        Nested::Array(_) | Nested::Map(_) | Nested::None => {
                            return Err(refuse(
                                f,
                                format!(
                                    "'{field_path}' holds `{}` values in a sequence or map (or \
                                     a tuple), and `{}` has encrypted fields: FLE1 schemas cannot \
                                     encrypt fields inside arrays or under arbitrary names; \
                                     encrypt the whole field instead",
                                    t.rust_type, t.rust_type
                                ),
                            ));
                        }
                    }
                    properties.insert(f.name, t.object(resolve, has_key, &field_path, walking)?);
                }
                FieldShape::Opaque { nested, reason } => {
                    if let Some(t) = nested.template().filter(|t| t.has_encrypted_fields()) {
                        let how = match reason {
                            OpaqueReason::DeclaredPlain => "is declared `#[encrypted(plain)]`",
                            OpaqueReason::CustomSerializer => {
                                "is written by serde's `with`/`serialize_with`"
                            }
                        };
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' {how}, but `{}` has encrypted fields: they \
                                 would be stored in plaintext",
                                t.rust_type
                            ),
                        ));
                    }
                }
                FieldShape::Flattened(n) => {
                    if let Some(t) = n.template().filter(|t| t.has_encrypted_fields()) {
                        return Err(refuse(
                            f,
                            format!(
                                "`#[serde(flatten)]` on '{field_path}' would write the \
                                 encrypted fields of `{}` where the schema does not name them",
                                t.rust_type
                            ),
                        ));
                    }
                }
            }
        }
        walking.pop();
        let mut schema = doc! { "bsonType": "object" };
        if let Some(k) = &self.key {
            let key = key_json(k, resolve, self, &type_level())?;
            schema.insert("encryptMetadata", doc! { "keyId": key });
        }
        schema.insert("properties", properties);
        Ok(schema)
    }
}

fn type_level() -> FieldTemplate {
    FieldTemplate {
        name: "",
        rust_field: "<type>",
        shape: FieldShape::Nested(Nested::None),
    }
}

fn key_json(
    key: &KeySpec,
    resolve: &dyn Fn(&str) -> Option<KeyId>,
    owner: &SchemaTemplate,
    field: &FieldTemplate,
) -> Result<Bson, Error> {
    let id = match key {
        KeySpec::Pointer(p) => return Ok(Bson::String((*p).to_owned())),
        KeySpec::Id(bytes) => KeyId::from_bytes(*bytes),
        KeySpec::AltName(name) => resolve(name).ok_or_else(|| Error::Type {
            rust_type: owner.rust_type,
            field: field.rust_field,
            reason: format!("no data key has the alternate name '{name}'"),
        })?,
    };
    Ok(Bson::Array(vec![Bson::Binary(id.to_binary())]))
}

impl SchemaTemplate {
    /// Whether any field, at any depth, is a Queryable Encryption field.
    pub fn has_queryable_fields(&self) -> bool {
        self.reaches_queryable(&mut Vec::new())
    }

    fn reaches_queryable(&self, walking: &mut Vec<&'static str>) -> bool {
        if walking.contains(&self.rust_type) {
            return false;
        }
        walking.push(self.rust_type);
        let found = self.fields.iter().any(|f| match &f.shape {
            FieldShape::Queryable { .. } => true,
            FieldShape::Encrypted { .. } => false,
            FieldShape::Nested(n)
            | FieldShape::Flattened(n)
            | FieldShape::Opaque { nested: n, .. } => {
                n.template().is_some_and(|t| t.reaches_queryable(walking))
            }
        });
        walking.pop();
        found
    }

    /// The type's Queryable Encryption `encryptedFields`:
    /// `{fields: [{path, keyId | keyAltName, bsonType, queries?}, …]}`, one
    /// entry per [`FieldShape::Queryable`] field in field order, a nested
    /// type's fields at dotted paths below the field holding it (what
    /// `EncryptedFields::parse` reads in its `Map` mode, feature `qe`).
    /// Only the options the attributes set are written; the server fills
    /// the others. `Ok(None)` for a type without Queryable Encryption
    /// fields.
    ///
    /// Refused, naming the type and field: an FLE1 field reached from a
    /// type with Queryable Encryption fields (one collection uses one
    /// scheme), Queryable Encryption fields a path cannot name (inside a
    /// sequence, map or enum, flattened, declared plain, in a type that
    /// contains itself, or below a field whose name holds a `.` or starts
    /// with `$`), a key named by a pointer, and a range bound that is no
    /// value of the field's BSON type.
    pub fn encrypted_fields(&self) -> Result<Option<Document>, Error> {
        if !self.has_queryable_fields() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        self.queryable_fields("", &mut Vec::new(), &mut fields)?;
        let mut document = Document::new();
        document.insert(
            "fields",
            Bson::Array(fields.into_iter().map(Bson::Document).collect()),
        );
        Ok(Some(document))
    }

    fn queryable_fields(
        &self,
        path: &str,
        walking: &mut Vec<&'static str>,
        out: &mut Vec<Document>,
    ) -> Result<(), Error> {
        let refuse = |field: &FieldTemplate, reason: String| Error::Type {
            rust_type: self.rust_type,
            field: field.rust_field,
            reason,
        };
        walking.push(self.rust_type);
        for f in &self.fields {
            let field_path = super::child_path(path, f.name);
            match &f.shape {
                FieldShape::Queryable {
                    key,
                    bson_type,
                    index,
                } => {
                    if let Some(problem) = segment_problem(f.name) {
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' cannot be a Queryable Encryption path: the \
                                 field's name {problem}"
                            ),
                        ));
                    }
                    let entry = queryable_entry(&field_path, key, *bson_type, index)
                        .map_err(|reason| refuse(f, reason))?;
                    out.push(entry);
                }
                FieldShape::Encrypted { .. } => {
                    return Err(refuse(
                        f,
                        format!(
                            "'{field_path}' is an FLE1 field (`deterministic` or `random`) \
                             in a document with Queryable Encryption fields: one collection \
                             uses one scheme"
                        ),
                    ));
                }
                FieldShape::Nested(n) => {
                    let Some(t) = n.template().filter(|t| t.has_encrypted_fields()) else {
                        continue;
                    };
                    if walking.contains(&t.rust_type) {
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' holds a `{}` inside a `{}`, and it has \
                                 encrypted fields: encryptedFields cannot name unbounded depth",
                                t.rust_type, t.rust_type
                            ),
                        ));
                    }
                    match n {
                        Nested::Object(_) => {
                            if let Some(problem) = segment_problem(f.name) {
                                return Err(refuse(
                                    f,
                                    format!(
                                        "'{field_path}' holds encrypted fields, but the \
                                         field's name {problem}: no path can name them"
                                    ),
                                ));
                            }
                            t.queryable_fields(&field_path, walking, out)?;
                        }
                        Nested::Enum(_) => {
                            return Err(refuse(
                                f,
                                format!(
                                    "'{field_path}' holds the enum `{}`, and a variant of it \
                                     holds encrypted fields: a path cannot say which variant \
                                     is written",
                                    t.rust_type
                                ),
                            ));
                        }
                        Nested::Array(_) | Nested::Map(_) | Nested::None => {
                            return Err(refuse(
                                f,
                                format!(
                                    "'{field_path}' holds `{}` values in a sequence or map (or \
                                     a tuple), and `{}` has encrypted fields: Queryable \
                                     Encryption cannot encrypt fields inside arrays or under \
                                     arbitrary names; encrypt the whole field instead",
                                    t.rust_type, t.rust_type
                                ),
                            ));
                        }
                    }
                }
                FieldShape::Opaque { nested, reason } => {
                    if let Some(t) = nested.template().filter(|t| t.has_encrypted_fields()) {
                        let how = match reason {
                            OpaqueReason::DeclaredPlain => "is declared `#[encrypted(plain)]`",
                            OpaqueReason::CustomSerializer => {
                                "is written by serde's `with`/`serialize_with`"
                            }
                        };
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' {how}, but `{}` has encrypted fields: they \
                                 would be stored in plaintext",
                                t.rust_type
                            ),
                        ));
                    }
                }
                FieldShape::Flattened(n) => {
                    if let Some(t) = n.template().filter(|t| t.has_encrypted_fields()) {
                        return Err(refuse(
                            f,
                            format!(
                                "`#[serde(flatten)]` on '{field_path}' would write the \
                                 encrypted fields of `{}` where encryptedFields does not name \
                                 them",
                                t.rust_type
                            ),
                        ));
                    }
                }
            }
        }
        walking.pop();
        Ok(())
    }
}

/// Why a field's name cannot be one segment of an `encryptedFields` path
/// (the server reads `.` as nesting: a name holding one would be a path to
/// another field, and the value written under the name would go out in
/// plaintext).
fn segment_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('.') {
        Some("contains '.', which a path reads as nesting")
    } else if name.starts_with('$') {
        Some("starts with '$'")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else {
        None
    }
}

/// One entry of `encryptedFields.fields`.
fn queryable_entry(
    path: &str,
    key: &KeySpec,
    bson_type: ElementType,
    index: &QueryIndex,
) -> Result<Document, String> {
    let type_name = crate::ciphertext::type_name(bson_type);
    let mut entry = doc! { "path": path };
    match key {
        KeySpec::Id(bytes) => {
            entry.insert("keyId", KeyId::from_bytes(*bytes).to_binary());
        }
        KeySpec::AltName(name) => {
            entry.insert("keyAltName", *name);
        }
        KeySpec::Pointer(_) => {
            return Err(format!(
                "'{path}' names its key by a JSON pointer: a Queryable Encryption field \
                 names one fixed key"
            ));
        }
    }
    entry.insert("bsonType", type_name);
    match index {
        QueryIndex::Unindexed => {}
        QueryIndex::Equality { contention } => {
            let mut queries = doc! { "queryType": "equality" };
            if let Some(c) = contention {
                queries.insert("contention", *c);
            }
            entry.insert("queries", queries);
        }
        QueryIndex::Range(range) => {
            // In the order of the specification's range encryptedFields.
            let mut queries = doc! { "queryType": "range" };
            if let Some(c) = range.contention {
                queries.insert("contention", c);
            }
            if let Some(t) = range.trim_factor {
                queries.insert("trimFactor", t);
            }
            if let Some(s) = range.sparsity {
                queries.insert("sparsity", s);
            }
            for (name, bound) in [("min", range.min), ("max", range.max)] {
                if let Some(bound) = bound {
                    let value = bound.to_bson(bson_type).ok_or_else(|| {
                        format!(
                            "'{path}': the range bound `{name}` ({bound:?}) is not a value of \
                             the field's bsonType '{type_name}'"
                        )
                    })?;
                    queries.insert(name, value);
                }
            }
            if let Some(p) = range.precision {
                queries.insert("precision", p);
            }
            entry.insert("queries", queries);
        }
    }
    Ok(entry)
}

/// What the derive's generated code calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::{
        CollectionDocument, DeclaredSchema, Encrypted, EncryptedBsonType, FieldSchema, FieldShape,
        FieldTemplate, KeySpec, Nested, OpaqueReason, QueryIndex, RangeBound, RangeSpec,
        SchemaTemplate,
    };
    pub use crate::ciphertext::deterministic_allows;
    pub use crate::crypto::Algorithm;
    pub use bson::spec::ElementType;
    use std::marker::PhantomData;
    pub use std::vec;

    // The derive's compile-time checks of Queryable Encryption fields:
    // `const` items that panic (a compile error naming the field) when one
    // of these is false for the field's BSON type. The server and
    // `EncryptedFields::parse` check the same again when the collection is
    // opened.

    /// Whether `queryable = "equality"` takes values of `ty`: int, long,
    /// string, bool, objectId, date, binData.
    pub const fn equality_allows(ty: ElementType) -> bool {
        matches!(
            ty,
            ElementType::Int32
                | ElementType::Int64
                | ElementType::String
                | ElementType::Boolean
                | ElementType::ObjectId
                | ElementType::DateTime
                | ElementType::Binary
        )
    }

    /// Whether `queryable = "range"` takes values of `ty`: int, long,
    /// double, decimal, date.
    pub const fn range_allows(ty: ElementType) -> bool {
        matches!(
            ty,
            ElementType::Int32
                | ElementType::Int64
                | ElementType::Double
                | ElementType::Decimal128
                | ElementType::DateTime
        )
    }

    /// Whether `queryable = "none"` takes values of `ty`: those of
    /// equality and range, and objects and arrays (encrypted whole).
    pub const fn unindexed_allows(ty: ElementType) -> bool {
        equality_allows(ty)
            || range_allows(ty)
            || matches!(ty, ElementType::EmbeddedDocument | ElementType::Array)
    }

    /// Whether an integer range bound is a value of `ty`: an int32 for
    /// `int`, any for `long` and `date` (milliseconds), an exact double
    /// (|v| ≤ 2^53) for `double`.
    pub const fn range_int_bound_fits(ty: ElementType, v: i64) -> bool {
        match ty {
            ElementType::Int32 => v >= i32::MIN as i64 && v <= i32::MAX as i64,
            ElementType::Int64 | ElementType::DateTime => true,
            ElementType::Double => v.unsigned_abs() <= 1 << 53,
            _ => false,
        }
    }

    /// Whether a floating-point range bound is a value of `ty` (`double`).
    pub const fn range_float_bound_fits(ty: ElementType) -> bool {
        matches!(ty, ElementType::Double)
    }

    /// Whether a range index on `ty` takes bounds without a precision
    /// (`int`, `long`, `date`; `double` needs one with its bounds, and
    /// csfle does not support `decimal` with either).
    pub const fn range_bounds_without_precision(ty: ElementType) -> bool {
        matches!(
            ty,
            ElementType::Int32 | ElementType::Int64 | ElementType::DateTime
        )
    }

    /// Whether a range index on `ty` takes a precision: `double` (csfle
    /// does not support `decimal` with one).
    pub const fn range_precision_allowed(ty: ElementType) -> bool {
        matches!(ty, ElementType::Double)
    }

    /// Whether `trim_factor` fits the domain of a range index on `ty`
    /// without bounds (its type's: 32 bits for `int`, 64 for `long`,
    /// `date` and `double`, 128 for `decimal`): 0, or below the bits.
    pub const fn range_trim_factor_fits(ty: ElementType, trim_factor: i32) -> bool {
        let bits: i64 = match ty {
            ElementType::Int32 => 32,
            ElementType::Int64 | ElementType::DateTime | ElementType::Double => 64,
            ElementType::Decimal128 => 128,
            _ => return false,
        };
        trim_factor == 0 || (trim_factor > 0 && (trim_factor as i64) < bits)
    }

    fn as_array(n: Nested) -> Nested {
        match n {
            Nested::None => Nested::None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) | Nested::Enum(t) => {
                Nested::Array(t)
            }
        }
    }

    fn as_map(n: Nested) -> Nested {
        match n {
            Nested::None => Nested::None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) | Nested::Enum(t) => {
                Nested::Map(t)
            }
        }
    }

    /// The nested shape of a type deriving `Encrypted` (what the derive's
    /// `FieldSchema` impl returns).
    pub fn object_of<T: Encrypted>() -> Nested {
        Nested::Object(T::schema_template)
    }

    /// A template listing `parts` (the elements of a tuple, the fields of
    /// an enum's variants) as plain fields, for the refusals: it has
    /// encrypted fields when one of the parts does.
    pub fn parts_template(
        rust_type: &'static str,
        parts: vec::Vec<(&'static str, Nested)>,
    ) -> SchemaTemplate {
        SchemaTemplate {
            rust_type,
            key: None,
            inherit_key: true,
            fields: parts
                .into_iter()
                .map(|(name, nested)| FieldTemplate {
                    name,
                    rust_field: name,
                    shape: FieldShape::Nested(nested),
                })
                .collect(),
        }
    }

    /// What a tuple struct of several fields holds: an array of its
    /// parts, when one of them has a schema.
    pub fn tuple_of(parts: fn() -> SchemaTemplate) -> Nested {
        if parts_hold_schemas(parts) {
            Nested::Array(parts)
        } else {
            Nested::None
        }
    }

    /// What an enum holds: its variants' fields, when one of them has a
    /// schema.
    pub fn enum_of(parts: fn() -> SchemaTemplate) -> Nested {
        if parts_hold_schemas(parts) {
            Nested::Enum(parts)
        } else {
            Nested::None
        }
    }

    fn parts_hold_schemas(parts: fn() -> SchemaTemplate) -> bool {
        parts().fields.iter().any(|f| {
            !matches!(
                f.shape,
                FieldShape::Nested(Nested::None)
                    | FieldShape::Opaque {
                        nested: Nested::None,
                        ..
                    }
            )
        })
    }

    // Wrappers that serialize as what they hold.
    macro_rules! content {
        ($($w:ident)::+) => {
            impl<T: FieldSchema + ?Sized> FieldSchema for $($w)::+<T> {
                fn nested() -> Nested {
                    T::nested()
                }
            }
        };
    }
    content!(Box);
    content!(std::sync::Arc);
    content!(std::rc::Rc);
    content!(std::sync::Weak);
    content!(std::rc::Weak);
    content!(std::cell::RefCell);
    content!(std::sync::Mutex);
    content!(std::sync::RwLock);

    impl<T: FieldSchema> FieldSchema for Option<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema + Copy> FieldSchema for std::cell::Cell<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema> FieldSchema for std::cmp::Reverse<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema> FieldSchema for std::num::Wrapping<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema> FieldSchema for std::num::Saturating<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema + ?Sized> FieldSchema for &T {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema + ?Sized> FieldSchema for &mut T {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: FieldSchema + ToOwned + ?Sized> FieldSchema for std::borrow::Cow<'_, T> {
        fn nested() -> Nested {
            T::nested()
        }
    }

    // Sequences: arrays.
    macro_rules! sequence {
        ($($w:ty),*) => {$(
            impl<T: FieldSchema> FieldSchema for $w {
                fn nested() -> Nested {
                    as_array(T::nested())
                }
            }
        )*};
    }
    sequence!(
        Vec<T>,
        [T],
        std::collections::VecDeque<T>,
        std::collections::LinkedList<T>,
        std::collections::BinaryHeap<T>,
        std::collections::BTreeSet<T>
    );

    impl<T: FieldSchema, const N: usize> FieldSchema for [T; N] {
        fn nested() -> Nested {
            as_array(T::nested())
        }
    }

    impl<T: FieldSchema, S> FieldSchema for std::collections::HashSet<T, S> {
        fn nested() -> Nested {
            as_array(T::nested())
        }
    }

    /// A map's keys are written as names; a key that is a derived type is
    /// refused as its values are.
    fn map_of(key: Nested, value: Nested) -> Nested {
        match (key, value) {
            (Nested::None, v) => as_map(v),
            (k, _) => as_map(k),
        }
    }

    impl<K: FieldSchema, T: FieldSchema> FieldSchema for std::collections::BTreeMap<K, T> {
        fn nested() -> Nested {
            map_of(K::nested(), T::nested())
        }
    }

    impl<K: FieldSchema, T: FieldSchema, S> FieldSchema for std::collections::HashMap<K, T, S> {
        fn nested() -> Nested {
            map_of(K::nested(), T::nested())
        }
    }

    fn result_parts<T: FieldSchema, E: FieldSchema>() -> SchemaTemplate {
        parts_template(
            std::any::type_name::<Result<T, E>>(),
            vec![("Ok", T::nested()), ("Err", E::nested())],
        )
    }

    // `Result` is written as an enum (`{"Ok": …}`).
    impl<T: FieldSchema, E: FieldSchema> FieldSchema for Result<T, E> {
        fn nested() -> Nested {
            match (T::nested(), E::nested()) {
                (Nested::None, Nested::None) => Nested::None,
                _ => Nested::Enum(result_parts::<T, E>),
            }
        }
    }

    /// The elements of a tuple.
    pub trait Parts {
        /// Each element's name and what it holds.
        fn parts() -> vec::Vec<(&'static str, Nested)>;
    }

    fn parts_of<T: Parts + ?Sized>() -> SchemaTemplate {
        parts_template(std::any::type_name::<T>(), T::parts())
    }

    // Tuples are written as arrays.
    macro_rules! tuple {
        ($($name:ident $t:ident),+) => {
            impl<$($t: FieldSchema),+> Parts for ($($t,)+) {
                fn parts() -> vec::Vec<(&'static str, Nested)> {
                    vec![$((stringify!($name), $t::nested())),+]
                }
            }
            impl<$($t: FieldSchema),+> FieldSchema for ($($t,)+) {
                fn nested() -> Nested {
                    if Self::parts().iter().all(|(_, n)| matches!(n, Nested::None)) {
                        Nested::None
                    } else {
                        Nested::Array(parts_of::<Self>)
                    }
                }
            }
        };
    }
    tuple!(e0 A);
    tuple!(e0 A, e1 B);
    tuple!(e0 A, e1 B, e2 C);
    tuple!(e0 A, e1 B, e2 C, e3 D);
    tuple!(e0 A, e1 B, e2 C, e3 D, e4 E);
    tuple!(e0 A, e1 B, e2 C, e3 D, e4 E, e5 F);
    tuple!(e0 A, e1 B, e2 C, e3 D, e4 E, e5 F, e6 G);
    tuple!(e0 A, e1 B, e2 C, e3 D, e4 E, e5 F, e6 G, e7 H);

    /// The probe for the type of a field serde writes some other way than
    /// its type says (`#[encrypted(plain)]`, `with`): `(&&Probe::<T>::new())
    /// .nested()` finds the [`FieldSchema`] impl when `T` has one (through
    /// the by-reference impl, which method lookup tries first), and
    /// [`Nested::None`] otherwise, so such a field holding a type with
    /// encrypted fields is still refused when the schema is made. The
    /// derive refuses generic types, so every probed type is concrete and
    /// the choice is made for the real type. Every other field needs
    /// `FieldSchema` outright.
    pub struct Probe<T: ?Sized>(PhantomData<T>);

    impl<T: ?Sized> Probe<T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Probe(PhantomData)
        }
    }

    /// Chosen when the probed type has a schema.
    pub trait ViaFieldSchema {
        fn nested(&self) -> Nested;
    }

    impl<T: FieldSchema + ?Sized> ViaFieldSchema for &Probe<T> {
        fn nested(&self) -> Nested {
            T::nested()
        }
    }

    /// Chosen otherwise.
    pub trait ViaOpaque {
        fn nested(&self) -> Nested;
    }

    impl<T: ?Sized> ViaOpaque for Probe<T> {
        fn nested(&self) -> Nested {
            Nested::None
        }
    }
}
