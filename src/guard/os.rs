//! The two calls into the C library the guard makes; nothing else in
//! the crate uses `unsafe`. The checkpoint build (`rebase.rs`) runs at
//! the idle scheduling class, and it and every start (`recovery.rs`,
//! `cluster.rs`) give the memory they freed back to the system.

/// Puts the calling thread in the idle scheduling class
/// (`SCHED_IDLE`): it runs only on a core no other thread wants, so
/// the build takes what serving leaves. Threads it starts inherit it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(super) fn run_when_idle() -> Result<(), std::io::Error> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` reads `param`, a valid value that
    // lives across the call; pid 0 is the calling thread. It changes
    // nothing else in this process, and an error is returned.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Elsewhere the build runs at the normal class.
#[cfg(not(target_os = "linux"))]
pub(super) fn run_when_idle() -> Result<(), std::io::Error> {
    Ok(())
}

/// Gives the memory freed in the allocator's arenas back to the
/// system: glibc keeps what a thread freed in that thread's arena. The
/// second index of a checkpoint build (gigabytes at ten million
/// interactions) would stay resident after the build, and what a start
/// read with (the rows read on a thread of its own, the page caches of
/// the store's connections) after the start: 72 MB after a start that
/// rebuilt memory at ten million.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(super) fn give_back_freed_memory() {
    // SAFETY: `malloc_trim` takes no pointer and only releases free
    // pages of glibc's own arenas; it is safe to call from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere the allocator keeps what it keeps.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(super) fn give_back_freed_memory() {}
