use super::*;

fn int32(lower: i32, il: bool, upper: i32, iu: bool, tf: i32) -> Result<Vec<String>, String> {
    mincover_int32(MincoverArgs {
        lower_bound: lower,
        include_lower_bound: il,
        upper_bound: upper,
        include_upper_bound: iu,
        min: Some(0),
        max: Some(7),
        precision: None,
        sparsity: 1,
        trim_factor: Some(tf),
    })
    .map(|m| m.as_slice().to_vec())
    .map_err(|e| e.to_string())
}

/// The inline cases of libmongocrypt's test/test-mc-range-mincover.c
/// (`_test_getMincoverInt32`; its test passes the trim factor always
/// set, 0 where the case names none), trim factors > 0 among them.
#[test]
fn inline_cases() {
    let ok = |v: &[&str]| -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    };
    assert_eq!(int32(1, false, 3, true, 0), ok(&["01"]));
    assert_eq!(int32(1, true, 3, false, 0), ok(&["001", "010"]));
    assert_eq!(int32(1, true, 3, true, 0), ok(&["001", "01"]));
    assert_eq!(int32(3, true, 3, true, 0), ok(&["011"]));
    assert!(
        int32(4, true, 3, true, 0)
            .unwrap_err()
            .contains("must be less than or equal to")
    );
    assert!(
        int32(1, true, 8, true, 0)
            .unwrap_err()
            .contains("less than or equal to the maximum value")
    );
    assert_eq!(int32(0, true, 7, true, 0), ok(&["root"]));
    assert_eq!(int32(0, true, 7, true, 1), ok(&["0", "1"]));
    assert_eq!(int32(0, true, 7, true, 2), ok(&["00", "01", "10", "11"]));
    let e = int32(0, true, 7, true, 3).unwrap_err();
    assert!(
        e.contains("Trim factor must be less than the number of bits (3) used to represent an element of the domain"),
        "{e}"
    );
    // The int64 inline cases are the same, with trim factor 0.
    let int64 = |lower: i64, il: bool, upper: i64, iu: bool| {
        mincover_int64(MincoverArgs {
            lower_bound: lower,
            include_lower_bound: il,
            upper_bound: upper,
            include_upper_bound: iu,
            min: Some(0),
            max: Some(7),
            precision: None,
            sparsity: 1,
            trim_factor: Some(0),
        })
        .map(|m| m.as_slice().to_vec())
        .map_err(|e| e.to_string())
    };
    assert_eq!(int64(1, false, 3, true), ok(&["01"]));
    assert_eq!(int64(1, true, 3, false), ok(&["001", "010"]));
    assert_eq!(int64(1, true, 3, true), ok(&["001", "01"]));
    assert_eq!(int64(3, true, 3, true), ok(&["011"]));
    assert!(
        int64(4, true, 3, true)
            .unwrap_err()
            .contains("must be less than or equal to")
    );
    assert!(
        int64(1, true, 8, true)
            .unwrap_err()
            .contains("less than or equal to the maximum value")
    );
}

#[test]
fn errors_never_show_query_bounds() {
    let e = int32(5, false, 5, false, 0).unwrap_err();
    assert!(!e.contains('5'), "{e}");
}

#[test]
fn a_huge_cover_is_refused_not_built() {
    // A 64-bit domain, trim factor 40, the whole range: 2^40 edges.
    let r = mincover_int64(MincoverArgs {
        lower_bound: i64::MIN,
        include_lower_bound: true,
        upper_bound: i64::MAX,
        include_upper_bound: true,
        min: None,
        max: None,
        precision: None,
        sparsity: 1,
        trim_factor: Some(40),
    });
    assert_eq!(r.unwrap_err(), RangeError::MincoverTooLarge);
}
