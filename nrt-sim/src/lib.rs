//! `nrt-sim`: a simulated libnrt (the AWS Neuron Runtime) with the same C ABI, over host
//! memory, for developing and testing Neuron code on machines without Neuron hardware.
//!
//! It is built two ways:
//!
//! * a `cdylib`, `libnrt_sim.so` (built from this crate by the workspace package
//!   `nrt-sim-cdylib`): a drop-in for `libnrt.so.1`. A C program built against the
//!   libnrt headers links to it (or `dlopen`s it) unchanged; symlink it as
//!   `libnrt.so.1` or point `LIBNRT_PATH` at it. Find it with [`cdylib_path`].
//! * an `rlib`: [`library`] hands the nrt-sys loader an in-process function table.
//!
//! Every libnrt function of the sync API, the async API v3 and the rest of the public C
//! surface (system trace, inspect and continuous profiling, debug stream, dma-buf export,
//! send/recv over the loopback) is exported (see [`ffi`]); the ones the simulator does not
//! model (per-model NTFF profiling, the legacy trace, device memory mapping, EFA,
//! microcode) return a failure status and log why. Control functions outside the `nrt_` namespace
//! (`nrt_sim_get_counters`, `nrt_sim_inject_faults`, ...; `include/nrt_sim.h`) give
//! counters and fault injection, wrapped for Rust by [`SimControl`].
//!
//! # Device model
//!
//! * `nrt_init` reads the environment (below) and opens the runtime; a second `nrt_init`
//!   without `nrt_close` returns `NRT_FAILURE`; after `nrt_close`, `nrt_init` works again
//!   with fresh cores. Calls outside the window return `NRT_UNINITIALIZED` / `NRT_CLOSED`.
//! * Handles are opaque tokens checked against a registry and never reused: NULL gives
//!   `NRT_INVALID`, a stale or foreign handle `NRT_INVALID_HANDLE`.
//! * Each visible core has its own device memory (accounting only: bytes live in host
//!   memory). Models occupy their file size. Over capacity -> `NRT_RESOURCE`.
//!   HOST (pinned, at most 4 MiB each) and VIRTUAL (pageable; emulated versions below
//!   2.32 only, else `NRT_INVALID`: runtime 2.32 removed it) tensors live in host
//!   memory; `nrt_tensor_allocate_empty` tensors have no storage until
//!   `nrt_tensor_attach_buffer`, which works on any tensor (its old storage is detached
//!   and it becomes VIRTUAL). `nrt_tensor_get_va` gives host addresses of HOST, VIRTUAL
//!   and attached tensors only (NULL for device memory).
//! * Every offset and size is checked (overflow-safe): out of range -> `NRT_INVALID` with
//!   the numbers in the log. Device-to-device copies across cores -> `NRT_INVALID`.
//! * Tensor sets hold tensors by name without owning them; a freed tensor is detected
//!   (`NRT_INVALID_HANDLE`) when the set is used; an unknown name gives `NRT_FAILURE`.
//!   Slices are views whose storage is shared: it stays allocated (and counted against
//!   the core's memory) until the last tensor using it is freed.
//! * `nrt_execute` checks that every model input and output is bound with exactly its
//!   size and on the model's core (or host memory) -> else `NRT_INVALID`; computes the
//!   outputs exactly; executions on one core run one at a time and each takes the model's
//!   device time (a sleep), counted as busy time. A device time over
//!   `NEURON_RT_EXEC_TIMEOUT` fails with `NRT_TIMEOUT` after the timeout, outputs untouched.
//! * Async v3 (runtime 2.31+ mode): one FIFO queue per (core, XU type, queue index) —
//!   TENSOR_OP 0-1, COMPUTE 0, COLLECTIVES 0-2 per core; other indices -> `NRT_INVALID` —
//!   each served by its own worker thread, started on the first request; queues run
//!   concurrently. A queue holds at most `NRT_SIM_QUEUE_DEPTH` requests in flight (queued
//!   or running); a schedule on a full queue returns `NRT_QUEUE_FULL` and changes nothing.
//!   Request `n` (1, 2, 3, ...) of a queue gets the id `xu_id << 48 | n`, with
//!   `xu_id = type | queue << 4 | core << 8`. The worker stores the final status in
//!   `*ret` (release) before it publishes the completion (release; readers acquire).
//!   `nrta_get_sequence` gives the last completed id (`xu_id << 48` before any);
//!   `nrta_is_completed` answers for ids the queue issued and gives `NRT_INVALID` for any
//!   other. Schedules do the checks of their sync twins at once (a failing schedule queues
//!   nothing and writes neither `*ret` nor `*req_sequence`). Reads, writes and copies go
//!   to TENSOR_OP queue `queue` of core `lnc_idx` (host tensors included; a device
//!   tensor on another core -> `NRT_INVALID`); executions to the COMPUTE queue of the
//!   model's core (`queue` must be 0). `nrta_cc_*` are not simulated (`NRT_FAILURE`).
//!   A request ending with a fatal status (`NRT_TIMEOUT`, `NRT_HW_ERROR`, the
//!   `NRT_EXEC_HW_ERR_*` codes; not the notification-queue overflow or
//!   `NRT_NETWORK_PROXY_FAILURE`) makes its queue unrecoverable: later schedules
//!   return `NRT_EXEC_UNIT_UNRECOVERABLE` and queued requests complete with it; a dead
//!   COMPUTE queue also fails sync `nrt_execute` on that core. `nrt_init` starts fresh.
//!   `nrt_close` stops taking requests, lets the workers finish every queued request
//!   (writing their `*ret`), joins them, then frees all objects.
//! * Completion events (runtime 2.32+ mode): `nrta_event_register_seq_id_completion` /
//!   `nrta_event_register_xu_completion` signal caller-owned eventfds after the status
//!   and completion are published (README: "Completion events").
//!
//! # Environment (read at `nrt_init`)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NRT_SIM_VNC_COUNT` | 2 | cores of the simulated machine (1-128) |
//! | `NEURON_RT_VISIBLE_CORES` | all | indices and inclusive ranges forming one contiguous increasing run (`1`, `0-1`, `1,2`, `0-1,2`); API core indices count from the first visible core; takes precedence over `NEURON_RT_NUM_CORES`; a bad value fails `nrt_init` with `NRT_INVALID` |
//! | `NEURON_RT_NUM_CORES` | 0 (all) | use the first N cores; more than the machine has fails `nrt_init` with `NRT_RESOURCE` |
//! | `NRT_SIM_DEVICE_MEMORY` | `1G` | device bytes per core; suffixes K, M, G, T (binary) |
//! | `NRT_SIM_QUEUE_DEPTH` | 8 | requests in flight per async queue (1-65536) |
//! | `NRT_SIM_EXEC_LATENCY_US` | model's | device time of every execution, in microseconds |
//! | `NRT_SIM_LAUNCH_US` | 0 | the runtime's launch cost per execution, in microseconds: an execution queued (or called) at `q` starts at `max(previous end, q + L)` (users' traces show 170-190 us between back-to-back sync executions on runtime 2.31, about 13 us on 2.30 whose implicit async mode queued them ahead: aws-neuron-sdk issue #1370); also `SimControl::set_launch_cost` |
//! | `NEURON_RT_EXEC_TIMEOUT` | 30 | execution timeout in seconds (the runtime takes whole seconds; fractions are a simulator extension) |
//! | `NEURON_RT_LOG_LEVEL` | `ERROR` | stderr logging: `ERROR`, `WARN`/`WARNING`, `INFO`, `DEBUG`, `TRACE`; `QUIET` or `OFF` for none |
//! | `NRT_SIM_VERSION` | `2.34.10.0` | emulated runtime version: below 2.31 every v3 `nrta_*` call returns `NRT_FAILURE`; below 2.32 the event calls do, and VIRTUAL placement works |
//! | `NRT_SIM_FAULTS` | none | faults to arm at each `nrt_init` (see below) |
//! | `NRT_SIM_DMA_GBPS` | 16 | transfer bandwidth in GB/s: async tensor ops occupy their queue, sync reads/writes of device tensors the caller, for `size / bandwidth`; `0` = instantaneous |
//! | `NRT_SIM_CC_GBPS` | 100 | collective link bandwidth in GB/s (each collective op adds its ring traffic / bandwidth to the execution); `0` = free |
//! | `NEURON_RT_ROOT_COMM_ID` | none | rank 0's `127.0.0.1:<port>` (loopback only) for collectives across processes |
//! | `NRT_SIM_EXEC_STACK` | `4M` | stack `nrt_execute` uses (and touches) on its caller's thread, as the real runtime does; `0` = none |
//! | `NEURON_RT_VALIDATE_HASH` | `FALSE` | check real NEFFs' payload hash at `nrt_load` (`TRUE`/`FALSE`, any case, or `1`/`0`); the simulator's own model files are always checked |
//!
//! A bad value of any of them makes `nrt_init` fail with `NRT_INVALID` and a log line
//! naming the variable. The core-count queries and `nrt_get_version` also work before
//! `nrt_init`, reading the same variables.
//!
//! `nrta_error_tracker_create` (the marker of the older async v2 API) is exported whatever
//! `NRT_SIM_VERSION` says, because a shared library's symbol table cannot depend on the
//! environment; it always fails. Code that gates async support must use `nrt_get_version`.
//!
//! # Faults
#![doc = include_str!("../FAULTS.md")]
//!
//! # Model files
//!
//! Written by [`ModelBuilder`], [`build_model_from_text`] or the `nrt-sim-model` command
//! (`nrt-sim-model --help`).
//!
#![doc = include_str!("../MODEL_FORMAT.md")]
#![warn(missing_docs)]

mod clock;
mod completion;
mod config;
mod container;
pub mod control;
mod debug;
pub mod decoder;
mod dma;
mod error;
mod exports;
mod faults;
pub mod ffi;
mod info;
mod log;
mod memory;
mod model;
mod opaque;
mod profile;
mod runtime;
mod sendrecv;
mod stack;
mod status;
mod trace;
mod xu;

/// Entry points for the fuzz targets in `fuzz/` (cargo fuzz): the simulator's text
/// parsers, which are otherwise only reachable through environment variables and
/// `nrt_sim_inject_faults`. Not part of the API; may change at any time.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a fault spec (nrt-sim/FAULTS.md) without arming it: `Ok` with the number
    /// of faults, or the reason it was refused.
    pub fn parse_faults(spec: &str) -> Result<usize, String> {
        crate::faults::parse(spec)
            .map(|faults| faults.len())
            .map_err(|e| e.to_string())
    }

    /// Parses a `NEURON_RT_VISIBLE_CORES` value for a machine of `total` cores (at least
    /// 1, as `NRT_SIM_VNC_COUNT` allows): the first core and the count.
    pub fn parse_visible_cores(text: &str, total: u32) -> Result<(u32, u32), String> {
        crate::config::parse_visible(text, total.max(1))
    }

    /// Feeds untrusted bytes to the parsers of the collectives' rendezvous wire format
    /// (a peer's hello, a rank's contribution, rank 0's reply; `runtime/wire.rs`). The
    /// first byte picks the world (low 4 bits + 1) and the expected part size (high 4
    /// bits x 8); panics only if a parser accepts what it should refuse.
    pub fn parse_rendezvous(data: &[u8]) {
        crate::runtime::parse_wire(data)
    }

    /// Parses a `NEURON_RT_NUM_CORES` value for a machine of `total` cores (at least 1).
    pub fn parse_num_cores(text: &str, total: u32) -> Result<(u32, u32), String> {
        crate::config::parse_num_cores(text, total.max(1)).map_err(|e| e.message().to_owned())
    }
}

pub use control::{
    ClockStats, CoreCounters, Counters, LaunchCostError, SimControl, TensorTransfers,
};
pub use faults::FaultSpecError;
pub use model::{
    BuildError, DEVICE_TIME_ENTRY, DType, ModelBuilder, Op, build_model_from_text, describe_model,
    is_signature_only, synthetic_output, with_device_time,
};

/// The NEFF reader and writer (`neuron-neff`): [`neff::NeffWriter`] makes real-format
/// NEFFs (the compiler's container, a signature, no instructions) that `nrt_load` runs
/// in signature-only mode; [`neff::Neff`] reads any NEFF's header and signature.
pub use neuron_neff as neff;

pub use exports::{function_table, library, symbol_lookup};

use std::path::PathBuf;

/// File name of the cdylib.
pub const CDYLIB_NAME: &str = "libnrt_sim.so";

/// Finds `libnrt_sim.so` for the running executable: in its folder, the parent folder,
/// or `../deps` (test binaries live in `target/<profile>/deps`, examples in
/// `target/<profile>/examples`, binaries in `target/<profile>`). `None` if not built.
pub fn cdylib_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = vec![dir.join(CDYLIB_NAME), dir.join("deps").join(CDYLIB_NAME)];
    if let Some(parent) = dir.parent() {
        candidates.push(parent.join(CDYLIB_NAME));
        candidates.push(parent.join("deps").join(CDYLIB_NAME));
    }
    candidates.into_iter().find(|p| p.is_file())
}
