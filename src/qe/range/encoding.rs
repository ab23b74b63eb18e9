//! The range encoding (libmongocrypt's `mc-range-encoding.c`, "OST"
//! types): a value mapped into the unsigned domain `0..=max`, order
//! preserved.
//!
//! * int32 / int64 / date: `value + 2^31` (`2^63`), minus the encoded
//!   minimum when bounds are given;
//! * double without precision: the IEEE bits, sign flipped so negative
//!   numbers sort below positive ones (full 64-bit domain);
//! * double with precision: `trunc(value × 10^p) − min × 10^p`, over a
//!   domain of the fewest bits holding `(max − min) × 10^p + 10^p`;
//! * Decimal128 without precision: coefficient and exponent folded into
//!   128 bits (full domain). With precision: refused
//!   ([`RangeError::Decimal128PrecisionUnsupported`]).

use super::RangeError;
use super::gfmt::c_g;

/// A value in the unsigned domain `0..=max` (the domain minimum is always
/// 0). Integers of every width are held as `u128`: the edges and covers
/// depend only on the values and the bit length of `max`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The encoded value.
    pub value: u128,
    /// The largest value of the domain.
    pub max: u128,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is the plaintext in another form: not printed.
        f.debug_struct("Encoded")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// `v + 2^31` as an unsigned 32-bit number (libmongocrypt's `encodeInt32`).
fn encode_i32(v: i32) -> u32 {
    (v as u32).wrapping_add(1 << 31)
}

/// `v + 2^63` as an unsigned 64-bit number (libmongocrypt's `encodeInt64`).
fn encode_i64(v: i64) -> u64 {
    (v as u64).wrapping_add(1 << 63)
}

/// Encodes an int32 (`mc_getTypeInfo32`): `min` and `max` both or neither.
pub fn encode_int32(value: i32, min: Option<i32>, max: Option<i32>) -> Result<Encoded, RangeError> {
    match (min, max) {
        (None, None) => Ok(Encoded {
            value: encode_i32(value).into(),
            max: u32::MAX.into(),
        }),
        (Some(min), Some(max)) => {
            if min >= max {
                return Err(RangeError::MinNotBelowMax {
                    min: min.to_string(),
                    max: max.to_string(),
                });
            }
            if value > max || value < min {
                return Err(RangeError::ValueOutOfBounds {
                    min: min.to_string(),
                    max: max.to_string(),
                });
            }
            let base = encode_i32(min);
            Ok(Encoded {
                value: encode_i32(value).wrapping_sub(base).into(),
                max: encode_i32(max).wrapping_sub(base).into(),
            })
        }
        _ => Err(RangeError::BoundsMismatch),
    }
}

/// Encodes an int64 or a date's milliseconds (`mc_getTypeInfo64`).
pub fn encode_int64(value: i64, min: Option<i64>, max: Option<i64>) -> Result<Encoded, RangeError> {
    match (min, max) {
        (None, None) => Ok(Encoded {
            value: encode_i64(value).into(),
            max: u64::MAX.into(),
        }),
        (Some(min), Some(max)) => {
            if min >= max {
                return Err(RangeError::MinNotBelowMax {
                    min: min.to_string(),
                    max: max.to_string(),
                });
            }
            if value > max || value < min {
                return Err(RangeError::ValueOutOfBounds {
                    min: min.to_string(),
                    max: max.to_string(),
                });
            }
            let base = encode_i64(min);
            Ok(Encoded {
                value: encode_i64(value).wrapping_sub(base).into(),
                max: encode_i64(max).wrapping_sub(base).into(),
            })
        }
        _ => Err(RangeError::BoundsMismatch),
    }
}

/// 2^53: doubles are exact integers below it.
const SCALED_DOUBLE_BOUNDS: f64 = 9007199254740992.0;

/// C's `pow(10, x)`: `f64::powf` is the platform's `pow`, as in C.
fn exp10(precision: i32) -> f64 {
    10f64.powf(f64::from(precision))
}

/// `max − min` of two scaled bounds as unsigned (libmongocrypt's
/// `subtract_int64_t`; `max > min`).
fn subtract_i64(max: i64, min: i64) -> Result<u64, RangeError> {
    if max <= min {
        return Err(RangeError::Internal("scaled bounds are not ordered"));
    }
    if (max > 0 && min > 0) || (max < 0 && min < 0) {
        // Same sign: no overflow, and the difference is positive.
        Ok(max.wrapping_sub(min) as u64)
    } else {
        Ok((max as u64).wrapping_add(min.wrapping_neg() as u64))
    }
}

/// ⌈log2(i)⌉ (libmongocrypt's `ceil_log2_double`).
fn ceil_log2(i: u64) -> Result<u32, RangeError> {
    if i == 0 {
        return Err(RangeError::CeilLog2Zero);
    }
    let clz = i.leading_zeros();
    Ok(if i.is_power_of_two() {
        64 - clz - 1
    } else {
        64 - clz
    })
}

/// Whether a double domain with precision fits in fewer than 53 bits
/// (`mc_canUsePrecisionModeDouble`): `Ok(Some(bits))` if it does,
/// `Ok(None)` if it needs 53 bits or more, an error for invalid bounds.
/// `precision` must be non-negative.
pub fn can_use_precision_mode_double(
    min: f64,
    max: f64,
    precision: i32,
) -> Result<Option<u32>, RangeError> {
    if precision < 0 {
        return Err(RangeError::NegativePrecision(precision));
    }
    if min >= max {
        return Err(RangeError::PrecisionBoundsNotOrdered {
            min: c_g(min),
            max: c_g(max),
        });
    }
    let scaled_prc = exp10(precision);
    let scaled_max = max * scaled_prc;
    let scaled_min = min * scaled_prc;
    if scaled_max != scaled_max.trunc() {
        return Err(RangeError::PrecisionMaxFraction { max: c_g(max) });
    }
    if scaled_min != scaled_min.trunc() {
        return Err(RangeError::PrecisionMinFraction { min: c_g(min) });
    }
    if scaled_max.abs() >= SCALED_DOUBLE_BOUNDS {
        return Err(RangeError::PrecisionMaxTooLarge { max: c_g(max) });
    }
    if scaled_min.abs() >= SCALED_DOUBLE_BOUNDS {
        return Err(RangeError::PrecisionMinTooLarge { min: c_g(min) });
    }
    let t_1 = scaled_max - scaled_min;
    // (double)UINT64_MAX is 2^64.
    let t_4 = u64::MAX as f64 - t_1;
    let t_5 = t_4.log10().floor() - 1.0;
    if f64::from(precision) > t_5 {
        return Err(RangeError::InvalidPrecision(precision));
    }
    // Both scaled bounds are integers below 2^53 in magnitude: exact.
    let i_1 = scaled_max as i64;
    let i_2 = scaled_min as i64;
    let range = subtract_i64(i_1, i_2)?;
    // precision <= t_5 < 20: 10^precision < 2^64.
    let prc = scaled_prc as u64;
    if prc > u64::MAX - range {
        return Err(RangeError::DomainTooLarge {
            min: c_g(min),
            max: c_g(max),
            precision,
        });
    }
    let bits = ceil_log2(range + prc)?;
    // Integers up to 2^53 are exact in a double; beyond, precision mode
    // would surprise: libmongocrypt refuses it.
    Ok(if bits >= 53 { None } else { Some(bits) })
}

/// Encodes a double (`mc_getTypeInfoDouble`): `min`, `max` and `precision`
/// all or none.
pub fn encode_double(
    value: f64,
    min: Option<f64>,
    max: Option<f64>,
    precision: Option<i32>,
) -> Result<Encoded, RangeError> {
    if min.is_some() != max.is_some() || min.is_some() != precision.is_some() {
        return Err(RangeError::PrecisionBoundsMismatch);
    }
    if !value.is_finite() {
        return Err(RangeError::DoubleNotFinite);
    }
    if let (Some(min), Some(max)) = (min, max) {
        if min >= max {
            return Err(RangeError::MinNotBelowMax {
                min: c_g(min),
                max: c_g(max),
            });
        }
        if value > max || value < min {
            return Err(RangeError::ValueOutOfBounds {
                min: c_g(min),
                max: c_g(max),
            });
        }
    }
    if let Some(precision) = precision {
        if precision < 0 {
            return Err(RangeError::NegativePrecision(precision));
        }
        if !exp10(precision).is_finite() {
            return Err(RangeError::PrecisionTooLarge);
        }
    }
    let is_neg = value < 0.0;
    // -0.0 encodes as 0.0.
    let value = if value == 0.0 { 0.0 } else { value };

    if let (Some(min), Some(max), Some(precision)) = (min, max, precision) {
        let bits = can_use_precision_mode_double(min, max, precision)?.ok_or_else(|| {
            RangeError::PrecisionDomainTooWide {
                min: c_g(min),
                max: c_g(max),
                precision,
            }
        })?;
        let scale = exp10(precision);
        // In range: |value × 10^p| <= |max × 10^p| < 2^53 (checked above).
        let v_prime = (value * scale).trunc() as i64;
        let scaled_min = (min * scale) as i64;
        let v_prime2 = v_prime
            .checked_sub(scaled_min)
            .filter(|v| *v >= 0 && *v < i64::MAX)
            .ok_or(RangeError::Internal("scaled value outside the domain"))?;
        // bits < 53.
        let max_value = (1u64 << bits) - 1;
        let ret = v_prime2 as u64;
        if ret > max_value {
            return Err(RangeError::Internal("scaled value above the domain"));
        }
        return Ok(Encoded {
            value: ret.into(),
            max: max_value.into(),
        });
    }

    // The IEEE bits of -value: positive numbers land in the upper half,
    // negative ones are mirrored into the lower half.
    let mut uv = (-value).to_bits();
    if is_neg {
        let new_zero = 1u64 << 63;
        if uv > new_zero {
            return Err(RangeError::Internal("negative double above 2^63"));
        }
        uv = new_zero - uv;
    }
    Ok(Encoded {
        value: uv.into(),
        max: u64::MAX.into(),
    })
}

/// A Decimal128's parts from its BSON bytes (little-endian BID), as
/// libmongocrypt's `mc_dec128_*` accessors read them.
struct Dec128Parts {
    negative: bool,
    infinite_or_nan: bool,
    /// The coefficient bits (0 for the non-canonical `11` combination).
    coefficient: u128,
    /// The biased exponent.
    biased_exponent: u32,
}

fn dec128_parts(bytes: [u8; 16]) -> Dec128Parts {
    let bits = u128::from_le_bytes(bytes);
    let hi = (bits >> 64) as u64;
    let negative = hi >> 63 == 1;
    // IEEE 754: 11110 is infinity, 11111 NaN (Intel's isInf / isNaN masks).
    let infinite_or_nan = hi & 0x7800_0000_0000_0000 == 0x7800_0000_0000_0000;
    // The 17 combination bits after the sign.
    let combination = ((hi >> 46) & ((1 << 17) - 1)) as u32;
    const NONCANONICAL: u32 = 3 << 15;
    const INFINITY: u32 = 0x1e << 12;
    const MAX_BIASED_EXPONENT: u32 = 6143 + 6144;
    let (coefficient, biased_exponent) = if combination < NONCANONICAL {
        let coefficient = bits & ((1u128 << (64 + 49)) - 1);
        (coefficient, combination >> 3)
    } else if combination >= INFINITY {
        (0, MAX_BIASED_EXPONENT + 1)
    } else {
        (0, (combination >> 1) & ((1 << 14) - 1))
    };
    Dec128Parts {
        negative,
        infinite_or_nan,
        coefficient,
        biased_exponent,
    }
}

/// Encodes a Decimal128 given as its 16 BSON bytes
/// (`mc_getTypeInfoDecimal128`). Without min, max and precision: the full
/// 128-bit domain, exact. With them: refused (see the module docs); the
/// argument checks libmongocrypt makes first still come first.
pub fn encode_decimal128(
    value: [u8; 16],
    min: Option<[u8; 16]>,
    max: Option<[u8; 16]>,
    precision: Option<i32>,
) -> Result<Encoded, RangeError> {
    if min.is_some() != max.is_some() || min.is_some() != precision.is_some() {
        return Err(RangeError::PrecisionBoundsMismatch);
    }
    if let Some(precision) = precision {
        if precision < 0 {
            return Err(RangeError::NegativePrecision(precision));
        }
        return Err(RangeError::Decimal128PrecisionUnsupported);
    }
    let parts = dec128_parts(value);
    if parts.infinite_or_nan {
        return Err(RangeError::Decimal128NotFinite);
    }
    const TWO_POW_127: u128 = 1 << 127;
    if parts.coefficient == 0 {
        return Ok(Encoded {
            value: TWO_POW_127,
            max: u128::MAX,
        });
    }
    // cMax = 10^34 − 1, the largest coefficient.
    const C_MAX: u128 = 9_999_999_999_999_999_999_999_999_999_999_999;
    const C_MAX_DIV_TEN: u128 = C_MAX / 10;
    // ρ: the greatest integer with coefficient × 10^ρ <= cMax.
    let mut rho: u32 = 0;
    let mut coeff_scaled = parts.coefficient;
    while coeff_scaled < C_MAX_DIV_TEN {
        rho += 1;
        coeff_scaled *= 10;
    }
    if coeff_scaled > C_MAX {
        return Err(RangeError::Decimal128NonCanonical);
    }
    let exp_biased = parts.biased_exponent;
    let mut result = if rho <= exp_biased {
        let exp_diff = u128::from(exp_biased - rho);
        coeff_scaled.wrapping_add(C_MAX.wrapping_mul(exp_diff))
    } else {
        // exp_biased < rho <= 33: 10^exp_biased fits.
        10u128.pow(exp_biased).wrapping_mul(parts.coefficient)
    };
    result = result.wrapping_add(TWO_POW_127);
    if parts.negative {
        result = result.wrapping_neg();
    }
    Ok(Encoded {
        value: result,
        max: u128::MAX,
    })
}

#[cfg(test)]
mod tests {
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
}
