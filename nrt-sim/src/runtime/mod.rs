//! The simulated device: process-wide state, handles, tensors, tensor sets, models,
//! synchronous execution and transfers, and the device side of the async queues.
//!
//! Locks, always taken in this order: `PHASE` (the registry) -> an async queue's state ->
//! `faults`; a core's execution lock -> buffer locks -> `faults`. `PHASE` is never held
//! while executing or copying tensor data.
//!
//! Files, each importing only the ones listed before it (and lower modules of the crate):
//! `handles` (C handle tokens), `net` (a rank's TCP link to its group across
//! processes), `group` (collective groups and their rendezvous), `objects` (tensors, storage, models, sets, cores), `exec`
//! (a bound execution and its run), `units` (requests and queues: the device side of
//! [`crate::xu`]), `state` (the init/close window and the [`Runtime`] registry),
//! `tensors`, `transfers`, `models`, `scheduling` (the registry's operations, as
//! `impl Runtime` blocks), `global` (the global communicator, `nrt_barrier`, `nrt_all_gather`).

mod exec;
mod global;
mod group;
mod handles;
mod models;
mod net;
mod objects;
mod scheduling;
mod state;
mod tensors;
mod transfers;
mod units;

pub(crate) use global::{all_gather, barrier, build_global_comm};
pub(crate) use objects::{Core, copy_between};
pub(crate) use state::{
    arm_faults, close, current_version, init, reported_cores, require_async_events,
    require_async_v3, summary, total_cores, visible_cores, with_open,
};
pub(crate) use transfers::{Batch, SyncTensor};
