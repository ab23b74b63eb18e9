//! CSV values as MongoDB's database tools write and read them.
//!
//! Export (`mongoexport --type csv`): strings as they are, numbers in
//! decimal (doubles as Go's `%v`: `1.5`, `100`, `1e+06`), `true`/`false`,
//! `ObjectId(<hex>)`, dates as `2006-01-02T15:04:05.000Z`,
//! `NumberDecimal(<value>)`, binary as upper-case hex, `/pattern/options`,
//! a missing field or null as an empty cell, documents and arrays as
//! (relaxed) Extended JSON.
//!
//! Import (`mongoimport --type csv`): with `--columns-have-types` each
//! column is `name.type()`; without, a column's type comes from the schema
//! for encrypted fields, and is guessed (int32, int64, double, else string)
//! for the others, as mongoimport does.

use bson::spec::{BinarySubtype, ElementType};
use bson::{Bson, Document};

/// The value at a dotted path (`a.b`, `arr.0`), as mongoexport finds it.
pub(crate) fn field<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Bson::Document(d) => d.get(p)?,
            Bson::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A CSV cell for a value.
pub(crate) fn format(v: &Bson) -> String {
    match v {
        Bson::Null => String::new(),
        Bson::String(s) => s.clone(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(f) => go_float(*f),
        Bson::Boolean(b) => b.to_string(),
        Bson::ObjectId(o) => format!("ObjectId({})", o.to_hex()),
        Bson::DateTime(d) => date(*d),
        Bson::Decimal128(d) => format!("NumberDecimal({d})"),
        // The payload, whatever the subtype: `bson` reads the old binary
        // subtype's inner length off (it is not part of `bytes`).
        Bson::Binary(b) => b.bytes.iter().map(|x| format!("{x:02X}")).collect(),
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern, r.options),
        Bson::JavaScriptCode(c) => c.clone(),
        Bson::MinKey => "$MinKey".into(),
        Bson::MaxKey => "$MaxKey".into(),
        Bson::Undefined => r#"{ "$undefined": true }"#.into(),
        Bson::Timestamp(t) => format!(
            r#"{{ "$timestamp": {{ "t": {}, "i": {} }} }}"#,
            t.time, t.increment
        ),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}

/// A date as mongoexport writes it in CSV: ISO 8601 with milliseconds, UTC;
/// outside years 0–9999, its canonical Extended JSON.
fn date(d: bson::DateTime) -> String {
    match d.try_to_rfc3339_string() {
        Ok(s) if s.len() >= 19 => {
            let ms = d.timestamp_millis().rem_euclid(1000);
            format!("{}.{ms:03}Z", &s[..19])
        }
        _ => Bson::DateTime(d).into_canonical_extjson().to_string(),
    }
}

/// Go's `%v` of a float64 (what mongoexport prints): `%g` with the
/// shortest digits that read back, in exponent form (`1e+06`, `1e-05`) when
/// the decimal exponent is below -4 or at least 6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent, from Rust's
    // `{:e}` (e.g. "1.234567e6").
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{frac}e{esign}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    if exp < 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else if exp + 1 >= n {
        format!("{sign}{digits}{}", "0".repeat((exp + 1 - n) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// First characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// Whether a spreadsheet would run `cell` as a formula once its leading
/// `'`s are taken off: it then starts with a formula character and is not
/// a number (`-5`, `+1e3` stay as they are). Judged without the leading
/// quotes so that escaping is one-to-one: a cell that already starts with
/// `'` before such a character is escaped too, and unescaping takes off
/// exactly the one quote escaping added.
fn formula_like(cell: &str) -> bool {
    let bare = cell.trim_start_matches('\'');
    bare.starts_with(FORMULA_START) && !is_number(bare)
}

/// A CSV cell safe to open in a spreadsheet: a leading `'` on a cell it
/// would run as a formula (CSV injection).
pub(crate) fn formula_escape(cell: String) -> String {
    if formula_like(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// The cell `formula_escape` was given: the one leading `'` it added
/// taken off, every other cell as it is.
pub(crate) fn formula_unescape(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => cell,
    }
}

/// A decimal number as a spreadsheet reads one: an optional sign, digits
/// with an optional fraction, an optional exponent.
fn is_number(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let signs: &[char] = &['+', '-'];
    let s = s.strip_prefix(signs).unwrap_or(s);
    let (mantissa, exponent) = match s.find(&['e', 'E'][..]) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some((int, frac)) => {
            (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac))
        }
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => digits(e.strip_prefix(signs).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}

/// A column type of `--columns-have-types` (`name.type()`), or a type an
/// encrypted field's schema declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ColumnType {
    /// mongoimport's guess: int32, int64, double, else string.
    Auto,
    String,
    Int32,
    Int64,
    Double,
    Decimal,
    Boolean,
    /// ISO 8601 / RFC 3339.
    Date,
    /// Milliseconds since the epoch.
    DateMs,
    /// Binary from base64 or hex.
    Binary(BinaryEncoding),
    /// An ObjectId from 24 hex digits (for a schema's `objectId`).
    ObjectId,
    /// Extended JSON text (for a schema's `object` or `array`).
    ExtendedJson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryEncoding {
    Base64,
    Hex,
}

/// Splits a typed column `name.type(arg)` into its name and type.
pub(crate) fn typed_column(spec: &str) -> Result<(String, ColumnType), String> {
    let bad = || format!("column '{spec}': expected name.type(), e.g. ssn.string()");
    let open = spec
        .rfind('(')
        .filter(|_| spec.ends_with(')'))
        .ok_or_else(bad)?;
    let dot = spec[..open].rfind('.').ok_or_else(bad)?;
    let (name, ty, arg) = (
        &spec[..dot],
        &spec[dot + 1..open],
        &spec[open + 1..spec.len() - 1],
    );
    if name.is_empty() {
        return Err(bad());
    }
    let ty = match (ty, arg) {
        ("auto", "") => ColumnType::Auto,
        ("string", "") => ColumnType::String,
        ("int32", "") => ColumnType::Int32,
        ("int64", "") => ColumnType::Int64,
        ("double", "") => ColumnType::Double,
        ("decimal", "") => ColumnType::Decimal,
        ("boolean", "") => ColumnType::Boolean,
        ("date", "") => ColumnType::Date,
        ("date_ms", "") => ColumnType::DateMs,
        ("binary", "base64") => ColumnType::Binary(BinaryEncoding::Base64),
        ("binary", "hex") => ColumnType::Binary(BinaryEncoding::Hex),
        _ => {
            return Err(format!(
                "column '{spec}': unsupported type; one of auto(), string(), int32(), int64(), double(), decimal(), boolean(), date() (ISO 8601), date_ms(), binary(base64|hex)"
            ));
        }
    };
    Ok((name.to_owned(), ty))
}

/// The column type for a type an encrypted field's schema declares.
pub(crate) fn schema_type(ty: ElementType) -> ColumnType {
    match ty {
        ElementType::Int32 => ColumnType::Int32,
        ElementType::Int64 => ColumnType::Int64,
        ElementType::Double => ColumnType::Double,
        ElementType::Decimal128 => ColumnType::Decimal,
        ElementType::Boolean => ColumnType::Boolean,
        ElementType::DateTime => ColumnType::Date,
        ElementType::Binary => ColumnType::Binary(BinaryEncoding::Base64),
        ElementType::ObjectId => ColumnType::ObjectId,
        ElementType::String | ElementType::Symbol | ElementType::JavaScriptCode => {
            ColumnType::String
        }
        _ => ColumnType::ExtendedJson,
    }
}

/// A CSV cell as a value of `ty`. Errors name the type, never the cell.
pub(crate) fn parse(cell: &str, ty: &ColumnType) -> Result<Bson, String> {
    let want = |t: &str| format!("not a valid {t}");
    Ok(match ty {
        ColumnType::Auto => {
            if let Ok(i) = cell.parse::<i64>() {
                i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32)
            } else if let Some(f) = cell.parse::<f64>().ok().filter(|_| looks_numeric(cell)) {
                Bson::Double(f)
            } else {
                Bson::String(cell.to_owned())
            }
        }
        ColumnType::String => Bson::String(cell.to_owned()),
        ColumnType::Int32 => Bson::Int32(cell.trim().parse().map_err(|_| want("int32"))?),
        ColumnType::Int64 => Bson::Int64(cell.trim().parse().map_err(|_| want("int64"))?),
        ColumnType::Double => Bson::Double(cell.trim().parse().map_err(|_| want("double"))?),
        ColumnType::Decimal => Bson::Decimal128(cell.trim().parse().map_err(|_| want("decimal"))?),
        ColumnType::Boolean => match cell.trim() {
            "true" | "TRUE" | "True" | "1" => Bson::Boolean(true),
            "false" | "FALSE" | "False" | "0" => Bson::Boolean(false),
            _ => return Err(want("boolean")),
        },
        ColumnType::Date => Bson::DateTime(
            bson::DateTime::parse_rfc3339_str(cell.trim()).map_err(|_| want("ISO 8601 date"))?,
        ),
        ColumnType::DateMs => Bson::DateTime(bson::DateTime::from_millis(
            cell.trim()
                .parse()
                .map_err(|_| want("date in milliseconds"))?,
        )),
        ColumnType::Binary(enc) => {
            let bytes = match enc {
                BinaryEncoding::Base64 => {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, cell.trim())
                        .map_err(|_| want("base64 binary"))?
                }
                BinaryEncoding::Hex => hex_bytes(cell.trim()).ok_or_else(|| want("hex binary"))?,
            };
            Bson::Binary(bson::Binary {
                subtype: BinarySubtype::Generic,
                bytes,
            })
        }
        ColumnType::ObjectId => Bson::ObjectId(
            bson::oid::ObjectId::parse_str(
                cell.trim()
                    .trim_start_matches("ObjectId(")
                    .trim_end_matches(')'),
            )
            .map_err(|_| want("ObjectId"))?,
        ),
        ColumnType::ExtendedJson => {
            let wrapped = format!("{{\"v\":{cell}}}");
            csfle::ejson::parse_document(&wrapped)
                .ok()
                .and_then(|mut d| d.remove("v"))
                .ok_or_else(|| want("Extended JSON value"))?
        }
    })
}

/// Whether a cell that parses as a float is written like a number (Rust
/// also accepts "inf" and "NaN", which mongoimport keeps as strings).
fn looks_numeric(cell: &str) -> bool {
    cell.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && cell.chars().any(|c| c.is_ascii_digit())
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Puts `value` at a dotted path, creating sub-documents.
pub(crate) fn set_path(doc: &mut Document, path: &str, value: Bson) -> Result<(), String> {
    match path.split_once('.') {
        None => {
            doc.insert(path, value);
            Ok(())
        }
        Some((head, rest)) => {
            let sub = doc
                .entry(head.to_owned())
                .or_insert_with(|| Bson::Document(Document::new()));
            match sub {
                Bson::Document(d) => set_path(d, rest, value),
                _ => Err(format!("column '{path}': '{head}' is also a value column")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn export_cells_as_mongoexport_writes_them() {
        let oid = bson::oid::ObjectId::parse_str("5f1b2c3d4e5f607182930a1b").unwrap();
        let cases: Vec<(Bson, &str)> = vec![
            (Bson::String("a,b".into()), "a,b"),
            (Bson::Int32(-7), "-7"),
            (Bson::Int64(3_000_000_000), "3000000000"),
            (Bson::Double(1.5), "1.5"),
            (Bson::Double(100.0), "100"),
            (Bson::Double(1e21), "1e+21"),
            (Bson::Double(123456789.0), "1.23456789e+08"),
            (Bson::Double(123456.0), "123456"),
            (Bson::Double(1e6), "1e+06"),
            (Bson::Double(0.0001), "0.0001"),
            (Bson::Double(0.00001), "1e-05"),
            (Bson::Double(-2.5e-7), "-2.5e-07"),
            (Bson::Boolean(true), "true"),
            (Bson::Null, ""),
            (Bson::ObjectId(oid), "ObjectId(5f1b2c3d4e5f607182930a1b)"),
            (
                Bson::DateTime(bson::DateTime::from_millis(1_577_836_800_123)),
                "2020-01-01T00:00:00.123Z",
            ),
            (
                Bson::DateTime(bson::DateTime::from_millis(0)),
                "1970-01-01T00:00:00.000Z",
            ),
            (
                Bson::Binary(bson::Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![0xde, 0xad, 0x01],
                }),
                "DEAD01",
            ),
            (
                Bson::Binary(bson::Binary {
                    subtype: BinarySubtype::BinaryOld,
                    bytes: vec![1, 2, 3, 4, 5],
                }),
                "0102030405",
            ),
            (
                Bson::Decimal128("1.25".parse().unwrap()),
                "NumberDecimal(1.25)",
            ),
            (Bson::Document(doc! {"a": 1}), r#"{"a":1}"#),
        ];
        for (v, want) in cases {
            assert_eq!(format(&v), want, "{v:?}");
        }
        // Read from BSON, the old binary subtype's inner length is not in
        // `bytes`: every payload byte is in the cell.
        let read = bson::RawDocumentBuf::from_bytes(vec![
            22, 0, 0, 0, 5, b'b', 0, 9, 0, 0, 0, 2, 5, 0, 0, 0, 1, 2, 3, 4, 5, 0,
        ])
        .unwrap()
        .to_document()
        .unwrap();
        assert_eq!(read.get("b").map(format).as_deref(), Some("0102030405"));
    }

    #[test]
    fn formula_cells_are_escaped_and_come_back_unchanged() {
        for (cell, escaped) in [
            ("=1+2", "'=1+2"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-Inf", "'-Inf"),
            ("-", "'-"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("''@x", "'''@x"),
            ("-5", "-5"),
            ("+1e3", "+1e3"),
            ("-0.5", "-0.5"),
            ("-.5E-7", "-.5E-7"),
            ("'-5", "'-5"),
            ("'", "'"),
            ("a=b", "a=b"),
            ("", ""),
            ("--5", "'--5"),
            ("-1e", "'-1e"),
        ] {
            assert_eq!(formula_escape(cell.to_owned()), escaped, "{cell:?}");
            assert_eq!(formula_unescape(escaped), cell, "{escaped:?}");
        }
    }

    #[test]
    fn dotted_paths() {
        let d = doc! {"a": {"b": [10, {"c": "x"}]}, "n": null};
        assert_eq!(field(&d, "a.b.0"), Some(&Bson::Int32(10)));
        assert_eq!(field(&d, "a.b.1.c"), Some(&Bson::String("x".into())));
        assert_eq!(field(&d, "a.z"), None);
        assert_eq!(field(&d, "a.b.9"), None);
        let mut out = Document::new();
        set_path(&mut out, "a.b", Bson::Int32(1)).unwrap();
        set_path(&mut out, "a.c", Bson::Int32(2)).unwrap();
        assert_eq!(out, doc! {"a": {"b": 1, "c": 2}});
        assert!(set_path(&mut out, "a.b.x", Bson::Int32(3)).is_err());
    }

    #[test]
    fn import_cells() {
        assert_eq!(parse("42", &ColumnType::Auto).unwrap(), Bson::Int32(42));
        assert_eq!(
            parse("3000000000", &ColumnType::Auto).unwrap(),
            Bson::Int64(3_000_000_000)
        );
        assert_eq!(parse("1.5", &ColumnType::Auto).unwrap(), Bson::Double(1.5));
        assert_eq!(
            parse("inf", &ColumnType::Auto).unwrap(),
            Bson::String("inf".into())
        );
        // An SSN the schema says is a string stays a string.
        assert_eq!(
            parse("123456789", &schema_type(ElementType::String)).unwrap(),
            Bson::String("123456789".into())
        );
        assert_eq!(
            parse("7", &schema_type(ElementType::Int64)).unwrap(),
            Bson::Int64(7)
        );
        let e = parse("12x-secret", &ColumnType::Int32).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert_eq!(
            typed_column("a.b.int32()").unwrap(),
            ("a.b".into(), ColumnType::Int32)
        );
        assert_eq!(
            typed_column("blob.binary(hex)").unwrap(),
            ("blob".into(), ColumnType::Binary(BinaryEncoding::Hex))
        );
        assert!(typed_column("x.uuid()").is_err());
        assert!(typed_column("plain").is_err());
    }
}
