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
//! Two kernels, chosen at run time ([`kernel`]): eight lanes in one
//! AVX-512 register per word (AVX-512F and BW: one-instruction 64-bit
//! rotates and three-input logic), else four lanes in one AVX2 register.
//! Without either (or on another architecture, or with the `scalar-sha512`
//! feature), each lane is one `compress512` call, so the functions are
//! correct everywhere.
//!
//! This crate holds the only `unsafe` code of csfle's cryptography: the
//! calls of the `#[target_feature]` kernels, made after the CPU was
//! checked for the features, and the unaligned loads and stores of
//! AVX-512 registers; each with its `SAFETY` note. Its tests compare every
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

/// Lanes of one multi-buffer compression.
pub const LANES: usize = 4;

/// A SHA-512 block.
pub type Block = [u8; 128];

/// Lanes of the AVX-512 kernel.
pub const WIDE_LANES: usize = 8;

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

/// Compresses `blocks[i]` into `states[i]` for each lane: exactly what four
/// `compress512` calls do (the AVX2 kernel when the CPU has AVX2).
pub fn compress512_x4(states: &mut [[u64; 8]; LANES], blocks: [&Block; LANES]) {
    // AVX2 is detected here, not inferred from `kernel()`: `Kernel::Avx512`
    // is chosen from AVX-512F and BW alone, and a CPU (or a hypervisor's
    // CPUID mask) may report those without AVX2. std caches the detection:
    // this is one atomic load.
    #[cfg(all(target_arch = "x86_64", not(feature = "scalar-sha512")))]
    if std::arch::is_x86_feature_detected!("avx2") {
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
    fn gather(words: &[u64; LANES]) -> __m256i {
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
        // Word-major copies, as in the AVX-512 kernel: row t holds word t
        // of every lane; both are wiped before returning.
        let mut rows = [[0u64; LANES]; 16];
        for (l, block) in blocks.iter().enumerate() {
            for (t, row) in rows.iter_mut().enumerate() {
                row[l] = be_word(block, t);
            }
        }
        let mut w: [__m256i; 16] = core::array::from_fn(|t| gather(&rows[t]));
        let mut words = [[0u64; LANES]; 8];
        for (l, state) in states.iter().enumerate() {
            for (i, row) in words.iter_mut().enumerate() {
                row[l] = state[i];
            }
        }
        let h: [__m256i; 8] = core::array::from_fn(|i| gather(&words[i]));
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
            words[i] = scatter(add(h[i], v));
        }
        for (l, state) in states.iter_mut().enumerate() {
            for (i, row) in words.iter().enumerate() {
                state[i] = row[l];
            }
        }
        // The message words and states of the lanes may be secret (an
        // HMAC's keyed states; csfle's deterministic IVs hash plaintexts),
        // wiped as the AVX-512 kernel wipes its copies.
        use zeroize::Zeroize;
        rows.iter_mut().for_each(|r| r.zeroize());
        words.iter_mut().for_each(|r| r.zeroize());
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
        // The message words and states of the lanes may be secret (an
        // HMAC's keyed states; csfle's deterministic IVs hash plaintexts).
        use zeroize::Zeroize;
        rows.iter_mut().for_each(|r| r.zeroize());
        words.iter_mut().for_each(|r| r.zeroize());
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

    /// With `scalar-sha512` no multi-lane kernel runs, whatever the CPU.
    #[cfg(feature = "scalar-sha512")]
    #[test]
    fn the_feature_forces_the_scalar_kernel() {
        assert_eq!(kernel(), Kernel::Scalar);
    }
}
