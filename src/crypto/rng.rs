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
//!   Without care, parent and child would emit the same IVs. A `pthread_atfork`
//!   child handler bumps a global generation counter; each generator remembers
//!   the generation it was seeded in and reseeds from the OS when it differs.
//! * **reseeding**: each generator reseeds from the OS after `RESEED_BYTES`, so
//!   a leaked generator state exposes a bounded amount of output.

use super::Error;
use chacha20::ChaCha12Rng;
use rand::rngs::SysRng;
use rand::{Rng, SeedableRng, TryRng};
use std::cell::RefCell;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

const RESEED_BYTES: u64 = 1 << 20;

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER_FORK_HANDLER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Only an atomic increment: async-signal-safe, no allocation, no locks.
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn register_fork_handler() {
    REGISTER_FORK_HANDLER.call_once(|| {
        // SAFETY: pthread_atfork only stores the function pointers. The child
        // handler is a plain `extern "C" fn` that performs one atomic add, which
        // is async-signal-safe and valid in a freshly forked child. The prepare
        // and parent handlers are null, which POSIX allows. If registration
        // fails (ENOMEM) we fall back to checking the pid on every call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        if rc != 0 {
            FORK_HANDLER_FAILED.store(true, Ordering::SeqCst);
        }
    });
}

static FORK_HANDLER_FAILED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

struct ThreadGenerator {
    /// Zeroizes its key, counter and output buffer on drop.
    rng: ChaCha12Rng,
    generation: u64,
    pid: u32,
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
    register_fork_handler();
    let generation = FORK_GENERATION.load(Ordering::SeqCst);
    let check_pid = FORK_HANDLER_FAILED.load(Ordering::Relaxed);
    GENERATOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let pid = if check_pid { std::process::id() } else { 0 };
        let stale = match slot.as_ref() {
            None => true,
            Some(g) => {
                g.generation != generation
                    || g.pid != pid
                    || g.bytes_since_seed + dest.len() as u64 > RESEED_BYTES
            }
        };
        if stale {
            *slot = Some(ThreadGenerator {
                rng: seeded()?,
                generation,
                pid,
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

    #[test]
    fn generation_change_forces_reseed() {
        let mut a = [0u8; 16];
        fill_random(&mut a).unwrap();
        let before = GENERATOR.with(|c| c.borrow().as_ref().unwrap().generation);
        after_fork_in_child();
        fill_random(&mut a).unwrap();
        let after = GENERATOR.with(|c| c.borrow().as_ref().unwrap().generation);
        assert_eq!(after, before + 1);
    }
}
