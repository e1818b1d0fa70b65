//! The result layer: one thin function per libnrt function.
//!
//! Each function takes typed arguments, fetches its entry from the loaded library's
//! table (or fails with [`Error::Unsupported`] naming it), calls it, and turns the status
//! into [`Error::Nrt`] carrying the C function's name and the library's text for the
//! status. Nothing else: no ownership, no locks, no context about models or tensors
//! (callers add that with [`Error::context`] on the error path only). A function is
//! `unsafe` when a handle's validity or a buffer's lifetime is the caller's to
//! guarantee, and says what in its `# Safety` section.
//!
//! This is the only module that calls through the function table. It is organised by
//! area, like libnrt's headers: [`runtime`] (`nrt_init`, versions, counts), [`tensor`],
//! [`set`], [`model`], [`exec`] (`nrt_execute*`), [`collectives`] (global communicator,
//! barrier), [`profile`], [`trace`] (system trace), [`inspect`] (inspect and continuous
//! profiling), [`debug`] (debug stream), [`memory`] (dma-buf export), and [`xu`] (the
//! async `nrta_*` calls); [`sim`] reads nrt-sim's reason for a failure (the cause of
//! the error).
//!
//! Trust: every `Library` is libnrt, loaded from a path (loading trusts the library,
//! see [`nrt_sys::Library`]) or built with the unsafe `Library::in_process`, whose
//! contract makes every entry behave as libnrt's. So an entry's signature is the one in
//! the bindings, and the SAFETY comments below only argue about the arguments.

use std::ffi::CStr;

use nrt_sys::{self as sys, Library};

use crate::error::{Error, NrtStatus, Result};

pub(crate) mod collectives;
pub(crate) mod debug;
pub(crate) mod exec;
pub(crate) mod inspect;
pub(crate) mod memory;
pub(crate) mod model;
pub(crate) mod profile;
pub(crate) mod runtime;
pub(crate) mod set;
pub(crate) mod sim;
pub(crate) mod tensor;
pub(crate) mod trace;
pub(crate) mod xu;

/// The entry `$name` of `$lib`'s table, or an early return of [`Error::Unsupported`]
/// naming it.
macro_rules! entry {
    ($lib:expr, $name:ident) => {
        match $lib.fns().$name {
            Some(f) => f,
            None => return Err($crate::raw::missing(stringify!($name))),
        }
    };
}
pub(crate) use entry;

/// [`Error::Unsupported`] for a library without `function`.
#[cold]
#[inline(never)]
pub(crate) fn missing(function: &'static str) -> Error {
    Error::Unsupported {
        feature: function,
        needed: Some(format!("a libnrt that exports {function}")),
    }
}

/// `Ok` for `NRT_SUCCESS`, else [`Error::Nrt`] for `function` with the library's text.
#[inline]
pub(crate) fn check(lib: &Library, function: &'static str, raw: sys::NRT_STATUS) -> Result<()> {
    if raw == sys::NRT_SUCCESS {
        Ok(())
    } else {
        Err(failed(lib, function, raw))
    }
}

/// [`Error::Nrt`] for a failure status `raw` that `function` just returned on this
/// thread, without context; with nrt-sim's reason for it as the [`Error::cause`] when
/// the library is nrt-sim (nothing is added for a real libnrt).
#[cold]
#[inline(never)]
pub(crate) fn failed(lib: &Library, function: &'static str, raw: sys::NRT_STATUS) -> Error {
    failed_because(lib, function, raw, sim::reason_for(lib, function))
}

/// [`Error::Nrt`] for a failure status `raw` of `function` with the simulator's `reason`
/// for it (if any) as the cause, `"nrt-sim's reason: ..."`, without context.
#[cold]
#[inline(never)]
pub(crate) fn failed_because(
    lib: &Library,
    function: &'static str,
    raw: sys::NRT_STATUS,
    reason: Option<String>,
) -> Error {
    Error::Nrt {
        function,
        status: NrtStatus::from_raw(raw),
        message: status_text(lib, raw),
        context: None,
        diagnosis: reason.map(|r| {
            Box::new(crate::error::Diagnosis {
                cause: Some(format!("nrt-sim's reason: {r}")),
                hint: None,
            })
        }),
    }
}

/// The library's description of `raw` (`nrt_get_status_as_str`), if it has one.
pub(crate) fn status_text(lib: &Library, raw: sys::NRT_STATUS) -> Option<String> {
    let f = lib.fns().nrt_get_status_as_str?;
    // Why the block below is sound: libnrt's nrt_get_status_as_str takes any value and
    // returns NULL or a pointer to a NUL-terminated string owned by the library that
    // stays valid (static text, no runtime state involved); it is copied before anything
    // else calls into the library.
    // SAFETY: the conditions just above hold for this block.
    unsafe {
        let text = f(raw);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// The text of a fixed-size C char array: up to the first NUL, or all of it if there is none.
pub(crate) fn fixed_c_string(chars: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_strings_stop_at_nul_or_the_end() {
        use std::ffi::c_char;
        let a: [c_char; 4] = [b'a' as c_char, b'b' as c_char, 0, b'z' as c_char];
        assert_eq!(fixed_c_string(&a), "ab");
        let full: [c_char; 2] = [b'x' as c_char, b'y' as c_char];
        assert_eq!(fixed_c_string(&full), "xy");
    }
}
