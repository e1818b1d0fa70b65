//! The exported libnrt functions (`nrt_*`, `nrta_*`), with the types nrt-sys generated
//! from the C headers. [`crate::function_table`] lists each of them, so the compiler checks
//! every signature against the bindings.
//!
//! Common behaviour: every function is thread-safe and never unwinds into C (a panic is
//! caught, logged, and turned into `NRT_FAILURE`). A failing call logs one line saying
//! why at level ERROR (see `NEURON_RT_LOG_LEVEL`) and remembers it as the thread's last
//! error (`nrt_sim_last_error`). Outside the `nrt_init` / `nrt_close` window calls return
//! `NRT_UNINITIALIZED` / `NRT_CLOSED`; the core-count queries, `nrt_get_version`,
//! `nrt_get_instance_info`, `nrt_get_status_as_str` and `nrt_free_model_tensor_info`
//! work at any time. A NULL pointer where one is required gives `NRT_INVALID`; a handle
//! that is not a live object of the right kind gives `NRT_INVALID_HANDLE` (handles are
//! never reused, so stale ones are always caught).

use crate::config;
use crate::info;
use crate::log::{self, Level};
use crate::model::Program;
use crate::runtime::{self, Fail, Place, Res, fail, with_open};
use crate::status;
use crate::xu::{self, HostPtr, Work};
use nrt_sys::*;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// Runs an entry point: catches panics, logs failures, returns the status.
pub(crate) fn guard(func: &'static str, body: impl FnOnce() -> Res<()>) -> NRT_STATUS {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NRT_SUCCESS,
        Ok(Err(f)) => {
            if f.level == Level::Error {
                log::error(func, &f.message);
            } else {
                log::log(f.level, func, &f.message);
            }
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
unsafe fn put<T>(ptr: *mut T, what: &str, value: T) -> Res<()> {
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
unsafe fn c_text(ptr: *const c_char) -> String {
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
unsafe fn c_bytes<'a>(ptr: *const c_char, what: &str) -> Res<&'a [u8]> {
    if ptr.is_null() {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    // SAFETY: non-null and NUL-terminated (caller).
    Ok(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

fn not_simulated(what: &str) -> Res<()> {
    fail(
        NRT_FAILURE,
        format!("{what} is not simulated by nrt-sim (no multi-device or profiling model)"),
    )
}

/// Copies the first `min(size, size_of::<T>())` bytes of `value` to `dst`.
///
/// # Safety
///
/// A non-null `dst` must be valid for writes of `size` bytes.
unsafe fn put_prefix<T: Copy>(dst: *mut T, size: usize, what: &str, value: &T) -> Res<usize> {
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

fn copy_cstr(dst: &mut [c_char], text: &str) {
    let room = dst.len() - 1;
    for (d, &s) in dst.iter_mut().zip(text.as_bytes().iter().take(room)) {
        *d = s as c_char;
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle, versions, counts

/// Starts the simulated runtime, reading the environment (see the crate docs).
///
/// Returns `NRT_FAILURE` when already initialized (call `nrt_close` first), `NRT_INVALID`
/// for a bad framework type or environment value (the log names it).
///
/// # Safety
///
/// `fw_version` and `fal_version` are not read (may be anything).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_init(
    framework: nrt_framework_type_t,
    fw_version: *const c_char,
    fal_version: *const c_char,
) -> NRT_STATUS {
    let _ = (fw_version, fal_version);
    guard("nrt_init", || runtime::init(framework))
}

/// Closes the runtime: waits for queued async requests, then frees every model, tensor
/// and tensor set still live (counted in `live_at_last_close`). Init works again after.
///
/// # Safety
///
/// Always safe to call; declared `unsafe` like every libnrt entry point.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_close() {
    let _ = guard("nrt_close", || {
        runtime::close();
        Ok(())
    });
}

/// Writes the emulated library version (`NRT_SIM_VERSION`, default 2.34.10.0); at most
/// `size` bytes of the struct are written.
///
/// # Safety
///
/// `ver` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_version(ver: *mut nrt_version_t, size: usize) -> NRT_STATUS {
    guard("nrt_get_version", || {
        let v = runtime::current_version()?;
        let mut out = nrt_version_t {
            rt_major: v.major,
            rt_minor: v.minor,
            rt_patch: v.patch,
            rt_maintenance: v.maintenance,
            ..Default::default()
        };
        copy_cstr(
            &mut out.rt_detail,
            &format!(
                "nrt-sim {} (simulated libnrt {v}, no hardware)",
                env!("CARGO_PKG_VERSION")
            ),
        );
        copy_cstr(
            &mut out.git_hash,
            concat!("nrt-sim-", env!("CARGO_PKG_VERSION")),
        );
        // SAFETY: `ver` is valid for `size` bytes (caller).
        unsafe { put_prefix(ver, size, "ver", &out) }.map(drop)
    })
}

/// Writes instance information: an inf2.xlarge-like machine whose arch name is `nrt-sim`.
///
/// # Safety
///
/// `info` must be valid for writes of `instance_info_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_instance_info(
    info: *mut nrt_instance_info_t,
    instance_info_len: usize,
) -> NRT_STATUS {
    guard("nrt_get_instance_info", || {
        let mut out = nrt_instance_info_t {
            family: NRT_INSTANCE_INF2,
            size: NRT_INSTANCE_SIZE_1XL,
            ..Default::default()
        };
        copy_cstr(&mut out.arch_name, "nrt-sim");
        copy_cstr(&mut out.device_revision, "sim");
        // SAFETY: `info` is valid for `instance_info_len` bytes (caller).
        unsafe { put_prefix(info, instance_info_len, "info", &out) }.map(drop)
    })
}

/// The description of a status code (a static string; never NULL).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_status_as_str(status: NRT_STATUS) -> *const c_char {
    status::description(status).as_ptr()
}

fn total_cores() -> Res<u32> {
    if let runtime::Phase::Open(rt) = &*runtime::phase() {
        return Ok(rt.cfg.total_cores);
    }
    config::total_cores_from_env().or_else(|m| fail(NRT_INVALID, m))
}

fn visible_cores() -> Res<u32> {
    if let runtime::Phase::Open(rt) = &*runtime::phase() {
        return Ok(rt.cfg.visible_cores);
    }
    let total = config::total_cores_from_env().or_else(|m| fail(NRT_INVALID, m))?;
    match config::visible_from_env(total) {
        Ok((_, n)) => Ok(n),
        Err(config::EnvError::Invalid(m)) => fail(NRT_INVALID, m),
        Err(config::EnvError::NotEnough(m)) => fail(NRT_RESOURCE, m),
    }
}

/// Number of cores of the simulated machine (`NRT_SIM_VNC_COUNT`); works before init.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_total_vnc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_total_vnc_count", || unsafe {
        put(vnc_count, "vnc_count", total_cores()?)
    })
}

/// Same as `nrt_get_total_vnc_count` (one physical core per logical core).
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_total_nc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_total_nc_count", || unsafe {
        put(vnc_count, "vnc_count", total_cores()?)
    })
}

/// Number of cores this process may use (`NEURON_RT_VISIBLE_CORES`); works before init.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_visible_vnc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_visible_vnc_count", || unsafe {
        put(vnc_count, "vnc_count", visible_cores()?)
    })
}

/// Same as `nrt_get_visible_vnc_count`.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_visible_nc_count(vnc_count: *mut u32) -> NRT_STATUS {
    // SAFETY: `vnc_count` is writable (caller).
    guard("nrt_get_visible_nc_count", || unsafe {
        put(vnc_count, "vnc_count", visible_cores()?)
    })
}

/// Device memory accounting of core `vnc`: bytes used by tensors and models, and the
/// capacity. At most `stats_size_in` bytes are written; `*stats_size_out` (if not NULL)
/// gets the number written.
///
/// # Safety
///
/// `stats` must be valid for writes of `stats_size_in` bytes; `stats_size_out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_vnc_memory_stats(
    vnc: u32,
    stats: *mut nrt_vnc_memory_stats_t,
    stats_size_in: usize,
    stats_size_out: *mut usize,
) -> NRT_STATUS {
    guard("nrt_get_vnc_memory_stats", || {
        let value = with_open(|rt| {
            let core = rt.core(vnc.into(), "vnc")?;
            Ok(nrt_vnc_memory_stats_t {
                bytes_used: core.bytes.load(std::sync::atomic::Ordering::Relaxed) as usize,
                bytes_limit: core.capacity as usize,
            })
        })?;
        // SAFETY: `stats` is valid for `stats_size_in` bytes (caller).
        let written = unsafe { put_prefix(stats, stats_size_in, "stats", &value) }?;
        if !stats_size_out.is_null() {
            // SAFETY: non-null and writable (caller).
            unsafe { put(stats_size_out, "stats_size_out", written) }?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Models

/// Loads a simulator model file onto core `vnc` (-1: the first core with room for it).
///
/// Errors: `NRT_INVALID` for a bad container or payload (including real compiled NEFFs,
/// logged as "not an nrt-sim model"), `NRT_UNSUPPORTED_NEFF_VERSION` for a
/// packaging version other than 1 and 2 (2 is a real NEFF's: `NRT_INVALID`), `NRT_LOAD_NOT_ENOUGH_NC` for a core index past the visible ones,
/// `NRT_RESOURCE` when the core lacks device memory for the file.
///
/// # Safety
///
/// `neff_bytes` must be valid for reads of `size` bytes; `model` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_load(
    neff_bytes: *const c_void,
    size: usize,
    vnc: i32,
    vnc_count: i32,
    model: *mut *mut nrt_model_t,
) -> NRT_STATUS {
    guard("nrt_load", || {
        with_open(|_| Ok(()))?;
        if neff_bytes.is_null() || size == 0 {
            return fail(
                NRT_INVALID,
                format!("neff_bytes is {neff_bytes:p} with size {size}: no model file"),
            );
        }
        if model.is_null() {
            return fail(NRT_INVALID, "model is NULL");
        }
        // SAFETY: `neff_bytes` is valid for `size` bytes (caller).
        let bytes = unsafe { std::slice::from_raw_parts(neff_bytes.cast::<u8>(), size) };
        let program = Program::from_file(bytes).map_err(|(status, message)| Fail {
            status,
            message,
            level: Level::Error,
        })?;
        let handle = with_open(|rt| rt.load(program, size, vnc, vnc_count))?;
        // SAFETY: `model` is non-null and writable (caller).
        unsafe { put(model, "model", handle) }
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_load_collectives(
    neff_bytes: *const c_void,
    size: usize,
    vnc: i32,
    vnc_count: i32,
    ctx_device_id: u32,
    ctx_device_count: u32,
    model: *mut *mut nrt_model_t,
) -> NRT_STATUS {
    let _ = (
        neff_bytes,
        size,
        vnc,
        vnc_count,
        ctx_device_id,
        ctx_device_count,
        model,
    );
    guard("nrt_load_collectives", || {
        not_simulated("loading models with collectives")
    })
}

/// Unloads a model and frees its device memory.
///
/// # Safety
///
/// `model` is checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_unload(model: *mut nrt_model_t) -> NRT_STATUS {
    guard("nrt_unload", || with_open(|rt| rt.unload(model)))
}

/// Cores a model uses: always 1.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_model_vnc_count(
    model: *const nrt_model_t,
    vnc_count: *mut u32,
) -> NRT_STATUS {
    guard("nrt_get_model_vnc_count", || {
        with_open(|rt| rt.model(model))?;
        // SAFETY: writable (caller).
        unsafe { put(vnc_count, "vnc_count", 1) }
    })
}

/// Same as `nrt_get_model_vnc_count`.
///
/// # Safety
///
/// `vnc_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_model_nc_count(
    model: *const nrt_model_t,
    vnc_count: *mut u32,
) -> NRT_STATUS {
    guard("nrt_get_model_nc_count", || {
        with_open(|rt| rt.model(model))?;
        // SAFETY: writable (caller).
        unsafe { put(vnc_count, "vnc_count", 1) }
    })
}

/// Instances of a model: always 1.
///
/// # Safety
///
/// `instance_count` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_model_instance_count(
    model: *mut nrt_model_t,
    instance_count: *mut u32,
) -> NRT_STATUS {
    guard("nrt_get_model_instance_count", || {
        with_open(|rt| rt.model(model))?;
        // SAFETY: writable (caller).
        unsafe { put(instance_count, "instance_count", 1) }
    })
}

/// Model information (the core it is loaded on). At most `info_size_in` bytes are
/// written; `*info_size_out` (if not NULL) gets the number written.
///
/// # Safety
///
/// `info` must be valid for writes of `info_size_in` bytes; `info_size_out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_model_info(
    model: *const nrt_model_t,
    info: *mut nrt_model_info_t,
    info_size_in: usize,
    info_size_out: *mut usize,
) -> NRT_STATUS {
    guard("nrt_get_model_info", || {
        let m = with_open(|rt| rt.model(model))?;
        let value = nrt_model_info_t { vnc: m.core };
        // SAFETY: `info` is valid for `info_size_in` bytes (caller).
        let written = unsafe { put_prefix(info, info_size_in, "info", &value) }?;
        if !info_size_out.is_null() {
            // SAFETY: non-null and writable (caller).
            unsafe { put(info_size_out, "info_size_out", written) }?;
        }
        Ok(())
    })
}

/// The model's inputs then outputs (name, usage, byte size, dtype, shape), in an array to
/// free with `nrt_free_model_tensor_info`.
///
/// # Safety
///
/// `tensor_info` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_model_tensor_info(
    model: *mut nrt_model_t,
    tensor_info: *mut *mut nrt_tensor_info_array_t,
) -> NRT_STATUS {
    guard("nrt_get_model_tensor_info", || {
        if tensor_info.is_null() {
            return fail(NRT_INVALID, "tensor_info is NULL");
        }
        let m = with_open(|rt| rt.model(model))?;
        let array = info::allocate(&m.program)?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor_info, "tensor_info", array) }
    })
}

/// Frees an array from `nrt_get_model_tensor_info` (also after `nrt_close`). Unknown
/// pointers give `NRT_INVALID` and are not touched.
///
/// # Safety
///
/// Any pointer is accepted; only registered arrays are freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_free_model_tensor_info(
    tensor_info: *mut nrt_tensor_info_array_t,
) -> NRT_STATUS {
    guard("nrt_free_model_tensor_info", || info::free(tensor_info))
}

// ---------------------------------------------------------------------------------------
// Execution

/// Runs a model once: every input and output of the model must be bound by name with
/// exactly its byte size, on the model's core (or in host memory). Waits for the core,
/// computes, and takes the model's device time. First uses `NRT_SIM_EXEC_STACK` bytes
/// (4 MiB by default) of the caller's stack, as the real runtime does: a thread with
/// less crashes (run it on a thread of 8 MiB or more).
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_execute(
    model: *mut nrt_model_t,
    input_set: *const nrt_tensor_set_t,
    output_set: *mut nrt_tensor_set_t,
) -> NRT_STATUS {
    guard("nrt_execute", || {
        crate::stack::use_exec_stack();
        let bound = with_open(|rt| rt.bind(model, input_set, output_set))?;
        bound.run()
    })
}

/// Runs a model `repeat_count` times (>= 1) and stops at the first failure. Uses
/// `NRT_SIM_EXEC_STACK` bytes of the caller's stack, like `nrt_execute`.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_execute_repeat(
    model: *mut nrt_model_t,
    input_set: *const nrt_tensor_set_t,
    output_set: *mut nrt_tensor_set_t,
    repeat_count: c_int,
) -> NRT_STATUS {
    guard("nrt_execute_repeat", || {
        crate::stack::use_exec_stack();
        let bound = with_open(|rt| rt.bind(model, input_set, output_set))?;
        if repeat_count < 1 {
            return fail(
                NRT_INVALID,
                format!("repeat_count {repeat_count} is less than 1"),
            );
        }
        (0..repeat_count).try_for_each(|_| bound.run())
    })
}

// ---------------------------------------------------------------------------------------
// Tensors

/// Allocates a zeroed tensor: DEVICE on core `vnc` (counted against its memory), HOST
/// (pinned host memory, at most 4 MiB; `vnc` ignored) or VIRTUAL (pageable host memory;
/// `vnc` ignored; emulated runtime below 2.32 only, else `NRT_INVALID`). `name` may be NULL. Size 0 -> `NRT_INVALID`; not enough device
/// memory, or a HOST tensor over 4 MiB -> `NRT_RESOURCE`.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate(
    tensor_placement: nrt_tensor_placement_t,
    vnc: c_int,
    size: usize,
    name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_tensor(tensor_placement, vnc, size, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}

/// Allocates a tensor without storage (size 0) to attach a buffer to.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate_empty(
    name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate_empty", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_empty(name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}

/// Gives a tensor caller-owned storage of `size` bytes: its previous storage (if any) is
/// detached, and freed once no slice uses it; the tensor's size becomes `size` and its
/// placement VIRTUAL.
///
/// # Safety
///
/// `buffer` must be valid for reads and writes of `size` bytes until the tensor is freed
/// and no request uses it any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_attach_buffer(
    tensor: *mut nrt_tensor_t,
    buffer: *mut c_void,
    size: usize,
) -> NRT_STATUS {
    // SAFETY: the buffer's validity is the caller's promise, passed on.
    guard("nrt_tensor_attach_buffer", || {
        with_open(|rt| unsafe { rt.attach_buffer(tensor, buffer.cast(), size) })
    })
}

/// A view of `size` bytes at `offset` of another tensor (no copy). The storage is shared:
/// it stays allocated (and counted) until the last tensor using it is freed.
///
/// # Safety
///
/// `name` NULL or a C string; `tensor_slice` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_allocate_slice(
    tensor_source: *const nrt_tensor_t,
    offset: usize,
    size: usize,
    name: *const c_char,
    tensor_slice: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_tensor_allocate_slice", || {
        if tensor_slice.is_null() {
            return fail(NRT_INVALID, "tensor_slice is NULL");
        }
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_text(name) };
        let h = with_open(|rt| rt.allocate_slice(tensor_source, offset, size, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor_slice, "tensor_slice", h) }
    })
}

/// Frees a tensor and sets `*tensor` to NULL. Sets naming it keep the (now dead) entry;
/// requests already holding it finish normally. Errors are logged only.
///
/// # Safety
///
/// `tensor` NULL or valid for reads and writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_free(tensor: *mut *mut nrt_tensor_t) {
    let _ = guard("nrt_tensor_free", || {
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        // SAFETY: non-null and readable (caller).
        let handle = unsafe { tensor.read() };
        with_open(|rt| rt.free_tensor(handle))?;
        // SAFETY: non-null and writable (caller).
        unsafe { tensor.write(std::ptr::null_mut()) };
        Ok(())
    });
}

/// Copies `size` bytes at `offset` of the tensor into `buf`.
///
/// # Safety
///
/// `buf` must be valid for writes of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_read(
    tensor: *const nrt_tensor_t,
    buf: *mut c_void,
    offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_read", || {
        let (t, core) = with_open(|rt| {
            let t = rt.tensor(tensor, "tensor")?;
            let core = rt.core_of(&t);
            Ok((t, core))
        })?;
        t.check_range("read", offset as u64, size as u64)?;
        if buf.is_null() && size > 0 {
            return fail(NRT_INVALID, "buf is NULL");
        }
        let start = Instant::now();
        // SAFETY: `buf` holds `size` writable bytes (caller); the range is checked.
        unsafe { t.read_into(buf.cast(), offset, size) }?;
        if let Some(core) = core {
            core.finish_sync_transfer(start, size as u64);
        }
        Ok(())
    })
}

/// Copies `size` bytes from `buf` to `offset` of the tensor.
///
/// # Safety
///
/// `buf` must be valid for reads of `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_write(
    tensor: *mut nrt_tensor_t,
    buf: *const c_void,
    offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_write", || {
        let (t, core) = with_open(|rt| {
            let t = rt.tensor(tensor, "tensor")?;
            let core = rt.core_of(&t);
            Ok((t, core))
        })?;
        t.check_range("write", offset as u64, size as u64)?;
        if buf.is_null() && size > 0 {
            return fail(NRT_INVALID, "buf is NULL");
        }
        let start = Instant::now();
        // SAFETY: `buf` holds `size` readable bytes (caller); the range is checked.
        unsafe { t.write_from(buf.cast(), offset, size) }?;
        if let Some(core) = core {
            core.finish_sync_transfer(start, size as u64);
        }
        Ok(())
    })
}

/// Checks a sync or async copy; `Ok((src, dst))` when it may go ahead.
fn check_copy(
    rt: &runtime::Runtime,
    src: *const nrt_tensor_t,
    src_offset: u64,
    dst: *const nrt_tensor_t,
    dst_offset: u64,
    size: u64,
) -> Res<(
    std::sync::Arc<runtime::Tensor>,
    std::sync::Arc<runtime::Tensor>,
)> {
    let s = rt.tensor(src, "src")?;
    let d = rt.tensor(dst, "dst")?;
    s.check_range("copy source", src_offset, size)?;
    d.check_range("copy destination", dst_offset, size)?;
    if let (Place::Device(a), Place::Device(b)) = (s.place, d.place)
        && a != b
    {
        return fail(
            NRT_INVALID,
            format!(
                "device-to-device copy from core {a} to core {b}: both tensors must be on one core"
            ),
        );
    }
    Ok((s, d))
}

/// Copies `size` bytes between two tensors (device to device only within one core).
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_copy(
    src: *const nrt_tensor_t,
    src_offset: usize,
    dst: *mut nrt_tensor_t,
    dst_offset: usize,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_copy", || {
        let (s, d) = with_open(|rt| {
            check_copy(
                rt,
                src,
                src_offset as u64,
                dst,
                dst_offset as u64,
                size as u64,
            )
        })?;
        runtime::copy_between(&s, src_offset, &d, dst_offset, size)
    })
}

/// Sets `size` bytes at `offset` to `value as u8`.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_memset(
    tensor: *mut nrt_tensor_t,
    offset: u64,
    value: c_int,
    size: usize,
) -> NRT_STATUS {
    guard("nrt_tensor_memset", || {
        let t = with_open(|rt| rt.tensor(tensor, "tensor"))?;
        t.check_range("memset", offset, size as u64)?;
        t.fill(offset as usize, value as u8, size)
    })
}

/// The tensor's size in bytes; 0 (and a log line) for a bad handle.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_size(tensor: *const nrt_tensor_t) -> usize {
    let mut size = 0;
    let _ = guard("nrt_tensor_get_size", || {
        size = with_open(|rt| rt.tensor(tensor, "tensor"))?.size;
        Ok(())
    });
    size
}

/// The host address of a HOST or attached tensor's memory; NULL (and a log line) for
/// device tensors, whose memory is not mapped into the host, and for bad handles.
///
/// # Safety
///
/// Handles are checked against the registry; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_va(tensor: *const nrt_tensor_t) -> *mut c_void {
    let mut va = std::ptr::null_mut();
    let _ = guard("nrt_tensor_get_va", || {
        let t = with_open(|rt| rt.tensor(tensor, "tensor"))?;
        if let Place::Device(c) = t.place {
            return fail(
                NRT_INVALID,
                format!(
                    "tensor '{}' is in device memory of core {c}, which has no host address",
                    t.name
                ),
            );
        }
        let Some(mem) = &t.mem else {
            return fail(
                NRT_INVALID,
                format!("tensor '{}' has no memory attached", t.name),
            );
        };
        // SAFETY: the offset lies inside the buffer (slices are checked when made).
        va = unsafe { mem.buf.base().add(mem.offset) }.cast();
        Ok(())
    });
    va
}

/// A device tensor's (simulated) physical address, size and memory bank.
///
/// # Safety
///
/// `alloc_info` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_get_device_allocation_info(
    tensor: *const nrt_tensor_t,
    alloc_info: *mut nrt_tensor_device_allocation_info_t,
) -> NRT_STATUS {
    guard("nrt_tensor_get_device_allocation_info", || {
        let value = with_open(|rt| rt.device_allocation_info(tensor))?;
        // SAFETY: writable (caller).
        unsafe { put(alloc_info, "alloc_info", value) }
    })
}

/// Resolves and checks every op of a batch before any byte moves.
///
/// One checked batch op: the tensor, its core if on a device (transfer time), the op.
type BatchOp = (
    std::sync::Arc<runtime::Tensor>,
    Option<std::sync::Arc<runtime::Core>>,
    nrt_tensor_batch_op_t,
);

/// Runs `op` on every checked batch op in order; device ops take transfer time.
fn run_batch(
    ops: &[BatchOp],
    op: impl Fn(&runtime::Tensor, &nrt_tensor_batch_op_t) -> Res<()>,
) -> Res<()> {
    ops.iter().try_for_each(|(t, core, o)| {
        let start = Instant::now();
        op(t, o)?;
        if let Some(core) = core {
            core.finish_sync_transfer(start, o.size);
        }
        Ok(())
    })
}

/// # Safety
///
/// `batches` must point to `num_batches` batches whose `ops` point to `num_ops` ops.
unsafe fn check_batches(batches: *const nrt_tensor_batch_t, num_batches: u64) -> Res<Vec<BatchOp>> {
    if num_batches == 0 {
        return Ok(Vec::new());
    }
    if batches.is_null() {
        return fail(
            NRT_INVALID,
            format!("batches is NULL with num_batches {num_batches}"),
        );
    }
    let Ok(count) = usize::try_from(num_batches) else {
        return fail(
            NRT_INVALID,
            format!("num_batches {num_batches} is too large"),
        );
    };
    // SAFETY: `batches` points to `count` batches (caller).
    let batches = unsafe { std::slice::from_raw_parts(batches, count) };
    with_open(|rt| {
        let mut ops = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let t = rt.tensor(b.tensor, &format!("batches[{i}].tensor"))?;
            if b.num_ops > 0 && b.ops.is_null() {
                return fail(
                    NRT_INVALID,
                    format!("batches[{i}].ops is NULL with num_ops {}", b.num_ops),
                );
            }
            if b.num_ops == 0 {
                continue;
            }
            // SAFETY: `ops` points to `num_ops` ops (caller).
            let list = unsafe { std::slice::from_raw_parts(b.ops, b.num_ops as usize) };
            for (j, op) in list.iter().enumerate() {
                t.check_range(&format!("batches[{i}].ops[{j}]"), op.offset, op.size)?;
                if op.buffer.is_null() && op.size > 0 {
                    return fail(NRT_INVALID, format!("batches[{i}].ops[{j}].buffer is NULL"));
                }
                ops.push((t.clone(), rt.core_of(&t), *op));
            }
        }
        Ok(ops)
    })
}

/// Reads several ranges of several tensors into host buffers. Every op is checked before
/// any is done; the `unsafe` flag is accepted and ignored (checks always run).
///
/// # Safety
///
/// `batches` must point to `num_batches` valid batches; each op's `buffer` must be valid
/// for writes of its `size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_read_batch(
    batches: *const nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_: bool,
) -> NRT_STATUS {
    let _ = unsafe_;
    guard("nrt_tensor_read_batch", || {
        // SAFETY: the batch array is valid (caller).
        let ops = unsafe { check_batches(batches, num_batches) }?;
        run_batch(&ops, |t, op| {
            // SAFETY: the buffer holds `size` writable bytes (caller); range checked.
            unsafe { t.read_into(op.buffer.cast(), op.offset as usize, op.size as usize) }
        })
    })
}

/// Writes host buffers to several ranges of several tensors; checked like
/// `nrt_tensor_read_batch`.
///
/// # Safety
///
/// `batches` must point to `num_batches` valid batches; each op's `buffer` must be valid
/// for reads of its `size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_tensor_write_batch(
    batches: *const nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_: bool,
) -> NRT_STATUS {
    let _ = unsafe_;
    guard("nrt_tensor_write_batch", || {
        // SAFETY: the batch array is valid (caller).
        let ops = unsafe { check_batches(batches, num_batches) }?;
        run_batch(&ops, |t, op| {
            // SAFETY: the buffer holds `size` readable bytes (caller); range checked.
            unsafe { t.write_from(op.buffer.cast(), op.offset as usize, op.size as usize) }
        })
    })
}

// ---------------------------------------------------------------------------------------
// Tensor sets

/// Allocates an empty tensor set.
///
/// # Safety
///
/// `result` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_allocate_tensor_set(result: *mut *mut nrt_tensor_set_t) -> NRT_STATUS {
    guard("nrt_allocate_tensor_set", || {
        if result.is_null() {
            return fail(NRT_INVALID, "result is NULL");
        }
        let h = with_open(|rt| rt.allocate_set())?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(result, "result", h) }
    })
}

/// Destroys a tensor set (not its tensors) and sets `*tensor_set` to NULL. Errors are
/// logged only.
///
/// # Safety
///
/// `tensor_set` NULL or valid for reads and writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_destroy_tensor_set(tensor_set: *mut *mut nrt_tensor_set_t) {
    let _ = guard("nrt_destroy_tensor_set", || {
        if tensor_set.is_null() {
            return fail(NRT_INVALID, "tensor_set is NULL");
        }
        // SAFETY: non-null and readable (caller).
        let handle = unsafe { tensor_set.read() };
        with_open(|rt| rt.destroy_set(handle))?;
        // SAFETY: non-null and writable (caller).
        unsafe { tensor_set.write(std::ptr::null_mut()) };
        Ok(())
    });
}

/// Adds a tensor under `tensor_name`, replacing any tensor of that name. The set does
/// not own the tensor.
///
/// # Safety
///
/// `tensor_name` must be NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_add_tensor_to_tensor_set(
    tensor_set: *mut nrt_tensor_set_t,
    tensor_name: *const c_char,
    tensor: *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_add_tensor_to_tensor_set", || {
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_bytes(tensor_name, "tensor_name") }?;
        with_open(|rt| rt.add_to_set(tensor_set, name, tensor))
    })
}

/// Looks a tensor up by name: unknown name -> `NRT_FAILURE` (as the runtime documents)
/// and `*tensor` is left alone; a tensor freed since it was added -> `NRT_INVALID_HANDLE`.
///
/// # Safety
///
/// `tensor_name` must be NULL or a C string; `tensor` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_get_tensor_from_tensor_set(
    tensor_set: *mut nrt_tensor_set_t,
    tensor_name: *const c_char,
    tensor: *mut *mut nrt_tensor_t,
) -> NRT_STATUS {
    guard("nrt_get_tensor_from_tensor_set", || {
        // SAFETY: NULL or a C string (caller).
        let name = unsafe { c_bytes(tensor_name, "tensor_name") }?;
        if tensor.is_null() {
            return fail(NRT_INVALID, "tensor is NULL");
        }
        let h = with_open(|rt| rt.get_from_set(tensor_set, name))?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(tensor, "tensor", h) }
    })
}

// ---------------------------------------------------------------------------------------
// Not simulated

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_build_global_comm(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_build_global_comm", || {
        not_simulated("global communicators")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_cc_global_comm_init(
    vnc: u32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_cc_global_comm_init", || {
        not_simulated("global communicators")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_barrier(
    vnc: i32,
    g_device_id: u32,
    g_device_count: u32,
) -> NRT_STATUS {
    let _ = (vnc, g_device_id, g_device_count);
    guard("nrt_barrier", || not_simulated("barriers across devices"))
}

/// Not simulated (profiling): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_start(
    model: *mut nrt_model_t,
    filename: *const c_char,
) -> NRT_STATUS {
    let _ = (model, filename);
    guard("nrt_profile_start", || not_simulated("profiling"))
}

/// Not simulated (profiling): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_profile_stop(filename: *const c_char) -> NRT_STATUS {
    let _ = filename;
    guard("nrt_profile_stop", || not_simulated("profiling"))
}

// ---------------------------------------------------------------------------------------
// Async API v3

/// Refuses v3 calls when emulating a runtime older than 2.31.
fn require_v3() -> Res<()> {
    let v = runtime::current_version()?;
    if v.has_async_v3() {
        Ok(())
    } else {
        fail(
            NRT_FAILURE,
            format!(
                "the async v3 API needs runtime 2.31 or later; this simulator emulates {v} (NRT_SIM_VERSION)"
            ),
        )
    }
}

/// Checks the `ret` and `req_sequence` out-pointers of a schedule call.
fn check_slots(ret: *mut NRT_STATUS, req_sequence: *mut nrta_seq_t) -> Res<()> {
    if ret.is_null() || !ret.is_aligned() {
        return fail(NRT_INVALID, format!("ret {ret:p} is NULL or misaligned"));
    }
    if req_sequence.is_null() || !req_sequence.is_aligned() {
        return fail(
            NRT_INVALID,
            format!("req_sequence {req_sequence:p} is NULL or misaligned"),
        );
    }
    Ok(())
}

/// The TENSOR_OP queue `(lnc_idx, queue)` that carries a transfer of `tensors`.
///
/// `lnc_idx` names the core whose DMA engine moves the data (runtime 2.31.24 added the
/// parameter "to select the DMA engine"). Whether another core's engine may move a
/// device tensor is not documented; the simulator takes the strict answer and refuses
/// it with `NRT_INVALID`, so code that works here never relies on it.
fn transfer_queue<'a>(
    rt: &'a runtime::Runtime,
    lnc_idx: c_int,
    queue: c_int,
    tensors: &[(&str, &runtime::Tensor)],
) -> Res<&'a std::sync::Arc<xu::XuQueue>> {
    let q = xu::lookup(
        &rt.queues,
        rt.cores.len(),
        lnc_idx.into(),
        NRTA_XU_TENSOR_OP,
        queue.into(),
    )?;
    for (what, t) in tensors {
        if let Place::Device(core) = t.place
            && i64::from(core) != i64::from(lnc_idx)
        {
            return fail(
                NRT_INVALID,
                format!(
                    "{what} is a device tensor on core {core}, but lnc_idx {lnc_idx} names another core's DMA engine"
                ),
            );
        }
    }
    Ok(q)
}

/// Schedules a write of `size` bytes from `buf` to `offset` of the tensor on TENSOR_OP
/// queue `queue` (0 or 1) of core `lnc_idx` (the tensor's core for a device tensor).
///
/// # Safety
///
/// `buf` must stay valid for reads of `size` bytes, and `ret` for writes, until the
/// request completes; `req_sequence` valid for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_write(
    tensor: *mut nrt_tensor_t,
    buf: *const c_void,
    offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_write", || {
        require_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            let t = rt.tensor(tensor, "tensor")?;
            t.check_range("write", offset, size)?;
            if buf.is_null() && size > 0 {
                return fail(NRT_INVALID, "buf is NULL");
            }
            let q = transfer_queue(rt, lnc_idx, queue, &[("tensor", &t)])?;
            let work = Work::Write {
                tensor: t.clone(),
                src: HostPtr(buf.cast_mut().cast()),
                offset: offset as usize,
                size: size as usize,
            };
            // SAFETY: `ret` and `buf` stay valid until completion (caller).
            unsafe { q.schedule(work, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules a read of `size` bytes at `offset` of the tensor into `buf`, on TENSOR_OP
/// queue `queue` of core `lnc_idx`.
///
/// # Safety
///
/// `buf` must stay valid for writes of `size` bytes, and `ret` for writes, until the
/// request completes; `req_sequence` valid for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_read(
    buf: *mut c_void,
    tensor: *mut nrt_tensor_t,
    offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_read", || {
        require_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            let t = rt.tensor(tensor, "tensor")?;
            t.check_range("read", offset, size)?;
            if buf.is_null() && size > 0 {
                return fail(NRT_INVALID, "buf is NULL");
            }
            let q = transfer_queue(rt, lnc_idx, queue, &[("tensor", &t)])?;
            let work = Work::Read {
                tensor: t.clone(),
                dst: HostPtr(buf.cast()),
                offset: offset as usize,
                size: size as usize,
            };
            // SAFETY: `ret` and `buf` stay valid until completion (caller).
            unsafe { q.schedule(work, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules a tensor-to-tensor copy on TENSOR_OP queue `queue` of core `lnc_idx`;
/// device tensors must be on that core (so device to device only within one core).
///
/// # Safety
///
/// `ret` must stay valid for writes until the request completes; `req_sequence` valid
/// for writes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn nrta_tensor_copy(
    src: *mut nrt_tensor_t,
    src_offset: u64,
    dst: *mut nrt_tensor_t,
    dst_offset: u64,
    size: u64,
    lnc_idx: c_int,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_tensor_copy", || {
        require_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            let (s, d) = check_copy(rt, src, src_offset, dst, dst_offset, size)?;
            let q = transfer_queue(rt, lnc_idx, queue, &[("src", &s), ("dst", &d)])?;
            let work = Work::Copy {
                src: s,
                src_offset: src_offset as usize,
                dst: d,
                dst_offset: dst_offset as usize,
                size: size as usize,
            };
            // SAFETY: `ret` stays valid until completion (caller).
            unsafe { q.schedule(work, ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Schedules an execution on the COMPUTE queue of the model's core (`queue` must be 0),
/// with the same checks as `nrt_execute` done now.
///
/// # Safety
///
/// `ret` must stay valid for writes until the request completes; `req_sequence` valid
/// for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_execute_schedule(
    model: *mut nrt_model_t,
    input: *const nrt_tensor_set_t,
    output: *mut nrt_tensor_set_t,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_execute_schedule", || {
        require_v3()?;
        check_slots(ret, req_sequence)?;
        let seq = with_open(|rt| {
            let bound = rt.bind(model, input, output)?;
            let q = xu::lookup(
                &rt.queues,
                rt.cores.len(),
                bound.model.core.into(),
                NRTA_XU_COMPUTE,
                queue.into(),
            )?;
            // SAFETY: `ret` stays valid until completion (caller).
            unsafe { q.schedule(Work::Execute(bound), ret) }
        })?;
        // SAFETY: checked non-null and aligned; writable (caller).
        unsafe { put(req_sequence, "req_sequence", seq) }
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_cc_prepare(
    comm: *mut nrt_cc_comm_t,
    input: *mut nrt_tensor_list_t,
    output: *mut nrt_tensor_list_t,
    dtype: nrt_dtype_t,
    op: nrt_op_type_t,
    cc_op: nrt_cc_op_type_t,
    cc_ctx: *mut *mut nrt_cc_context_t,
) -> NRT_STATUS {
    let _ = (comm, input, output, dtype, op, cc_op, cc_ctx);
    guard("nrta_cc_prepare", || {
        require_v3()?;
        not_simulated("collectives")
    })
}

/// Not simulated (collectives): returns `NRT_FAILURE`.
///
/// # Safety
///
/// No argument is read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_cc_schedule(
    cc_ctx: *mut *mut nrt_cc_context_t,
    queue: c_int,
    ret: *mut NRT_STATUS,
    req_sequence: *mut nrta_seq_t,
) -> NRT_STATUS {
    let _ = (cc_ctx, queue, ret, req_sequence);
    guard("nrta_cc_schedule", || {
        require_v3()?;
        not_simulated("collectives")
    })
}

/// Whether request `seq` has completed; `NRT_INVALID` for an id its queue never issued.
///
/// # Safety
///
/// `is_completed` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_is_completed(seq: nrta_seq_t, is_completed: *mut bool) -> NRT_STATUS {
    guard("nrta_is_completed", || {
        require_v3()?;
        if is_completed.is_null() {
            return fail(NRT_INVALID, "is_completed is NULL");
        }
        let done =
            with_open(|rt| xu::queue_of_seq(&rt.queues, rt.cores.len(), seq)?.is_completed(seq))?;
        // SAFETY: writable (caller).
        unsafe { put(is_completed, "is_completed", done) }
    })
}

/// The last completed sequence id of one queue (`xu_id << 48` before any).
///
/// # Safety
///
/// `seq` must be valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_get_sequence(
    lnc: u32,
    xu: nrta_xu_t,
    queue: c_int,
    seq: *mut nrta_seq_t,
) -> NRT_STATUS {
    guard("nrta_get_sequence", || {
        require_v3()?;
        let last = with_open(|rt| {
            Ok(
                xu::lookup(&rt.queues, rt.cores.len(), lnc.into(), xu, queue.into())?
                    .last_completed(),
            )
        })?;
        // SAFETY: writable (caller).
        unsafe { put(seq, "seq", last) }
    })
}

/// Refuses the completion-event calls when emulating a runtime older than 2.32.
fn require_events() -> Res<()> {
    require_v3()?;
    let v = runtime::current_version()?;
    if v.has_async_events() {
        Ok(())
    } else {
        fail(
            NRT_FAILURE,
            format!(
                "completion events need runtime 2.32 or later; this simulator emulates {v} (NRT_SIM_VERSION)"
            ),
        )
    }
}

/// Signals the eventfd `fd` (counter + 1) when request `seq` completes, at once if it
/// already has; `fd < 0` removes the registrations of `seq`. The signal is written after
/// the request's status (as `nrta_is_completed` sees it). `NRT_INVALID` for an id its
/// queue never issued or an `fd` that is not an open eventfd.
///
/// # Safety
///
/// `fd` must stay open until the signal was delivered or the registration removed (the
/// simulator only passes it to write(2)).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_event_register_seq_id_completion(
    seq: nrta_seq_t,
    fd: c_int,
) -> NRT_STATUS {
    guard("nrta_event_register_seq_id_completion", || {
        require_events()?;
        with_open(|rt| {
            xu::queue_of_seq(&rt.queues, rt.cores.len(), seq)?.register_seq_event(seq, fd)
        })
    })
}

/// Signals the eventfd `fd` on every completion of unit `(lnc, xu, queue)`, replacing
/// the unit's earlier fd; `fd < 0` deregisters. One signal may stand for several
/// completions: read `nrta_get_sequence` after a wake-up. `NRT_INVALID` for a unit that
/// does not exist or an `fd` that is not an open eventfd.
///
/// # Safety
///
/// `fd` must stay open until it is deregistered (the simulator only passes it to
/// write(2)).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_event_register_xu_completion(
    lnc: c_int,
    xu: nrta_xu_t,
    queue: c_int,
    fd: c_int,
) -> NRT_STATUS {
    guard("nrta_event_register_xu_completion", || {
        require_events()?;
        with_open(|rt| {
            xu::lookup(&rt.queues, rt.cores.len(), lnc.into(), xu, queue.into())?
                .register_xu_event(fd)
        })
    })
}

/// Marker of the async v2 API, exported so that older-runtime detection by symbol can be
/// exercised; the simulator does not model v2 error trackers and always returns
/// `NRT_FAILURE` without reading any argument.
///
/// # Safety
///
/// Reads no argument, so it is harmless whatever the caller passes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrta_error_tracker_create() -> NRT_STATUS {
    guard("nrta_error_tracker_create", || {
        not_simulated("the async v2 error tracker")
    })
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
