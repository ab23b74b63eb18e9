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

use super::Error;
use super::aead::QeDataKey;
use super::payload::{
    self, PayloadError, QeKey, RangeFindEdges, RangeFindSpec, RangeInsertSpec, RangeOperator,
};
use super::random::QeRandom;
use bson::spec::BinarySubtype;
use bson::{RawBsonRef, RawDocument};

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

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{RawDocumentBuf, rawdoc};

    fn blob(doc: RawDocumentBuf) -> Vec<u8> {
        let mut out = vec![ENCRYPTION_PLACEHOLDER];
        out.extend_from_slice(doc.as_bytes());
        out
    }

    fn uuid_of(b: u8) -> bson::Binary {
        bson::Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![b; 16],
        }
    }

    #[test]
    fn parses_and_refuses() {
        let ok = blob(rawdoc! {
            "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": "plaintext-canary", "cm": 3i64,
        });
        let p = Placeholder::parse(&ok).unwrap();
        assert_eq!(p.kind, PlaceholderType::Insert);
        assert_eq!(p.algorithm, Fle2Algorithm::Equality);
        assert_eq!((p.index_key_id, p.user_key_id), ([1; 16], [2; 16]));
        assert_eq!((p.max_contention, p.sparsity), (3, 0));
        assert!(!format!("{p:?}").contains("plaintext-canary"));

        let missing = blob(rawdoc! { "t": 1, "a": 2, "ku": uuid_of(2), "v": "x", "cm": 0i64 });
        assert_eq!(
            Placeholder::parse(&missing).unwrap_err().to_string(),
            "Error parsing FLE2EncryptionPlaceholder: Missing field 'ki'"
        );
        let bad_t = blob(
            rawdoc! { "t": 5, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64 },
        );
        assert_eq!(
            Placeholder::parse(&bad_t).unwrap_err(),
            Error::Payload(PayloadError::InvalidPlaceholderType(5))
        );
        let negative = blob(
            rawdoc! { "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": -1i64 },
        );
        assert_eq!(
            Placeholder::parse(&negative).unwrap_err(),
            Error::Payload(PayloadError::ContentionNegative(-1))
        );
        let extra = blob(
            rawdoc! { "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64, "zz": 1 },
        );
        assert!(matches!(
            Placeholder::parse(&extra).unwrap_err(),
            Error::Payload(PayloadError::UnknownField { .. })
        ));
        let twice = blob(
            rawdoc! { "t": 1, "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64 },
        );
        assert!(matches!(
            Placeholder::parse(&twice).unwrap_err(),
            Error::Payload(PayloadError::DuplicateField { field: "t", .. })
        ));
        let short_key = blob(rawdoc! {
            "t": 1, "a": 2,
            "ki": bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![1; 15] },
            "ku": uuid_of(2), "v": 1, "cm": 0i64,
        });
        assert!(Placeholder::parse(&short_key).is_err());
        for len in 0..ok.len() {
            let _ = Placeholder::parse(&ok[..len]);
        }
        assert!(Placeholder::parse(&[]).is_err());
    }

    #[test]
    fn text_search_and_missing_keys_are_refused() {
        let text = blob(
            rawdoc! { "t": 1, "a": 4, "ki": uuid_of(1), "ku": uuid_of(1), "v": "x", "cm": 0i64 },
        );
        let p = Placeholder::parse(&text).unwrap();
        let mut rng = QeRandom::fixed(Vec::new());
        assert_eq!(
            p.encrypt(|_| None, &mut rng).unwrap_err(),
            Error::Payload(PayloadError::TextSearchUnsupported)
        );
        let eq = blob(
            rawdoc! { "t": 2, "a": 2, "ki": uuid_of(1), "ku": uuid_of(1), "v": "x", "cm": 0i64 },
        );
        let p = Placeholder::parse(&eq).unwrap();
        assert!(matches!(
            p.encrypt(|_| None, &mut rng).unwrap_err(),
            Error::Payload(PayloadError::KeyNotFound { role: "index", .. })
        ));
    }
}
