//! What every file of the Queryable Encryption walkers shares: the
//! collection as they see it (its `encryptedFields`, and its encrypted
//! paths as a [`Shape`] for the checks shared with FLE1), what a path of
//! its documents is, and the placeholders.
//!
//! The shared checks (sorts, projections, expressions, validators, array
//! filters) answer "is this path plain?" through a [`Shape`]; a QE
//! collection gets one from an FLE1 schema built from its paths alone
//! ([`paths_schema`]), so that one implementation, with its handling of
//! numeric and `$` segments below encrypted documents, serves both. That
//! schema only classifies paths: nothing is ever encrypted with it.

use crate::analysis::context::{Ctx, Error, Namespace, Pass};
use crate::analysis::shape::Shape;
use crate::ciphertext::type_name;
use crate::nesting;
use crate::qe::encrypted_fields::{
    EncryptedField, EncryptedFields, EncryptedFieldsError, FieldQueries, RangeIndex,
};
use crate::qe::payload::{FIND_EQUALITY_V2, FIND_RANGE_V2, INSERT_UPDATE_V2};
use crate::qe::placeholder::{
    ENCRYPTION_PLACEHOLDER, PlaceholderParams, PlaceholderRequest, RangeIndexSpec,
    default_range_bound, write_placeholder,
};
use crate::qe::range::DEFAULT_SPARSITY;
use crate::qe::values::UNINDEXED_V2;
use crate::schema::{EncryptionSchema, FieldInfo, SchemaSource};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Document, doc};

/// The field the server keeps in every document of a QE collection (the
/// tags of its indexed values). The application may not write, remove or
/// query it.
pub(crate) const SAFE_CONTENT: &str = "__safeContent__";

/// The collection a QE command runs on, as its walkers see it.
pub(crate) struct View<'v> {
    /// The collection.
    pub(crate) ns: &'v Namespace,
    /// Its `encryptedFields`.
    pub(crate) fields: &'v EncryptedFields,
    /// Its encrypted paths, for the checks shared with FLE1.
    pub(crate) shape: Shape<'v>,
    /// Set by a pipeline stage after which the documents no longer hold
    /// the collection's fields (`$count`): a predicate on an encrypted
    /// path is refused from then on rather than encrypted for a field that
    /// is not there.
    pub(crate) reshaped_by: Option<&'static str>,
}

impl<'v> View<'v> {
    /// The view of `ns`, whose `encryptedFields` are `fields` and whose
    /// paths `schema` ([`paths_schema`]) models.
    pub(crate) fn new(
        ns: &'v Namespace,
        fields: &'v EncryptedFields,
        schema: &'v EncryptionSchema,
    ) -> Self {
        View {
            ns,
            fields,
            shape: Shape::of(ns.clone(), Some(schema)),
            reshaped_by: None,
        }
    }

    /// Whether the collection has encrypted fields.
    pub(crate) fn encrypted(&self) -> bool {
        self.shape.encrypted()
    }

    /// What `path` is in the collection's documents. Refuses
    /// `__safeContent__` (and below), a path the shared checks refuse (a
    /// numeric or `$` segment below a document holding encrypted fields),
    /// and after [`View::reshaped_by`] any path that is not plain.
    pub(crate) fn field(&self, path: &str) -> Result<FieldInfo<'v>, Error> {
        if path.split('.').next() == Some(SAFE_CONTENT) {
            return Err(Error::SafeContent(path.to_owned()));
        }
        let info = self.shape.field(path)?;
        if let Some(stage) = self.reshaped_by
            && !matches!(info, FieldInfo::Plain)
        {
            return Err(Error::ForeignEncrypted {
                ns: self.ns.to_string(),
                field: path.to_owned(),
                what: format!(
                    "after {stage} the documents no longer hold the fields of '{}'",
                    self.ns
                ),
            });
        }
        Ok(info)
    }

    /// The encrypted field at exactly `path` (one [`View::field`] answered
    /// `Encrypted` for).
    pub(crate) fn encrypted_field(&self, path: &str) -> Result<&'v EncryptedField, Error> {
        self.fields.field(path).ok_or_else(|| {
            Error::Malformed(format!(
                "internal: '{path}' is encrypted in the model of '{}' but not in its encryptedFields",
                self.ns
            ))
        })
    }

    /// The error for a field whose `encryptedFields` entry cannot be used.
    fn unusable(&self, source: EncryptedFieldsError) -> Error {
        Error::EncryptedFields {
            ns: self.ns.to_string(),
            source: Box::new(source),
        }
    }

    /// A placeholder for `field`, of what `request` asks for: the field's
    /// key as both keys (`ki`, `ku`), its contention and sparsity.
    /// Counted: each one made must be in the command sent.
    ///
    /// Verifying a bypassed command ([`Pass::VerifyBypassed`]), every value
    /// of `request` is instead checked to be the payload the application
    /// must have made for it ([`verify_payloads`]); nothing is made or
    /// counted, and what is returned (the value, or null for a range
    /// stub, which has none) is not sent.
    pub(crate) fn placeholder(
        &self,
        cx: &mut Ctx<'_, '_>,
        field: &EncryptedField,
        request: PlaceholderRequest<'_>,
    ) -> Result<Bson, Error> {
        if let Some((ns, what)) = &cx.no_markings {
            return Err(Error::ForeignEncrypted {
                ns: ns.to_string(),
                field: field.path().to_owned(),
                what: (*what).to_owned(),
            });
        }
        if cx.pass == Pass::VerifyBypassed {
            return verify_payloads(field.path(), &request);
        }
        let key = field.key_id().ok_or_else(|| {
            self.unusable(EncryptedFieldsError::KeyNotResolved {
                field: field.path().to_owned(),
            })
        })?;
        let (max_contention, sparsity) = match field.queries() {
            FieldQueries::Unindexed => (0, 0),
            FieldQueries::Equality { contention } => (*contention, 0),
            FieldQueries::Range(range) => (
                range.contention(),
                range.options().sparsity.unwrap_or(DEFAULT_SPARSITY),
            ),
            FieldQueries::Unsupported(query_type) => {
                return Err(self.unusable(EncryptedFieldsError::Unsupported {
                    field: field.path().to_owned(),
                    query_type: *query_type,
                }));
            }
        };
        let params = PlaceholderParams {
            index_key_id: key,
            user_key_id: key,
            max_contention,
            sparsity,
        };
        let bytes = write_placeholder(&request, &params).map_err(|source| Error::Placeholder {
            path: field.path().to_owned(),
            source: Box::new(source),
        })?;
        cx.placeholders += 1;
        Ok(Bson::Binary(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        }))
    }

    /// The bounds and options of a range field's index, the bounds'
    /// defaults filled as mongocryptd writes them.
    pub(crate) fn range_index(
        &self,
        field: &EncryptedField,
        range: &RangeIndex,
    ) -> Result<RangeBounds, Error> {
        let options = range.options();
        let ty = field.bson_type();
        let bound = |given: &Option<Bson>, low: bool| {
            given
                .clone()
                .or_else(|| default_range_bound(ty, low))
                .ok_or_else(|| {
                    Error::Malformed(format!(
                        "the range index of '{}' has no {} and its type has no default",
                        field.path(),
                        if low { "min" } else { "max" }
                    ))
                })
        };
        Ok(RangeBounds {
            min: bound(&options.min, true)?,
            max: bound(&options.max, false)?,
            precision: options.precision,
            trim_factor: options.trim_factor,
        })
    }
}

/// A range index's bounds and options, owned ([`View::range_index`]).
pub(crate) struct RangeBounds {
    min: Bson,
    max: Bson,
    precision: Option<i32>,
    trim_factor: Option<i32>,
}

impl RangeBounds {
    /// As a placeholder carries them.
    pub(crate) fn spec(&self) -> RangeIndexSpec<'_> {
        RangeIndexSpec {
            min: &self.min,
            max: &self.max,
            precision: self.precision,
            trim_factor: self.trim_factor,
        }
    }
}

/// What an application must send, under `bypass_query_analysis`, where
/// `request` would have a placeholder: the payload explicit encryption
/// makes for it, by its first byte, and how an error names it.
fn expected_payload(request: &PlaceholderRequest<'_>) -> (u8, &'static str) {
    match request {
        PlaceholderRequest::UnindexedInsert(_) => (
            UNINDEXED_V2,
            "an unindexed Queryable Encryption value, FLE2UnindexedEncryptedValueV2 (binary subtype 6, first byte 16)",
        ),
        PlaceholderRequest::EqualityInsert(_) | PlaceholderRequest::RangeInsert { .. } => (
            INSERT_UPDATE_V2,
            "a Queryable Encryption insert payload, FLE2InsertUpdatePayloadV2 (binary subtype 6, first byte 11)",
        ),
        PlaceholderRequest::EqualityFind(_) => (
            FIND_EQUALITY_V2,
            "a Queryable Encryption equality find payload, FLE2FindEqualityPayloadV2 (binary subtype 6, first byte 12)",
        ),
        PlaceholderRequest::RangeFind { .. } | PlaceholderRequest::RangeStub { .. } => (
            FIND_RANGE_V2,
            "a Queryable Encryption range find payload, FLE2FindRangePayloadV2 (binary subtype 6, first byte 13)",
        ),
    }
}

/// The check [`View::placeholder`] makes instead of a placeholder in a
/// bypassed command: every value `request` carries (a range predicate's
/// bounds both) must be the payload [`expected_payload`] names, of the
/// kind of `path`'s index and of a write or a query as the walker found
/// it; a plaintext, a placeholder, an FLE1 ciphertext or a payload of
/// another kind is refused, naming `path`. Only the kind is read: the
/// server parses the payload and refuses a malformed one. Returns the
/// value (null for a range stub, which carries none).
fn verify_payloads(path: &str, request: &PlaceholderRequest<'_>) -> Result<Bson, Error> {
    let (kind, expected) = expected_payload(request);
    let values: [Option<&Bson>; 2] = match request {
        PlaceholderRequest::UnindexedInsert(v)
        | PlaceholderRequest::EqualityInsert(v)
        | PlaceholderRequest::EqualityFind(v) => [Some(*v), None],
        PlaceholderRequest::RangeInsert { value, .. } => [Some(*value), None],
        PlaceholderRequest::RangeFind { lower, upper, .. } => [
            lower.as_ref().map(|b| b.value),
            upper.as_ref().map(|b| b.value),
        ],
        PlaceholderRequest::RangeStub { .. } => [None, None],
    };
    for value in values.into_iter().flatten() {
        let of_kind = matches!(
            value,
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&kind)
        );
        if !of_kind {
            return Err(Error::plaintext_under_bypass(path, value, expected));
        }
    }
    Ok(values
        .into_iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or(Bson::Null))
}

/// Refuses a value to store in `field` that is not of its `bsonType`
/// (mongocryptd's "Cannot encrypt element of type"), is already
/// encrypted, or for a range index is a NaN or infinite double.
///
/// Verifying a bypassed command there is nothing to check here: the value
/// must be a payload, which [`View::placeholder`] checks, and these rules
/// are about the plaintext.
pub(crate) fn check_write_value(
    cx: &Ctx<'_, '_>,
    field: &EncryptedField,
    path: &str,
    value: &Bson,
) -> Result<(), Error> {
    if cx.pass == Pass::VerifyBypassed {
        return Ok(());
    }
    let ty = value.element_type();
    let cannot = |detail: String| Error::CannotEncryptType {
        path: path.to_owned(),
        ty: type_name(ty),
        detail,
    };
    if let Bson::Binary(b) = value
        && b.subtype == BinarySubtype::Encrypted
    {
        return Err(cannot(": the value is already encrypted".into()));
    }
    if ty != field.bson_type() {
        return Err(cannot(format!(
            ": the field's bsonType is {}",
            type_name(field.bson_type())
        )));
    }
    if let (FieldQueries::Range(_), Bson::Double(d)) = (field.queries(), value)
        && !d.is_finite()
    {
        return Err(cannot(
            ": a range index holds no NaN or infinite double".into(),
        ));
    }
    Ok(())
}

/// Refuses a value `field` is compared with that cannot be: null (the
/// FLE1 wording), a regular expression (an operator, not a value), an
/// encrypted binary, another type than the field's `bsonType`, a NaN or
/// infinite double bound.
///
/// Verifying a bypassed command there is nothing to check here: the value
/// must be a find payload, which [`View::placeholder`] checks, and these
/// rules are about the plaintext.
pub(crate) fn check_query_value(
    cx: &Ctx<'_, '_>,
    field: &EncryptedField,
    path: &str,
    value: &Bson,
) -> Result<(), Error> {
    if cx.pass == Pass::VerifyBypassed {
        return Ok(());
    }
    match value {
        Bson::Null => return Err(Error::NullEquality(path.to_owned())),
        Bson::RegularExpression(_) => {
            return Err(Error::InvalidOperator {
                path: path.to_owned(),
                op: "$regex".into(),
            });
        }
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            return Err(Error::CannotEncryptType {
                path: path.to_owned(),
                ty: type_name(ElementType::Binary),
                detail: ": the value is already encrypted".into(),
            });
        }
        _ => {}
    }
    if value.element_type() != field.bson_type() {
        return Err(Error::QueryType {
            path: path.to_owned(),
            field_type: type_name(field.bson_type()),
            value_type: type_name(value.element_type()),
        });
    }
    if let Bson::Double(d) = value
        && !d.is_finite()
    {
        return Err(Error::InvalidOperator {
            path: path.to_owned(),
            op: "a comparison with NaN or an infinite double".into(),
        });
    }
    Ok(())
}

/// An FLE1 schema with the paths of `fields` encrypted (randomly, with a
/// key of zeros): the model of the collection's encrypted paths the
/// shared checks classify paths with. Never used to encrypt.
pub(crate) fn paths_schema(fields: &EncryptedFields) -> Result<EncryptionSchema, Error> {
    let paths: Vec<Vec<&str>> = fields
        .fields()
        .iter()
        .map(|f| f.path().split('.').collect())
        .collect();
    let schema = doc! {"bsonType": "object", "properties": properties(&paths)};
    EncryptionSchema::parse(&schema, SchemaSource::Local).map_err(|e| {
        Error::Malformed(format!(
            "the encrypted paths of the collection's encryptedFields cannot be modelled: {e}"
        ))
    })
}

/// The `properties` of the node holding `paths` (each relative to it,
/// none empty). A segment that ends one path is encrypted whole, even if
/// another path goes below it (the parser of `encryptedFields` refuses
/// such overlaps; here the wider answer, "inside an encrypted field",
/// refuses more). Recursion bounded by the paths' 100 segments.
fn properties(paths: &[Vec<&str>]) -> Document {
    let mut names: Vec<&str> = Vec::new();
    for p in paths {
        if let Some(first) = p.first()
            && !names.contains(first)
        {
            names.push(first);
        }
    }
    let key = Bson::Array(vec![Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![0; 16],
    })]);
    let mut out = Document::new();
    for name in names {
        let below: Vec<Vec<&str>> = paths
            .iter()
            .filter(|p| p.first() == Some(&name))
            .map(|p| p[1..].to_vec())
            .collect();
        let node = if below.iter().any(Vec::is_empty) {
            doc! {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}
        } else {
            doc! {"bsonType": "object", "properties": properties(&below)}
        };
        out.insert(name, node);
    }
    out
}

/// Whether `b` is a QE placeholder (subtype 6, first byte 3).
pub(crate) fn is_placeholder(b: &Binary) -> bool {
    b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&ENCRYPTION_PLACEHOLDER)
}

/// How many QE placeholders `command` holds (checked against how many
/// were made: one dropped on the way means its plaintext is sent).
pub(crate) fn count_placeholders(command: &Document) -> Result<usize, Error> {
    let mut n = 0;
    for v in command.values() {
        nesting::visit(v, &mut |v| {
            if let Bson::Binary(b) = v
                && is_placeholder(b)
            {
                n += 1;
            }
            Ok::<(), Error>(())
        })?;
    }
    Ok(n)
}

/// The document `key` of `cmd`, if present.
pub(crate) fn get_doc<'d>(cmd: &'d Document, key: &str) -> Result<Option<&'d Document>, Error> {
    match cmd.get(key) {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(_) => Err(Error::Malformed(format!("'{key}' must be a document"))),
    }
}
