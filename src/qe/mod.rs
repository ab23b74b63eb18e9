//! Queryable Encryption (QE, "FLE2 v2"): the cryptographic foundation.
//!
//! Queryable Encryption is MongoDB's successor to FLE1 (server 7.0+, range
//! queries GA in 8.0). Like FLE1 it encrypts fields on the client, but the
//! client also sends the server *tokens* derived from the value, so the
//! server can answer equality and range queries over ciphertext. This module
//! holds what every QE payload is built from, byte for byte what
//! libmongocrypt computes:
//!
//! * [`tokens`]: the token chain, HMAC-SHA-256 from the 32-byte token key
//!   (the last third of a 96-byte data key) over u64 little-endian counters,
//!   values and contention factors;
//! * [`aead`]: the three QE ciphers: AES-256-CBC + HMAC-SHA-256 (v2
//!   values), AES-256-CTR + HMAC-SHA-256 (v1 values, decryption only) and
//!   AES-256-CTR without MAC (the server-level layer);
//! * [`values`]: QE values as the server stores and returns them
//!   (unindexed, indexed equality, range and text, v1 and v2): parsed and
//!   decrypted, layer by layer;
//! * [`range`]: range indexes' numeric encoding, edge generation and
//!   minimal covers, with libmongocrypt's defaults and errors;
//! * [`payload`]: the payloads a client sends (insert/update, equality
//!   and range find, unindexed), built byte for byte as libmongocrypt
//!   builds them, and insert payloads read back for decryption;
//! * [`placeholder`]: the placeholders query analysis marks fields with,
//!   turned into payloads;
//! * [`explicit`]: explicit encryption's options, range options and range
//!   expressions (`$and` of `$gt`/`$gte` and `$lt`/`$lte`), the pure part
//!   an API layer calls once the keys are decrypted;
//! * [`encrypted_fields`]: a collection's `encryptedFields` (automatic
//!   encryption's configuration), parsed strictly, mapped to explicit
//!   encryption's options, and written back as libmongocrypt sends it;
//! * [`finalize`]: automatic encryption's last step, after query
//!   analysis: the keys its placeholders name, every placeholder turned
//!   into its payload, and the `encryptionInformation` the server needs,
//!   placed as libmongocrypt places it;
//! * [`QeRandom`]: where encryption takes its randomness (IVs, the
//!   contention draw). In production it is csfle's fork-safe,
//!   OS-seeded generator; a fixed source exists only in this crate's unit
//!   tests and under the `fuzzing` feature, so no build meant for users
//!   can encrypt with a chosen IV.
//!
//! Like the rest of the core this module is pure: bytes in, bytes out, no
//! I/O; it builds with `--no-default-features --features qe`. Tokens and
//! keys are zeroized when dropped and their `Debug` shows only their type
//! name; errors never carry key bytes, tokens or plaintext.
//!
//! ## What QE reveals to the server
//!
//! QE hides values, not everything about them:
//!
//! * **Indexed (equality)**: each stored value comes with tags derived
//!   from the value and a contention factor, and every query hands the
//!   server tokens for one value. The server learns which documents a
//!   query matches (the access pattern) and, over time, how often equal
//!   values were inserted and queried. The **contention factor** trades
//!   this against cost: an insert picks one of `contention + 1` token
//!   chains at random, so equal values are spread over that many counters
//!   (less frequency leakage, fewer write conflicts on hot values), while
//!   every equality query must send and the server must search all
//!   `contention + 1` of them.
//! * **Range**: values are indexed by the edges of their binary
//!   decomposition; the server learns which documents fall in a queried
//!   range and, from the number of edges and the query's cover, something
//!   of the ranges queried. `sparsity` and `trimFactor` trade index size
//!   against that.
//! * **Unindexed**: randomized encryption; the server learns the length
//!   and BSON type of the value, nothing else.
//!
//! ## What is verified, and how
//!
//! No QE-capable server is available on the machines this crate is
//! developed and tested on: what the server does with payloads (turning
//! them into stored values, the ESC/ECOC collections, compaction) is not
//! run here. The client side is checked against libmongocrypt's own test
//! vectors, vendored under `tests/data/libmongocrypt/` (Apache-2.0): every
//! token of both token files and every QE cipher vector, decrypted and
//! (with the vector's IV through the fixed source) re-encrypted byte for
//! byte; every case of its range edge and minimal cover files; and its
//! fixed-RNG payload vectors (automatic and explicit, equality, unindexed
//! and range), replayed with libmongocrypt's random bytes in its order and
//! compared byte for byte. Decimal128 range indexes with a precision are
//! refused (see [`range`]); the text-search ("String") algorithm is not
//! supported.

pub mod aead;
pub mod encrypted_fields;
mod error;
pub mod explicit;
pub mod finalize;
pub mod payload;
pub mod placeholder;
mod random;
pub mod range;
pub mod tokens;
pub mod values;

#[cfg(test)]
mod vector_tests;

// The integration tests' reader of the vendored libmongocrypt files (data
// directory, hex, libmongocrypt's Extended JSON), compiled once for the
// crate's unit tests rather than copied.
#[cfg(test)]
#[path = "../../tests/common/qe_vectors.rs"]
#[allow(unreachable_pub)] // written for the integration tests, where `pub` is needed
pub(crate) mod test_vectors;

// One public path each: the key types and lengths are named where they
// are defined (`aead::QeDataKey`, `tokens::TokenKey`, …), the payload's and
// explicit encryption's errors in `payload` and `explicit`.
pub use error::Error;
pub use random::{QeRandom, random_i64_below, random_u64_below};
