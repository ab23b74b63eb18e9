//! Randomness: key material straight from the operating system, IVs from a
//! per-thread generator.
//!
//! Data keys and master keys come from [`fill_key_material`], which asks the
//! OS generator (`getrandom`) every time: nothing in the process ever held
//! state from which a key could be predicted. IVs come from [`fill_random`]:
//! a ChaCha12 generator per thread, seeded from the operating system, so that
//! a random IV costs no system call; its state and its output buffer are
//! zeroized when it is dropped or reseeded. Two things make it safe to use
//! for IVs:
//!
//! * **fork**: a child process inherits a copy of every thread-local generator.
//!   Without care, parent and child would emit the same IVs. Each generator
//!   remembers the fork generation it was seeded in (`csfle-fork-generation`:
//!   a counter a `pthread_atfork` child handler bumps, read with one atomic
//!   load) and reseeds from the OS when it differs. Should the handler fail
//!   to register (`ENOMEM`), the generator remembers the process id instead
//!   and compares it on every call.
//! * **reseeding**: each generator reseeds from the OS after `RESEED_BYTES`, so
//!   a leaked generator state exposes a bounded amount of output.

use super::Error;
use chacha20::ChaCha12Rng;
use rand::rngs::SysRng;
use rand::{Rng, SeedableRng, TryRng};
use std::cell::RefCell;

const RESEED_BYTES: u64 = 1 << 20;

/// What a generator was seeded in: a child of a fork has another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Epoch {
    /// The fork generation (0 when the fork handler is not registered).
    generation: u64,
    /// The process id, only when the fork handler is not registered
    /// (else 0: no system call per IV).
    pid: u32,
}

impl Epoch {
    fn now() -> Self {
        match csfle_fork_generation::generation() {
            Some(generation) => Epoch { generation, pid: 0 },
            None => Epoch {
                generation: 0,
                pid: std::process::id(),
            },
        }
    }
}

struct ThreadGenerator {
    /// Zeroizes its key, counter and output buffer on drop.
    rng: ChaCha12Rng,
    epoch: Epoch,
    bytes_since_seed: u64,
}

thread_local! {
    static GENERATOR: RefCell<Option<ThreadGenerator>> = const { RefCell::new(None) };
}

fn seeded() -> Result<ChaCha12Rng, Error> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    fill_key_material(&mut seed[..])?;
    Ok(ChaCha12Rng::from_seed(*seed))
}

/// Fills `dest` with bytes from the operating system's generator, for key
/// material (data keys, local master keys) and seeds.
pub fn fill_key_material(dest: &mut [u8]) -> Result<(), Error> {
    SysRng
        .try_fill_bytes(dest)
        .map_err(|e| Error::Rng(e.to_string()))
}

/// Fills `dest` with cryptographically secure random bytes.
pub fn fill_random(dest: &mut [u8]) -> Result<(), Error> {
    fill_random_in(Epoch::now(), dest)
}

/// [`fill_random`] from this thread's generator, reseeded first when it
/// was seeded in another epoch or has used up its budget.
fn fill_random_in(epoch: Epoch, dest: &mut [u8]) -> Result<(), Error> {
    GENERATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = match slot.as_ref() {
            None => true,
            Some(g) => g.epoch != epoch || g.bytes_since_seed + dest.len() as u64 > RESEED_BYTES,
        };
        if stale {
            *slot = Some(ThreadGenerator {
                rng: seeded()?,
                epoch,
                bytes_since_seed: 0,
            });
        }
        let g = slot
            .as_mut()
            .ok_or_else(|| Error::Rng("generator missing".into()))?;
        g.rng.fill_bytes(dest);
        g.bytes_since_seed += dest.len() as u64;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_from_the_os() {
        let mut a = [0u8; 96];
        let mut b = [0u8; 96];
        fill_key_material(&mut a).unwrap();
        fill_key_material(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_thread_generator_zeroizes_on_drop() {
        fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<ChaCha12Rng>();
    }

    #[test]
    fn distinct_outputs() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn reseeds_after_budget() {
        let mut big = vec![0u8; (RESEED_BYTES as usize) / 2 + 1];
        fill_random(&mut big).unwrap();
        fill_random(&mut big).unwrap();
        fill_random(&mut big).unwrap();
    }

    /// The generator's epoch and how much it produced since its seed.
    fn state() -> (Epoch, u64) {
        GENERATOR.with(|c| {
            let g = c.borrow();
            let g = g.as_ref().unwrap();
            (g.epoch, g.bytes_since_seed)
        })
    }

    #[test]
    fn a_new_epoch_forces_a_reseed() {
        let mut a = [0u8; 16];
        fill_random(&mut a).unwrap();
        fill_random(&mut a).unwrap();
        let (before, used) = state();
        assert_eq!(used, 32);
        // A fork (the generation moved on), and a fork seen by its pid.
        for after in [
            Epoch {
                generation: before.generation + 1,
                ..before
            },
            Epoch {
                pid: before.pid.wrapping_add(1),
                ..before
            },
        ] {
            fill_random_in(after, &mut a).unwrap();
            assert_eq!(state(), (after, 16), "reseeded in the new epoch");
        }
    }

    #[test]
    fn the_epoch_is_the_fork_generation() {
        let generation = csfle_fork_generation::generation();
        assert!(generation.is_some(), "the fork handler is registered");
        assert_eq!(Epoch::now().generation, generation.unwrap());
        assert_eq!(Epoch::now().pid, 0, "no system call per IV");
    }
}
