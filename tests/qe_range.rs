//! Range math against libmongocrypt's own vectors, vendored under
//! `tests/data/libmongocrypt/` (Apache-2.0, snapshot `3a65b40d`): every
//! case of `test/data/range-edge-generation/*.cstruct` and
//! `test/data/range-min-cover/*.cstruct`, run as libmongocrypt's
//! `test/test-mc-range-edge-generation.c` and `test/test-mc-range-mincover.c`
//! run them (the same arguments: trim factor 0, double bounds passed only
//! with a precision, Decimal128 edge bounds unused). Decimal128 with a
//! precision is refused by csfle with a typed error: those cases are
//! counted as skipped, by file. Each test asserts how many cases it ran.

#![cfg(feature = "qe")]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;

use csfle::qe::range::RangeError;
use csfle::qe::range::edges::{
    Edges, EdgesArgs, edges_decimal128, edges_double, edges_int32, edges_int64,
};
use csfle::qe::range::encoding::can_use_precision_mode_double;
use csfle::qe::range::mincover::{
    Mincover, MincoverArgs, mincover_decimal128, mincover_double, mincover_int32, mincover_int64,
};
use qe_vectors::data_dir;
use std::collections::HashMap;

/// One case of a `.cstruct` file: its scalar fields (C expressions, an
/// optional field as `Some(expr)` or `None`) and its expected strings.
struct Case {
    fields: HashMap<String, Option<String>>,
    expect: Vec<String>,
    line: usize,
}

impl Case {
    fn expr(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(v) => v.as_deref(),
            None => None,
        }
    }

    fn required(&self, name: &str) -> &str {
        self.expr(name)
            .unwrap_or_else(|| panic!("line {}: no {name}", self.line))
    }
}

/// Parses libmongocrypt's generated C initializers: one `{ … },` block per
/// case, `.field = expr,`, `.field = { .set = true, .value = expr },` and
/// `.expect… = { "…", … },`.
fn cstruct(rel: &str) -> Vec<Case> {
    let path = data_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    let mut in_list = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line == "{" {
            assert!(current.is_none(), "{rel}:{}: nested case", n + 1);
            current = Some(Case {
                fields: HashMap::new(),
                expect: Vec::new(),
                line: n + 1,
            });
            continue;
        }
        let case = current
            .as_mut()
            .unwrap_or_else(|| panic!("{rel}:{}: outside a case: {line}", n + 1));
        if in_list {
            if line == "}," {
                in_list = false;
            } else {
                let s = line
                    .strip_prefix('"')
                    .and_then(|l| l.strip_suffix("\","))
                    .unwrap_or_else(|| panic!("{rel}:{}: not a string: {line}", n + 1));
                case.expect.push(s.to_owned());
            }
            continue;
        }
        if line == "}," {
            cases.push(current.take().expect("a case"));
            continue;
        }
        let (name, value) = line
            .strip_prefix('.')
            .and_then(|l| l.split_once(" = "))
            .unwrap_or_else(|| panic!("{rel}:{}: not a field: {line}", n + 1));
        if value == "{" {
            assert!(name.starts_with("expect"), "{rel}:{}: list {name}", n + 1);
            in_list = true;
            continue;
        }
        let value = value.strip_suffix(',').unwrap_or(value);
        let parsed = if let Some(opt) = value.strip_prefix("{ .set = ") {
            if opt.starts_with("false") {
                None
            } else {
                let v = opt
                    .strip_prefix("true, .value = ")
                    .and_then(|v| v.strip_suffix(" }"))
                    .unwrap_or_else(|| panic!("{rel}:{}: optional: {line}", n + 1));
                Some(v.to_owned())
            }
        } else {
            Some(value.to_owned())
        };
        case.fields.insert(name.to_owned(), parsed);
    }
    assert!(current.is_none() && !in_list, "{rel}: unterminated case");
    cases
}

/// A C integer literal or limit macro.
fn int(expr: &str) -> i128 {
    let (neg, body) = match expr.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, expr),
    };
    let body = body.trim_end_matches('L');
    let v: i128 = match body {
        "INT32_MIN" => i128::from(i32::MIN),
        "INT32_MAX" => i128::from(i32::MAX),
        "INT64_MIN" => i128::from(i64::MIN),
        "INT64_MAX" => i128::from(i64::MAX),
        hex if hex.starts_with("0x") => i128::from_str_radix(&hex[2..], 16).expect("hex"),
        dec => dec.parse().unwrap_or_else(|e| panic!("{expr}: {e}")),
    };
    if neg { -v } else { v }
}

fn i32_of(expr: &str) -> i32 {
    i32::try_from(int(expr)).unwrap_or_else(|_| panic!("{expr} is not an int32"))
}

fn i64_of(expr: &str) -> i64 {
    i64::try_from(int(expr)).unwrap_or_else(|_| panic!("{expr} is not an int64"))
}

/// A C double literal (or an integer one, converted as C converts it).
fn f64_of(expr: &str) -> f64 {
    let (neg, body) = match expr.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, expr),
    };
    let v = match body {
        "DBL_MIN" => f64::MIN_POSITIVE,
        "DBL_MAX" => f64::MAX,
        b if b.contains('.') || b.contains('e') || b.contains('E') => {
            b.parse().unwrap_or_else(|e| panic!("{expr}: {e}"))
        }
        _ => int(body) as f64,
    };
    if neg { -v } else { v }
}

/// A Decimal128 expression of the test files, as its BSON bytes.
fn dec_of(expr: &str) -> [u8; 16] {
    let text = if let Some(s) = expr
        .strip_prefix("mc_dec128_from_string(\"")
        .and_then(|s| s.strip_suffix("\")"))
    {
        s.to_owned()
    } else if let Some(n) = expr
        .strip_prefix("MC_DEC128(")
        .and_then(|s| s.strip_suffix(')'))
    {
        int(n).to_string()
    } else {
        match expr {
            "MC_DEC128_LARGEST_POSITIVE" => "9999999999999999999999999999999999E6111".to_owned(),
            "MC_DEC128_LARGEST_NEGATIVE" => "-9999999999999999999999999999999999E6111".to_owned(),
            other => panic!("unknown Decimal128 expression {other}"),
        }
    };
    text.parse::<bson::Decimal128>()
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .bytes()
}

fn sparsity(case: &Case) -> u64 {
    u64::try_from(int(case.required("sparsity"))).expect("sparsity")
}

fn strings(got: &[String]) -> Vec<String> {
    got.to_vec()
}

fn check_edges(rel: &str, case: &Case, got: Result<Edges, RangeError>) {
    let got = got.unwrap_or_else(|e| panic!("{rel}:{}: {e}", case.line));
    assert_eq!(strings(got.as_slice()), case.expect, "{rel}:{}", case.line);
}

fn check_cover(rel: &str, case: &Case, got: Result<Mincover, RangeError>) {
    let got = got.unwrap_or_else(|e| panic!("{rel}:{}: {e}", case.line));
    assert_eq!(strings(got.as_slice()), case.expect, "{rel}:{}", case.line);
}

#[test]
fn edge_generation_vectors() {
    let mut counts = Vec::new();

    let rel = "range-edge-generation/edges_int32.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = EdgesArgs {
            value: i32_of(case.required("value")),
            min: case.expr("min").map(i32_of),
            max: case.expr("max").map(i32_of),
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_edges(rel, case, edges_int32(args));
    }
    counts.push(cases.len());

    let rel = "range-edge-generation/edges_int64.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = EdgesArgs {
            value: i64_of(case.required("value")),
            min: case.expr("min").map(i64_of),
            max: case.expr("max").map(i64_of),
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_edges(rel, case, edges_int64(args));
    }
    counts.push(cases.len());

    // libmongocrypt's double and Decimal128 edge tests leave the files'
    // min and max unused: the full domains.
    let rel = "range-edge-generation/edges_double.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = EdgesArgs {
            value: f64_of(case.required("value")),
            min: None,
            max: None,
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_edges(rel, case, edges_double(args));
    }
    counts.push(cases.len());

    let rel = "range-edge-generation/edges_decimal128.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = EdgesArgs {
            value: dec_of(case.required("value")),
            min: None,
            max: None,
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_edges(rel, case, edges_decimal128(args));
    }
    counts.push(cases.len());

    assert_eq!(
        counts,
        [690, 630, 340, 350],
        "int32, int64, double, decimal128"
    );
}

fn bool_of(expr: &str) -> bool {
    match expr {
        "true" => true,
        "false" => false,
        other => panic!("not a bool: {other}"),
    }
}

#[test]
fn mincover_vectors() {
    let mut counts = Vec::new();

    let rel = "range-min-cover/mincover_int32.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = MincoverArgs {
            lower_bound: i32_of(case.required("lowerBound")),
            include_lower_bound: bool_of(case.required("includeLowerBound")),
            upper_bound: i32_of(case.required("upperBound")),
            include_upper_bound: bool_of(case.required("includeUpperBound")),
            min: case.expr("min").map(i32_of),
            max: case.expr("max").map(i32_of),
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_cover(rel, case, mincover_int32(args));
    }
    counts.push(cases.len());

    let rel = "range-min-cover/mincover_int64.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        let args = MincoverArgs {
            lower_bound: i64_of(case.required("lowerBound")),
            include_lower_bound: bool_of(case.required("includeLowerBound")),
            upper_bound: i64_of(case.required("upperBound")),
            include_upper_bound: bool_of(case.required("includeUpperBound")),
            min: case.expr("min").map(i64_of),
            max: case.expr("max").map(i64_of),
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_cover(rel, case, mincover_int64(args));
    }
    counts.push(cases.len());

    let mut double_errors = 0;
    for rel in [
        "range-min-cover/mincover_double.cstruct",
        "range-min-cover/mincover_double_precision.cstruct",
    ] {
        let cases = cstruct(rel);
        for case in &cases {
            let precision = case.expr("precision").map(i32_of);
            // As libmongocrypt's test: min and max only with a precision.
            let (min, max) = match precision {
                Some(_) => (case.expr("min").map(f64_of), case.expr("max").map(f64_of)),
                None => (None, None),
            };
            let args = MincoverArgs {
                lower_bound: f64_of(case.required("lowerBound")),
                include_lower_bound: bool_of(case.required("includeLowerBound")),
                upper_bound: f64_of(case.required("upperBound")),
                include_upper_bound: bool_of(case.required("includeUpperBound")),
                min,
                max,
                precision,
                sparsity: sparsity(case),
                trim_factor: Some(0),
            };
            let got = mincover_double(args);
            // libmongocrypt's `_test_expectErrorDouble`: bounds its
            // precision mode refuses make the case an expected error.
            if let (Some(min), Some(max), Some(p)) = (min, max, precision) {
                match can_use_precision_mode_double(min, max, p) {
                    Err(e) => {
                        let got = got.expect_err("an error");
                        assert_eq!(got, e, "{rel}:{}", case.line);
                        double_errors += 1;
                        continue;
                    }
                    Ok(None) => {
                        got.expect_err("a domain of 53 bits or more");
                        double_errors += 1;
                        continue;
                    }
                    Ok(Some(_)) => {}
                }
            }
            check_cover(rel, case, got);
        }
        counts.push(cases.len());
    }

    let rel = "range-min-cover/mincover_decimal128.cstruct";
    let cases = cstruct(rel);
    for case in &cases {
        assert!(case.expr("precision").is_none(), "{rel}:{}", case.line);
        let args = MincoverArgs {
            lower_bound: dec_of(case.required("lowerBound")),
            include_lower_bound: bool_of(case.required("includeLowerBound")),
            upper_bound: dec_of(case.required("upperBound")),
            include_upper_bound: bool_of(case.required("includeUpperBound")),
            min: None,
            max: None,
            precision: None,
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        check_cover(rel, case, mincover_decimal128(args));
    }
    counts.push(cases.len());

    // Decimal128 with precision: refused, each case, with the typed error.
    let rel = "range-min-cover/mincover_decimal128_precision.cstruct";
    let cases = cstruct(rel);
    let mut skipped = 0;
    for case in &cases {
        let args = MincoverArgs {
            lower_bound: dec_of(case.required("lowerBound")),
            include_lower_bound: bool_of(case.required("includeLowerBound")),
            upper_bound: dec_of(case.required("upperBound")),
            include_upper_bound: bool_of(case.required("includeUpperBound")),
            min: case.expr("min").map(dec_of),
            max: case.expr("max").map(dec_of),
            precision: case.expr("precision").map(i32_of),
            sparsity: sparsity(case),
            trim_factor: Some(0),
        };
        assert_eq!(
            mincover_decimal128(args).unwrap_err(),
            RangeError::Decimal128PrecisionUnsupported,
            "{rel}:{}",
            case.line
        );
        skipped += 1;
    }
    eprintln!("skipped (Decimal128 with precision, refused): {rel}: {skipped} cases");

    assert_eq!(
        counts,
        [299, 189, 131, 14, 6],
        "int32, int64, double, double precision, decimal128"
    );
    assert_eq!(skipped, 6, "decimal128 precision");
    assert!(
        double_errors < 14,
        "most double precision cases produce a cover"
    );
}
