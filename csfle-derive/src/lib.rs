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
//! }
//! ```
//!
//! On the type: `key = "<alt name or UUID>"`, or `inherit_key` (the type
//! names no key and takes the one of the type that contains it). On a
//! field: `deterministic` or `random`, then optionally one of `key = "…"`
//! and `key_pointer = "/field"` (random only), and `bson_type = "…"` (the
//! `$jsonSchema` type name, for types serde renders differently). serde's
//! `rename`, `rename_all`, `skip`, `skip_serializing`, `flatten` and
//! `skip_serializing_if` are read so the schema names what serde writes.
//!
//! Refused at compile time, on the offending field: deterministic
//! encryption of a type the specification forbids (floats, `bool`,
//! documents, arrays, …), `key_pointer` with deterministic, encryption of
//! `_id`, an unknown attribute, an encrypted field without a key, an
//! encrypted `Option<T>` that would serialize `None` as `null`, an encrypted
//! field serde skips or flattens, an encrypted field serde writes through
//! `with`/`serialize_with` without a `bson_type`, a type whose BSON type is
//! unknown, generic types.

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
    rename_all: Option<String>,
}

fn type_attrs(input: &DeriveInput) -> syn::Result<TypeAttrs> {
    let mut out = TypeAttrs {
        key: None,
        inherit_key: false,
        rename_all: None,
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
                    out.rename_all = Some(serialize_name(&meta)?);
                } else if meta.path.is_ident("transparent") {
                    return Err(meta.error(
                        "`#[serde(transparent)]` serializes the type as its one field: encrypt that field where the type is used instead",
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
/// `rename(serialize = "…", deserialize = "…")`.
fn serialize_name(meta: &ParseNestedMeta) -> syn::Result<String> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        return Ok(lit.value());
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
    found.ok_or_else(|| meta.error("no `serialize` name"))
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

/// serde's `rename_all` rules, applied to a field's (snake_case) name.
fn rename(rule: &str, name: &str, span: Span) -> syn::Result<String> {
    let pascal = || {
        let mut out = String::new();
        let mut upper = true;
        for c in name.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    Ok(match rule {
        "lowercase" => name.to_ascii_lowercase(),
        "UPPERCASE" => name.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut chars = p.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => p,
            }
        }
        "snake_case" => name.to_owned(),
        "SCREAMING_SNAKE_CASE" => name.to_ascii_uppercase(),
        "kebab-case" => name.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => name.to_ascii_uppercase().replace('_', "-"),
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

fn field_encryption(field: &syn::Field) -> syn::Result<Option<FieldEncryption>> {
    let mut out: Option<FieldEncryption> = None;
    for attr in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("encrypted"))
    {
        if out.is_some() {
            return Err(syn::Error::new_spanned(
                attr,
                "one `#[encrypted(…)]` per field",
            ));
        }
        let mut algorithm = None;
        let mut key = None;
        let mut pointer: Option<LitStr> = None;
        let mut bson_type = None;
        attr.parse_nested_meta(|meta| {
            let set_algorithm = |a: &mut Option<Algorithm>, v| {
                if a.is_some() {
                    return Err(meta.error("choose one of `deterministic` and `random`"));
                }
                *a = Some(v);
                Ok(())
            };
            if meta.path.is_ident("deterministic") {
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
                    "unknown `encrypted` attribute on a field: expected `deterministic`, `random`, `key = \"…\"`, `key_pointer = \"/…\"` or `bson_type = \"…\"`",
                ));
            }
            Ok(())
        })?;
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
    Ok(out)
}

fn serde_field(field: &syn::Field) -> syn::Result<SerdeField> {
    let mut out = SerdeField::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                out.rename = Some(serialize_name(&meta)?);
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

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "`#[derive(Encrypted)]` needs a type without generic parameters: the fields' types must be known to tell which hold encrypted fields",
        ));
    }
    let Data::Struct(syn::DataStruct {
        fields: Fields::Named(fields),
        ..
    }) = &input.data
    else {
        return Err(syn::Error::new(
            name.span(),
            "`#[derive(Encrypted)]` needs a struct with named fields (a document)",
        ));
    };
    let fields = &fields.named;
    let attrs = type_attrs(input)?;
    let mut entries = Vec::new();
    let mut checks = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push_error = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for field in fields {
        let ident = field.ident.as_ref().expect("named field");
        let rust_field = ident.unraw().to_string();
        let ty = &field.ty;
        let (enc, serde) = match (field_encryption(field), serde_field(field)) {
            (Ok(e), Ok(s)) => (e, s),
            (Err(e), _) | (_, Err(e)) => {
                push_error(e);
                continue;
            }
        };
        let serialized = match (&serde.rename, &attrs.rename_all) {
            (Some(r), _) => r.clone(),
            (None, Some(rule)) => match rename(rule, &rust_field, ident.span()) {
                Ok(n) => n,
                Err(e) => {
                    push_error(e);
                    continue;
                }
            },
            (None, None) => rust_field.clone(),
        };
        let Some(enc) = enc else {
            if serde.skip {
                continue;
            }
            let probe = quote_spanned! {ty.span()=>
                {
                    #[allow(unused_imports)]
                    use __p::{ViaNestedSchema as _, ViaPlain as _};
                    (&&__p::Probe::<#ty>::new()).nested()
                }
            };
            let shape = if serde.flatten {
                quote!(__p::FieldShape::Flattened(#probe))
            } else {
                quote!(__p::FieldShape::Nested(#probe))
            };
            entries.push(quote! {
                __p::FieldTemplate { name: #serialized, rust_field: #rust_field, shape: #shape }
            });
            continue;
        };
        if serde.skip {
            push_error(syn::Error::new_spanned(
                &enc.attr,
                "this field is encrypted but serde skips it: it would never be stored",
            ));
            continue;
        }
        if serde.flatten {
            push_error(syn::Error::new_spanned(
                &enc.attr,
                "a `#[serde(flatten)]` field cannot be encrypted: its fields are written into the parent document; encrypt them in their own type",
            ));
            continue;
        }
        if serialized == "_id" {
            push_error(syn::Error::new(
                ident.span(),
                "`_id` cannot be encrypted (the FLE1 specification refuses it: the server must see the primary key)",
            ));
            continue;
        }
        if enc.key.is_none() && attrs.key.is_none() && !attrs.inherit_key {
            push_error(syn::Error::new(
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
            push_error(syn::Error::new_spanned(
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
                    push_error(option_error(ty.span(), &rust_field));
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
                    checks.push(quote_spanned! {ty.span()=>
                        const _: () = if !__p::deterministic_allows(
                            <#ty as __p::EncryptedBsonType>::BSON_TYPE
                        ) {
                            ::core::panic!(#message)
                        };
                    });
                }
                if !serde.skip_if_none {
                    let message = option_message(&rust_field);
                    checks.push(quote_spanned! {ty.span()=>
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
    if let Some(e) = errors {
        return Err(e);
    }
    let type_key = Key::option_tokens(&attrs.key);
    let inherit_key = attrs.inherit_key;
    Ok(quote! {
        const _: () = {
            use ::csfle::schema::typed::__private as __p;

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

            impl __p::NestedSchema for #name {
                fn nested() -> __p::Nested {
                    __p::object_of::<Self>()
                }
            }

            #(#checks)*
        };
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
