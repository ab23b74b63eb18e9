//! Four or eight SHA-512 compressions at once, in SIMD lanes.
//!
//! The FIPS 180-4 SHA-512 compression function over independent
//! (state, block) lanes, one SIMD register per word: [`compress512_x4`]
//! and [`compress512_x8`] do exactly what four or eight calls of
//! [`sha2::block_api::compress512`] (one block each) do, faster. They are
//! building blocks for computing many hashes or HMACs at once (csfle uses
//! them for the HMAC-SHA-512 tags of a whole document); padding, HMAC and
//! everything else stay the caller's.
//!
//! [`compress512_nested_x4`] and [`compress512_nested_x8`] chain two
//! compressions per lane: a message's last block, then the one block of a
//! second hash over that 64-byte digest (followed by the caller's padding
//! bytes), from another chaining value. That is the end of every HMAC
//! (the inner hash's last block and the whole outer hash): the digest
//! stays in the registers, word-major, instead of going out to bytes and
//! back. [`compress512_nested`] is the same for one lane.
//!
//! Three kernels, chosen at run time ([`kernel`]): eight lanes in one
//! AVX-512 register per word (AVX-512F and BW: one-instruction 64-bit
//! rotates and three-input logic), else four lanes in one AVX2 register.
//! Without either (or on another architecture, or with the `scalar-sha512`
//! feature), each lane is one `compress512` call, so the functions are
//! correct everywhere. For measurements, the environment variable
//! [`KERNEL_ENV`] (`CSFLE_SHA512_KERNEL`) asks for a kernel: `auto` (the
//! default), `avx512`, `avx2` or `scalar`; a kernel the CPU lacks falls
//! back to the best one it has, and [`selected_kernel`] says which runs.
//!
//! This crate holds the only `unsafe` code of csfle's cryptography: the
//! calls of the `#[target_feature]` kernels, made after the CPU was
//! checked for the features, and the unaligned loads and stores of SIMD
//! registers; each with its `SAFETY` note. Its tests compare every
//! kernel with `compress512` on arbitrary states and blocks.
//!
//! ```
//! use csfle_sha512_lanes::{compress512_x4, Block, LANES};
//!
//! let blocks: [Block; LANES] = core::array::from_fn(|i| [i as u8; 128]);
//! let mut states = [[0x6a09e667f3bcc908u64; 8]; LANES];
//! let mut expected = states;
//! compress512_x4(&mut states, core::array::from_fn(|i| &blocks[i]));
//! for (state, block) in expected.iter_mut().zip(&blocks) {
//!     sha2::block_api::compress512(state, std::slice::from_ref(block));
//! }
//! assert_eq!(states, expected);
//! ```

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, unreachable_pub)]

use sha2::block_api::compress512;
use std::sync::OnceLock;
use zeroize::Zeroize;

/// Lanes of one multi-buffer compression.
pub const LANES: usize = 4;

/// A SHA-512 block.
pub type Block = [u8; 128];

/// Lanes of the AVX-512 kernel.
pub const WIDE_LANES: usize = 8;

/// The environment variable that asks for a kernel: `auto` (or unset:
/// the best the CPU runs), `avx512`, `avx2` or `scalar`. Read once, at the
/// first call of [`kernel`]. A kernel the CPU lacks, or any other value,
/// gives the best kernel the CPU runs; with the `scalar-sha512` feature
/// the scalar path runs whatever it says. Meant for benchmarks (comparing
/// the AVX2 path on a machine that also has AVX-512); every kernel
/// computes the same values.
pub const KERNEL_ENV: &str = "CSFLE_SHA512_KERNEL";

/// The compression kernel this machine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Eight lanes, AVX-512F + AVX-512BW.
    Avx512,
    /// Four lanes, AVX2.
    Avx2,
    /// `compress512`, one block at a time.
    Scalar,
}

impl Kernel {
    /// The kernel's name, as [`KERNEL_ENV`] spells it: `avx512`, `avx2` or
    /// `scalar`.
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Scalar => "scalar",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the CPU has what the AVX-512 kernel is compiled with.
#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Whether the CPU has what the AVX2 kernel is compiled with.
#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether this CPU (and this build) runs `kernel`.
fn runs(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Scalar => true,
        #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
        Kernel::Avx512 => has_avx512(),
        #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
        Kernel::Avx2 => has_avx2(),
        #[cfg(not(all(target_arch = "x86_64", not(feature = "scalar-sha512"))))]
        Kernel::Avx512 | Kernel::Avx2 => false,
    }
}

/// The kernel for the request `requested` (the value of [`KERNEL_ENV`],
/// if set): the one asked for when the CPU runs it, else the best the CPU
/// runs.
fn choose(requested: Option<&str>) -> Kernel {
    let asked = match requested.map(str::trim) {
        Some(name) if name.eq_ignore_ascii_case("avx512") => Some(Kernel::Avx512),
        Some(name) if name.eq_ignore_ascii_case("avx2") => Some(Kernel::Avx2),
        Some(name) if name.eq_ignore_ascii_case("scalar") => Some(Kernel::Scalar),
        // `auto`, and any other value: the best available.
        _ => None,
    };
    match asked {
        Some(kernel) if runs(kernel) => kernel,
        _ => [Kernel::Avx512, Kernel::Avx2]
            .into_iter()
            .find(|&k| runs(k))
            .unwrap_or(Kernel::Scalar),
    }
}

/// The kernel that runs: the fastest this CPU has, or the one
/// [`KERNEL_ENV`] asks for if the CPU has it (decided once; the
/// `scalar-sha512` feature forces the scalar path).
pub fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| choose(std::env::var(KERNEL_ENV).ok().as_deref()))
}

/// The name of the kernel that runs ([`kernel`]): `avx512`, `avx2` or
/// `scalar`. What a benchmark prints next to its figures.
pub fn selected_kernel() -> &'static str {
    kernel().name()
}

/// Compresses `blocks[i]` into `states[i]` for each lane: exactly what four
/// `compress512` calls do (the AVX2 kernel unless [`kernel`] is the scalar
/// path or the CPU lacks AVX2).
pub fn compress512_x4(states: &mut [[u64; 8]; LANES], blocks: [&Block; LANES]) {
    // AVX2 is detected here, not inferred from `kernel()`: `Kernel::Avx512`
    // is chosen from AVX-512F and BW alone, and a CPU (or a hypervisor's
    // CPUID mask) may report those without AVX2. std caches the detection:
    // this is one atomic load.
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() != Kernel::Scalar && has_avx2() {
        // SAFETY: the CPU has AVX2, checked on the line above, the only
        // target feature the kernel is compiled with.
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
/// what eight `compress512` calls do (the AVX-512 kernel when it is
/// [`kernel`], else two four-lane calls).
pub fn compress512_x8(states: &mut [[u64; 8]; WIDE_LANES], blocks: [&Block; WIDE_LANES]) {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() == Kernel::Avx512 && has_avx512() {
        // SAFETY: the CPU has AVX-512F and AVX-512BW (checked on the line
        // above), the kernel's target features.
        #[allow(unsafe_code)]
        unsafe {
            avx512::compress(states, blocks)
        };
        return;
    }
    let (halves, _) = states.as_chunks_mut::<LANES>();
    let (block_halves, _) = blocks.as_chunks::<LANES>();
    for (half, blocks) in halves.iter_mut().zip(block_halves) {
        compress512_x4(half, *blocks);
    }
}

/// Two chained compressions of one lane: `block` into a copy of `first`,
/// then, into a copy of `second`, the block made of that result's 64-byte
/// big-endian digest followed by `tail`. Returns the second chaining
/// value. For an HMAC-SHA-512 whose message ends with `block` (its inner
/// state at that point being `first`), `second` the outer pad's state and
/// `tail` the padding of a 64-byte message after one block, that is the
/// HMAC's digest, as eight words.
pub fn compress512_nested(
    first: &[u64; 8],
    block: &Block,
    second: &[u64; 8],
    tail: &[u8; 64],
) -> [u64; 8] {
    let mut inner = *first;
    compress512(&mut inner, std::slice::from_ref(block));
    let mut outer_block = [0u8; 128];
    for (bytes, word) in outer_block[..64].chunks_exact_mut(8).zip(&inner) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    outer_block[64..].copy_from_slice(tail);
    let mut out = *second;
    compress512(&mut out, std::slice::from_ref(&outer_block));
    // The inner digest of an HMAC is as secret as its message.
    inner.zeroize();
    outer_block.zeroize();
    out
}

/// [`compress512_nested`] for four lanes (each its own `first`, `block`
/// and `second`; one `tail` for all): the AVX2 kernel unless [`kernel`] is
/// the scalar path or the CPU lacks AVX2.
pub fn compress512_nested_x4(
    first: [&[u64; 8]; LANES],
    blocks: [&Block; LANES],
    second: [&[u64; 8]; LANES],
    tail: &[u8; 64],
) -> [[u64; 8]; LANES] {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() != Kernel::Scalar && has_avx2() {
        // SAFETY: the CPU has AVX2, checked on the line above, the only
        // target feature the kernel is compiled with.
        #[allow(unsafe_code)]
        let out = unsafe { avx2::nested(first, blocks, second, tail) };
        return out;
    }
    core::array::from_fn(|l| compress512_nested(first[l], blocks[l], second[l], tail))
}

/// [`compress512_nested`] for eight lanes: the AVX-512 kernel when it is
/// [`kernel`], else two four-lane calls.
pub fn compress512_nested_x8(
    first: [&[u64; 8]; WIDE_LANES],
    blocks: [&Block; WIDE_LANES],
    second: [&[u64; 8]; WIDE_LANES],
    tail: &[u8; 64],
) -> [[u64; 8]; WIDE_LANES] {
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if kernel() == Kernel::Avx512 && has_avx512() {
        // SAFETY: the CPU has AVX-512F and AVX-512BW (checked on the line
        // above), the kernel's target features.
        #[allow(unsafe_code)]
        let out = unsafe { avx512::nested(first, blocks, second, tail) };
        return out;
    }
    let half = |h: usize| {
        compress512_nested_x4(
            core::array::from_fn(|l| first[LANES * h + l]),
            core::array::from_fn(|l| blocks[LANES * h + l]),
            core::array::from_fn(|l| second[LANES * h + l]),
            tail,
        )
    };
    let (low, high) = (half(0), half(1));
    core::array::from_fn(|l| if l < LANES { low[l] } else { high[l - LANES] })
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

/// The eight big-endian words of `tail`: the last eight message words of
/// a nested compression's second block, the same in every lane.
#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
fn tail_words(tail: &[u8; 64]) -> [u64; 8] {
    let mut words = [0u64; 8];
    for (word, bytes) in words.iter_mut().zip(tail.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_be_bytes(b);
    }
    words
}

#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
#[allow(unsafe_code)]
mod avx2 {
    //! Four lanes, one 256-bit register per word. Blocks and states are
    //! loaded with whole-register loads (the words byte-swapped by one
    //! shuffle) and transposed in registers, so nothing is copied through
    //! word arrays in memory; the rounds share one `b ⊕ c` between
    //! consecutive Maj functions and rotate by 8 with a byte shuffle.

    use super::{Block, K512, LANES};
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_loadu_si256, _mm256_or_si256,
        _mm256_permute2x128_si256, _mm256_set1_epi64x, _mm256_setr_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256,
        _mm256_unpackhi_epi64, _mm256_unpacklo_epi64, _mm256_xor_si256,
    };

    /// One 64-bit word of each of the four lanes (lane 0 lowest).
    type V = __m256i;

    /// Rotate each 64-bit lane right by `N` (AVX2 has no 64-bit rotate;
    /// `M` is 64 − `N`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rotr<const N: i32, const M: i32>(x: V) -> V {
        _mm256_or_si256(_mm256_srli_epi64::<N>(x), _mm256_slli_epi64::<M>(x))
    }

    /// ROTR8 of each 64-bit lane: one byte shuffle (the shuffle port)
    /// instead of two shifts and an or (the shift ports).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rotr8(x: V) -> V {
        let order = _mm256_setr_epi8(
            1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 8, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10,
            11, 12, 13, 14, 15, 8,
        );
        _mm256_shuffle_epi8(x, order)
    }

    /// Each 64-bit lane's bytes reversed: big-endian words as loaded from
    /// a block.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn byte_swap(x: V) -> V {
        let order = _mm256_setr_epi8(
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14,
            13, 12, 11, 10, 9, 8,
        );
        _mm256_shuffle_epi8(x, order)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn add(a: V, b: V) -> V {
        _mm256_add_epi64(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor(a: V, b: V) -> V {
        _mm256_xor_si256(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: V, b: V, c: V) -> V {
        xor(xor(a, b), c)
    }

    /// Σ0(a) = ROTR28 ⊕ ROTR34 ⊕ ROTR39
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma0(a: V) -> V {
        xor3(rotr::<28, 36>(a), rotr::<34, 30>(a), rotr::<39, 25>(a))
    }

    /// Σ1(e) = ROTR14 ⊕ ROTR18 ⊕ ROTR41
    #[inline]
    #[target_feature(enable = "avx2")]
    fn big_sigma1(e: V) -> V {
        xor3(rotr::<14, 50>(e), rotr::<18, 46>(e), rotr::<41, 23>(e))
    }

    /// σ0(x) = ROTR1 ⊕ ROTR8 ⊕ SHR7
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma0(x: V) -> V {
        xor3(rotr::<1, 63>(x), rotr8(x), _mm256_srli_epi64::<7>(x))
    }

    /// σ1(x) = ROTR19 ⊕ ROTR61 ⊕ SHR6
    #[inline]
    #[target_feature(enable = "avx2")]
    fn small_sigma1(x: V) -> V {
        xor3(
            rotr::<19, 45>(x),
            rotr::<61, 3>(x),
            _mm256_srli_epi64::<6>(x),
        )
    }

    /// A 4×4 transpose of 64-bit words: element `j` of row `i` of the
    /// result is element `i` of row `j` of `rows`. Its own inverse.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose(rows: [V; 4]) -> [V; 4] {
        // [r0.0, r1.0, r0.2, r1.2], [r0.1, r1.1, r0.3, r1.3], and the same
        // for rows 2 and 3; then the 128-bit halves paired up.
        let t0 = _mm256_unpacklo_epi64(rows[0], rows[1]);
        let t1 = _mm256_unpackhi_epi64(rows[0], rows[1]);
        let t2 = _mm256_unpacklo_epi64(rows[2], rows[3]);
        let t3 = _mm256_unpackhi_epi64(rows[2], rows[3]);
        [
            _mm256_permute2x128_si256::<0x20>(t0, t2),
            _mm256_permute2x128_si256::<0x20>(t1, t3),
            _mm256_permute2x128_si256::<0x31>(t0, t2),
            _mm256_permute2x128_si256::<0x31>(t1, t3),
        ]
    }

    /// The 16 big-endian message words of the four blocks, word-major:
    /// element `t` holds word `t` of every lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_block_words(blocks: [&Block; LANES]) -> [V; 16] {
        let mut w = [_mm256_setzero_si256(); 16];
        for (j, words) in w.chunks_exact_mut(4).enumerate() {
            let mut rows = [_mm256_setzero_si256(); LANES];
            for (row, block) in rows.iter_mut().zip(blocks) {
                let bytes = &block[32 * j..32 * j + 32];
                // SAFETY: `bytes` is 32 readable bytes, the width of the
                // load, which is unaligned.
                *row = byte_swap(unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) });
            }
            words.copy_from_slice(&transpose(rows));
        }
        w
    }

    /// The chaining values of the four lanes, word-major: element `i`
    /// holds word `i` of every lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_states(states: [&[u64; 8]; LANES]) -> [V; 8] {
        let mut low = [_mm256_setzero_si256(); LANES];
        let mut high = [_mm256_setzero_si256(); LANES];
        for ((lo, hi), state) in low.iter_mut().zip(high.iter_mut()).zip(states) {
            let (first, second) = state.split_at(4);
            // SAFETY: `first` and `second` are four words (32 readable
            // bytes) each, the width of the loads, which are unaligned.
            unsafe {
                *lo = _mm256_loadu_si256(first.as_ptr().cast());
                *hi = _mm256_loadu_si256(second.as_ptr().cast());
            }
        }
        let (low, high) = (transpose(low), transpose(high));
        [
            low[0], low[1], low[2], low[3], high[0], high[1], high[2], high[3],
        ]
    }

    /// [`load_states`] the other way: the word-major `h` into the lanes'
    /// chaining values.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn store_states(h: [V; 8], states: &mut [[u64; 8]; LANES]) {
        let low = transpose([h[0], h[1], h[2], h[3]]);
        let high = transpose([h[4], h[5], h[6], h[7]]);
        for ((state, lo), hi) in states.iter_mut().zip(low).zip(high) {
            let (first, second) = state.split_at_mut(4);
            // SAFETY: `first` and `second` are four words (32 writable
            // bytes) each, the width of the stores, which are unaligned.
            unsafe {
                _mm256_storeu_si256(first.as_mut_ptr().cast(), lo);
                _mm256_storeu_si256(second.as_mut_ptr().cast(), hi);
            }
        }
    }

    /// One round (FIPS 180-4 §6.4.2 step 3) on `s` = a…h, `kw` being
    /// K_t + W_t; `bc` carries b ⊕ c from round to round.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn round(s: &mut [V; 8], bc: &mut V, kw: V) {
        let [a, b, c, d, e, f, g, h] = *s;
        // Ch(e, f, g) = (e ∧ f) ⊕ (¬e ∧ g) = ((f ⊕ g) ∧ e) ⊕ g
        let ch = xor(_mm256_and_si256(xor(f, g), e), g);
        let t1 = add(add(add(h, kw), ch), big_sigma1(e));
        // Maj(a, b, c) = ((a ⊕ b) ∧ (b ⊕ c)) ⊕ b, and this round's a ⊕ b
        // is the next round's b ⊕ c.
        let ab = xor(a, b);
        let maj = xor(_mm256_and_si256(ab, *bc), b);
        *bc = ab;
        let t2 = add(big_sigma0(a), maj);
        *s = [add(t1, t2), a, b, c, add(d, t1), e, f, g];
    }

    /// The compression of one block per lane (`w`: its message words,
    /// word-major) into the chaining values `h`: the next chaining values.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn compress_words(h: [V; 8], mut w: [V; 16]) -> [V; 8] {
        let mut s = h;
        let mut bc = xor(h[1], h[2]);
        for (k, word) in K512[..16].iter().zip(w.iter()) {
            round(&mut s, &mut bc, add(_mm256_set1_epi64x(*k as i64), *word));
        }
        for (t, k) in K512.iter().enumerate().skip(16) {
            // W_t = σ1(W_t−2) + W_t−7 + σ0(W_t−15) + W_t−16, in a ring of 16.
            let i = t % 16;
            w[i] = add(
                add(w[i], small_sigma0(w[(t - 15) % 16])),
                add(w[(t - 7) % 16], small_sigma1(w[(t - 2) % 16])),
            );
            round(&mut s, &mut bc, add(_mm256_set1_epi64x(*k as i64), w[i]));
        }
        core::array::from_fn(|i| add(h[i], s[i]))
    }

    /// The compression of one block per lane, in place.
    #[target_feature(enable = "avx2")]
    pub(super) fn compress(states: &mut [[u64; 8]; LANES], blocks: [&Block; LANES]) {
        let h = load_states([&states[0], &states[1], &states[2], &states[3]]);
        let next = compress_words(h, load_block_words(blocks));
        store_states(next, states);
    }

    /// `compress512_nested` in four lanes. The first compression's result
    /// stays in the registers as the first eight words of the second block
    /// (a chaining value's words are its digest's big-endian words).
    #[target_feature(enable = "avx2")]
    pub(super) fn nested(
        first: [&[u64; 8]; LANES],
        blocks: [&Block; LANES],
        second: [&[u64; 8]; LANES],
        tail: &[u8; 64],
    ) -> [[u64; 8]; LANES] {
        let inner = compress_words(load_states(first), load_block_words(blocks));
        let tail = super::tail_words(tail);
        let w: [V; 16] = core::array::from_fn(|t| {
            if t < 8 {
                inner[t]
            } else {
                _mm256_set1_epi64x(tail[t - 8] as i64)
            }
        });
        let outer = compress_words(load_states(second), w);
        let mut out = [[0u64; 8]; LANES];
        store_states(outer, &mut out);
        out
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
#[allow(unsafe_code)]
mod avx512 {
    //! Eight lanes, one 512-bit register per word, with one-instruction
    //! rotates and three-input logic. Blocks and states go through
    //! word-major arrays (wiped after use).

    use super::{Block, K512, WIDE_LANES};
    use core::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_ror_epi64, _mm512_set1_epi64,
        _mm512_srli_epi64, _mm512_storeu_si512, _mm512_ternarylogic_epi64,
    };
    use zeroize::Zeroize;

    /// One 64-bit word of each of the eight lanes (lane 0 lowest).
    type V = __m512i;

    /// a ⊕ b ⊕ c, one instruction.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi64::<0x96>(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_epi64(a, b)
    }

    /// Eight words, one per lane, into a register (lane 0 lowest).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(words: &[u64; WIDE_LANES]) -> V {
        // SAFETY: `words` is 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
    }

    /// A register's eight words, one per lane, into `words`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store(v: V, words: &mut [u64; WIDE_LANES]) {
        // SAFETY: `words` is 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), v) };
    }

    /// The 16 big-endian message words of the eight blocks, word-major.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_block_words(blocks: [&Block; WIDE_LANES]) -> [V; 16] {
        // Row t holds word t of every lane.
        let mut rows = [[0u64; WIDE_LANES]; 16];
        for (l, block) in blocks.iter().enumerate() {
            for (row, bytes) in rows.iter_mut().zip(block.chunks_exact(8)) {
                let mut w = [0u8; 8];
                w.copy_from_slice(bytes);
                row[l] = u64::from_be_bytes(w);
            }
        }
        let w = core::array::from_fn(|t| load(&rows[t]));
        // The message words may be secret (an HMAC's message; csfle's
        // deterministic IVs hash plaintexts).
        rows.iter_mut().for_each(|r| r.zeroize());
        w
    }

    /// The chaining values of the eight lanes, word-major.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load_states(states: [&[u64; 8]; WIDE_LANES]) -> [V; 8] {
        let mut words = [[0u64; WIDE_LANES]; 8];
        for (l, state) in states.iter().enumerate() {
            for (row, word) in words.iter_mut().zip(state.iter()) {
                row[l] = *word;
            }
        }
        let h = core::array::from_fn(|i| load(&words[i]));
        // The states may be secret (an HMAC's keyed states).
        words.iter_mut().for_each(|r| r.zeroize());
        h
    }

    /// [`load_states`] the other way.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn store_states(h: [V; 8], states: &mut [[u64; 8]; WIDE_LANES]) {
        let mut words = [[0u64; WIDE_LANES]; 8];
        for (row, v) in words.iter_mut().zip(h) {
            store(v, row);
        }
        for (l, state) in states.iter_mut().enumerate() {
            for (word, row) in state.iter_mut().zip(words.iter()) {
                *word = row[l];
            }
        }
        words.iter_mut().for_each(|r| r.zeroize());
    }

    /// The FIPS 180-4 §6.4.2 compression of one block per lane (`w`: its
    /// message words, word-major) into the chaining values `h`: the next
    /// chaining values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress_words(h: [V; 8], mut w: [V; 16]) -> [V; 8] {
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
        let s = [a, b, c, d, e, f, g, hh];
        core::array::from_fn(|i| add(h[i], s[i]))
    }

    /// The compression of one block per lane, in place.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn compress(states: &mut [[u64; 8]; WIDE_LANES], blocks: [&Block; WIDE_LANES]) {
        let view: &[[u64; 8]; WIDE_LANES] = states;
        let h = load_states(core::array::from_fn(|l| &view[l]));
        let next = compress_words(h, load_block_words(blocks));
        store_states(next, states);
    }

    /// `compress512_nested` in eight lanes: the first compression's result
    /// stays in the registers as the first eight words of the second block.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn nested(
        first: [&[u64; 8]; WIDE_LANES],
        blocks: [&Block; WIDE_LANES],
        second: [&[u64; 8]; WIDE_LANES],
        tail: &[u8; 64],
    ) -> [[u64; 8]; WIDE_LANES] {
        let inner = compress_words(load_states(first), load_block_words(blocks));
        let tail = super::tail_words(tail);
        let w: [V; 16] = core::array::from_fn(|t| {
            if t < 8 {
                inner[t]
            } else {
                _mm512_set1_epi64(tail[t - 8] as i64)
            }
        });
        let outer = compress_words(load_states(second), w);
        let mut out = [[0u64; 8]; WIDE_LANES];
        store_states(outer, &mut out);
        out
    }
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

    /// The two compressions of [`compress512_nested`], spelt out with
    /// `compress512` and a block built byte by byte.
    fn nested_reference(
        first: &[u64; 8],
        block: &Block,
        second: &[u64; 8],
        tail: &[u8; 64],
    ) -> [u64; 8] {
        let mut inner = *first;
        compress512(&mut inner, std::slice::from_ref(block));
        let mut outer_block = [0u8; 128];
        for (i, word) in inner.iter().enumerate() {
            outer_block[8 * i..8 * i + 8].copy_from_slice(&word.to_be_bytes());
        }
        outer_block[64..].copy_from_slice(tail);
        let mut out = *second;
        compress512(&mut out, std::slice::from_ref(&outer_block));
        out
    }

    fn block_of(bytes: &[u8]) -> Block {
        bytes.try_into().unwrap()
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Arbitrary chaining values, blocks and tails: the nested
        /// compressions of one, four and eight lanes equal two
        /// `compress512`s each.
        #[test]
        fn nested_equals_two_compressions(
            firsts in proptest::collection::vec(proptest::array::uniform8(any::<u64>()), WIDE_LANES),
            seconds in proptest::collection::vec(proptest::array::uniform8(any::<u64>()), WIDE_LANES),
            blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 128), WIDE_LANES),
            tail in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let blocks: Vec<Block> = blocks.iter().map(|b| block_of(b)).collect();
            let tail: [u8; 64] = tail.try_into().unwrap();
            let want: Vec<[u64; 8]> = (0..WIDE_LANES)
                .map(|l| nested_reference(&firsts[l], &blocks[l], &seconds[l], &tail))
                .collect();
            for l in 0..WIDE_LANES {
                prop_assert_eq!(compress512_nested(&firsts[l], &blocks[l], &seconds[l], &tail), want[l]);
            }
            let four = compress512_nested_x4(
                core::array::from_fn(|l| &firsts[l]),
                core::array::from_fn(|l| &blocks[l]),
                core::array::from_fn(|l| &seconds[l]),
                &tail,
            );
            prop_assert_eq!(&four[..], &want[..LANES]);
            let eight = compress512_nested_x8(
                core::array::from_fn(|l| &firsts[l]),
                core::array::from_fn(|l| &blocks[l]),
                core::array::from_fn(|l| &seconds[l]),
                &tail,
            );
            prop_assert_eq!(&eight[..], &want[..]);
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

    #[test]
    fn wide_edge_states_and_blocks() {
        for fill in [0u8, 0xff, 0x80, 0x01] {
            for word in [0u64, u64::MAX, 1 << 63, 1] {
                let states = [[word; 8]; WIDE_LANES];
                let block = [fill; 128];
                let mut want = states;
                for s in want.iter_mut() {
                    compress512(s, std::slice::from_ref(&block));
                }
                let mut got = states;
                compress512_x8(&mut got, [&block; WIDE_LANES]);
                assert_eq!(got, want);
            }
        }
    }

    /// Lanes that differ only in their block (and lanes that are the same
    /// message twice) come out as their own `compress512`s: no lane reads
    /// another's words.
    #[test]
    fn nested_lanes_are_independent() {
        let first = [0x6a09e667f3bcc908u64; 8];
        let second = [0xbb67ae8584caa73bu64; 8];
        let tail = [0x5a; 64];
        let blocks: [Block; WIDE_LANES] = core::array::from_fn(|l| [(l / 2) as u8; 128]);
        let got = compress512_nested_x8(
            [&first; WIDE_LANES],
            core::array::from_fn(|l| &blocks[l]),
            [&second; WIDE_LANES],
            &tail,
        );
        for (l, block) in blocks.iter().enumerate() {
            assert_eq!(
                got[l],
                nested_reference(&first, block, &second, &tail),
                "lane {l}"
            );
        }
        assert_eq!(got[0], got[1]);
        assert_ne!(got[1], got[2]);
    }

    /// The switch gives the kernel asked for when the CPU runs it, the
    /// best the CPU runs otherwise (or for `auto`, nothing, or a name it
    /// does not know), and never a kernel the CPU lacks.
    #[test]
    fn the_switch_falls_back_to_the_best_available() {
        let best = choose(None);
        assert!(runs(best));
        assert_eq!(choose(Some("auto")), best);
        assert_eq!(choose(Some("no such kernel")), best);
        assert_eq!(choose(Some("scalar")), Kernel::Scalar);
        for (name, kernel) in [("avx2", Kernel::Avx2), (" AVX512 ", Kernel::Avx512)] {
            let want = if runs(kernel) { kernel } else { best };
            assert_eq!(choose(Some(name)), want, "{name}");
        }
        if runs(Kernel::Avx512) {
            assert_eq!(best, Kernel::Avx512);
        } else if runs(Kernel::Avx2) {
            assert_eq!(best, Kernel::Avx2);
        }
        assert!(runs(kernel()));
        assert_eq!(selected_kernel(), kernel().name());
        assert_eq!(Kernel::Avx2.to_string(), "avx2");
    }

    /// With `scalar-sha512` no multi-lane kernel runs, whatever the CPU
    /// or the switch asks for.
    #[cfg(feature = "scalar-sha512")]
    #[test]
    fn the_feature_forces_the_scalar_kernel() {
        assert_eq!(kernel(), Kernel::Scalar);
        assert_eq!(choose(Some("avx512")), Kernel::Scalar);
        assert_eq!(choose(Some("avx2")), Kernel::Scalar);
    }
}
