//! Models: `nrt_load`, `nrt_load_collectives`, `nrt_unload`, `nrt_get_model_info`, and the tensor descriptions
//! (`nrt_get_model_tensor_info` / `nrt_free_model_tensor_info`).

use std::ptr::{self, NonNull};

use nrt_sys::{self as sys, Library};

use super::{check, entry, fixed_c_string};
use crate::error::{Error, Result};

/// `nrt_load`: loads the NEFF in `neff` on core `vnc` (-1: the first free core).
pub(crate) fn load(lib: &Library, neff: &[u8], vnc: i32) -> Result<NonNull<sys::nrt_model_t>> {
    let f = entry!(lib, nrt_load);
    let mut raw = ptr::null_mut();
    // SAFETY: `neff` is valid for reads of its length for the call; `raw` is a valid
    // out-pointer. vnc_count is deprecated and must be -1. libnrt validates the bytes.
    let status = unsafe { f(neff.as_ptr().cast(), neff.len(), vnc, -1, &mut raw) };
    check(lib, "nrt_load", status)?;
    NonNull::new(raw).ok_or_else(|| Error::UnexpectedResult {
        function: "nrt_load",
        reason: "no model returned".into(),
    })
}

/// `nrt_load_collectives`: loads the NEFF in `neff` on core `vnc` as rank `rank` of a
/// collective group of `world` ranks (`ctx_device_id` / `ctx_device_count`).
pub(crate) fn load_collectives(
    lib: &Library,
    neff: &[u8],
    vnc: i32,
    rank: u32,
    world: u32,
) -> Result<NonNull<sys::nrt_model_t>> {
    let f = entry!(lib, nrt_load_collectives);
    let mut raw = ptr::null_mut();
    // SAFETY: `neff` is valid for reads of its length for the call; `raw` is a valid
    // out-pointer; vnc_count is deprecated and must be -1. libnrt validates the rest.
    let status = unsafe {
        f(
            neff.as_ptr().cast(),
            neff.len(),
            vnc,
            -1,
            rank,
            world,
            &mut raw,
        )
    };
    check(lib, "nrt_load_collectives", status)?;
    NonNull::new(raw).ok_or_else(|| Error::UnexpectedResult {
        function: "nrt_load_collectives",
        reason: "no model returned".into(),
    })
}

/// `nrt_unload`. A failure cannot be acted on (the model is gone either way); nothing
/// happens if the library lacks the function.
///
/// # Safety
///
/// `model` is a loaded model of `lib`'s runtime that no execution uses any more; it is
/// unloaded exactly once.
pub(crate) unsafe fn unload(lib: &Library, model: NonNull<sys::nrt_model_t>) {
    if let Some(f) = lib.fns().nrt_unload {
        // SAFETY: the caller's guarantees.
        unsafe { f(model.as_ptr()) };
    }
}

/// `nrt_get_model_info`: the model's record and the number of bytes the library wrote.
///
/// # Safety
///
/// `model` is a loaded model of `lib`'s runtime.
pub(crate) unsafe fn get_model_info(
    lib: &Library,
    model: *const sys::nrt_model_t,
) -> Result<(sys::nrt_model_info_t, usize)> {
    let f = entry!(lib, nrt_get_model_info);
    let mut info = sys::nrt_model_info_t::default();
    let mut written = 0usize;
    let size = size_of::<sys::nrt_model_info_t>();
    // SAFETY: the model is live (caller); `info` is valid and writable for `size` bytes;
    // `written` is a valid usize.
    let status = unsafe { f(model, &mut info, size, &mut written) };
    check(lib, "nrt_get_model_info", status)?;
    Ok((info, written))
}

/// One entry of libnrt's description of a model's tensors, copied out.
pub(crate) struct TensorEntry {
    pub(crate) name: String,
    pub(crate) usage: sys::nrt_tensor_usage_t,
    pub(crate) size: usize,
    pub(crate) dtype: sys::nrt_dtype_t,
    pub(crate) shape: Vec<u32>,
}

/// `nrt_get_model_tensor_info`, copied into Rust values, then
/// `nrt_free_model_tensor_info`.
///
/// # Safety
///
/// `model` is a loaded model of `lib`'s runtime.
pub(crate) unsafe fn get_model_tensor_info(
    lib: &Library,
    model: *mut sys::nrt_model_t,
) -> Result<Vec<TensorEntry>> {
    let get = entry!(lib, nrt_get_model_tensor_info);
    let free = entry!(lib, nrt_free_model_tensor_info);
    let mut array: *mut sys::nrt_tensor_info_array_t = ptr::null_mut();
    // SAFETY: the model is live (caller); `array` is a valid out-pointer.
    let status = unsafe { get(model, &mut array) };
    check(lib, "nrt_get_model_tensor_info", status)?;
    if array.is_null() {
        return Err(Error::UnexpectedResult {
            function: "nrt_get_model_tensor_info",
            reason: "no tensor info returned".into(),
        });
    }
    // SAFETY: libnrt returned a live array of `tensor_count` entries, each with `ndim`
    // dimensions behind `shape` (or a null shape), valid until freed below.
    let entries = unsafe { copy_entries(array) };
    // SAFETY: `array` came from nrt_get_model_tensor_info and is freed once.
    let status = unsafe { free(array) };
    let entries = entries?;
    check(lib, "nrt_free_model_tensor_info", status)?;
    Ok(entries)
}

/// Copies libnrt's tensor descriptions into Rust values.
///
/// # Safety
///
/// `array` must point to a live `nrt_tensor_info_array_t` with `tensor_count` entries,
/// each with a `shape` that is null or points to `ndim` values.
unsafe fn copy_entries(array: *const sys::nrt_tensor_info_array_t) -> Result<Vec<TensorEntry>> {
    // SAFETY: the caller guarantees `array` is live.
    let count = unsafe { (*array).tensor_count };
    let count = usize::try_from(count).map_err(|_| Error::UnexpectedResult {
        function: "nrt_get_model_tensor_info",
        reason: format!("{count} tensors"),
    })?;
    // SAFETY: the entries follow the count (flexible array member) and there are
    // `count` of them (the caller's guarantee); addr_of avoids a reference to the header.
    let entries = unsafe {
        std::slice::from_raw_parts(
            ptr::addr_of!((*array).tensor_array).cast::<sys::nrt_tensor_info_t>(),
            count,
        )
    };
    let copy = |entry: &sys::nrt_tensor_info_t| {
        let shape = if entry.shape.is_null() || entry.ndim == 0 {
            Vec::new()
        } else {
            // SAFETY: a non-null shape points to `ndim` values (the caller's guarantee).
            unsafe { std::slice::from_raw_parts(entry.shape, entry.ndim as usize) }.to_vec()
        };
        TensorEntry {
            name: fixed_c_string(&entry.name),
            usage: entry.usage,
            size: entry.size,
            dtype: entry.dtype,
            shape,
        }
    };
    Ok(entries.iter().map(copy).collect())
}
