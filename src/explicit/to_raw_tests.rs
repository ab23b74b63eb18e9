//! `to_raw` refuses what BSON cannot encode instead of letting `bson`
//! panic on it.

use super::*;
use bson::{JavaScriptCodeWithScope, Regex, doc};

fn regex(pattern: &str, options: &str) -> Bson {
    Bson::RegularExpression(Regex {
        pattern: pattern.into(),
        options: options.into(),
    })
}

#[test]
fn nul_bytes_in_c_strings_are_refused_at_any_depth() {
    let cases = [
        regex("a\0", ""),
        regex("a", "i\0"),
        Bson::Array(vec![regex("a\0", "")]),
        Bson::Array(vec![Bson::Document(doc! {"k\0": 1})]),
        Bson::Document(doc! {"x": [[regex("\0", "")]]}),
        Bson::Document(doc! {"k\0": 1}),
        Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
            code: "f()".into(),
            scope: doc! {"s\0": 1},
        }),
        Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
            code: "f()".into(),
            scope: doc! {"s": [regex("\0", "")]},
        }),
    ];
    for value in cases {
        assert!(
            matches!(to_raw(&value), Err(Error::NulInCString)),
            "{value:?}"
        );
    }
}

#[test]
fn encodable_values_convert() {
    // A NUL inside a string is fine: strings are length-prefixed.
    for value in [
        Bson::String("a\0b".into()),
        regex("^a", "i"),
        Bson::Array(vec![regex("a", ""), Bson::Document(doc! {"k": "v\0"})]),
        Bson::Document(doc! {"k": {"n": [1, 2]}}),
    ] {
        assert!(to_raw(&value).is_ok(), "{value:?}");
    }
}
