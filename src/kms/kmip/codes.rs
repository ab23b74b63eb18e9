//! KMIP's numbers as csfle reads and writes them: TTLV tags and item
//! types, operations, result statuses and reasons, and the length of the
//! IV of AES-CBC. The bottom of `kmip`: the errors, the TTLV encoding, the
//! requests and the replies all name them, and they name nothing.
//! Public at their one home each: `ttlv::{Tag, ItemType}`,
//! `request::Operation`, `kmip::{ResultStatus, ResultReason, IV_LEN}`.

use std::fmt;

/// The length of the IV a delegated `keyMaterial` starts with (AES block).
pub const IV_LEN: usize = 16;

/// A KMIP tag: `0x42xxxx` for the protocol's own tags, `0x54xxxx` for
/// extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u32);

impl Tag {
    /// The tag of this 24-bit value (higher bits are dropped).
    pub const fn new(value: u32) -> Tag {
        Tag(value & 0x00FF_FFFF)
    }

    /// The tag's 24-bit value.
    pub const fn value(self) -> u32 {
        self.0
    }
}

macro_rules! tags {
    ($($konst:ident = $value:literal, $name:literal;)*) => {
        impl Tag {
            $(
                #[doc = concat!("`", $name, "` (`", stringify!($value), "`).")]
                pub const $konst: Tag = Tag($value);
            )*

            /// The tag's name in the KMIP specification, for the tags csfle
            /// uses.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($name),)*
                    _ => None,
                }
            }
        }
    };
}

tags! {
    ACTIVATION_DATE = 0x420001, "ActivationDate";
    APPLICATION_SPECIFIC_INFORMATION = 0x420004, "ApplicationSpecificInformation";
    ARCHIVE_DATE = 0x420005, "ArchiveDate";
    ATTRIBUTE = 0x420008, "Attribute";
    ATTRIBUTE_NAME = 0x42000A, "AttributeName";
    ATTRIBUTE_VALUE = 0x42000B, "AttributeValue";
    BATCH_COUNT = 0x42000D, "BatchCount";
    BATCH_ITEM = 0x42000F, "BatchItem";
    BLOCK_CIPHER_MODE = 0x420011, "BlockCipherMode";
    COMPROMISE_DATE = 0x420020, "CompromiseDate";
    CRYPTOGRAPHIC_ALGORITHM = 0x420028, "CryptographicAlgorithm";
    CRYPTOGRAPHIC_PARAMETERS = 0x42002B, "CryptographicParameters";
    IV_COUNTER_NONCE = 0x42003D, "IVCounterNonce";
    KEY_BLOCK = 0x420040, "KeyBlock";
    KEY_FORMAT_TYPE = 0x420042, "KeyFormatType";
    KEY_MATERIAL = 0x420043, "KeyMaterial";
    KEY_VALUE = 0x420045, "KeyValue";
    OBJECT_TYPE = 0x420057, "ObjectType";
    OPERATION = 0x42005C, "Operation";
    PADDING_METHOD = 0x42005F, "PaddingMethod";
    PROTOCOL_VERSION = 0x420069, "ProtocolVersion";
    PROTOCOL_VERSION_MAJOR = 0x42006A, "ProtocolVersionMajor";
    PROTOCOL_VERSION_MINOR = 0x42006B, "ProtocolVersionMinor";
    REQUEST_HEADER = 0x420077, "RequestHeader";
    REQUEST_MESSAGE = 0x420078, "RequestMessage";
    REQUEST_PAYLOAD = 0x420079, "RequestPayload";
    RESPONSE_HEADER = 0x42007A, "ResponseHeader";
    RESPONSE_MESSAGE = 0x42007B, "ResponseMessage";
    RESPONSE_PAYLOAD = 0x42007C, "ResponsePayload";
    RESULT_MESSAGE = 0x42007D, "ResultMessage";
    RESULT_REASON = 0x42007E, "ResultReason";
    RESULT_STATUS = 0x42007F, "ResultStatus";
    SECRET_DATA = 0x420085, "SecretData";
    SECRET_DATA_TYPE = 0x420086, "SecretDataType";
    TEMPLATE_ATTRIBUTE = 0x420091, "TemplateAttribute";
    TIME_STAMP = 0x420092, "TimeStamp";
    UNIQUE_IDENTIFIER = 0x420094, "UniqueIdentifier";
    DATA = 0x4200C2, "Data";
    RANDOM_IV = 0x4200C5, "RandomIV";
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:06X}", self.0),
        }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// A TTLV item type (KMIP 1.4 §9.1.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemType {
    /// A sequence of items.
    Structure,
    /// A signed 32-bit integer, padded to 8 bytes.
    Integer,
    /// A signed 64-bit integer.
    LongInteger,
    /// A big-endian two's complement integer, a multiple of 8 bytes long.
    BigInteger,
    /// An unsigned 32-bit enumeration value, padded to 8 bytes.
    Enumeration,
    /// 0 or 1 in 8 bytes.
    Boolean,
    /// UTF-8 text, padded to a multiple of 8 bytes.
    TextString,
    /// Bytes, padded to a multiple of 8 bytes.
    ByteString,
    /// Seconds since the Unix epoch, as a 64-bit integer.
    DateTime,
    /// An unsigned 32-bit number of seconds, padded to 8 bytes.
    Interval,
}

impl ItemType {
    /// The type of a type byte; `None` for bytes KMIP 1.x does not define.
    pub fn from_byte(byte: u8) -> Option<ItemType> {
        Some(match byte {
            0x01 => ItemType::Structure,
            0x02 => ItemType::Integer,
            0x03 => ItemType::LongInteger,
            0x04 => ItemType::BigInteger,
            0x05 => ItemType::Enumeration,
            0x06 => ItemType::Boolean,
            0x07 => ItemType::TextString,
            0x08 => ItemType::ByteString,
            0x09 => ItemType::DateTime,
            0x0A => ItemType::Interval,
            _ => return None,
        })
    }

    /// The type's byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            ItemType::Structure => 0x01,
            ItemType::Integer => 0x02,
            ItemType::LongInteger => 0x03,
            ItemType::BigInteger => 0x04,
            ItemType::Enumeration => 0x05,
            ItemType::Boolean => 0x06,
            ItemType::TextString => 0x07,
            ItemType::ByteString => 0x08,
            ItemType::DateTime => 0x09,
            ItemType::Interval => 0x0A,
        }
    }
}

/// A KMIP operation csfle asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Create a managed object (here an AES-256 key).
    Create,
    /// Register a managed object the client supplies (here SecretData).
    Register,
    /// Fetch a managed object.
    Get,
    /// Make an object usable.
    Activate,
    /// Encrypt with a server-held key.
    Encrypt,
    /// Decrypt with a server-held key.
    Decrypt,
}

impl Operation {
    /// The Operation enumeration value (KMIP 1.4 §9.1.3.2.27).
    pub fn code(self) -> u32 {
        match self {
            Operation::Create => 0x01,
            Operation::Register => 0x03,
            Operation::Get => 0x0A,
            Operation::Activate => 0x12,
            Operation::Encrypt => 0x1F,
            Operation::Decrypt => 0x20,
        }
    }
}

/// A KMIP Result Status (KMIP 1.4 §9.1.3.2.28).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResultStatus(pub u32);

impl ResultStatus {
    /// The status's name, as kms-message words it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "Success",
            0x1 => "Operation Failed",
            0x2 => "Operation Pending",
            0x3 => "Operation Undone",
            _ => "Unknown KMIP result status",
        }
    }
}

impl fmt::Display for ResultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// A KMIP Result Reason (KMIP 1.4 §9.1.3.2.29).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResultReason(pub u32);

impl ResultReason {
    /// The reason's name, as kms-message words it.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x01 => "Item Not Found",
            0x02 => "Response Too Large",
            0x03 => "Authentication Not Successful",
            0x04 => "Invalid Message",
            0x05 => "Operation Not Supported",
            0x06 => "Missing Data",
            0x07 => "Invalid Field",
            0x08 => "Feature Not Supported",
            0x09 => "Operation Canceled By Requester",
            0x0A => "Cryptographic Failure",
            0x0B => "Illegal Operation",
            0x0C => "Permission Denied",
            0x0D => "Object archived",
            0x0E => "Index Out of Bounds",
            0x0F => "Application Namespace Not Supported",
            0x10 => "Key Format Type Not Supported",
            0x11 => "Key Compression Type Not Supported",
            0x12 => "Encoding Option Error",
            0x13 => "Key Value Not Present",
            0x14 => "Attestation Required",
            0x15 => "Attestation Failed",
            0x16 => "Sensitive",
            0x17 => "Not Extractable",
            0x18 => "Object Already Exists",
            0x100 => "General Failure",
            _ => "Unknown KMIP result reason",
        }
    }
}

impl fmt::Display for ResultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
