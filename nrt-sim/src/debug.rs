//! The debug stream (`nrt_debug_client_*`): one client per core; while it is connected,
//! every synchronous read of a device tensor of that core becomes a tensor-read event.
//! The client's descriptor is an eventfd in semaphore mode whose count is the number of
//! events waiting, so it polls readable exactly while one is there.

use crate::error::{Res, fail};
use nrt_sys::*;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// One event: its type and payload bytes.
pub(crate) struct DebugEvent {
    pub(crate) ty: u32,
    pub(crate) payload: Vec<u8>,
}

struct Stream {
    core: u32,
    fd: OwnedFd,
    events: VecDeque<DebugEvent>,
    capacity: usize,
}

/// Connected streams by descriptor.
static STREAMS: Mutex<Option<HashMap<RawFd, Stream>>> = Mutex::new(None);

fn streams() -> MutexGuard<'static, Option<HashMap<RawFd, Stream>>> {
    // Every update is one insert, remove or push.
    STREAMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Events a stream holds before it drops new ones (`NEURON_RT_DEBUG_STREAM_BUFFER_SIZE`).
fn capacity() -> usize {
    std::env::var("NEURON_RT_DEBUG_STREAM_BUFFER_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(65_536)
}

/// Connects the one client of core `core`; its descriptor.
pub(crate) fn connect(core: u32) -> Res<RawFd> {
    let mut guard = streams();
    let map = guard.get_or_insert_with(HashMap::new);
    if map.values().any(|s| s.core == core) {
        return fail(
            NRT_INVALID,
            format!("core {core}'s debug stream already has a client (one at a time)"),
        );
    }
    // SAFETY: eventfd has no memory preconditions.
    let raw = unsafe {
        libc::eventfd(
            0,
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE,
        )
    };
    if raw < 0 {
        return fail(
            NRT_RESOURCE,
            format!("eventfd: {}", std::io::Error::last_os_error()),
        );
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    map.insert(
        raw,
        Stream {
            core,
            fd,
            events: VecDeque::new(),
            capacity: capacity(),
        },
    );
    Ok(raw)
}

/// Disconnects the client of descriptor `fd` and closes it.
pub(crate) fn close(fd: RawFd) -> Res<()> {
    match streams().as_mut().and_then(|m| m.remove(&fd)) {
        Some(_) => Ok(()),
        None => fail(
            NRT_INVALID,
            format!("descriptor {fd} is not a connected debug stream"),
        ),
    }
}

/// Takes the oldest event of stream `fd`; `NRT_QUEUE_EMPTY` when none is waiting.
pub(crate) fn take(fd: RawFd) -> Res<DebugEvent> {
    let mut guard = streams();
    let Some(s) = guard.as_mut().and_then(|m| m.get_mut(&fd)) else {
        return fail(
            NRT_INVALID,
            format!("descriptor {fd} is not a connected debug stream"),
        );
    };
    let Some(e) = s.events.pop_front() else {
        return fail(
            NRT_QUEUE_EMPTY,
            format!("core {}'s debug stream has no event", s.core),
        );
    };
    let mut one = 0u64;
    // SAFETY: reads 8 bytes into `one` from the stream's own eventfd (non-blocking).
    unsafe { libc::read(s.fd.as_raw_fd(), (&raw mut one).cast(), 8) };
    Ok(e)
}

/// Whether core `core` has a client (so an event would be delivered).
pub(crate) fn connected(core: u32) -> bool {
    streams()
        .as_ref()
        .is_some_and(|m| m.values().any(|s| s.core == core))
}

/// Delivers an event to core `core`'s client, if any (dropped when its buffer is full).
pub(crate) fn emit(core: u32, event: DebugEvent) {
    let mut guard = streams();
    let Some(s) = guard
        .as_mut()
        .and_then(|m| m.values_mut().find(|s| s.core == core))
    else {
        return;
    };
    if s.events.len() >= s.capacity {
        return;
    }
    s.events.push_back(event);
    let one = 1u64;
    // SAFETY: writes 8 bytes from `one` to the stream's own eventfd.
    unsafe { libc::write(s.fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// The payload of a tensor-read event (layout of
/// `ndebug_stream_payload_debug_tensor_read_t`, then the bytes).
pub(crate) fn tensor_read_payload(core: u32, name: &str, data: &[u8]) -> Vec<u8> {
    use std::mem::offset_of;
    type P = ndebug_stream_payload_debug_tensor_read_t;
    let head = offset_of!(P, tensor_data);
    let mut out = vec![0u8; head + data.len()];
    let prefix = offset_of!(P, prefix);
    let n = name.len().min(511);
    out[prefix..prefix + n].copy_from_slice(&name.as_bytes()[..n]);
    let put =
        |out: &mut [u8], at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut out, offset_of!(P, logical_nc_id), &core.to_ne_bytes());
    put(&mut out, offset_of!(P, tensor_dtype), b"uint8");
    put(
        &mut out,
        offset_of!(P, tensor_shape),
        &(data.len() as u64).to_ne_bytes(),
    );
    put(
        &mut out,
        offset_of!(P, tensor_data_size),
        &(data.len() as u64).to_ne_bytes(),
    );
    out[head..].copy_from_slice(data);
    out
}
