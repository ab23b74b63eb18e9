//! The six KMIP requests libmongocrypt sends, byte for byte as kms-message
//! builds them: one batch item each, protocol 1.0 for Register, Activate
//! and Get, 1.2 for Create, Encrypt and Decrypt (which KMIP 1.0 lacks).

pub use super::codes::Operation;

use super::Error;
use super::codes::IV_LEN;
use super::ttlv::{Tag, Writer};
use std::fmt;
use zeroize::Zeroizing;

/// The length of the SecretData registered in the default mode: a local
/// master key's 96 bytes.
pub const SECRET_DATA_LEN: usize = 96;

/// `Cryptographic Usage Mask` bits (KMIP 1.4 §9.1.3.3.1).
const USAGE_ENCRYPT: i32 = 0x04;
const USAGE_DECRYPT: i32 = 0x08;
/// Object Type `Symmetric Key` and `Secret Data`.
pub(super) const OBJECT_SYMMETRIC_KEY: u32 = 0x02;
pub(super) const OBJECT_SECRET_DATA: u32 = 0x07;
/// Secret Data Type `Seed`, as kms-message registers it.
const SECRET_DATA_TYPE_SEED: u32 = 0x02;
/// Key Format Type `Opaque`.
const KEY_FORMAT_OPAQUE: u32 = 0x02;
/// Cryptographic Algorithm `AES`.
const ALGORITHM_AES: u32 = 0x03;
/// Block Cipher Mode `CBC`.
const MODE_CBC: u32 = 0x01;
/// Padding Method `PKCS5`.
const PADDING_PKCS5: u32 = 0x03;

/// An encoded request: the bytes to send, zeroized when dropped (Register
/// and Encrypt carry key material). `Debug` shows the operation and size.
pub struct Request {
    operation: Operation,
    bytes: Zeroizing<Vec<u8>>,
}

impl Request {
    /// What the request asks for.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Room for a request's fixed items; strings and byte strings are added to
/// it, so the writer's buffer never reallocates while it holds a key.
const FIXED_CAPACITY: usize = 512;

/// `RequestMessage { RequestHeader { ProtocolVersion 1.minor, BatchCount 1 },
/// BatchItem { Operation, RequestPayload { payload } } }`.
fn message(
    minor_version: i32,
    operation: Operation,
    variable_len: usize,
    payload: impl FnOnce(&mut Writer),
) -> Result<Request, Error> {
    // Each variable item pads to 8 bytes at most 7 more, and there are at
    // most two of them.
    let capacity = FIXED_CAPACITY
        .saturating_add(variable_len)
        .saturating_add(16);
    let mut w = Writer::with_capacity(capacity);
    w.structure(Tag::REQUEST_MESSAGE, |w| {
        w.structure(Tag::REQUEST_HEADER, |w| {
            w.structure(Tag::PROTOCOL_VERSION, |w| {
                w.integer(Tag::PROTOCOL_VERSION_MAJOR, 1);
                w.integer(Tag::PROTOCOL_VERSION_MINOR, minor_version);
            });
            w.integer(Tag::BATCH_COUNT, 1);
        });
        w.structure(Tag::BATCH_ITEM, |w| {
            w.enumeration(Tag::OPERATION, operation.code());
            w.structure(Tag::REQUEST_PAYLOAD, payload);
        });
    });
    Ok(Request {
        operation,
        bytes: w.finish()?,
    })
}

/// `Attribute { AttributeName name, AttributeValue … }` with an Integer value.
fn integer_attribute(w: &mut Writer, name: &str, value: i32) {
    w.structure(Tag::ATTRIBUTE, |w| {
        w.text_string(Tag::ATTRIBUTE_NAME, name);
        w.integer(Tag::ATTRIBUTE_VALUE, value);
    });
}

/// Register a 96-byte SecretData (type Seed, format Opaque) with a
/// Cryptographic Usage Mask of 0: the server never computes with it.
pub fn register_secret_data(secret: &[u8]) -> Result<Request, Error> {
    if secret.len() != SECRET_DATA_LEN {
        return Err(Error::SecretDataLength {
            expected: SECRET_DATA_LEN,
            actual: secret.len(),
        });
    }
    message(0, Operation::Register, secret.len(), |w| {
        w.enumeration(Tag::OBJECT_TYPE, OBJECT_SECRET_DATA);
        w.structure(Tag::TEMPLATE_ATTRIBUTE, |w| {
            integer_attribute(w, "Cryptographic Usage Mask", 0);
        });
        w.structure(Tag::SECRET_DATA, |w| {
            w.enumeration(Tag::SECRET_DATA_TYPE, SECRET_DATA_TYPE_SEED);
            w.structure(Tag::KEY_BLOCK, |w| {
                w.enumeration(Tag::KEY_FORMAT_TYPE, KEY_FORMAT_OPAQUE);
                w.structure(Tag::KEY_VALUE, |w| {
                    w.byte_string(Tag::KEY_MATERIAL, secret);
                });
            });
        });
    })
}

/// Activate the object `unique_identifier`.
pub fn activate(unique_identifier: &str) -> Result<Request, Error> {
    message(0, Operation::Activate, unique_identifier.len(), |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, unique_identifier);
    })
}

/// Get the object `unique_identifier` (the SecretData, in the default mode).
pub fn get(unique_identifier: &str) -> Result<Request, Error> {
    message(0, Operation::Get, unique_identifier.len(), |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, unique_identifier);
    })
}

/// Create an AES-256 symmetric key usable to Encrypt and Decrypt.
pub fn create_aes_256() -> Result<Request, Error> {
    message(2, Operation::Create, 0, |w| {
        w.enumeration(Tag::OBJECT_TYPE, OBJECT_SYMMETRIC_KEY);
        w.structure(Tag::TEMPLATE_ATTRIBUTE, |w| {
            w.structure(Tag::ATTRIBUTE, |w| {
                w.text_string(Tag::ATTRIBUTE_NAME, "Cryptographic Algorithm");
                w.enumeration(Tag::ATTRIBUTE_VALUE, ALGORITHM_AES);
            });
            integer_attribute(w, "Cryptographic Length", 256);
            integer_attribute(w, "Cryptographic Usage Mask", USAGE_ENCRYPT | USAGE_DECRYPT);
        });
    })
}

/// `CryptographicParameters { CBC, PKCS5, AES, RandomIV true? }`.
fn aes_cbc_parameters(w: &mut Writer, random_iv: bool) {
    w.structure(Tag::CRYPTOGRAPHIC_PARAMETERS, |w| {
        w.enumeration(Tag::BLOCK_CIPHER_MODE, MODE_CBC);
        w.enumeration(Tag::PADDING_METHOD, PADDING_PKCS5);
        w.enumeration(Tag::CRYPTOGRAPHIC_ALGORITHM, ALGORITHM_AES);
        if random_iv {
            w.boolean(Tag::RANDOM_IV, true);
        }
    });
}

/// Encrypt `plaintext` (the data key) with the AES key `unique_identifier`:
/// AES-CBC, PKCS#5 padding, the IV chosen by the server (`RandomIV`).
pub fn encrypt(unique_identifier: &str, plaintext: &[u8]) -> Result<Request, Error> {
    let variable = unique_identifier.len().saturating_add(plaintext.len());
    message(2, Operation::Encrypt, variable, |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, unique_identifier);
        aes_cbc_parameters(w, true);
        w.byte_string(Tag::DATA, plaintext);
    })
}

/// Decrypt `ciphertext` with the AES key `unique_identifier` and the IV the
/// server chose when it encrypted.
pub fn decrypt(unique_identifier: &str, ciphertext: &[u8], iv: &[u8]) -> Result<Request, Error> {
    let variable = unique_identifier
        .len()
        .saturating_add(ciphertext.len())
        .saturating_add(iv.len());
    message(2, Operation::Decrypt, variable, |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, unique_identifier);
        aes_cbc_parameters(w, false);
        w.byte_string(Tag::DATA, ciphertext);
        w.byte_string(Tag::IV_COUNTER_NONCE, iv);
    })
}

/// Decrypt a delegated key document's `keyMaterial`: its first 16 bytes are
/// the IV, the rest the ciphertext, as libmongocrypt stores them.
pub fn decrypt_key_material(
    unique_identifier: &str,
    key_material: &[u8],
) -> Result<Request, Error> {
    let Some((iv, ciphertext)) = key_material.split_first_chunk::<IV_LEN>() else {
        return Err(Error::KeyMaterialTooShort {
            actual: key_material.len(),
        });
    };
    decrypt(unique_identifier, ciphertext, iv)
}
