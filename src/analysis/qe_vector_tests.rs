//! Queryable Encryption query analysis against libmongocrypt's
//! mongocryptd replies: for each vendored directory (under
//! `tests/data/libmongocrypt/`, Apache-2.0, snapshot `3a65b40d`, read at
//! run time: a missing file fails the test), `cmd.json` is analysed with
//! the directory's `encryptedFields` and compared with the `result` of its
//! mongocryptd reply, `encryptionInformation` left out (it is added after
//! analysis): BSON byte-equal, placeholders included.
//!
//! Many of those replies were written by hand for libmongocrypt's own
//! tests (its payload code, not mongocryptd's analysis, is what they
//! test): their user key is not the field's, their range bounds not the
//! index's, their sparsity not the map's. Such a directory is compared
//! after a named normalisation applied to both sides (only the differing
//! part is taken out), refused where csfle refuses the command, or
//! skipped with its reason; each test prints what it checked and skipped,
//! directory by directory. Every placeholder of every reply read is also
//! re-written by `write_placeholder` from what it parses to, byte for
//! byte.

use super::{Analysis, Namespace, NamespaceSchema, analyze};
use crate::qe::encrypted_fields::{EncryptedFields, ParseMode};
use crate::qe::placeholder::{
    ENCRYPTION_PLACEHOLDER, Fle2Algorithm, Placeholder, PlaceholderParams, PlaceholderRequest,
    PlaceholderType, RangeBound, RangeIndexSpec, range_find_spec, range_insert_spec,
    write_placeholder,
};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, RawBsonRef, doc};
use std::path::PathBuf;

// The reader of the vendored libmongocrypt files, shared with the
// integration tests (one module for the crate: `crate::qe::test_vectors`).
use crate::qe::test_vectors as qe_vectors;

fn data(rel: &str) -> PathBuf {
    qe_vectors::data_dir().join(rel)
}

/// An Extended JSON file of the vendored data, field order kept.
fn ejson(rel: &str) -> Document {
    let path = data(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    qe_vectors::ejson_document(&text)
}

/// Where a directory's `encryptedFields` are.
#[derive(Clone, Copy)]
enum Fields {
    /// A map file `{ "db.coll": encryptedFields }`, one entry.
    Map(&'static str),
    /// `collinfo.json`'s `options.encryptedFields` (the namespace `db.` +
    /// its `name`).
    CollInfo,
}

/// A difference between csfle's output and a hand-made reply, taken out
/// of both before they are compared.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Normalise {
    /// The reply's `ku` is a key the map does not name (libmongocrypt's
    /// test key `ABCDEFAB…`): mongocryptd writes the field's key as both
    /// `ki` and `ku`. The reply's `ku` is set to its `ki`.
    UserKey,
    /// The reply's range bounds are not the index's (`0..1234567` for a
    /// map without bounds, `DBL_MIN` for a double's lowest): `min`/`max` of
    /// range insert specs dropped.
    RangeBounds,
    /// `trimFactor` of a range find's `edgesInfo`, which the reply writes
    /// (6) though the map sets none: dropped.
    TrimFactor,
    /// `s`, which the reply sets to 1 though the map's sparsity defaults
    /// to 2: dropped.
    Sparsity,
    /// The reply compares with a bare placeholder (`{f: P}`): csfle's
    /// `{f: {$eq: P}}` (mongocryptd's normalised form, as the
    /// specification's QE tests expect it) unwrapped.
    EqWrap,
    /// The reply's explain has no `verbosity`: csfle's (the server's
    /// default, as for FLE1) dropped.
    Verbosity,
    /// The reply echoes the `encryptionInformation` libmongocrypt sent
    /// mongocryptd inside the explained command (or, for `bulkWrite`,
    /// inside `nsInfo`'s entry): dropped from the reply. csfle's analysis
    /// answers the command as the application wrote it; finalization adds
    /// `encryptionInformation` (`qe::finalize`, whose tests compare it
    /// with `encrypted-payload.json`).
    EncryptionInformation,
    /// The reply has no `$db` (mongocryptd drops it; libmongocrypt appends
    /// the input's after analysis): csfle's, kept as written, dropped.
    DollarDb,
    /// The reply's placeholder is a range insert (`a` 3, `v` `{v, min: 0,
    /// max: 200}`, `s` 1) though its map makes the field equality-indexed
    /// (`bulkWrite/simple`: libmongocrypt's test matches the payload only
    /// as `$$type: binData`, so the reply's algorithm is never checked).
    /// The reply's placeholder is rewritten as the equality insert of the
    /// same value with the same keys and contention (`a` 2, `v` the
    /// value, no `s`), which is what mongocryptd sends for the map.
    RangeAsEquality,
}

/// What a directory is expected to give.
#[derive(Clone, Copy)]
enum Verdict {
    /// Equal to the reply, after these normalisations.
    Equal(&'static [Normalise]),
    /// Refused, the message containing this.
    Refused(&'static str),
    /// Not compared, for this reason (the analysis is still run: it must
    /// not panic).
    Skipped(&'static str),
}

struct Case {
    dir: &'static str,
    db: &'static str,
    fields: Fields,
    /// The reply file (`mongocryptd-reply.json` unless named).
    reply: &'static str,
    verdict: Verdict,
}

use Normalise::*;

const REPLY: &str = "mongocryptd-reply.json";

fn case(dir: &'static str, fields: Fields, verdict: Verdict) -> Case {
    Case {
        dir,
        db: "db",
        fields,
        reply: REPLY,
        verdict,
    }
}

const FIND_RANGE_FIXTURE: &str = "hand-made reply (the README: printed from mongo's Range_Allowed_Types unit test): an implicit equality answered with a bare $gt placeholder of payloadId 1234 over [0, 1234567]; how mongocryptd answers an equality on a range field is range-sends-cryptoParams/auto-find-int32, checked";

fn cases() -> Vec<Case> {
    let map = Fields::Map("encrypted-field-map.json");
    let config_map = Fields::Map("encrypted-field-config-map.json");
    let mut cases = vec![
        case("fle2-insert-v2", map, Verdict::Equal(&[UserKey])),
        case("fle2-insert-unindexed-v2", map, Verdict::Equal(&[UserKey])),
        case(
            "fle2-find-equality-v2",
            map,
            Verdict::Skipped(
                "its encryptedFields' bsonType 'int32' is no BSON type alias (refused by the parser, checked below), and the reply puts the placeholder under 'documents', which a find has not",
            ),
        ),
        case("fle2-delete/empty", config_map, Verdict::Equal(&[])),
        case(
            "fle2-delete/success",
            config_map,
            Verdict::Skipped(
                "hand-made reply: it marks 'value', which its encryptedFields do not list, with keys they do not name (csfle leaves the command unchanged)",
            ),
        ),
        case(
            "fle2-explain/with-mongocryptd",
            Fields::CollInfo,
            Verdict::Equal(&[UserKey, EqWrap, Verbosity, EncryptionInformation]),
        ),
        case(
            "fle2-explain/with-csfle",
            Fields::CollInfo,
            Verdict::Skipped("no mongocryptd reply: crypt_shared's case"),
        ),
        // Run on `admin` (its `$db`), writing to `db.test` (its nsInfo).
        Case {
            dir: "bulkWrite/simple",
            db: "admin",
            fields: map,
            reply: REPLY,
            verdict: Verdict::Equal(&[RangeAsEquality, EncryptionInformation, DollarDb]),
        },
        case(
            "range-sends-cryptoParams/auto-insert-int32",
            map,
            Verdict::Equal(&[]),
        ),
        case(
            "range-sends-cryptoParams/auto-find-int32",
            map,
            Verdict::Equal(&[TrimFactor]),
        ),
        case("no-trimFactor/insert", map, Verdict::Equal(&[Sparsity])),
        case("no-trimFactor/find", map, Verdict::Equal(&[Sparsity])),
    ];
    for ty in ["date", "double", "int32", "int64"] {
        cases.push(case(
            leak(format!("fle2-insert-range/{ty}-v2")),
            map,
            Verdict::Equal(&[UserKey, RangeBounds]),
        ));
    }
    for ty in ["decimal128", "double-precision"] {
        cases.push(case(
            leak(format!("fle2-insert-range/{ty}-v2")),
            map,
            Verdict::Equal(&[UserKey]),
        ));
    }
    for ty in [
        "date",
        "decimal128",
        "double",
        "double-precision",
        "int32",
        "int64",
    ] {
        cases.push(case(
            leak(format!("fle2-find-range/{ty}-v2")),
            map,
            Verdict::Skipped(FIND_RANGE_FIXTURE),
        ));
    }
    for dir in [
        "fle2-insert-range/decimal128-precision-v2",
        "fle2-find-range/decimal128-precision-v2",
    ] {
        cases.push(case(
            dir,
            map,
            Verdict::Refused("which csfle does not support"),
        ));
    }
    cases
}

/// A directory name built in a loop, for the `'static` case table.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The namespace and `encryptedFields` of a directory.
fn encrypted_fields(case: &Case) -> (String, Document) {
    match case.fields {
        Fields::Map(file) => {
            let map = ejson(&format!("{}/{file}", case.dir));
            assert_eq!(map.len(), 1, "{}: one namespace", case.dir);
            let (ns, fields) = map.into_iter().next().expect("one entry");
            let Bson::Document(fields) = fields else {
                panic!("{}: encryptedFields not a document", case.dir);
            };
            (ns, fields)
        }
        Fields::CollInfo => {
            let info = ejson(&format!("{}/collinfo.json", case.dir));
            let name = info.get_str("name").expect("collinfo name");
            let fields = info
                .get_document("options")
                .and_then(|o| o.get_document("encryptedFields"))
                .expect("options.encryptedFields")
                .clone();
            (format!("{}.{name}", case.db), fields)
        }
    }
}

/// `d` with `f` applied to every value (children first), `f` returning a
/// replacement or `None` to keep it.
fn map_values(d: &Document, f: &dyn Fn(&Bson) -> Option<Bson>) -> Document {
    let mut out = Document::new();
    for (k, v) in d {
        out.insert(k.clone(), map_value(v, f));
    }
    out
}

fn map_value(v: &Bson, f: &dyn Fn(&Bson) -> Option<Bson>) -> Bson {
    let v = match v {
        Bson::Document(d) => Bson::Document(map_values(d, f)),
        Bson::Array(items) => Bson::Array(items.iter().map(|i| map_value(i, f)).collect()),
        other => other.clone(),
    };
    f(&v).unwrap_or(v)
}

/// The document of a QE placeholder, if `v` is one.
fn placeholder_doc(v: &Bson) -> Option<Document> {
    match v {
        Bson::Binary(b)
            if b.subtype == BinarySubtype::Encrypted
                && b.bytes.first() == Some(&ENCRYPTION_PLACEHOLDER) =>
        {
            Some(Document::from_reader(&b.bytes[1..]).expect("placeholder BSON"))
        }
        _ => None,
    }
}

fn placeholder_bson(d: &Document) -> Bson {
    let mut bytes = vec![ENCRYPTION_PLACEHOLDER];
    d.to_writer(&mut bytes).expect("placeholder BSON");
    Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    })
}

/// Applies `n` to a reply's result (`reply: true`) or to csfle's output.
fn normalise(d: &Document, n: Normalise, reply: bool) -> Document {
    match n {
        UserKey if reply => map_values(d, &|v| {
            let mut p = placeholder_doc(v)?;
            let ki = p.get("ki").cloned().expect("ki");
            p.insert("ku", ki);
            Some(placeholder_bson(&p))
        }),
        RangeBounds | TrimFactor | Sparsity => map_values(d, &|v| {
            let mut p = placeholder_doc(v)?;
            match n {
                Sparsity => {
                    p.remove("s");
                }
                _ => {
                    if let Ok(spec) = p.get_document_mut("v") {
                        if n == RangeBounds {
                            spec.remove("min");
                            spec.remove("max");
                        }
                        if n == TrimFactor
                            && let Ok(edges) = spec.get_document_mut("edgesInfo")
                        {
                            edges.remove("trimFactor");
                        }
                    }
                }
            }
            Some(placeholder_bson(&p))
        }),
        EqWrap if !reply => map_values(d, &|v| match v {
            Bson::Document(op) if op.len() == 1 => {
                let inner = op.get("$eq")?;
                placeholder_doc(inner).map(|_| inner.clone())
            }
            _ => None,
        }),
        EncryptionInformation if reply => {
            let mut out = d.clone();
            out.remove("encryptionInformation");
            if let Ok(explained) = out.get_document_mut("explain") {
                explained.remove("encryptionInformation");
            }
            if let Ok(entries) = out.get_array_mut("nsInfo") {
                for entry in entries {
                    if let Bson::Document(entry) = entry {
                        entry.remove("encryptionInformation");
                    }
                }
            }
            out
        }
        DollarDb if !reply => {
            let mut out = d.clone();
            out.remove("$db");
            out
        }
        RangeAsEquality if reply => map_values(d, &|v| {
            let p = placeholder_doc(v)?;
            if p.get_i32("t").ok() != Some(1) || p.get_i32("a").ok() != Some(3) {
                return None;
            }
            let value = p.get_document("v").ok()?.get("v")?.clone();
            Some(placeholder_bson(&doc! {
                "t": 1,
                "a": 2,
                "ki": p.get("ki")?.clone(),
                "ku": p.get("ku")?.clone(),
                "v": value,
                "cm": p.get("cm")?.clone(),
            }))
        }),
        Verbosity if !reply => {
            let mut out = d.clone();
            out.remove("verbosity");
            out
        }
        _ => d.clone(),
    }
}

fn bytes(d: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    d.to_writer(&mut out).expect("BSON");
    out
}

/// Every placeholder in `v`, in document order.
fn placeholders(v: &Bson, out: &mut Vec<Vec<u8>>) {
    match v {
        Bson::Document(d) => d.values().for_each(|v| placeholders(v, out)),
        Bson::Array(items) => items.iter().for_each(|v| placeholders(v, out)),
        Bson::Binary(b)
            if b.subtype == BinarySubtype::Encrypted
                && b.bytes.first() == Some(&ENCRYPTION_PLACEHOLDER) =>
        {
            out.push(b.bytes.clone());
        }
        _ => {}
    }
}

/// A raw value as an owned one.
fn owned(v: RawBsonRef<'_>) -> Bson {
    Bson::try_from(v).expect("a BSON value")
}

/// `write_placeholder` writes `blob` back from what it parses to.
fn rewrites(blob: &[u8]) -> bool {
    let p = Placeholder::parse(blob).expect("placeholder");
    let params = PlaceholderParams {
        index_key_id: p.index_key_id,
        user_key_id: p.user_key_id,
        max_contention: p.max_contention,
        sparsity: p.sparsity,
    };
    let written = match (p.algorithm, p.kind) {
        (Fle2Algorithm::Range, PlaceholderType::Insert) => {
            let spec = range_insert_spec(p.value).expect("range insert spec");
            let (value, min, max) = (owned(spec.value), owned(spec.min), owned(spec.max));
            let request = PlaceholderRequest::RangeInsert {
                value: &value,
                index: RangeIndexSpec {
                    min: &min,
                    max: &max,
                    precision: spec.precision,
                    trim_factor: spec.trim_factor,
                },
            };
            write_placeholder(&request, &params)
        }
        (Fle2Algorithm::Range, PlaceholderType::Find) => {
            let spec = range_find_spec(p.value).expect("range find spec");
            match spec.edges {
                None => write_placeholder(
                    &PlaceholderRequest::RangeStub {
                        payload_id: spec.payload_id,
                        first: spec.first_operator,
                        second: spec.second_operator,
                    },
                    &params,
                ),
                Some(e) => {
                    let (lower, upper) = (owned(e.lower_bound), owned(e.upper_bound));
                    let (min, max) = (owned(e.index_min), owned(e.index_max));
                    let request = PlaceholderRequest::RangeFind {
                        lower: Some(RangeBound {
                            value: &lower,
                            included: e.lower_included,
                        }),
                        upper: Some(RangeBound {
                            value: &upper,
                            included: e.upper_included,
                        }),
                        index: RangeIndexSpec {
                            min: &min,
                            max: &max,
                            precision: e.precision,
                            trim_factor: e.trim_factor,
                        },
                        payload_id: spec.payload_id,
                        first: spec.first_operator,
                        second: spec.second_operator,
                    };
                    write_placeholder(&request, &params)
                }
            }
        }
        (algorithm, kind) => {
            let value = owned(p.value);
            let request = match (algorithm, kind) {
                (Fle2Algorithm::Unindexed, _) => PlaceholderRequest::UnindexedInsert(&value),
                (Fle2Algorithm::Equality, PlaceholderType::Insert) => {
                    PlaceholderRequest::EqualityInsert(&value)
                }
                (Fle2Algorithm::Equality, PlaceholderType::Find) => {
                    PlaceholderRequest::EqualityFind(&value)
                }
                _ => return false,
            };
            write_placeholder(&request, &params)
        }
    };
    written.is_ok_and(|w| w == blob)
}

/// What one directory gave: checked (with its normalisations) or
/// skipped (with its reason).
fn run(case: &Case) -> Result<String, String> {
    let cmd = ejson(&format!("{}/cmd.json", case.dir));
    let (ns, fields_doc) = encrypted_fields(case);
    let mode = match case.fields {
        Fields::Map(_) => ParseMode::Map,
        Fields::CollInfo => ParseMode::Remote,
    };
    let parsed = EncryptedFields::from_document(&fields_doc, mode);
    let fields = match (&parsed, case.verdict) {
        (Ok(f), _) => f,
        (Err(e), Verdict::Skipped(reason)) => {
            return Err(format!("{reason} (encryptedFields refused: {e})"));
        }
        (Err(e), _) => panic!("{}: encryptedFields refused: {e}", case.dir),
    };
    let lookup = |n: &Namespace| {
        if n.to_string() == ns {
            NamespaceSchema::Queryable(fields)
        } else {
            NamespaceSchema::Known(None)
        }
    };
    let result = analyze(&cmd, case.db, &lookup);
    let normalisations = match case.verdict {
        Verdict::Skipped(reason) => return Err(reason.to_owned()),
        Verdict::Refused(words) => {
            let e = match result {
                Err(e) => e.to_string(),
                Ok(a) => panic!("{}: not refused: {a:?}", case.dir),
            };
            assert!(e.contains(words), "{}: refused, but: {e}", case.dir);
            return Ok(format!("refused ({e})"));
        }
        Verdict::Equal(normalisations) => normalisations,
    };
    let expected = ejson(&format!("{}/{}", case.dir, case.reply));
    let marked = expected
        .get_bool("hasEncryptedPlaceholders")
        .or_else(|_| expected.get_bool("hasEncryptionPlaceholders"))
        .expect("the reply says whether it has placeholders");
    let mut want = expected.get_document("result").expect("result").clone();
    want.remove("encryptionInformation");
    let got = match result {
        Err(e) => panic!("{}: refused: {e}", case.dir),
        Ok(Analysis::Unchanged) => {
            assert!(
                !marked,
                "{}: unchanged, the reply has placeholders",
                case.dir
            );
            return Ok("unchanged, as the reply".to_owned());
        }
        Ok(Analysis::Marked(m)) => m,
    };
    assert!(
        marked,
        "{}: placeholders the reply has not: {got}",
        case.dir
    );
    let (mut got, mut want) = (got, want);
    for n in normalisations {
        got = normalise(&got, *n, false);
        want = normalise(&want, *n, true);
    }
    assert_eq!(got, want, "{}", case.dir);
    assert_eq!(bytes(&got), bytes(&want), "{}: field order", case.dir);
    Ok(if normalisations.is_empty() {
        "equal".to_owned()
    } else {
        format!("equal after {normalisations:?}")
    })
}

#[test]
fn mongocryptd_replies() {
    let (mut checked, mut skipped) = (0, 0);
    for case in cases() {
        match run(&case) {
            Ok(how) => {
                checked += 1;
                eprintln!("{}: checked, {how}", case.dir);
            }
            Err(reason) => {
                skipped += 1;
                eprintln!("{}: skipped: {reason}", case.dir);
            }
        }
    }
    eprintln!("mongocryptd replies: {checked} checked, {skipped} skipped");
    assert!(checked >= 17, "{checked} checked");
}

/// The reasons of the skips, checked.
#[test]
fn skipped_directories_are_what_their_reasons_say() {
    // fle2-find-equality-v2: `int32` is refused.
    let (_, doc) = encrypted_fields(&case(
        "fle2-find-equality-v2",
        Fields::Map("encrypted-field-map.json"),
        Verdict::Skipped(""),
    ));
    let e = EncryptedFields::from_document(&doc, ParseMode::Map).unwrap_err();
    assert!(e.to_string().contains("int32"), "{e}");
    // fle2-delete/success: `value` is not encrypted, the command goes out
    // unchanged.
    let c = case(
        "fle2-delete/success",
        Fields::Map("encrypted-field-config-map.json"),
        Verdict::Skipped(""),
    );
    let (ns, doc) = encrypted_fields(&c);
    let fields = EncryptedFields::from_document(&doc, ParseMode::Map).unwrap();
    assert!(fields.field("value").is_none());
    let cmd = ejson("fle2-delete/success/cmd.json");
    let lookup = |n: &Namespace| {
        if n.to_string() == ns {
            NamespaceSchema::Queryable(&fields)
        } else {
            NamespaceSchema::Known(None)
        }
    };
    assert_eq!(analyze(&cmd, "db", &lookup).unwrap(), Analysis::Unchanged);
}

/// `qe_keyAltName`: the field names its key by `keyAltName` (the map of
/// libmongocrypt's `_test_qe_keyAltName`); refused until resolved, then
/// the reply, byte for byte (its `ki` and `ku` are the key document's
/// id). Its `create` command passes unchanged.
#[test]
fn key_alt_name() {
    let mut fields = EncryptedFields::from_document(
        &doc! {"fields": [{"path": "secret", "bsonType": "string", "keyAltName": "keyDocumentName"}]},
        ParseMode::Map,
    )
    .unwrap();
    let mut cmd = ejson("qe_keyAltName/cmd-to-mongocryptd.json");
    cmd.remove("encryptionInformation");
    assert_eq!(
        cmd,
        doc! {"insert": "coll", "documents": [{"secret": "bar"}]}
    );
    {
        let lookup = |_: &Namespace| NamespaceSchema::Queryable(&fields);
        let e = analyze(&cmd, "db", &lookup).unwrap_err().to_string();
        assert!(e.contains("secret") && e.contains("not resolved"), "{e}");
    }
    let key = ejson("qe_keyAltName/key-document.json");
    let Some(Bson::Binary(id)) = key.get("_id") else {
        panic!("key document _id");
    };
    let id: [u8; 16] = id.bytes.clone().try_into().expect("16 bytes");
    fields.resolve_keys(|_| Some(id)).unwrap();
    let lookup = |_: &Namespace| NamespaceSchema::Queryable(&fields);
    let Analysis::Marked(got) = analyze(&cmd, "db", &lookup).unwrap() else {
        panic!("not marked");
    };
    let reply = ejson("qe_keyAltName/reply-from-mongocryptd.json");
    let mut want = reply.get_document("result").unwrap().clone();
    want.remove("encryptionInformation");
    assert_eq!(bytes(&got), bytes(&want));
    let create = ejson("qe_keyAltName/create/cmd.json");
    assert_eq!(
        analyze(&create, "db", &lookup).unwrap(),
        Analysis::Unchanged
    );
    let create_reply = ejson("qe_keyAltName/create/reply-from-mongocryptd.json");
    assert!(!create_reply.get_bool("hasEncryptionPlaceholders").unwrap());
}

/// Every placeholder of every reply read here, parsed and written back by
/// `write_placeholder`, byte for byte.
#[test]
fn every_reply_placeholder_is_rewritten_byte_for_byte() {
    let mut files: Vec<String> = cases()
        .iter()
        .filter(|c| !matches!(c.verdict, Verdict::Skipped(r) if r.starts_with("no mongocryptd")))
        .map(|c| format!("{}/{}", c.dir, c.reply))
        .collect();
    files.push("qe_keyAltName/reply-from-mongocryptd.json".to_owned());
    let mut seen = 0;
    for f in &files {
        let mut found = Vec::new();
        placeholders(&Bson::Document(ejson(f)), &mut found);
        for blob in found {
            assert!(rewrites(&blob), "{f}: a placeholder not written back");
            seen += 1;
        }
    }
    eprintln!(
        "{seen} placeholders of {} replies written back",
        files.len()
    );
    assert!(seen >= 25, "{seen} placeholders");
}
