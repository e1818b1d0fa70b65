//! Models: load, unload, information, and synchronous execution.

use super::args::{guard, put, put_prefix};
use crate::error::{Fail, fail};
use crate::info;
use crate::log::Level;
use crate::model::read_model_file;
use crate::runtime::with_open;
use nrt_sys::*;
use std::ffi::{c_int, c_void};

/// Loads a model file onto core `vnc` (-1: the first core with room for it): a
/// simulator model file, or a real NEFF in signature-only mode (its tensors as its
/// signature says, synthetic outputs; payload hash checked when
/// `NEURON_RT_VALIDATE_HASH` is true) on as many consecutive cores as its header asks.
///
/// Errors: `NRT_INVALID` for a bad container or payload (a truncated file, a bad hash,
/// a damaged archive or signature), `NRT_UNSUPPORTED_NEFF_VERSION` for a packaging
/// version other than 1 and 2, `NRT_LOAD_NOT_ENOUGH_NC` for cores past the visible
/// ones, `NRT_RESOURCE` when the cores lack device memory for the file.
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
    // SAFETY: forwarded from the caller.
    guard("nrt_load", || unsafe {
        load_file(neff_bytes, size, vnc, vnc_count, model, None)
    })
}

/// `nrt_load` and `nrt_load_collectives`: checks the pointers, parses the file, loads.
///
/// # Safety
///
/// As `nrt_load`.
unsafe fn load_file(
    neff_bytes: *const c_void,
    size: usize,
    vnc: i32,
    vnc_count: i32,
    model: *mut *mut nrt_model_t,
    rank: Option<(u32, u32)>,
) -> crate::error::Res<()> {
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
    let validate_hash = with_open(|rt| Ok(rt.cfg.validate_hash))?;
    let program = read_model_file(bytes, validate_hash).map_err(|(status, message)| Fail {
        status,
        message,
        level: Level::Error,
    })?;
    let synthetic = program.synthetic.then(|| (program.label(), program.cores));
    let span = crate::trace::Span::begin("nrt_load");
    let name = program.name.clone();
    let loaded = with_open(|rt| {
        let handle = rt.load(program, size, vnc, vnc_count, rank)?;
        Ok((handle, rt.model(handle)?.core))
    });
    if let Some(span) = span {
        let (core, status) = match &loaded {
            Ok((_, core)) => (Some(*core), NRT_SUCCESS),
            Err(f) => (None, f.status),
        };
        span.end(core, &name, status as i32, Some(size as u64));
    }
    if loaded.is_ok()
        && let Some((label, cores)) = synthetic
    {
        crate::log::log(
            Level::Info,
            "nrt_load",
            &format!(
                "model {label} loaded on {cores} core(s){}",
                if validate_hash { ", hash verified" } else { "" }
            ),
        );
    }
    // SAFETY: `model` is non-null and writable (caller).
    unsafe { put(model, "model", loaded?.0) }
}

/// Loads a simulator model file onto core `vnc` as rank `ctx_device_id` of a
/// collective group of `ctx_device_count` ranks. The ranks of one group are the models
/// with the same name and world size; their executions meet at every collective op.
///
/// Errors: those of `nrt_load`, and `NRT_INVALID` for a rank not below the world size, a
/// model whose collectives name another world size, a rank or core already used by the
/// group, a world larger than the visible cores without `NEURON_RT_ROOT_COMM_ID`
/// (other ranks would be in other processes), or a `NEURON_RT_ROOT_COMM_ID` that is not
/// a loopback `ip:port` (ranks across processes meet over TCP on this machine only).
///
/// # Safety
///
/// As `nrt_load`.
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
    guard("nrt_load_collectives", || {
        let rank = Some((ctx_device_id, ctx_device_count));
        // SAFETY: forwarded from the caller.
        unsafe { load_file(neff_bytes, size, vnc, vnc_count, model, rank) }
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

/// Cores a model uses: 1 for the simulator's own models, a real NEFF's core count.
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
        let m = with_open(|rt| rt.model(model))?;
        // SAFETY: writable (caller).
        unsafe { put(vnc_count, "vnc_count", m.program.cores) }
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
        let m = with_open(|rt| rt.model(model))?;
        // SAFETY: writable (caller).
        unsafe { put(vnc_count, "vnc_count", m.program.cores) }
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
        let span = crate::trace::Span::begin("nrt_execute");
        // The execution is queued now: the simulator's own work below (stack probe,
        // binding) is part of its device time, not added to it.
        let _called = crate::dma::Called::now();
        crate::stack::use_exec_stack();
        let bound = with_open(|rt| rt.bind(model, input_set, output_set))?;
        let result = bound.run();
        if let Some(span) = span {
            let status = result.as_ref().map_or_else(|f| f.status, |_| NRT_SUCCESS);
            span.end(
                Some(bound.core.index),
                &bound.model.program.name,
                status as i32,
                None,
            );
        }
        result
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
        let _called = crate::dma::Called::now();
        crate::stack::use_exec_stack();
        let bound = with_open(|rt| rt.bind(model, input_set, output_set))?;
        if repeat_count < 1 {
            return fail(
                NRT_INVALID,
                format!("repeat_count {repeat_count} is less than 1"),
            );
        }
        let span = crate::trace::Span::begin("nrt_execute");
        let result = bound.run_repeat(repeat_count as u32);
        if let Some(span) = span {
            let status = result.as_ref().map_or_else(|f| f.status, |_| NRT_SUCCESS);
            span.end(
                Some(bound.core.index),
                &bound.model.program.name,
                status as i32,
                None,
            );
        }
        result
    })
}
