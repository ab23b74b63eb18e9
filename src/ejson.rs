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
