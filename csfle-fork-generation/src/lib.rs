//! A process-wide fork generation: a number that changes in the child
//! process after every `fork`.
//!
//! A child process starts with a byte-for-byte copy of its parent's
//! memory: every generator state, counter and cache. Whatever must not be
//! shared between the two (a random generator's state above all: parent
//! and child would otherwise produce the same "random" bytes) can remember
//! the [`generation`] it was made in and start afresh when the generation
//! differs.
//!
//! On the first call, [`generation`] registers a `pthread_atfork` child
//! handler that increments a global atomic counter; every call then reads
//! that counter. No system call per call: checking for a fork costs one
//! atomic load, where asking the kernel for the process id each time
//! costs a system call.
//!
//! ```
//! let before = csfle_fork_generation::generation();
//! // ... no fork in between ...
//! assert_eq!(csfle_fork_generation::generation(), before);
//! ```
//!
//! The handler runs in every child the C library's `fork` makes. A child
//! made by a raw `clone(2)` system call, behind the C library's back, is
//! not seen.

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Incremented in the child by the `pthread_atfork` handler.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether the handler is registered (set once, by [`REGISTER`]).
static REGISTERED: AtomicBool = AtomicBool::new(false);
static REGISTER: Once = Once::new();

/// The current fork generation of this process: `Some(n)`, where `n`
/// changes (in the child) with every `fork`, and stays the same otherwise.
///
/// `None` when the fork handler could not be registered
/// (`pthread_atfork` failed, which POSIX allows only for lack of memory):
/// forks then go unseen by this counter, and the caller must detect them
/// another way, for instance by comparing [`std::process::id`].
///
/// On targets without `fork` (not `cfg(unix)`), always `Some(0)`: no
/// process there starts as a copy of another.
pub fn generation() -> Option<u64> {
    REGISTER.call_once(|| REGISTERED.store(register(), Ordering::SeqCst));
    if REGISTERED.load(Ordering::SeqCst) {
        Some(GENERATION.load(Ordering::SeqCst))
    } else {
        None
    }
}

#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    // Only an atomic increment: async-signal-safe, no allocation, no locks
    // (the child of a multi-threaded process may run nothing else).
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Registers the child handler; whether it is registered.
#[cfg(unix)]
fn register() -> bool {
    // SAFETY: pthread_atfork only stores the function pointers. The child
    // handler is a plain `extern "C" fn` that performs one atomic add,
    // which is async-signal-safe and valid in a freshly forked child. The
    // prepare and parent handlers are null, which POSIX allows. It is
    // called once per process (`REGISTER`), so the handler runs once per
    // fork.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    rc == 0
}

/// Without `fork` there is nothing to register: the generation never
/// changes.
#[cfg(not(unix))]
fn register() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_is_stable_without_a_fork() {
        let first = generation();
        assert!(first.is_some(), "the fork handler could not be registered");
        assert_eq!(generation(), first);
    }

    /// The child sees the parent's generation plus one; the parent keeps
    /// its own.
    #[cfg(unix)]
    #[test]
    #[allow(unsafe_code)]
    fn a_child_sees_the_next_generation() {
        // Registers the handler before forking.
        let parent_before = generation().expect("the fork handler is registered");
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two valid descriptors into a 2-element array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fork duplicates the process. The child only reads two
        // atomics (`generation`: the `Once` has completed, so no lock),
        // then calls write(2) and _exit(2), which are async-signal-safe:
        // it cannot deadlock on locks other test threads held at the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let seen = generation().unwrap_or(u64::MAX).to_le_bytes();
            // SAFETY: writing a stack buffer to our own pipe, then exiting
            // without running destructors or atexit handlers.
            unsafe {
                libc::write(fds[1], seen.as_ptr().cast(), seen.len());
                libc::_exit(0);
            }
        }
        let mut child = [0u8; 8];
        // SAFETY: reading into a stack buffer of the stated length, then
        // waiting for our own child.
        let n = unsafe { libc::read(fds[0], child.as_mut_ptr().cast(), child.len()) };
        let mut status = 0;
        // SAFETY: waiting for the child this test forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        // SAFETY: closing the two descriptors this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(n, 8);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(u64::from_le_bytes(child), parent_before + 1);
        assert_eq!(generation(), Some(parent_before));
    }
}
