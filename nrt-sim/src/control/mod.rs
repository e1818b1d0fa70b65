//! Control of a loaded simulator from outside the libnrt API: counters, fault injection,
//! the last error. Exported as C functions (`nrt_sim_*`, declared in
//! `nrt-sim/include/nrt_sim.h`) so that a copy loaded with `dlopen` can be driven, and
//! wrapped for Rust by [`SimControl`].

//!
//! `c_api` holds the exported functions and their C structs, `sim_control` the Rust
//! wrapper that finds them in a loaded library (`sim_control` -> `c_api`).

pub(crate) mod c_api;
mod sim_control;

pub use c_api::*;
pub use sim_control::{
    ClockStats, CoreCounters, Counters, LaunchCostError, SimControl, TensorTransfers,
};
