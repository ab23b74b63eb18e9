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
#[path = "encoding_tests.rs"]
mod tests;
