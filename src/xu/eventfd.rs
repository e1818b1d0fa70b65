//! Eventfds: made, signalled, drained and blocked on (`events.rs` for completion
//! events, `detached.rs` for the release thread).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A new non-blocking, close-on-exec eventfd.
pub(crate) fn new_eventfd() -> Option<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a negative result is an error.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resets an eventfd's counter (a non-blocking read; nothing to read is fine).
pub(crate) fn drain(fd: RawFd) {
    let mut count = 0u64;
    // SAFETY: reads at most 8 bytes into a live local.
    let _ = unsafe { libc::read(fd, (&raw mut count).cast(), size_of::<u64>()) };
}

/// Blocks until `fd` is readable or `timeout` passed (`None`: no limit); `EINTR` and
/// spurious returns are fine (the caller checks completion again).
pub(crate) fn block_on(fd: RawFd, timeout: Option<Duration>) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // A timed block ends at its timeout within 1 us instead of the thread's timer slack
    // (50 us by default): `wait_timeout` and deadlines keep their precision. The
    // thread's own slack is put back afterwards.
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns this thread's slack.
    let slack = ts.map(|_| unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) });
    let lowered = slack.is_some_and(|s| s > 1000);
    if lowered {
        // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    }
    // SAFETY: one valid pollfd; `ts_ptr` is null or points to a live timespec; no
    // signal mask change (null).
    let _ = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
    if let Some(old) = slack.filter(|_| lowered) {
        // SAFETY: as above; puts back the slack the thread had.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, old as libc::c_ulong) };
    }
}

/// Adds 1 to an eventfd's counter (wakes whoever blocks on it); a full counter or a
/// failure only means a wake-up is already pending or lost to a closed fd.
pub(crate) fn signal(fd: RawFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live local.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), size_of::<u64>()) };
}
