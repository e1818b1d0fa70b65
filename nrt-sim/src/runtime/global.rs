//! The global communicator and the host-driven collectives: `nrt_build_global_comm`,
//! `nrt_cc_global_comm_init`, `nrt_barrier` and `nrt_all_gather`.
//!
//! `(vnc, g_device_id, g_device_count)` is (the calling rank's local core, its global
//! rank, the world). Vendor sources read for this: the SDK header's comments on
//! `nrt_build_global_comm` ("global device id", the world of all NEFFs that will run) and
//! `nrt_barrier` (a small all-reduce over all workers: "global worker ID", "total number
//! of workers"), and a reconstruction of the library in which `nrt_barrier` loads and
//! runs its own barrier model without calling `nrt_build_global_comm` first. So a
//! barrier here needs no prior setup: it registers its caller like the setup does.
//!
//! One global group per runtime (until `nrt_close`), a [`Group`] like a model's: members
//! in this process meet in shared state; with `NEURON_RT_ROOT_COMM_ID` set and a member
//! not in this process, they meet over the same loopback TCP rendezvous as collective
//! ops ([`super::net`]). A barrier that waits longer than `NEURON_RT_EXEC_TIMEOUT` fails
//! with `NRT_EXEC_HW_ERR_COLLECTIVES` naming the members that never came, as a
//! collective op does.
//!
//! `nrt_all_gather` (no page of the API reference; its prototype and semantics from the
//! SDK header's comments and from a reconstruction of the library, which agree): sets
//! the communicator up like `nrt_build_global_comm`, zeroes the output, places the
//! caller's bytes at `rank_input_size * g_device_id` and fills the other members' slots
//! from a host-side all-gather. The simulator does the same on the global group's
//! rendezvous; every member must give the same size.

use super::group::{ALL_GATHER_STEP, BARRIER_STEP, Group, check_world};
use super::net;
use super::state::{Runtime, with_open};
use crate::error::{Res, fail};
use nrt_sys::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Runtime {
    /// Checks `(vnc, id, count)` and registers the member in the global group (created
    /// by the first member); returns the group and the barrier timeout.
    fn global_member(&mut self, vnc: i64, id: u32, count: u32) -> Res<(Arc<Group>, Duration)> {
        let core = self.core(vnc, "vnc")?.index;
        if count == 0 || id >= count {
            return fail(
                NRT_INVALID,
                format!(
                    "g_device_id {id} of g_device_count {count}: the count is at least 1 and the id below it"
                ),
            );
        }
        check_world(count, "g_device_count")?;
        let root = match (&self.cfg.root_comm_id, count > 1) {
            (Some(root), true) => Some(net::rendezvous(root, self.cfg.comm_token.as_deref())?),
            _ => None,
        };
        if root.is_none() && count > self.cfg.visible_cores {
            return fail(
                NRT_INVALID,
                format!(
                    "g_device_id {id} of g_device_count {count}: only {} core(s) are visible, so other members run in other processes, which needs NEURON_RT_ROOT_COMM_ID=<rank 0 host:port>; it is not set",
                    self.cfg.visible_cores
                ),
            );
        }
        let group = self
            .global
            .get_or_insert_with(|| Arc::new(Group::global(count, root)))
            .clone();
        if group.world != count {
            return fail(
                NRT_INVALID,
                format!(
                    "g_device_id {id} of g_device_count {count}: the global communicator of this process has {} members (one world per runtime)",
                    group.world
                ),
            );
        }
        group.enter(id, core)?;
        Ok((group, self.cfg.exec_timeout))
    }
}

/// `nrt_build_global_comm` / `nrt_cc_global_comm_init`: registers core `vnc` as member
/// `id` of the global group of `count`; again with the same arguments it does nothing.
pub(crate) fn build_global_comm(vnc: i64, id: u32, count: u32) -> Res<()> {
    with_open(|rt| rt.global_member(vnc, id, count)).map(drop)
}

/// `nrt_barrier`: registers the member as [`build_global_comm`] does, then waits (the
/// registry unlocked) until all `count` members entered the barrier.
pub(crate) fn barrier(vnc: i64, id: u32, count: u32) -> Res<()> {
    let (group, timeout) = with_open(|rt| rt.global_member(vnc, id, count))?;
    let deadline = crate::dma::after(Instant::now(), timeout);
    group
        .exchange(id, BARRIER_STEP, Vec::new(), deadline, timeout)
        .map(drop)
}

/// `nrt_all_gather`: registers the member as [`build_global_comm`] does, then gathers
/// every member's `input` into `output` (`count * input.len()` bytes, member `i`'s at
/// `i * input.len()`). `output` is zeroed and holds the caller's own slice before the
/// exchange, so after a failure it holds that and zeros.
pub(crate) fn all_gather(
    vnc: i64,
    id: u32,
    count: u32,
    input: &[u8],
    output: &mut [u8],
) -> Res<()> {
    let size = input.len();
    debug_assert_eq!(output.len(), size * count as usize);
    let (group, timeout) = with_open(|rt| rt.global_member(vnc, id, count))?;
    output.fill(0);
    let own = id as usize * size;
    output[own..own + size].copy_from_slice(input);
    let deadline = crate::dma::after(Instant::now(), timeout);
    let parts = group.exchange(id, ALL_GATHER_STEP, input.to_vec(), deadline, timeout)?;
    if let Some((other, part)) = parts.iter().enumerate().find(|(_, p)| p.len() != size) {
        return fail(
            NRT_INVALID,
            format!(
                "member {id} of {count} gave rank_input_size {size} but member {other} gave {}: every member gathers the same size",
                part.len()
            ),
        );
    }
    for (slot, part) in output.chunks_exact_mut(size.max(1)).zip(&parts) {
        slot.copy_from_slice(part);
    }
    Ok(())
}
