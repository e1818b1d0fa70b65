//! Arrays returned by `nrt_get_model_tensor_info`, remembered until
//! `nrt_free_model_tensor_info` so that freeing checks the pointer and frees exactly what
//! was allocated (independent of the runtime's open/closed state).

use crate::error::{Res, fail};
use crate::model::{Program, TensorSpec};
use nrt_sys::*;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::sync::Mutex;

struct Allocation {
    layout: Layout,
    /// The shape arrays the entries point into, from `Box::into_raw` (raw, so that
    /// moving the registry entry never invalidates the pointers handed to C).
    shapes: Vec<*mut [u32]>,
}

// SAFETY: the allocation is plain memory owned by this registry; the raw pointers into
// it are only handed to C, never dereferenced by other threads here.
unsafe impl Send for Allocation {}

static ARRAYS: Mutex<Option<HashMap<usize, Allocation>>> = Mutex::new(None);

fn arrays() -> std::sync::MutexGuard<'static, Option<HashMap<usize, Allocation>>> {
    // Insert/remove only: a poisoned map is still consistent.
    ARRAYS.lock().unwrap_or_else(|e| e.into_inner())
}

fn fill_entry(
    entry: &mut nrt_tensor_info_t,
    spec: &TensorSpec,
    usage: nrt_tensor_usage_t,
) -> *mut [u32] {
    let shape: *mut [u32] = Box::into_raw(spec.shape.clone().into_boxed_slice());
    let name = spec.name.as_bytes();
    // Names are at most 255 bytes (checked when the model was built or parsed).
    for (dst, &src) in entry.name.iter_mut().zip(name) {
        *dst = src as std::ffi::c_char;
    }
    entry.usage = usage;
    entry.size = spec.byte_size();
    entry.dtype = spec.dtype.as_raw();
    entry.shape = if shape.is_empty() {
        std::ptr::null_mut()
    } else {
        shape.cast::<u32>()
    };
    entry.ndim = shape.len() as u32;
    shape
}

/// Builds the info array of `program`: inputs first, then outputs, in declared order.
pub(crate) fn allocate(program: &Program) -> Res<*mut nrt_tensor_info_array_t> {
    let count = program.inputs.len() + program.outputs.len();
    let header = std::mem::size_of::<nrt_tensor_info_array_t>();
    let layout = Layout::array::<nrt_tensor_info_t>(count)
        .and_then(|entries| {
            Layout::from_size_align(
                header + entries.size(),
                std::mem::align_of::<nrt_tensor_info_array_t>(),
            )
        })
        .or_else(|_| {
            fail(
                NRT_RESOURCE,
                format!("tensor info for {count} tensors is too large"),
            )
        })?;
    // SAFETY: the layout is non-zero-sized (it includes the 8-byte count).
    let base = unsafe { alloc_zeroed(layout) };
    if base.is_null() {
        return fail(NRT_RESOURCE, "out of host memory for tensor info");
    }
    let array = base.cast::<nrt_tensor_info_array_t>();
    let specs = program
        .inputs
        .iter()
        .map(|s| (s, NRT_TENSOR_USAGE_INPUT))
        .chain(program.outputs.iter().map(|s| (s, NRT_TENSOR_USAGE_OUTPUT)));
    let mut shapes = Vec::with_capacity(count);
    // SAFETY: `base` is a fresh zeroed allocation with room for the header and `count`
    // entries (all-zero bytes are a valid nrt_tensor_info_t: integers and a null pointer);
    // offsets follow the C layout of the flexible array member.
    unsafe {
        (*array).tensor_count = count as u64;
        let entries = base.add(header).cast::<nrt_tensor_info_t>();
        for (i, (spec, usage)) in specs.enumerate() {
            shapes.push(fill_entry(&mut *entries.add(i), spec, usage));
        }
    }
    arrays()
        .get_or_insert_with(HashMap::new)
        .insert(array as usize, Allocation { layout, shapes });
    Ok(array)
}

/// Frees an array made by [`allocate`].
pub(crate) fn free(array: *mut nrt_tensor_info_array_t) -> Res<()> {
    if array.is_null() {
        return fail(NRT_INVALID, "tensor_info is NULL");
    }
    let Some(allocation) = arrays().as_mut().and_then(|m| m.remove(&(array as usize))) else {
        return fail(
            NRT_INVALID,
            format!(
                "tensor_info {array:p} was not returned by nrt_get_model_tensor_info or was already freed"
            ),
        );
    };
    // SAFETY: allocated in `allocate` with this layout; removed from the registry, so it
    // is freed exactly once.
    unsafe { dealloc(array.cast(), allocation.layout) };
    for shape in allocation.shapes {
        // SAFETY: from `Box::into_raw` in `fill_entry`, owned by this registry entry only,
        // which was just removed: freed exactly once.
        drop(unsafe { Box::from_raw(shape) });
    }
    Ok(())
}
