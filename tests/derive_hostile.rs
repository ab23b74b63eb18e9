//! `#[derive(Encrypted)]`'s hostile list: types that reach encrypted fields
//! through wrappers, sequences, tuples, enums, custom serializers and
//! renames. Each is refused when its schema is made, or its schema encrypts
//! exactly what serde writes: every secret value lands on a path the schema
//! encrypts, and every path it encrypts is written. The refusals made at
//! compile time are `csfle-derive/tests/compile_fail/` (a plain field of a
//! type csfle does not know, `#[serde(into)]`/`remote`, encrypted fields in
//! enums, tuple structs and transparent structs, renames serde_derive
//! cannot make). A property test does the same over generated values of
//! every supported shape.

use bson::{Bson, Document};
use csfle::schema::{EncryptionSchema, FieldInfo, SchemaSource};
use csfle::{Encrypted, KeyId};
use proptest::prelude::*;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, LinkedList, VecDeque};
use std::marker::PhantomData;
use std::num::Wrapping;
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};

/// What marks a secret: every encrypted field of these types holds a string
/// containing it, and no plain field does.
const SECRET: &str = "SECRET";

fn is_secret(v: &Bson) -> bool {
    matches!(v, Bson::String(s) if s.contains(SECRET))
}

fn count_secrets(v: &Bson) -> usize {
    match v {
        Bson::Document(d) => d.values().map(count_secrets).sum(),
        Bson::Array(a) => a.iter().map(count_secrets).sum(),
        other => usize::from(is_secret(other)),
    }
}

fn no_alt_names(_: &str) -> Option<KeyId> {
    None
}

/// The type's schema, or why it is refused.
fn schema_of<T: Encrypted>() -> Result<Document, String> {
    T::schema_template()
        .to_json_schema(&no_alt_names)
        .map_err(|e| e.to_string())
}

/// The schema of `T` is refused, and the error says each of `expected`.
#[track_caller]
fn refused<T: Encrypted>(expected: &[&str]) {
    match schema_of::<T>() {
        Ok(schema) => panic!(
            "`{}` was not refused: {schema:?}",
            std::any::type_name::<T>()
        ),
        Err(e) => {
            for part in expected {
                assert!(e.contains(part), "{e}: expected to say {part:?}");
            }
        }
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Walks what serde wrote: a secret outside every encrypted path is a leak.
fn walk(schema: &EncryptionSchema, v: &Bson, path: &str, leaks: &mut Vec<String>) {
    match v {
        Bson::Document(d) => {
            for (name, value) in d {
                let here = child(path, name);
                match schema.field(&here) {
                    // All of it goes out as ciphertext.
                    FieldInfo::Encrypted(_) => {}
                    _ => walk(schema, value, &here, leaks),
                }
            }
        }
        // Arrays have no schema of their own: an element is at its array's
        // path (which is not encrypted, else the walk stopped above).
        Bson::Array(a) => a.iter().for_each(|e| walk(schema, e, path, leaks)),
        other => {
            if is_secret(other) {
                leaks.push(format!("{path} = {other}"));
            }
        }
    }
}

/// Every path the schema encrypts.
fn encrypted_paths(schema: &Document, path: &str, out: &mut Vec<String>) {
    let Ok(properties) = schema.get_document("properties") else {
        return;
    };
    for (name, sub) in properties {
        let here = child(path, name);
        let Bson::Document(sub) = sub else { continue };
        if sub.contains_key("encrypt") {
            out.push(here);
        } else {
            encrypted_paths(sub, &here, out);
        }
    }
}

fn lookup<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

/// The schema of `T` encrypts exactly what serde writes for `value`: no
/// secret outside an encrypted path, and (when `all_written`) every
/// encrypted path written. Returns how many secrets were written.
#[track_caller]
fn encrypts_exactly<T: Encrypted + Serialize>(value: &T, all_written: bool) -> usize {
    let schema_doc = schema_of::<T>().unwrap_or_else(|e| panic!("refused: {e}"));
    let schema = EncryptionSchema::parse(&schema_doc, SchemaSource::Local).unwrap();
    let written = bson::to_document(value).unwrap();
    let mut leaks = Vec::new();
    walk(&schema, &Bson::Document(written.clone()), "", &mut leaks);
    assert!(
        leaks.is_empty(),
        "secrets written in plaintext: {leaks:?}\nwritten: {written:?}\nschema: {schema_doc:?}"
    );
    if all_written {
        let mut paths = Vec::new();
        encrypted_paths(&schema_doc, "", &mut paths);
        for path in paths {
            assert!(
                lookup(&written, &path).is_some(),
                "'{path}' is encrypted but serde did not write it: {written:?}"
            );
        }
    }
    count_secrets(&Bson::Document(written))
}

/// A type with an encrypted field and a key of its own (a key id, so no
/// key vault is needed).
#[derive(Serialize, Encrypted, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[encrypted(key = "00000000-0000-0000-0000-000000000001")]
struct Inner {
    label: String,
    #[encrypted(deterministic)]
    secret: String,
}

fn inner() -> Inner {
    Inner {
        label: "plain".into(),
        secret: "SECRET-inner".into(),
    }
}

/// `held: $ty` next to an encrypted field of its own.
macro_rules! holder {
    ($($name:ident: $ty:ty;)*) => {$(
        #[derive(Serialize, Encrypted)]
        #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
        struct $name {
            #[encrypted(deterministic)]
            ssn: String,
            held: $ty,
        }
    )*};
}

holder! {
    HeldBox: Box<Inner>;
    HeldArc: Arc<Inner>;
    HeldRc: Rc<Inner>;
    HeldCow: Cow<'static, Inner>;
    HeldMutex: Mutex<Inner>;
    HeldRwLock: RwLock<Inner>;
    HeldRefCell: RefCell<Inner>;
    HeldReverse: Reverse<Inner>;
    HeldWrapping: Wrapping<Inner>;
    HeldOption: Option<Inner>;
    HeldRcMutexOption: Rc<Mutex<Option<Box<Inner>>>>;
    HeldTransparent: Transparent;
    HeldNewtype: Newtype;
    HeldPlainEnum: Status;
    HeldPlainEnums: Vec<Status>;
    HeldPhantom: PhantomData<Inner>;
    HeldCell: Cell<u32>;
    HeldTuple: (String, Inner);
    HeldLinkedList: LinkedList<Inner>;
    HeldBinaryHeap: BinaryHeap<Inner>;
    HeldVecDeque: VecDeque<Inner>;
    HeldArray: [Inner; 2];
    HeldVec: Vec<Inner>;
    HeldBTreeSet: BTreeSet<Inner>;
    HeldHashMap: HashMap<String, Inner>;
    HeldBTreeMap: BTreeMap<String, Inner>;
    HeldResult: Result<Inner, String>;
    HeldEnum: Choice;
    HeldTupleStruct: Pair;
    HeldOptionVec: Option<Vec<Inner>>;
    HeldRcVec: Rc<Vec<Inner>>;
    HeldNestedTuple: Vec<(u32, Option<Inner>)>;
}

/// Written as its one field.
#[derive(Serialize, Encrypted)]
#[serde(transparent)]
struct Transparent {
    inner: Inner,
}

/// Written as its one field.
#[derive(Serialize, Encrypted)]
struct Newtype(Inner);

/// An enum with no encrypted field anywhere: plain.
#[derive(Serialize, Encrypted)]
enum Status {
    Active,
    Moved { to: String },
    Code(u32),
}

/// An enum whose variant holds encrypted fields (never built: only its
/// schema is asked for, which is refused).
#[allow(dead_code)]
#[derive(Serialize, Encrypted)]
enum Choice {
    Nothing,
    Something(Inner),
}

/// Written as an array.
#[derive(Serialize, Encrypted)]
struct Pair(Inner, u32);

fn ssn() -> String {
    "SECRET-ssn".into()
}

/// `Rc`, `Cow`, `Mutex`, `RwLock`, `RefCell`, `Reverse`, `Wrapping`, `Box`,
/// `Arc`, `Option`, transparent structs and newtypes are written as what
/// they hold: the schema nests the held type's, and both secrets are
/// encrypted.
#[test]
fn wrappers_carry_their_contents_schema() {
    fn both<T: Encrypted + Serialize>(value: T) {
        assert_eq!(
            encrypts_exactly(&value, true),
            2,
            "{}",
            std::any::type_name::<T>()
        );
        let schema = schema_of::<T>().unwrap();
        let nested = schema
            .get_document("properties")
            .and_then(|p| p.get_document("held"))
            .and_then(|h| h.get_document("properties"))
            .unwrap_or_else(|e| panic!("{e}: {schema:?}"));
        assert!(nested.contains_key("secret"), "{schema:?}");
    }
    both(HeldBox {
        ssn: ssn(),
        held: Box::new(inner()),
    });
    both(HeldArc {
        ssn: ssn(),
        held: Arc::new(inner()),
    });
    both(HeldRc {
        ssn: ssn(),
        held: Rc::new(inner()),
    });
    both(HeldCow {
        ssn: ssn(),
        held: Cow::Owned(inner()),
    });
    both(HeldMutex {
        ssn: ssn(),
        held: Mutex::new(inner()),
    });
    both(HeldRwLock {
        ssn: ssn(),
        held: RwLock::new(inner()),
    });
    both(HeldRefCell {
        ssn: ssn(),
        held: RefCell::new(inner()),
    });
    both(HeldReverse {
        ssn: ssn(),
        held: Reverse(inner()),
    });
    both(HeldWrapping {
        ssn: ssn(),
        held: Wrapping(inner()),
    });
    both(HeldOption {
        ssn: ssn(),
        held: Some(inner()),
    });
    both(HeldRcMutexOption {
        ssn: ssn(),
        held: Rc::new(Mutex::new(Some(Box::new(inner())))),
    });
    both(HeldTransparent {
        ssn: ssn(),
        held: Transparent { inner: inner() },
    });
    both(HeldNewtype {
        ssn: ssn(),
        held: Newtype(inner()),
    });
}

/// Plain enums, `PhantomData` and `Cell` of plain values hold nothing
/// encrypted: only the holder's own field is.
#[test]
fn plain_shapes_are_plain() {
    fn one<T: Encrypted + Serialize>(value: T) {
        assert_eq!(
            encrypts_exactly(&value, true),
            1,
            "{}",
            std::any::type_name::<T>()
        );
        let schema = schema_of::<T>().unwrap();
        let properties = schema.get_document("properties").unwrap();
        assert_eq!(properties.keys().collect::<Vec<_>>(), ["ssn"], "{schema:?}");
    }
    one(HeldPlainEnum {
        ssn: ssn(),
        held: Status::Moved { to: "x".into() },
    });
    one(HeldPlainEnums {
        ssn: ssn(),
        held: vec![Status::Active, Status::Code(3)],
    });
    one(HeldPhantom {
        ssn: ssn(),
        held: PhantomData,
    });
    one(HeldCell {
        ssn: ssn(),
        held: Cell::new(7),
    });
}

/// Tuples, `LinkedList`, `BinaryHeap`, `VecDeque`, arrays, `Vec`, sets and
/// maps of a type with encrypted fields are refused as `Vec` is; so are
/// enums (`Result` too) whose variants hold one, and tuple structs.
#[test]
fn sequences_maps_tuples_and_enums_holding_encrypted_fields_are_refused() {
    let arrays = ["held", "sequence or map", "inside arrays"];
    refused::<HeldTuple>(&arrays);
    refused::<HeldLinkedList>(&arrays);
    refused::<HeldBinaryHeap>(&arrays);
    refused::<HeldVecDeque>(&arrays);
    refused::<HeldArray>(&arrays);
    refused::<HeldVec>(&arrays);
    refused::<HeldBTreeSet>(&arrays);
    refused::<HeldHashMap>(&arrays);
    refused::<HeldBTreeMap>(&arrays);
    refused::<HeldTupleStruct>(&arrays);
    refused::<HeldOptionVec>(&arrays);
    refused::<HeldRcVec>(&arrays);
    refused::<HeldNestedTuple>(&arrays);
    refused::<HeldResult>(&["held", "enum", "Result"]);
    refused::<HeldEnum>(&["held", "enum", "Choice"]);
}

fn label_only<S: serde::Serializer>(v: &Inner, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.label)
}

mod whole {
    pub fn serialize<S: serde::Serializer>(v: &super::Inner, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(v, s)
    }
}

/// `serialize_with` on a field whose type has encrypted fields: serde
/// writes whatever the function writes, which the type's schema does not
/// describe.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct CustomSerialized {
    #[serde(serialize_with = "label_only")]
    held: Inner,
}

/// `with` likewise (here it even writes the secret).
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct WithModule {
    #[serde(with = "whole")]
    held: Inner,
}

/// `#[encrypted(plain)]` on a type that has encrypted fields.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct DeclaredPlain {
    #[encrypted(plain)]
    held: Rc<Inner>,
}

/// The same one level down: the refusal reaches the type holding it.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct HoldsDeclaredPlain {
    #[encrypted(deterministic)]
    ssn: String,
    middle: DeclaredPlain,
}

/// `flatten` of a type with encrypted fields.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct FlattenedInner {
    #[serde(flatten)]
    held: Inner,
}

/// `#[encrypted(plain)]` on a foreign type csfle cannot see into, and
/// `with = "serde_bytes"`: plain, accepted.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct ForeignPlain {
    #[encrypted(deterministic)]
    ssn: String,
    #[encrypted(plain)]
    range: std::ops::Range<u32>,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

#[test]
fn custom_serializers_and_declared_plain_fields_holding_encrypted_fields_are_refused() {
    refused::<CustomSerialized>(&["held", "serialize_with", "plaintext"]);
    refused::<WithModule>(&["held", "serialize_with", "plaintext"]);
    refused::<DeclaredPlain>(&["held", "encrypted(plain)", "plaintext"]);
    refused::<HoldsDeclaredPlain>(&["held", "encrypted(plain)"]);
    refused::<FlattenedInner>(&["flatten", "Inner"]);
    assert_eq!(
        encrypts_exactly(
            &ForeignPlain {
                ssn: ssn(),
                range: 1..2,
                bytes: vec![1, 2],
            },
            true
        ),
        1
    );
}

/// The names serde writes under each `rename_all` rule, character for
/// character as serde_derive makes them, for names that are not snake_case
/// and names that are not ASCII.
#[test]
fn renames_are_serde_derives() {
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "lowercase")]
    #[allow(non_snake_case)]
    struct LowerNonSnake {
        #[encrypted(deterministic)]
        firstName: String,
        #[encrypted(random)]
        Last_Name: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "UPPERCASE")]
    #[allow(non_snake_case)]
    struct UpperNonSnake {
        #[encrypted(deterministic)]
        firstName: String,
        #[encrypted(deterministic)]
        straße: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "camelCase")]
    #[allow(non_snake_case)]
    struct CamelNonAscii {
        #[encrypted(deterministic)]
        größe_wert: String,
        #[encrypted(deterministic)]
        _private_note: String,
        #[encrypted(deterministic)]
        a__b: String,
        #[encrypted(deterministic)]
        x_1y: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "PascalCase")]
    struct PascalNonAscii {
        #[encrypted(deterministic)]
        ärger_wert: String,
        #[encrypted(deterministic)]
        straße_nr: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "SCREAMING-KEBAB-CASE")]
    struct ScreamingKebabNonAscii {
        #[encrypted(deterministic)]
        straße_nr: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all = "camelCase")]
    struct DeserializeOnlyRename {
        #[serde(rename(deserialize = "zip_in"))]
        #[encrypted(deterministic)]
        home_zip: String,
    }
    // Split renames: the deserialize-only one, after the serialize one
    // (in its own attribute or in the same), keeps the serialize name.
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    struct SplitRenames {
        #[encrypted(deterministic)]
        #[serde(rename(serialize = "taxId"))]
        #[serde(rename(deserialize = "tax_id"))]
        ssn: String,
        #[encrypted(deterministic)]
        #[serde(rename(serialize = "zipCode"), rename(deserialize = "zip"))]
        zip: String,
    }
    #[derive(Serialize, Encrypted)]
    #[encrypted(key = "00000000-0000-0000-0000-000000000002")]
    #[serde(rename_all(deserialize = "camelCase"))]
    struct DeserializeOnlyRule {
        #[encrypted(deterministic)]
        home_zip: String,
    }

    fn names<T: Encrypted + Serialize>(value: T, expected: &[&str]) {
        let n = expected.len();
        assert_eq!(
            encrypts_exactly(&value, true),
            n,
            "{}",
            std::any::type_name::<T>()
        );
        let schema = schema_of::<T>().unwrap();
        let properties = schema.get_document("properties").unwrap();
        assert_eq!(properties.keys().collect::<Vec<_>>(), expected);
        let written = bson::to_document(&value).unwrap();
        assert_eq!(written.keys().collect::<Vec<_>>(), expected);
    }
    let s = |t: &str| format!("SECRET-{t}");
    names(
        LowerNonSnake {
            firstName: s("a"),
            Last_Name: s("b"),
        },
        &["firstName", "Last_Name"],
    );
    names(
        UpperNonSnake {
            firstName: s("a"),
            straße: s("b"),
        },
        &["FIRSTNAME", "STRAßE"],
    );
    names(
        CamelNonAscii {
            größe_wert: s("a"),
            _private_note: s("b"),
            a__b: s("c"),
            x_1y: s("d"),
        },
        &["größeWert", "privateNote", "aB", "x1y"],
    );
    names(
        PascalNonAscii {
            ärger_wert: s("a"),
            straße_nr: s("b"),
        },
        &["ärgerWert", "StraßeNr"],
    );
    names(ScreamingKebabNonAscii { straße_nr: s("a") }, &["STRAßE-NR"]);
    names(DeserializeOnlyRename { home_zip: s("a") }, &["homeZip"]);
    names(DeserializeOnlyRule { home_zip: s("a") }, &["home_zip"]);
    names(
        SplitRenames {
            ssn: s("a"),
            zip: s("b"),
        },
        &["taxId", "zipCode"],
    );
}

/// Every supported shape at once, for the property test.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
#[serde(rename_all = "camelCase")]
struct Shapes {
    #[encrypted(deterministic)]
    top_secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[encrypted(random)]
    maybe_secret: Option<String>,
    #[encrypted(random)]
    secret_list: Vec<String>,
    #[encrypted(random)]
    secret_map: BTreeMap<String, String>,
    #[encrypted(random)]
    whole: Inner,
    #[serde(rename = "rénamed")]
    #[encrypted(random)]
    renamed: String,
    plain_text: String,
    plain_list: Vec<String>,
    boxed: Box<Inner>,
    rc: Rc<Inner>,
    arc: Arc<Inner>,
    mutex: Mutex<Inner>,
    refcell: RefCell<Inner>,
    cow: Cow<'static, Inner>,
    reverse: Reverse<Inner>,
    optional: Option<Inner>,
    transparent: Transparent,
    newtype: Newtype,
    status: Status,
    statuses: Vec<Status>,
    pair: (String, u32),
    outcome: Result<String, u32>,
    linked: LinkedList<String>,
    maybe_statuses: Option<Vec<Status>>,
    #[serde(flatten)]
    extra: BTreeMap<String, String>,
}

fn status(pick: u8, text: &str) -> Status {
    match pick % 3 {
        0 => Status::Active,
        1 => Status::Moved { to: text.into() },
        _ => Status::Code(u32::from(pick)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every value an `#[encrypted]` field holds, at any depth and through
    /// any supported wrapper, lands on a path the generated schema
    /// encrypts; plain values never do.
    #[test]
    fn every_secret_lands_on_an_encrypted_path(
        secrets in proptest::collection::vec("SECRET[a-z]{0,6}", 16),
        plains in proptest::collection::vec("[a-z]{0,8}", 16),
        present in proptest::collection::vec(any::<bool>(), 2),
        extra in proptest::collection::btree_map("x_[a-z]{1,5}", "[a-z]{0,5}", 0..4),
        picks in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let inner = |i: usize| Inner {
            label: plains[i].clone(),
            secret: secrets[i].clone(),
        };
        let value = Shapes {
            top_secret: secrets[0].clone(),
            maybe_secret: present[0].then(|| secrets[1].clone()),
            secret_list: vec![secrets[2].clone(), secrets[3].clone()],
            secret_map: BTreeMap::from([(plains[0].clone(), secrets[4].clone())]),
            whole: inner(5),
            renamed: secrets[6].clone(),
            plain_text: plains[1].clone(),
            plain_list: plains[2..5].to_vec(),
            boxed: Box::new(inner(7)),
            rc: Rc::new(inner(8)),
            arc: Arc::new(inner(9)),
            mutex: Mutex::new(inner(10)),
            refcell: RefCell::new(inner(11)),
            cow: Cow::Owned(inner(12)),
            reverse: Reverse(inner(13)),
            optional: present[1].then(|| inner(14)),
            transparent: Transparent { inner: inner(15) },
            newtype: Newtype(inner(6)),
            status: status(picks.first().copied().unwrap_or(0), &plains[5]),
            statuses: picks.iter().map(|p| status(*p, &plains[6])).collect(),
            pair: (plains[7].clone(), 7),
            outcome: if present[0] { Ok(plains[8].clone()) } else { Err(8) },
            linked: plains[9..12].iter().cloned().collect(),
            maybe_statuses: present[1].then(|| vec![status(1, &plains[12])]),
            extra,
        };
        let found = encrypts_exactly(&value, false);
        // Nothing was lost on the way: every secret put in was written (15
        // always there, and the two optional ones).
        let put = 15 + usize::from(present[0]) + usize::from(present[1]);
        prop_assert_eq!(found, put);
    }
}

/// The derive's table of plain types: fields of each compile without
/// `#[encrypted(plain)]`, add nothing to the schema, and the one secret is
/// encrypted.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "00000000-0000-0000-0000-000000000002")]
struct EveryPlain {
    #[encrypted(deterministic)]
    ssn: String,
    boolean: bool,
    character: char,
    unit: (),
    int: i32,
    long: i64,
    float: f64,
    text: String,
    static_text: &'static str,
    non_zero: std::num::NonZeroU32,
    atomic: std::sync::atomic::AtomicBool,
    ip: std::net::IpAddr,
    socket: std::net::SocketAddr,
    duration: std::time::Duration,
    path: std::path::PathBuf,
    value: Bson,
    document: Document,
    date: bson::DateTime,
    object_id: bson::oid::ObjectId,
    uuid: bson::Uuid,
    binary: bson::Binary,
    decimal: bson::Decimal128,
    timestamp: bson::Timestamp,
    regex: bson::Regex,
    bytes: serde_bytes::ByteBuf,
    json: serde_json::Value,
    set: std::collections::HashSet<String>,
    array: [u8; 4],
    // A Box around a plain value, on purpose: the shape under test.
    #[allow(clippy::box_collection)]
    nested_options: Option<Box<String>>,
    nested_vecs: Vec<Vec<i32>>,
    map: BTreeMap<String, Vec<u8>>,
    tuple: (i32, String),
    result: Result<i32, String>,
    cow: Cow<'static, str>,
    shared: Arc<str>,
    queue: VecDeque<u16>,
    list: LinkedList<i8>,
}

#[test]
fn the_table_of_plain_types_is_plain() {
    let value = EveryPlain {
        ssn: ssn(),
        boolean: true,
        character: 'x',
        unit: (),
        int: 1,
        long: 2,
        float: 1.5,
        text: "t".into(),
        static_text: "s",
        non_zero: std::num::NonZeroU32::MIN,
        atomic: std::sync::atomic::AtomicBool::new(true),
        ip: std::net::IpAddr::from([127, 0, 0, 1]),
        socket: std::net::SocketAddr::from(([127, 0, 0, 1], 27017)),
        duration: std::time::Duration::from_millis(1500),
        path: "/tmp/x".into(),
        value: Bson::Int32(3),
        document: bson::doc! {"a": 1},
        date: bson::DateTime::from_millis(0),
        object_id: bson::oid::ObjectId::from_bytes([1; 12]),
        uuid: bson::Uuid::from_bytes([2; 16]),
        binary: bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![1],
        },
        decimal: bson::Decimal128::from_bytes([0; 16]),
        timestamp: bson::Timestamp {
            time: 1,
            increment: 2,
        },
        regex: bson::Regex {
            pattern: "a".into(),
            options: String::new(),
        },
        bytes: serde_bytes::ByteBuf::from(vec![3]),
        json: serde_json::json!({"k": [1, "v"]}),
        set: ["a".to_owned()].into(),
        array: [1, 2, 3, 4],
        nested_options: Some(Box::new("o".into())),
        nested_vecs: vec![vec![1], vec![]],
        map: BTreeMap::from([("m".to_owned(), vec![1])]),
        tuple: (1, "t".into()),
        result: Ok(1),
        cow: Cow::Borrowed("c"),
        shared: Arc::from("a"),
        queue: VecDeque::from([1]),
        list: LinkedList::from([1]),
    };
    assert_eq!(encrypts_exactly(&value, true), 1);
    let schema = schema_of::<EveryPlain>().unwrap();
    let properties = schema.get_document("properties").unwrap();
    assert_eq!(properties.keys().collect::<Vec<_>>(), ["ssn"]);
}
