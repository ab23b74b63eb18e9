//! Where QE encryption takes its randomness.
//!
//! Every random byte of a QE payload (IVs, the contention factor draw)
//! comes from a [`QeRandom`] passed in by the caller, so that the tests can
//! replay libmongocrypt's fixed-RNG vectors in libmongocrypt's order. It is
//! a struct, not a trait: nobody outside this crate can make a source, and
//! the fixed one is compiled only for this crate's unit tests and the
//! `fuzzing` feature.

use super::Error;

/// A source of random bytes for QE encryption.
///
/// [`QeRandom::system`] is csfle's per-thread ChaCha12 generator, seeded
/// from the operating system and reseeded after `fork` (see
/// [`crate::crypto::fill_random`]).
pub struct QeRandom {
    source: Source,
}

enum Source {
    System,
    /// Replays fixed bytes in order, then fails.
    #[cfg(any(test, feature = "fuzzing"))]
    Fixed {
        bytes: Vec<u8>,
        position: usize,
    },
}

impl QeRandom {
    /// csfle's cryptographically secure generator: what production
    /// encryption uses.
    pub fn system() -> Self {
        QeRandom {
            source: Source::System,
        }
    }

    /// A source that hands out `bytes` in order and then fails with
    /// [`Error::RandomExhausted`]: for replaying libmongocrypt's fixed-RNG
    /// vectors. Only in this crate's tests and its own fuzz entry points
    /// (`fuzzing` feature): crate-private, so no dependent crate can build
    /// one, even with the feature enabled.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn fixed(bytes: Vec<u8>) -> Self {
        QeRandom {
            source: Source::Fixed { bytes, position: 0 },
        }
    }

    /// How many bytes a fixed source has left (`None` for the system
    /// generator): lets tests check that a payload drew exactly what
    /// libmongocrypt draws.
    #[cfg(any(test, feature = "fuzzing"))]
    #[allow(dead_code)] // the tests' only
    pub(crate) fn fixed_remaining(&self) -> Option<usize> {
        match &self.source {
            Source::System => None,
            Source::Fixed { bytes, position } => Some(bytes.len().saturating_sub(*position)),
        }
    }

    /// Fills `dest` with random bytes.
    pub fn fill(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        match &mut self.source {
            Source::System => {
                crate::crypto::fill_random(dest).map_err(|e| Error::Random(e.to_string()))
            }
            #[cfg(any(test, feature = "fuzzing"))]
            Source::Fixed { bytes, position } => {
                let end = position
                    .checked_add(dest.len())
                    .filter(|&end| end <= bytes.len())
                    .ok_or(Error::RandomExhausted)?;
                dest.copy_from_slice(&bytes[*position..end]);
                *position = end;
                Ok(())
            }
        }
    }
}

impl std::fmt::Debug for QeRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the fixed bytes: they may be a test's IVs, but say nothing.
        match self.source {
            Source::System => f.write_str("QeRandom::System"),
            #[cfg(any(test, feature = "fuzzing"))]
            Source::Fixed { .. } => f.write_str("QeRandom::Fixed(..)"),
        }
    }
}

/// A uniform random integer in `0..exclusive_upper_bound`, drawn as
/// libmongocrypt's `_mongocrypt_random_uint64` draws it: 8 bytes read as a
/// little-endian u64, redrawn while below `2^64 mod bound` (rejection
/// sampling, so every residue is equally likely), then reduced modulo the
/// bound. A bound below 2 gives 0 and draws nothing, as in libmongocrypt:
/// the fixed-RNG vectors depend on that.
pub fn random_u64_below(rng: &mut QeRandom, exclusive_upper_bound: u64) -> Result<u64, Error> {
    if exclusive_upper_bound < 2 {
        return Ok(0);
    }
    // 2^64 mod x == (2^64 - x) mod x.
    let min = exclusive_upper_bound.wrapping_neg() % exclusive_upper_bound;
    loop {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes)?;
        let drawn = u64::from_le_bytes(bytes);
        if drawn >= min {
            return Ok(drawn % exclusive_upper_bound);
        }
    }
}

/// A uniform random integer in `0..exclusive_upper_bound`, as
/// libmongocrypt's `_mongocrypt_random_int64` (the contention factor draw,
/// with bound `maxContentionFactor + 1`): the bound must be positive.
pub fn random_i64_below(rng: &mut QeRandom, exclusive_upper_bound: i64) -> Result<i64, Error> {
    let bound = u64::try_from(exclusive_upper_bound)
        .map_err(|_| Error::InvalidRandomBound(exclusive_upper_bound))?;
    if bound == 0 {
        return Err(Error::InvalidRandomBound(exclusive_upper_bound));
    }
    let drawn = random_u64_below(rng, bound)?;
    // The draw is below a bound that fits in i64: it fits too.
    i64::try_from(drawn).map_err(|_| Error::InvalidRandomBound(exclusive_upper_bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_replays_then_fails() {
        let mut rng = QeRandom::fixed(vec![1, 2, 3, 4, 5]);
        let mut a = [0u8; 2];
        rng.fill(&mut a).unwrap();
        assert_eq!(a, [1, 2]);
        let mut b = [0u8; 3];
        rng.fill(&mut b).unwrap();
        assert_eq!(b, [3, 4, 5]);
        assert_eq!(rng.fill(&mut [0u8; 1]), Err(Error::RandomExhausted));
        // An empty fill at the end is fine.
        rng.fill(&mut []).unwrap();
    }

    #[test]
    fn system_gives_distinct_bytes() {
        let mut rng = QeRandom::system();
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        rng.fill(&mut a).unwrap();
        rng.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{rng:?}"), "QeRandom::System");
    }

    #[test]
    fn bound_below_two_draws_nothing() {
        let mut rng = QeRandom::fixed(Vec::new());
        assert_eq!(random_u64_below(&mut rng, 0), Ok(0));
        assert_eq!(random_u64_below(&mut rng, 1), Ok(0));
        assert_eq!(random_i64_below(&mut rng, 1), Ok(0));
        assert_eq!(
            random_i64_below(&mut rng, 0),
            Err(Error::InvalidRandomBound(0))
        );
        assert_eq!(
            random_i64_below(&mut rng, -5),
            Err(Error::InvalidRandomBound(-5))
        );
    }

    #[test]
    fn little_endian_and_modulo() {
        // 0x0102 little-endian, modulo 7.
        let mut rng = QeRandom::fixed(vec![0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(random_u64_below(&mut rng, 7), Ok(0x0102 % 7));
        let mut rng = QeRandom::fixed(vec![9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(random_i64_below(&mut rng, 4), Ok(1));
    }

    #[test]
    fn rejection_sampling_redraws_below_the_threshold() {
        // Bound 2^63 + 1: 2^64 mod bound = 2^63 - 1, so a first draw of 5
        // is rejected and the second, 2^63 + 3, is kept (mod bound = 2).
        let bound = (1u64 << 63) + 1;
        let mut bytes = 5u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&((1u64 << 63) + 3).to_le_bytes());
        let mut rng = QeRandom::fixed(bytes);
        assert_eq!(random_u64_below(&mut rng, bound), Ok(2));
        assert_eq!(rng.fill(&mut [0u8; 1]), Err(Error::RandomExhausted));
    }
}
