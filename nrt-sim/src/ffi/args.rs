//! What every entry point shares: [`guard`] (panics and failures to a status) and the
//! argument checks and conversions of C pointers, strings and sized structs.

use crate::error::{Res, fail};
use crate::log;
use nrt_sys::*;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// Runs an entry point: catches panics, logs failures, returns the status.
pub(crate) fn guard(func: &'static str, body: impl FnOnce() -> Res<()>) -> NRT_STATUS {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NRT_SUCCESS,
        Ok(Err(f)) => {
            log::failure(f.level, func, &f.message);
            f.status
        }
        Err(_) => {
            log::error(func, "internal error (panic) in the simulator");
            NRT_FAILURE
        }
    }
}

/// Writes `value` through an out-pointer; NULL or misaligned -> `NRT_INVALID`.
///
/// # Safety
///
/// A non-null, aligned `ptr` must be valid for writing a `T`.
pub(crate) unsafe fn put<T>(ptr: *mut T, what: &str, value: T) -> Res<()> {
    if ptr.is_null() {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    if !ptr.is_aligned() {
        return fail(NRT_INVALID, format!("{what} {ptr:p} is misaligned"));
    }
    // SAFETY: non-null and aligned; the caller guarantees it is writable.
    unsafe { ptr.write(value) };
    Ok(())
}

/// An optional C string argument as text (NULL -> empty).
///
/// # Safety
///
/// A non-null `ptr` must point to a NUL-terminated string.
pub(crate) unsafe fn c_text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        // SAFETY: non-null and NUL-terminated (caller).
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}

/// A required C string argument as bytes.
///
/// # Safety
///
/// A non-null `ptr` must point to a NUL-terminated string that outlives the result.
pub(crate) unsafe fn c_bytes<'a>(ptr: *const c_char, what: &str) -> Res<&'a [u8]> {
    if ptr.is_null() {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    // SAFETY: non-null and NUL-terminated (caller).
    Ok(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

pub(crate) fn not_simulated(what: &str) -> Res<()> {
    fail(NRT_FAILURE, format!("{what} is not simulated by nrt-sim"))
}

/// Copies the first `min(size, size_of::<T>())` bytes of `value` to `dst`.
///
/// # Safety
///
/// A non-null `dst` must be valid for writes of `size` bytes.
pub(crate) unsafe fn put_prefix<T: Copy>(
    dst: *mut T,
    size: usize,
    what: &str,
    value: &T,
) -> Res<usize> {
    if dst.is_null() {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    if size == 0 {
        return fail(NRT_INVALID, format!("size of {what} is 0"));
    }
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: `dst` is valid for `size >= n` bytes (caller); `value` has `n` bytes.
    unsafe { std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), dst.cast::<u8>(), n) };
    Ok(n)
}

pub(crate) fn copy_cstr(dst: &mut [c_char], text: &str) {
    let room = dst.len() - 1;
    for (d, &s) in dst.iter_mut().zip(text.as_bytes().iter().take(room)) {
        *d = s as c_char;
    }
}

/// Hands C an array of `names` as `malloc`ed copies in a `malloc`ed array (what the
/// event-type and activity-type lists return: the caller may release them with `free`).
///
/// # Safety
///
/// Non-null `out` and `count` must be valid for writes.
pub(crate) unsafe fn put_strings(
    names: &[&str],
    out: *mut *mut *const c_char,
    count: *mut usize,
) -> Res<()> {
    if out.is_null() || count.is_null() {
        return fail(
            NRT_INVALID,
            format!("event_types {out:p} / count {count:p} is NULL"),
        );
    }
    // SAFETY: malloc has no preconditions; the size is at least one pointer.
    let array = unsafe { libc::malloc(std::mem::size_of::<*const c_char>() * names.len().max(1)) }
        .cast::<*const c_char>();
    if array.is_null() {
        return fail(NRT_RESOURCE, "out of host memory for the name list");
    }
    for (i, name) in names.iter().enumerate() {
        // SAFETY: malloc has no preconditions.
        let s = unsafe { libc::malloc(name.len() + 1) }.cast::<u8>();
        if s.is_null() {
            // SAFETY: the first `i` entries are strings malloc'ed above.
            unsafe { free_strings(array, i) };
            return fail(NRT_RESOURCE, "out of host memory for the name list");
        }
        // SAFETY: `s` holds name.len() + 1 bytes; `array` holds names.len() pointers.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), s, name.len());
            *s.add(name.len()) = 0;
            *array.add(i) = s.cast();
        }
    }
    // SAFETY: both are non-null and writable (caller).
    unsafe {
        *out = array;
        *count = names.len();
    }
    Ok(())
}

/// Frees what [`put_strings`] made (NULL: nothing).
///
/// # Safety
///
/// `array` is NULL or came from [`put_strings`] with at least `count` entries, not freed.
pub(crate) unsafe fn free_strings(array: *mut *const c_char, count: usize) {
    if array.is_null() {
        return;
    }
    for i in 0..count {
        // SAFETY: entries below `count` are malloc'ed strings (caller).
        unsafe { libc::free((*array.add(i)).cast_mut().cast()) };
    }
    // SAFETY: the array was malloc'ed (caller).
    unsafe { libc::free(array.cast()) };
}

/// A directory argument: non-empty text.
///
/// # Safety
///
/// A non-null `dir` must be a NUL-terminated string.
pub(crate) unsafe fn dir_arg(dir: *const c_char) -> Res<PathBuf> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { c_bytes(dir, "output_dir") }?;
    if bytes.is_empty() {
        return fail(NRT_INVALID, "output_dir is empty");
    }
    Ok(PathBuf::from(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_failure_and_logs_it() {
        let status = guard("nrt_test_entry", || panic!("simulated bug"));
        assert_eq!(status, NRT_FAILURE);
        let last = log::with_last_error(|e| e.map(|c| c.to_string_lossy().into_owned()));
        assert_eq!(
            last.as_deref(),
            Some("nrt_test_entry: internal error (panic) in the simulator")
        );
    }

    #[test]
    fn guard_returns_the_failure_status_and_success() {
        assert_eq!(guard("f", || Ok(())), NRT_SUCCESS);
        assert_eq!(guard("f", || fail(NRT_RESOURCE, "no room")), NRT_RESOURCE);
    }

    #[test]
    fn put_prefix_copies_only_what_fits() {
        let value = nrt_model_info_t { vnc: 7 };
        let mut out = [0u8; 2];
        // SAFETY: `out` has 2 writable bytes.
        let n = unsafe { put_prefix(out.as_mut_ptr().cast::<nrt_model_info_t>(), 2, "x", &value) };
        assert_eq!(n.unwrap(), 2);
        assert_eq!(out, [7, 0]);
    }
}
