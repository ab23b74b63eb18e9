//! Unit tests of `encoding.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

use super::*;

/// libmongocrypt's test/test-mc-range-encoding.c, `_test_RangeTest_Encode_Int32`
/// (the server's Int32_NoBounds, Int32_Bounds and Int32_Errors tests).
#[test]
fn int32_table() {
    type Case = (
        i32,
        Option<i32>,
        Option<i32>,
        Result<(u128, u128), &'static str>,
    );
    let m = u32::MAX as u128;
    let cases: &[Case] = &[
        (i32::MAX, None, None, Ok((4294967295, m))),
        (1, None, None, Ok((2147483649, m))),
        (0, None, None, Ok((2147483648, m))),
        (-1, None, None, Ok((2147483647, m))),
        (-2, None, None, Ok((2147483646, m))),
        (-2147483647, None, None, Ok((1, m))),
        (i32::MIN, None, None, Ok((0, m))),
        (1, Some(1), Some(3), Ok((0, 2))),
        (0, Some(0), Some(1), Ok((0, 1))),
        (-1, Some(-1), Some(0), Ok((0, 1))),
        (-2, Some(-2), Some(0), Ok((0, 2))),
        (-2147483647, Some(i32::MIN), Some(1), Ok((1, 2147483649))),
        (i32::MIN, Some(i32::MIN), Some(0), Ok((0, 2147483648))),
        (0, Some(i32::MIN), Some(1), Ok((2147483648, 2147483649))),
        (1, Some(i32::MIN), Some(2), Ok((2147483649, 2147483650))),
        (
            i32::MAX,
            Some(-2147483647),
            Some(i32::MAX),
            Ok((4294967294, 4294967294)),
        ),
        (
            i32::MAX,
            Some(i32::MIN),
            Some(i32::MAX),
            Ok((4294967295, 4294967295)),
        ),
        (15, Some(10), Some(26), Ok((5, 16))),
        (15, Some(-10), Some(55), Ok((25, 65))),
        (
            1,
            None,
            Some(2),
            Err("Must specify both a lower and upper bound or no bounds."),
        ),
        (
            1,
            Some(0),
            None,
            Err("Must specify both a lower and upper bound or no bounds."),
        ),
        (
            1,
            Some(2),
            Some(1),
            Err("The minimum value must be less than the maximum value"),
        ),
        (
            1,
            Some(2),
            Some(3),
            Err(
                "Value must be greater than or equal to the minimum value and less than or equal to the maximum value",
            ),
        ),
        (
            4,
            Some(2),
            Some(3),
            Err(
                "Value must be greater than or equal to the minimum value and less than or equal to the maximum value",
            ),
        ),
        (
            4,
            Some(i32::MIN),
            Some(i32::MIN),
            Err("The minimum value must be less than the maximum value"),
        ),
    ];
    for (value, min, max, want) in cases {
        let got = encode_int32(*value, *min, *max);
        match want {
            Ok((v, mx)) => {
                let got = got.unwrap_or_else(|e| panic!("{value}: {e}"));
                assert_eq!((got.value, got.max), (*v, *mx), "{value} {min:?} {max:?}");
            }
            Err(msg) => {
                let e = got.expect_err("an error").to_string();
                assert!(e.contains(msg), "{e}");
                assert!(!e.contains(&format!("value: {value}")), "{e}");
            }
        }
    }
}

/// The same file's `_test_RangeTest_Encode_Int64` (server Int64 tests).
#[test]
fn int64_table() {
    let m = u64::MAX as u128;
    assert_eq!(encode_int64(i64::MAX, None, None).unwrap().value, m);
    assert_eq!(
        encode_int64(1, None, None).unwrap().value,
        9223372036854775809
    );
    assert_eq!(
        encode_int64(0, None, None).unwrap().value,
        9223372036854775808
    );
    assert_eq!(
        encode_int64(-1, None, None).unwrap().value,
        9223372036854775807
    );
    assert_eq!(encode_int64(i64::MIN, None, None).unwrap().value, 0);
    let e = encode_int64(0, Some(i64::MIN), Some(37)).unwrap();
    assert_eq!((e.value, e.max), (9223372036854775808, 9223372036854775845));
    let e = encode_int64(-9223372036854775807, Some(i64::MIN), Some(1)).unwrap();
    assert_eq!((e.value, e.max), (1, 9223372036854775809));
    assert_eq!(
        encode_int64(1, Some(2), Some(1)).unwrap_err().to_string(),
        "The minimum value must be less than the maximum value, got min: 2, max: 1"
    );
    assert_eq!(
        encode_int64(0, Some(1), None).unwrap_err(),
        RangeError::BoundsMismatch
    );
}

/// The same file's `_test_RangeTest_Encode_Double` (server Double_Bounds,
/// Double_Errors and Double_Bounds_Precision tests).
#[test]
// libmongocrypt's literals, transcribed: not meant as pi.
#[allow(clippy::approx_constant)]
fn double_table() {
    let full: &[(f64, u64)] = &[
        (-1111.0, 4570770991734587392),
        (-111.0, 4585860689314185216),
        (-11.0, 4600989969312382976),
        (-10.0, 4601552919265804288),
        (-3.0, 4609434218613702656),
        (-2.0, 4611686018427387904),
        (-1.0, 4616189618054758400),
        (1.0, 13830554455654793216),
        (22.0, 13850257704024539136),
        (333.0, 13867937850999177216),
        (33E56, 14690973652625833878),
        (22E57, 14703137697061005818),
        (11E58, 14713688953586463292),
        (1E-6, 13740701229962882445),
        (1E-7, 13725520251343122248),
        (1E-8, 13710498295186492474),
        (1E-56, 12992711961033031890),
        (1E-57, 12977434315086142017),
        (1E-58, 12962510038552207822),
        (-1E-06, 4706042843746669171),
        (-1E-07, 4721223822366429368),
        (-1E-08, 4736245778523059142),
        (-1E-56, 5454032112676519726),
        (-1E-57, 5469309758623409599),
        (-1E-58, 5484234035157343794),
        (-33E+56, 3755770421083717738),
        (-22E+57, 3743606376648545798),
        (-11E+58, 3733055120123088324),
        (0.0, 9223372036854775808),
        (-0.0, 9223372036854775808),
    ];
    for (v, want) in full {
        let e = encode_double(*v, None, None, None).unwrap();
        assert_eq!(
            (e.value, e.max),
            (u128::from(*want), u64::MAX as u128),
            "{v:e}"
        );
    }
    for v in [f64::INFINITY, f64::NAN] {
        assert_eq!(
            encode_double(v, None, None, None).unwrap_err().to_string(),
            "Infinity and NaN double values are not supported."
        );
    }
    type P = (f64, f64, f64, i32, Result<(u64, u64), &'static str>);
    let pi = 3.141592653589;
    let precise: &[P] = &[
        (pi, -100000.0, 100000.0, 1, Ok((1000031, 2097151))),
        (pi, -100000.0, 100000.0, 2, Ok((10000314, 33554431))),
        (pi, -100000.0, 100000.0, 3, Ok((100003141, 268435455))),
        (pi, -100000.0, 100000.0, 4, Ok((1000031415, 2147483647))),
        (pi, -100000.0, 100000.0, 5, Ok((10000314159, 34359738367))),
        (pi, -100000.0, 100000.0, 6, Ok((100003141592, 274877906943))),
        (
            pi,
            -100000.0,
            100000.0,
            7,
            Ok((1000031415926, 2199023255551)),
        ),
        (0.0, -1.0, 1.0, 3, Ok((1000, 4095))),
        (0.0, -1E5, 1.0, 3, Ok((100000000, 134217727))),
        (-1E-33, -1E5, 1.0, 3, Ok((100000000, 134217727))),
        (
            0.0,
            -f64::MAX,
            f64::MAX,
            3,
            Err("Invalid upper bound for double precision."),
        ),
        (pi, 0.0, 5.0, 0, Ok((3, 7))),
        (pi, 0.0, 5.0, 1, Ok((31, 63))),
        (pi, 0.0, 5.0, 2, Ok((314, 1023))),
        (pi, 0.0, 5.0, 3, Ok((3141, 8191))),
        (
            pi,
            0.0,
            5.0,
            16,
            Err("Invalid upper bound for double precision"),
        ),
        (-5.0, -10.0, -1.0, 3, Ok((5000, 16383))),
        (
            1E100,
            -f64::MAX,
            f64::MAX,
            3,
            Err("Invalid upper bound for double precision."),
        ),
        (1E9, 0.0, 1E10, 3, Ok((1000000000000, 17592186044415))),
        (1E9, 0.0, 1E10, 0, Ok((1000000000, 17179869183))),
        (-5.0, -10.0, 10.0, 0, Ok((5, 31))),
        (-5.0, -10.0, 10.0, 2, Ok((500, 4095))),
        (
            1E-30,
            1E-30,
            10E-30,
            35,
            Err("Invalid upper bound for double precision."),
        ),
        (
            -9007199254740992.0,
            -9007199254740992.0,
            9007199254740992.0,
            0,
            Err("Invalid upper bound for double precision. Absolute"),
        ),
        (
            900719925474099.6,
            900719925474099.0,
            900719925474100.0,
            0,
            Ok((0, 1)),
        ),
        (
            900719925474099.6,
            900719925474099.0,
            900719925474100.0,
            1,
            Err("Invalid upper bound for double precision. Absolute"),
        ),
        (
            -900719925474099.6,
            -900719925474100.0,
            -900719925474099.0,
            1,
            Err("Invalid lower bound for double precision. Absolute"),
        ),
    ];
    for (v, min, max, p, want) in precise {
        let got = encode_double(*v, Some(*min), Some(*max), Some(*p));
        match want {
            Ok((value, mx)) => {
                let e = got.unwrap_or_else(|e| panic!("{v} {min} {max} {p}: {e}"));
                assert_eq!(
                    (e.value, e.max),
                    (u128::from(*value), u128::from(*mx)),
                    "{v} {p}"
                );
            }
            Err(msg) => {
                let e = got.expect_err("an error").to_string();
                assert!(e.contains(msg), "{v} {min} {max} {p}: {e}");
            }
        }
    }
    assert_eq!(
        encode_double(1.0, Some(0.0), Some(2.0), None).unwrap_err(),
        RangeError::PrecisionBoundsMismatch
    );
    assert_eq!(
        encode_double(1.0, Some(0.0), Some(2.0), Some(-1)).unwrap_err(),
        RangeError::NegativePrecision(-1)
    );
}

/// The same file's `_test_canUsePrecisionModeDouble`.
#[test]
// libmongocrypt's literals, transcribed: not meant as e or pi.
#[allow(clippy::approx_constant)]
fn can_use_precision_mode() {
    assert_eq!(can_use_precision_mode_double(1.0, 16.0, 0), Ok(Some(4)));
    assert_eq!(can_use_precision_mode_double(0.0, 16.0, 0), Ok(Some(5)));
    assert_eq!(
        can_use_precision_mode_double(2.718281, 314.159265, 6),
        Ok(Some(29))
    );
    let int_64_max_double = 9223372036854775807.0;
    let errors: &[(f64, f64, i32, &str)] = &[
        (
            1.0,
            9007199254740992.0,
            0,
            "Invalid upper bound for double precision. Absolute",
        ),
        (
            0.0,
            9007199254740992.0,
            0,
            "Invalid upper bound for double precision. Absolute",
        ),
        (
            -1000000000.0,
            9223372036844775424.0,
            0,
            "Invalid upper bound for double precision. Absolute",
        ),
        (
            2.71,
            314.15,
            2,
            "Invalid upper bound for double precision. Fractional digits",
        ),
        (
            314.15,
            350.0,
            2,
            "Invalid lower bound for double precision. Fractional digits",
        ),
        (
            9007199254740992.0,
            int_64_max_double,
            0,
            "Invalid upper bound for double precision. Absolute scaled value",
        ),
        (
            -int_64_max_double,
            1.0,
            0,
            "Invalid lower bound for double precision. Absolute scaled value",
        ),
        (
            -92233720368547.0,
            92233720368547.0,
            5,
            "Invalid upper bound for double precision. Absolute",
        ),
    ];
    for (min, max, p, msg) in errors {
        let e = can_use_precision_mode_double(*min, *max, *p)
            .expect_err("an error")
            .to_string();
        assert!(e.contains(msg), "{min} {max} {p}: {e}");
    }
    assert_eq!(
        RangeError::PrecisionMaxTooLarge {
            max: c_g(9007199254740992.0)
        }
        .to_string(),
        "Invalid upper bound for double precision. Absolute scaled value of max must be less than 9.0072e+15. max: 9.0072e+15"
    );
}

/// Decimal128 without precision: zero at 2^127, order preserved, and
/// precision refused with a typed error.
#[test]
fn decimal128_full_domain() {
    let dec = |s: &str| s.parse::<bson::Decimal128>().unwrap().bytes();
    let zero = encode_decimal128(dec("0"), None, None, None).unwrap();
    assert_eq!((zero.value, zero.max), (1 << 127, u128::MAX));
    assert_eq!(
        encode_decimal128(dec("-0.000"), None, None, None)
            .unwrap()
            .value,
        1 << 127
    );
    let ordered = [
        "-1E+10",
        "-12.5",
        "-1",
        "-0.001",
        "0",
        "1E-30",
        "0.5",
        "1",
        "1.0000001",
        "12.5",
        "1E+200",
    ];
    let encoded: Vec<u128> = ordered
        .iter()
        .map(|s| encode_decimal128(dec(s), None, None, None).unwrap().value)
        .collect();
    assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
    // Equal values in different representations encode equally.
    assert_eq!(
        encode_decimal128(dec("1.50"), None, None, None).unwrap(),
        encode_decimal128(dec("1.5"), None, None, None).unwrap()
    );
    assert_eq!(
        encode_decimal128(dec("1"), Some(dec("0")), Some(dec("2")), Some(1)),
        Err(RangeError::Decimal128PrecisionUnsupported)
    );
    assert_eq!(
        encode_decimal128(dec("Infinity"), None, None, None),
        Err(RangeError::Decimal128NotFinite)
    );
    assert_eq!(
        encode_decimal128(dec("NaN"), None, None, None),
        Err(RangeError::Decimal128NotFinite)
    );
    assert_eq!(
        encode_decimal128(dec("1"), Some(dec("0")), None, None),
        Err(RangeError::PrecisionBoundsMismatch)
    );
    // A coefficient of 2^113 - 1 (above 10^34 - 1): refused, not aborted.
    let mut non_canonical = [0xffu8; 16];
    non_canonical[14] = 0x01;
    non_canonical[15] = 0x30;
    assert_eq!(
        encode_decimal128(non_canonical, None, None, None),
        Err(RangeError::Decimal128NonCanonical)
    );
}

#[test]
fn debug_hides_the_value() {
    let e = encode_int32(12345, None, None).unwrap();
    assert!(!format!("{e:?}").contains(&e.value.to_string()));
}
