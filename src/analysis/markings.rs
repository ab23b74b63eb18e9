//! Markings: the placeholders query analysis puts where a value must be
//! encrypted, and their replacement by ciphertexts.

use super::context::{Ctx, Error, Pass};
use crate::ciphertext;
use crate::crypto::Algorithm;
use crate::crypto::KeyLookup;
use crate::key::KeyId;
use crate::key::KeyRef;
use crate::nesting;
use crate::schema::{EncryptKey, EncryptSpec};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Binary, Bson, Document};

/// Whether `b` is a marking (subtype 6, blob subtype 0).
pub(crate) fn is_marking(b: &Binary) -> bool {
    b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&0)
}

/// First byte of a Queryable Encryption placeholder (`qe::placeholder`'s
/// `ENCRYPTION_PLACEHOLDER`, named here without the feature).
const QE_PLACEHOLDER: u8 = 3;

/// Refuses a command that already holds a marking or a Queryable
/// Encryption placeholder (only those made by analysis may be turned into
/// ciphertexts or payloads) or that nests deeper than
/// [`nesting::MAX_NESTING`]: one bounded walk, without recursion.
pub(crate) fn refuse_input_markings(command: &Document) -> Result<(), Error> {
    for v in command.values() {
        nesting::visit(v, &mut |v| match v {
            Bson::Binary(b) if is_marking(b) => Err(Error::MarkingInInput),
            Bson::Binary(b)
                if b.subtype == BinarySubtype::Encrypted
                    && b.bytes.first() == Some(&QE_PLACEHOLDER) =>
            {
                Err(Error::PlaceholderInInput)
            }
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// Scalar types deterministic encryption refuses (libmongocrypt's rules;
/// documents and arrays get mongocryptd's "Cannot encrypt element of type").
fn deterministic_refuses(ty: ElementType) -> bool {
    use ElementType::*;
    matches!(ty, Double | Decimal128 | Boolean | JavaScriptCodeWithScope)
}

/// A marking for `value` in field `path`. `root` is the whole document
/// being written, against which a JSON-pointer `keyId` is resolved (`None`
/// where there is no whole document: a query, an update operator).
///
/// Verifying a bypassed command ([`Pass::VerifyBypassed`]), `value` is
/// instead checked to be the FLE1 ciphertext the schema asks for, before
/// the type rules below (which are about plaintext), and returned as it is.
pub(crate) fn mark(
    cx: &mut Ctx<'_, '_>,
    spec: &EncryptSpec,
    value: &Bson,
    path: &str,
    root: Option<&Document>,
) -> Result<Bson, Error> {
    if let Some((ns, what)) = &cx.no_markings {
        return Err(Error::ForeignEncrypted {
            ns: ns.to_string(),
            field: path.to_owned(),
            what: (*what).to_owned(),
        });
    }
    if cx.pass == Pass::VerifyBypassed {
        verify_ciphertext(spec, value, path)?;
        return Ok(value.clone());
    }
    let ty = value.element_type();
    let type_name = ciphertext::type_name(ty);
    if spec.algorithm == Algorithm::Deterministic && deterministic_refuses(ty) {
        return Err(Error::DeterministicType {
            path: path.to_owned(),
            ty: type_name,
        });
    }
    let cannot = |detail: String| Error::CannotEncryptType {
        path: path.to_owned(),
        ty: type_name,
        detail,
    };
    if !spec.bson_types.is_empty() && !spec.bson_types.contains(&ty) {
        let want: Vec<&str> = spec
            .bson_types
            .iter()
            .map(|t| ciphertext::type_name(*t))
            .collect();
        return Err(cannot(format!(
            ": the schema declares {}",
            want.join(" or ")
        )));
    }
    if let Bson::Binary(b) = value
        && b.subtype == BinarySubtype::Encrypted
    {
        return Err(cannot(": the value is already encrypted".into()));
    }
    let raw = crate::explicit::to_raw(value).map_err(|e| cannot(format!(": {e}")))?;
    ciphertext::check_encryptable(raw.as_raw_bson_ref(), spec.algorithm)
        .map_err(|e| cannot(format!(": {e}")))?;
    // Written in place (`RawDocumentBuf`), the value as the raw form just
    // checked: no intermediate `Document` or serializer.
    let mut m = bson::RawDocumentBuf::new();
    m.append(
        "a",
        if spec.algorithm == Algorithm::Deterministic {
            1
        } else {
            2
        },
    );
    match &spec.key {
        EncryptKey::Id(id) => {
            m.append("ki", bson::RawBson::Binary(id.to_binary()));
        }
        EncryptKey::AltNamePointer(pointer) => {
            let Some(root) = root else {
                return Err(Error::NonStaticKeyId(path.to_owned()));
            };
            let name = resolve_pointer(root, pointer).ok_or_else(|| Error::KeyPointer {
                path: path.to_owned(),
                pointer: pointer.clone(),
            })?;
            m.append("ka", name);
        }
    }
    m.append("v", raw);
    let mut bytes = Vec::with_capacity(1 + m.as_bytes().len());
    bytes.push(0u8);
    bytes.extend_from_slice(m.as_bytes());
    cx.made += 1;
    Ok(Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    }))
}

/// Refuses `value`, at `path` where `spec` encrypts, unless it is an FLE1
/// ciphertext of `spec`'s algorithm (subtype 6, first byte 1 for
/// deterministic, 2 for random): the check [`mark`] makes instead of a
/// marking in a bypassed command. Only the kind is read: the server
/// stores or compares the bytes, and decryption authenticates them.
fn verify_ciphertext(spec: &EncryptSpec, value: &Bson, path: &str) -> Result<(), Error> {
    let (kind, expected) = match spec.algorithm {
        Algorithm::Deterministic => (
            ciphertext::BlobSubtype::Deterministic,
            "an FLE1 deterministic ciphertext (binary subtype 6, first byte 1)",
        ),
        Algorithm::Random => (
            ciphertext::BlobSubtype::Random,
            "an FLE1 random ciphertext (binary subtype 6, first byte 2)",
        ),
    };
    match value {
        Bson::Binary(b)
            if b.subtype == BinarySubtype::Encrypted && b.bytes.first() == Some(&(kind as u8)) =>
        {
            Ok(())
        }
        other => Err(Error::plaintext_under_bypass(path, other, expected)),
    }
}

/// How many markings `command` holds (checked against how many analysis
/// made: a marking dropped on the way means its plaintext is sent).
pub(crate) fn count_markings(command: &Document) -> Result<usize, Error> {
    let mut n = 0;
    for v in command.values() {
        nesting::visit(v, &mut |v| {
            if let Bson::Binary(b) = v
                && is_marking(b)
            {
                n += 1;
            }
            Ok::<(), Error>(())
        })?;
    }
    Ok(n)
}

/// `message` with every alternate name of `keys` replaced: in markings,
/// alternate names only come from documents (a `keyId` JSON pointer), so
/// they are values of the application's data and never echoed. `None`
/// when the message names none of them.
pub(crate) fn redact_document_alt_names(message: &str, keys: &[KeyRef]) -> Option<String> {
    let mut names: Vec<&str> = keys
        .iter()
        .filter_map(|k| match k {
            KeyRef::AltName(n) if !n.is_empty() => Some(n.as_str()),
            _ => None,
        })
        .collect();
    // Longest first, so that a name containing another is replaced whole.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    if !names.iter().any(|n| message.contains(n)) {
        return None;
    }
    let mut out = message.to_owned();
    for n in names {
        out = out.replace(n, "<name from the document>");
    }
    Some(out)
}

/// An error met encrypting a marking: one about a key named by a
/// document (an alternate name) is redacted.
pub(crate) fn redact_key_error(key: &KeyRef, e: crate::explicit::Error) -> Error {
    match key {
        KeyRef::AltName(_) => {
            let message = e.to_string();
            match redact_document_alt_names(&message, std::slice::from_ref(key)) {
                Some(reason) => Error::KeyFromDocument { reason },
                None => Error::Encrypt(e),
            }
        }
        KeyRef::Id(_) => Error::Encrypt(e),
    }
}

/// Resolves a JSON pointer (`/a/b`, RFC 6901 escapes) to a string field of `root`.
pub(crate) fn resolve_pointer<'d>(root: &'d Document, pointer: &str) -> Option<&'d str> {
    let mut parts = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"));
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_document()?.get(&p)?;
    }
    cur.as_str()
}

/// A marking decoded.
struct Marking {
    algorithm: Algorithm,
    key: KeyRef,
    value: Bson,
}

/// Reads a marking: `{a, ki | ka, v}` after the blob subtype byte, every
/// element read once in place (no intermediate `Document`), any other
/// field, a repeated one or malformed BSON refused.
fn decode(bytes: &[u8]) -> Result<Marking, Error> {
    use bson::{RawBsonRef, RawDocument};
    let bad = |m: &str| Error::MalformedMarking(m.to_owned());
    let body = bytes.get(1..).ok_or_else(|| bad("empty"))?;
    let doc = RawDocument::from_bytes(body).map_err(|_| bad("not a BSON document"))?;
    let mut algorithm = None;
    let mut key = None;
    let mut value = None;
    for element in doc {
        let (name, v) = element.map_err(|_| bad("not a BSON document"))?;
        let repeated = match (name, v) {
            ("a", RawBsonRef::Int32(a)) => algorithm
                .replace(match a {
                    1 => Algorithm::Deterministic,
                    2 => Algorithm::Random,
                    _ => return Err(bad("'a' must be 1 or 2")),
                })
                .is_some(),
            ("a", _) => return Err(bad("'a' must be 1 or 2")),
            ("ki", RawBsonRef::Binary(b)) => {
                let id = KeyId::from_raw_binary(b).ok_or_else(|| bad("'ki' must be a UUID"))?;
                key.replace(KeyRef::Id(id)).is_some()
            }
            ("ka", RawBsonRef::String(s)) => key.replace(KeyRef::AltName(s.to_owned())).is_some(),
            ("ki" | "ka", _) => return Err(bad("exactly one of 'ki' and 'ka'")),
            ("v", v) => value
                .replace(Bson::try_from(v).map_err(|_| bad("'v' is not a BSON value"))?)
                .is_some(),
            _ => return Err(bad("unknown field")),
        };
        if repeated {
            return Err(bad(if name == "ki" || name == "ka" {
                "exactly one of 'ki' and 'ka'"
            } else {
                "a repeated field"
            }));
        }
    }
    Ok(Marking {
        algorithm: algorithm.ok_or_else(|| bad("'a' must be 1 or 2"))?,
        key: key.ok_or_else(|| bad("exactly one of 'ki' and 'ka'"))?,
        value: value.ok_or_else(|| bad("missing 'v'"))?,
    })
}

/// The markings of a command, each decoded once, in the order
/// [`nesting::map`] meets them (document order, parents first; a marking
/// has no children): what [`marking_keys`] and [`encrypt_markings`] need,
/// read in one pass, so that a caller doing both decodes nothing twice.
pub(crate) struct Markings(Vec<Marking>);

impl Markings {
    /// Collects the markings of `command`, after measuring its depth
    /// without recursion (the replacement recurses, bounded, and an
    /// arbitrarily deep input must fail before it does).
    pub(crate) fn collect(command: &Document) -> Result<Self, Error> {
        nesting::check(command)?;
        let mut markings = Vec::new();
        for v in command.values() {
            nesting::visit(v, &mut |v| {
                if let Bson::Binary(b) = v
                    && is_marking(b)
                {
                    markings.push(decode(&b.bytes)?);
                }
                Ok::<(), Error>(())
            })?;
        }
        Ok(Markings(markings))
    }

    /// The keys the markings need, each once, for one key-vault query.
    pub(crate) fn keys(&self) -> Vec<KeyRef> {
        let mut keys: Vec<KeyRef> = Vec::new();
        for m in &self.0 {
            if !keys.contains(&m.key) {
                keys.push(m.key.clone());
            }
        }
        keys
    }

    /// `command` (the one they were collected from) with every marking
    /// replaced by its ciphertext, encrypted together (their HMACs in
    /// lanes) and put in place in the order collected.
    pub(crate) fn encrypt(
        &self,
        command: &Document,
        keys: &dyn KeyLookup,
    ) -> Result<Document, Error> {
        let encrypter = crate::explicit::ExplicitEncrypter::new(keys);
        let jobs: Vec<(&Bson, &KeyRef, crate::crypto::Algorithm)> = self
            .0
            .iter()
            .map(|m| (&m.value, &m.key, m.algorithm))
            .collect();
        let mut ciphertexts = encrypter
            .encrypt_many(&jobs)
            .into_iter()
            .zip(&self.0)
            .map(|(r, m)| r.map_err(|e| redact_key_error(&m.key, e)));
        let mut out = Document::new();
        for (k, v) in command {
            let v = nesting::map(v, &mut |v| match v {
                Bson::Binary(b) if is_marking(b) => match ciphertexts.next() {
                    Some(c) => Ok(Some(Bson::Binary(c?))),
                    None => Err(Error::Malformed(
                        "a marking appeared between two passes".into(),
                    )),
                },
                _ => Ok::<_, Error>(None),
            })?;
            out.insert(k.clone(), v);
        }
        if ciphertexts.next().is_some() {
            return Err(Error::Malformed(
                "a marking disappeared between two passes".into(),
            ));
        }
        Ok(out)
    }
}

/// The keys the markings in `command` need, each once, for one key-vault query.
pub fn marking_keys(command: &Document) -> Result<Vec<KeyRef>, Error> {
    Ok(Markings::collect(command)?.keys())
}

/// Replaces every marking in `command` with its ciphertext. The markings
/// are collected first and encrypted together (their HMACs in lanes),
/// then put in place in the same order.
pub fn encrypt_markings(command: &Document, keys: &dyn KeyLookup) -> Result<Document, Error> {
    Markings::collect(command)?.encrypt(command, keys)
}

#[cfg(test)]
#[path = "markings_tests.rs"]
mod tests;
