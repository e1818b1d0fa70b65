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

//!
//! Each function is thin: it checks and converts its arguments (`args`) and calls the
//! device model (`crate::runtime`, `crate::model`, `crate::info`); the files group them by
//! area like the safe crate's result layer.

mod args;
mod async_v3;
mod continuous;
mod debug_stream;
mod inspect;
mod lifecycle;
mod memory;
mod models;
mod sendrecv;
mod sets;
mod sys_trace;
mod tensors;
mod unsimulated;

pub(crate) use args::guard;
pub use async_v3::*;
pub use continuous::*;
pub use debug_stream::*;
pub use inspect::*;
pub use lifecycle::*;
pub use memory::*;
pub use models::*;
pub use sendrecv::*;
pub use sets::*;
pub use sys_trace::*;
pub use tensors::*;
pub use unsimulated::*;
