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
    /// A plain field whose type may hold encrypted fields.
    Nested(Nested),
    /// A `#[serde(flatten)]` field: its fields are written into this
    /// document, where the type's schema does not describe them.
    Flattened(Nested),
}

/// The type of a plain field, seen through `Option`, `Box` and
/// collections: whether it derives [`Encrypted`]. The nested template is
/// built on demand (a type may contain itself).
#[derive(Clone, Copy, Debug)]
pub enum Nested {
    /// It does not.
    None,
    /// A struct deriving `Encrypted` (possibly optional or boxed).
    Object(fn() -> SchemaTemplate),
    /// A sequence of such structs.
    Array(fn() -> SchemaTemplate),
    /// A map whose values are such structs.
    Map(fn() -> SchemaTemplate),
}

impl Nested {
    fn template(&self) -> Option<SchemaTemplate> {
        match self {
            Nested::None => None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) => Some(t()),
        }
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
            FieldShape::Encrypted { .. } => true,
            FieldShape::Nested(n) | FieldShape::Flattened(n) => {
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
                FieldShape::Nested(n) => {
                    if let Some(t) = n.template() {
                        t.collect_alt_names(out, walking);
                    }
                }
                FieldShape::Flattened(_) => {}
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
    /// not resolve, and encrypted fields the schema could not describe
    /// (inside a sequence or map, flattened into the parent, or in a type
    /// that contains itself).
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
                    if !matches!(n, Nested::Object(_)) {
                        return Err(refuse(
                            f,
                            format!(
                                "'{field_path}' holds `{}` values in a sequence or map, and \
                                 `{}` has encrypted fields: FLE1 schemas cannot encrypt fields \
                                 inside arrays or under arbitrary names; encrypt the whole \
                                 field instead",
                                t.rust_type, t.rust_type
                            ),
                        ));
                    }
                    properties.insert(f.name, t.object(resolve, has_key, &field_path, walking)?);
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

/// What the derive's generated code calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::{
        Encrypted, EncryptedBsonType, FieldShape, FieldTemplate, KeySpec, Nested, SchemaTemplate,
    };
    pub use crate::ciphertext::deterministic_allows;
    pub use crate::crypto::Algorithm;
    pub use bson::spec::ElementType;
    use std::marker::PhantomData;
    pub use std::vec;

    /// Types that are, or wrap, a type deriving `Encrypted` (the derive
    /// implements it for the type itself).
    pub trait NestedSchema {
        /// The nested type's template, and how it is held.
        fn nested() -> Nested;
    }

    fn as_array(n: Nested) -> Nested {
        match n {
            Nested::None => Nested::None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) => Nested::Array(t),
        }
    }

    fn as_map(n: Nested) -> Nested {
        match n {
            Nested::None => Nested::None,
            Nested::Object(t) | Nested::Array(t) | Nested::Map(t) => Nested::Map(t),
        }
    }

    /// The nested shape of a type deriving `Encrypted` (what the derive's
    /// `NestedSchema` impl returns).
    pub fn object_of<T: Encrypted>() -> Nested {
        Nested::Object(T::schema_template)
    }

    // Wrappers that serialize as what they hold.
    impl<T: NestedSchema> NestedSchema for Option<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: NestedSchema + ?Sized> NestedSchema for Box<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }
    impl<T: NestedSchema + ?Sized> NestedSchema for std::sync::Arc<T> {
        fn nested() -> Nested {
            T::nested()
        }
    }

    macro_rules! sequence {
        ($($w:ty),*) => {$(
            impl<T: NestedSchema> NestedSchema for $w {
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
        std::collections::BTreeSet<T>
    );

    impl<T: NestedSchema, const N: usize> NestedSchema for [T; N] {
        fn nested() -> Nested {
            as_array(T::nested())
        }
    }

    impl<T: NestedSchema, S> NestedSchema for std::collections::HashSet<T, S> {
        fn nested() -> Nested {
            as_array(T::nested())
        }
    }

    impl<K, T: NestedSchema> NestedSchema for std::collections::BTreeMap<K, T> {
        fn nested() -> Nested {
            as_map(T::nested())
        }
    }

    impl<K, T: NestedSchema, S> NestedSchema for std::collections::HashMap<K, T, S> {
        fn nested() -> Nested {
            as_map(T::nested())
        }
    }

    /// The probe for a field's type: `(&&Probe::<T>::new()).nested()`
    /// finds the [`NestedSchema`] impl when `T` has one (through the
    /// by-reference impl, which method lookup tries first), and
    /// [`Nested::None`] otherwise. The derive refuses generic types, so
    /// every probed type is concrete and the choice is made for the real
    /// type.
    pub struct Probe<T: ?Sized>(PhantomData<T>);

    impl<T: ?Sized> Probe<T> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Probe(PhantomData)
        }
    }

    /// Chosen when the probed type holds a derived type.
    pub trait ViaNestedSchema {
        fn nested(&self) -> Nested;
    }

    impl<T: NestedSchema + ?Sized> ViaNestedSchema for &Probe<T> {
        fn nested(&self) -> Nested {
            T::nested()
        }
    }

    /// Chosen otherwise.
    pub trait ViaPlain {
        fn nested(&self) -> Nested;
    }

    impl<T: ?Sized> ViaPlain for Probe<T> {
        fn nested(&self) -> Nested {
            Nested::None
        }
    }
}
