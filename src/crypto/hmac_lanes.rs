//! HMAC-SHA-512 of many messages at once, through the multi-lane SHA-512
//! compressions of `csfle-sha512-lanes`.
//!
//! Everything around the compression function stays RustCrypto's: `sha2`'s
//! core computes the HMAC pad states and is the scalar path and the
//! fallback, `block-buffer` pads the messages (and the outer hash's
//! one block). The lanes replace only `sha2::block_api::compress512` calls
//! ([`csfle_sha512_lanes`] compares its kernels with it), and the result is
//! compared with `hmac`'s (`tests` below, the `sha512_lanes` fuzz target).
//! Eight lanes of AVX-512 or four of AVX2 when the CPU has them (or the
//! ones `CSFLE_SHA512_KERNEL` asks for); without either, or with the
//! `scalar-sha512` feature, every block goes through `compress512`.
//!
//! Each message's last block and the outer hash go through one nested
//! compression per lane (`compress512_nested_x4`, `…_x8`): the inner
//! digest stays in the kernel's registers as the outer block's first
//! words. An FLE1 tag's message (18 + 16 + 16·n + 8 bytes) fits one block
//! up to 31-byte plaintexts, so a bulk document's HMACs are one nested
//! call per four or eight fields.

use csfle_sha512_lanes::{
    Block, Kernel, LANES, WIDE_LANES, compress512_nested, compress512_nested_x4,
    compress512_nested_x8, compress512_x4, compress512_x8, kernel,
};
use sha2::block_api::compress512;
use std::sync::OnceLock;

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

/// How many blocks [`push_padded`] appends for `parts`: the message, the
/// `0x80` byte and the 16-byte length, rounded up to whole blocks.
fn padded_blocks(parts: &[&[u8]]) -> usize {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    (len + 1 + 16).div_ceil(128)
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

/// The digest's bytes: the chaining value's words, big-endian.
pub(crate) fn digest_bytes(state: &[u64; 8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (chunk, w) in out.chunks_exact_mut(8).zip(state) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// The outer hash's padding: the last 64 bytes of the one block
/// `block-buffer` makes of a 64-byte message hashed after one block (the
/// opad block). The same for every HMAC-SHA-512; made once.
fn outer_tail() -> &'static [u8; 64] {
    static TAIL: OnceLock<[u8; 64]> = OnceLock::new();
    TAIL.get_or_init(|| {
        let mut one = Vec::with_capacity(1);
        push_padded(&[&[0u8; 64][..]], &mut one);
        let mut tail = [0u8; 64];
        // 64 bytes, the 0x80 byte and the 16-byte length fit one block.
        if let Some(block) = one.first() {
            tail.copy_from_slice(&block[64..]);
        }
        tail
    })
}

/// Messages hashed together: their blocks stay in the L1 cache (a batch
/// of a whole 1,500-field document at once would allocate, fault in and
/// wipe hundreds of kilobytes). A multiple of both lane counts.
const CHUNK: usize = 32;

/// Finishes every HMAC of `jobs`: for job `i`, its message's last block
/// (`blocks[last[i]]`) compressed into `states[i]`, then the outer hash
/// from the job's opad state; appends the HMACs' final chaining values to
/// `out`, in order. Eight lanes while more than four messages are left
/// (the AVX-512 kernel), four while more than two are (a lane past the
/// last message repeats it, its result dropped: three of four lanes
/// cost less than three scalar HMACs), `sha2`'s compression for the rest.
fn finish_all(
    jobs: &[HmacJob<'_>],
    states: &[[u64; 8]],
    blocks: &[Block],
    last: &[usize],
    out: &mut Vec<[u64; 8]>,
) {
    let tail = outer_tail();
    let n = jobs.len();
    let kernel = kernel();
    let mut i = 0;
    if kernel == Kernel::Avx512 {
        while n - i > WIDE_LANES / 2 {
            let lane = |l: usize| (i + l).min(n - 1);
            let done = compress512_nested_x8(
                core::array::from_fn(|l| &states[lane(l)]),
                core::array::from_fn(|l| &blocks[last[lane(l)]]),
                core::array::from_fn(|l| &jobs[lane(l)].pads.outer),
                tail,
            );
            let take = (n - i).min(WIDE_LANES);
            out.extend_from_slice(&done[..take]);
            i += take;
        }
    }
    if kernel != Kernel::Scalar {
        while n - i > LANES / 2 {
            let lane = |l: usize| (i + l).min(n - 1);
            let done = compress512_nested_x4(
                core::array::from_fn(|l| &states[lane(l)]),
                core::array::from_fn(|l| &blocks[last[lane(l)]]),
                core::array::from_fn(|l| &jobs[lane(l)].pads.outer),
                tail,
            );
            let take = (n - i).min(LANES);
            out.extend_from_slice(&done[..take]);
            i += take;
        }
    }
    for j in i..n {
        out.push(compress512_nested(
            &states[j],
            &blocks[last[j]],
            &jobs[j].pads.outer,
            tail,
        ));
    }
}

/// HMAC-SHA-512 of every job, in order, as the final chaining values (the
/// digests' words: [`digest_bytes`] makes the bytes), appended to `out`:
/// equal to `hmac::Hmac<Sha512>` over the same key and message, computed
/// eight or four messages at a time. The buffers are allocated once per
/// call and reused from chunk to chunk.
pub(crate) fn hmac_sha512_states(jobs: &[HmacJob<'_>], out: &mut Vec<[u64; 8]>) {
    out.reserve(jobs.len());
    // Every block of a chunk's messages in one buffer, reused (wiped when
    // dropped: the messages of deterministic IVs hold plaintexts), and
    // the inner states (keyed: wiped too). Both are allocated at the size
    // the largest chunk needs: a buffer that grew would leave its old
    // allocation unwiped, and wiping spare capacity costs as much as
    // hashing a few small messages.
    let most_blocks = jobs
        .chunks(CHUNK)
        .map(|chunk| {
            chunk
                .iter()
                .map(|j| padded_blocks(j.message))
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let mut blocks = zeroize::Zeroizing::new(Vec::with_capacity(most_blocks));
    let mut states = zeroize::Zeroizing::new(Vec::with_capacity(jobs.len().min(CHUNK)));
    // Per message: its blocks but the last, and the last.
    let mut body = Vec::with_capacity(CHUNK);
    let mut last = Vec::with_capacity(CHUNK);
    for chunk in jobs.chunks(CHUNK) {
        blocks.clear();
        body.clear();
        last.clear();
        for job in chunk {
            // The padding always adds a block: the range is never empty.
            let range = push_padded(job.message, &mut blocks);
            let end = range.end.saturating_sub(1).max(range.start);
            body.push(range.start..end);
            last.push(end);
        }
        states.clear();
        states.extend(chunk.iter().map(|j| j.pads.inner));
        // Messages longer than a block: their other blocks first.
        if body.iter().any(|r| !r.is_empty()) {
            compress_all(&mut states, &blocks, &body);
        }
        finish_all(chunk, &states, &blocks, &last, out);
    }
}

/// HMAC-SHA-512 of every job, in order: equal to `hmac::Hmac<Sha512>`
/// over the same key and message, computed eight or four messages at a time.
pub(crate) fn hmac_sha512_many(jobs: &[HmacJob<'_>]) -> Vec<[u8; 64]> {
    let mut states = Vec::with_capacity(jobs.len());
    hmac_sha512_states(jobs, &mut states);
    states.iter().map(digest_bytes).collect()
}

#[cfg(test)]
#[path = "hmac_lanes_tests.rs"]
mod tests;
