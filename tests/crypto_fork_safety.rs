//! After `fork`, parent and child must not produce the same random IVs.
//!
//! The child inherits the parent's thread-local generator state byte for
//! byte; without reseeding, both would emit identical IVs, and random
//! encryption would repeat IVs across processes.

#[test]
#[allow(unsafe_code)]
fn parent_and_child_produce_different_random_bytes() {
    // Seed this thread's generator before forking.
    let mut warm = [0u8; 16];
    csfle::fill_random(&mut warm).unwrap();

    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two valid descriptors into a 2-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fork duplicates the process. The child only calls
    // `fill_random` (no allocation on this path: the thread-local generator
    // exists, reseeding uses a stack buffer and the getrandom syscall), then
    // write(2) and _exit(2), which are async-signal-safe, so it cannot
    // deadlock on locks held by other test threads at the time of fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut buf = [0u8; 32];
        let ok = csfle::fill_random(&mut buf).is_ok();
        // SAFETY: writing a stack buffer to our own pipe, then exiting
        // without running destructors or atexit handlers.
        unsafe {
            libc::write(fds[1], buf.as_ptr().cast(), buf.len());
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    let mut parent = [0u8; 32];
    csfle::fill_random(&mut parent).unwrap();
    let mut child = [0u8; 32];
    // SAFETY: reading into a stack buffer of the stated length; waiting for our child.
    let n = unsafe { libc::read(fds[0], child.as_mut_ptr().cast(), child.len()) };
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(n, 32);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_ne!(
        parent, child,
        "child repeated the parent's random stream after fork"
    );
}
