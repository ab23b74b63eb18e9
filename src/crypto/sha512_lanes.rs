//! Four or eight SHA-512 compressions at once, and HMAC-SHA-512 of many
//! messages through them.
//!
//! The one hand-written primitive csfle allows (issue 15): the FIPS 180-4
//! SHA-512 compression function over independent (state, block) lanes,
//! one SIMD register per word. Everything around it stays RustCrypto's:
//! `sha2`'s core computes the HMAC pad states and is the scalar path and
//! the fallback, `block-buffer` pads the messages. The lanes replace only
//! `sha2::block_api::compress512` calls, and every test compares them with
//! it (`tests` below, the `sha512_lanes` fuzz target).
//!
//! Two kernels, chosen at run time: eight lanes in one AVX-512 register per
//! word (AVX-512F and BW: one-instruction 64-bit rotates and three-input
//! logic), else four lanes in one AVX2 register. Without either, or with
//! the `scalar-sha512` feature, each lane is one `compress512` call.

use sha2::block_api::compress512;

/// Lanes of one multi-buffer compression.
pub const LANES: usize = 4;

/// A SHA-512 block.
pub type Block = [u8; 128];

/// Lanes of the AVX-512 kernel.
pub const WIDE_LANES: usize = 8;

/// The compression kernel this machine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Eight lanes, AVX-512F + AVX-512BW.
    Avx512,
    /// Four lanes, AVX2.
    Avx2,
    /// `compress512`, one block at a time.
    Scalar,
}

/// The fastest kernel this CPU runs (detected once; `scalar-sha512`
/// forces the scalar path).
pub fn kernel() -> Kernel {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    {
        use std::sync::OnceLock;
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                Kernel::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Kernel::Avx2
            } else {
                Kernel::Scalar
            }
        })
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "scalar-sha512"))))]
    {
        Kernel::Scalar
    }
}

/// Whether a multi-lane kernel runs on this machine.
pub(crate) fn lanes_available() -> bool {
    kernel() != Kernel::Scalar
}

/// Compresses `blocks[i]` into `states[i]` for each lane: exactly what four
/// `compress512` calls do (the AVX2 kernel when the CPU has AVX2).
pub fn compress512_x4(states: &mut [[u64; 8]; LANES], blocks: [&Block; LANES]) {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() != Kernel::Scalar {
        // SAFETY: the CPU has AVX2 (both multi-lane kernels imply it:
        // AVX-512F CPUs have AVX2, and `kernel` checked), the only
        // requirement of the kernel.
        #[allow(unsafe_code)]
        unsafe {
            avx2::compress(states, blocks)
        };
        return;
    }
    for (state, block) in states.iter_mut().zip(blocks) {
        compress512(state, std::slice::from_ref(block));
    }
}

/// Compresses `blocks[i]` into `states[i]` for each of eight lanes: exactly
/// what eight `compress512` calls do (the AVX-512 kernel when the CPU has
/// it).
pub fn compress512_x8(states: &mut [[u64; 8]; WIDE_LANES], blocks: [&Block; WIDE_LANES]) {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() == Kernel::Avx512 {
        // SAFETY: the CPU has AVX-512F and AVX-512BW (`kernel` checked),
        // the kernel's requirements.
        #[allow(unsafe_code)]
        unsafe {
            avx512::compress(states, blocks)
        };
        return;
    }
    for (state, block) in states.iter_mut().zip(blocks) {
        compress512(state, std::slice::from_ref(block));
    }
}

/// The SHA-512 round constants (FIPS 180-4 §4.2.3): the first 64 bits of
/// the fractional parts of the cube roots of the first 80 primes.
#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
const K512: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
#[allow(unsafe_code)]
mod avx2 {
    use super::{Block, K512, LANES};
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_andnot_si256, _mm256_extract_epi64,
        _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi64x, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_xor_si256,
    };

    /// Rotate each 64-bit lane right by `N` (AVX2 has no 64-bit rotate).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rotr<const N: i32, const M: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi64::<N>(x), _mm256_slli_epi64::<M>(x))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi64(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }

    /// Σ0(a) = ROTR28 ⊕ ROTR34 ⊕ ROTR39
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma0(a: __m256i) -> __m256i {
        xor3(rotr::<28, 36>(a), rotr::<34, 30>(a), rotr::<39, 25>(a))
    }

    /// Σ1(e) = ROTR14 ⊕ ROTR18 ⊕ ROTR41
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma1(e: __m256i) -> __m256i {
        xor3(rotr::<14, 50>(e), rotr::<18, 46>(e), rotr::<41, 23>(e))
    }

    /// σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma0(x: __m256i) -> __m256i {
        xor3(
            rotr::<1, 63>(x),
            rotr::<8, 56>(x),
            _mm256_srli_epi64::<7>(x),
        )
    }

    /// σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma1(x: __m256i) -> __m256i {
        xor3(
            rotr::<19, 45>(x),
            rotr::<61, 3>(x),
            _mm256_srli_epi64::<6>(x),
        )
    }

    /// Ch(e, f, g) = (e ∧ f) ⊕ (¬e ∧ g)
    #[inline]
    #[target_feature(enable = "avx2")]
    fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g))
    }

    /// Maj(a, b, c) = (a ∧ b) ⊕ (a ∧ c) ⊕ (b ∧ c)
    #[inline]
    #[target_feature(enable = "avx2")]
    fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        xor3(
            _mm256_and_si256(a, b),
            _mm256_and_si256(a, c),
            _mm256_and_si256(b, c),
        )
    }

    /// Word `i` of the four lanes, one per 64-bit element (lane 0 lowest).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn gather(words: [u64; LANES]) -> __m256i {
        _mm256_set_epi64x(
            words[3] as i64,
            words[2] as i64,
            words[1] as i64,
            words[0] as i64,
        )
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn scatter(v: __m256i) -> [u64; LANES] {
        [
            _mm256_extract_epi64::<0>(v) as u64,
            _mm256_extract_epi64::<1>(v) as u64,
            _mm256_extract_epi64::<2>(v) as u64,
            _mm256_extract_epi64::<3>(v) as u64,
        ]
    }

    fn be_word(block: &Block, t: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[8 * t..8 * t + 8]);
        u64::from_be_bytes(w)
    }

    /// The FIPS 180-4 §6.4.2 compression of one block per lane.
    #[target_feature(enable = "avx2")]
    pub(super) fn compress(states: &mut [[u64; 8]; LANES], blocks: [&Block; LANES]) {
        let h: [__m256i; 8] =
            core::array::from_fn(|i| gather(core::array::from_fn(|l| states[l][i])));
        let mut w: [__m256i; 16] =
            core::array::from_fn(|t| gather(core::array::from_fn(|l| be_word(blocks[l], t))));
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (t, k) in K512.iter().enumerate() {
            if t >= 16 {
                w[t % 16] = add(
                    add(small_sigma1(w[(t - 2) % 16]), w[(t - 7) % 16]),
                    add(small_sigma0(w[(t - 15) % 16]), w[t % 16]),
                );
            }
            let t1 = add(
                add(add(hh, big_sigma1(e)), ch(e, f, g)),
                add(_mm256_set1_epi64x(*k as i64), w[t % 16]),
            );
            let t2 = add(big_sigma0(a), maj(a, b, c));
            hh = g;
            g = f;
            f = e;
            e = add(d, t1);
            d = c;
            c = b;
            b = a;
            a = add(t1, t2);
        }
        for (i, v) in [a, b, c, d, e, f, g, hh].into_iter().enumerate() {
            let sums = scatter(add(h[i], v));
            for (state, s) in states.iter_mut().zip(sums) {
                state[i] = s;
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
#[allow(unsafe_code)]
mod avx512 {
    use super::{Block, K512, WIDE_LANES};
    use core::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_ror_epi64, _mm512_set1_epi64,
        _mm512_srli_epi64, _mm512_storeu_si512, _mm512_ternarylogic_epi64,
    };

    /// a ⊕ b ⊕ c, one instruction.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<0x96>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi64(a, b)
    }

    /// Eight words, one per lane, into a register (lane 0 lowest).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(words: &[u64; WIDE_LANES]) -> __m512i {
        // SAFETY: `words` is 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
    }

    /// The FIPS 180-4 §6.4.2 compression of one block per lane.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn compress(states: &mut [[u64; 8]; WIDE_LANES], blocks: [&Block; WIDE_LANES]) {
        // Word-major copies: row i holds word i of every lane.
        let mut rows = [[0u64; WIDE_LANES]; 16];
        for (l, block) in blocks.iter().enumerate() {
            for (t, row) in rows.iter_mut().enumerate() {
                let mut w = [0u8; 8];
                w.copy_from_slice(&block[8 * t..8 * t + 8]);
                row[l] = u64::from_be_bytes(w);
            }
        }
        let mut w: [__m512i; 16] = core::array::from_fn(|t| load(&rows[t]));
        let mut words = [[0u64; WIDE_LANES]; 8];
        for (l, state) in states.iter().enumerate() {
            for (i, row) in words.iter_mut().enumerate() {
                row[l] = state[i];
            }
        }
        let h: [__m512i; 8] = core::array::from_fn(|i| load(&words[i]));
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (t, k) in K512.iter().enumerate() {
            if t >= 16 {
                let w15 = w[(t - 15) % 16];
                let w2 = w[(t - 2) % 16];
                // σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7, σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6
                let s0 = xor3(
                    _mm512_ror_epi64::<1>(w15),
                    _mm512_ror_epi64::<8>(w15),
                    _mm512_srli_epi64::<7>(w15),
                );
                let s1 = xor3(
                    _mm512_ror_epi64::<19>(w2),
                    _mm512_ror_epi64::<61>(w2),
                    _mm512_srli_epi64::<6>(w2),
                );
                w[t % 16] = add(add(s1, w[(t - 7) % 16]), add(s0, w[t % 16]));
            }
            // Σ1(e) = ROTR14 ⊕ ROTR18 ⊕ ROTR41; Ch(e, f, g) = e ? f : g
            let big_s1 = xor3(
                _mm512_ror_epi64::<14>(e),
                _mm512_ror_epi64::<18>(e),
                _mm512_ror_epi64::<41>(e),
            );
            let ch = _mm512_ternarylogic_epi64::<0xCA>(e, f, g);
            let t1 = add(
                add(add(hh, big_s1), ch),
                add(_mm512_set1_epi64(*k as i64), w[t % 16]),
            );
            // Σ0(a) = ROTR28 ⊕ ROTR34 ⊕ ROTR39; Maj(a, b, c): the majority
            let big_s0 = xor3(
                _mm512_ror_epi64::<28>(a),
                _mm512_ror_epi64::<34>(a),
                _mm512_ror_epi64::<39>(a),
            );
            let maj = _mm512_ternarylogic_epi64::<0xE8>(a, b, c);
            let t2 = add(big_s0, maj);
            hh = g;
            g = f;
            f = e;
            e = add(d, t1);
            d = c;
            c = b;
            b = a;
            a = add(t1, t2);
        }
        for (i, v) in [a, b, c, d, e, f, g, hh].into_iter().enumerate() {
            // SAFETY: `words[i]` is 64 writable bytes; the store is
            // unaligned.
            unsafe { _mm512_storeu_si512(words[i].as_mut_ptr().cast(), add(h[i], v)) };
        }
        for (l, state) in states.iter_mut().enumerate() {
            for (i, row) in words.iter().enumerate() {
                state[i] = row[l];
            }
        }
        // The message words and states of the lanes may be secret (the
        // messages of deterministic IVs hold plaintexts).
        use zeroize::Zeroize;
        rows.iter_mut().for_each(|r| r.zeroize());
        words.iter_mut().for_each(|r| r.zeroize());
    }
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

    fn scalar(states: &[[u64; 8]; LANES], blocks: [&Block; LANES]) -> [[u64; 8]; LANES] {
        let mut out = *states;
        for (s, b) in out.iter_mut().zip(blocks) {
            compress512(s, std::slice::from_ref(b));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Arbitrary states and blocks: the lanes equal four `compress512`s.
        #[test]
        fn lanes_equal_compress512(
            states in proptest::array::uniform4(proptest::array::uniform8(any::<u64>())),
            blocks in proptest::array::uniform4(proptest::collection::vec(any::<u8>(), 128)),
        ) {
            let blocks: [Block; LANES] = core::array::from_fn(|i| blocks[i].clone().try_into().unwrap());
            let refs: [&Block; LANES] = core::array::from_fn(|i| &blocks[i]);
            let want = scalar(&states, refs);
            let mut got = states;
            compress512_x4(&mut got, refs);
            prop_assert_eq!(got, want);
        }
    }

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Arbitrary states and blocks: eight lanes equal eight
        /// `compress512`s.
        #[test]
        fn wide_lanes_equal_compress512(
            states in proptest::collection::vec(proptest::array::uniform8(any::<u64>()), WIDE_LANES),
            blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 128), WIDE_LANES),
        ) {
            let states: [[u64; 8]; WIDE_LANES] = states.try_into().unwrap();
            let blocks: [Block; WIDE_LANES] = core::array::from_fn(|i| blocks[i].clone().try_into().unwrap());
            let mut want = states;
            for (s, b) in want.iter_mut().zip(&blocks) {
                compress512(s, std::slice::from_ref(b));
            }
            let mut got = states;
            compress512_x8(&mut got, core::array::from_fn(|i| &blocks[i]));
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn edge_states_and_blocks() {
        for fill in [0u8, 0xff, 0x80, 0x01] {
            for word in [0u64, u64::MAX, 1 << 63, 1] {
                let states = [[word; 8]; LANES];
                let block = [fill; 128];
                let refs = [&block; LANES];
                let mut got = states;
                compress512_x4(&mut got, refs);
                assert_eq!(got, scalar(&states, refs));
            }
        }
    }
}
