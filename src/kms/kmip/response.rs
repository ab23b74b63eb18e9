//! KMIP replies: framing them off the connection, checking the result, and
//! reading what each operation answers, as kms-message does.

use super::codes::{IV_LEN, Operation, ResultReason, ResultStatus};
use super::ttlv::{self, HEADER_LEN, Item, ItemType, Tag};
use super::{Error, SecretBytes};
use std::fmt;
use zeroize::Zeroizing;

/// The largest reply accepted, header included. kms-message allows 16 MiB
/// (and libmongocrypt fixed an overflow in its KMIP reply parser in
/// 1.17.3); a reply to the operations csfle sends is under 1 KiB, and a
/// server adding attributes stays far below this.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

/// How much of a server's Result Message an error keeps.
pub(crate) const MAX_MESSAGE_CHARS: usize = 256;

/// The longest Unique Identifier csfle stores in a key document. KMIP sets
/// no bound; servers use short ids (PyKMIP a decimal number, others a UUID
/// or a hash in hex).
pub(crate) const MAX_UNIQUE_IDENTIFIER_LEN: usize = 1024;

/// Collects one reply from the connection: the first 8 bytes (a TTLV
/// header) give the length of the rest.
///
/// The buffer is sized from the header once (at most
/// [`MAX_RESPONSE_LEN`]) and never reallocates, so the key material a Get
/// or Decrypt reply carries is never copied behind the zeroizing buffer.
#[derive(Default)]
pub struct ResponseFramer {
    buf: Zeroizing<Vec<u8>>,
    /// The reply's total length, once the header is in.
    total: Option<usize>,
}

impl fmt::Debug for ResponseFramer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFramer")
            .field("received", &self.buf.len())
            .field("total", &self.total)
            .finish()
    }
}

impl ResponseFramer {
    /// A framer waiting for a reply's header.
    pub fn new() -> ResponseFramer {
        ResponseFramer::default()
    }

    /// How many more bytes the reply needs: the rest of the header, then
    /// the rest of the reply; 0 when it is complete.
    pub fn wants_bytes(&self) -> usize {
        let total = self.total.unwrap_or(HEADER_LEN);
        total.saturating_sub(self.buf.len())
    }

    /// Whether the whole reply is in.
    pub fn is_complete(&self) -> bool {
        self.total.is_some() && self.wants_bytes() == 0
    }

    /// Adds bytes read from the connection. Refuses a header announcing more
    /// than [`MAX_RESPONSE_LEN`] bytes and bytes past the announced end;
    /// after an error the framer keeps refusing.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let mut bytes = bytes;
        if self.total.is_none() {
            let take = (HEADER_LEN - self.buf.len().min(HEADER_LEN)).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            self.buf.extend_from_slice(head);
            bytes = rest;
            let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
                // The header is still incomplete, and all of `bytes` went in.
                return Ok(());
            };
            let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let total = u64::from(length) + HEADER_LEN as u64;
            let Some(total) = usize::try_from(total)
                .ok()
                .filter(|&t| t <= MAX_RESPONSE_LEN)
            else {
                return Err(Error::ResponseTooLarge {
                    length: total,
                    max: MAX_RESPONSE_LEN,
                });
            };
            // The only reallocation: the buffer holds just the header now.
            self.buf.reserve_exact(total - HEADER_LEN);
            self.total = Some(total);
        }
        if bytes.len() > self.wants_bytes() {
            return Err(Error::ResponseOverrun);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The complete reply; the framer is then ready for the next one.
    pub fn take_message(&mut self) -> Result<Zeroizing<Vec<u8>>, Error> {
        if !self.is_complete() {
            return Err(Error::IncompleteResponse {
                missing: self.wants_bytes(),
            });
        }
        self.total = None;
        Ok(std::mem::take(&mut self.buf))
    }
}

/// What an Encrypt reply carries: the IV the server chose and the
/// ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    iv: [u8; IV_LEN],
    data: Vec<u8>,
}

impl Encrypted {
    /// The IV the server chose.
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// The ciphertext.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The key document's `keyMaterial`: IV ‖ ciphertext, as libmongocrypt
    /// stores it.
    pub fn key_material(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IV_LEN + self.data.len());
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&self.data);
        out
    }
}

/// The Structure tagged `tag` among `items`.
fn structure<'i, 'a>(items: &'i [Item<'a>], tag: Tag) -> Result<&'i [Item<'a>], Error> {
    ttlv::find(items, tag, ItemType::Structure)
        .and_then(Item::children)
        .ok_or(Error::Missing(tag))
}

/// The Byte String tagged `tag` among `items`.
fn byte_string<'a>(items: &[Item<'a>], tag: Tag) -> Result<&'a [u8], Error> {
    ttlv::find(items, tag, ItemType::ByteString)
        .and_then(Item::byte_string)
        .ok_or(Error::Missing(tag))
}

/// The server's Result Message, shortened, with control characters
/// replaced so it cannot forge log lines.
fn short_message(bytes: &[u8]) -> String {
    short_text(&String::from_utf8_lossy(bytes))
}

/// At most [`MAX_MESSAGE_CHARS`] characters of `text`, control characters
/// replaced: for text a server or the network chose (a Result Message, a
/// TLS alert's or an I/O error's wording), so it can neither forge log
/// lines nor grow an error without bound.
pub(super) fn short_text(text: &str) -> String {
    text.chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Checks the reply's batch item as kms-message does: `ResponseMessage` →
/// `BatchItem`, its Result Status must be Success; otherwise the error
/// carries the status, the Result Reason and the Result Message. Returns
/// the batch item's items.
fn successful_batch_item<'i, 'a>(message: &'i [Item<'a>]) -> Result<&'i [Item<'a>], Error> {
    let response = structure(message, Tag::RESPONSE_MESSAGE)?;
    let batch_item = structure(response, Tag::BATCH_ITEM)?;
    let status = ttlv::find(batch_item, Tag::RESULT_STATUS, ItemType::Enumeration)
        .and_then(Item::enumeration)
        .ok_or(Error::Missing(Tag::RESULT_STATUS))?;
    if status != 0 {
        let reason = ttlv::find(batch_item, Tag::RESULT_REASON, ItemType::Enumeration)
            .and_then(Item::enumeration)
            .map(ResultReason);
        let message = ttlv::find(batch_item, Tag::RESULT_MESSAGE, ItemType::TextString)
            .and_then(Item::text_string)
            .map(short_message)
            .unwrap_or_default();
        return Err(Error::Failed {
            status: ResultStatus(status),
            reason,
            message,
        });
    }
    Ok(batch_item)
}

/// The `ResponsePayload` of a successful reply.
fn payload<'i, 'a>(message: &'i [Item<'a>]) -> Result<&'i [Item<'a>], Error> {
    structure(successful_batch_item(message)?, Tag::RESPONSE_PAYLOAD)
}

/// Checks that a successful reply answers the request it is read for,
/// beyond what kms-message checks: its batch item's Operation is
/// `operation`; when the request named an object, the payload's Unique
/// Identifier names it; when `object_type` is given (Get, Create), the
/// payload's Object Type is that. A server (or anyone between it and
/// csfle) cannot pass off the answer to another request, or another
/// object's key, as this one's.
pub(crate) fn check_answers(
    reply: &[u8],
    operation: Operation,
    unique_identifier: Option<&str>,
    object_type: Option<u32>,
) -> Result<(), Error> {
    let message = ttlv::decode(reply)?;
    let batch_item = successful_batch_item(&message)?;
    let answered = ttlv::find(batch_item, Tag::OPERATION, ItemType::Enumeration)
        .and_then(Item::enumeration)
        .ok_or(Error::Missing(Tag::OPERATION))?;
    if answered != operation.code() {
        return Err(Error::WrongOperation {
            expected: operation,
            actual: answered,
        });
    }
    let payload = structure(batch_item, Tag::RESPONSE_PAYLOAD)?;
    if let Some(expected) = object_type {
        let actual = ttlv::find(payload, Tag::OBJECT_TYPE, ItemType::Enumeration)
            .and_then(Item::enumeration)
            .ok_or(Error::Missing(Tag::OBJECT_TYPE))?;
        if actual != expected {
            return Err(Error::WrongObjectType { expected, actual });
        }
    }
    if let Some(expected) = unique_identifier {
        let actual = ttlv::find(payload, Tag::UNIQUE_IDENTIFIER, ItemType::TextString)
            .and_then(Item::text_string)
            .ok_or(Error::Missing(Tag::UNIQUE_IDENTIFIER))?;
        if actual != expected.as_bytes() {
            return Err(Error::WrongUniqueIdentifier);
        }
    }
    Ok(())
}

/// The Unique Identifier a Register, Create or Activate reply names.
///
/// Refused beyond kms-message: an identifier that is empty, not UTF-8,
/// holds a NUL (libmongocrypt would cut it there and store another id) or
/// is longer than 1024 (`MAX_UNIQUE_IDENTIFIER_LEN`) bytes.
pub fn parse_unique_identifier(reply: &[u8]) -> Result<String, Error> {
    let message = ttlv::decode(reply)?;
    let payload = payload(&message)?;
    let bytes = ttlv::find(payload, Tag::UNIQUE_IDENTIFIER, ItemType::TextString)
        .and_then(Item::text_string)
        .ok_or(Error::Missing(Tag::UNIQUE_IDENTIFIER))?;
    if bytes.is_empty() {
        return Err(Error::InvalidUniqueIdentifier("empty"));
    }
    if bytes.len() > MAX_UNIQUE_IDENTIFIER_LEN {
        return Err(Error::InvalidUniqueIdentifier("longer than 1024 bytes"));
    }
    if bytes.contains(&0) {
        return Err(Error::InvalidUniqueIdentifier("contains a NUL byte"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidUniqueIdentifier("not UTF-8"))
}

/// The SecretData a Get reply carries: `ResponsePayload` → `SecretData` →
/// `KeyBlock` → `KeyValue` → `KeyMaterial`. Its length is not checked here
/// (libmongocrypt checks it when it uses the bytes as a local master key).
pub fn parse_secret_data(reply: &[u8]) -> Result<SecretBytes, Error> {
    let message = ttlv::decode(reply)?;
    let payload = payload(&message)?;
    let secret_data = structure(payload, Tag::SECRET_DATA)?;
    let key_block = structure(secret_data, Tag::KEY_BLOCK)?;
    let key_value = structure(key_block, Tag::KEY_VALUE)?;
    let material = byte_string(key_value, Tag::KEY_MATERIAL)?;
    Ok(SecretBytes::new(Zeroizing::new(material.to_vec())))
}

/// The ciphertext (`Data`) and the IV (`IVCounterNonce`, which must be 16
/// bytes) of an Encrypt reply.
pub fn parse_encrypt(reply: &[u8]) -> Result<Encrypted, Error> {
    let message = ttlv::decode(reply)?;
    let payload = payload(&message)?;
    let data = byte_string(payload, Tag::DATA)?;
    let iv = byte_string(payload, Tag::IV_COUNTER_NONCE)?;
    let iv = <[u8; IV_LEN]>::try_from(iv).map_err(|_| Error::IvLength { actual: iv.len() })?;
    Ok(Encrypted {
        iv,
        data: data.to_vec(),
    })
}

/// The plaintext (`Data`, the data key) of a Decrypt reply.
pub fn parse_decrypt(reply: &[u8]) -> Result<SecretBytes, Error> {
    let message = ttlv::decode(reply)?;
    let payload = payload(&message)?;
    let data = byte_string(payload, Tag::DATA)?;
    Ok(SecretBytes::new(Zeroizing::new(data.to_vec())))
}
