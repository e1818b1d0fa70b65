//! Host-driven collectives: `nrt_build_global_comm`, `nrt_barrier`, `nrt_all_gather`.
//!
//! `(vnc, g_device_id, g_device_count)` is (the local core, the caller's global rank,
//! the world): the SDK header's comments name them "global device id" / "global worker
//! ID" and "total number of workers", and a vendor C++ wrapper and a PyTorch backend
//! pass a process's global rank and world to `nrt_barrier`. `nrt_cc_global_comm_init`
//! (the same arguments, `vnc` unsigned) has no wrapper: one setup function is enough.

use nrt_sys::Library;

use super::{check, entry};
use crate::error::{Error, Result};

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

/// `nrt_all_gather`: every member's `input` into `output`, member `i`'s bytes at
/// `i * input.len()`. An input above `u32::MAX` bytes (the C size type) is refused here.
///
/// # Safety
///
/// `output.len()` is `world * input.len()`: libnrt writes that many bytes.
pub(crate) unsafe fn all_gather(
    lib: &Library,
    vnc: i32,
    rank: u32,
    world: u32,
    input: &[u8],
    output: &mut [u8],
) -> Result<()> {
    let f = entry!(lib, nrt_all_gather);
    let size = u32::try_from(input.len()).map_err(|_| {
        Error::invalid(
            "input",
            format!(
                "{} bytes per rank; nrt_all_gather takes at most {} (u32)",
                input.len(),
                u32::MAX
            ),
        )
    })?;
    // Why the call below is sound: `input` is readable for `size` bytes and `output`
    // writable for `world * size` bytes (the caller's promise), both borrowed for the
    // call; a `&[u8]` and a `&mut [u8]` never overlap. libnrt only reads `input` (the C
    // prototype takes it non-const, but the function copies from it).
    // SAFETY: the conditions just above hold for this call.
    let status = unsafe {
        f(
            vnc,
            rank,
            world,
            size,
            input.as_ptr().cast_mut().cast(),
            output.as_mut_ptr().cast(),
        )
    };
    check(lib, "nrt_all_gather", status)
}
