//! Edge generation (libmongocrypt's `mc-range-edge-generation.c`): the
//! prefixes of an encoded value's bit string that a range insert indexes.

use super::encoding::{self, Encoded};
use super::{RangeError, bit_length, bit_string, trim_factor_default};
use zeroize::Zeroizing;

/// The edges of one value: `"root"` (unless trimmed), the whole bit string
/// (the leaf), then every prefix whose length is a multiple of the
/// sparsity and at least the trim factor, shortest first — libmongocrypt's
/// order, which the payload keeps.
///
/// The edges spell out the value's encoding: they are zeroized on drop,
/// and `Debug` prints only how many there are.
pub struct Edges {
    edges: Zeroizing<Vec<String>>,
    leaf: Zeroizing<String>,
    trim_factor: i32,
}

impl Edges {
    /// libmongocrypt's `mc_edges_new`: the edges of `leaf` (a bit string).
    fn new(leaf: String, sparsity: u64, trim_factor: Option<i32>) -> Result<Self, RangeError> {
        let leaf = Zeroizing::new(leaf);
        if sparsity < 1 {
            return Err(RangeError::EdgesSparsityZero);
        }
        // At most 128 characters.
        let leaf_len = leaf.len() as u32;
        let trim_factor = trim_factor_default(leaf_len, trim_factor);
        if trim_factor > 0 && trim_factor as u32 >= leaf_len {
            // Fewer than two edges would be left: equality, not range.
            return Err(RangeError::EdgesTrimFactorTooLarge {
                bits: leaf_len,
                trim_factor,
            });
        }
        if trim_factor < 0 {
            return Err(RangeError::EdgesTrimFactorNegative(trim_factor));
        }
        let mut edges = Zeroizing::new(Vec::with_capacity(leaf.len() + 2));
        if trim_factor == 0 {
            edges.push("root".to_owned());
        }
        edges.push(leaf.as_str().to_owned());
        // Non-negative and below leaf_len <= 128.
        let start = (trim_factor as usize).max(1);
        for i in start..leaf.len() {
            if (i as u64).is_multiple_of(sparsity) {
                edges.push(leaf.as_str()[..i].to_owned());
            }
        }
        Ok(Edges {
            edges,
            leaf,
            trim_factor,
        })
    }

    fn from_encoded(
        encoded: Encoded,
        sparsity: u64,
        trim_factor: Option<i32>,
    ) -> Result<Self, RangeError> {
        let leaf = bit_string(encoded.value, bit_length(encoded.max));
        Self::new(leaf, sparsity, trim_factor)
    }

    /// The edges, in libmongocrypt's order.
    pub fn as_slice(&self) -> &[String] {
        &self.edges
    }

    /// How many edges there are.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether there are none (never: the leaf is always one).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Whether `edge` is the leaf: the whole bit string
    /// (`mc_edges_is_leaf`).
    pub fn is_leaf(&self, edge: &str) -> bool {
        edge == self.leaf.as_str()
    }

    /// The trim factor used (the default applied), as payloads send it in
    /// `tf`.
    pub fn trim_factor(&self) -> i32 {
        self.trim_factor
    }
}

impl std::fmt::Debug for Edges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edges")
            .field("len", &self.edges.len())
            .field("trim_factor", &self.trim_factor)
            .finish_non_exhaustive()
    }
}

/// The inputs of edge generation for one value type, as libmongocrypt's
/// `mc_getEdges*_args_t`: the value, the index's optional bounds (and
/// precision, for doubles and Decimal128), the sparsity and the optional
/// trim factor.
#[derive(Clone, Copy)]
pub struct EdgesArgs<T> {
    /// The value to index.
    pub value: T,
    /// The index minimum (integers: with `max`; doubles and Decimal128:
    /// with `max` and `precision`).
    pub min: Option<T>,
    /// The index maximum.
    pub max: Option<T>,
    /// The precision (doubles and Decimal128 only; libmongocrypt's integer
    /// edge generation has no precision and ignores it).
    pub precision: Option<i32>,
    /// The sparsity (at least 1).
    pub sparsity: u64,
    /// The trim factor; `None` for the default.
    pub trim_factor: Option<i32>,
}

/// The edges of an int32 (`mc_getEdgesInt32`).
pub fn edges_int32(args: EdgesArgs<i32>) -> Result<Edges, RangeError> {
    let encoded = encoding::encode_int32(args.value, args.min, args.max)?;
    Edges::from_encoded(encoded, args.sparsity, args.trim_factor)
}

/// The edges of an int64 or a date's milliseconds (`mc_getEdgesInt64`).
pub fn edges_int64(args: EdgesArgs<i64>) -> Result<Edges, RangeError> {
    let encoded = encoding::encode_int64(args.value, args.min, args.max)?;
    Edges::from_encoded(encoded, args.sparsity, args.trim_factor)
}

/// The edges of a double (`mc_getEdgesDouble`).
pub fn edges_double(args: EdgesArgs<f64>) -> Result<Edges, RangeError> {
    let encoded = encoding::encode_double(args.value, args.min, args.max, args.precision)?;
    Edges::from_encoded(encoded, args.sparsity, args.trim_factor)
}

/// The edges of a Decimal128 given as its BSON bytes
/// (`mc_getEdgesDecimal128`; without precision only).
pub fn edges_decimal128(args: EdgesArgs<[u8; 16]>) -> Result<Edges, RangeError> {
    let encoded = encoding::encode_decimal128(args.value, args.min, args.max, args.precision)?;
    Edges::from_encoded(encoded, args.sparsity, args.trim_factor)
}

#[cfg(test)]
#[path = "edges_tests.rs"]
mod tests;
