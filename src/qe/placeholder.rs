//! FLE2 encryption placeholders (libmongocrypt's
//! `mc-fle2-encryption-placeholder.c`): what query analysis (mongocryptd or
//! crypt_shared) puts where a QE payload must go, and what explicit
//! encryption builds internally. A placeholder is a subtype-6 binary whose
//! first byte is 3, then a BSON document:
//!
//! ```text
//! { t: 1 insert | 2 find, a: 1 unindexed | 2 equality | 3 range | 4 text,
//!   ki: index key UUID, ku: user key UUID, v: value | range spec,
//!   cm: max contention factor (int64), s: sparsity (int64, optional) }
//! range insert v: { v, min, max, precision?, trimFactor? }
//! range find v:   { edgesInfo?: { lowerBound, lbIncluded, upperBound, ubIncluded,
//!                                 indexMin, indexMax, precision?, trimFactor? },
//!                   payloadId, firstOperator, secondOperator? }
//! ```
//!
//! [`Placeholder::encrypt`] turns one into its payload
//! (libmongocrypt's `_mongocrypt_marking_to_ciphertext` for FLE2). Parsing
//! reads an allow-list: a field libmongocrypt does not define is refused.
//!
//! [`write_placeholder`] is the other direction, what csfle's own query
//! analysis (`crate::analysis`, in place of mongocryptd) emits: the bytes
//! mongocryptd writes, field for field and in its order. `s` is written
//! for range placeholders only, `secondOperator` only when there is one,
//! `precision` and `trimFactor` only when the index sets them, and in a
//! range find's `edgesInfo` before `indexMin`/`indexMax` (the order of
//! the server-made `fle2-find-range/*-precision-v2` and
//! `range-sends-cryptoParams/auto-find-int32` replies).

use super::Error;
use super::aead::QeDataKey;
use super::payload::{
    self, PayloadError, QeKey, RangeFindEdges, RangeFindSpec, RangeInsertSpec, RangeOperator,
};
use super::random::QeRandom;
use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Decimal128, Document, RawBsonRef, RawDocument};

/// First byte of an FLE2 encryption placeholder.
pub const ENCRYPTION_PLACEHOLDER: u8 = 3;

/// Whether the placeholder stands for a value inserted or queried (`t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceholderType {
    /// An insert or update (1).
    Insert,
    /// A query (2).
    Find,
}

/// The QE algorithm of a placeholder (`a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fle2Algorithm {
    /// Unindexed (1).
    Unindexed,
    /// Indexed, equality (2).
    Equality,
    /// Range (3).
    Range,
    /// Text search (4): not supported by csfle.
    TextSearch,
}

/// A parsed placeholder. Its value borrows from the placeholder's bytes;
/// `Debug` never shows it.
#[derive(Clone, Copy)]
pub struct Placeholder<'a> {
    /// Insert or find.
    pub kind: PlaceholderType,
    /// The algorithm.
    pub algorithm: Fle2Algorithm,
    /// The key the tokens derive from (`ki`).
    pub index_key_id: [u8; 16],
    /// The key the value is encrypted with (`ku`).
    pub user_key_id: [u8; 16],
    /// The value, or for range the range spec document (`v`).
    pub value: RawBsonRef<'a>,
    /// The maximum contention factor (`cm`).
    pub max_contention: i64,
    /// The sparsity (`s`; 0 when absent, as libmongocrypt reads it).
    pub sparsity: i64,
}

impl std::fmt::Debug for Placeholder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placeholder")
            .field("kind", &self.kind)
            .field("algorithm", &self.algorithm)
            .field("index_key_id", &payload::hex(&self.index_key_id))
            .field("user_key_id", &payload::hex(&self.user_key_id))
            .field("max_contention", &self.max_contention)
            .field("sparsity", &self.sparsity)
            .finish_non_exhaustive()
    }
}

const PLACEHOLDER: &str = "FLE2EncryptionPlaceholder";
const INSERT_SPEC: &str = "FLE2RangeInsertSpec";
const FIND_SPEC: &str = "FLE2RangeFindSpec";
const EDGES_INFO: &str = "FLE2RangeFindSpecEdgesInfo";

/// Walks the fields of `doc`, allowing each of `fields` once; calls `each`
/// with the field's index in `fields` and its value; returns which were
/// seen.
fn fields<'a, const N: usize>(
    what: &'static str,
    doc: &'a RawDocument,
    fields: [&'static str; N],
    mut each: impl FnMut(&'static str, RawBsonRef<'a>) -> Result<(), Error>,
) -> Result<[bool; N], Error> {
    let mut seen = [false; N];
    for item in doc {
        let (key, value) = item.map_err(|_| PayloadError::InvalidBson { what })?;
        let slot = fields
            .iter()
            .position(|f| *f == key)
            .ok_or(PayloadError::UnknownField { what })?;
        if std::mem::replace(&mut seen[slot], true) {
            return Err(PayloadError::DuplicateField {
                what,
                field: fields[slot],
            }
            .into());
        }
        each(fields[slot], value)?;
    }
    Ok(seen)
}

/// Requires every field of `required` (indexes into `names`) to be seen.
fn require<const N: usize>(
    what: &'static str,
    names: [&'static str; N],
    seen: [bool; N],
    required: &[usize],
) -> Result<(), Error> {
    for &i in required {
        if !seen[i] {
            return Err(PayloadError::MissingField {
                what,
                field: names[i],
            }
            .into());
        }
    }
    Ok(())
}

fn wrong(what: &'static str, field: &'static str, expected: &'static str) -> Error {
    PayloadError::FieldType {
        what,
        field,
        expected,
    }
    .into()
}

fn int32(what: &'static str, field: &'static str, v: RawBsonRef<'_>) -> Result<i32, Error> {
    match v {
        RawBsonRef::Int32(i) => Ok(i),
        _ => Err(wrong(what, field, "an int32")),
    }
}

fn non_negative_int32(
    what: &'static str,
    field: &'static str,
    v: RawBsonRef<'_>,
) -> Result<i32, Error> {
    match v {
        RawBsonRef::Int32(i) if i >= 0 => Ok(i),
        RawBsonRef::Int32(_) => Err(wrong(what, field, "non-negative")),
        _ => Err(wrong(what, field, "an int32")),
    }
}

fn int64(what: &'static str, field: &'static str, v: RawBsonRef<'_>) -> Result<i64, Error> {
    match v {
        RawBsonRef::Int64(i) => Ok(i),
        _ => Err(wrong(what, field, "an int64")),
    }
}

fn boolean(what: &'static str, field: &'static str, v: RawBsonRef<'_>) -> Result<bool, Error> {
    match v {
        RawBsonRef::Boolean(b) => Ok(b),
        _ => Err(wrong(what, field, "a bool")),
    }
}

fn uuid(field: &'static str, v: RawBsonRef<'_>) -> Result<[u8; 16], Error> {
    match v {
        RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Uuid => b
            .bytes
            .try_into()
            .map_err(|_| wrong(PLACEHOLDER, field, "a UUID")),
        _ => Err(wrong(PLACEHOLDER, field, "a UUID")),
    }
}

fn document<'a>(what: &'static str, v: RawBsonRef<'a>) -> Result<&'a RawDocument, Error> {
    match v {
        RawBsonRef::Document(d) => Ok(d),
        _ => Err(wrong(what, "v", "a document")),
    }
}

impl<'a> Placeholder<'a> {
    /// Parses a placeholder: the bytes of the subtype-6 binary, first byte
    /// 3 included (libmongocrypt's `mc_FLE2EncryptionPlaceholder_parse`).
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        match blob.first() {
            Some(&ENCRYPTION_PLACEHOLDER) => {}
            actual => {
                return Err(PayloadError::WrongSubtype {
                    what: PLACEHOLDER,
                    expected: ENCRYPTION_PLACEHOLDER,
                    actual: actual.copied(),
                }
                .into());
            }
        }
        let doc = RawDocument::from_bytes(&blob[1..])
            .map_err(|_| PayloadError::InvalidBson { what: PLACEHOLDER })?;
        const NAMES: [&str; 7] = ["t", "a", "ki", "ku", "v", "cm", "s"];
        let mut kind = PlaceholderType::Insert;
        let mut algorithm = Fle2Algorithm::Unindexed;
        let mut index_key_id = [0u8; 16];
        let mut user_key_id = [0u8; 16];
        let mut value = RawBsonRef::Null;
        let mut max_contention = 0;
        let mut sparsity = 0;
        let seen = fields(PLACEHOLDER, doc, NAMES, |field, v| {
            match field {
                "t" => {
                    kind = match int32(PLACEHOLDER, field, v)? {
                        1 => PlaceholderType::Insert,
                        2 => PlaceholderType::Find,
                        other => return Err(PayloadError::InvalidPlaceholderType(other).into()),
                    }
                }
                "a" => {
                    algorithm = match int32(PLACEHOLDER, field, v)? {
                        1 => Fle2Algorithm::Unindexed,
                        2 => Fle2Algorithm::Equality,
                        3 => Fle2Algorithm::Range,
                        4 => Fle2Algorithm::TextSearch,
                        other => return Err(PayloadError::InvalidAlgorithm(other).into()),
                    }
                }
                "ki" => index_key_id = uuid(field, v)?,
                "ku" => user_key_id = uuid(field, v)?,
                "v" => value = v,
                "cm" => {
                    max_contention = int64(PLACEHOLDER, field, v)?;
                    payload::validate_contention(max_contention)?;
                }
                "s" => {
                    sparsity = int64(PLACEHOLDER, field, v)?;
                    payload::validate_sparsity(sparsity)?;
                }
                _ => return Err(PayloadError::UnknownField { what: PLACEHOLDER }.into()),
            }
            Ok(())
        })?;
        // `s` may be absent: query analysis 6.0 did not send it.
        require(PLACEHOLDER, NAMES, seen, &[0, 1, 2, 3, 4, 5])?;
        Ok(Placeholder {
            kind,
            algorithm,
            index_key_id,
            user_key_id,
            value,
            max_contention,
            sparsity,
        })
    }

    /// The payload for this placeholder, with the keys `keys` finds by
    /// UUID (only those the payload needs: the index key for tokens, the
    /// user key to encrypt the value), randomness from `rng`.
    pub fn encrypt<'k>(
        &self,
        keys: impl Fn(&[u8; 16]) -> Option<&'k QeDataKey>,
        rng: &mut QeRandom,
    ) -> Result<Vec<u8>, Error> {
        let key = |role: &'static str, id: [u8; 16]| -> Result<QeKey<'k>, Error> {
            keys(&id).map(|key| QeKey { id, key }).ok_or_else(|| {
                PayloadError::KeyNotFound {
                    role,
                    key_id: payload::hex(&id),
                }
                .into()
            })
        };
        match (self.algorithm, self.kind) {
            (Fle2Algorithm::TextSearch, _) => Err(PayloadError::TextSearchUnsupported.into()),
            (Fle2Algorithm::Unindexed, _) => {
                payload::unindexed_payload(self.value, key("user", self.user_key_id)?, rng)
            }
            (Fle2Algorithm::Equality, PlaceholderType::Insert) => payload::insert_update_payload(
                self.value,
                key("index", self.index_key_id)?,
                key("user", self.user_key_id)?,
                self.max_contention,
                rng,
            ),
            (Fle2Algorithm::Equality, PlaceholderType::Find) => payload::find_equality_payload(
                self.value,
                key("index", self.index_key_id)?.key,
                self.max_contention,
            ),
            (Fle2Algorithm::Range, PlaceholderType::Insert) => {
                let spec = range_insert_spec(self.value)?;
                payload::insert_update_range_payload(
                    &spec,
                    key("index", self.index_key_id)?,
                    key("user", self.user_key_id)?,
                    self.max_contention,
                    self.sparsity,
                    rng,
                )
            }
            (Fle2Algorithm::Range, PlaceholderType::Find) => {
                let spec = range_find_spec(self.value)?;
                payload::find_range_payload(
                    &spec,
                    key("index", self.index_key_id)?.key,
                    self.max_contention,
                    self.sparsity,
                )
            }
        }
    }
}

/// Reads a range insert spec (`mc_FLE2RangeInsertSpec_parse`).
pub fn range_insert_spec(v: RawBsonRef<'_>) -> Result<RangeInsertSpec<'_>, Error> {
    let doc = document(INSERT_SPEC, v)?;
    const NAMES: [&str; 5] = ["v", "min", "max", "precision", "trimFactor"];
    let mut spec = RangeInsertSpec {
        value: RawBsonRef::Null,
        min: RawBsonRef::Null,
        max: RawBsonRef::Null,
        precision: None,
        trim_factor: None,
    };
    let seen = fields(INSERT_SPEC, doc, NAMES, |field, v| {
        match field {
            "v" => spec.value = v,
            "min" => spec.min = v,
            "max" => spec.max = v,
            "precision" => spec.precision = Some(non_negative_int32(INSERT_SPEC, field, v)?),
            "trimFactor" => spec.trim_factor = Some(non_negative_int32(INSERT_SPEC, field, v)?),
            _ => return Err(PayloadError::UnknownField { what: INSERT_SPEC }.into()),
        }
        Ok(())
    })?;
    require(INSERT_SPEC, NAMES, seen, &[0, 1, 2])?;
    Ok(spec)
}

fn operator(field: &'static str, v: RawBsonRef<'_>) -> Result<RangeOperator, Error> {
    RangeOperator::from_i32(int32(FIND_SPEC, field, v)?)
        .ok_or_else(|| PayloadError::InvalidOperator { field }.into())
}

/// Reads a range find spec (`mc_FLE2RangeFindSpec_parse`).
pub fn range_find_spec(v: RawBsonRef<'_>) -> Result<RangeFindSpec<'_>, Error> {
    let doc = document(FIND_SPEC, v)?;
    const NAMES: [&str; 4] = ["edgesInfo", "payloadId", "firstOperator", "secondOperator"];
    let mut spec = RangeFindSpec {
        edges: None,
        payload_id: 0,
        first_operator: RangeOperator::None,
        second_operator: RangeOperator::None,
    };
    let seen = fields(FIND_SPEC, doc, NAMES, |field, v| {
        match field {
            "edgesInfo" => spec.edges = Some(edges_info(v)?),
            "payloadId" => spec.payload_id = int32(FIND_SPEC, field, v)?,
            "firstOperator" => spec.first_operator = operator(field, v)?,
            "secondOperator" => spec.second_operator = operator(field, v)?,
            _ => return Err(PayloadError::UnknownField { what: FIND_SPEC }.into()),
        }
        Ok(())
    })?;
    require(FIND_SPEC, NAMES, seen, &[1, 2])?;
    Ok(spec)
}

fn edges_info(v: RawBsonRef<'_>) -> Result<RangeFindEdges<'_>, Error> {
    let doc = match v {
        RawBsonRef::Document(d) => d,
        _ => return Err(wrong(EDGES_INFO, "edgesInfo", "a document")),
    };
    const NAMES: [&str; 8] = [
        "lowerBound",
        "lbIncluded",
        "upperBound",
        "ubIncluded",
        "indexMin",
        "indexMax",
        "precision",
        "trimFactor",
    ];
    let mut edges = RangeFindEdges {
        lower_bound: RawBsonRef::Null,
        lower_included: false,
        upper_bound: RawBsonRef::Null,
        upper_included: false,
        index_min: RawBsonRef::Null,
        index_max: RawBsonRef::Null,
        precision: None,
        trim_factor: None,
    };
    let seen = fields(EDGES_INFO, doc, NAMES, |field, v| {
        match field {
            "lowerBound" => edges.lower_bound = v,
            "lbIncluded" => edges.lower_included = boolean(EDGES_INFO, field, v)?,
            "upperBound" => edges.upper_bound = v,
            "ubIncluded" => edges.upper_included = boolean(EDGES_INFO, field, v)?,
            "indexMin" => edges.index_min = v,
            "indexMax" => edges.index_max = v,
            "precision" => edges.precision = Some(non_negative_int32(EDGES_INFO, field, v)?),
            "trimFactor" => edges.trim_factor = Some(non_negative_int32(EDGES_INFO, field, v)?),
            _ => return Err(PayloadError::UnknownField { what: EDGES_INFO }.into()),
        }
        Ok(())
    })?;
    require(EDGES_INFO, NAMES, seen, &[0, 1, 2, 3, 4, 5])?;
    Ok(edges)
}

/// The largest finite Decimal128, 9999999999999999999999999999999999E6111
/// (coefficient 10^34 − 1, biased exponent 12287): the bound of a
/// Decimal128 range index without `min`/`max` (libmongocrypt's
/// `MC_DEC128_LARGEST_POSITIVE`).
const DEC128_LARGEST: u128 = (12287u128 << 113) | 9_999_999_999_999_999_999_999_999_999_999_999;

/// The bound of a range index on `ty` that sets no `min` (`low`) or `max`:
/// `-f64::MAX`/`f64::MAX` for doubles and the largest finite Decimal128s
/// for decimals, as libmongocrypt's `mc_RangeOpts_appendMin`/`appendMax`
/// write them. `None` for the other types, whose `encryptedFields` always
/// carry bounds (the type's limits by default).
pub fn default_range_bound(ty: ElementType, low: bool) -> Option<Bson> {
    match ty {
        ElementType::Double => Some(Bson::Double(if low { -f64::MAX } else { f64::MAX })),
        ElementType::Decimal128 => {
            let bits = if low {
                DEC128_LARGEST | (1 << 127)
            } else {
                DEC128_LARGEST
            };
            Some(Bson::Decimal128(Decimal128::from_bytes(bits.to_le_bytes())))
        }
        _ => None,
    }
}

/// The index parameters a range placeholder carries, from the
/// collection's `encryptedFields`.
#[derive(Clone, Copy)]
pub struct RangeIndexSpec<'a> {
    /// The index minimum (`min`, or [`default_range_bound`]).
    pub min: &'a Bson,
    /// The index maximum.
    pub max: &'a Bson,
    /// `precision`, when the index sets one.
    pub precision: Option<i32>,
    /// `trimFactor`, when the index sets one.
    pub trim_factor: Option<i32>,
}

/// One end of a queried interval.
#[derive(Clone, Copy)]
pub struct RangeBound<'a> {
    /// The bound.
    pub value: &'a Bson,
    /// Whether the interval includes it (`$gte`, `$lte`).
    pub included: bool,
}

/// What a placeholder stands for, as query analysis asks for it: its type
/// (`t`), algorithm (`a`) and value (`v`). `Debug` never shows a value.
#[derive(Clone, Copy)]
pub enum PlaceholderRequest<'a> {
    /// A value stored in an unindexed field (t 1, a 1).
    UnindexedInsert(&'a Bson),
    /// A value stored in an equality-indexed field (t 1, a 2).
    EqualityInsert(&'a Bson),
    /// A value an equality-indexed field is compared with (t 2, a 2).
    EqualityFind(&'a Bson),
    /// A value stored in a range-indexed field (t 1, a 3): `v` is the
    /// range insert spec `{v, min, max, precision?, trimFactor?}`.
    RangeInsert {
        /// The value.
        value: &'a Bson,
        /// The index.
        index: RangeIndexSpec<'a>,
    },
    /// The placeholder of a range predicate that carries the interval
    /// (t 2, a 3, `v.edgesInfo` present). An absent end is open: written
    /// as a double infinity, included, as libmongocrypt reads it.
    RangeFind {
        /// The lower end (`$gt`, `$gte`), if any.
        lower: Option<RangeBound<'a>>,
        /// The upper end (`$lt`, `$lte`), if any.
        upper: Option<RangeBound<'a>>,
        /// The index.
        index: RangeIndexSpec<'a>,
        /// Pairs the two placeholders of a two-sided predicate.
        payload_id: i32,
        /// The predicate's first operator.
        first: RangeOperator,
        /// Its second operator ([`RangeOperator::None`] when one-sided).
        second: RangeOperator,
    },
    /// The stub standing for the second operator of a two-sided range
    /// predicate (t 2, a 3, no `edgesInfo`).
    RangeStub {
        /// The payload id of the placeholder it pairs with.
        payload_id: i32,
        /// The predicate's first operator.
        first: RangeOperator,
        /// Its second operator.
        second: RangeOperator,
    },
}

impl std::fmt::Debug for PlaceholderRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PlaceholderRequest::UnindexedInsert(_) => "UnindexedInsert(..)",
            PlaceholderRequest::EqualityInsert(_) => "EqualityInsert(..)",
            PlaceholderRequest::EqualityFind(_) => "EqualityFind(..)",
            PlaceholderRequest::RangeInsert { .. } => "RangeInsert { .. }",
            PlaceholderRequest::RangeFind { .. } => "RangeFind { .. }",
            PlaceholderRequest::RangeStub { .. } => "RangeStub { .. }",
        })
    }
}

/// The keys and index parameters of a placeholder ([`write_placeholder`]).
#[derive(Debug, Clone, Copy)]
pub struct PlaceholderParams {
    /// The key the tokens derive from (`ki`); for automatic encryption the
    /// field's key.
    pub index_key_id: [u8; 16],
    /// The key the value is encrypted with (`ku`); for automatic
    /// encryption the field's key too.
    pub user_key_id: [u8; 16],
    /// The maximum contention factor (`cm`; 0 for an unindexed field).
    pub max_contention: i64,
    /// The sparsity (`s`), written for range placeholders only.
    pub sparsity: i64,
}

/// A value query analysis may put in a placeholder: what libmongocrypt
/// would refuse to encrypt from it is refused here, before it is sent
/// anywhere.
fn check_value(value: &Bson) -> Result<(), Error> {
    match value {
        Bson::Null | Bson::Undefined | Bson::MinKey | Bson::MaxKey => {
            Err(PayloadError::InvalidValueType.into())
        }
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            Err(PayloadError::AlreadyEncrypted.into())
        }
        Bson::RegularExpression(re) if re.pattern.contains('\0') || re.options.contains('\0') => {
            Err(PayloadError::RegexNul.into())
        }
        _ => Ok(()),
    }
}

fn uuid_bson(id: [u8; 16]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: id.to_vec(),
    })
}

/// `precision` and `trimFactor`, when set, appended to `doc`.
fn append_index_options(doc: &mut Document, index: &RangeIndexSpec<'_>) {
    if let Some(p) = index.precision {
        doc.insert("precision", p);
    }
    if let Some(t) = index.trim_factor {
        doc.insert("trimFactor", t);
    }
}

/// `payloadId`, `firstOperator` and, when there is one, `secondOperator`
/// (libmongocrypt's `mc_makeRangeFindPlaceholder` and mongocryptd write
/// no `secondOperator` for a one-sided predicate).
fn append_operators(
    spec: &mut Document,
    payload_id: i32,
    first: RangeOperator,
    second: RangeOperator,
) {
    spec.insert("payloadId", payload_id);
    spec.insert("firstOperator", first as i32);
    if second != RangeOperator::None {
        spec.insert("secondOperator", second as i32);
    }
}

/// Writes a placeholder as mongocryptd does (`FLE2EncryptionPlaceholder`):
/// the byte 3, then `{t, a, ki, ku, v, cm, s?}` (module documentation).
/// Refuses a value libmongocrypt would refuse to encrypt (null, undefined,
/// min/max key, an already encrypted binary, a regular expression with a
/// NUL byte), a negative or maximal contention factor, and for range
/// placeholders a sparsity outside 1 to 4. [`Placeholder::parse`] reads
/// back what this writes.
pub fn write_placeholder(
    request: &PlaceholderRequest<'_>,
    params: &PlaceholderParams,
) -> Result<Vec<u8>, Error> {
    payload::validate_contention(params.max_contention)?;
    let (t, a, v): (i32, i32, Bson) = match request {
        PlaceholderRequest::UnindexedInsert(value) => {
            check_value(value)?;
            (1, 1, Bson::clone(value))
        }
        PlaceholderRequest::EqualityInsert(value) => {
            check_value(value)?;
            (1, 2, Bson::clone(value))
        }
        PlaceholderRequest::EqualityFind(value) => {
            check_value(value)?;
            (2, 2, Bson::clone(value))
        }
        PlaceholderRequest::RangeInsert { value, index } => {
            check_value(value)?;
            let mut spec = Document::new();
            spec.insert("v", Bson::clone(value));
            spec.insert("min", index.min.clone());
            spec.insert("max", index.max.clone());
            append_index_options(&mut spec, index);
            (1, 3, Bson::Document(spec))
        }
        PlaceholderRequest::RangeFind {
            lower,
            upper,
            index,
            payload_id,
            first,
            second,
        } => {
            let (lower_bound, lower_included) = match lower {
                Some(b) => {
                    check_value(b.value)?;
                    (b.value.clone(), b.included)
                }
                None => (Bson::Double(f64::NEG_INFINITY), true),
            };
            let (upper_bound, upper_included) = match upper {
                Some(b) => {
                    check_value(b.value)?;
                    (b.value.clone(), b.included)
                }
                None => (Bson::Double(f64::INFINITY), true),
            };
            let mut edges = Document::new();
            edges.insert("lowerBound", lower_bound);
            edges.insert("lbIncluded", lower_included);
            edges.insert("upperBound", upper_bound);
            edges.insert("ubIncluded", upper_included);
            append_index_options(&mut edges, index);
            edges.insert("indexMin", index.min.clone());
            edges.insert("indexMax", index.max.clone());
            let mut spec = Document::new();
            spec.insert("edgesInfo", edges);
            append_operators(&mut spec, *payload_id, *first, *second);
            (2, 3, Bson::Document(spec))
        }
        PlaceholderRequest::RangeStub {
            payload_id,
            first,
            second,
        } => {
            let mut spec = Document::new();
            append_operators(&mut spec, *payload_id, *first, *second);
            (2, 3, Bson::Document(spec))
        }
    };
    let mut placeholder = Document::new();
    placeholder.insert("t", t);
    placeholder.insert("a", a);
    placeholder.insert("ki", uuid_bson(params.index_key_id));
    placeholder.insert("ku", uuid_bson(params.user_key_id));
    placeholder.insert("v", v);
    placeholder.insert("cm", Bson::Int64(params.max_contention));
    if a == 3 {
        payload::validate_sparsity(params.sparsity)?;
        // Automatic encryption writes only what `encryptedFields` allows
        // (1 to 4): a sparsity of 0 would fail later in the range math,
        // and one above 4 is no index the server builds.
        if !(1..=4).contains(&params.sparsity) {
            return Err(PayloadError::FieldType {
                what: PLACEHOLDER,
                field: "s",
                expected: "a sparsity from 1 to 4",
            }
            .into());
        }
        placeholder.insert("s", Bson::Int64(params.sparsity));
    }
    let mut out = vec![ENCRYPTION_PLACEHOLDER];
    placeholder
        .to_writer(&mut out)
        .map_err(|_| PayloadError::InvalidBson { what: PLACEHOLDER })?;
    Ok(out)
}

#[cfg(test)]
#[path = "placeholder_tests.rs"]
mod tests;
