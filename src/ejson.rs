//! MongoDB Extended JSON lines, as the `csfle` command line reads and writes them.
//!
//! Input may be canonical or relaxed Extended JSON v2: a relaxed integer is an
//! int32 when it fits, else an int64; a relaxed number with a fraction or
//! exponent is a double. Output is compact canonical Extended JSON with the
//! input's key order, so every BSON type survives a round trip exactly.

use bson::{Bson, Document};
use serde_json::{Map, Value};

/// Why a line is not an Extended JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not valid Extended JSON.
    #[error("invalid Extended JSON: {0}")]
    ExtendedJson(String),
    /// Valid, but not a document.
    #[error("expected a JSON object")]
    NotADocument,
}

/// What is wrong with a JSON text, without quoting it: the parser's fixed
/// description of a syntax error and its position. (A data error's text can
/// quote the input, which may be a plaintext or key material.)
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => e.to_string(),
        Category::Io => format!("cannot read the input at line {}", e.line()),
        Category::Data => format!(
            "unexpected value at line {} column {}",
            e.line(),
            e.column()
        ),
    }
}

/// What is wrong with an Extended JSON value, without quoting it: the
/// converter's messages can contain the value (a malformed `$binary` would
/// print the key material it holds), so only the part that names what was
/// expected is kept.
pub fn describe_extjson_error(e: &bson::extjson::de::Error) -> String {
    let message = match e {
        bson::extjson::de::Error::InvalidObjectId(_) => return "invalid $oid".into(),
        other => other.to_string(),
    };
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .filter(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '$' || c == '_')
        })
    {
        return format!("malformed Extended JSON value: missing field '{field}'");
    }
    match message.rsplit_once(", expected ") {
        Some((_, expected))
            if expected.len() <= 80
                && expected
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " $_-.,'".contains(c)) =>
        {
            format!("malformed Extended JSON value: expected {expected}")
        }
        _ => "malformed Extended JSON value".into(),
    }
}

/// Parses one line of Extended JSON into a document. Errors describe the
/// problem and never quote the line.
pub fn parse_document(line: &str) -> Result<Document, Error> {
    // The common line (a document whose fields are plain values, arrays,
    // documents and Extended JSON values) is built as it is read; any
    // other line, and every line that fails, is parsed again by the
    // reference path below, whose answer and error it is.
    if let Some(doc) = parse_direct(line) {
        return Ok(doc);
    }
    parse_through_value(line)
}

/// [`parse_document`] through a `serde_json::Value` of the whole line,
/// converted by the `bson` crate: the reference the direct path matches.
fn parse_through_value(line: &str) -> Result<Document, Error> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| Error::Json(describe_json_error(&e)))?;
    if !value.is_object() {
        return Err(Error::NotADocument);
    }
    match Bson::try_from(value).map_err(|e| Error::ExtendedJson(describe_extjson_error(&e)))? {
        Bson::Document(d) => Ok(d),
        _ => Err(Error::NotADocument),
    }
}

/// `line` read straight into a document, without a `serde_json::Value` of
/// the whole line: `None` where the direct reading stops (any error, a
/// document whose first name starts with '$' at the top, a name starting
/// with '$' after a first that does not), for the reference path to
/// decide. Where it returns a document, it is the reference path's: JSON
/// numbers, strings, booleans, nulls and arrays are converted as the `bson`
/// crate converts them, a JSON object whose first name starts with '$' is
/// collected as the reference path collects it and handed to the same
/// `bson` conversion, and any other object is a document, as `bson` makes
/// an object without its Extended JSON names.
fn parse_direct(line: &str) -> Option<Document> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(line);
    let doc = DirectDocument.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(doc)
}

/// The top-level object of [`parse_direct`]: only a document.
struct DirectDocument;

impl<'de> serde::de::DeserializeSeed<'de> for DirectDocument {
    type Value = Document;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Document, D::Error> {
        d.deserialize_map(DirectVisitor { top: true })
            .and_then(|v| match v {
                Bson::Document(doc) => Ok(doc),
                _ => Err(serde::de::Error::custom("not a document")),
            })
    }
}

/// One JSON value of [`parse_direct`], as `bson`'s conversion makes it.
struct DirectValue;

impl<'de> serde::de::DeserializeSeed<'de> for DirectValue {
    type Value = Bson;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Bson, D::Error> {
        d.deserialize_any(DirectVisitor { top: false })
    }
}

struct DirectVisitor {
    /// The line's own object: one whose first name starts with '$' is left
    /// to the reference path (it may be a value, not a document).
    top: bool,
}

impl<'de> serde::de::Visitor<'de> for DirectVisitor {
    type Value = Bson;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Bson, E> {
        Ok(Bson::Boolean(v))
    }

    // Numbers as `serde_json::Number` holds them and `bson` reads them: an
    // integer that fits i64 is an int32 when it fits one, else an int64;
    // a larger one (u64) and a fraction are doubles.
    fn visit_i64<E>(self, v: i64) -> Result<Bson, E> {
        Ok(integer(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Bson, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => integer(i),
            Err(_) => Bson::Double(v as f64),
        })
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Bson, E> {
        // `serde_json::Value` makes a non-finite number null; the parser
        // never gives one, but the reference path decides.
        if v.is_finite() {
            Ok(Bson::Double(v))
        } else {
            Err(E::custom("not a finite number"))
        }
    }

    fn visit_str<E>(self, v: &str) -> Result<Bson, E> {
        Ok(Bson::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Bson, E> {
        Ok(Bson::String(v))
    }

    fn visit_unit<E>(self) -> Result<Bson, E> {
        Ok(Bson::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bson, A::Error> {
        let mut values = Vec::new();
        while let Some(v) = seq.next_element_seed(DirectValue)? {
            values.push(v);
        }
        Ok(Bson::Array(values))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Bson, A::Error> {
        use serde::de::Error as _;
        let mut doc = Document::new();
        let Some(first) = map.next_key::<String>()? else {
            return Ok(Bson::Document(doc));
        };
        if first.starts_with('$') {
            if self.top {
                return Err(A::Error::custom("left to the reference path"));
            }
            // Collected as `serde_json::Value` collects an object, and
            // converted by `bson` as the reference path converts it.
            let mut object = Map::new();
            object.insert(first, map.next_value::<Value>()?);
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                object.insert(k, v);
            }
            return Bson::try_from(object)
                .map_err(|_| A::Error::custom("left to the reference path"));
        }
        // A name given twice keeps its first place and its last value, as
        // `serde_json::Map` (preserve_order) and `Document` both do.
        let value = map.next_value_seed(DirectValue)?;
        doc.insert(first, value);
        while let Some(k) = map.next_key::<String>()? {
            if k.starts_with('$') {
                // `bson` reads such an object as an Extended JSON value
                // when the name is one of its own: not a plain document.
                return Err(A::Error::custom("left to the reference path"));
            }
            let value = map.next_value_seed(DirectValue)?;
            doc.insert(k, value);
        }
        Ok(Bson::Document(doc))
    }
}

/// A JSON integer that fits i64, as `bson` reads it.
fn integer(v: i64) -> Bson {
    match i32::try_from(v) {
        Ok(i) => Bson::Int32(i),
        Err(_) => Bson::Int64(v),
    }
}

/// The canonical Extended JSON of a value.
pub fn to_canonical(value: &Bson) -> Value {
    match value {
        Bson::Double(f) => {
            let s = if f.is_nan() {
                "NaN".to_owned()
            } else if f.is_infinite() {
                if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
            } else {
                // `{:?}` is the shortest string that parses back to the same
                // f64, with a '.0' or an exponent: never a bare integer.
                format!("{f:?}")
            };
            serde_json::json!({ "$numberDouble": s })
        }
        Bson::Document(d) => Value::Object(document_map(d)),
        Bson::Array(a) => Value::Array(a.iter().map(to_canonical).collect()),
        Bson::JavaScriptCodeWithScope(c) => serde_json::json!({
            "$code": c.code,
            "$scope": Value::Object(document_map(&c.scope)),
        }),
        other => other.clone().into_canonical_extjson(),
    }
}

fn document_map(d: &Document) -> Map<String, Value> {
    d.iter()
        .map(|(k, v)| (k.clone(), to_canonical(v)))
        .collect()
}

/// A document as one line of compact canonical Extended JSON (no newline).
pub fn to_canonical_line(doc: &Document) -> String {
    Value::Object(document_map(doc)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use proptest::prelude::*;

    #[test]
    fn relaxed_numbers() {
        let d = parse_document(r#"{"a": 1, "b": 3000000000, "c": 1.5, "d": 1e3}"#).unwrap();
        assert_eq!(
            d,
            doc! {"a": 1_i32, "b": 3_000_000_000_i64, "c": 1.5, "d": 1000.0}
        );
    }

    #[test]
    fn canonical_round_trip_keeps_order_and_types() {
        let line = r#"{"z":{"$numberInt":"1"},"a":{"$numberLong":"2"},"m":{"$numberDouble":"1.0"},"n":{"$numberDouble":"5e-324"},"x":{"$numberDouble":"-Infinity"}}"#;
        let d = parse_document(line).unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), ["z", "a", "m", "n", "x"]);
        assert_eq!(to_canonical_line(&d), line);
    }

    #[test]
    fn errors_never_quote_the_input() {
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkw";
        for line in [
            format!(r#"{{"k": {{"$binary": {{"base64": "{secret}!", "subType": "00"}}}}}}"#),
            format!(r#"{{"k": {{"$binary": {{"base64": "{secret}", "subType": "zz"}}}}}}"#),
            format!(r#"{{"k": {{"$binary": "{secret}"}}}}"#),
            format!(r#"{{"k": {{"$numberInt": "{secret}"}}}}"#),
            format!(r#"{{"k": {{"$date": "{secret}"}}}}"#),
            format!(r#"{{"k": {{"$oid": "{secret}"}}}}"#),
            format!(r#"{{"k": {{"$uuid": "{secret}"}}}}"#),
            format!(r#"{{"k": "{secret}" "#),
        ] {
            let e = parse_document(&line).unwrap_err().to_string();
            assert!(!e.contains(&secret[..8]), "{e}");
        }
    }

    /// A JSON text for the equivalence property: objects (names given
    /// twice, names starting with '$', Extended JSON values well and badly
    /// formed), arrays, every kind of number, strings with escapes.
    fn json_text() -> impl Strategy<Value = String> {
        let quoted = |s: &str| serde_json::to_string(s).unwrap();
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            any::<i32>().prop_map(|i| i.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("-0".to_owned()),
            Just("-0.0".to_owned()),
            Just("1e400".to_owned()),
            "[a-z\\\"\u{e9}\u{1F600}\n]{0,6}".prop_map(move |t| quoted(&t)),
            prop::sample::select(vec![
                r#"{"$numberLong":"12"}"#,
                r#"{"$numberLong":"-9223372036854775808"}"#,
                r#"{"$numberLong":"9223372036854775808"}"#,
                r#"{"$numberLong":12}"#,
                r#"{"$numberInt":"7"}"#,
                r#"{"$numberInt":"x"}"#,
                r#"{"$numberDouble":"1.5"}"#,
                r#"{"$numberDouble":"-Infinity"}"#,
                r#"{"$numberDouble":"NaN"}"#,
                r#"{"$numberDecimal":"1.10"}"#,
                r#"{"$date":{"$numberLong":"86400000"}}"#,
                r#"{"$date":"2020-01-02T03:04:05Z"}"#,
                r#"{"$date":1}"#,
                r#"{"$oid":"0123456789abcdef01234567"}"#,
                r#"{"$oid":"zz"}"#,
                r#"{"$binary":{"base64":"AAEC","subType":"06"}}"#,
                r#"{"$binary":{"base64":"AAEC","subType":"zz"}}"#,
                r#"{"$uuid":"00112233-4455-6677-8899-aabbccddeeff"}"#,
                r#"{"$regularExpression":{"pattern":"a","options":"i"}}"#,
                r#"{"$symbol":"s"}"#,
                r#"{"$code":"c"}"#,
                r#"{"$code":"c","$scope":{"x":1}}"#,
                r#"{"$timestamp":{"t":1,"i":2}}"#,
                r#"{"$minKey":1}"#,
                r#"{"$maxKey":1}"#,
                r#"{"$undefined":true}"#,
                r#"{"$dbPointer":{"$ref":"c","$id":{"$oid":"0123456789abcdef01234567"}}}"#,
                r#"{"$numberLong":"1","extra":2}"#,
                r#"{"$foo":1}"#,
                r#"{"$foo":1,"$numberInt":"2"}"#,
                r#"{}"#,
                r#"[]"#,
            ])
            .prop_map(str::to_owned),
        ];
        let name = prop::sample::select(vec![
            "a",
            "b",
            "a",
            "",
            "$x",
            "$numberLong",
            "$oid",
            "\\u00e9",
            "x.y",
            "_id",
        ]);
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|vs| format!("[{}]", vs.join(","))),
                prop::collection::vec((name.clone(), inner), 0..6).prop_map(|fields| {
                    let body: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", body.join(", "))
                }),
            ]
        })
    }

    proptest! {
        /// The direct reading gives the reference path's document or
        /// leaves the line to it; `parse_document` always answers as the
        /// reference path does, errors included.
        #[test]
        fn direct_reading_is_the_reference_reading(text in json_text(), trailing in prop::sample::select(vec!["", " ", " x", "\n"])) {
            let line = format!("{text}{trailing}");
            let reference = parse_through_value(&line);
            if let Some(direct) = parse_direct(&line) {
                let Ok(expected) = &reference else {
                    panic!("direct {direct:?}, reference {reference:?}");
                };
                prop_assert_eq!(to_canonical_line(&direct), to_canonical_line(expected));
            }
            prop_assert_eq!(
                parse_document(&line).map(|d| to_canonical_line(&d)),
                reference.map(|d| to_canonical_line(&d))
            );
        }
    }

    #[test]
    fn canonical_and_relaxed_lines_are_read_directly() {
        use bson::{Binary, Regex, Timestamp, oid::ObjectId, spec::BinarySubtype};
        let d = doc! {
            "_id": ObjectId::parse_str("0123456789abcdef01234567").unwrap(),
            "i": 1_i32, "l": 1_i64 << 40, "f": 0.25, "neg": -0.0, "s": "t\u{e9}xt\n",
            "b": true, "n": null, "t": Timestamp { time: 1, increment: 2 },
            "bin": Binary { subtype: BinarySubtype::Encrypted, bytes: vec![1, 2, 3] },
            "re": Regex { pattern: "a".into(), options: "i".into() },
            "date": bson::DateTime::from_millis(86_400_000),
            "nested": {"a": [1_i32, {"b": [], "c": {}}, "x"]},
            "ext": {"$y": 1_i32, "z": 2_i32},
        };
        let line = to_canonical_line(&d);
        assert_eq!(parse_direct(&line).as_ref(), Some(&d));
        let relaxed =
            r#"{"a": 1, "b": 3000000000, "c": 1.5, "d": [true, null, "x"], "e": {"f": -7}}"#;
        assert_eq!(
            parse_direct(relaxed).map(|d| to_canonical_line(&d)),
            parse_through_value(relaxed)
                .ok()
                .map(|d| to_canonical_line(&d))
        );
        assert!(parse_direct(relaxed).is_some());
        // At serde_json's nesting limit and past it, both readings agree.
        for depth in [126, 127, 128, 129, 1000] {
            let line = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            assert_eq!(
                parse_document(&line).map(|d| to_canonical_line(&d)),
                parse_through_value(&line).map(|d| to_canonical_line(&d)),
                "{depth}"
            );
            if let Some(d) = parse_direct(&line) {
                assert_eq!(Ok(d), parse_through_value(&line));
            }
        }
        // A '$' name after a plain one: left to the reference path.
        let late = r#"{"a": {"b": 1, "$numberLong": "2"}}"#;
        assert_eq!(parse_direct(late), None);
        assert!(parse_document(late).is_err());
    }

    #[test]
    fn errors() {
        assert!(matches!(parse_document("[1]"), Err(Error::NotADocument)));
        assert!(matches!(parse_document("{"), Err(Error::Json(_))));
        assert!(matches!(
            parse_document(r#"{"a": {"$numberInt": "x"}}"#),
            Err(Error::ExtendedJson(_))
        ));
    }
}
