//! Host-driven collectives: `nrt_build_global_comm`, `nrt_barrier`.
//!
//! `(vnc, g_device_id, g_device_count)` is (the local core, the caller's global rank,
//! the world): the SDK header's comments name them "global device id" / "global worker
//! ID" and "total number of workers", and a vendor C++ wrapper and a PyTorch backend
//! pass a process's global rank and world to `nrt_barrier`. `nrt_cc_global_comm_init`
//! (the same arguments, `vnc` unsigned) has no wrapper: one setup function is enough.

use nrt_sys::Library;

use super::{check, entry};
use crate::Result;

/// `nrt_build_global_comm`: makes core `vnc` member `rank` of the global communicator
/// of `world` members.
pub(crate) fn build_global_comm(lib: &Library, vnc: i32, rank: u32, world: u32) -> Result<()> {
    let f = entry!(lib, nrt_build_global_comm);
    // SAFETY: plain integers; libnrt validates them.
    let status = unsafe { f(vnc, rank, world) };
    check(lib, "nrt_build_global_comm", status)
}

/// `nrt_barrier`: returns once all `world` members entered the barrier.
pub(crate) fn barrier(lib: &Library, vnc: i32, rank: u32, world: u32) -> Result<()> {
    let f = entry!(lib, nrt_barrier);
    // SAFETY: plain integers; libnrt validates them.
    let status = unsafe { f(vnc, rank, world) };
    check(lib, "nrt_barrier", status)
}
