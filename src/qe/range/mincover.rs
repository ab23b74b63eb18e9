//! Minimal covers (libmongocrypt's `mc-range-mincover.c` and
//! `mc-range-mincover-generator.template.h`): the fewest stored prefixes
//! whose ranges exactly cover a queried interval.

use super::encoding::{self, Encoded};
use super::gfmt::c_g;
use super::{MAX_MINCOVER_EDGES, RangeError, bit_length, bit_string, trim_factor_default};
use zeroize::Zeroizing;

/// A minimal cover: edge strings (`'0'`/`'1'` prefixes or `"root"`), in
/// libmongocrypt's order. They spell out the query's bounds: zeroized on
/// drop; `Debug` prints only how many there are.
pub struct Mincover {
    edges: Zeroizing<Vec<String>>,
    trim_factor: i32,
}

impl Mincover {
    /// The edges, in libmongocrypt's order.
    pub fn as_slice(&self) -> &[String] {
        &self.edges
    }

    /// How many edges there are.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// The trim factor used (the default applied), as find payloads send
    /// it in `tf`.
    pub fn trim_factor(&self) -> i32 {
        self.trim_factor
    }
}

impl std::fmt::Debug for Mincover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mincover")
            .field("len", &self.edges.len())
            .field("trim_factor", &self.trim_factor)
            .finish_non_exhaustive()
    }
}

/// libmongocrypt's `MinCoverGenerator`, over 128-bit integers for every
/// width (the strings depend only on the values and the domain's bits).
struct Generator {
    range_min: u128,
    range_max: u128,
    sparsity: u64,
    trim_factor: u32,
    maxlen: u32,
}

impl Generator {
    fn new(
        range_min: u128,
        range_max: u128,
        max: u128,
        sparsity: u64,
        trim_factor: Option<i32>,
    ) -> Result<(Self, i32), RangeError> {
        if range_min > range_max {
            return Err(RangeError::RangeMinAboveRangeMax);
        }
        if range_max > max {
            return Err(RangeError::RangeMaxAboveMax { max });
        }
        if sparsity == 0 {
            return Err(RangeError::MincoverSparsityZero);
        }
        let maxlen = bit_length(max);
        let tf = trim_factor_default(maxlen, trim_factor);
        if tf > 0 && tf as u32 >= maxlen {
            return Err(RangeError::MincoverTrimFactorTooLarge {
                bits: maxlen,
                trim_factor: tf,
            });
        }
        if tf < 0 {
            return Err(RangeError::MincoverTrimFactorNegative(tf));
        }
        Ok((
            Generator {
                range_min,
                range_max,
                sparsity,
                trim_factor: tf as u32,
                maxlen,
            },
            tf,
        ))
    }

    /// `value` with its low `masked_bits` bits set (`applyMask`).
    fn apply_mask(value: u128, masked_bits: u32) -> u128 {
        if masked_bits == 0 {
            value
        } else {
            value | (u128::MAX >> (128 - masked_bits))
        }
    }

    /// Whether the level `maxlen - masked_bits` is stored
    /// (`isLevelStored`): the leaf always, others at multiples of the
    /// sparsity from the trim factor on.
    fn is_level_stored(&self, masked_bits: u32) -> bool {
        let level = self.maxlen - masked_bits;
        masked_bits == 0
            || (level >= self.trim_factor && u64::from(level).is_multiple_of(self.sparsity))
    }

    /// The edge string of the block starting at `start` with
    /// `masked_bits` free bits (`toString`).
    fn edge(&self, start: u128, masked_bits: u32) -> String {
        if masked_bits == self.maxlen {
            return "root".to_owned();
        }
        bit_string(start >> masked_bits, self.maxlen - masked_bits)
    }

    /// `minCoverRec`: appends the cover of the block to `out`.
    fn cover(
        &self,
        out: &mut Vec<String>,
        block_start: u128,
        masked_bits: u32,
    ) -> Result<(), RangeError> {
        let block_end = Self::apply_mask(block_start, masked_bits);
        if block_end < self.range_min || block_start > self.range_max {
            return Ok(());
        }
        if block_start >= self.range_min
            && block_end <= self.range_max
            && self.is_level_stored(masked_bits)
        {
            if out.len() >= MAX_MINCOVER_EDGES {
                return Err(RangeError::MincoverTooLarge);
            }
            out.push(self.edge(block_start, masked_bits));
            return Ok(());
        }
        // A single value is always stored: its level is the leaf.
        let new_bits = masked_bits
            .checked_sub(1)
            .ok_or(RangeError::Internal("minimal cover below the leaf"))?;
        self.cover(out, block_start, new_bits)?;
        self.cover(out, block_start | (1u128 << new_bits), new_bits)
    }

    fn min_cover(&self, trim_factor: i32) -> Result<Mincover, RangeError> {
        let mut edges = Zeroizing::new(Vec::new());
        self.cover(&mut edges, 0, self.maxlen)?;
        Ok(Mincover { edges, trim_factor })
    }
}

/// `adjustBounds`: an excluded bound moves one step inwards.
fn adjust_bounds(
    lower: &mut Encoded,
    include_lower: bool,
    upper: &mut Encoded,
    include_upper: bool,
) -> Result<(), RangeError> {
    if !include_lower {
        if lower.value >= lower.max {
            return Err(RangeError::ExcludedLowerAtMax { max: lower.max });
        }
        lower.value += 1;
    }
    if !include_upper {
        // The domain minimum is 0.
        if upper.value == 0 {
            return Err(RangeError::ExcludedUpperAtMin { min: 0 });
        }
        upper.value -= 1;
    }
    Ok(())
}

/// The inputs of a minimal cover for one value type, as libmongocrypt's
/// `mc_getMincover*_args_t`.
#[derive(Clone, Copy)]
pub struct MincoverArgs<T> {
    /// The query's lower bound.
    pub lower_bound: T,
    /// Whether it is included (`$gte`) or not (`$gt`).
    pub include_lower_bound: bool,
    /// The query's upper bound.
    pub upper_bound: T,
    /// Whether it is included (`$lte`) or not (`$lt`).
    pub include_upper_bound: bool,
    /// The index minimum (integers: with `max`; doubles: with `max` and
    /// `precision`).
    pub min: Option<T>,
    /// The index maximum.
    pub max: Option<T>,
    /// The precision (doubles and Decimal128 only; ignored for integers,
    /// as libmongocrypt's integer covers have none).
    pub precision: Option<i32>,
    /// The sparsity (at least 1).
    pub sparsity: u64,
    /// The trim factor; `None` for the default.
    pub trim_factor: Option<i32>,
}

/// libmongocrypt's `CHECK_BOUNDS`: the query against the index's bounds,
/// in the values' own type, before encoding. The negated comparisons are
/// libmongocrypt's: with a NaN bound they refuse where `>=` would not.
#[allow(clippy::neg_cmp_op_on_partial_ord, clippy::nonminimal_bool)]
fn check_bounds<T: PartialOrd + Copy>(
    args: &MincoverArgs<T>,
    show: impl Fn(T) -> String,
) -> Result<(), RangeError> {
    if let Some(min) = args.min {
        if args.upper_bound < min {
            return Err(RangeError::UpperBelowMin { min: show(min) });
        }
        if !args.include_upper_bound && !(min < args.upper_bound) {
            return Err(RangeError::UpperNotAboveMin { min: show(min) });
        }
    }
    if let Some(max) = args.max {
        if max < args.lower_bound {
            return Err(RangeError::LowerAboveMax { max: show(max) });
        }
        if !args.include_lower_bound && !(args.lower_bound < max) {
            return Err(RangeError::LowerNotBelowMax { max: show(max) });
        }
    }
    Ok(())
}

fn finish<T>(
    args: &MincoverArgs<T>,
    mut lower: Encoded,
    mut upper: Encoded,
) -> Result<Mincover, RangeError> {
    if lower.max != upper.max {
        return Err(RangeError::Internal(
            "bounds encoded into different domains",
        ));
    }
    adjust_bounds(
        &mut lower,
        args.include_lower_bound,
        &mut upper,
        args.include_upper_bound,
    )?;
    let (generator, trim_factor) = Generator::new(
        lower.value,
        upper.value,
        lower.max,
        args.sparsity,
        args.trim_factor,
    )?;
    generator.min_cover(trim_factor)
}

/// The minimal cover of an int32 interval (`mc_getMincoverInt32`).
pub fn mincover_int32(args: MincoverArgs<i32>) -> Result<Mincover, RangeError> {
    check_bounds(&args, |v| v.to_string())?;
    let lower = encoding::encode_int32(args.lower_bound, args.min, args.max)?;
    let upper = encoding::encode_int32(args.upper_bound, args.min, args.max)?;
    finish(&args, lower, upper)
}

/// The minimal cover of an int64 or date interval (`mc_getMincoverInt64`).
pub fn mincover_int64(args: MincoverArgs<i64>) -> Result<Mincover, RangeError> {
    check_bounds(&args, |v| v.to_string())?;
    let lower = encoding::encode_int64(args.lower_bound, args.min, args.max)?;
    let upper = encoding::encode_int64(args.upper_bound, args.min, args.max)?;
    finish(&args, lower, upper)
}

/// The minimal cover of a double interval (`mc_getMincoverDouble`).
pub fn mincover_double(args: MincoverArgs<f64>) -> Result<Mincover, RangeError> {
    check_bounds(&args, c_g)?;
    let lower = encoding::encode_double(args.lower_bound, args.min, args.max, args.precision)?;
    let upper = encoding::encode_double(args.upper_bound, args.min, args.max, args.precision)?;
    finish(&args, lower, upper)
}

/// The minimal cover of a Decimal128 interval, bounds given as their BSON
/// bytes (`mc_getMincoverDecimal128`; without precision only: with min,
/// max and precision it is refused before any comparison, which would
/// need decimal arithmetic).
pub fn mincover_decimal128(args: MincoverArgs<[u8; 16]>) -> Result<Mincover, RangeError> {
    if args.min.is_some() || args.max.is_some() || args.precision.is_some() {
        // libmongocrypt checks the bounds in decimal first; every such
        // input ends in the precision mode csfle does not reproduce (or in
        // an argument error, which encode_decimal128 reports).
        encoding::encode_decimal128(args.lower_bound, args.min, args.max, args.precision)?;
        return Err(RangeError::Decimal128PrecisionUnsupported);
    }
    let lower = encoding::encode_decimal128(args.lower_bound, None, None, None)?;
    let upper = encoding::encode_decimal128(args.upper_bound, None, None, None)?;
    finish(&args, lower, upper)
}

#[cfg(test)]
#[path = "mincover_tests.rs"]
mod tests;
