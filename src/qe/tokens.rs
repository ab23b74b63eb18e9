//! The QE token chain, as libmongocrypt's `mc-tokens.c` derives it.
//!
//! Every token is 32 bytes: HMAC-SHA-256 keyed with its parent token over
//! either a counter (a u64, little-endian), the value `v` (the bytes of a
//! BSON value, after the element name) or the contention factor `u` (a
//! u64, little-endian). The root is the [`TokenKey`], the last 32 bytes of
//! a 96-byte data key.
//!
//! ```text
//! CollectionsLevel1Token            = HMAC(TokenKey, 1)
//! ServerTokenDerivationLevel1Token  = HMAC(TokenKey, 2)
//! ServerDataEncryptionLevel1Token   = HMAC(TokenKey, 3)
//!
//! EDCToken / ESCToken / ECCToken / ECOCToken = HMAC(CollectionsLevel1Token, 1 / 2 / 3 / 4)
//! XDerivedFromDataToken                      = HMAC(XToken, v)            X in EDC, ESC, ECC
//! XDerivedFromDataTokenAndContentionFactor   = HMAC(XDerivedFromDataToken, u)
//! EDCTwiceDerivedToken                       = HMAC(EDCDerivedFromDataTokenAndContentionFactor, 1)
//! ESCTwiceDerivedTagToken / …ValueToken      = HMAC(ESCDerivedFromDataTokenAndContentionFactor, 1 / 2)
//!
//! ServerDerivedFromDataToken                    = HMAC(ServerTokenDerivationLevel1Token, v)
//! ServerCountAndContentionFactorEncryptionToken = HMAC(ServerDerivedFromDataToken, 1)
//! ServerZerosEncryptionToken                    = HMAC(ServerDerivedFromDataToken, 2)
//!
//! AnchorPaddingTokenRoot                    = HMAC(ESCToken, 17 zero bytes)
//! AnchorPaddingKeyToken / …ValueToken       = HMAC(AnchorPaddingTokenRoot, 1 / 2)
//!
//! Text search (libmongocrypt 1.15+), T in Exact, Substring, Suffix, Prefix = 1, 2, 3, 4:
//! EDCTextTToken    = HMAC(EDCToken, T)
//! ESCTextTToken    = HMAC(ESCToken, T)
//! ServerTextTToken = HMAC(ServerTokenDerivationLevel1Token, T)
//! EDCTextTDerivedFromDataToken / ESCTextTDerivedFromDataToken / ServerTextTDerivedFromDataToken
//!                  = HMAC(…TextTToken, v)
//! EDCTextTDerivedFromDataTokenAndContentionFactorToken / ESC…
//!                  = HMAC(…TextTDerivedFromDataToken, u)
//! ```
//!
//! Each token is its own type, so a token cannot be derived from the wrong
//! parent. Tokens are zeroized on drop; their `Debug` prints only the type
//! name (`EdcToken(..)`).

use super::Error;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Length of every token, and of the token key: an HMAC-SHA-256 output.
pub const TOKEN_LEN: usize = 32;

/// SHA-256's block length: HMAC keys are zero-padded to it (RFC 2104).
const SHA256_BLOCK_LEN: usize = 64;

/// HMAC-SHA-256 keyed with a 32-byte key, ready for `update`.
///
/// RFC 2104 pads a key shorter than the hash's block with zeros; padding
/// here lets the infallible `KeyInit::new` take the key (`new_from_slice`
/// returns a `Result` although HMAC accepts every key length).
pub(super) fn hmac_sha256(key: &[u8; TOKEN_LEN]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; SHA256_BLOCK_LEN]);
    block[..TOKEN_LEN].copy_from_slice(key);
    <Hmac<Sha256> as KeyInit>::new(&(*block).into())
}

/// HMAC-SHA-256(`key`, `message`).
fn hmac_token(key: &[u8; TOKEN_LEN], message: &[u8]) -> [u8; TOKEN_LEN] {
    let mut mac = hmac_sha256(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The root of the token chain: the last 32 bytes of a 96-byte data key
/// (libmongocrypt's "token key"). Zeroized on drop.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct TokenKey([u8; TOKEN_LEN]);

impl TokenKey {
    /// The token key of a 96-byte data key: its last 32 bytes.
    pub fn from_data_key(material: &[u8]) -> Result<Self, Error> {
        if material.len() != crate::crypto::DATA_KEY_LEN {
            return Err(Error::InvalidKeyLength {
                expected: crate::crypto::DATA_KEY_LEN,
                actual: material.len(),
            });
        }
        Self::new(&material[crate::crypto::DATA_KEY_LEN - TOKEN_LEN..])
    }

    /// A token key from its 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, Error> {
        let key: [u8; TOKEN_LEN] = bytes.try_into().map_err(|_| Error::InvalidKeyLength {
            expected: TOKEN_LEN,
            actual: bytes.len(),
        })?;
        Ok(TokenKey(key))
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Declares a token type: 32 zeroizing bytes, a `Debug` without them.
macro_rules! token_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 32 bytes, zeroized on drop; `Debug` prints only the type name.
        #[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        pub struct $name([u8; TOKEN_LEN]);

        impl $name {
            /// The token's 32 bytes, as payloads carry them.
            pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
                &self.0
            }

            /// A token from its 32 bytes, as payloads carry them.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
                let token: [u8; TOKEN_LEN] =
                    bytes.try_into().map_err(|_| Error::InvalidKeyLength {
                        expected: TOKEN_LEN,
                        actual: bytes.len(),
                    })?;
                Ok($name(token))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

/// A token derived from its parent over a fixed counter.
macro_rules! counter_token {
    ($(#[$doc:meta])* $name:ident = HMAC($parent:ident, $counter:literal)) => {
        token_type!($(#[$doc])* $name);

        impl $name {
            #[doc = concat!(
                "Derives the token: HMAC-SHA-256(`", stringify!($parent), "`, ",
                stringify!($counter), " as a little-endian u64)."
            )]
            pub fn derive(parent: &$parent) -> Self {
                $name(hmac_token(parent.as_bytes(), &u64::to_le_bytes($counter)))
            }
        }
    };
}

/// A token derived from its parent over a value `v` (the bytes of a BSON
/// value, after the element name).
macro_rules! data_token {
    ($(#[$doc:meta])* $name:ident = HMAC($parent:ident, v)) => {
        token_type!($(#[$doc])* $name);

        impl $name {
            #[doc = concat!(
                "Derives the token: HMAC-SHA-256(`", stringify!($parent),
                "`, `value`), `value` being the bytes of a BSON value after its element name."
            )]
            pub fn derive(parent: &$parent, value: &[u8]) -> Self {
                $name(hmac_token(parent.as_bytes(), value))
            }
        }
    };
}

/// A token derived from its parent over a contention factor `u`.
macro_rules! contention_token {
    ($(#[$doc:meta])* $name:ident = HMAC($parent:ident, u)) => {
        token_type!($(#[$doc])* $name);

        impl $name {
            #[doc = concat!(
                "Derives the token: HMAC-SHA-256(`", stringify!($parent),
                "`, `contention_factor` as a little-endian u64)."
            )]
            pub fn derive(parent: &$parent, contention_factor: u64) -> Self {
                $name(hmac_token(parent.as_bytes(), &contention_factor.to_le_bytes()))
            }
        }
    };
}

// Level 1: from the token key.
counter_token!(
    /// `CollectionsLevel1Token`: the parent of the EDC, ESC, ECC and ECOC
    /// tokens.
    CollectionsLevel1Token = HMAC(TokenKey, 1)
);
counter_token!(
    /// `ServerTokenDerivationLevel1Token` (FLE2 v2): the parent of the
    /// server's derived-from-data tokens.
    ServerTokenDerivationLevel1Token = HMAC(TokenKey, 2)
);
counter_token!(
    /// `ServerDataEncryptionLevel1Token`: the key of the server-level
    /// encryption of indexed values.
    ServerDataEncryptionLevel1Token = HMAC(TokenKey, 3)
);

// The collection tokens.
counter_token!(
    /// `EDCToken`: encrypted data collection.
    EdcToken = HMAC(CollectionsLevel1Token, 1)
);
counter_token!(
    /// `ESCToken`: encrypted state collection.
    EscToken = HMAC(CollectionsLevel1Token, 2)
);
counter_token!(
    /// `ECCToken`: encrypted cache collection (FLE2 v1 only).
    EccToken = HMAC(CollectionsLevel1Token, 3)
);
counter_token!(
    /// `ECOCToken`: encrypted compaction collection.
    EcocToken = HMAC(CollectionsLevel1Token, 4)
);

// Derived from data.
data_token!(
    /// `EDCDerivedFromDataToken`.
    EdcDerivedFromDataToken = HMAC(EdcToken, v)
);
data_token!(
    /// `ESCDerivedFromDataToken`.
    EscDerivedFromDataToken = HMAC(EscToken, v)
);
data_token!(
    /// `ECCDerivedFromDataToken` (FLE2 v1 only).
    EccDerivedFromDataToken = HMAC(EccToken, v)
);

// Derived from data and contention factor.
contention_token!(
    /// `EDCDerivedFromDataTokenAndContentionFactor`.
    EdcDerivedFromDataTokenAndContentionFactor = HMAC(EdcDerivedFromDataToken, u)
);
contention_token!(
    /// `ESCDerivedFromDataTokenAndContentionFactor`.
    EscDerivedFromDataTokenAndContentionFactor = HMAC(EscDerivedFromDataToken, u)
);
contention_token!(
    /// `ECCDerivedFromDataTokenAndContentionFactor` (FLE2 v1 only).
    EccDerivedFromDataTokenAndContentionFactor = HMAC(EccDerivedFromDataToken, u)
);

// Twice derived.
counter_token!(
    /// `EDCTwiceDerivedToken`.
    EdcTwiceDerivedToken = HMAC(EdcDerivedFromDataTokenAndContentionFactor, 1)
);
counter_token!(
    /// `ESCTwiceDerivedTagToken`.
    EscTwiceDerivedTagToken = HMAC(EscDerivedFromDataTokenAndContentionFactor, 1)
);
counter_token!(
    /// `ESCTwiceDerivedValueToken`.
    EscTwiceDerivedValueToken = HMAC(EscDerivedFromDataTokenAndContentionFactor, 2)
);

// The server's tokens (FLE2 v2).
data_token!(
    /// `ServerDerivedFromDataToken`.
    ServerDerivedFromDataToken = HMAC(ServerTokenDerivationLevel1Token, v)
);
counter_token!(
    /// `ServerCountAndContentionFactorEncryptionToken`.
    ServerCountAndContentionFactorEncryptionToken = HMAC(ServerDerivedFromDataToken, 1)
);
counter_token!(
    /// `ServerZerosEncryptionToken`.
    ServerZerosEncryptionToken = HMAC(ServerDerivedFromDataToken, 2)
);

// Range V2 anchor padding.
token_type!(
    /// `AnchorPaddingTokenRoot`: HMAC(ESCToken, 17 zero bytes).
    AnchorPaddingTokenRoot
);

impl AnchorPaddingTokenRoot {
    /// The `d` of libmongocrypt's derivation: 17 zero bytes.
    const D: [u8; 17] = [0; 17];

    /// Derives the token: HMAC-SHA-256(`EscToken`, 17 zero bytes).
    pub fn derive(parent: &EscToken) -> Self {
        AnchorPaddingTokenRoot(hmac_token(parent.as_bytes(), &Self::D))
    }
}

counter_token!(
    /// `AnchorPaddingKeyToken` (server side).
    AnchorPaddingKeyToken = HMAC(AnchorPaddingTokenRoot, 1)
);
counter_token!(
    /// `AnchorPaddingValueToken` (server side).
    AnchorPaddingValueToken = HMAC(AnchorPaddingTokenRoot, 2)
);

// Text search: exact, substring, suffix, prefix = 1, 2, 3, 4.
counter_token!(
    /// `EDCTextExactToken`.
    EdcTextExactToken = HMAC(EdcToken, 1)
);
counter_token!(
    /// `EDCTextSubstringToken`.
    EdcTextSubstringToken = HMAC(EdcToken, 2)
);
counter_token!(
    /// `EDCTextSuffixToken`.
    EdcTextSuffixToken = HMAC(EdcToken, 3)
);
counter_token!(
    /// `EDCTextPrefixToken`.
    EdcTextPrefixToken = HMAC(EdcToken, 4)
);
counter_token!(
    /// `ESCTextExactToken`.
    EscTextExactToken = HMAC(EscToken, 1)
);
counter_token!(
    /// `ESCTextSubstringToken`.
    EscTextSubstringToken = HMAC(EscToken, 2)
);
counter_token!(
    /// `ESCTextSuffixToken`.
    EscTextSuffixToken = HMAC(EscToken, 3)
);
counter_token!(
    /// `ESCTextPrefixToken`.
    EscTextPrefixToken = HMAC(EscToken, 4)
);
counter_token!(
    /// `ServerTextExactToken`.
    ServerTextExactToken = HMAC(ServerTokenDerivationLevel1Token, 1)
);
counter_token!(
    /// `ServerTextSubstringToken`.
    ServerTextSubstringToken = HMAC(ServerTokenDerivationLevel1Token, 2)
);
counter_token!(
    /// `ServerTextSuffixToken`.
    ServerTextSuffixToken = HMAC(ServerTokenDerivationLevel1Token, 3)
);
counter_token!(
    /// `ServerTextPrefixToken`.
    ServerTextPrefixToken = HMAC(ServerTokenDerivationLevel1Token, 4)
);

data_token!(
    /// `EDCTextExactDerivedFromDataToken`.
    EdcTextExactDerivedFromDataToken = HMAC(EdcTextExactToken, v)
);
data_token!(
    /// `EDCTextSubstringDerivedFromDataToken`.
    EdcTextSubstringDerivedFromDataToken = HMAC(EdcTextSubstringToken, v)
);
data_token!(
    /// `EDCTextSuffixDerivedFromDataToken`.
    EdcTextSuffixDerivedFromDataToken = HMAC(EdcTextSuffixToken, v)
);
data_token!(
    /// `EDCTextPrefixDerivedFromDataToken`.
    EdcTextPrefixDerivedFromDataToken = HMAC(EdcTextPrefixToken, v)
);
contention_token!(
    /// `EDCTextExactDerivedFromDataTokenAndContentionFactorToken`.
    EdcTextExactDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EdcTextExactDerivedFromDataToken, u)
);
contention_token!(
    /// `EDCTextSubstringDerivedFromDataTokenAndContentionFactorToken`.
    EdcTextSubstringDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EdcTextSubstringDerivedFromDataToken, u)
);
contention_token!(
    /// `EDCTextSuffixDerivedFromDataTokenAndContentionFactorToken`.
    EdcTextSuffixDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EdcTextSuffixDerivedFromDataToken, u)
);
contention_token!(
    /// `EDCTextPrefixDerivedFromDataTokenAndContentionFactorToken`.
    EdcTextPrefixDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EdcTextPrefixDerivedFromDataToken, u)
);
data_token!(
    /// `ESCTextExactDerivedFromDataToken`.
    EscTextExactDerivedFromDataToken = HMAC(EscTextExactToken, v)
);
data_token!(
    /// `ESCTextSubstringDerivedFromDataToken`.
    EscTextSubstringDerivedFromDataToken = HMAC(EscTextSubstringToken, v)
);
data_token!(
    /// `ESCTextSuffixDerivedFromDataToken`.
    EscTextSuffixDerivedFromDataToken = HMAC(EscTextSuffixToken, v)
);
data_token!(
    /// `ESCTextPrefixDerivedFromDataToken`.
    EscTextPrefixDerivedFromDataToken = HMAC(EscTextPrefixToken, v)
);
contention_token!(
    /// `ESCTextExactDerivedFromDataTokenAndContentionFactorToken`.
    EscTextExactDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EscTextExactDerivedFromDataToken, u)
);
contention_token!(
    /// `ESCTextSubstringDerivedFromDataTokenAndContentionFactorToken`.
    EscTextSubstringDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EscTextSubstringDerivedFromDataToken, u)
);
contention_token!(
    /// `ESCTextSuffixDerivedFromDataTokenAndContentionFactorToken`.
    EscTextSuffixDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EscTextSuffixDerivedFromDataToken, u)
);
contention_token!(
    /// `ESCTextPrefixDerivedFromDataTokenAndContentionFactorToken`.
    EscTextPrefixDerivedFromDataTokenAndContentionFactorToken =
        HMAC(EscTextPrefixDerivedFromDataToken, u)
);
data_token!(
    /// `ServerTextExactDerivedFromDataToken`.
    ServerTextExactDerivedFromDataToken = HMAC(ServerTextExactToken, v)
);
data_token!(
    /// `ServerTextSubstringDerivedFromDataToken`.
    ServerTextSubstringDerivedFromDataToken = HMAC(ServerTextSubstringToken, v)
);
data_token!(
    /// `ServerTextSuffixDerivedFromDataToken`.
    ServerTextSuffixDerivedFromDataToken = HMAC(ServerTextSuffixToken, v)
);
data_token!(
    /// `ServerTextPrefixDerivedFromDataToken`.
    ServerTextPrefixDerivedFromDataToken = HMAC(ServerTextPrefixToken, v)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_bytes() {
        let root = TokenKey::new(&[0xab; 32]).unwrap();
        assert_eq!(format!("{root:?}"), "TokenKey(..)");
        let l1 = CollectionsLevel1Token::derive(&root);
        let edc = EdcToken::derive(&l1);
        assert_eq!(format!("{edc:?}"), "EdcToken(..)");
        let d = EdcDerivedFromDataToken::derive(&edc, b"\x05\x00\x00\x00abcd\x00");
        let dc = EdcDerivedFromDataTokenAndContentionFactor::derive(&d, 7);
        assert_eq!(
            format!("{dc:?}"),
            "EdcDerivedFromDataTokenAndContentionFactor(..)"
        );
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            TokenKey::new(&[0; 31]).unwrap_err(),
            Error::InvalidKeyLength {
                expected: 32,
                actual: 31
            }
        );
        assert_eq!(
            TokenKey::from_data_key(&[0; 64]).unwrap_err(),
            Error::InvalidKeyLength {
                expected: 96,
                actual: 64
            }
        );
        assert_eq!(
            TokenKey::from_data_key(&[0; 10]).unwrap_err(),
            Error::InvalidKeyLength {
                expected: 96,
                actual: 10
            }
        );
        assert_eq!(
            EcocToken::from_bytes(&[0; 33]).unwrap_err(),
            Error::InvalidKeyLength {
                expected: 32,
                actual: 33
            }
        );
    }

    #[test]
    fn the_token_key_is_the_last_third() {
        let mut material = [0u8; 96];
        material[64..].copy_from_slice(&[7; 32]);
        let key = TokenKey::from_data_key(&material).unwrap();
        assert_eq!(key.as_bytes(), &[7; 32]);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key; the zero-padded 32-byte
        // key is the same HMAC key (RFC 2104 pads with zeros).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let tag = hmac_token(&key, b"what do ya want for nothing?");
        let want = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(tag, want);
    }
}
