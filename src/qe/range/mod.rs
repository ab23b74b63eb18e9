//! Range indexes: the numeric encoding, edge generation and minimal cover
//! of libmongocrypt's range V2, byte for byte (`mc-range-encoding.c`,
//! `mc-range-edge-generation.c`, `mc-range-mincover-generator.template.h`).
//!
//! A range-indexed value is mapped into an unsigned domain `0..=max`
//! ([`encoding`]); an insert sends one token set per *edge* of the value
//! (each prefix of its bit string that the sparsity keeps, plus `"root"`
//! unless trimmed: [`edges`]), and a query sends one token set per prefix
//! of its *minimal cover*, the fewest stored prefixes whose ranges exactly
//! cover the queried interval ([`mincover`]). Edges and covers are strings
//! of `'0'` and `'1'` (or `"root"`): the tokens are derived from their
//! ASCII bytes.
//!
//! Defaults are libmongocrypt's: sparsity 2, trim factor 6 clamped to one
//! less than the domain's bit length. Every error libmongocrypt raises is a
//! [`RangeError`] with libmongocrypt's words, except that a value or query
//! bound (plaintext) is never printed: where libmongocrypt prints one,
//! csfle prints `(redacted)`. The index's own parameters (min, max,
//! precision, trim factor, bit lengths) are printed as libmongocrypt
//! prints them (doubles with C's `%g`): they are not secret, the server
//! receives them in every payload.
//!
//! Decimal128 is encoded exactly without precision (the full 128-bit
//! domain, bit manipulation on the IEEE 754 BID encoding); with a
//! precision it needs libmongocrypt's decimal arithmetic (scaling,
//! rounding, a decimal `log10`), which csfle does not reproduce, and is
//! refused with [`RangeError::Decimal128PrecisionUnsupported`].
//!
//! Pure and total: every input gives a result or an error, never a panic;
//! a cover too large for a BSON document is refused rather than built.

pub mod edges;
pub mod encoding;
mod gfmt;
pub mod mincover;

pub use edges::Edges;
pub use mincover::Mincover;

/// libmongocrypt's default sparsity (`mc_FLERangeSparsityDefault`).
pub const DEFAULT_SPARSITY: i64 = 2;

/// libmongocrypt's default trim factor (`mc_FLERangeTrimFactorDefault`),
/// clamped by [`trim_factor_default`] to one less than the domain's bits.
pub const DEFAULT_TRIM_FACTOR: i32 = 6;

/// The most edges a minimal cover may have: each edge's token set takes
/// about 125 bytes of a find payload, and a BSON document holds 16 MiB.
/// libmongocrypt has no such bound (a large trim factor over a wide query
/// would exhaust its memory); csfle refuses instead.
pub const MAX_MINCOVER_EDGES: usize = 1 << 17;

/// The trim factor libmongocrypt uses (`trimFactorDefault`): the one
/// given, else 6, or `bits - 1` if that is smaller. (A domain of 0 bits
/// keeps 6, as libmongocrypt's unsigned `maxlen - 1` wraps.)
pub fn trim_factor_default(bits: u32, trim_factor: Option<i32>) -> i32 {
    match trim_factor {
        Some(tf) => tf,
        None if bits == 0 => DEFAULT_TRIM_FACTOR,
        // `bits` is at most 128: the cast is exact.
        None if DEFAULT_TRIM_FACTOR as u32 > bits - 1 => (bits - 1) as i32,
        None => DEFAULT_TRIM_FACTOR,
    }
}

/// The bit length of the domain `0..=max`: libmongocrypt's
/// `BITS - count_leading_zeros(max)`, the same for every width.
pub(crate) fn bit_length(max: u128) -> u32 {
    128 - max.leading_zeros()
}

/// The low `len` bits of `value` as `'0'`/`'1'`, most significant first
/// (libmongocrypt's `mc_convert_to_bitstring_*` after its offset).
pub(crate) fn bit_string(value: u128, len: u32) -> String {
    (0..len.min(128))
        .rev()
        .map(|i| if (value >> i) & 1 == 1 { '1' } else { '0' })
        .collect()
}

/// libmongocrypt's name of a BSON type in its messages
/// (`mc_bson_type_to_string`).
pub fn bson_type_name(ty: bson::spec::ElementType) -> &'static str {
    use bson::spec::ElementType::*;
    match ty {
        Double => "DOUBLE",
        String => "UTF8",
        EmbeddedDocument => "DOCUMENT",
        Array => "ARRAY",
        Binary => "BINARY",
        Undefined => "UNDEFINED",
        ObjectId => "OID",
        Boolean => "BOOL",
        DateTime => "DATE_TIME",
        Null => "NULL",
        RegularExpression => "REGEX",
        DbPointer => "DBPOINTER",
        JavaScriptCode => "CODE",
        Symbol => "SYMBOL",
        JavaScriptCodeWithScope => "CODEWSCOPE",
        Int32 => "INT32",
        Timestamp => "TIMESTAMP",
        Int64 => "INT64",
        Decimal128 => "DECIMAL128",
        MaxKey => "MAXKEY",
        MinKey => "MINKEY",
    }
}

/// What can go wrong in range encoding, edge generation, minimal covers
/// and range options: libmongocrypt's errors, with its words. A value or a
/// query bound is never part of an error (`(redacted)` stands where
/// libmongocrypt prints one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Only one of min and max was given for an integer domain.
    #[error("Must specify both a lower and upper bound or no bounds.")]
    BoundsMismatch,
    /// The index's min is not below its max.
    #[error("The minimum value must be less than the maximum value, got min: {min}, max: {max}")]
    MinNotBelowMax {
        /// The index minimum, as libmongocrypt prints it.
        min: String,
        /// The index maximum, as libmongocrypt prints it.
        max: String,
    },
    /// The value (or a query bound) lies outside the index's bounds.
    #[error(
        "Value must be greater than or equal to the minimum value and less than or equal to the maximum value, got min: {min}, max: {max}, value: (redacted)"
    )]
    ValueOutOfBounds {
        /// The index minimum.
        min: String,
        /// The index maximum.
        max: String,
    },
    /// min, max and precision must come together for doubles and
    /// Decimal128.
    #[error("min, max, and precision must all be set or must all be unset")]
    PrecisionBoundsMismatch,
    /// A double value is infinite or NaN.
    #[error("Infinity and NaN double values are not supported.")]
    DoubleNotFinite,
    /// A Decimal128 value is infinite or NaN.
    #[error("Infinity and Nan Decimal128 values are not supported.")]
    Decimal128NotFinite,
    /// A negative precision.
    #[error("Precision must be non-negative, but got {0}")]
    NegativePrecision(i32),
    /// 10^precision is not a finite double.
    #[error("Precision is too large and cannot be used to calculate the scaled range bounds")]
    PrecisionTooLarge,
    /// Precision mode: min is not below max.
    #[error(
        "Invalid bounds for double range precision, min must be less than max. min: {min}, max: {max}"
    )]
    PrecisionBoundsNotOrdered {
        /// The index minimum.
        min: String,
        /// The index maximum.
        max: String,
    },
    /// Precision mode: max has more fractional digits than the precision.
    #[error(
        "Invalid upper bound for double precision. Fractional digits must be less than the specified precision value. max: {max}"
    )]
    PrecisionMaxFraction {
        /// The index maximum.
        max: String,
    },
    /// Precision mode: min has more fractional digits than the precision.
    #[error(
        "Invalid lower bound for double precision. Fractional digits must be less than the specified precision value. min: {min}"
    )]
    PrecisionMinFraction {
        /// The index minimum.
        min: String,
    },
    /// Precision mode: max × 10^precision is at least 2^53 in magnitude.
    #[error(
        "Invalid upper bound for double precision. Absolute scaled value of max must be less than 9.0072e+15. max: {max}"
    )]
    PrecisionMaxTooLarge {
        /// The index maximum.
        max: String,
    },
    /// Precision mode: min × 10^precision is at least 2^53 in magnitude.
    #[error(
        "Invalid lower bound for double precision. Absolute scaled value of min must be less than 9.0072e+15. min: {min}"
    )]
    PrecisionMinTooLarge {
        /// The index minimum.
        min: String,
    },
    /// Precision mode: the precision leaves no room in 64 bits.
    #[error("Invalid value for precision. precision: {0}")]
    InvalidPrecision(i32),
    /// Precision mode: the domain size overflows 64 bits.
    #[error(
        "Invalid value for min, max, and precision. The calculated domain size is too large. min: {min}, max: {max}, precision: {precision}"
    )]
    DomainTooLarge {
        /// The index minimum.
        min: String,
        /// The index maximum.
        max: String,
        /// The precision.
        precision: i32,
    },
    /// Precision mode: a domain of size 0 (cannot happen for valid bounds).
    #[error("Invalid input to ceil_log2_double function. Input cannot be 0.")]
    CeilLog2Zero,
    /// Precision mode: the domain needs 53 bits or more.
    #[error(
        "The domain of double values specified by the min, max, and precision cannot be represented in fewer than 53 bits. min: {min}, max: {max}, precision: {precision}"
    )]
    PrecisionDomainTooWide {
        /// The index minimum.
        min: String,
        /// The index maximum.
        max: String,
        /// The precision.
        precision: i32,
    },
    /// Decimal128 with a precision: not reproduced by csfle.
    #[error(
        "Decimal128 range indexes with a precision are not supported by csfle (they need libmongocrypt's decimal arithmetic); a Decimal128 index without min, max and precision is"
    )]
    Decimal128PrecisionUnsupported,
    /// A Decimal128 whose coefficient exceeds 10^34 − 1 (libmongocrypt
    /// aborts on it).
    #[error("non-canonical Decimal128 value: its coefficient exceeds 10^34 - 1")]
    Decimal128NonCanonical,
    /// Edge generation: sparsity 0.
    #[error("sparsity must be 1 or larger")]
    EdgesSparsityZero,
    /// Edge generation: the trim factor leaves no edge but the leaf.
    #[error(
        "trimFactor must be less than the number of bits ({bits}) used to represent an element of the domain, but got {trim_factor}"
    )]
    EdgesTrimFactorTooLarge {
        /// The domain's bit length.
        bits: u32,
        /// The trim factor.
        trim_factor: i32,
    },
    /// Edge generation: a negative trim factor.
    #[error("trimFactor must be >= 0, but got {0}")]
    EdgesTrimFactorNegative(i32),
    /// Minimal cover: the upper bound is below the index minimum.
    #[error("Upper bound (redacted) must be greater than or equal to the range minimum ({min})")]
    UpperBelowMin {
        /// The index minimum.
        min: String,
    },
    /// Minimal cover: an excluded upper bound at or below the minimum.
    #[error(
        "Upper bound (redacted) must be greater than the range minimum ({min}) if upper bound is excluded from range"
    )]
    UpperNotAboveMin {
        /// The index minimum.
        min: String,
    },
    /// Minimal cover: the lower bound is above the index maximum.
    #[error("Lower bound (redacted) must be less than or equal to the range maximum ({max})")]
    LowerAboveMax {
        /// The index maximum.
        max: String,
    },
    /// Minimal cover: an excluded lower bound at or above the maximum.
    #[error(
        "Lower bound (redacted) must be less than the range maximum ({max}) if lower bound is excluded from range"
    )]
    LowerNotBelowMax {
        /// The index maximum.
        max: String,
    },
    /// Minimal cover: an excluded lower bound at the encoded maximum.
    #[error(
        "Lower bound (redacted) must be less than the range maximum ({max}) if lower bound is excluded from range."
    )]
    ExcludedLowerAtMax {
        /// The encoded domain maximum.
        max: u128,
    },
    /// Minimal cover: an excluded upper bound at the encoded minimum.
    #[error(
        "Upper bound (redacted) must be greater than the range minimum ({min}) if upper bound is excluded from range."
    )]
    ExcludedUpperAtMin {
        /// The encoded domain minimum.
        min: u128,
    },
    /// Minimal cover: the (adjusted) query is empty.
    #[error(
        "Range min (redacted) must be less than or equal to range max (redacted) for range search"
    )]
    RangeMinAboveRangeMax,
    /// Minimal cover: the query's upper end is beyond the domain.
    #[error("Range max (redacted) must be less than or equal to max ({max}) for range search")]
    RangeMaxAboveMax {
        /// The encoded domain maximum.
        max: u128,
    },
    /// Minimal cover: sparsity 0.
    #[error("Sparsity must be > 0")]
    MincoverSparsityZero,
    /// Minimal cover: the trim factor leaves nothing to cover with.
    #[error(
        "Trim factor must be less than the number of bits ({bits}) used to represent an element of the domain, but got {trim_factor}"
    )]
    MincoverTrimFactorTooLarge {
        /// The domain's bit length.
        bits: u32,
        /// The trim factor.
        trim_factor: i32,
    },
    /// Minimal cover: a negative trim factor.
    #[error("Trim factor must be >= 0, but got ({0})")]
    MincoverTrimFactorNegative(i32),
    /// Minimal cover: more edges than a BSON document could carry.
    #[error("the minimal cover has more than 131072 edges: lower the trim factor or the sparsity")]
    MincoverTooLarge,
    /// Range options: a negative sparsity.
    #[error("Error validating sparsity: sparsity must be non-negative, got: {0}")]
    SparsityNegative(i64),
    /// Range options: a negative precision.
    #[error("Error parsing RangeOpts: 'precision' must be non-negative")]
    OptsPrecisionNegative,
    /// Range options: a negative trim factor.
    #[error("Error parsing RangeOpts: 'trimFactor' must be non-negative")]
    OptsTrimFactorNegative,
    /// Range options: precision without min.
    #[error("Error parsing RangeOpts: setting precision requires min")]
    OptsPrecisionRequiresMin,
    /// Range options: precision without max.
    #[error("Error parsing RangeOpts: setting precision requires max")]
    OptsPrecisionRequiresMax,
    /// Range options: precision with a bound that is not a double or
    /// Decimal128.
    #[error(
        "Error parsing RangeOpts: expected 'precision' to be set with double or decimal128 index, but got: {type_name} {bound}"
    )]
    OptsPrecisionWrongType {
        /// `min` or `max`.
        bound: &'static str,
        /// The bound's BSON type, in libmongocrypt's words.
        type_name: &'static str,
    },
    /// Range options: min and max of different types.
    #[error(
        "Error parsing RangeOpts: expected 'min' and 'max' to be same type, but got: {min_type} min and {max_type} max"
    )]
    OptsMinMaxTypeMismatch {
        /// min's BSON type.
        min_type: &'static str,
        /// max's BSON type.
        max_type: &'static str,
    },
    /// Range options: a double or Decimal128 bound without precision.
    #[error(
        "Error parsing RangeOpts: expected 'precision' to be set with '{bound}' for {type_name}"
    )]
    OptsBoundRequiresPrecision {
        /// `min` or `max`.
        bound: &'static str,
        /// The bound's BSON type.
        type_name: &'static str,
    },
    /// The range option's bound is not of the value's type.
    #[error(
        "Error appending {bound} to FLE2RangeInsertSpec: expected matching '{bound}' and value type. Got range option '{bound}' of type {bound_type} and value of type {value_type}"
    )]
    BoundTypeMismatch {
        /// `min` or `max`.
        bound: &'static str,
        /// The bound's BSON type.
        bound_type: &'static str,
        /// The value's BSON type.
        value_type: &'static str,
    },
    /// An integer or date range index needs both bounds.
    #[error(
        "Error appending {bound} to FLE2RangeInsertSpec: Range option '{bound}' is required for type: {type_name}"
    )]
    BoundRequired {
        /// `min` or `max`.
        bound: &'static str,
        /// The value's BSON type.
        type_name: &'static str,
    },
    /// A BSON type no range index holds.
    #[error(
        "Error appending {bound} to FLE2RangeInsertSpec: unsupported BSON type: {type_name} for range"
    )]
    UnsupportedBoundType {
        /// `min` or `max`.
        bound: &'static str,
        /// The value's BSON type.
        type_name: &'static str,
    },
    /// Range options: the trim factor is not below the domain's bits.
    #[error(
        "Error appending trim factor to FLE2RangeInsertSpec: Trim factor ({trim_factor}) must be less than the total number of bits ({bits}) used to represent any element in the domain."
    )]
    OptsTrimFactorTooLarge {
        /// The trim factor.
        trim_factor: i32,
        /// The domain's bit length.
        bits: u32,
    },
    /// Range insert: a value type no range index holds.
    #[error("unsupported BSON type: {0} for range")]
    UnsupportedType(&'static str),
    /// Range find: indexMin and indexMax differ in type.
    #[error(
        "indexMin and indexMax must have the same type. Got: {min_type} indexMin and {max_type} indexMax"
    )]
    IndexBoundsTypeMismatch {
        /// indexMin's BSON type.
        min_type: &'static str,
        /// indexMax's BSON type.
        max_type: &'static str,
    },
    /// Range find: a query bound not of the index's type.
    #[error("expected {bound} to match index type {index_type}, got {bound_type}")]
    QueryBoundTypeMismatch {
        /// `lowerBound` or `upperBound`.
        bound: &'static str,
        /// The index's BSON type.
        index_type: &'static str,
        /// The bound's BSON type.
        bound_type: &'static str,
    },
    /// Range find: an index type no range index has.
    #[error("FLE2 find is not supported for type: {0}")]
    FindUnsupportedType(&'static str),
    /// A state libmongocrypt asserts cannot happen (it aborts there).
    #[error("internal range encoding error: {0}")]
    Internal(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_limit_is_the_message_s() {
        assert_eq!(MAX_MINCOVER_EDGES, 131072);
    }

    #[test]
    fn trim_factor_defaults_clamp() {
        assert_eq!(trim_factor_default(32, None), 6);
        assert_eq!(trim_factor_default(7, None), 6);
        assert_eq!(trim_factor_default(6, None), 5);
        assert_eq!(trim_factor_default(1, None), 0);
        assert_eq!(trim_factor_default(0, None), 6);
        assert_eq!(trim_factor_default(3, Some(9)), 9);
    }

    #[test]
    fn bit_strings() {
        // libmongocrypt's _test_convert_to_bitstring cases.
        assert_eq!(bit_string(0, 32), "0".repeat(32));
        assert_eq!(bit_string(123, 32), format!("{}1111011", "0".repeat(25)));
        assert_eq!(
            bit_string(u32::MAX as u128 - 1, 32),
            format!("{}0", "1".repeat(31))
        );
        assert_eq!(bit_string(u64::MAX as u128, 64), "1".repeat(64));
        assert_eq!(
            bit_string(256, 128),
            format!("{}100000000", "0".repeat(119))
        );
        assert_eq!(bit_length(0), 0);
        assert_eq!(bit_length(7), 3);
        assert_eq!(bit_length(u128::MAX), 128);
    }
}
