//! BSON values as FLE1 plaintexts, and the rules for which types each
//! algorithm accepts.

use super::{Error, Fle1Blob, HEADER_LEN, header};
use crate::crypto::{self, Algorithm, DataKey, IvMode};
use bson::spec::{BinarySubtype, ElementType};
use bson::{RawBsonRef, RawDocument};

/// Checks that `value` may be encrypted with `algorithm`, with libmongocrypt's rules:
///
/// * never: null, undefined, minKey, maxKey, and binary subtype 6;
/// * random only: double, decimal128, bool, document, array, code with scope;
/// * both: everything else.
pub(crate) fn check_encryptable(value: RawBsonRef<'_>, algorithm: Algorithm) -> Result<(), Error> {
    use ElementType::*;
    let ty = value.element_type();
    match ty {
        Null | Undefined | MinKey | MaxKey => return Err(Error::NeverEncryptable(ty)),
        _ if algorithm == Algorithm::Deterministic && !deterministic_allows(ty) => {
            return Err(Error::NotDeterministic(ty));
        }
        _ => {}
    }
    match value {
        RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            Err(Error::AlreadyEncrypted)
        }
        RawBsonRef::RegularExpression(re)
            if re.pattern.contains('\0') || re.options.contains('\0') =>
        {
            Err(Error::UnserializableValue(
                "regular expression contains a NUL byte".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Whether the FLE1 deterministic algorithm may encrypt values of `ty`
/// (libmongocrypt's rules, as encryption applies them: no
/// floating point, booleans, documents, arrays, code with scope, or
/// value-less types). Also what schemas and `#[derive(Encrypted)]` check.
pub const fn deterministic_allows(ty: ElementType) -> bool {
    !matches!(
        ty,
        ElementType::Double
            | ElementType::Decimal128
            | ElementType::Boolean
            | ElementType::EmbeddedDocument
            | ElementType::Array
            | ElementType::JavaScriptCodeWithScope
            | ElementType::Null
            | ElementType::Undefined
            | ElementType::MinKey
            | ElementType::MaxKey
    )
}

/// Serializes `value` into `scratch` (replacing its contents) and returns the
/// range holding the raw value bytes: no type byte, no field name.
pub(crate) fn value_to_plaintext(
    value: RawBsonRef<'_>,
    scratch: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    // Reuse the scratch allocation: an empty document, then `{"": value}`.
    scratch.clear();
    scratch.extend_from_slice(&[5, 0, 0, 0, 0]);
    let mut doc = bson::RawDocumentBuf::from_bytes(std::mem::take(scratch))
        .unwrap_or_else(|_| bson::RawDocumentBuf::new());
    doc.append_ref("", value);
    *scratch = doc.into_bytes();
    // [len:4][type:1][name "":1][value…][terminator:1]
    6..scratch.len() - 1
}

/// Parses `plaintext` as a value of type `ty`. Uses `scratch` as the backing
/// buffer; the value borrows from it. The whole plaintext must be exactly one
/// well-formed value (nested documents are validated recursively).
pub(crate) fn value_from_plaintext<'s>(
    ty: ElementType,
    plaintext: &[u8],
    scratch: &'s mut Vec<u8>,
) -> Result<RawBsonRef<'s>, Error> {
    let malformed = |reason: String| Error::MalformedPlaintext { ty, reason };
    let total = plaintext.len() + 7;
    let len = i32::try_from(total).map_err(|_| malformed("too large".into()))?;
    scratch.clear();
    scratch.reserve(total);
    scratch.extend_from_slice(&len.to_le_bytes());
    scratch.push(ty as u8);
    scratch.push(0);
    scratch.extend_from_slice(plaintext);
    scratch.push(0);
    let doc = RawDocument::from_bytes(&scratch[..]).map_err(|e| malformed(e.to_string()))?;
    let mut elements = doc.iter_elements();
    let value = match elements.next() {
        Some(Ok(el)) => el.value().map_err(|e| malformed(e.to_string()))?,
        Some(Err(e)) => return Err(malformed(e.to_string())),
        None => return Err(malformed("empty".into())),
    };
    if elements.next().is_some() {
        return Err(malformed("trailing bytes after value".into()));
    }
    validate_nested(value).map_err(malformed)?;
    Ok(value)
}

/// [`value_from_plaintext`]'s verdict on `plaintext` without building the
/// value: the common fixed-size and string types checked directly, the
/// others parsed (into `scratch`).
pub(crate) fn check_plaintext(
    ty: ElementType,
    plaintext: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), Error> {
    let mut fixed = |len: usize| {
        if plaintext.len() == len {
            Ok(())
        } else {
            value_from_plaintext(ty, plaintext, scratch).map(|_| ())
        }
    };
    match ty {
        ElementType::String | ElementType::JavaScriptCode | ElementType::Symbol => {
            // i32 length (of the bytes and the NUL), the UTF-8 bytes, NUL.
            if let Some((prefix, rest)) = plaintext.split_first_chunk::<4>()
                && let Some((0, text)) = rest.split_last()
                && i32::from_le_bytes(*prefix) as usize == rest.len()
                && std::str::from_utf8(text).is_ok()
            {
                return Ok(());
            }
            value_from_plaintext(ty, plaintext, scratch).map(|_| ())
        }
        ElementType::Int32 => fixed(4),
        ElementType::Int64
        | ElementType::DateTime
        | ElementType::Timestamp
        | ElementType::Double => fixed(8),
        ElementType::Decimal128 => fixed(16),
        ElementType::ObjectId => fixed(12),
        _ => value_from_plaintext(ty, plaintext, scratch).map(|_| ()),
    }
}

/// Walks nested documents and arrays so that a value handed out is well formed
/// all the way down.
fn validate_nested(value: RawBsonRef<'_>) -> Result<(), String> {
    validate_value(value, 0)
}

const MAX_DEPTH: usize = 256;

fn validate_value(value: RawBsonRef<'_>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    let items: Box<dyn Iterator<Item = bson::raw::Result<RawBsonRef<'_>>>> = match value {
        RawBsonRef::Document(d) => Box::new(d.iter().map(|r| r.map(|(_, v)| v))),
        RawBsonRef::Array(a) => Box::new(a.into_iter()),
        RawBsonRef::JavaScriptCodeWithScope(c) => {
            Box::new(c.scope.iter().map(|r| r.map(|(_, v)| v)))
        }
        _ => return Ok(()),
    };
    for item in items {
        validate_value(item.map_err(|e| e.to_string())?, depth + 1)?;
    }
    Ok(())
}

/// Encrypts one value with `key`, returning the FLE1 blob (the payload of a
/// subtype-6 binary). `scratch` is reused between calls to avoid allocation.
pub(crate) fn encrypt_value(
    key: &DataKey,
    algorithm: Algorithm,
    value: RawBsonRef<'_>,
    scratch: &mut Vec<u8>,
) -> Result<Vec<u8>, Error> {
    check_encryptable(value, algorithm)?;
    let range = value_to_plaintext(value, scratch);
    let plaintext = &scratch[range];
    let aad = header(algorithm.into(), key.id(), value.element_type());
    let mut out = Vec::with_capacity(HEADER_LEN + crypto::ciphertext_len(plaintext.len()));
    out.extend_from_slice(&aad);
    let mode = match algorithm {
        Algorithm::Deterministic => IvMode::Deterministic,
        Algorithm::Random => IvMode::Random,
    };
    crypto::seal(key, mode, &aad, plaintext, &mut out)?;
    Ok(out)
}

/// Encrypts many values, each with its own key and algorithm: each result
/// is exactly what [`encrypt_value`] returns for that value (the same
/// deterministic ciphertext), with the HMACs computed in lanes.
pub(crate) fn encrypt_values(
    jobs: &[(&DataKey, Algorithm, RawBsonRef<'_>)],
) -> Vec<Result<Vec<u8>, Error>> {
    let mut results: Vec<Result<Vec<u8>, Error>> = Vec::with_capacity(jobs.len());
    // The plaintexts, wiped when dropped.
    let mut plaintexts: Vec<zeroize::Zeroizing<Vec<u8>>> = Vec::with_capacity(jobs.len());
    let mut ranges = Vec::with_capacity(jobs.len());
    let mut headers = Vec::with_capacity(jobs.len());
    for (key, algorithm, value) in jobs {
        let mut scratch = zeroize::Zeroizing::new(Vec::new());
        match check_encryptable(*value, *algorithm) {
            Ok(()) => {
                ranges.push(value_to_plaintext(*value, &mut scratch));
                results.push(Ok(Vec::new()));
            }
            Err(e) => {
                ranges.push(0..0);
                results.push(Err(e));
            }
        }
        plaintexts.push(scratch);
        headers.push(header((*algorithm).into(), key.id(), value.element_type()));
    }
    let todo: Vec<usize> = (0..jobs.len()).filter(|&i| results[i].is_ok()).collect();
    let seal_jobs: Vec<crypto::SealJob<'_>> = todo
        .iter()
        .map(|&i| crypto::SealJob {
            key: jobs[i].0,
            mode: match jobs[i].1 {
                Algorithm::Deterministic => IvMode::Deterministic,
                Algorithm::Random => IvMode::Random,
            },
            aad: &headers[i],
            plaintext: &plaintexts[i][ranges[i].clone()],
        })
        .collect();
    for (&i, sealed) in todo.iter().zip(crypto::seal_many(&seal_jobs)) {
        results[i] = sealed.map_err(Error::from).map(|body| {
            let mut out = Vec::with_capacity(HEADER_LEN + body.len());
            out.extend_from_slice(&headers[i]);
            out.extend_from_slice(&body);
            out
        });
    }
    results
}

/// Checks the tags of many FLE1 payloads as stored (the 18-byte header,
/// then IV ‖ C ‖ T), each with the key of its header's key id, eight or
/// four at a time: appends to `results` what decrypting each would say of
/// its length and tag.
pub(crate) fn verify_payloads(jobs: &[(&DataKey, &[u8])], results: &mut Vec<Result<(), Error>>) {
    let framed: Vec<crypto::FramedJob<'_>> = jobs
        .iter()
        .map(|(key, payload)| crypto::FramedJob {
            key,
            payload,
            aad_len: HEADER_LEN,
        })
        .collect();
    let mut checked = Vec::with_capacity(jobs.len());
    crypto::verify_framed(&framed, &mut checked);
    results.extend(checked.into_iter().map(|r| r.map_err(Error::from)));
}

/// [`verify_payloads`] of one payload, with `sha2`'s HMAC.
pub(crate) fn verify_payload(key: &DataKey, payload: &[u8]) -> Result<(), Error> {
    Ok(crypto::verify_framed_one(&crypto::FramedJob {
        key,
        payload,
        aad_len: HEADER_LEN,
    })?)
}

/// [`decrypt_value`] of a blob whose tag [`verify_payloads`] accepted: the
/// decryption without checking the tag again.
pub(crate) fn decrypt_verified_value<'s>(
    key: &DataKey,
    blob: &Fle1Blob<'_>,
    plaintext: &mut Vec<u8>,
    scratch: &'s mut Vec<u8>,
) -> Result<RawBsonRef<'s>, Error> {
    plaintext.clear();
    crypto::open_verified(key, blob.ciphertext, plaintext)?;
    value_from_plaintext(blob.original_type, plaintext, scratch)
}

/// Decrypts a parsed blob with `key` (whose id must match the blob's; the
/// caller looks the key up by `blob.key_id`). The value borrows from `scratch`.
pub(crate) fn decrypt_value<'s>(
    key: &DataKey,
    blob: &Fle1Blob<'_>,
    plaintext: &mut Vec<u8>,
    scratch: &'s mut Vec<u8>,
) -> Result<RawBsonRef<'s>, Error> {
    plaintext.clear();
    crypto::open(key, &blob.aad(), blob.ciphertext, plaintext)?;
    // Null, undefined, minKey and maxKey have no value bytes, so their
    // (empty) plaintext was already refused by `open`.
    value_from_plaintext(blob.original_type, plaintext, scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A plaintext for `ty`: arbitrary bytes, or a well-formed string
    /// value around arbitrary text bytes (valid UTF-8 or not), or the
    /// type's fixed length.
    fn plaintext() -> impl Strategy<Value = (ElementType, Vec<u8>)> {
        let types = prop::sample::select(vec![
            ElementType::String,
            ElementType::JavaScriptCode,
            ElementType::Symbol,
            ElementType::Int32,
            ElementType::Int64,
            ElementType::DateTime,
            ElementType::Timestamp,
            ElementType::Double,
            ElementType::Decimal128,
            ElementType::ObjectId,
            ElementType::Boolean,
        ]);
        let bytes = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            (
                proptest::collection::vec(any::<u8>(), 0..30),
                -2i32..3,
                any::<bool>()
            )
                .prop_map(|(text, skew, nul)| {
                    let mut v = ((text.len() as i32) + 1 + skew).to_le_bytes().to_vec();
                    v.extend_from_slice(&text);
                    v.push(if nul { 0 } else { 1 });
                    v
                }),
            "[a-zé]{0,12}".prop_map(|s| {
                let mut v = ((s.len() as i32) + 1).to_le_bytes().to_vec();
                v.extend_from_slice(s.as_bytes());
                v.push(0);
                v
            }),
            prop::sample::select(vec![1usize, 4, 8, 12, 16])
                .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
        ];
        (types, bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The fast plaintext check accepts exactly what parsing the value
        /// accepts, with the same error.
        #[test]
        fn check_plaintext_agrees_with_value_from_plaintext((ty, bytes) in plaintext()) {
            let mut a = Vec::new();
            let mut b = Vec::new();
            let fast = check_plaintext(ty, &bytes, &mut a);
            let parsed = value_from_plaintext(ty, &bytes, &mut b).map(|_| ());
            prop_assert_eq!(fast, parsed);
        }
    }
}
