//! TTLV, KMIP's binary encoding (KMIP 1.4 §9.1): every item is a 3-byte
//! tag, a 1-byte type, a 4-byte big-endian length and a value padded with
//! zeros to a multiple of 8 bytes. A Structure's value is a sequence of
//! items.
//!
//! [`Writer`] produces the same bytes as libmongocrypt's kms-message writer.
//! [`decode`] reads a whole message into a tree of [`Item`]s that borrow the
//! input: every length is checked against what is left before anything is
//! read, nesting is capped at [`MAX_DEPTH`], and an item costs at least the
//! 8 bytes of its header, so a reply can never make the decoder allocate
//! more items than it has bytes for. Where kms-message's lazy reader only
//! looks at the items it searches, [`decode`] checks every item of the
//! message; see [`decode`] for what that refuses.

pub use super::codes::{ItemType, Tag};

use super::Error;
use std::fmt;
use zeroize::Zeroizing;

/// How deep Structures may nest. csfle's deepest item (the `KeyMaterial`
/// of a Get reply) is at depth 6; servers that add attributes stay well
/// within this.
pub const MAX_DEPTH: usize = 16;

/// The length of an item header: tag, type and length.
pub const HEADER_LEN: usize = 8;

/// `len` rounded up to a multiple of 8, or `None` past `usize::MAX`.
fn padded_len(len: usize) -> Option<usize> {
    len.checked_add(7).map(|n| n & !7)
}

/// Builds a TTLV message, byte for byte as kms-message's writer does.
///
/// The buffer is zeroized when dropped: requests carry key material
/// (Register's SecretData, Encrypt's data key). Give
/// [`Writer::with_capacity`] the message's size so the buffer never
/// reallocates, which would leave an unzeroized copy behind.
#[derive(Default)]
pub struct Writer {
    buf: Zeroizing<Vec<u8>>,
    /// A string or structure longer than a TTLV length can say.
    overflow: bool,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer may hold key material: only its size is shown.
        f.debug_struct("Writer")
            .field("len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// An empty writer whose buffer holds `capacity` bytes before growing.
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer {
            buf: Zeroizing::new(Vec::with_capacity(capacity)),
            overflow: false,
        }
    }

    fn header(&mut self, tag: Tag, item_type: ItemType, length: u32) {
        self.buf.extend_from_slice(&tag.value().to_be_bytes()[1..]);
        self.buf.push(item_type.byte());
        self.buf.extend_from_slice(&length.to_be_bytes());
    }

    fn pad(&mut self, len: usize) {
        let padding = (8 - len % 8) % 8;
        self.buf.extend_from_slice(&[0u8; 8][..padding]);
    }

    /// An Integer: the value, then 4 bytes of padding.
    pub fn integer(&mut self, tag: Tag, value: i32) {
        self.header(tag, ItemType::Integer, 4);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self.buf.extend_from_slice(&[0; 4]);
    }

    /// A Long Integer.
    pub fn long_integer(&mut self, tag: Tag, value: i64) {
        self.header(tag, ItemType::LongInteger, 8);
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// An Enumeration: the value, then 4 bytes of padding.
    pub fn enumeration(&mut self, tag: Tag, value: u32) {
        self.header(tag, ItemType::Enumeration, 4);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self.buf.extend_from_slice(&[0; 4]);
    }

    /// A Boolean: 0 or 1 in 8 bytes.
    pub fn boolean(&mut self, tag: Tag, value: bool) {
        self.header(tag, ItemType::Boolean, 8);
        self.buf.extend_from_slice(&u64::from(value).to_be_bytes());
    }

    /// A Text String, padded with zeros.
    pub fn text_string(&mut self, tag: Tag, value: &str) {
        self.bytes(tag, ItemType::TextString, value.as_bytes());
    }

    /// A Byte String, padded with zeros.
    pub fn byte_string(&mut self, tag: Tag, value: &[u8]) {
        self.bytes(tag, ItemType::ByteString, value);
    }

    fn bytes(&mut self, tag: Tag, item_type: ItemType, value: &[u8]) {
        let Ok(length) = u32::try_from(value.len()) else {
            self.overflow = true;
            return;
        };
        self.header(tag, item_type, length);
        self.buf.extend_from_slice(value);
        self.pad(value.len());
    }

    /// A Date-Time: seconds since the Unix epoch.
    pub fn date_time(&mut self, tag: Tag, value: i64) {
        self.header(tag, ItemType::DateTime, 8);
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// An Interval: seconds, then 4 bytes of padding.
    pub fn interval(&mut self, tag: Tag, value: u32) {
        self.header(tag, ItemType::Interval, 4);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self.buf.extend_from_slice(&[0; 4]);
    }

    /// A Structure holding what `body` writes; its length is filled in
    /// when `body` returns.
    pub fn structure(&mut self, tag: Tag, body: impl FnOnce(&mut Writer)) {
        self.header(tag, ItemType::Structure, 0);
        let length_at = self.buf.len() - 4;
        body(self);
        let length = self.buf.len() - length_at - 4;
        match u32::try_from(length) {
            Ok(length) => {
                if let Some(slot) = self.buf.get_mut(length_at..length_at + 4) {
                    slot.copy_from_slice(&length.to_be_bytes());
                }
            }
            Err(_) => self.overflow = true,
        }
    }

    /// The message, or [`Error::TooLong`] if a string or structure was
    /// longer than 4 GiB.
    pub fn finish(self) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.overflow {
            return Err(Error::TooLong);
        }
        Ok(self.buf)
    }
}

/// A decoded TTLV item, borrowing the message it was read from.
#[derive(Clone, PartialEq, Eq)]
pub struct Item<'a> {
    tag: Tag,
    value: Value<'a>,
    length: u32,
    offset: usize,
}

/// The value of an [`Item`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// The items of a Structure, in order.
    Structure(Vec<Item<'a>>),
    /// An Integer.
    Integer(i32),
    /// A Long Integer.
    LongInteger(i64),
    /// A Big Integer's bytes (csfle reads none; kept so it can be skipped).
    BigInteger(&'a [u8]),
    /// An Enumeration.
    Enumeration(u32),
    /// A Boolean.
    Boolean(bool),
    /// A Text String's bytes, not yet checked to be UTF-8.
    TextString(&'a [u8]),
    /// A Byte String.
    ByteString(&'a [u8]),
    /// A Date-Time.
    DateTime(i64),
    /// An Interval.
    Interval(u32),
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_tuple("Structure").field(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            // Byte strings carry key material (KeyMaterial, Data): sizes only.
            Value::BigInteger(b) => write!(f, "BigInteger({} bytes)", b.len()),
            Value::Enumeration(v) => write!(f, "Enumeration({v})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(b) => write!(f, "TextString({:?})", String::from_utf8_lossy(b)),
            Value::ByteString(b) => write!(f, "ByteString({} bytes)", b.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
        }
    }
}

impl fmt::Debug for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("tag", &self.tag)
            .field("value", &self.value)
            .finish()
    }
}

impl<'a> Item<'a> {
    /// The item's tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The item's value.
    pub fn value(&self) -> &Value<'a> {
        &self.value
    }

    /// The item's type.
    pub fn item_type(&self) -> ItemType {
        match self.value {
            Value::Structure(_) => ItemType::Structure,
            Value::Integer(_) => ItemType::Integer,
            Value::LongInteger(_) => ItemType::LongInteger,
            Value::BigInteger(_) => ItemType::BigInteger,
            Value::Enumeration(_) => ItemType::Enumeration,
            Value::Boolean(_) => ItemType::Boolean,
            Value::TextString(_) => ItemType::TextString,
            Value::ByteString(_) => ItemType::ByteString,
            Value::DateTime(_) => ItemType::DateTime,
            Value::Interval(_) => ItemType::Interval,
        }
    }

    /// The length field of the item's header (without padding).
    pub fn length(&self) -> u32 {
        self.length
    }

    /// Where the item's value starts in the decoded input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// A Structure's items.
    pub fn children(&self) -> Option<&[Item<'a>]> {
        match &self.value {
            Value::Structure(items) => Some(items),
            _ => None,
        }
    }

    /// An Enumeration's value.
    pub fn enumeration(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    /// An Integer's value.
    pub fn integer(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    /// A Byte String's bytes.
    pub fn byte_string(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::ByteString(b) => Some(b),
            _ => None,
        }
    }

    /// A Text String's bytes (not checked to be UTF-8).
    pub fn text_string(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::TextString(b) => Some(b),
            _ => None,
        }
    }
}

/// The first of `items` with this tag and type, as kms-message's
/// `kmip_reader_find`: it does not look inside Structures, and an item with
/// the tag but another type is passed over.
pub fn find<'i, 'a>(items: &'i [Item<'a>], tag: Tag, item_type: ItemType) -> Option<&'i Item<'a>> {
    items
        .iter()
        .find(|item| item.tag == tag && item.item_type() == item_type)
}

/// Decodes a sequence of TTLV items that fills `input` exactly.
///
/// Refused, each with a typed error: a header or value cut short, a length
/// past the end of the input or of the enclosing Structure, a tag outside
/// `0x42xxxx` and `0x54xxxx`, a type byte KMIP 1.x does not define, a
/// fixed-size type with another length (Integer, Enumeration and Interval
/// 4; Long Integer, Date-Time and Boolean 8; Big Integer a multiple of 8), a
/// Boolean other than 0 or 1, and Structures nested deeper than
/// [`MAX_DEPTH`]. kms-message stops at the same faults in the items it
/// reads and skips the others unread; csfle checks the whole message.
/// Padding bytes are not checked, as kms-message does not check them.
pub fn decode(input: &[u8]) -> Result<Vec<Item<'_>>, Error> {
    decode_items(input, 0, 0)
}

fn decode_items(input: &[u8], base: usize, depth: usize) -> Result<Vec<Item<'_>>, Error> {
    let mut items = Vec::new();
    let mut rest = input;
    let mut offset = base;
    while !rest.is_empty() {
        let (item, consumed) = decode_item(rest, offset, depth)?;
        items.push(item);
        // `decode_item` consumed at most `rest.len()` bytes.
        rest = rest.get(consumed..).unwrap_or_default();
        offset = offset.saturating_add(consumed);
    }
    Ok(items)
}

/// Decodes the item at the start of `input` (found at `offset` in the
/// message); returns it and how many bytes it took, padding included.
fn decode_item(input: &[u8], offset: usize, depth: usize) -> Result<(Item<'_>, usize), Error> {
    let Some((header, rest)) = input.split_first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated {
            offset,
            available: input.len(),
        });
    };
    let tag = Tag::new(u32::from_be_bytes([0, header[0], header[1], header[2]]));
    if header[0] != 0x42 && header[0] != 0x54 {
        return Err(Error::InvalidTag { tag, offset });
    }
    let item_type = ItemType::from_byte(header[3]).ok_or(Error::UnknownType {
        tag,
        byte: header[3],
    })?;
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let past_end = Error::LengthPastEnd {
        tag,
        length,
        available: rest.len(),
    };
    let Ok(value_len) = usize::try_from(length) else {
        return Err(past_end);
    };
    let Some(padded) = padded_len(value_len).filter(|&p| p <= rest.len()) else {
        return Err(past_end);
    };
    // Both in bounds: `value_len <= padded <= rest.len()`.
    let raw = rest.get(..value_len).ok_or(past_end)?;
    let value_offset = offset.saturating_add(HEADER_LEN);
    let bad_length = Error::BadLength {
        tag,
        item_type,
        length,
    };
    let value = match item_type {
        ItemType::Structure => {
            if depth >= MAX_DEPTH {
                return Err(Error::TooDeep { max: MAX_DEPTH });
            }
            Value::Structure(decode_items(raw, value_offset, depth + 1)?)
        }
        ItemType::Integer => Value::Integer(i32::from_be_bytes(fixed(raw, bad_length)?)),
        ItemType::LongInteger => Value::LongInteger(i64::from_be_bytes(fixed(raw, bad_length)?)),
        ItemType::BigInteger => {
            if value_len % 8 != 0 {
                return Err(bad_length);
            }
            Value::BigInteger(raw)
        }
        ItemType::Enumeration => Value::Enumeration(u32::from_be_bytes(fixed(raw, bad_length)?)),
        ItemType::Boolean => match u64::from_be_bytes(fixed(raw, bad_length)?) {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            _ => return Err(Error::BadBoolean { tag }),
        },
        ItemType::TextString => Value::TextString(raw),
        ItemType::ByteString => Value::ByteString(raw),
        ItemType::DateTime => Value::DateTime(i64::from_be_bytes(fixed(raw, bad_length)?)),
        ItemType::Interval => Value::Interval(u32::from_be_bytes(fixed(raw, bad_length)?)),
    };
    let item = Item {
        tag,
        value,
        length,
        offset: value_offset,
    };
    Ok((item, HEADER_LEN + padded))
}

/// The `N` bytes of a fixed-size value, or `bad_length` if it has another
/// length.
fn fixed<const N: usize>(raw: &[u8], bad_length: Error) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(raw).map_err(|_| bad_length)
}
