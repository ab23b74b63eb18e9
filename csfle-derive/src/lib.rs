//! `#[derive(Encrypted)]`: the MongoDB FLE1 encryption schema of a Rust
//! type, declared on the type. Use it through `csfle::Encrypted`.
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
    /// Encrypted (boxed: the other variants are empty).
    Encrypted(Box<FieldEncryption>),
}

fn field_encryption(field: &syn::Field) -> syn::Result<FieldAttr> {
    let mut out: Option<FieldEncryption> = None;
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
        let mut algorithm = None;
        let mut key = None;
        let mut pointer: Option<LitStr> = None;
        let mut bson_type = None;
        let mut plain = false;
        attr.parse_nested_meta(|meta| {
            let set_algorithm = |a: &mut Option<Algorithm>, v| {
                if a.is_some() {
                    return Err(meta.error("choose one of `deterministic` and `random`"));
                }
                *a = Some(v);
                Ok(())
            };
            if meta.path.is_ident("plain") {
                plain = true;
            } else if meta.path.is_ident("deterministic") {
                set_algorithm(&mut algorithm, Algorithm::Deterministic)?;
            } else if meta.path.is_ident("random") {
                set_algorithm(&mut algorithm, Algorithm::Random)?;
            } else if meta.path.is_ident("key") {
                if key.is_some() {
                    return Err(meta.error("`key` given twice"));
                }
                key = Some(parse_key(&meta.value()?.parse()?)?);
            } else if meta.path.is_ident("key_pointer") {
                let lit: LitStr = meta.value()?.parse()?;
                let v = lit.value();
                if !v.starts_with('/') || v.len() < 2 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`key_pointer` is a JSON pointer to a field of the document, such as \"/tenant_key\"",
                    ));
                }
                pointer = Some(lit);
            } else if meta.path.is_ident("bson_type") {
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
                bson_type = Some((lit.value(), lit.span()));
            } else {
                return Err(meta.error(
                    "unknown `encrypted` attribute on a field: expected `deterministic`, `random`, `key = \"…\"`, `key_pointer = \"/…\"`, `bson_type = \"…\"` or `plain`",
                ));
            }
            Ok(())
        })?;
        if plain {
            if algorithm.is_some() || key.is_some() || pointer.is_some() || bson_type.is_some() {
                return Err(syn::Error::new_spanned(
                    attr,
                    "`plain` declares the field unencrypted: it takes no algorithm, key or bson_type",
                ));
            }
            continue;
        }
        let Some(algorithm) = algorithm else {
            return Err(syn::Error::new_spanned(
                attr,
                "an encrypted field needs its algorithm: `deterministic` (queryable by equality) or `random`",
            ));
        };
        if let Some(p) = &pointer {
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
        if let (Some((name, span)), Algorithm::Deterministic) = (&bson_type, algorithm)
            && BSON_TYPES.iter().any(|(n, _, det)| n == name && !det)
        {
            return Err(syn::Error::new(
                *span,
                format!(
                    "deterministic encryption of bsonType \"{name}\" is not allowed by the FLE1 specification: use `random`"
                ),
            ));
        }
        out = Some(FieldEncryption {
            algorithm,
            key,
            bson_type,
            attr: attr.clone(),
        });
    }
    Ok(match out {
        Some(e) => FieldAttr::Encrypted(Box::new(e)),
        None if seen => FieldAttr::Plain,
        None => FieldAttr::None,
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
fn not_encryptable(enc: &FieldEncryption, what: &str) -> syn::Error {
    syn::Error::new_spanned(
        &enc.attr,
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
    let declared_plain = match &enc {
        FieldAttr::Encrypted(enc) => {
            errors.push(not_encryptable(enc, what));
            return None;
        }
        FieldAttr::Plain => true,
        FieldAttr::None => false,
    };
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
        let declared_plain = matches!(enc, FieldAttr::Plain);
        let enc = match enc {
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
