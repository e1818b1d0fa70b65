//! The simulator's own reason for a failure, read back from nrt-sim's control functions
//! (`nrt_sim_identity`, `nrt_sim_last_error`, `nrt_sim_request_error`) on the error path
//! only. A real libnrt exports none of them: every function here answers `None` for it,
//! so its errors carry the status alone (its reason is in its log, see
//! `NEURON_RT_LOG_LEVEL`).

use std::ffi::{CStr, c_char};

use nrt_sys::{self as sys, Library};

/// "nrt-sim" in ASCII, the high bytes of `nrt_sim_identity()` (low byte: the version of
/// its control interface).
const SIM: u64 = 0x6e72_742d_7369_6d00;

/// Whether `lib` is nrt-sim (it exports `nrt_sim_identity` and that says so).
pub(crate) fn is_simulator(lib: &Library) -> bool {
    let Some(identity) = lib.symbol(c"nrt_sim_identity") else {
        return false;
    };
    // SAFETY: the library is trusted (see nrt_sys::Library); a library exporting
    // `nrt_sim_identity` is nrt-sim, whose header declares it `uint64_t (void)`.
    let identity: unsafe extern "C" fn() -> u64 = unsafe { std::mem::transmute(identity) };
    // SAFETY: nrt-sim documents the call as always safe.
    let id = unsafe { identity() };
    id & !0xff == SIM
}

/// nrt-sim's last error on this thread (`"function: reason"`), if `lib` is nrt-sim and
/// has one. nrt-sim sets it at every failing call, so right after a call of this thread
/// failed it is that call's reason.
pub(crate) fn last_error(lib: &Library) -> Option<String> {
    if !is_simulator(lib) {
        return None;
    }
    let f = lib.symbol(c"nrt_sim_last_error")?;
    // SAFETY: nrt-sim (checked above) declares it `const char *(void)`.
    let f: unsafe extern "C" fn() -> *const c_char = unsafe { std::mem::transmute(f) };
    // SAFETY: always safe to call; the text (or NULL) stays valid until this thread's
    // next failing call, and is copied at once.
    unsafe {
        let text = f();
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// nrt-sim's reason for the failure of `function`, the call of this thread that just
/// failed: its last error when that names `function` (anything else is not this call's).
pub(crate) fn reason_for(lib: &Library, function: &str) -> Option<String> {
    last_error(lib).filter(|line| {
        line.strip_prefix(function)
            .is_some_and(|rest| rest.starts_with(": "))
    })
}

/// nrt-sim's reason for the failure of async request `seq` (which ran on the
/// simulator's worker, so this thread's last error is not it), if `lib` is nrt-sim and
/// still knows it.
pub(crate) fn request_reason(lib: &Library, seq: sys::nrta_seq_t) -> Option<String> {
    if !is_simulator(lib) {
        return None;
    }
    let f = lib.symbol(c"nrt_sim_request_error")?;
    type RequestErrorFn = unsafe extern "C" fn(sys::nrta_seq_t, *mut c_char, usize) -> usize;
    // SAFETY: nrt-sim (checked above) declares it
    // `size_t (uint64_t seq, char *buf, size_t size)`.
    let f: RequestErrorFn = unsafe { std::mem::transmute(f) };
    let mut buf = vec![0u8; 512];
    loop {
        // SAFETY: `buf` is valid for writes of its length; nrt-sim writes at most
        // `len - 1` bytes and a NUL, and returns the reason's full length (0: none).
        let full = unsafe { f(seq, buf.as_mut_ptr().cast(), buf.len()) };
        if full == 0 {
            return None;
        }
        if full < buf.len() {
            buf.truncate(full);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        // Longer than the buffer: once more with room for all of it (and the NUL).
        buf = vec![0u8; full + 1];
    }
}
