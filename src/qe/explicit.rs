//! Explicit Queryable Encryption, the pure part: what libmongocrypt's
//! `mongocrypt_ctx_explicit_encrypt_init`, `…_expression_init` and
//! `_fle2_finalize_explicit` do once the keys are decrypted
//! (`mongocrypt-ctx-encrypt.c`, `mc-rangeopts.c`, `mc-fle2-rfds.c`).
//!
//! An API layer (the `mongodb` crate's `encrypt(value, key, algorithm)`
//! action with `.contention_factor()`, `.query_type()`,
//! `.range_options()`) fetches and decrypts the keys, then calls
//! [`encrypt_value`] or, for a range query, [`encrypt_range_expression`]
//! with the process's next payload id, and wraps the bytes with
//! [`to_binary`](super::payload::to_binary).

pub use super::error::ExplicitError;

use super::Error;
use super::payload::{self, QeKey, RangeFindEdges, RangeFindSpec, RangeInsertSpec, RangeOperator};
use super::random::QeRandom;
use super::range::{DEFAULT_SPARSITY, RangeError, bit_length, bson_type_name, encoding};
use bson::spec::ElementType;
use bson::{Bson, Decimal128, RawArrayBuf, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};

/// The QE algorithms of explicit encryption (`"Indexed"`, `"Unindexed"`,
/// `"Range"`). Text search (`"String"`) is not supported by csfle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QeAlgorithm {
    /// Equality-indexed.
    Indexed,
    /// Randomized, not queryable.
    Unindexed,
    /// Range-indexed.
    Range,
}

impl QeAlgorithm {
    /// The algorithm's name in the drivers' options: `Indexed`,
    /// `Unindexed` or `Range`.
    pub const fn name(self) -> &'static str {
        match self {
            QeAlgorithm::Indexed => "Indexed",
            QeAlgorithm::Unindexed => "Unindexed",
            QeAlgorithm::Range => "Range",
        }
    }

    /// libmongocrypt's name of the index type in its messages.
    fn index_type_name(self) -> &'static str {
        match self {
            QeAlgorithm::Indexed => "Equality",
            QeAlgorithm::Unindexed => "None",
            QeAlgorithm::Range => "Range",
        }
    }
}

/// The query types of explicit encryption (`"equality"`, `"range"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueryType {
    /// An equality query: a find payload (12) for one value.
    Equality,
    /// A range query: find payloads (13) for an `$and` expression.
    Range,
}

impl QueryType {
    fn name(self) -> &'static str {
        match self {
            QueryType::Equality => "Equality",
            QueryType::Range => "Range",
        }
    }
}

/// A range index's options, as the specification's `RangeOpts`: `min`
/// and `max` of the indexed type (required for int32, int64 and date;
/// for double and Decimal128 only with `precision`), `sparsity` (default
/// 2), `trim_factor` (default 6, clamped to the domain), `precision`
/// (double and Decimal128 only). None of them is secret: the server
/// receives them in every range payload.
///
/// [`Default`] (nothing set) and the `with_*` setters:
///
/// ```
/// use csfle::qe::explicit::RangeOptions;
/// let options = RangeOptions::default().with_min(0).with_max(200).with_sparsity(1);
/// assert_eq!(options.min, Some(bson::Bson::Int32(0)));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RangeOptions {
    /// The smallest indexed value.
    pub min: Option<Bson>,
    /// The largest indexed value.
    pub max: Option<Bson>,
    /// One edge is stored per `sparsity` bits.
    pub sparsity: Option<i64>,
    /// The first stored level of the binary decomposition.
    pub trim_factor: Option<i32>,
    /// Digits after the decimal point kept (double and Decimal128).
    pub precision: Option<i32>,
}

impl RangeOptions {
    /// Sets the smallest indexed value (of the indexed type: `0` is an
    /// int32, `0i64` an int64).
    pub fn with_min(mut self, min: impl Into<Bson>) -> Self {
        self.min = Some(min.into());
        self
    }

    /// Sets the largest indexed value.
    pub fn with_max(mut self, max: impl Into<Bson>) -> Self {
        self.max = Some(max.into());
        self
    }

    /// Sets the sparsity (default 2).
    pub fn with_sparsity(mut self, sparsity: i64) -> Self {
        self.sparsity = Some(sparsity);
        self
    }

    /// Sets the trim factor (default 6, clamped to the domain).
    pub fn with_trim_factor(mut self, trim_factor: i32) -> Self {
        self.trim_factor = Some(trim_factor);
        self
    }

    /// Sets the precision (double and Decimal128 only).
    pub fn with_precision(mut self, precision: i32) -> Self {
        self.precision = Some(precision);
        self
    }
}

/// Range options checked and converted as libmongocrypt's
/// `mc_RangeOpts_parse` leaves them.
struct CheckedRange {
    min: Option<RawBson>,
    max: Option<RawBson>,
    sparsity: i64,
    precision: Option<i32>,
    trim_factor: Option<i32>,
}

/// The largest finite Decimal128, 9999999999999999999999999999999999E6111:
/// coefficient 10^34 − 1, biased exponent 12287.
const DEC128_LARGEST: u128 = (12287u128 << 113) | 9_999_999_999_999_999_999_999_999_999_999_999;

fn is_float(ty: ElementType) -> bool {
    matches!(ty, ElementType::Double | ElementType::Decimal128)
}

impl RangeOptions {
    /// Checks the options as libmongocrypt's `mc_RangeOpts_parse` does.
    fn check(&self) -> Result<CheckedRange, Error> {
        let sparsity = self.sparsity.unwrap_or(DEFAULT_SPARSITY);
        payload::validate_sparsity(sparsity)?;
        if self.precision.is_some_and(|p| p < 0) {
            return Err(RangeError::OptsPrecisionNegative.into());
        }
        if self.trim_factor.is_some_and(|t| t < 0) {
            return Err(RangeError::OptsTrimFactorNegative.into());
        }
        let raw = |b: &Option<Bson>| -> Result<Option<RawBson>, Error> {
            b.clone()
                .map(RawBson::try_from)
                .transpose()
                .map_err(|_| payload::PayloadError::InvalidBson { what: "RangeOpts" }.into())
        };
        let min = raw(&self.min)?;
        let max = raw(&self.max)?;
        let min_type = min.as_ref().map(RawBson::element_type);
        let max_type = max.as_ref().map(RawBson::element_type);
        if self.precision.is_some() {
            let min_type = min_type.ok_or(RangeError::OptsPrecisionRequiresMin)?;
            if !is_float(min_type) {
                return Err(RangeError::OptsPrecisionWrongType {
                    bound: "min",
                    type_name: bson_type_name(min_type),
                }
                .into());
            }
            let max_type = max_type.ok_or(RangeError::OptsPrecisionRequiresMax)?;
            if !is_float(max_type) {
                return Err(RangeError::OptsPrecisionWrongType {
                    bound: "max",
                    type_name: bson_type_name(max_type),
                }
                .into());
            }
        }
        if let (Some(a), Some(b)) = (min_type, max_type)
            && a != b
        {
            return Err(RangeError::OptsMinMaxTypeMismatch {
                min_type: bson_type_name(a),
                max_type: bson_type_name(b),
            }
            .into());
        }
        if self.precision.is_none() {
            for (bound, ty) in [("min", min_type), ("max", max_type)] {
                if let Some(ty) = ty.filter(|t| is_float(*t)) {
                    return Err(RangeError::OptsBoundRequiresPrecision {
                        bound,
                        type_name: bson_type_name(ty),
                    }
                    .into());
                }
            }
        }
        Ok(CheckedRange {
            min,
            max,
            sparsity,
            precision: self.precision,
            trim_factor: self.trim_factor,
        })
    }
}

impl CheckedRange {
    /// `mc_RangeOpts_appendMin` / `appendMax`: the option's bound, of the
    /// value's type, or the type's default.
    fn bound(&self, name: &'static str, value_type: ElementType) -> Result<RawBsonRef<'_>, Error> {
        let set = if name == "min" { &self.min } else { &self.max };
        if let Some(bound) = set {
            if bound.element_type() != value_type {
                return Err(RangeError::BoundTypeMismatch {
                    bound: name,
                    bound_type: bson_type_name(bound.element_type()),
                    value_type: bson_type_name(value_type),
                }
                .into());
            }
            return Ok(bound.as_raw_bson_ref());
        }
        let low = name == "min";
        match value_type {
            ElementType::Int32 | ElementType::Int64 | ElementType::DateTime => {
                Err(RangeError::BoundRequired {
                    bound: name,
                    type_name: bson_type_name(value_type),
                }
                .into())
            }
            ElementType::Double => Ok(RawBsonRef::Double(if low { -f64::MAX } else { f64::MAX })),
            ElementType::Decimal128 => {
                let bits = if low {
                    DEC128_LARGEST | (1 << 127)
                } else {
                    DEC128_LARGEST
                };
                Ok(RawBsonRef::Decimal128(Decimal128::from_bytes(
                    bits.to_le_bytes(),
                )))
            }
            other => Err(RangeError::UnsupportedBoundType {
                bound: name,
                type_name: bson_type_name(other),
            }
            .into()),
        }
    }

    /// `mc_RangeOpts_appendTrimFactor`: a trim factor given must be below
    /// the domain's bit length.
    fn check_trim_factor(&self, value_type: ElementType) -> Result<(), Error> {
        let Some(trim_factor) = self.trim_factor else {
            return Ok(());
        };
        let bits = self.domain_bits(value_type)?;
        // A 0-bit domain still allows trim factor 0.
        if i64::from(trim_factor) >= i64::from(bits.max(1)) {
            return Err(RangeError::OptsTrimFactorTooLarge { trim_factor, bits }.into());
        }
        Ok(())
    }

    /// `mc_getNumberOfBits`: the bits of the domain the options define.
    fn domain_bits(&self, value_type: ElementType) -> Result<u32, Error> {
        let min = self.min.as_ref().map(RawBson::as_raw_bson_ref);
        let max = self.max.as_ref().map(RawBson::as_raw_bson_ref);
        let encoded = match value_type {
            ElementType::Int32 => {
                let (lo, hi) = (min.and_then(|v| v.as_i32()), max.and_then(|v| v.as_i32()));
                encoding::encode_int32(lo.unwrap_or(0), lo, hi)?
            }
            ElementType::Int64 => {
                let (lo, hi) = (min.and_then(|v| v.as_i64()), max.and_then(|v| v.as_i64()));
                encoding::encode_int64(lo.unwrap_or(0), lo, hi)?
            }
            ElementType::DateTime => {
                let millis = |v: RawBsonRef<'_>| v.as_datetime().map(|d| d.timestamp_millis());
                let (lo, hi) = (min.and_then(millis), max.and_then(millis));
                encoding::encode_int64(lo.unwrap_or(0), lo, hi)?
            }
            ElementType::Double => {
                let (lo, hi) = (min.and_then(|v| v.as_f64()), max.and_then(|v| v.as_f64()));
                encoding::encode_double(lo.unwrap_or(0.0), lo, hi, self.precision)?
            }
            ElementType::Decimal128 => {
                let dec = |v: RawBsonRef<'_>| match v {
                    RawBsonRef::Decimal128(d) => Some(d.bytes()),
                    _ => None,
                };
                let (lo, hi) = (min.and_then(dec), max.and_then(dec));
                encoding::encode_decimal128(lo.unwrap_or([0; 16]), lo, hi, self.precision)?
            }
            other => {
                return Err(RangeError::UnsupportedBoundType {
                    bound: "min",
                    type_name: bson_type_name(other),
                }
                .into());
            }
        };
        Ok(bit_length(encoded.max))
    }
}

/// The options of an explicit QE encryption (besides the keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QeEncryptOptions<'a> {
    /// The algorithm.
    pub algorithm: QeAlgorithm,
    /// The maximum contention factor (required for Indexed and Range,
    /// refused for Unindexed).
    pub contention_factor: Option<i64>,
    /// Set to encrypt a query instead of a stored value.
    pub query_type: Option<QueryType>,
    /// The range index's options (required for Range, refused otherwise).
    pub range_options: Option<&'a RangeOptions>,
}

impl<'a> QeEncryptOptions<'a> {
    /// The options of `algorithm`, nothing else set.
    pub fn new(algorithm: QeAlgorithm) -> Self {
        QeEncryptOptions {
            algorithm,
            contention_factor: None,
            query_type: None,
            range_options: None,
        }
    }

    /// Sets the maximum contention factor.
    pub fn with_contention_factor(mut self, contention_factor: i64) -> Self {
        self.contention_factor = Some(contention_factor);
        self
    }

    /// Sets the query type: a query is encrypted instead of a stored value.
    pub fn with_query_type(mut self, query_type: QueryType) -> Self {
        self.query_type = Some(query_type);
        self
    }

    /// Sets the range index's options.
    pub fn with_range_options(mut self, range_options: &'a RangeOptions) -> Self {
        self.range_options = Some(range_options);
        self
    }
}

/// The next payload id of this process, pairing the two find payloads of
/// a two-sided range query: a counter from 0, wrapping to 0 after
/// `i32::MAX`, shared by every thread, as libmongocrypt's
/// `mc_getNextPayloadId`.
pub fn next_payload_id() -> i32 {
    use std::sync::atomic::{AtomicI32, Ordering};
    static NEXT: AtomicI32 = AtomicI32::new(0);
    // fetch_update with a closure that always returns Some never fails.
    match NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| {
        Some(if id < i32::MAX { id + 1 } else { 0 })
    }) {
        Ok(id) | Err(id) => id,
    }
}

/// The keys of an explicit QE encryption: the user key encrypts the
/// value; the index key (the user key when absent) derives the tokens.
#[derive(Debug, Clone, Copy)]
pub struct QeKeys<'a> {
    /// The key the value is encrypted with.
    pub user: QeKey<'a>,
    /// The key the tokens derive from; `None` for the user key.
    pub index: Option<QeKey<'a>>,
}

impl<'a> QeKeys<'a> {
    fn index(&self) -> QeKey<'a> {
        self.index.unwrap_or(self.user)
    }
}

impl QeEncryptOptions<'_> {
    /// Checks the options as libmongocrypt's `explicit_encrypt_init` does,
    /// in its order.
    pub fn validate(&self) -> Result<(), Error> {
        use ExplicitError::*;
        let unindexed = self.algorithm == QeAlgorithm::Unindexed;
        if self.contention_factor.is_some() && unindexed {
            return Err(ContentionWithoutIndex.into());
        }
        if self.query_type.is_some() && unindexed {
            return Err(QueryTypeWithoutIndex.into());
        }
        if self.range_options.is_some() {
            match self.algorithm {
                QeAlgorithm::Unindexed => return Err(RangeOptsWithoutIndex.into()),
                QeAlgorithm::Indexed => return Err(RangeOptsWithEquality.into()),
                QeAlgorithm::Range => {}
            }
        }
        if let Some(cf) = self.contention_factor {
            payload::validate_contention(cf)?;
        }
        if self.algorithm == QeAlgorithm::Indexed && self.contention_factor.is_none() {
            return Err(ContentionRequired.into());
        }
        if self.algorithm == QeAlgorithm::Range {
            if self.contention_factor.is_none() {
                return Err(RangeContentionRequired.into());
            }
            if self.range_options.is_none() {
                return Err(RangeOptsRequired.into());
            }
        }
        if let Some(sparsity) = self.range_options.and_then(|r| r.sparsity) {
            payload::validate_sparsity(sparsity)?;
        }
        if let Some(query_type) = self.query_type {
            let matches = matches!(
                (query_type, self.algorithm),
                (QueryType::Equality, QeAlgorithm::Indexed)
                    | (QueryType::Range, QeAlgorithm::Range)
            );
            if !matches {
                return Err(QueryTypeMismatch {
                    query_type: query_type.name(),
                    index_type: self.algorithm.index_type_name(),
                }
                .into());
            }
        }
        Ok(())
    }
}

/// Encrypts one value explicitly (libmongocrypt's `_fle2_finalize_explicit`
/// after key retrieval): Unindexed → 16; Indexed → 11, or 12 with the
/// equality query type; Range → 11 with edges. Range queries take an
/// expression: [`encrypt_range_expression`].
pub fn encrypt_value(
    value: RawBsonRef<'_>,
    keys: QeKeys<'_>,
    options: &QeEncryptOptions<'_>,
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    options.validate()?;
    // validate() made both present for the indexed algorithms.
    let contention = options.contention_factor.unwrap_or(0);
    match (options.algorithm, options.query_type) {
        (QeAlgorithm::Unindexed, _) => payload::unindexed_payload(value, keys.user, rng),
        (QeAlgorithm::Indexed, None) => {
            payload::insert_update_payload(value, keys.index(), keys.user, contention, rng)
        }
        (QeAlgorithm::Indexed, Some(_)) => {
            payload::find_equality_payload(value, keys.index().key, contention)
        }
        (QeAlgorithm::Range, Some(_)) => Err(ExplicitError::ExpressionRequired.into()),
        (QeAlgorithm::Range, None) => {
            let range = options
                .range_options
                .ok_or(ExplicitError::RangeOptsRequired)?
                .check()?;
            // mc_RangeOpts_to_FLE2RangeInsertSpec: bounds, then the trim
            // factor against the domain.
            let value_type = value.element_type();
            let min = range.bound("min", value_type)?;
            let max = range.bound("max", value_type)?;
            range.check_trim_factor(value_type)?;
            let spec = RangeInsertSpec {
                value,
                min,
                max,
                precision: range.precision,
                trim_factor: range.trim_factor,
            };
            payload::insert_update_range_payload(
                &spec,
                keys.index(),
                keys.user,
                contention,
                range.sparsity,
                rng,
            )
        }
    }
}

/// A bound of a parsed range expression.
#[derive(Clone, Copy)]
struct Bound<'a> {
    value: RawBsonRef<'a>,
    included: bool,
}

/// A parsed range expression (libmongocrypt's `FLE2RangeFindDriverSpec`).
struct DriverSpec<'a> {
    lower: Option<Bound<'a>>,
    upper: Option<Bound<'a>>,
    field: &'a str,
    first: RangeOperator,
    second: RangeOperator,
    n_ops: usize,
    aggregate: bool,
}

fn operator_of(key: &str) -> RangeOperator {
    match key {
        "$gt" => RangeOperator::Gt,
        "$gte" => RangeOperator::Gte,
        "$lt" => RangeOperator::Lt,
        "$lte" => RangeOperator::Lte,
        _ => RangeOperator::None,
    }
}

fn bad_bson() -> Error {
    payload::PayloadError::InvalidBson {
        what: "range expression",
    }
    .into()
}

/// `mc_FLE2RangeFindDriverSpec_parse`: `{$and: [{field: {$gt: v}}, …]}`
/// (a match expression) or `{$and: [{$gt: ["$field", v]}, …]}` (an
/// aggregate expression), one or two bounds on one field.
fn parse_expression(expr: &RawDocument) -> Result<DriverSpec<'_>, Error> {
    use ExplicitError::*;
    let mut top = expr.iter();
    let and = match top.next() {
        Some(Ok(("$and", RawBsonRef::Array(a)))) => a,
        Some(Ok(("$and", _))) => return Err(AndNotArray.into()),
        Some(Err(_)) => return Err(bad_bson()),
        _ => return Err(NoAnd.into()),
    };
    match top.next() {
        None => {}
        Some(Ok((key, _))) => return Err(ExtraKey(key.to_owned()).into()),
        Some(Err(_)) => return Err(bad_bson()),
    }
    let mut spec = DriverSpec {
        lower: None,
        upper: None,
        field: "",
        first: RangeOperator::None,
        second: RangeOperator::None,
        n_ops: 0,
        aggregate: false,
    };
    let mut kind: Option<bool> = None;
    for element in and {
        let doc = match element.map_err(|_| bad_bson())? {
            RawBsonRef::Document(d) => d,
            _ => return Err(ElementNotDocument.into()),
        };
        let mut keys = doc.iter();
        let (key, operand) = match keys.next() {
            Some(Ok(kv)) => kv,
            Some(Err(_)) => return Err(bad_bson()),
            None => return Err(EmptyElement.into()),
        };
        if keys.next().is_some() {
            return Err(ExtraElementKey(key.to_owned()).into());
        }
        let aggregate = *kind.get_or_insert(operator_of(key) != RangeOperator::None);
        spec.aggregate = aggregate;
        let (op, op_name, field, value) = if aggregate {
            // {$gt: ["$age", 5]}
            let array = match operand {
                RawBsonRef::Array(a) => a,
                _ => return Err(OperandNotArray.into()),
            };
            let mut items = array.into_iter();
            let length = |got| OperandLength {
                operator: key.to_owned(),
                got,
            };
            let field = match items.next() {
                None => return Err(length("0").into()),
                Some(Ok(RawBsonRef::String(s))) => s,
                Some(Ok(_)) => return Err(OperandFieldNotString(key.to_owned()).into()),
                Some(Err(_)) => return Err(bad_bson()),
            };
            let value = match items.next() {
                None => return Err(length("1").into()),
                Some(v) => v.map_err(|_| bad_bson())?,
            };
            if items.next().is_some() {
                return Err(length("> 2").into());
            }
            (operator_of(key), key, field, value)
        } else {
            // {age: {$gt: 5}}
            let inner = match operand {
                RawBsonRef::Document(d) => d,
                _ => return Err(OperandNotDocument.into()),
            };
            let mut ops = inner.iter();
            let (op_key, value) = match ops.next() {
                None => {
                    return Err(MatchOperandLength {
                        field: key.to_owned(),
                        got: "0",
                    }
                    .into());
                }
                Some(kv) => kv.map_err(|_| bad_bson())?,
            };
            if operator_of(op_key) == RangeOperator::None {
                return Err(UnsupportedOperator(op_key.to_owned()).into());
            }
            if ops.next().is_some() {
                return Err(MatchOperandLength {
                    field: key.to_owned(),
                    got: "> 1",
                }
                .into());
            }
            (operator_of(op_key), op_key, key, value)
        };
        match op {
            RangeOperator::Gt | RangeOperator::Gte => {
                if spec.lower.is_some() {
                    return Err(DuplicateBound(op.name()).into());
                }
                spec.lower = Some(Bound {
                    value,
                    included: op == RangeOperator::Gte,
                });
            }
            RangeOperator::Lt | RangeOperator::Lte => {
                if spec.upper.is_some() {
                    return Err(DuplicateBound(op.name()).into());
                }
                spec.upper = Some(Bound {
                    value,
                    included: op == RangeOperator::Lte,
                });
            }
            RangeOperator::None => return Err(UnsupportedOperator(op_name.to_owned()).into()),
        }
        if spec.n_ops > 0 && spec.field != field {
            return Err(FieldMismatch {
                expected: spec.field.to_owned(),
                got: field.to_owned(),
            }
            .into());
        }
        spec.n_ops += 1;
        match spec.n_ops {
            1 => spec.first = op,
            2 => spec.second = op,
            _ => return Err(TooManyOperators(op.name()).into()),
        }
        spec.field = field;
    }
    Ok(spec)
}

/// Encrypts a range query explicitly (libmongocrypt's
/// `FLE2RangeFindDriverSpec_to_ciphertexts`): `expression` is the `$and`
/// of one or two bounds on one field, as a match expression
/// (`{$and: [{age: {$gte: 23}}, {age: {$lte: 35}}]}`) or an aggregate one
/// (`{$and: [{$gte: ["$age", 23]}, {$lte: ["$age", 35]}]}`). Returns the
/// same shape with each bound replaced: the first by the find payload
/// (13) holding the cover of the whole interval, the second by a stub
/// carrying only `payload_id` and the operators. `payload_id` pairs the
/// two; libmongocrypt takes it from a per-process counter
/// (`mc_getNextPayloadId`, from 0, wrapping at `i32::MAX`), and so should
/// the caller. Draws no randomness.
pub fn encrypt_range_expression(
    expression: &RawDocument,
    keys: QeKeys<'_>,
    options: &QeEncryptOptions<'_>,
    payload_id: i32,
) -> Result<RawDocumentBuf, Error> {
    options.validate()?;
    if options.algorithm != QeAlgorithm::Range || options.query_type != Some(QueryType::Range) {
        return Err(ExplicitError::ExpressionNeedsRangeQuery.into());
    }
    let range = options
        .range_options
        .ok_or(ExplicitError::RangeOptsRequired)?
        .check()?;
    let contention = options
        .contention_factor
        .ok_or(ExplicitError::RangeContentionRequired)?;
    let spec = parse_expression(expression)?;
    let index_type = match (spec.lower, spec.upper) {
        (Some(b), _) | (None, Some(b)) => b.value.element_type(),
        (None, None) => return Err(ExplicitError::NoBound.into()),
    };
    let index_min = range.bound("min", index_type)?;
    let index_max = range.bound("max", index_type)?;
    let first = RangeFindSpec {
        edges: Some(RangeFindEdges {
            lower_bound: spec
                .lower
                .map_or(RawBsonRef::Double(f64::NEG_INFINITY), |b| b.value),
            lower_included: spec.lower.is_none_or(|b| b.included),
            upper_bound: spec
                .upper
                .map_or(RawBsonRef::Double(f64::INFINITY), |b| b.value),
            upper_included: spec.upper.is_none_or(|b| b.included),
            index_min,
            index_max,
            precision: range.precision,
            trim_factor: range.trim_factor,
        }),
        payload_id,
        first_operator: spec.first,
        second_operator: spec.second,
    };
    let index = keys.index().key;
    let p1 = payload::find_range_payload(&first, index, contention, range.sparsity)?;
    let p2 = if spec.n_ops == 2 {
        let stub = RangeFindSpec {
            edges: None,
            ..first
        };
        Some(payload::find_range_payload(
            &stub,
            index,
            contention,
            range.sparsity,
        )?)
    } else {
        None
    };
    let mut and = RawArrayBuf::new();
    for (op, p) in [(spec.first, Some(p1)), (spec.second, p2)] {
        let Some(p) = p else { continue };
        let binary = RawBson::Binary(payload::to_binary(p));
        let mut element = RawDocumentBuf::new();
        if spec.aggregate {
            let mut operand = RawArrayBuf::new();
            operand.push(spec.field);
            operand.push(binary);
            element.append(op.name(), operand);
        } else {
            let mut operand = RawDocumentBuf::new();
            operand.append(op.name(), binary);
            element.append(spec.field, operand);
        }
        and.push(element);
    }
    let mut out = RawDocumentBuf::new();
    out.append("$and", and);
    Ok(out)
}

#[cfg(test)]
#[path = "explicit_tests.rs"]
mod tests;
