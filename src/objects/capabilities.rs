//! [`Capabilities`]: what the loaded libnrt offers, from its symbols and version.

use std::ffi::CStr;

use super::info::Version;

bitflags::bitflags! {
    /// What the loaded libnrt offers, computed once when the [`Runtime`](crate::Runtime)
    /// starts, from the symbols the library exports and the version it reports.
    ///
    /// Safe entry points check the flag they need and return
    /// [`Error::Unsupported`](crate::Error::Unsupported) instead of calling a function that
    /// is absent or has a different signature in that library version.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Capabilities: u32 {
        /// Runtime lifecycle, model load/unload and execution, tensor allocation and
        /// read/write/copy/memset, tensor sets.
        const SYNC_CORE = 1 << 0;
        /// Model tensor descriptions (`nrt_get_model_tensor_info`).
        const MODEL_TENSOR_INFO = 1 << 1;
        /// Model information such as its core (`nrt_get_model_info`).
        const MODEL_INFO = 1 << 2;
        /// Batched tensor reads and writes (`nrt_tensor_read_batch`/`write_batch`).
        const TENSOR_BATCH = 1 << 3;
        /// Tensor slices (`nrt_tensor_allocate_slice`).
        const TENSOR_SLICE = 1 << 4;
        /// Tensors over caller-provided buffers (`nrt_tensor_allocate_empty` +
        /// `nrt_tensor_attach_buffer`).
        const TENSOR_ATTACH = 1 << 5;
        /// Per-core memory statistics (`nrt_get_vnc_memory_stats`).
        const MEMORY_STATS = 1 << 6;
        /// Profiling (`nrt_profile_start`/`stop`).
        const PROFILING = 1 << 7;
        /// Collective operations (`nrt_load_collectives`, `nrt_barrier`, global comm).
        const COLLECTIVES = 1 << 8;
        /// The async API v3 (`nrta_*` with a status slot per request): runtime library
        /// >= 2.31 and every v3 function present.
        const ASYNC_V3 = 1 << 9;
        /// An async v2 library (runtime library < 2.31 exporting
        /// `nrta_error_tracker_create`). This crate does not drive v2: its `nrta_*`
        /// functions have other signatures, so calling them through the v3 table would
        /// be undefined behaviour. The flag only tells that async is there but unusable.
        const ASYNC_V2 = 1 << 10;
        /// Version query (`nrt_get_version`).
        const VERSION = 1 << 11;
        /// Instance information (`nrt_get_instance_info`).
        const INSTANCE_INFO = 1 << 12;
        /// Completion events (`nrta_event_register_seq_id_completion` and
        /// `nrta_event_register_xu_completion`): runtime library >= 2.32, the async API
        /// v3 and both functions present. Waits then block on eventfds instead of polling.
        const ASYNC_EVENTS = 1 << 13;
        /// The system trace (`nrt_sys_trace_*`: [`SysTrace`](crate::SysTrace) and
        /// [`Model::benchmark_device`](crate::Model::benchmark_device)). Gated by its
        /// symbols only: no runtime version for it is published.
        const SYS_TRACE = 1 << 14;
        /// Inspect sessions (`nrt_inspect_*`: [`InspectSession`](crate::InspectSession)).
        const INSPECT = 1 << 15;
        /// Continuous device profiling (`nrt_profile_continuous_*`:
        /// [`ContinuousProfiler`](crate::ContinuousProfiler)).
        const CONTINUOUS_PROFILING = 1 << 16;
        /// The per-core debug stream (`nrt_debug_client_*`: [`DebugStream`](crate::DebugStream)).
        const DEBUG_STREAM = 1 << 17;
        /// dma-buf export of device memory (`nrt_get_dmabuf_fd`:
        /// [`Tensor::dmabuf_fd`](crate::Tensor::dmabuf_fd)).
        const DMABUF = 1 << 18;
        /// Send/recv between instances (`nrt_async_sendrecv_*`). No safe wrapper yet:
        /// call it through [`Runtime::library`](crate::Runtime::library)`().fns()`.
        const SENDRECV = 1 << 19;
    }
}

/// The first runtime library version with the async API v3.
pub(crate) const ASYNC_V3_MIN: (u64, u64) = (2, 31);

/// The first runtime library version with completion events (and without VIRTUAL
/// tensor placement).
pub(crate) const ASYNC_EVENTS_MIN: (u64, u64) = (2, 32);

/// The completion-event functions [`Capabilities::ASYNC_EVENTS`] needs.
const ASYNC_EVENT_SYMBOLS: &[&CStr] = &[
    c"nrta_event_register_seq_id_completion",
    c"nrta_event_register_xu_completion",
];

/// Symbols each symbol-based flag needs (all of them).
const SYMBOLS: &[(Capabilities, &[&CStr])] = &[
    (
        Capabilities::SYNC_CORE,
        &[
            c"nrt_init",
            c"nrt_close",
            c"nrt_load",
            c"nrt_unload",
            c"nrt_execute",
            c"nrt_tensor_allocate",
            c"nrt_tensor_free",
            c"nrt_tensor_read",
            c"nrt_tensor_write",
            c"nrt_tensor_copy",
            c"nrt_tensor_memset",
            c"nrt_allocate_tensor_set",
            c"nrt_destroy_tensor_set",
            c"nrt_add_tensor_to_tensor_set",
        ],
    ),
    (
        Capabilities::MODEL_TENSOR_INFO,
        &[c"nrt_get_model_tensor_info", c"nrt_free_model_tensor_info"],
    ),
    (Capabilities::MODEL_INFO, &[c"nrt_get_model_info"]),
    (
        Capabilities::TENSOR_BATCH,
        &[c"nrt_tensor_read_batch", c"nrt_tensor_write_batch"],
    ),
    (Capabilities::TENSOR_SLICE, &[c"nrt_tensor_allocate_slice"]),
    (
        Capabilities::TENSOR_ATTACH,
        &[c"nrt_tensor_allocate_empty", c"nrt_tensor_attach_buffer"],
    ),
    (Capabilities::MEMORY_STATS, &[c"nrt_get_vnc_memory_stats"]),
    (
        Capabilities::PROFILING,
        &[c"nrt_profile_start", c"nrt_profile_stop"],
    ),
    (
        Capabilities::COLLECTIVES,
        &[c"nrt_load_collectives", c"nrt_barrier"],
    ),
    (Capabilities::VERSION, &[c"nrt_get_version"]),
    (
        Capabilities::SYS_TRACE,
        &[
            c"nrt_sys_trace_config_allocate",
            c"nrt_sys_trace_config_free",
            c"nrt_sys_trace_start",
            c"nrt_sys_trace_stop",
            c"nrt_sys_trace_fetch_events",
            c"nrt_sys_trace_buffer_free",
        ],
    ),
    (
        Capabilities::INSPECT,
        &[
            c"nrt_inspect_config_allocate",
            c"nrt_inspect_config_free",
            c"nrt_inspect_config_set_output_dir",
            c"nrt_inspect_begin_with_options",
            c"nrt_inspect_stop",
        ],
    ),
    (
        Capabilities::CONTINUOUS_PROFILING,
        &[
            c"nrt_profile_continuous_options_allocate",
            c"nrt_profile_continuous_options_free",
            c"nrt_profile_continuous_options_set_output_dir",
            c"nrt_profile_continuous_start",
            c"nrt_profile_continuous_save",
            c"nrt_profile_continuous_stop",
        ],
    ),
    (
        Capabilities::DEBUG_STREAM,
        &[
            c"nrt_debug_client_connect",
            c"nrt_debug_client_connect_close",
            c"nrt_debug_client_read_one_event",
        ],
    ),
    (
        Capabilities::DMABUF,
        &[
            c"nrt_get_dmabuf_fd",
            c"nrt_tensor_get_device_allocation_info",
        ],
    ),
    (
        Capabilities::SENDRECV,
        &[
            c"nrt_async_sendrecv_init",
            c"nrt_async_sendrecv_close",
            c"nrt_async_sendrecv_connect",
            c"nrt_async_sendrecv_accept",
            c"nrt_async_sendrecv_test_comm",
            c"nrt_async_sendrecv_send_tensor",
            c"nrt_async_sendrecv_recv_tensor",
            c"nrt_async_sendrecv_test_request",
        ],
    ),
    (Capabilities::INSTANCE_INFO, &[c"nrt_get_instance_info"]),
];

/// The v3 async functions that [`Capabilities::ASYNC_V3`] needs. The collective
/// scheduling functions are left out: the vendor marks them work in progress.
const ASYNC_V3_SYMBOLS: &[&CStr] = &[
    c"nrta_tensor_write",
    c"nrta_tensor_read",
    c"nrta_tensor_copy",
    c"nrta_execute_schedule",
    c"nrta_is_completed",
    c"nrta_get_sequence",
];

/// The symbol whose presence marks an async-v2 library.
const ASYNC_V2_MARKER: &CStr = c"nrta_error_tracker_create";

impl Capabilities {
    /// Computes the capabilities of `lib`, given the version it reported (`None` when it
    /// has no `nrt_get_version` or the call failed).
    pub fn detect(lib: &nrt_sys::Library, version: Option<&Version>) -> Capabilities {
        let mut caps = Capabilities::empty();
        for (flag, symbols) in SYMBOLS {
            if symbols.iter().all(|s| lib.has_symbol(s)) {
                caps |= *flag;
            }
        }
        if let Some(v) = version {
            let v3 = v.at_least(ASYNC_V3_MIN.0, ASYNC_V3_MIN.1);
            if v3 && ASYNC_V3_SYMBOLS.iter().all(|s| lib.has_symbol(s)) {
                caps |= Capabilities::ASYNC_V3;
                if v.at_least(ASYNC_EVENTS_MIN.0, ASYNC_EVENTS_MIN.1)
                    && ASYNC_EVENT_SYMBOLS.iter().all(|s| lib.has_symbol(s))
                {
                    caps |= Capabilities::ASYNC_EVENTS;
                }
            }
            if !v3 && lib.has_symbol(ASYNC_V2_MARKER) {
                caps |= Capabilities::ASYNC_V2;
            }
        }
        caps
    }

    /// What a library needs to offer the flags in `self`, for error messages
    /// (e.g. `"runtime >= 2.31 exporting nrta_tensor_write, ..."`).
    pub fn requirement(self) -> String {
        let mut parts = Vec::new();
        for (flag, symbols) in SYMBOLS {
            if self.contains(*flag) {
                parts.push(names(symbols));
            }
        }
        if self.contains(Capabilities::ASYNC_V3) {
            parts.push(format!(
                "runtime >= {}.{} exporting {}",
                ASYNC_V3_MIN.0,
                ASYNC_V3_MIN.1,
                names(ASYNC_V3_SYMBOLS)
            ));
        }
        if self.contains(Capabilities::ASYNC_EVENTS) {
            parts.push(format!(
                "runtime >= {}.{} with the async API v3 exporting {}",
                ASYNC_EVENTS_MIN.0,
                ASYNC_EVENTS_MIN.1,
                names(ASYNC_EVENT_SYMBOLS)
            ));
        }
        if self.contains(Capabilities::ASYNC_V2) {
            parts.push(format!(
                "runtime < {}.{} exporting {}",
                ASYNC_V3_MIN.0,
                ASYNC_V3_MIN.1,
                ASYNC_V2_MARKER.to_string_lossy()
            ));
        }
        parts.join("; ")
    }
}

fn names(symbols: &[&CStr]) -> String {
    symbols
        .iter()
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    fn version(major: u64, minor: u64) -> Version {
        Version {
            major,
            minor,
            patch: 0,
            maintenance: 0,
            detail: String::new(),
            git_hash: String::new(),
        }
    }

    fn lookup_v2_marker(name: &CStr) -> *mut c_void {
        if name == ASYNC_V2_MARKER {
            lookup_v2_marker as *mut c_void
        } else {
            std::ptr::null_mut()
        }
    }

    #[test]
    fn an_empty_library_has_no_capabilities() {
        // SAFETY: an empty table and no lookup: nothing can be called.
        let lib =
            unsafe { nrt_sys::Library::in_process("caps-empty", nrt_sys::NrtFns::default(), None) };
        assert_eq!(
            Capabilities::detect(lib, Some(&version(2, 34))),
            Capabilities::empty()
        );
    }

    #[test]
    fn the_v2_marker_counts_only_below_2_31() {
        // SAFETY: an empty table; the lookup's one answer is only checked for presence,
        // never called.
        let lib = unsafe {
            nrt_sys::Library::in_process(
                "caps-v2-marker",
                nrt_sys::NrtFns::default(),
                Some(lookup_v2_marker),
            )
        };
        assert_eq!(
            Capabilities::detect(lib, Some(&version(2, 30))),
            Capabilities::ASYNC_V2
        );
        assert_eq!(
            Capabilities::detect(lib, Some(&version(2, 31))),
            Capabilities::empty()
        );
        assert_eq!(Capabilities::detect(lib, None), Capabilities::empty());
    }

    #[test]
    fn requirement_names_version_and_functions() {
        let text = Capabilities::ASYNC_V3.requirement();
        assert!(
            text.starts_with("runtime >= 2.31 exporting nrta_tensor_write"),
            "{text}"
        );
        assert_eq!(
            Capabilities::TENSOR_SLICE.requirement(),
            "nrt_tensor_allocate_slice"
        );
    }
}
