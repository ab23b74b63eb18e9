//! `#[derive(Encrypted)]`: the MongoDB FLE1 encryption schema, or the
//! Queryable Encryption `encryptedFields`, of a Rust type, declared on the
//! type. Use it through `csfle::Encrypted`.
//!
//! ```text
//! #[derive(Serialize, Deserialize, Encrypted)]
//! #[encrypted(key = "patients")]          // the type's default data key
//! struct Patient {
//!     name: String,
//!     #[encrypted(deterministic)]          // bsonType from the field's type
//!     ssn: String,
//!     #[encrypted(random, key = "records")]
//!     record: MedicalRecord,
//!     #[encrypted(random, key_pointer = "/tenant_key")]
//!     notes: String,
//!     address: Address,                    // a type deriving Encrypted
//!     #[encrypted(plain)]
//!     location: geo::Point,                // a foreign type, declared plain
//! }
//! ```
//!
//! On the type: `key = "<alt name or UUID>"`, or `inherit_key` (the type
//! names no key and takes the one of the type that contains it). On a
//! field: `deterministic` or `random`, then optionally one of `key = "…"`
//! and `key_pointer = "/field"` (random only), and `bson_type = "…"` (the
//! `$jsonSchema` type name, for types serde renders differently); or
//! `plain`, for a field of a foreign type that holds no encrypted field.
//! serde's `rename` (its serialize side), `rename_all` (serde's rules,
//! character for character), `skip`, `skip_serializing`, `flatten`,
//! `skip_serializing_if`, `with`, `serialize_with` and `transparent` are
//! read so the schema names what serde writes.
//!
//! # Queryable Encryption
//!
//! A type's fields may instead be Queryable Encryption fields: the type
//! then has the collection's `encryptedFields`
//! (`csfle::schema::typed::SchemaTemplate::encrypted_fields`), no FLE1
//! schema.
//!
//! ```text
//! #[derive(Serialize, Deserialize, Encrypted)]
//! struct Patient {
//!     name: String,
//!     #[encrypted(queryable = "equality", key_alt_name = "ssn-key", contention = 4)]
//!     ssn: String,
//!     #[encrypted(queryable = "range", key_id = "12345678-1234-9876-1234-123456789012",
//!                 min = 0, max = 200, sparsity = 1, trim_factor = 1)]
//!     age: i32,
//!     #[encrypted(queryable = "range", key_alt_name = "weight-key",
//!                 min = 0.0, max = 500.0, precision = 2)]
//!     weight: f64,
//!     #[encrypted(queryable = "none", key_alt_name = "notes-key")]
//!     notes: String,                       // encrypted, not queryable
//!     address: Address,                    // its fields at `address.…`
//! }
//! ```
//!
//! On a field: `queryable = "equality"`, `"range"` or `"none"` (encrypted,
//! not queryable: no `queries`), and its own key, one of `key_id =
//! "<UUID>"`, `key_alt_name = "…"` or `key = "…"` (a UUID is an id, else
//! an alternate name). Queryable Encryption takes one key per field: a
//! type's `key` or `inherit_key` does not apply and is refused beside
//! such fields. Equality takes `contention = N`; range takes `contention`,
//! `min`, `max` (integer or float literals: the field's type, a `date`'s
//! in milliseconds since the epoch), `sparsity` (1 to 4), `trim_factor`
//! and `precision` (a double's, with `min` and `max`). Options not given
//! take the server's defaults. `bson_type = "…"` names the BSON type as
//! for FLE1.
//!
//! The field's BSON type comes from its Rust type, as for FLE1; each query
//! type takes an allow-list, refused at compile time otherwise: equality
//! `int`, `long`, `string`, `bool`, `objectId`, `date`, `binData` (`i32`,
//! `i64`, `String`, `bool`, `ObjectId`, `DateTime`, `Binary`, …); range
//! `int`, `long`, `double`, `decimal`, `date`; `"none"` those and `object`
//! and `array`. Also refused at compile time: a bound that is no value of
//! the field's type, a float bound on an integer field, bounds of a
//! double without `precision`, `precision` on anything but a double
//! (csfle does not support range indexes on `decimal` with bounds or a
//! precision), a trim factor at or above the bits of the domain, `min` not
//! below `max`, an option of another query type, a field serde writes
//! under a name holding `.` or starting with `$`, and FLE1
//! (`deterministic`/`random`) and Queryable Encryption fields in one type.
//! A nested type's Queryable Encryption fields are named by dotted paths
//! below the field holding it; one reaching FLE1 fields through a nested
//! type is refused when either document is made.
//!
//! # Fail closed: every field's type is known
//!
//! A field without `#[encrypted(…)]` is plain only when its type is known
//! to hold no encrypted field: its type must implement
//! `csfle::schema::typed::FieldSchema`, checked at compile time (the error
//! names the field and `#[encrypted(plain)]`). Implemented for:
//!
//! | Types | Schema |
//! |---|---|
//! | `bool`, `char`, `()`, every integer and float, `NonZero*`, the atomics of `bool`, `i32`, `i64`, `u32`, `u64` | plain |
//! | `str`, `String` | plain |
//! | `bson::Bson`, `Document`, `RawDocumentBuf`, `RawDocument`, `RawArrayBuf`, `RawArray`, `RawBson`, `DateTime`, `oid::ObjectId`, `Uuid`, `Binary`, `Decimal128`, `Timestamp`, `Regex`, `JavaScriptCodeWithScope`, `RawJavaScriptCodeWithScope`, `DbPointer`; `serde_json::Value` | plain (what they hold is not described by a type) |
//! | `serde_bytes::ByteBuf`, `Bytes`, `ByteArray<N>` | plain |
//! | `std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6}`, `std::time::{Duration, SystemTime}`, `std::path::{Path, PathBuf}`, `std::ffi::{OsStr, OsString}`, `PhantomData<T>` | plain |
//! | `Option<T>`, `Box<T>`, `Arc<T>`, `Rc<T>`, `sync::Weak<T>`, `rc::Weak<T>`, `Cow<T>`, `Cell<T>`, `RefCell<T>`, `Mutex<T>`, `RwLock<T>`, `Reverse<T>`, `Wrapping<T>`, `Saturating<T>`, `&T`, `&mut T` | `T`'s: serde writes what they hold |
//! | a type deriving `Encrypted`: a struct with named fields | its schema (a nested object) |
//! | a `#[serde(transparent)]` struct or a newtype struct deriving `Encrypted` | its field's |
//! | `Vec<T>`, `[T]`, `[T; N]`, `VecDeque<T>`, `LinkedList<T>`, `BinaryHeap<T>`, `BTreeSet<T>`, `HashSet<T>`, tuples of up to 8, tuple structs deriving `Encrypted` | arrays: refused when they hold encrypted fields |
//! | `BTreeMap<K, V>`, `HashMap<K, V>` | maps: refused when `K` or `V` holds encrypted fields |
//! | `Result<T, E>`, an enum deriving `Encrypted` | enums: refused when a variant holds encrypted fields |
//!
//! Any other type (a foreign struct, an enum not deriving `Encrypted`)
//! does not compile as a plain field. `#[encrypted(plain)]` declares such a
//! field plain; a `plain` field, or a field serde writes with
//! `with`/`serialize_with`, whose type does have encrypted fields is
//! refused when the schema is made. That check sees the field's type
//! itself: a foreign *container* declared `plain` (`SmallVec<[Visit; 4]>`,
//! `IndexMap<String, Visit>`) is taken at its word, so one holding a type
//! with encrypted fields would be written in plaintext. Declare `plain`
//! only on types that hold no type deriving `Encrypted`.
//!
//! The refusals a type cannot express (encrypted fields in arrays, maps,
//! enums, flattened, declared plain, or in a type that contains itself)
//! are made when the schema is made (`SchemaTemplate::to_json_schema`,
//! `typed_collection`), naming the type and field.
//!
//! Refused at compile time, on the offending field: deterministic
//! encryption of a type the specification forbids (floats, `bool`,
//! documents, arrays, …), `key_pointer` with deterministic, encryption of
//! `_id`, an unknown attribute, an encrypted field without a key, an
//! encrypted `Option<T>` that would serialize `None` as `null`, an encrypted
//! field serde skips or flattens, an encrypted field serde writes through
//! `with`/`serialize_with` without a `bson_type`, a type whose BSON type is
//! unknown, a plain field whose type is not known (above), an encrypted
//! field inside an enum, a tuple struct or a transparent struct, serde's
//! `into` and `remote` on the type (serde would write another type than
//! the one the schema describes; `from`/`try_from` only change reading and
//! are fine), a `camelCase` rename of a field serde_derive itself cannot
//! rename, generic types, unions.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Type};

/// Derives `csfle::schema::typed::Encrypted` (see the crate docs).
#[proc_macro_derive(Encrypted, attributes(encrypted))]
pub fn derive_encrypted(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The schema type names `bson_type` accepts, with the `ElementType`
/// variant each means and whether deterministic encryption allows it.
const BSON_TYPES: &[(&str, &str, bool)] = &[
    ("double", "Double", false),
    ("string", "String", true),
    ("object", "EmbeddedDocument", false),
    ("array", "Array", false),
    ("binData", "Binary", true),
    ("objectId", "ObjectId", true),
    ("bool", "Boolean", false),
    ("date", "DateTime", true),
    ("regex", "RegularExpression", true),
    ("dbPointer", "DbPointer", true),
    ("javascript", "JavaScriptCode", true),
    ("symbol", "Symbol", true),
    ("javascriptWithScope", "JavaScriptCodeWithScope", false),
    ("int", "Int32", true),
    ("timestamp", "Timestamp", true),
    ("long", "Int64", true),
    ("decimal", "Decimal128", false),
];

#[derive(Clone)]
enum Key {
    AltName(String),
    Id([u8; 16]),
    Pointer(String),
}

impl Key {
    fn tokens(&self) -> TokenStream2 {
        match self {
            Key::AltName(n) => quote!(__p::KeySpec::AltName(#n)),
            Key::Id(b) => quote!(__p::KeySpec::Id([#(#b),*])),
            Key::Pointer(p) => quote!(__p::KeySpec::Pointer(#p)),
        }
    }

    /// An optional key as an `Option<KeySpec>` expression.
    fn option_tokens(key: &Option<Key>) -> TokenStream2 {
        match key {
            Some(k) => {
                let k = k.tokens();
                quote!(::core::option::Option::Some(#k))
            }
            None => quote!(::core::option::Option::None),
        }
    }
}

/// A UUID in its canonical 8-4-4-4-12 spelling, else `None`.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `key = "…"`: a UUID literal is a key id, anything else an alternate name.
fn parse_key(lit: &LitStr) -> syn::Result<Key> {
    let v = lit.value();
    if v.is_empty() {
        return Err(syn::Error::new(lit.span(), "a key name cannot be empty"));
    }
    Ok(match parse_uuid(&v) {
        Some(b) => Key::Id(b),
        None => Key::AltName(v),
    })
}

struct TypeAttrs {
    key: Option<Key>,
    inherit_key: bool,
    /// The serialize side of serde's `rename_all`.
    rename_all: Option<(String, Span)>,
    transparent: bool,
}

fn type_attrs(input: &DeriveInput) -> syn::Result<TypeAttrs> {
    let mut out = TypeAttrs {
        key: None,
        inherit_key: false,
        rename_all: None,
        transparent: false,
    };
    for attr in &input.attrs {
        if attr.path().is_ident("encrypted") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("key") {
                    if out.key.is_some() {
                        return Err(meta.error("`key` given twice"));
                    }
                    out.key = Some(parse_key(&meta.value()?.parse()?)?);
                } else if meta.path.is_ident("inherit_key") {
                    out.inherit_key = true;
                } else {
                    return Err(meta.error(
                        "unknown `encrypted` attribute on a type: expected `key = \"…\"` or `inherit_key`",
                    ));
                }
                Ok(())
            })?;
            if out.key.is_some() && out.inherit_key {
                return Err(syn::Error::new(
                    attr.span(),
                    "`key` and `inherit_key` contradict each other",
                ));
            }
        } else if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    let span = meta.path.span();
                    if let Some(rule) = serialize_name(&meta)? {
                        out.rename_all = Some((rule, span));
                    }
                } else if meta.path.is_ident("transparent") {
                    out.transparent = true;
                } else if meta.path.is_ident("into") {
                    return Err(meta.error(
                        "`#[serde(into = …)]` makes serde write another type than this one, which the schema does not describe: derive `Encrypted` on the type serde writes instead",
                    ));
                } else if meta.path.is_ident("remote") {
                    return Err(meta.error(
                        "`#[serde(remote = …)]` makes this a description of another type, written by serde through its getters: derive `Encrypted` on a type of your own that serde writes",
                    ));
                } else {
                    skip_meta(&meta)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(out)
}

/// The serialize-side value of `rename = "…"` or
/// `rename(serialize = "…", deserialize = "…")` (likewise `rename_all`);
/// `None` when only the deserialize side is named.
fn serialize_name(meta: &ParseNestedMeta) -> syn::Result<Option<String>> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        return Ok(Some(lit.value()));
    }
    let mut found = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            let lit: LitStr = inner.value()?.parse()?;
            found = Some(lit.value());
        } else {
            skip_meta(&inner)?;
        }
        Ok(())
    })?;
    Ok(found)
}

/// Consumes a serde attribute this derive does not need.
fn skip_meta(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Lit = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_meta(&inner))?;
    }
    Ok(())
}

/// serde's `rename_all` rules applied to a field's name, as serde_derive's
/// `RenameRule::apply_to_field` (`internals/case.rs`) does, character for
/// character: `lowercase` and `snake_case` leave a field's name as it is,
/// upper-casing is ASCII only, and `camelCase` lower-cases the first byte
/// of the PascalCase name (serde_derive fails on a name whose PascalCase
/// form is empty or starts with a non-ASCII character, and so does this).
fn rename(rule: &str, field: &str, span: Span) -> syn::Result<String> {
    let pascal = || {
        let mut pascal = String::new();
        let mut capitalize = true;
        for ch in field.chars() {
            if ch == '_' {
                capitalize = true;
            } else if capitalize {
                pascal.push(ch.to_ascii_uppercase());
                capitalize = false;
            } else {
                pascal.push(ch);
            }
        }
        pascal
    };
    Ok(match rule {
        "lowercase" | "snake_case" => field.to_owned(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let pascal = pascal();
            match (pascal.get(..1), pascal.get(1..)) {
                (Some(first), Some(rest)) => first.to_ascii_lowercase() + rest,
                _ => {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "serde_derive cannot apply camelCase to the field `{field}` (its PascalCase form is empty or starts with a non-ASCII character): rename it with `#[serde(rename = \"…\")]`"
                        ),
                    ));
                }
            }
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        other => {
            return Err(syn::Error::new(
                span,
                format!("unknown serde rename_all rule \"{other}\""),
            ));
        }
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Algorithm {
    Deterministic,
    Random,
}

struct FieldEncryption {
    algorithm: Algorithm,
    key: Option<Key>,
    bson_type: Option<(String, Span)>,
    /// The `#[encrypted(…)]` attribute, for errors about the whole field.
    attr: syn::Attribute,
}

/// What `queryable = "…"` names.
#[derive(Clone, Copy, PartialEq)]
enum QueryKind {
    Equality,
    Range,
    /// `"none"`: encrypted, not queryable (unindexed).
    Unindexed,
}

impl QueryKind {
    fn spelling(self) -> &'static str {
        match self {
            QueryKind::Equality => "equality",
            QueryKind::Range => "range",
            QueryKind::Unindexed => "none",
        }
    }
}

/// A number as written in an attribute (`5`, `-5`, `2.5`), without a
/// suffix: its type is the field's.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

/// A range bound, checked to be an `i64` or a finite `f64`, with the text
/// written for messages.
#[derive(Clone)]
enum Bound {
    Int(i64),
    Float(f64),
}

impl Bound {
    fn as_f64(&self) -> f64 {
        match self {
            // Only to order an integer bound against a float one (two
            // integer bounds are compared exactly).
            Bound::Int(v) => *v as f64,
            Bound::Float(v) => *v,
        }
    }

    /// The `__p::RangeBound` expression.
    fn tokens(&self) -> TokenStream2 {
        match self {
            Bound::Int(v) => {
                let v = signed_i64(*v);
                quote!(__p::RangeBound::Int(#v))
            }
            Bound::Float(v) => {
                let abs = v.abs();
                if v.is_sign_negative() {
                    quote!(__p::RangeBound::Float(-#abs))
                } else {
                    quote!(__p::RangeBound::Float(#abs))
                }
            }
        }
    }
}

/// An `i64` expression, its sign a separate token (a negative literal
/// token does not survive every token round trip).
fn signed_i64(v: i64) -> TokenStream2 {
    if v == i64::MIN {
        quote!(::core::primitive::i64::MIN)
    } else if v < 0 {
        let abs = -v;
        quote!(-#abs)
    } else {
        quote!(#v)
    }
}

/// An `Option` expression of a literal.
fn option_of<T: quote::ToTokens>(v: Option<T>) -> TokenStream2 {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// A Queryable Encryption field: `#[encrypted(queryable = "…", …)]`.
struct QueryableField {
    kind: QueryKind,
    key: Key,
    contention: Option<i64>,
    min: Option<(Bound, String)>,
    max: Option<(Bound, String)>,
    sparsity: Option<i64>,
    trim_factor: Option<i32>,
    precision: Option<i32>,
    bson_type: Option<(String, Span)>,
    /// The `#[encrypted(…)]` attribute, for errors about the whole field.
    attr: syn::Attribute,
}

#[derive(Default)]
struct SerdeField {
    rename: Option<String>,
    skip: bool,
    flatten: bool,
    skip_if_none: bool,
    serde_bytes: bool,
    /// `with`/`serialize_with` naming something other than `serde_bytes`:
    /// the field is written some other way than its type says.
    custom_serializer: bool,
}

/// What a field's `#[encrypted(…)]` says.
enum FieldAttr {
    /// No attribute.
    None,
    /// `#[encrypted(plain)]`: a foreign type declared to hold no encrypted
    /// field.
    Plain,
    /// FLE1 (boxed: the other variants are small).
    Encrypted(Box<FieldEncryption>),
    /// Queryable Encryption.
    Queryable(Box<QueryableField>),
}

impl FieldAttr {
    /// The attribute of an encrypted field (either scheme).
    fn encrypted_attr(&self) -> Option<&syn::Attribute> {
        match self {
            FieldAttr::Encrypted(e) => Some(&e.attr),
            FieldAttr::Queryable(q) => Some(&q.attr),
            FieldAttr::None | FieldAttr::Plain => None,
        }
    }
}

/// Sets an option given at most once.
fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &ParseNestedMeta,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("`{name}` given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// `= 5`, `= -5` or `= 2.5`: a number literal without a suffix.
fn parse_number(meta: &ParseNestedMeta) -> syn::Result<(Number, Span, String)> {
    let input = meta.value()?;
    let minus: Option<syn::Token![-]> = input.parse()?;
    let lit: syn::Lit = input.parse()?;
    let span = lit.span();
    let negative = minus.is_some();
    let sign = if negative { "-" } else { "" };
    let suffix_error = || {
        syn::Error::new(
            span,
            "write the number without a type suffix: its type is the field's",
        )
    };
    let number = match &lit {
        syn::Lit::Int(i) => {
            if !i.suffix().is_empty() {
                return Err(suffix_error());
            }
            let v: i128 = i.base10_parse()?;
            Number::Int(if negative { -v } else { v })
        }
        syn::Lit::Float(f) => {
            if !f.suffix().is_empty() {
                return Err(suffix_error());
            }
            let v: f64 = f.base10_parse()?;
            if !v.is_finite() {
                return Err(syn::Error::new(span, "the number must be finite"));
            }
            Number::Float(if negative { -v } else { v })
        }
        _ => return Err(syn::Error::new(span, "expected a number")),
    };
    let text = match &lit {
        syn::Lit::Int(i) => format!("{sign}{}", i.base10_digits()),
        syn::Lit::Float(f) => format!("{sign}{}", f.base10_digits()),
        _ => String::new(),
    };
    Ok((number, span, text))
}

/// An integer option in `lo..=hi`.
fn integer_in(
    value: Option<(Number, Span, String)>,
    name: &str,
    lo: i128,
    hi: i128,
    what: &str,
) -> syn::Result<Option<i64>> {
    let Some((number, span, _)) = value else {
        return Ok(None);
    };
    match number {
        Number::Int(v) if (lo..=hi).contains(&v) => {
            // `lo` and `hi` are within i64 at every call.
            i64::try_from(v)
                .map(Some)
                .map_err(|_| syn::Error::new(span, format!("`{name}` must be {what}")))
        }
        _ => Err(syn::Error::new(span, format!("`{name}` must be {what}"))),
    }
}

/// The options of `#[encrypted(…)]` as written, before they are checked
/// against each other.
#[derive(Default)]
struct RawOptions {
    plain: bool,
    algorithm: Option<Algorithm>,
    key: Option<Key>,
    key_id: Option<LitStr>,
    key_alt_name: Option<LitStr>,
    pointer: Option<LitStr>,
    bson_type: Option<(String, Span)>,
    queryable: Option<LitStr>,
    contention: Option<(Number, Span, String)>,
    min: Option<(Number, Span, String)>,
    max: Option<(Number, Span, String)>,
    sparsity: Option<(Number, Span, String)>,
    trim_factor: Option<(Number, Span, String)>,
    precision: Option<(Number, Span, String)>,
}

impl RawOptions {
    /// The Queryable Encryption index options given, with their spans.
    fn index_options(&self) -> Vec<(&'static str, Span)> {
        [
            ("contention", &self.contention),
            ("min", &self.min),
            ("max", &self.max),
            ("sparsity", &self.sparsity),
            ("trim_factor", &self.trim_factor),
            ("precision", &self.precision),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|(_, span, _)| (name, *span)))
        .collect()
    }

    /// `key_id` or `key_alt_name`, the first given, with its span.
    fn queryable_key_option(&self) -> Option<(&'static str, Span)> {
        self.key_id
            .as_ref()
            .map(|l| ("key_id", l.span()))
            .or_else(|| {
                self.key_alt_name
                    .as_ref()
                    .map(|l| ("key_alt_name", l.span()))
            })
    }
}

const UNKNOWN_FIELD_ATTRIBUTE: &str = "unknown `encrypted` attribute on a field: expected `deterministic`, `random`, `key = \"…\"`, `key_pointer = \"/…\"`, `bson_type = \"…\"` or `plain` (FLE1), or `queryable = \"equality\" | \"range\" | \"none\"` with `key_id`, `key_alt_name`, `contention`, `min`, `max`, `sparsity`, `trim_factor`, `precision` (Queryable Encryption)";

fn raw_options(attr: &syn::Attribute) -> syn::Result<RawOptions> {
    let mut o = RawOptions::default();
    attr.parse_nested_meta(|meta| {
        let set_algorithm = |a: &mut Option<Algorithm>, v| {
            if a.is_some() {
                return Err(meta.error("choose one of `deterministic` and `random`"));
            }
            *a = Some(v);
            Ok(())
        };
        let path = &meta.path;
        if path.is_ident("plain") {
            o.plain = true;
        } else if path.is_ident("deterministic") {
            set_algorithm(&mut o.algorithm, Algorithm::Deterministic)?;
        } else if path.is_ident("random") {
            set_algorithm(&mut o.algorithm, Algorithm::Random)?;
        } else if path.is_ident("key") {
            if o.key.is_some() {
                return Err(meta.error("`key` given twice"));
            }
            o.key = Some(parse_key(&meta.value()?.parse()?)?);
        } else if path.is_ident("key_id") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(&mut o.key_id, lit, &meta, "key_id")?;
        } else if path.is_ident("key_alt_name") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(&mut o.key_alt_name, lit, &meta, "key_alt_name")?;
        } else if path.is_ident("key_pointer") {
            let lit: LitStr = meta.value()?.parse()?;
            let v = lit.value();
            if !v.starts_with('/') || v.len() < 2 {
                return Err(syn::Error::new(
                    lit.span(),
                    "`key_pointer` is a JSON pointer to a field of the document, such as \"/tenant_key\"",
                ));
            }
            o.pointer = Some(lit);
        } else if path.is_ident("bson_type") {
            let lit: LitStr = meta.value()?.parse()?;
            if !BSON_TYPES.iter().any(|(n, _, _)| *n == lit.value()) {
                let names: Vec<&str> = BSON_TYPES.iter().map(|(n, _, _)| *n).collect();
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "unknown or unencryptable bson_type \"{}\"; one of: {}",
                        lit.value(),
                        names.join(", ")
                    ),
                ));
            }
            o.bson_type = Some((lit.value(), lit.span()));
        } else if path.is_ident("queryable") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(&mut o.queryable, lit, &meta, "queryable")?;
        } else if path.is_ident("contention") {
            let n = parse_number(&meta)?;
            set_once(&mut o.contention, n, &meta, "contention")?;
        } else if path.is_ident("min") {
            let n = parse_number(&meta)?;
            set_once(&mut o.min, n, &meta, "min")?;
        } else if path.is_ident("max") {
            let n = parse_number(&meta)?;
            set_once(&mut o.max, n, &meta, "max")?;
        } else if path.is_ident("sparsity") {
            let n = parse_number(&meta)?;
            set_once(&mut o.sparsity, n, &meta, "sparsity")?;
        } else if path.is_ident("trim_factor") {
            let n = parse_number(&meta)?;
            set_once(&mut o.trim_factor, n, &meta, "trim_factor")?;
        } else if path.is_ident("precision") {
            let n = parse_number(&meta)?;
            set_once(&mut o.precision, n, &meta, "precision")?;
        } else {
            return Err(meta.error(UNKNOWN_FIELD_ATTRIBUTE));
        }
        Ok(())
    })?;
    Ok(o)
}

fn field_encryption(field: &syn::Field) -> syn::Result<FieldAttr> {
    let mut out = FieldAttr::None;
    let mut seen = false;
    for attr in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("encrypted"))
    {
        if std::mem::replace(&mut seen, true) {
            return Err(syn::Error::new_spanned(
                attr,
                "one `#[encrypted(…)]` per field",
            ));
        }
        let o = raw_options(attr)?;
        if o.plain {
            if o.algorithm.is_some()
                || o.key.is_some()
                || o.pointer.is_some()
                || o.bson_type.is_some()
                || o.queryable.is_some()
                || o.queryable_key_option().is_some()
                || !o.index_options().is_empty()
            {
                return Err(syn::Error::new_spanned(
                    attr,
                    "`plain` declares the field unencrypted: it takes no algorithm, key or bson_type",
                ));
            }
            out = FieldAttr::Plain;
            continue;
        }
        if let Some(queryable) = &o.queryable {
            if o.algorithm.is_some() {
                return Err(syn::Error::new_spanned(
                    attr,
                    "`deterministic`/`random` are FLE1 and `queryable` is Queryable Encryption: a field uses one scheme",
                ));
            }
            out = FieldAttr::Queryable(Box::new(queryable_field(queryable, &o, attr)?));
            continue;
        }
        let Some(algorithm) = o.algorithm else {
            if let Some((name, span)) = o
                .queryable_key_option()
                .or_else(|| o.index_options().first().copied())
            {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "`{name}` belongs to a Queryable Encryption field: add `queryable = \"equality\"`, `\"range\"` or `\"none\"`"
                    ),
                ));
            }
            return Err(syn::Error::new_spanned(
                attr,
                "an encrypted field needs its algorithm: `deterministic` (queryable by equality) or `random`",
            ));
        };
        if let Some((name, span)) = o
            .queryable_key_option()
            .or_else(|| o.index_options().first().copied())
        {
            return Err(syn::Error::new(
                span,
                format!(
                    "`{name}` belongs to a Queryable Encryption field (`queryable = \"…\"`), not to an FLE1 one (`deterministic`/`random`, whose key is `key = \"…\"`)"
                ),
            ));
        }
        let mut key = o.key;
        if let Some(p) = &o.pointer {
            if key.is_some() {
                return Err(syn::Error::new(
                    p.span(),
                    "`key` and `key_pointer` both name the key: keep one",
                ));
            }
            if algorithm == Algorithm::Deterministic {
                return Err(syn::Error::new(
                    p.span(),
                    "`key_pointer` needs `random`: a deterministic field's key must be the same for every document",
                ));
            }
            key = Some(Key::Pointer(p.value()));
        }
        if let (Some((name, span)), Algorithm::Deterministic) = (&o.bson_type, algorithm)
            && BSON_TYPES.iter().any(|(n, _, det)| n == name && !det)
        {
            return Err(syn::Error::new(
                *span,
                format!(
                    "deterministic encryption of bsonType \"{name}\" is not allowed by the FLE1 specification: use `random`"
                ),
            ));
        }
        out = FieldAttr::Encrypted(Box::new(FieldEncryption {
            algorithm,
            key,
            bson_type: o.bson_type,
            attr: attr.clone(),
        }));
    }
    Ok(out)
}

/// A range bound as written: an `i64` or a finite `f64`, with its text.
fn range_bound(
    value: &Option<(Number, Span, String)>,
    name: &str,
) -> syn::Result<Option<(Bound, String)>> {
    let Some((number, span, text)) = value else {
        return Ok(None);
    };
    let bound = match *number {
        Number::Int(v) => Bound::Int(
            i64::try_from(v)
                .map_err(|_| syn::Error::new(*span, format!("`{name}` must fit in an i64")))?,
        ),
        Number::Float(v) => Bound::Float(v),
    };
    Ok(Some((bound, text.clone())))
}

/// Checks `#[encrypted(queryable = "…", …)]` on its own: the query type,
/// the key, and each option against the query type and the others. What
/// depends on the field's BSON type is checked by the `const` items
/// `queryable_document_field` writes.
fn queryable_field(
    queryable: &LitStr,
    o: &RawOptions,
    attr: &syn::Attribute,
) -> syn::Result<QueryableField> {
    let kind = match queryable.value().as_str() {
        "equality" => QueryKind::Equality,
        "range" => QueryKind::Range,
        "none" => QueryKind::Unindexed,
        other => {
            return Err(syn::Error::new(
                queryable.span(),
                format!(
                    "unknown query type \"{other}\": expected \"equality\", \"range\" or \"none\" (encrypted, not queryable)"
                ),
            ));
        }
    };
    if let Some(p) = &o.pointer {
        return Err(syn::Error::new(
            p.span(),
            "`key_pointer` is FLE1's: a Queryable Encryption field's key is fixed (`key_id` or `key_alt_name`)",
        ));
    }
    let given = usize::from(o.key.is_some())
        + usize::from(o.key_id.is_some())
        + usize::from(o.key_alt_name.is_some());
    if given > 1 {
        return Err(syn::Error::new_spanned(
            attr,
            "name the key once: `key_id = \"<UUID>\"`, `key_alt_name = \"…\"` or `key = \"…\"`",
        ));
    }
    let key = if let Some(k) = &o.key {
        k.clone()
    } else if let Some(lit) = &o.key_id {
        Key::Id(parse_uuid(&lit.value()).ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                "`key_id` must be a UUID in its 8-4-4-4-12 hexadecimal form",
            )
        })?)
    } else if let Some(lit) = &o.key_alt_name {
        if lit.value().is_empty() {
            return Err(syn::Error::new(lit.span(), "a key name cannot be empty"));
        }
        Key::AltName(lit.value())
    } else {
        return Err(syn::Error::new_spanned(
            attr,
            "a Queryable Encryption field names its own data key (one key per field; the type's `key` does not apply): add `key_id = \"<UUID>\"` or `key_alt_name = \"…\"`",
        ));
    };
    let not_for = |name: &str, span: Span, which: &str| {
        syn::Error::new(
            span,
            format!(
                "`{name}` is an option of {which}, not of `queryable = \"{}\"`",
                kind.spelling()
            ),
        )
    };
    for (name, span) in o.index_options() {
        match (kind, name) {
            (QueryKind::Range, _) | (QueryKind::Equality, "contention") => {}
            (QueryKind::Equality, _) => return Err(not_for(name, span, "range indexes")),
            (QueryKind::Unindexed, _) => {
                return Err(not_for(name, span, "equality and range indexes"));
            }
        }
    }
    let contention = integer_in(
        o.contention.clone(),
        "contention",
        0,
        i128::from(i64::MAX) - 1,
        "a non-negative integer below 2^63 - 1",
    )?;
    let sparsity = integer_in(o.sparsity.clone(), "sparsity", 1, 4, "between 1 and 4")?;
    let trim_factor = integer_in(
        o.trim_factor.clone(),
        "trim_factor",
        0,
        i128::from(i32::MAX),
        "a non-negative int32",
    )?
    .map(|t| t as i32);
    let precision = integer_in(
        o.precision.clone(),
        "precision",
        0,
        i128::from(i32::MAX),
        "a non-negative int32",
    )?
    .map(|p| p as i32);
    let min = range_bound(&o.min, "min")?;
    let max = range_bound(&o.max, "max")?;
    match (&o.min, &o.max, &min, &max) {
        (Some(_), Some((_, span, _)), Some((lo, lo_text)), Some((hi, hi_text))) => {
            let below = match (lo, hi) {
                (Bound::Int(a), Bound::Int(b)) => a < b,
                _ => lo.as_f64() < hi.as_f64(),
            };
            if !below {
                return Err(syn::Error::new(
                    *span,
                    format!("`min` ({lo_text}) must be less than `max` ({hi_text})"),
                ));
            }
        }
        (Some((_, span, _)), None, _, _) | (None, Some((_, span, _)), _, _) => {
            return Err(syn::Error::new(
                *span,
                "`min` and `max` come together: give both or neither",
            ));
        }
        _ => {}
    }
    if let (Some((_, span, _)), None) = (&o.precision, &min) {
        return Err(syn::Error::new(
            *span,
            "`precision` needs `min` and `max` (a double's range index takes the three together)",
        ));
    }
    // With integer bounds and no precision the domain is `max - min`:
    // its bit length bounds the trim factor (libmongocrypt and the server
    // refuse one at or above it, but 0). Other domains are checked against
    // the field's type by a `const` item, or (a double with a precision)
    // when the collection is opened.
    if let (Some(t), Some((Bound::Int(lo), _)), Some((Bound::Int(hi), _)), None) =
        (trim_factor, &min, &max, precision)
    {
        let span_of_domain = (i128::from(*hi) - i128::from(*lo)) as u128;
        let bits = 128 - span_of_domain.leading_zeros();
        if t != 0 && (t as u32) >= bits {
            let span = o
                .trim_factor
                .as_ref()
                .map_or(Span::call_site(), |(_, s, _)| *s);
            return Err(syn::Error::new(
                span,
                format!("`trim_factor` must be below the {bits} bits of the domain `min..=max`"),
            ));
        }
    }
    Ok(QueryableField {
        kind,
        key,
        contention,
        min,
        max,
        sparsity,
        trim_factor,
        precision,
        bson_type: o.bson_type.clone(),
        attr: attr.clone(),
    })
}

fn serde_field(field: &syn::Field) -> syn::Result<SerdeField> {
    let mut out = SerdeField::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                // A deserialize-only `rename` (in its own attribute or
                // beside a serialize one) must not wipe the serialize
                // name found before: serde_derive keeps it too.
                if let Some(name) = serialize_name(&meta)? {
                    out.rename = Some(name);
                }
            } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_serializing") {
                out.skip = true;
            } else if meta.path.is_ident("flatten") {
                out.flatten = true;
            } else if meta.path.is_ident("skip_serializing_if") {
                let lit: LitStr = meta.value()?.parse()?;
                let path = lit.value().replace(' ', "");
                out.skip_if_none = matches!(
                    path.as_str(),
                    "Option::is_none"
                        | "std::option::Option::is_none"
                        | "core::option::Option::is_none"
                );
            } else if meta.path.is_ident("with") || meta.path.is_ident("serialize_with") {
                let lit: LitStr = meta.value()?.parse()?;
                out.serde_bytes = lit.value() == "serde_bytes";
                out.custom_serializer = !out.serde_bytes;
            } else {
                skip_meta(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// A type as written, without the spaces token printing puts in.
fn type_text(ty: &Type) -> String {
    let mut text = quote!(#ty).to_string();
    for (spaced, tight) in [
        (" :: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// Whether the type is spelled `Option<…>` (used only for `bson_type`
/// fields, whose type need not implement `EncryptedBsonType`).
fn spelled_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// Errors gathered over all fields, so one build reports them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The per-field checks of plain fields: each field's type must implement
/// `FieldSchema`, through a trait of its own whose
/// `#[diagnostic::on_unimplemented]` names the field (no `unsafe`, no
/// link section: a trait bound, checked when the user's crate compiles).
struct FieldChecks {
    owner: String,
    items: Vec<TokenStream2>,
}

impl FieldChecks {
    /// The `Nested` expression of a plain field of type `ty` named `label`,
    /// checked: it does not compile unless the type implements
    /// `FieldSchema`.
    fn checked(&mut self, label: &str, ty: &Type) -> TokenStream2 {
        let tr = quote::format_ident!("__CsfleField{}", self.items.len());
        let owner = &self.owner;
        let message = format!(
            "field `{label}` of `{owner}`: csfle cannot tell whether `{{Self}}` holds encrypted fields"
        );
        let note = format!(
            "derive `Encrypted` on `{{Self}}` (without `#[encrypted]` fields it is plain), or, if it is a foreign type that holds no encrypted field, mark the field `{label}` `#[encrypted(plain)]`"
        );
        self.items.push(quote! {
            #[allow(non_camel_case_types)]
            #[diagnostic::on_unimplemented(
                message = #message,
                label = "neither known to be plain nor deriving `Encrypted`",
                note = #note
            )]
            trait #tr {
                fn nested() -> __p::Nested;
            }
            impl<T: __p::FieldSchema + ?Sized> #tr for T {
                fn nested() -> __p::Nested {
                    <T as __p::FieldSchema>::nested()
                }
            }
        });
        quote_spanned!(ty.span()=> <#ty as #tr>::nested())
    }
}

/// The `Nested` expression of a field serde writes some other way than its
/// type says (declared plain, `with`): the type's schema if it has one
/// (then refused when the schema is made if it has encrypted fields), else
/// none; the type need not implement `FieldSchema`.
fn probed(ty: &Type) -> TokenStream2 {
    quote_spanned! {ty.span()=>
        {
            #[allow(unused_imports)]
            use __p::{ViaFieldSchema as _, ViaOpaque as _};
            (&&__p::Probe::<#ty>::new()).nested()
        }
    }
}

/// How a plain field is written: checked through its type, or opaque.
enum PlainField {
    Checked(TokenStream2),
    Opaque(TokenStream2, TokenStream2),
}

fn plain_field(
    checks: &mut FieldChecks,
    label: &str,
    ty: &Type,
    declared_plain: bool,
    serde: &SerdeField,
) -> PlainField {
    if declared_plain {
        PlainField::Opaque(probed(ty), quote!(__p::OpaqueReason::DeclaredPlain))
    } else if serde.custom_serializer || serde.serde_bytes {
        PlainField::Opaque(probed(ty), quote!(__p::OpaqueReason::CustomSerializer))
    } else {
        PlainField::Checked(checks.checked(label, ty))
    }
}

impl PlainField {
    /// As a `Nested` expression (the parts of a tuple or enum).
    fn nested(self) -> TokenStream2 {
        match self {
            PlainField::Checked(n) | PlainField::Opaque(n, _) => n,
        }
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "`#[derive(Encrypted)]` needs a type without generic parameters: the fields' types must be known to tell which hold encrypted fields",
        ));
    }
    let attrs = type_attrs(input)?;
    let mut checks = FieldChecks {
        owner: name.unraw().to_string(),
        items: Vec::new(),
    };
    let (body, documents) = match &input.data {
        Data::Struct(syn::DataStruct {
            fields: Fields::Named(fields),
            ..
        }) if !attrs.transparent => (document(name, &attrs, &fields.named, &mut checks)?, true),
        Data::Struct(s) => (content(name, &attrs, &s.fields, &mut checks)?, false),
        Data::Enum(e) => (variants(name, e, &mut checks)?, false),
        Data::Union(_) => {
            return Err(syn::Error::new(
                name.span(),
                "`#[derive(Encrypted)]` needs a struct with named fields (a document), a newtype, a tuple struct or an enum",
            ));
        }
    };
    if !documents && (attrs.key.is_some() || attrs.inherit_key) {
        return Err(syn::Error::new(
            name.span(),
            "`key` and `inherit_key` apply to a struct with named fields (a document): encrypt the field where this type is used",
        ));
    }
    let field_checks = &checks.items;
    Ok(quote! {
        const _: () = {
            use ::csfle::schema::typed::__private as __p;

            #(#field_checks)*

            #body
        };
    })
}

/// An `#[encrypted(deterministic|random)]` where a schema cannot encrypt.
fn not_encryptable(attr: &syn::Attribute, what: &str) -> syn::Error {
    syn::Error::new_spanned(
        attr,
        format!(
            "a field of {what} cannot be encrypted: a schema cannot describe where serde writes it; encrypt the field where the type is used instead"
        ),
    )
}

/// A transparent struct, a newtype, a tuple struct or a unit struct: what
/// it holds, as serde writes it.
fn content(
    name: &syn::Ident,
    attrs: &TypeAttrs,
    fields: &Fields,
    checks: &mut FieldChecks,
) -> syn::Result<TokenStream2> {
    let what = if attrs.transparent {
        "a `#[serde(transparent)]` struct"
    } else {
        "a tuple struct"
    };
    let mut errors = Errors::default();
    let mut parts = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let label = match &field.ident {
            Some(ident) => ident.unraw().to_string(),
            None => i.to_string(),
        };
        if let Some(nested) = plain_part(checks, &mut errors, &label, field, what) {
            parts.push((label, nested));
        }
    }
    errors.finish()?;
    // One field serialized (a newtype, a transparent struct): serde writes
    // that field's value in the type's place.
    let one = attrs.transparent || fields.len() == 1;
    if one {
        if parts.len() != 1 {
            return Err(syn::Error::new(
                name.span(),
                "a `#[serde(transparent)]` struct writes exactly one field: serde needs every other one skipped",
            ));
        }
        let (_, nested) = &parts[0];
        return Ok(quote! {
            impl __p::FieldSchema for #name {
                fn nested() -> __p::Nested {
                    #nested
                }
            }
        });
    }
    let entries: Vec<TokenStream2> = parts
        .iter()
        .map(|(label, nested)| quote!((#label, #nested)))
        .collect();
    Ok(parts_schema(name, &entries, quote!(__p::tuple_of)))
}

/// An enum: refused where it holds encrypted fields, plain otherwise.
fn variants(
    name: &syn::Ident,
    data: &syn::DataEnum,
    checks: &mut FieldChecks,
) -> syn::Result<TokenStream2> {
    let mut errors = Errors::default();
    let mut parts = Vec::new();
    for variant in &data.variants {
        let variant_name = variant.ident.unraw().to_string();
        for (i, field) in variant.fields.iter().enumerate() {
            let label = match &field.ident {
                Some(ident) => format!("{variant_name}.{}", ident.unraw()),
                None => format!("{variant_name}.{i}"),
            };
            if let Some(nested) = plain_part(checks, &mut errors, &label, field, "an enum") {
                parts.push(quote!((#label, #nested)));
            }
        }
    }
    errors.finish()?;
    Ok(parts_schema(name, &parts, quote!(__p::enum_of)))
}

/// A field of a tuple struct or an enum variant, which must be plain (an
/// encrypted one is refused as a field of `what`): its `Nested`
/// expression, or `None` where serde skips it or it is refused (the error
/// pushed to `errors`).
fn plain_part(
    checks: &mut FieldChecks,
    errors: &mut Errors,
    label: &str,
    field: &syn::Field,
    what: &str,
) -> Option<TokenStream2> {
    let (enc, serde) = match (field_encryption(field), serde_field(field)) {
        (Ok(e), Ok(s)) => (e, s),
        (Err(e), _) | (_, Err(e)) => {
            errors.push(e);
            return None;
        }
    };
    if serde.skip {
        return None;
    }
    if let Some(attr) = enc.encrypted_attr() {
        errors.push(not_encryptable(attr, what));
        return None;
    }
    let declared_plain = matches!(enc, FieldAttr::Plain);
    Some(plain_field(checks, label, &field.ty, declared_plain, &serde).nested())
}

/// The schema of a type serde writes as parts (a tuple struct's fields, an
/// enum's variants' fields): `__csfle_parts` lists the `(label, Nested)`
/// `parts`, and `wrap` (`__p::tuple_of` or `__p::enum_of`) makes the
/// type's `Nested` of them.
fn parts_schema(name: &syn::Ident, parts: &[TokenStream2], wrap: TokenStream2) -> TokenStream2 {
    quote! {
        fn __csfle_parts() -> __p::SchemaTemplate {
            __p::parts_template(
                ::core::any::type_name::<#name>(),
                __p::vec![#(#parts),*],
            )
        }

        impl __p::FieldSchema for #name {
            fn nested() -> __p::Nested {
                #wrap(__csfle_parts)
            }
        }
    }
}

/// A struct with named fields: a document, with its schema.
fn document(
    name: &syn::Ident,
    attrs: &TypeAttrs,
    fields: &syn::punctuated::Punctuated<syn::Field, syn::Token![,]>,
    checks: &mut FieldChecks,
) -> syn::Result<TokenStream2> {
    let mut entries = Vec::new();
    let mut const_checks = Vec::new();
    let mut errors = Errors::default();
    // The first FLE1 and the first Queryable Encryption field: a type uses
    // one scheme.
    let mut first_fle1: Option<String> = None;
    let mut first_queryable: Option<String> = None;
    for field in fields {
        let ident = field.ident.as_ref().expect("named field");
        let rust_field = ident.unraw().to_string();
        let ty = &field.ty;
        let (enc, serde) = match (field_encryption(field), serde_field(field)) {
            (Ok(e), Ok(s)) => (e, s),
            (Err(e), _) | (_, Err(e)) => {
                errors.push(e);
                continue;
            }
        };
        let serialized = match (&serde.rename, &attrs.rename_all) {
            (Some(r), _) => r.clone(),
            (None, Some((rule, span))) => match rename(rule, &rust_field, *span) {
                Ok(n) => n,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            (None, None) => rust_field.clone(),
        };
        let (this_scheme, other_field, other_scheme) = match &enc {
            FieldAttr::Encrypted(_) => ("FLE1", &first_queryable, "Queryable Encryption"),
            FieldAttr::Queryable(_) => ("Queryable Encryption", &first_fle1, "FLE1"),
            FieldAttr::None | FieldAttr::Plain => ("", &None, ""),
        };
        if let (Some(attr), Some(other)) = (enc.encrypted_attr(), other_field) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!(
                    "field `{rust_field}` is {this_scheme} and field `{other}` is {other_scheme}: one type uses one scheme (a collection has an FLE1 $jsonSchema or a Queryable Encryption encryptedFields, not both)"
                ),
            ));
            continue;
        }
        let first_of_scheme = match &enc {
            FieldAttr::Encrypted(_) => Some(&mut first_fle1),
            FieldAttr::Queryable(_) => Some(&mut first_queryable),
            FieldAttr::None | FieldAttr::Plain => None,
        };
        if let Some(first) = first_of_scheme
            && first.is_none()
        {
            *first = Some(rust_field.clone());
        }
        let declared_plain = matches!(enc, FieldAttr::Plain);
        let enc = match enc {
            FieldAttr::Queryable(q) => {
                let field = DocumentField {
                    ident,
                    rust_field: &rust_field,
                    serialized: &serialized,
                    ty,
                    serde: &serde,
                };
                match queryable_document_field(&q, &field, &mut const_checks) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => errors.push(e),
                }
                continue;
            }
            FieldAttr::Encrypted(enc) => *enc,
            FieldAttr::None | FieldAttr::Plain => {
                if serde.skip {
                    continue;
                }
                let shape = match plain_field(checks, &rust_field, ty, declared_plain, &serde) {
                    PlainField::Opaque(nested, reason) => {
                        quote!(__p::FieldShape::Opaque { nested: #nested, reason: #reason })
                    }
                    PlainField::Checked(nested) if serde.flatten => {
                        quote!(__p::FieldShape::Flattened(#nested))
                    }
                    PlainField::Checked(nested) => quote!(__p::FieldShape::Nested(#nested)),
                };
                entries.push(quote! {
                    __p::FieldTemplate { name: #serialized, rust_field: #rust_field, shape: #shape }
                });
                continue;
            }
        };
        if serde.skip {
            errors.push(syn::Error::new_spanned(
                &enc.attr,
                "this field is encrypted but serde skips it: it would never be stored",
            ));
            continue;
        }
        if serde.flatten {
            errors.push(syn::Error::new_spanned(
                &enc.attr,
                "a `#[serde(flatten)]` field cannot be encrypted: its fields are written into the parent document; encrypt them in their own type",
            ));
            continue;
        }
        if serialized == "_id" {
            errors.push(syn::Error::new(
                ident.span(),
                "`_id` cannot be encrypted (the FLE1 specification refuses it: the server must see the primary key)",
            ));
            continue;
        }
        if enc.key.is_none() && attrs.key.is_none() && !attrs.inherit_key {
            errors.push(syn::Error::new(
                ident.span(),
                format!(
                    "no key for the encrypted field `{rust_field}`: add `key = \"…\"` here, `#[encrypted(key = \"…\")]` on the type, or `#[encrypted(inherit_key)]` on the type if it is only used inside a type that names one"
                ),
            ));
            continue;
        }
        let algorithm = match enc.algorithm {
            Algorithm::Deterministic => quote!(__p::Algorithm::Deterministic),
            Algorithm::Random => quote!(__p::Algorithm::Random),
        };
        let key = Key::option_tokens(&enc.key);
        if serde.custom_serializer && enc.bson_type.is_none() {
            errors.push(syn::Error::new_spanned(
                &enc.attr,
                "serde's `with`/`serialize_with` decides how this field is written, not its type: name the BSON type it writes, e.g. `#[encrypted(random, bson_type = \"date\")]`",
            ));
            continue;
        }
        let serde_bytes_type = serde
            .serde_bytes
            .then(|| ("binData".to_owned(), Span::call_site()));
        let bson_type = match enc.bson_type.as_ref().or(serde_bytes_type.as_ref()) {
            Some((type_name, _)) => {
                if spelled_option(ty) && !serde.skip_if_none {
                    errors.push(option_error(ty.span(), &rust_field));
                    continue;
                }
                let (_, variant, _) = BSON_TYPES
                    .iter()
                    .find(|(n, _, _)| n == type_name)
                    .expect("checked when parsed");
                let variant = syn::Ident::new(variant, Span::call_site());
                quote!(__p::ElementType::#variant)
            }
            None => {
                let ty_text = type_text(ty);
                if enc.algorithm == Algorithm::Deterministic {
                    let message = format!(
                        "field `{rust_field}`: deterministic encryption cannot encrypt `{ty_text}`: the FLE1 specification refuses its BSON type (double, decimal, bool, object, array, code with scope) for deterministic encryption; use `random`"
                    );
                    const_checks.push(quote_spanned! {ty.span()=>
                        const _: () = if !__p::deterministic_allows(
                            <#ty as __p::EncryptedBsonType>::BSON_TYPE
                        ) {
                            ::core::panic!(#message)
                        };
                    });
                }
                if !serde.skip_if_none {
                    let message = option_message(&rust_field);
                    const_checks.push(quote_spanned! {ty.span()=>
                        const _: () = if <#ty as __p::EncryptedBsonType>::NULLABLE {
                            ::core::panic!(#message)
                        };
                    });
                }
                quote_spanned!(ty.span()=> <#ty as __p::EncryptedBsonType>::BSON_TYPE)
            }
        };
        entries.push(quote! {
            __p::FieldTemplate {
                name: #serialized,
                rust_field: #rust_field,
                shape: __p::FieldShape::Encrypted {
                    algorithm: #algorithm,
                    key: #key,
                    bson_type: #bson_type,
                },
            }
        });
    }
    if let Some(queryable) = &first_queryable
        && (attrs.key.is_some() || attrs.inherit_key)
    {
        errors.push(syn::Error::new(
            name.span(),
            format!(
                "`key` and `inherit_key` on a type name FLE1's default key; a Queryable Encryption field (`{queryable}`) names its own (`key_id` or `key_alt_name`), one key per field"
            ),
        ));
    }
    errors.finish()?;
    let type_key = Key::option_tokens(&attrs.key);
    let inherit_key = attrs.inherit_key;
    Ok(quote! {
        impl __p::Encrypted for #name {
            fn schema_template() -> __p::SchemaTemplate {
                __p::SchemaTemplate {
                    rust_type: ::core::any::type_name::<Self>(),
                    key: #type_key,
                    inherit_key: #inherit_key,
                    fields: __p::vec![#(#entries),*],
                }
            }
        }

        impl __p::EncryptedBsonType for #name {
            const BSON_TYPE: __p::ElementType = __p::ElementType::EmbeddedDocument;
        }

        impl __p::FieldSchema for #name {
            fn nested() -> __p::Nested {
                __p::object_of::<Self>()
            }
        }

        impl __p::CollectionDocument for #name {
            fn declared_schema() -> ::core::option::Option<__p::DeclaredSchema> {
                ::core::option::Option::Some(__p::DeclaredSchema::of::<Self>())
            }
        }

        #(#const_checks)*
    })
}

fn option_error(span: Span, field: &str) -> syn::Error {
    syn::Error::new(span, option_message(field))
}

/// Why an encrypted `Option` needs `skip_serializing_if`.
fn option_message(field: &str) -> String {
    format!(
        "field `{field}`: an encrypted `Option` needs `#[serde(skip_serializing_if = \"Option::is_none\")]`: `None` would be stored as null, which cannot be encrypted"
    )
}

/// A field of a struct with named fields, as serde writes it.
struct DocumentField<'a> {
    ident: &'a syn::Ident,
    rust_field: &'a str,
    serialized: &'a str,
    ty: &'a Type,
    serde: &'a SerdeField,
}

/// A `const` item that fails to compile, with `message` on the field's
/// type, when `condition` (a call of a `const fn` returning `bool`) is
/// false.
fn const_check(ty: &Type, condition: TokenStream2, message: String) -> TokenStream2 {
    quote_spanned! {ty.span()=>
        const _: () = if !#condition {
            ::core::panic!(#message)
        };
    }
}

/// A Queryable Encryption field of a struct with named fields: its
/// `FieldTemplate` expression. What depends on the field's BSON type (the
/// query type's types, the range bounds' and precision's) is pushed to
/// `const_checks`, `const` items that fail to compile naming the field.
fn queryable_document_field(
    q: &QueryableField,
    field: &DocumentField,
    const_checks: &mut Vec<TokenStream2>,
) -> syn::Result<TokenStream2> {
    let DocumentField {
        ident,
        rust_field,
        serialized,
        ty,
        serde,
    } = *field;
    if serde.skip {
        return Err(syn::Error::new_spanned(
            &q.attr,
            "this field is encrypted but serde skips it: it would never be stored",
        ));
    }
    if serde.flatten {
        return Err(syn::Error::new_spanned(
            &q.attr,
            "a `#[serde(flatten)]` field cannot be encrypted: its fields are written into the parent document; encrypt them in their own type",
        ));
    }
    if serialized == "_id" {
        return Err(syn::Error::new(
            ident.span(),
            "`_id` cannot be encrypted (the server must see the primary key)",
        ));
    }
    if serialized.is_empty()
        || serialized.contains('.')
        || serialized.starts_with('$')
        || serialized.contains('\0')
    {
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "field `{rust_field}` is written as \"{serialized}\", which an encryptedFields path cannot name (a path reads '.' as nesting, and a name is not empty, does not start with '$' and holds no NUL): rename it"
            ),
        ));
    }
    if serde.custom_serializer && q.bson_type.is_none() {
        return Err(syn::Error::new_spanned(
            &q.attr,
            "serde's `with`/`serialize_with` decides how this field is written, not its type: name the BSON type it writes, e.g. `#[encrypted(queryable = \"equality\", key_alt_name = \"…\", bson_type = \"string\")]`",
        ));
    }
    let serde_bytes_type = serde
        .serde_bytes
        .then(|| ("binData".to_owned(), Span::call_site()));
    let (bson_type, what) = match q.bson_type.as_ref().or(serde_bytes_type.as_ref()) {
        Some((type_name, _)) => {
            if spelled_option(ty) && !serde.skip_if_none {
                return Err(option_error(ty.span(), rust_field));
            }
            let (_, variant, _) = BSON_TYPES
                .iter()
                .find(|(n, _, _)| n == type_name)
                .expect("checked when parsed");
            let variant = syn::Ident::new(variant, Span::call_site());
            (
                quote!(__p::ElementType::#variant),
                format!("bson_type \"{type_name}\""),
            )
        }
        None => {
            if !serde.skip_if_none {
                let message = option_message(rust_field);
                const_checks.push(quote_spanned! {ty.span()=>
                    const _: () = if <#ty as __p::EncryptedBsonType>::NULLABLE {
                        ::core::panic!(#message)
                    };
                });
            }
            (
                quote_spanned!(ty.span()=> <#ty as __p::EncryptedBsonType>::BSON_TYPE),
                format!("`{}`", type_text(ty)),
            )
        }
    };
    let (allows, types) = match q.kind {
        QueryKind::Equality => (
            quote!(__p::equality_allows),
            "an int, long, string, bool, objectId, date or binData field (i32, i64, String, bool, ObjectId, DateTime, Binary)",
        ),
        QueryKind::Range => (
            quote!(__p::range_allows),
            "an int, long, double, decimal or date field (i32, i64, f64, Decimal128, DateTime)",
        ),
        QueryKind::Unindexed => (
            quote!(__p::unindexed_allows),
            "an int, long, double, decimal, string, bool, objectId, date, binData, object or array field",
        ),
    };
    const_checks.push(const_check(
        ty,
        quote!(#allows(#bson_type)),
        format!(
            "field `{rust_field}`: `queryable = \"{}\"` needs {types}; {what} is not one",
            q.kind.spelling()
        ),
    ));
    let key = q.key.tokens();
    let contention = option_of(q.contention);
    let index = match q.kind {
        QueryKind::Unindexed => quote!(__p::QueryIndex::Unindexed),
        QueryKind::Equality => quote!(__p::QueryIndex::Equality {
            contention: #contention,
        }),
        QueryKind::Range => {
            for (name, bound) in [("min", &q.min), ("max", &q.max)] {
                let Some((bound, text)) = bound else { continue };
                let check = match bound {
                    Bound::Int(v) => {
                        let v = signed_i64(*v);
                        const_check(
                            ty,
                            quote!(__p::range_int_bound_fits(#bson_type, #v)),
                            format!(
                                "field `{rust_field}`: `{name} = {text}` is not a value of {what}: an integer bound needs an int (within i32), long, date (milliseconds since the epoch) or double (|v| <= 2^53) field"
                            ),
                        )
                    }
                    Bound::Float(_) => const_check(
                        ty,
                        quote!(__p::range_float_bound_fits(#bson_type)),
                        format!(
                            "field `{rust_field}`: `{name} = {text}` is a floating-point bound, and {what} is not a double"
                        ),
                    ),
                };
                const_checks.push(check);
            }
            if q.min.is_some() && q.precision.is_none() {
                const_checks.push(const_check(
                    ty,
                    quote!(__p::range_bounds_without_precision(#bson_type)),
                    format!(
                        "field `{rust_field}`: `min` and `max` of {what} need `precision` too (a double's range index takes the three together; csfle does not support range indexes on decimal with bounds)"
                    ),
                ));
            }
            if q.precision.is_some() {
                const_checks.push(const_check(
                    ty,
                    quote!(__p::range_precision_allowed(#bson_type)),
                    format!(
                        "field `{rust_field}`: `precision` applies to a double field, and {what} is not one (csfle does not support range indexes on decimal with a precision)"
                    ),
                ));
            }
            if let (Some(t), None) = (q.trim_factor, &q.min) {
                const_checks.push(const_check(
                    ty,
                    quote!(__p::range_trim_factor_fits(#bson_type, #t)),
                    format!(
                        "field `{rust_field}`: `trim_factor = {t}` must be 0 or below the bits of the domain of {what} (32 for int; 64 for long, date and double; 128 for decimal)"
                    ),
                ));
            }
            let min = option_of(q.min.as_ref().map(|(b, _)| b.tokens()));
            let max = option_of(q.max.as_ref().map(|(b, _)| b.tokens()));
            let sparsity = option_of(q.sparsity);
            let trim_factor = option_of(q.trim_factor);
            let precision = option_of(q.precision);
            quote!(__p::QueryIndex::Range(__p::RangeSpec {
                contention: #contention,
                min: #min,
                max: #max,
                sparsity: #sparsity,
                trim_factor: #trim_factor,
                precision: #precision,
            }))
        }
    };
    Ok(quote! {
        __p::FieldTemplate {
            name: #serialized,
            rust_field: #rust_field,
            shape: __p::FieldShape::Queryable {
                key: #key,
                bson_type: #bson_type,
                index: #index,
            },
        }
    })
}
