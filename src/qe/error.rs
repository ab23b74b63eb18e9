//! The errors of `qe`: [`Error`], and the two it wraps that other files
//! of `qe` also return, [`PayloadError`] (public as
//! `qe::payload::PayloadError`) and [`ExplicitError`] (public as
//! `qe::explicit::ExplicitError`). Here, not beside their users, so that
//! every file of `qe` can return `Error` while `Error` names none of them
//! (only `range`'s error, whose folder returns nothing else).

/// What can go wrong in the QE crypto layer. Never carries key bytes,
/// tokens or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Key material had the wrong length (data keys are 96 bytes, token
    /// keys and tokens 32).
    #[error("QE key material must be {expected} bytes, got {actual}")]
    InvalidKeyLength {
        /// Required length.
        expected: usize,
        /// Length supplied.
        actual: usize,
    },
    /// The ciphertext is too short for its cipher, or not whole AES
    /// blocks where CBC needs them.
    #[error("invalid QE ciphertext length {len}: {reason}")]
    InvalidCiphertextLength {
        /// Length supplied.
        len: usize,
        /// What the cipher needs.
        reason: &'static str,
    },
    /// The HMAC-SHA-256 tag did not match: wrong key, wrong associated
    /// data, or the data was altered.
    #[error("HMAC validation failure: wrong key or tampered QE ciphertext")]
    MacMismatch,
    /// The tag was valid but the PKCS#7 padding was not (only a key
    /// holder can produce this).
    #[error("bad PKCS#7 padding after successful authentication")]
    BadPadding,
    /// QE does not encrypt an empty plaintext, and an authenticated
    /// ciphertext of one is refused.
    #[error("QE plaintext must not be empty")]
    EmptyPlaintext,
    /// The plaintext is longer than libmongocrypt's 32-bit lengths allow.
    #[error("QE plaintext too long: {len} bytes")]
    PlaintextTooLong {
        /// Length supplied.
        len: usize,
    },
    /// The AES-CTR keystream would run past the end of its counter
    /// space (cannot happen for inputs that fit in memory).
    #[error("AES-CTR keystream exhausted")]
    KeystreamExhausted,
    /// The random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// A fixed random source (tests and fuzzing only) ran out of bytes.
    #[error("the fixed random source is exhausted")]
    RandomExhausted,
    /// A QE value whose layout is broken: too short, a count its bytes do
    /// not hold, an inner length that does not fit.
    #[error("malformed QE value (subtype {subtype}): {reason}")]
    InvalidValue {
        /// The value's first byte.
        subtype: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// The first byte names no QE value this function reads.
    #[error("subtype {actual} is not a QE value that can be decrypted here (expected {expected})")]
    UnexpectedSubtype {
        /// The subtypes accepted.
        expected: &'static str,
        /// The value's first byte.
        actual: u8,
    },
    /// A bound for a random draw that cannot be drawn below.
    #[error("invalid bound for a random draw: {0}")]
    InvalidRandomBound(i64),
    /// Range encoding, edges, minimal covers and range options
    /// (libmongocrypt's words).
    #[error(transparent)]
    Range(#[from] super::range::RangeError),
    /// Building or reading a payload or placeholder (libmongocrypt's
    /// words).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Explicit encryption's options and range expressions
    /// (libmongocrypt's words).
    #[error(transparent)]
    Explicit(#[from] ExplicitError),
}

/// What can go wrong building or reading a payload (besides the ciphers'
/// and the range math's own errors): libmongocrypt's words. Never carries a
/// value, a token or key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// A value type no QE algorithm encrypts.
    #[error("BSON type invalid for encryption")]
    InvalidValueType,
    /// An already-encrypted value.
    #[error("BSON binary subtype 6 is invalid for encryption")]
    AlreadyEncrypted,
    /// A regular expression holding a NUL byte cannot be serialized.
    #[error("a regular expression containing a NUL byte cannot be encrypted")]
    RegexNul,
    /// A negative contention factor.
    #[error("Error validating contention: contention must be non-negative, got: {0}")]
    ContentionNegative(i64),
    /// A contention factor of `i64::MAX` (its draw bound would overflow).
    #[error(
        "Error validating contention: contention must be < INT64_MAX, got: 9223372036854775807"
    )]
    ContentionMax,
    /// The text-search ("String") algorithm: not supported by csfle.
    #[error(
        "the String (text search) algorithm is not supported by csfle: use Indexed, Unindexed or Range"
    )]
    TextSearchUnsupported,
    /// The data key a payload or placeholder names was not supplied.
    #[error("unable to retrieve key: the {role} key {key_id} was not supplied")]
    KeyNotFound {
        /// `index` or `user`.
        role: &'static str,
        /// The key's UUID, hex.
        key_id: String,
    },
    /// Not valid BSON.
    #[error("{what}: invalid BSON")]
    InvalidBson {
        /// The payload or placeholder.
        what: &'static str,
    },
    /// The payload is empty or its first byte names another kind.
    #[error("{what}: expected first byte {expected}, got {actual:?}")]
    WrongSubtype {
        /// The payload or placeholder.
        what: &'static str,
        /// The first byte expected.
        expected: u8,
        /// The first byte found (`None`: empty).
        actual: Option<u8>,
    },
    /// A field appears twice.
    #[error("Error parsing {what}: Duplicate field '{field}'")]
    DuplicateField {
        /// The payload or placeholder.
        what: &'static str,
        /// The field name.
        field: &'static str,
    },
    /// A field the document must have is missing.
    #[error("Error parsing {what}: Missing field '{field}'")]
    MissingField {
        /// The payload or placeholder.
        what: &'static str,
        /// The field name.
        field: &'static str,
    },
    /// A field of a type or value the document does not allow.
    #[error("Error parsing {what}: '{field}' must be {expected}")]
    FieldType {
        /// The payload or placeholder.
        what: &'static str,
        /// The field name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A field name the document does not have (csfle reads an allow-list).
    #[error("Error parsing {what}: unexpected field")]
    UnknownField {
        /// The payload or placeholder.
        what: &'static str,
    },
    /// A placeholder type other than insert (1) or find (2).
    #[error("Error parsing FLE2EncryptionPlaceholder: invalid placeholder type value: {0}")]
    InvalidPlaceholderType(i32),
    /// A placeholder algorithm other than 1 to 4.
    #[error("Error parsing FLE2EncryptionPlaceholder: invalid algorithm value: {0}")]
    InvalidAlgorithm(i32),
    /// A range operator outside 0 to 4.
    #[error("Error parsing FLE2RangeFindSpec: '{field}' must be between 0 and 4")]
    InvalidOperator {
        /// `firstOperator` or `secondOperator`.
        field: &'static str,
    },
    /// The BSON type of an insert payload's `t` is not a byte.
    #[error("Field 't' must be a valid BSON type, got: {0}")]
    InvalidValueTypeField(i32),
    /// `v` of an insert payload shorter than its user key UUID.
    #[error("failed to create userKeyId buffer")]
    ShortValue,
}

/// What can go wrong in explicit QE encryption's options and range
/// expressions: libmongocrypt's words. Field names and operators may be
/// named; values never are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExplicitError {
    /// A contention factor with Unindexed.
    #[error("cannot set contention factor with no index type")]
    ContentionWithoutIndex,
    /// A query type with Unindexed.
    #[error("cannot set query type with no index type")]
    QueryTypeWithoutIndex,
    /// Range options with Unindexed.
    #[error("cannot set range opts with no index type")]
    RangeOptsWithoutIndex,
    /// Range options with Indexed.
    #[error("cannot set range opts with equality index type")]
    RangeOptsWithEquality,
    /// Indexed without contention factor.
    #[error("contention factor is required for indexed algorithm")]
    ContentionRequired,
    /// Range without contention factor.
    #[error("contention factor is required for range indexed algorithm")]
    RangeContentionRequired,
    /// Range without range options.
    #[error("range opts are required for range indexed algorithm")]
    RangeOptsRequired,
    /// A query type another algorithm's.
    #[error("query_type ({query_type}) must match index_type ({index_type})")]
    QueryTypeMismatch {
        /// The query type.
        query_type: &'static str,
        /// The algorithm's index type.
        index_type: &'static str,
    },
    /// A range query given a value instead of an `$and` expression.
    #[error(
        "invalid input BSON, expected 'v' to be document: a range query encrypts an expression"
    )]
    ExpressionRequired,
    /// An expression with another algorithm or query type than range.
    #[error("encrypting an expression needs the Range algorithm and the range query type")]
    ExpressionNeedsRangeQuery,
    /// The expression does not start with `$and`.
    #[error("error unable to find '$and'")]
    NoAnd,
    /// `$and` is not an array.
    #[error("expected '$and' to be array")]
    AndNotArray,
    /// A key after `$and`.
    #[error("unexpected extra key '{0}' after '$and'")]
    ExtraKey(String),
    /// An `$and` element that is not a document.
    #[error("expected document in '$and' array")]
    ElementNotDocument,
    /// An empty `$and` element.
    #[error("unexpected empty '$and' array document")]
    EmptyElement,
    /// An aggregate operand that is not an array.
    #[error("expected argument to be array")]
    OperandNotArray,
    /// A match operand that is not a document.
    #[error("expected argument to be document")]
    OperandNotDocument,
    /// An aggregate operand without exactly 2 elements.
    #[error("expected 2 elements in operand {operator}, got {got}")]
    OperandLength {
        /// The operator.
        operator: String,
        /// `0`, `1` or `> 2`.
        got: &'static str,
    },
    /// An aggregate operand whose first element is not a field path.
    #[error("expected UTF-8 as first element in {0}")]
    OperandFieldNotString(String),
    /// A match operand without exactly one operator.
    #[error("expected 1 elements in operand {field}, got {got}")]
    MatchOperandLength {
        /// The field.
        field: String,
        /// `0` or `> 1`.
        got: &'static str,
    },
    /// An operator other than `$gt`, `$gte`, `$lt`, `$lte`.
    #[error("unsupported operator: {0}")]
    UnsupportedOperator(String),
    /// An element that is neither form (csfle refuses what libmongocrypt
    /// would ignore: more than one key in an element).
    #[error("unexpected extra key in '$and' element for {0}")]
    ExtraElementKey(String),
    /// Two lower or two upper bounds.
    #[error("unexpected duplicate bound {0}")]
    DuplicateBound(&'static str),
    /// Bounds on different fields.
    #[error("unexpected field mismatch. Expected all fields to be {expected}, but got {got}")]
    FieldMismatch {
        /// The first field.
        expected: String,
        /// The other field.
        got: String,
    },
    /// More than two operators.
    #[error("expected 1 or 2 operators, got > 2: {0}")]
    TooManyOperators(&'static str),
    /// No bound at all.
    #[error("expected lower or upper bound to be set")]
    NoBound,
}
