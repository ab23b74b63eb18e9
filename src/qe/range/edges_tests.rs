use super::*;

fn int32(
    value: i32,
    min: i32,
    max: i32,
    sparsity: u64,
    tf: Option<i32>,
) -> Result<Vec<String>, String> {
    edges_int32(EdgesArgs {
        value,
        min: Some(min),
        max: Some(max),
        precision: None,
        sparsity,
        trim_factor: tf,
    })
    .map(|e| e.as_slice().to_vec())
    .map_err(|e| e.to_string())
}

/// The inline cases of libmongocrypt's test/test-mc-range-edge-generation.c
/// (`_test_getEdgesInt32`, `_test_getEdgesInt64`), trim factors > 0
/// among them. libmongocrypt's test passes the trim factor always set
/// (0 when the case names none).
#[test]
fn inline_cases() {
    let ok = |v: &[&str]| -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    };
    assert_eq!(int32(2, 0, 7, 1, Some(0)), ok(&["root", "010", "0", "01"]));
    assert_eq!(int32(2, 0, 7, 2, Some(0)), ok(&["root", "010", "01"]));
    assert_eq!(
        edges_int32(EdgesArgs {
            value: 1,
            min: None,
            max: None,
            precision: None,
            sparsity: 0,
            trim_factor: Some(0)
        })
        .unwrap_err()
        .to_string(),
        "sparsity must be 1 or larger"
    );
    assert_eq!(int32(2, 0, 7, 1, Some(1)), ok(&["010", "0", "01"]));
    assert_eq!(int32(2, 0, 7, 1, Some(2)), ok(&["010", "01"]));
    let e = int32(2, 0, 7, 1, Some(3)).unwrap_err();
    assert!(
        e.contains("trimFactor must be less than the number of bits (3) used to represent an element of the domain"),
        "{e}"
    );
    assert!(
        int32(2, 0, 7, 1, Some(-1))
            .unwrap_err()
            .contains("trimFactor must be >= 0")
    );
    assert_eq!(int32(2, 0, 7, 2, Some(0)), ok(&["root", "010", "01"]));
    assert_eq!(int32(2, 0, 7, 2, Some(1)), ok(&["010", "01"]));
    assert_eq!(int32(2, 0, 7, 2, Some(2)), ok(&["010", "01"]));

    let int64 = |tf: Option<i32>, sparsity: u64| {
        edges_int64(EdgesArgs {
            value: 2,
            min: Some(0),
            max: Some(7),
            precision: None,
            sparsity,
            trim_factor: tf,
        })
        .map(|e| e.as_slice().to_vec())
        .map_err(|e| e.to_string())
    };
    assert_eq!(int64(Some(0), 1), ok(&["root", "010", "0", "01"]));
    assert_eq!(int64(Some(0), 2), ok(&["root", "010", "01"]));
    assert_eq!(int64(Some(1), 1), ok(&["010", "0", "01"]));
    assert_eq!(int64(Some(2), 1), ok(&["010", "01"]));
    assert!(
        int64(Some(3), 1)
            .unwrap_err()
            .contains("trimFactor must be less than the number of bits (3)")
    );
}

#[test]
fn defaults_and_leaf() {
    // 0..=200 takes 8 bits: the default trim factor 6 keeps the leaf
    // and the prefixes of length 6 (sparsity 2).
    let e = edges_int32(EdgesArgs {
        value: 23,
        min: Some(0),
        max: Some(200),
        precision: None,
        sparsity: 2,
        trim_factor: None,
    })
    .unwrap();
    assert_eq!(e.as_slice(), ["00010111", "000101"]);
    assert_eq!(e.trim_factor(), 6);
    assert!(e.is_leaf("00010111"));
    assert!(!e.is_leaf("000101"));
    assert_eq!(format!("{e:?}"), "Edges { len: 2, trim_factor: 6, .. }");
    // A 3-bit domain clamps the default to 2.
    let e = edges_int32(EdgesArgs {
        value: 2,
        min: Some(0),
        max: Some(7),
        precision: None,
        sparsity: 1,
        trim_factor: None,
    })
    .unwrap();
    assert_eq!(e.trim_factor(), 2);
    assert_eq!(e.as_slice(), ["010", "01"]);
}
