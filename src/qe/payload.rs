//! The payloads a client sends: built byte for byte as libmongocrypt builds
//! them (`mongocrypt-marking.c`, `mc-fle2-insert-update-payload-v2.c`,
//! `mc-fle2-find-equality-payload-v2.c`, `mc-fle2-find-range-payload-v2.c`,
//! `mc-fle2-payload-uev-v2.c`).
//!
//! Each is the payload of a BSON binary of subtype 6 (see [`to_binary`]):
//!
//! ```text
//! FLE2InsertUpdatePayloadV2 (11) ‖ BSON {
//!   d: EDCDerivedFromDataTokenAndContentionFactor,   s: ESC…AndContentionFactor,
//!   p: FLE2(ECOCToken, s [‖ 0x00 for range]),       u: index key UUID (subtype 4),
//!   t: BSON type (int32),                            v: user key UUID ‖ FLE2v2AEAD(user key, AD = user key UUID, value),
//!   e: ServerDataEncryptionLevel1Token,              l: ServerDerivedFromDataToken,
//!   k: contention factor (int64),
//!   range only: g: [{d, s, l, p: FLE2(ECOCToken, s ‖ isLeaf)} per edge],
//!               sp: sparsity (int64), pn: precision (int32, if any), tf: trim factor (int32),
//!               mn: index min, mx: index max }
//! FLE2FindEqualityPayloadV2 (12) ‖ BSON { d: EDCDerivedFromDataToken, s: ESC…, l: Server…, cm: max contention (int64) }
//! FLE2FindRangePayloadV2 (13) ‖ BSON { payload: { g: [{d, s, l} per cover edge], cm },
//!   payloadId, firstOperator, secondOperator (if any), sp, pn (if any), tf, mn, mx }
//!   (or only payloadId, firstOperator, secondOperator: the stub of a two-sided query's second bound)
//! FLE2UnindexedEncryptedValueV2 (16) ‖ user key UUID ‖ BSON type ‖ FLE2v2AEAD(user key, AD = 16 ‖ UUID ‖ type, value)
//! ```
//!
//! Tokens are derived from the index key (its last third, the token key)
//! over the value's BSON bytes, or for range edges over the edge string;
//! insert tokens also over the contention factor drawn in
//! `0..=max contention`. Randomness is taken from the [`QeRandom`] in
//! libmongocrypt's order: the contention factor (8 bytes per draw, only if
//! the maximum is above 0), then the IV of `p`, the IV of `v`, then one IV
//! per range edge. Find payloads draw nothing.
//!
//! The functions are pure: values, keys and options in, payload bytes out.
//! The value is given as a [`RawBsonRef`]; null, undefined, minKey, maxKey
//! and binary subtype 6 are refused, as libmongocrypt refuses them.

pub use super::error::PayloadError;

use super::Error;
use super::aead::{
    QeDataKey, fle2_aead_decrypt, fle2_encrypt, fle2v2_aead_decrypt, fle2v2_aead_encrypt,
    unindexed_aad,
};
use super::random::{QeRandom, random_i64_below};
use super::range::edges::{
    Edges, EdgesArgs, edges_decimal128, edges_double, edges_int32, edges_int64,
};
use super::range::mincover::{
    Mincover, MincoverArgs, mincover_decimal128, mincover_double, mincover_int32, mincover_int64,
};
use super::range::{RangeError, bson_type_name};
use super::tokens::TokenKey;
use super::tokens::{
    CollectionsLevel1Token, EcocToken, EdcDerivedFromDataToken,
    EdcDerivedFromDataTokenAndContentionFactor, EdcToken, EscDerivedFromDataToken,
    EscDerivedFromDataTokenAndContentionFactor, EscToken, ServerDataEncryptionLevel1Token,
    ServerDerivedFromDataToken, ServerTokenDerivationLevel1Token, TOKEN_LEN,
};
use super::values::UNINDEXED_V2;
use bson::spec::{BinarySubtype, ElementType};
use bson::{RawArrayBuf, RawBinaryRef, RawBsonRef, RawDocument, RawDocumentBuf};
use zeroize::Zeroizing;

/// First byte of an insert or update payload (v2).
pub const INSERT_UPDATE_V2: u8 = 11;
/// First byte of an equality find payload (v2).
pub const FIND_EQUALITY_V2: u8 = 12;
/// First byte of a range find payload (v2).
pub const FIND_RANGE_V2: u8 = 13;

/// Length of a key UUID.
const UUID_LEN: usize = 16;

/// A decrypted data key and its id, as a payload names it.
#[derive(Clone, Copy)]
pub struct QeKey<'a> {
    /// The key's UUID (the `_id` of its key document).
    pub id: [u8; UUID_LEN],
    /// The decrypted 96-byte key.
    pub key: &'a QeDataKey,
}

impl std::fmt::Debug for QeKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QeKey")
            .field("id", &hex(&self.id))
            .finish_non_exhaustive()
    }
}

/// Lower-case hex, for key ids in errors and `Debug`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A payload's bytes as the BSON binary (subtype 6) that carries it.
pub fn to_binary(payload: Vec<u8>) -> bson::Binary {
    bson::Binary {
        subtype: BinarySubtype::Encrypted,
        bytes: payload,
    }
}

/// The bytes of a BSON value (after type and field name) and its type,
/// refusing what libmongocrypt refuses to encrypt.
pub(crate) fn value_bytes(value: RawBsonRef<'_>) -> Result<(u8, Zeroizing<Vec<u8>>), Error> {
    match value {
        RawBsonRef::Null | RawBsonRef::Undefined | RawBsonRef::MinKey | RawBsonRef::MaxKey => {
            return Err(PayloadError::InvalidValueType.into());
        }
        RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            return Err(PayloadError::AlreadyEncrypted.into());
        }
        RawBsonRef::RegularExpression(re)
            if re.pattern.contains('\0') || re.options.contains('\0') =>
        {
            return Err(PayloadError::RegexNul.into());
        }
        _ => {}
    }
    let mut doc = RawDocumentBuf::new();
    doc.append_ref("", value);
    let bytes = Zeroizing::new(doc.into_bytes());
    // [length:4][type:1][name "":1][value…][terminator:1]
    let inner = bytes
        .get(6..bytes.len().saturating_sub(1))
        .ok_or(PayloadError::InvalidValueType)?;
    Ok((value.element_type() as u8, Zeroizing::new(inner.to_vec())))
}

/// Checks a contention factor as libmongocrypt's `mc_validate_contention`.
pub fn validate_contention(contention: i64) -> Result<(), Error> {
    if contention < 0 {
        return Err(PayloadError::ContentionNegative(contention).into());
    }
    if contention == i64::MAX {
        return Err(PayloadError::ContentionMax.into());
    }
    Ok(())
}

/// The tokens derived from the index key over one value (or edge string):
/// `d`, `s` and `l`, and the collections-level token `p` is made from.
struct DataTokens {
    edc: Zeroizing<[u8; TOKEN_LEN]>,
    esc: Zeroizing<[u8; TOKEN_LEN]>,
    server: Zeroizing<[u8; TOKEN_LEN]>,
    collections: CollectionsLevel1Token,
}

/// libmongocrypt's `_mongocrypt_fle2_placeholder_common`: with a
/// contention factor, the tokens an insert sends; without, a find's.
fn data_tokens(token_key: &TokenKey, value: &[u8], contention: Option<u64>) -> DataTokens {
    let collections = CollectionsLevel1Token::derive(token_key);
    let edc_d = EdcDerivedFromDataToken::derive(&EdcToken::derive(&collections), value);
    let esc_d = EscDerivedFromDataToken::derive(&EscToken::derive(&collections), value);
    let (edc, esc) = match contention {
        Some(cf) => (
            *EdcDerivedFromDataTokenAndContentionFactor::derive(&edc_d, cf).as_bytes(),
            *EscDerivedFromDataTokenAndContentionFactor::derive(&esc_d, cf).as_bytes(),
        ),
        None => (*edc_d.as_bytes(), *esc_d.as_bytes()),
    };
    let server_l1 = ServerTokenDerivationLevel1Token::derive(token_key);
    let server = ServerDerivedFromDataToken::derive(&server_l1, value);
    DataTokens {
        edc: Zeroizing::new(edc),
        esc: Zeroizing::new(esc),
        server: Zeroizing::new(*server.as_bytes()),
        collections,
    }
}

/// `p`: FLE2(ECOCToken, s ‖ isLeaf?) with a fresh IV (libmongocrypt's
/// `_fle2_derive_encrypted_token`).
fn encrypted_tokens(
    tokens: &DataTokens,
    is_leaf: Option<bool>,
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    let ecoc = EcocToken::derive(&tokens.collections);
    let mut plain = Zeroizing::new(Vec::with_capacity(TOKEN_LEN + 1));
    plain.extend_from_slice(&tokens.esc[..]);
    if let Some(leaf) = is_leaf {
        plain.push(u8::from(leaf));
    }
    fle2_encrypt(ecoc.as_bytes(), &plain, rng)
}

fn generic(bytes: &[u8]) -> RawBinaryRef<'_> {
    RawBinaryRef {
        subtype: BinarySubtype::Generic,
        bytes,
    }
}

/// The payload: its first byte, then the document.
fn with_subtype(subtype: u8, doc: RawDocumentBuf) -> Vec<u8> {
    let bytes = doc.into_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(subtype);
    out.extend_from_slice(&bytes);
    out
}

/// Draws the contention factor in `0..=max` (none drawn for 0), as
/// libmongocrypt's `_fle2_choose_contention_factor`.
fn choose_contention(max_contention: i64, rng: &mut QeRandom) -> Result<i64, Error> {
    validate_contention(max_contention)?;
    if max_contention > 0 {
        // max < i64::MAX: the bound does not overflow.
        random_i64_below(rng, max_contention + 1)
    } else {
        Ok(0)
    }
}

/// The fields every insert payload starts with, `d` to `k`
/// (libmongocrypt's `_mongocrypt_fle2_placeholder_to_insert_update_common`),
/// and the contention factor chosen.
fn insert_common(
    value: RawBsonRef<'_>,
    index: QeKey<'_>,
    user: QeKey<'_>,
    max_contention: i64,
    range: bool,
    rng: &mut QeRandom,
) -> Result<(RawDocumentBuf, i64), Error> {
    let (bson_type, plaintext) = value_bytes(value)?;
    let contention = choose_contention(max_contention, rng)?;
    // Non-negative: drawn below a positive bound, or 0.
    let cf = contention as u64;
    let tokens = data_tokens(index.key.token_key(), &plaintext, Some(cf));
    // Range inserts append isLeaf = false to the value's own `p`.
    let p = encrypted_tokens(&tokens, range.then_some(false), rng)?;
    let ciphertext = fle2v2_aead_encrypt(user.key, &user.id, &plaintext, rng)?;
    let mut v = Vec::with_capacity(UUID_LEN + ciphertext.len());
    v.extend_from_slice(&user.id);
    v.extend_from_slice(&ciphertext);
    let server_data = ServerDataEncryptionLevel1Token::derive(index.key.token_key());

    let mut doc = RawDocumentBuf::new();
    doc.append_ref("d", generic(&tokens.edc[..]));
    doc.append_ref("s", generic(&tokens.esc[..]));
    doc.append_ref("p", generic(&p));
    doc.append_ref(
        "u",
        RawBinaryRef {
            subtype: BinarySubtype::Uuid,
            bytes: &index.id,
        },
    );
    doc.append_ref("t", RawBsonRef::Int32(i32::from(bson_type)));
    doc.append_ref("v", generic(&v));
    doc.append_ref("e", generic(server_data.as_bytes()));
    doc.append_ref("l", generic(&tokens.server[..]));
    doc.append_ref("k", RawBsonRef::Int64(contention));
    Ok((doc, contention))
}

/// An indexed (equality) insert: `FLE2InsertUpdatePayloadV2` (first byte
/// 11). `index` derives the tokens, `user` encrypts the value (the same
/// key when no separate index key is given); the contention factor is
/// drawn in `0..=max_contention`.
pub fn insert_update_payload(
    value: RawBsonRef<'_>,
    index: QeKey<'_>,
    user: QeKey<'_>,
    max_contention: i64,
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    let (doc, _) = insert_common(value, index, user, max_contention, false, rng)?;
    Ok(with_subtype(INSERT_UPDATE_V2, doc))
}

/// What a range insert encrypts (libmongocrypt's `FLE2RangeInsertSpec`):
/// the value, the index's bounds (the options' min and max, or the type's
/// defaults), and its precision and trim factor if given.
#[derive(Clone, Copy)]
pub struct RangeInsertSpec<'a> {
    /// The value to insert.
    pub value: RawBsonRef<'a>,
    /// The index minimum, of the value's type.
    pub min: RawBsonRef<'a>,
    /// The index maximum, of the value's type.
    pub max: RawBsonRef<'a>,
    /// The precision (doubles and Decimal128).
    pub precision: Option<i32>,
    /// The trim factor; `None` for the default.
    pub trim_factor: Option<i32>,
}

/// A range bound of the value's type, or the error libmongocrypt's
/// explicit path gives for another type.
fn bound_of<T>(
    name: &'static str,
    bound: RawBsonRef<'_>,
    value_type: ElementType,
    get: impl Fn(RawBsonRef<'_>) -> Option<T>,
) -> Result<T, RangeError> {
    get(bound).ok_or(RangeError::BoundTypeMismatch {
        bound: name,
        bound_type: bson_type_name(bound.element_type()),
        value_type: bson_type_name(value_type),
    })
}

fn as_i32(v: RawBsonRef<'_>) -> Option<i32> {
    match v {
        RawBsonRef::Int32(i) => Some(i),
        _ => None,
    }
}

fn as_i64(v: RawBsonRef<'_>) -> Option<i64> {
    match v {
        RawBsonRef::Int64(i) => Some(i),
        _ => None,
    }
}

fn as_date(v: RawBsonRef<'_>) -> Option<i64> {
    match v {
        RawBsonRef::DateTime(d) => Some(d.timestamp_millis()),
        _ => None,
    }
}

fn as_f64(v: RawBsonRef<'_>) -> Option<f64> {
    match v {
        RawBsonRef::Double(d) => Some(d),
        _ => None,
    }
}

fn as_dec(v: RawBsonRef<'_>) -> Option<[u8; 16]> {
    match v {
        RawBsonRef::Decimal128(d) => Some(d.bytes()),
        _ => None,
    }
}

/// A sparsity as the range math takes it (libmongocrypt's
/// `mc_validate_sparsity`).
pub fn validate_sparsity(sparsity: i64) -> Result<u64, Error> {
    u64::try_from(sparsity).map_err(|_| RangeError::SparsityNegative(sparsity).into())
}

/// The edges of a range insert (libmongocrypt's `get_edges`): bounds of
/// the value's type; min, max and precision of doubles and Decimal128
/// used only with a precision.
pub fn insert_edges(spec: &RangeInsertSpec<'_>, sparsity: u64) -> Result<Edges, Error> {
    let ty = spec.value.element_type();
    let edges = match spec.value {
        RawBsonRef::Int32(value) => edges_int32(EdgesArgs {
            value,
            min: Some(bound_of("min", spec.min, ty, as_i32)?),
            max: Some(bound_of("max", spec.max, ty, as_i32)?),
            precision: None,
            sparsity,
            trim_factor: spec.trim_factor,
        }),
        RawBsonRef::Int64(value) => edges_int64(EdgesArgs {
            value,
            min: Some(bound_of("min", spec.min, ty, as_i64)?),
            max: Some(bound_of("max", spec.max, ty, as_i64)?),
            precision: None,
            sparsity,
            trim_factor: spec.trim_factor,
        }),
        RawBsonRef::DateTime(value) => edges_int64(EdgesArgs {
            value: value.timestamp_millis(),
            min: Some(bound_of("min", spec.min, ty, as_date)?),
            max: Some(bound_of("max", spec.max, ty, as_date)?),
            precision: None,
            sparsity,
            trim_factor: spec.trim_factor,
        }),
        RawBsonRef::Double(value) => {
            let (min, max) = match spec.precision {
                Some(_) => (
                    Some(bound_of("min", spec.min, ty, as_f64)?),
                    Some(bound_of("max", spec.max, ty, as_f64)?),
                ),
                None => (None, None),
            };
            edges_double(EdgesArgs {
                value,
                min,
                max,
                precision: spec.precision,
                sparsity,
                trim_factor: spec.trim_factor,
            })
        }
        RawBsonRef::Decimal128(value) => {
            let (min, max) = match spec.precision {
                Some(_) => (
                    Some(bound_of("min", spec.min, ty, as_dec)?),
                    Some(bound_of("max", spec.max, ty, as_dec)?),
                ),
                None => (None, None),
            };
            edges_decimal128(EdgesArgs {
                value: value.bytes(),
                min,
                max,
                precision: spec.precision,
                sparsity,
                trim_factor: spec.trim_factor,
            })
        }
        other => {
            return Err(RangeError::UnsupportedType(bson_type_name(other.element_type())).into());
        }
    };
    Ok(edges?)
}

/// A range insert: `FLE2InsertUpdatePayloadV2` (first byte 11) with the
/// edge token sets `g` and the parameters `sp`, `pn`, `tf`, `mn`, `mx`, as
/// libmongocrypt's `_mongocrypt_fle2_placeholder_to_insert_update_ciphertextForRange`.
/// The range math runs first: an invalid value or option draws nothing.
pub fn insert_update_range_payload(
    spec: &RangeInsertSpec<'_>,
    index: QeKey<'_>,
    user: QeKey<'_>,
    max_contention: i64,
    sparsity: i64,
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    let edges = insert_edges(spec, validate_sparsity(sparsity)?)?;
    let (mut doc, contention) = insert_common(spec.value, index, user, max_contention, true, rng)?;
    let cf = contention as u64;
    let mut g = RawArrayBuf::new();
    for edge in edges.as_slice() {
        let tokens = data_tokens(index.key.token_key(), edge.as_bytes(), Some(cf));
        let p = encrypted_tokens(&tokens, Some(edges.is_leaf(edge)), rng)?;
        let mut set = RawDocumentBuf::new();
        set.append_ref("d", generic(&tokens.edc[..]));
        set.append_ref("s", generic(&tokens.esc[..]));
        set.append_ref("l", generic(&tokens.server[..]));
        set.append_ref("p", generic(&p));
        g.push(set);
    }
    doc.append("g", g);
    doc.append_ref("sp", RawBsonRef::Int64(sparsity));
    if let Some(precision) = spec.precision {
        doc.append_ref("pn", RawBsonRef::Int32(precision));
    }
    doc.append_ref("tf", RawBsonRef::Int32(edges.trim_factor()));
    doc.append_ref("mn", spec.min);
    doc.append_ref("mx", spec.max);
    Ok(with_subtype(INSERT_UPDATE_V2, doc))
}

/// An equality find: `FLE2FindEqualityPayloadV2` (first byte 12), the
/// tokens without contention factor and the maximum contention factor the
/// server must search. Deterministic: draws nothing.
pub fn find_equality_payload(
    value: RawBsonRef<'_>,
    index: &QeDataKey,
    max_contention: i64,
) -> Result<Vec<u8>, Error> {
    validate_contention(max_contention)?;
    let (_, plaintext) = value_bytes(value)?;
    let tokens = data_tokens(index.token_key(), &plaintext, None);
    let mut doc = RawDocumentBuf::new();
    doc.append_ref("d", generic(&tokens.edc[..]));
    doc.append_ref("s", generic(&tokens.esc[..]));
    doc.append_ref("l", generic(&tokens.server[..]));
    doc.append_ref("cm", RawBsonRef::Int64(max_contention));
    Ok(with_subtype(FIND_EQUALITY_V2, doc))
}

/// A range query operator (libmongocrypt's `mc_FLE2RangeOperator_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum RangeOperator {
    /// No operator (libmongocrypt's `kNone`).
    None = 0,
    /// `$gt`.
    Gt = 1,
    /// `$gte`.
    Gte = 2,
    /// `$lt`.
    Lt = 3,
    /// `$lte`.
    Lte = 4,
}

impl RangeOperator {
    /// The operator of its number, 0 to 4.
    pub fn from_i32(n: i32) -> Option<Self> {
        match n {
            0 => Some(RangeOperator::None),
            1 => Some(RangeOperator::Gt),
            2 => Some(RangeOperator::Gte),
            3 => Some(RangeOperator::Lt),
            4 => Some(RangeOperator::Lte),
            _ => None,
        }
    }

    /// The query operator's name (`none` for [`RangeOperator::None`]).
    pub fn name(self) -> &'static str {
        match self {
            RangeOperator::None => "none",
            RangeOperator::Gt => "$gt",
            RangeOperator::Gte => "$gte",
            RangeOperator::Lt => "$lt",
            RangeOperator::Lte => "$lte",
        }
    }
}

/// The queried interval and the index's parameters of a range find
/// (libmongocrypt's `FLE2RangeFindSpecEdgesInfo`). A bound that is a double
/// infinity stands for the index's end on that side (an open interval).
#[derive(Clone, Copy)]
pub struct RangeFindEdges<'a> {
    /// The lower bound.
    pub lower_bound: RawBsonRef<'a>,
    /// Whether it is included.
    pub lower_included: bool,
    /// The upper bound.
    pub upper_bound: RawBsonRef<'a>,
    /// Whether it is included.
    pub upper_included: bool,
    /// The index minimum.
    pub index_min: RawBsonRef<'a>,
    /// The index maximum.
    pub index_max: RawBsonRef<'a>,
    /// The precision (doubles and Decimal128).
    pub precision: Option<i32>,
    /// The trim factor; `None` for the default.
    pub trim_factor: Option<i32>,
}

/// A range find (libmongocrypt's `FLE2RangeFindSpec`): the interval (absent
/// for the stub that pairs with a two-sided query's other operator), the
/// payload id pairing the two, and the operators.
#[derive(Clone, Copy)]
pub struct RangeFindSpec<'a> {
    /// The interval and index parameters; `None` for the stub.
    pub edges: Option<RangeFindEdges<'a>>,
    /// Pairs the two payloads of a two-sided query.
    pub payload_id: i32,
    /// The first operator of the query.
    pub first_operator: RangeOperator,
    /// The second operator, [`RangeOperator::None`] for a one-sided query.
    pub second_operator: RangeOperator,
}

/// The minimal cover of a range find (libmongocrypt's
/// `mc_get_mincover_from_FLE2RangeFindSpec`).
pub fn find_mincover(edges: &RangeFindEdges<'_>, sparsity: u64) -> Result<Mincover, Error> {
    let index_type = edges.index_min.element_type();
    if index_type != edges.index_max.element_type() {
        return Err(RangeError::IndexBoundsTypeMismatch {
            min_type: bson_type_name(index_type),
            max_type: bson_type_name(edges.index_max.element_type()),
        }
        .into());
    }
    let infinite = |v: RawBsonRef<'_>| matches!(v, RawBsonRef::Double(d) if d.is_infinite());
    // Open-ended ranges end at the index's bound, included.
    let (lower, include_lower) = if infinite(edges.lower_bound) {
        (edges.index_min, true)
    } else {
        (edges.lower_bound, edges.lower_included)
    };
    let (upper, include_upper) = if infinite(edges.upper_bound) {
        (edges.index_max, true)
    } else {
        (edges.upper_bound, edges.upper_included)
    };
    for (name, bound) in [("lowerBound", lower), ("upperBound", upper)] {
        if bound.element_type() != index_type {
            return Err(RangeError::QueryBoundTypeMismatch {
                bound: name,
                index_type: bson_type_name(index_type),
                bound_type: bson_type_name(bound.element_type()),
            }
            .into());
        }
    }
    // The types were checked: each `get` below finds its type.
    let typed = |v: RawBsonRef<'_>| RangeError::QueryBoundTypeMismatch {
        bound: "bound",
        index_type: bson_type_name(index_type),
        bound_type: bson_type_name(v.element_type()),
    };
    fn get<T>(
        v: RawBsonRef<'_>,
        f: impl Fn(RawBsonRef<'_>) -> Option<T>,
        err: &impl Fn(RawBsonRef<'_>) -> RangeError,
    ) -> Result<T, RangeError> {
        f(v).ok_or_else(|| err(v))
    }
    // One shape for every type: integers always carry the index bounds and
    // no precision; doubles and Decimal128 carry the bounds only with a
    // precision.
    macro_rules! args {
        ($conv:expr, $with_bounds:expr, $precision:expr) => {
            MincoverArgs {
                lower_bound: get(lower, $conv, &typed)?,
                include_lower_bound: include_lower,
                upper_bound: get(upper, $conv, &typed)?,
                include_upper_bound: include_upper,
                min: if $with_bounds {
                    Some(get(edges.index_min, $conv, &typed)?)
                } else {
                    None
                },
                max: if $with_bounds {
                    Some(get(edges.index_max, $conv, &typed)?)
                } else {
                    None
                },
                precision: $precision,
                sparsity,
                trim_factor: edges.trim_factor,
            }
        };
    }
    let with_precision = edges.precision.is_some();
    let cover = match index_type {
        ElementType::Int32 => mincover_int32(args!(as_i32, true, None)),
        ElementType::Int64 => mincover_int64(args!(as_i64, true, None)),
        ElementType::DateTime => mincover_int64(args!(as_date, true, None)),
        ElementType::Double => mincover_double(args!(as_f64, with_precision, edges.precision)),
        ElementType::Decimal128 => {
            mincover_decimal128(args!(as_dec, with_precision, edges.precision))
        }
        other => return Err(RangeError::FindUnsupportedType(bson_type_name(other)).into()),
    };
    Ok(cover?)
}

/// A range find: `FLE2FindRangePayloadV2` (first byte 13), as
/// libmongocrypt's `_mongocrypt_fle2_placeholder_to_find_ciphertextForRange`:
/// the cover's tokens (without contention factor) and the parameters, or
/// for a stub only the id and operators. Deterministic: draws nothing.
pub fn find_range_payload(
    spec: &RangeFindSpec<'_>,
    index: &QeDataKey,
    max_contention: i64,
    sparsity: i64,
) -> Result<Vec<u8>, Error> {
    validate_contention(max_contention)?;
    let sparsity_u = validate_sparsity(sparsity)?;
    let mut doc = RawDocumentBuf::new();
    let parameters = match &spec.edges {
        Some(edges) => {
            let cover = find_mincover(edges, sparsity_u)?;
            let mut g = RawArrayBuf::new();
            for edge in cover.as_slice() {
                let tokens = data_tokens(index.token_key(), edge.as_bytes(), None);
                let mut set = RawDocumentBuf::new();
                set.append_ref("d", generic(&tokens.edc[..]));
                set.append_ref("s", generic(&tokens.esc[..]));
                set.append_ref("l", generic(&tokens.server[..]));
                g.push(set);
            }
            let mut payload = RawDocumentBuf::new();
            payload.append("g", g);
            payload.append_ref("cm", RawBsonRef::Int64(max_contention));
            doc.append("payload", payload);
            Some((edges, cover.trim_factor()))
        }
        None => None,
    };
    doc.append_ref("payloadId", RawBsonRef::Int32(spec.payload_id));
    doc.append_ref(
        "firstOperator",
        RawBsonRef::Int32(spec.first_operator as i32),
    );
    if spec.second_operator != RangeOperator::None {
        doc.append_ref(
            "secondOperator",
            RawBsonRef::Int32(spec.second_operator as i32),
        );
    }
    if let Some((edges, trim_factor)) = parameters {
        doc.append_ref("sp", RawBsonRef::Int64(sparsity));
        if let Some(precision) = edges.precision {
            doc.append_ref("pn", RawBsonRef::Int32(precision));
        }
        doc.append_ref("tf", RawBsonRef::Int32(trim_factor));
        doc.append_ref("mn", edges.index_min);
        doc.append_ref("mx", edges.index_max);
    }
    Ok(with_subtype(FIND_RANGE_V2, doc))
}

/// An unindexed value: `FLE2UnindexedEncryptedValueV2` (first byte 16),
/// the value encrypted with the user key (one IV drawn).
pub fn unindexed_payload(
    value: RawBsonRef<'_>,
    user: QeKey<'_>,
    rng: &mut QeRandom,
) -> Result<Vec<u8>, Error> {
    let (bson_type, plaintext) = value_bytes(value)?;
    let aad = unindexed_aad(UNINDEXED_V2, &user.id, bson_type);
    let ciphertext = fle2v2_aead_encrypt(user.key, &aad, &plaintext, rng)?;
    let mut out = Vec::with_capacity(aad.len() + ciphertext.len());
    out.extend_from_slice(&aad);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// An insert payload as a client sent it, read for decryption
/// (libmongocrypt's `mc_FLE2InsertUpdatePayloadV2_parse`): the value's
/// type, the user key's UUID and the ciphertext of `v`. libmongocrypt
/// decrypts these when it meets them in a document; so does csfle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertUpdatePayload<'a> {
    bson_type: u8,
    user_key_id: [u8; UUID_LEN],
    index_key_id: &'a [u8],
    contention: i64,
    ciphertext: &'a [u8],
}

const IUP: &str = "FLE2InsertUpdatePayloadV2";

/// The fields an insert payload may hold: libmongocrypt's, range and text
/// ones included; any other is refused.
const IUP_FIELDS: [&str; 16] = [
    "d", "s", "p", "u", "t", "v", "e", "l", "k", "g", "sp", "pn", "tf", "mn", "mx", "b",
];

impl<'a> InsertUpdatePayload<'a> {
    /// Parses the payload (its first byte 11). Every binary field must have
    /// the subtype libmongocrypt writes, `t` a byte, `k` a valid contention
    /// factor, `sp`, `pn` and `tf` their types; `d`…`k` must be present.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        match blob.first() {
            Some(&INSERT_UPDATE_V2) => {}
            actual => {
                return Err(PayloadError::WrongSubtype {
                    what: IUP,
                    expected: INSERT_UPDATE_V2,
                    actual: actual.copied(),
                }
                .into());
            }
        }
        let doc = RawDocument::from_bytes(&blob[1..])
            .map_err(|_| PayloadError::InvalidBson { what: IUP })?;
        let mut seen = [false; IUP_FIELDS.len()];
        let mut bson_type = None;
        let mut value: Option<&[u8]> = None;
        let mut index_key_id: Option<&[u8]> = None;
        let mut contention = None;
        for item in doc {
            let (key, v) = item.map_err(|_| PayloadError::InvalidBson { what: IUP })?;
            let slot = IUP_FIELDS
                .iter()
                .position(|f| *f == key)
                .ok_or(PayloadError::UnknownField { what: IUP })?;
            let field = IUP_FIELDS[slot];
            if std::mem::replace(&mut seen[slot], true) {
                return Err(PayloadError::DuplicateField { what: IUP, field }.into());
            }
            let binary = move |subtype: BinarySubtype, expected: &'static str| match v {
                RawBsonRef::Binary(b) if b.subtype == subtype => Ok(b.bytes),
                _ => Err(PayloadError::FieldType {
                    what: IUP,
                    field,
                    expected,
                }),
            };
            match field {
                "d" | "s" | "p" | "e" | "l" => {
                    binary(BinarySubtype::Generic, "bindata subtype 0")?;
                }
                "v" => value = Some(binary(BinarySubtype::Generic, "bindata subtype 0")?),
                "u" => index_key_id = Some(binary(BinarySubtype::Uuid, "bindata subtype 4")?),
                "t" => {
                    let t = match v {
                        RawBsonRef::Int32(t) => t,
                        _ => {
                            return Err(PayloadError::FieldType {
                                what: IUP,
                                field,
                                expected: "an int32",
                            }
                            .into());
                        }
                    };
                    bson_type =
                        Some(u8::try_from(t).map_err(|_| PayloadError::InvalidValueTypeField(t))?);
                }
                "k" => match v {
                    RawBsonRef::Int64(k) => {
                        validate_contention(k)?;
                        contention = Some(k);
                    }
                    _ => {
                        return Err(PayloadError::FieldType {
                            what: IUP,
                            field,
                            expected: "an int64",
                        }
                        .into());
                    }
                },
                "sp" => match v {
                    RawBsonRef::Int64(sp) => {
                        validate_sparsity(sp)?;
                    }
                    _ => {
                        return Err(PayloadError::FieldType {
                            what: IUP,
                            field,
                            expected: "an int64",
                        }
                        .into());
                    }
                },
                "pn" | "tf" => match v {
                    RawBsonRef::Int32(n) if n >= 0 => {}
                    _ => {
                        return Err(PayloadError::FieldType {
                            what: IUP,
                            field,
                            expected: "a non-negative int32",
                        }
                        .into());
                    }
                },
                // g, mn, mx, b: carried for the server, not read here.
                _ => {}
            }
        }
        for (slot, field) in IUP_FIELDS.iter().enumerate().take(9) {
            if !seen[slot] {
                return Err(PayloadError::MissingField { what: IUP, field }.into());
            }
        }
        let (Some(bson_type), Some(value), Some(index_key_id), Some(contention)) =
            (bson_type, value, index_key_id, contention)
        else {
            return Err(PayloadError::MissingField {
                what: IUP,
                field: "v",
            }
            .into());
        };
        if value.len() < UUID_LEN {
            return Err(PayloadError::ShortValue.into());
        }
        let (id, ciphertext) = value.split_at(UUID_LEN);
        let mut user_key_id = [0u8; UUID_LEN];
        user_key_id.copy_from_slice(id);
        Ok(InsertUpdatePayload {
            bson_type,
            user_key_id,
            index_key_id,
            contention,
            ciphertext,
        })
    }

    /// The BSON type of the value (`t`).
    pub fn bson_type(&self) -> u8 {
        self.bson_type
    }

    /// The UUID of the key that decrypts the value (the first 16 bytes of
    /// `v`).
    pub fn user_key_id(&self) -> [u8; UUID_LEN] {
        self.user_key_id
    }

    /// The index key's id as the payload carries it (`u`).
    pub fn index_key_id(&self) -> &'a [u8] {
        self.index_key_id
    }

    /// The contention factor chosen (`k`).
    pub fn contention_factor(&self) -> i64 {
        self.contention
    }

    /// Decrypts `v` with the key named by [`user_key_id`](Self::user_key_id):
    /// the bytes of a BSON value of type [`bson_type`](Self::bson_type).
    pub fn decrypt(&self, user_key: &QeDataKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        fle2v2_aead_decrypt(user_key, &self.user_key_id, self.ciphertext)
    }
}

/// First byte of an insert or update payload of QE v1
/// (`FLE2InsertUpdatePayload`, MongoDB 6.x): read for decryption only,
/// csfle never writes one.
pub const INSERT_UPDATE_V1: u8 = 4;

const IUP_V1: &str = "FLE2InsertUpdatePayload";

/// The fields a v1 insert payload may hold: the eight libmongocrypt
/// requires, then `g` (the edge token sets of a range v1 insert, not read
/// here); any other is refused.
const IUP_V1_FIELDS: [&str; 9] = ["d", "s", "c", "p", "u", "t", "v", "e", "g"];

/// An insert payload of QE v1 as a client sent it, read for decryption
/// (libmongocrypt's `mc_FLE2InsertUpdatePayload_parse` and `…_decrypt`):
/// the value's type, the user key's UUID and the ciphertext of `v`, an
/// FLE2AEAD (AES-256-CTR + HMAC-SHA-256) ciphertext under the user key
/// with the key's UUID as associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertUpdatePayloadV1<'a> {
    bson_type: u8,
    user_key_id: [u8; UUID_LEN],
    ciphertext: &'a [u8],
}

impl<'a> InsertUpdatePayloadV1<'a> {
    /// Parses the payload (its first byte 4). `d`, `s`, `c`, `p`, `e` and
    /// `v` must be binaries of subtype 0, `u` of subtype 4, `t` an int32
    /// byte, `g` an array; all but `g` must be present, none twice.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        match blob.first() {
            Some(&INSERT_UPDATE_V1) => {}
            actual => {
                return Err(PayloadError::WrongSubtype {
                    what: IUP_V1,
                    expected: INSERT_UPDATE_V1,
                    actual: actual.copied(),
                }
                .into());
            }
        }
        let invalid = || PayloadError::InvalidBson { what: IUP_V1 };
        let doc = RawDocument::from_bytes(&blob[1..]).map_err(|_| invalid())?;
        let mut seen = [false; IUP_V1_FIELDS.len()];
        let mut bson_type = None;
        let mut value: Option<&[u8]> = None;
        for item in doc {
            let (key, v) = item.map_err(|_| invalid())?;
            let slot = IUP_V1_FIELDS
                .iter()
                .position(|f| *f == key)
                .ok_or(PayloadError::UnknownField { what: IUP_V1 })?;
            let field = IUP_V1_FIELDS[slot];
            if std::mem::replace(&mut seen[slot], true) {
                return Err(PayloadError::DuplicateField {
                    what: IUP_V1,
                    field,
                }
                .into());
            }
            let wrong = |expected: &'static str| PayloadError::FieldType {
                what: IUP_V1,
                field,
                expected,
            };
            match (field, v) {
                ("d" | "s" | "c" | "p" | "e", RawBsonRef::Binary(b))
                    if b.subtype == BinarySubtype::Generic => {}
                ("v", RawBsonRef::Binary(b)) if b.subtype == BinarySubtype::Generic => {
                    value = Some(b.bytes);
                }
                ("u", RawBsonRef::Binary(b)) if b.subtype == BinarySubtype::Uuid => {}
                ("t", RawBsonRef::Int32(t)) => {
                    bson_type =
                        Some(u8::try_from(t).map_err(|_| PayloadError::InvalidValueTypeField(t))?);
                }
                ("g", RawBsonRef::Array(_)) => {}
                ("u", _) => return Err(wrong("bindata subtype 4").into()),
                ("t", _) => return Err(wrong("an int32").into()),
                ("g", _) => return Err(wrong("an array").into()),
                _ => return Err(wrong("bindata subtype 0").into()),
            }
        }
        // Every field but `g` is required.
        for (slot, field) in IUP_V1_FIELDS.iter().enumerate().take(8) {
            if !seen[slot] {
                return Err(PayloadError::MissingField {
                    what: IUP_V1,
                    field,
                }
                .into());
            }
        }
        let (Some(bson_type), Some(value)) = (bson_type, value) else {
            return Err(PayloadError::MissingField {
                what: IUP_V1,
                field: "v",
            }
            .into());
        };
        if value.len() < UUID_LEN {
            return Err(PayloadError::ShortValue.into());
        }
        let (id, ciphertext) = value.split_at(UUID_LEN);
        let mut user_key_id = [0u8; UUID_LEN];
        user_key_id.copy_from_slice(id);
        Ok(InsertUpdatePayloadV1 {
            bson_type,
            user_key_id,
            ciphertext,
        })
    }

    /// The BSON type of the value (`t`).
    pub fn bson_type(&self) -> u8 {
        self.bson_type
    }

    /// The UUID of the key that decrypts the value (the first 16 bytes of
    /// `v`).
    pub fn user_key_id(&self) -> [u8; UUID_LEN] {
        self.user_key_id
    }

    /// Decrypts `v` with the key named by [`user_key_id`](Self::user_key_id)
    /// (FLE2AEAD, the key's UUID as associated data): the bytes of a BSON
    /// value of type [`bson_type`](Self::bson_type).
    pub fn decrypt(&self, user_key: &QeDataKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        fle2_aead_decrypt(user_key, &self.user_key_id, self.ciphertext)
    }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
