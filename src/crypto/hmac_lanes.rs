//! HMAC-SHA-512 of many messages at once, through the multi-lane SHA-512
//! compressions of `csfle-sha512-lanes`.
//!
//! Everything around the compression function stays RustCrypto's: `sha2`'s
//! core computes the HMAC pad states and is the scalar path and the
//! fallback, `block-buffer` pads the messages. The lanes replace only
//! `sha2::block_api::compress512` calls ([`csfle_sha512_lanes`] compares
//! its kernels with it), and the result is compared with `hmac`'s (`tests`
//! below, the `sha512_lanes` fuzz target). Eight lanes of AVX-512 or four
//! of AVX2 when the CPU has them; without either, or with the
//! `scalar-sha512` feature, every block goes through `compress512`.

use csfle_sha512_lanes::{
    Block, Kernel, LANES, WIDE_LANES, compress512_x4, compress512_x8, kernel,
};
use sha2::block_api::compress512;

/// Whether a multi-lane kernel runs on this machine.
pub(crate) fn lanes_available() -> bool {
    kernel() != Kernel::Scalar
}

/// An HMAC-SHA-512 key as its two chaining values: SHA-512 after the
/// key ⊕ ipad block and after the key ⊕ opad block (RFC 2104), computed by
/// `sha2`'s core. Zeroized on drop.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub(crate) struct HmacPads {
    inner: [u64; 8],
    outer: [u64; 8],
}

impl std::fmt::Debug for HmacPads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacPads { .. }")
    }
}

/// SHA-512's chaining value after `block`, from `sha2`'s own core.
fn state_after(block: &Block) -> [u64; 8] {
    use sha2::digest::block_api::{UpdateCore, VariableOutputCore};
    use sha2::digest::common::hazmat::SerializableState;
    let mut core = sha2::block_api::Sha512VarCore::new(64).expect("64 is SHA-512's output size");
    core.update_blocks(&[(*block).into()]);
    let serialized = zeroize::Zeroizing::new(core.serialize());
    // The serialized state is the eight words little-endian, then the
    // block count.
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&serialized[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    })
}

impl HmacPads {
    /// The pads of `key` (at most one block long: FLE1's MAC keys are 32
    /// bytes).
    pub(crate) fn new(key: &[u8]) -> Self {
        assert!(
            key.len() <= 128,
            "HMAC keys longer than a block are hashed first"
        );
        let mut block = zeroize::Zeroizing::new([0u8; 128]);
        block[..key.len()].copy_from_slice(key);
        block.iter_mut().for_each(|b| *b ^= 0x36);
        let inner = state_after(&block);
        block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        let outer = state_after(&block);
        HmacPads { inner, outer }
    }
}

/// One HMAC to compute: the key's pads and the message, in parts (so
/// `AD ‖ IV ‖ C ‖ AL` needs no copy into one buffer).
pub(crate) struct HmacJob<'a> {
    pub(crate) pads: &'a HmacPads,
    pub(crate) message: &'a [&'a [u8]],
}

/// Appends the padded blocks of a message hashed after one block (the
/// pad) to `out`; returns their range in it.
fn push_padded(parts: &[&[u8]], out: &mut Vec<Block>) -> std::ops::Range<usize> {
    use sha2::digest::block_buffer::{BlockBuffer, Eager};
    use sha2::digest::consts::U128;
    let start = out.len();
    let mut buffer = BlockBuffer::<U128, Eager>::default();
    let mut len = 0u128;
    for part in parts {
        buffer.digest_blocks(part, |bs| out.extend(bs.iter().map(|b| b.0)));
        len += part.len() as u128;
    }
    // The pad block came first: 128 more bytes in the length.
    buffer.len128_padding_be(8 * (len + 128), |b| out.push(b.0));
    start..out.len()
}

/// Runs each state through its blocks (`ranges[i]` of `blocks`): eight
/// lanes while eight messages have blocks left (a lane that finishes takes
/// the next message), then four, the last few messages finishing on
/// `compress512`.
fn compress_all(states: &mut [[u64; 8]], blocks: &[Block], ranges: &[std::ops::Range<usize>]) {
    // (message, next block index into `blocks`)
    let mut work: Vec<(usize, usize)> = (0..states.len())
        .filter(|&i| !ranges[i].is_empty())
        .map(|i| (i, ranges[i].start))
        .collect();
    let kernel = kernel();
    if kernel == Kernel::Avx512 {
        work = compress_in_lanes::<WIDE_LANES>(states, blocks, ranges, work, compress512_x8);
    }
    if kernel != Kernel::Scalar {
        work = compress_in_lanes::<LANES>(states, blocks, ranges, work, compress512_x4);
    }
    for (i, next) in work {
        compress512(&mut states[i], &blocks[next..ranges[i].end]);
    }
}

/// Runs `work` in `N` lanes while `N` messages have blocks left; returns
/// what is left (fewer than `N` messages, each from its next block).
fn compress_in_lanes<const N: usize>(
    states: &mut [[u64; 8]],
    blocks: &[Block],
    ranges: &[std::ops::Range<usize>],
    work: Vec<(usize, usize)>,
    compress: fn(&mut [[u64; 8]; N], [&Block; N]),
) -> Vec<(usize, usize)> {
    let mut lanes: [Option<(usize, usize)>; N] = [None; N];
    let mut queue = work.into_iter();
    loop {
        for lane in lanes.iter_mut().filter(|l| l.is_none()) {
            *lane = queue.next();
        }
        if lanes.iter().any(Option::is_none) {
            return lanes.into_iter().flatten().collect();
        }
        let active: [(usize, usize); N] = core::array::from_fn(|l| lanes[l].unwrap_or_default());
        let mut lane_states: [[u64; 8]; N] = core::array::from_fn(|l| states[active[l].0]);
        compress(
            &mut lane_states,
            core::array::from_fn(|l| &blocks[active[l].1]),
        );
        for (l, lane) in lanes.iter_mut().enumerate() {
            let (i, next) = active[l];
            states[i] = lane_states[l];
            *lane = (next + 1 < ranges[i].end).then_some((i, next + 1));
        }
        lane_states.iter_mut().for_each(|s| *s = [0; 8]);
    }
}

fn digest_bytes(state: &[u64; 8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(8).zip(state) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Messages hashed together: their blocks stay in the L1 cache (a batch
/// of a whole 1,500-field document at once would allocate, fault in and
/// wipe hundreds of kilobytes).
const CHUNK: usize = 32;

/// HMAC-SHA-512 of every job, in order: equal to `hmac::Hmac<Sha512>`
/// over the same key and message, computed eight or four messages at a time.
pub(crate) fn hmac_sha512_many(jobs: &[HmacJob<'_>]) -> Vec<[u8; 64]> {
    let mut out = Vec::with_capacity(jobs.len());
    // Every block of a chunk's messages in one buffer, reused (wiped at
    // the end: the messages of deterministic IVs hold plaintexts).
    let mut blocks = zeroize::Zeroizing::new(Vec::with_capacity(CHUNK * 2));
    let mut ranges = Vec::with_capacity(CHUNK);
    let mut states = zeroize::Zeroizing::new(Vec::with_capacity(CHUNK));
    // Every outer block is the same padding after a 64-byte digest.
    let template = {
        let mut one = Vec::with_capacity(1);
        push_padded(&[&[0u8; 64][..]], &mut one);
        one[0]
    };
    for chunk in jobs.chunks(CHUNK) {
        blocks.clear();
        ranges.clear();
        ranges.extend(chunk.iter().map(|j| push_padded(j.message, &mut blocks)));
        states.clear();
        states.extend(chunk.iter().map(|j| j.pads.inner));
        compress_all(&mut states, &blocks, &ranges);
        // Outer hashes: the 64-byte inner digest, one block each: the
        // template (block-buffer's padding, made once per call) with only
        // the digest written per message.
        blocks.clear();
        ranges.clear();
        for s in states.iter() {
            let mut block = template;
            block[..64].copy_from_slice(&digest_bytes(s));
            ranges.push(blocks.len()..blocks.len() + 1);
            blocks.push(block);
            zeroize::Zeroize::zeroize(&mut block);
        }
        states.clear();
        states.extend(chunk.iter().map(|j| j.pads.outer));
        compress_all(&mut states, &blocks, &ranges);
        out.extend(states.iter().map(digest_bytes));
    }
    use zeroize::Zeroize;
    blocks.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hmac_reference(key: &[u8], parts: &[Vec<u8>]) -> [u8; 64] {
        use hmac::{KeyInit, Mac};
        let mut h = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
        for p in parts {
            h.update(p);
        }
        h.finalize().into_bytes().into()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any number of messages of any lengths, split anywhere, under
        /// keys of any length up to a block: equal to RustCrypto's HMAC.
        #[test]
        fn hmac_many_equals_hmac(
            jobs in proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..=128),
                    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
                ),
                0..14,
            )
        ) {
            let pads: Vec<HmacPads> = jobs.iter().map(|(k, _)| HmacPads::new(k)).collect();
            let parts: Vec<Vec<&[u8]>> = jobs
                .iter()
                .map(|(_, m)| m.iter().map(|p| p.as_slice()).collect())
                .collect();
            let batch: Vec<HmacJob<'_>> = pads
                .iter()
                .zip(&parts)
                .map(|(pads, message)| HmacJob { pads, message })
                .collect();
            let got = hmac_sha512_many(&batch);
            prop_assert_eq!(got.len(), jobs.len());
            for ((k, m), g) in jobs.iter().zip(&got) {
                prop_assert_eq!(*g, hmac_reference(k, m));
            }
        }
    }
}
