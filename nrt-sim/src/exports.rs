//! What the simulator exports, in one list: the nrt-sys function table, the symbol
//! lookup (libnrt functions, the async v2 marker, the `nrt_sim_*` control functions),
//! and the in-process [`library`].

use crate::control::c_api as control;
use crate::ffi;
use std::ffi::{CStr, c_void};
use std::sync::OnceLock;

/// Builds [`function_table`] and the symbol lookup from one list of names, so both
/// always agree; the table is a struct literal naming every field (no defaults), so a
/// missing function or a signature that differs from the bindings does not compile.
macro_rules! exported {
    ($($name:ident),* $(,)?) => {
        /// The simulator's functions as an nrt-sys table: every entry is `Some`.
        pub fn function_table() -> nrt_sys::NrtFns {
            nrt_sys::NrtFns {
                $($name: Some(ffi::$name),)*
            }
        }

        fn table_symbol(name: &CStr) -> *mut c_void {
            $(
                if name.to_bytes() == stringify!($name).as_bytes() {
                    return ffi::$name as *mut c_void;
                }
            )*
            std::ptr::null_mut()
        }
    };
}

exported!(
    nrt_add_tensor_to_tensor_set,
    nrt_all_gather,
    nrt_allocate_tensor_set,
    nrt_async_sendrecv_accept,
    nrt_async_sendrecv_close,
    nrt_async_sendrecv_connect,
    nrt_async_sendrecv_flush,
    nrt_async_sendrecv_get_max_num_communicators_per_lnc,
    nrt_async_sendrecv_get_max_num_pending_request,
    nrt_async_sendrecv_init,
    nrt_async_sendrecv_recv_tensor,
    nrt_async_sendrecv_send_tensor,
    nrt_async_sendrecv_test_comm,
    nrt_async_sendrecv_test_request,
    nrt_barrier,
    nrt_build_global_comm,
    nrt_cc_global_comm_init,
    nrt_close,
    nrt_debug_client_connect,
    nrt_debug_client_connect_close,
    nrt_debug_client_read_one_event,
    nrt_destroy_tensor_set,
    nrt_execute,
    nrt_execute_repeat,
    nrt_free_model_tensor_info,
    nrt_get_attached_efa_bdf,
    nrt_get_dmabuf_fd,
    nrt_get_hbm_mmap_va,
    nrt_get_instance_info,
    nrt_get_libnccl_net,
    nrt_get_model_info,
    nrt_get_model_instance_count,
    nrt_get_model_nc_count,
    nrt_get_model_tensor_info,
    nrt_get_model_vnc_count,
    nrt_get_status_as_str,
    nrt_get_tensor_from_tensor_set,
    nrt_get_total_nc_count,
    nrt_get_total_vnc_count,
    nrt_get_version,
    nrt_get_visible_nc_count,
    nrt_get_visible_vnc_count,
    nrt_get_vnc_memory_stats,
    nrt_host_device_id_get,
    nrt_host_device_id_rid_map_get,
    nrt_init,
    nrt_inspect_begin,
    nrt_inspect_begin_with_options,
    nrt_inspect_config_allocate,
    nrt_inspect_config_free,
    nrt_inspect_config_free_activity_types,
    nrt_inspect_config_get_all_activity_types,
    nrt_inspect_config_get_enabled_activity_types,
    nrt_inspect_config_set_activity,
    nrt_inspect_config_set_capture_enabled_for_event_type_string,
    nrt_inspect_config_set_capture_enabled_for_nc,
    nrt_inspect_config_set_defaults,
    nrt_inspect_config_set_enable_inspect,
    nrt_inspect_config_set_enable_inspect_on_fail,
    nrt_inspect_config_set_output_dir,
    nrt_inspect_config_set_session_id,
    nrt_inspect_config_set_sys_trace_max_events_per_nc,
    nrt_inspect_stop,
    nrt_load,
    nrt_load_collectives,
    nrt_memcpy_to_device,
    nrt_profile_continuous_options_allocate,
    nrt_profile_continuous_options_free,
    nrt_profile_continuous_options_set_output_dir,
    nrt_profile_continuous_save,
    nrt_profile_continuous_start,
    nrt_profile_continuous_stop,
    nrt_profile_start,
    nrt_profile_stop,
    nrt_set_pool_eng_ucode,
    nrt_sys_trace_buffer_free,
    nrt_sys_trace_config_allocate,
    nrt_sys_trace_config_free,
    nrt_sys_trace_config_get_enabled_event_types,
    nrt_sys_trace_config_set_capture_enabled_for_event_type,
    nrt_sys_trace_config_set_capture_enabled_for_nc,
    nrt_sys_trace_config_set_defaults,
    nrt_sys_trace_config_set_max_events_per_nc,
    nrt_sys_trace_fetch_events,
    nrt_sys_trace_fetch_options_allocate,
    nrt_sys_trace_fetch_options_free,
    nrt_sys_trace_fetch_options_set_defaults,
    nrt_sys_trace_fetch_options_set_max_events_per_nc,
    nrt_sys_trace_fetch_options_set_nc_idx,
    nrt_sys_trace_free_event_types,
    nrt_sys_trace_get_event_types,
    nrt_sys_trace_start,
    nrt_sys_trace_stop,
    nrt_tensor_allocate,
    nrt_tensor_allocate_empty,
    nrt_tensor_allocate_slice,
    nrt_tensor_attach_buffer,
    nrt_tensor_check_output_completion,
    nrt_tensor_copy,
    nrt_tensor_free,
    nrt_tensor_get_device_allocation_info,
    nrt_tensor_get_size,
    nrt_tensor_get_va,
    nrt_tensor_memset,
    nrt_tensor_read,
    nrt_tensor_read_batch,
    nrt_tensor_reset_output_completion,
    nrt_tensor_write,
    nrt_tensor_write_batch,
    nrt_trace_start,
    nrt_trace_stop,
    nrt_unload,
    nrta_cc_prepare,
    nrta_cc_schedule,
    nrta_event_register_seq_id_completion,
    nrta_event_register_xu_completion,
    nrta_execute_schedule,
    nrta_get_sequence,
    nrta_is_completed,
    nrta_tensor_copy,
    nrta_tensor_read,
    nrta_tensor_write,
);

/// The address of any symbol the cdylib exports: every libnrt function of the table,
/// `nrta_error_tracker_create`, and the `nrt_sim_*` control functions; null otherwise.
pub fn symbol_lookup(name: &CStr) -> *mut c_void {
    let found = table_symbol(name);
    if !found.is_null() {
        return found;
    }
    match name.to_bytes() {
        b"nrta_error_tracker_create" => ffi::nrta_error_tracker_create as *mut c_void,
        b"nrt_sim_get_counters" => control::nrt_sim_get_counters as *mut c_void,
        b"nrt_sim_get_core_counters" => control::nrt_sim_get_core_counters as *mut c_void,
        b"nrt_sim_inject_faults" => control::nrt_sim_inject_faults as *mut c_void,
        b"nrt_sim_clear_faults" => control::nrt_sim_clear_faults as *mut c_void,
        b"nrt_sim_last_error" => control::nrt_sim_last_error as *mut c_void,
        b"nrt_sim_request_error" => control::nrt_sim_request_error as *mut c_void,
        b"nrt_sim_identity" => control::nrt_sim_identity as *mut c_void,
        b"nrt_sim_faults_injected" => control::nrt_sim_faults_injected as *mut c_void,
        b"nrt_sim_get_tensor_transfers" => control::nrt_sim_get_tensor_transfers as *mut c_void,
        b"nrt_sim_get_clock_stats" => control::nrt_sim_get_clock_stats as *mut c_void,
        b"nrt_sim_set_launch_us" => control::nrt_sim_set_launch_us as *mut c_void,
        b"nrt_sim_capture_log" => control::nrt_sim_capture_log as *mut c_void,
        b"nrt_sim_take_log" => control::nrt_sim_take_log as *mut c_void,
        _ => std::ptr::null_mut(),
    }
}

/// The in-process simulator as an nrt-sys library (made once, named `nrt-sim`). Its
/// state is this process's copy of the rlib, separate from any `dlopen`ed
/// `libnrt_sim.so`.
///
/// Always the same library, kept here rather than found by name: another table built
/// under the name `nrt-sim` is a different library and never takes this one's place.
pub fn library() -> &'static nrt_sys::Library {
    static LIBRARY: OnceLock<&'static nrt_sys::Library> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        // Why the table below keeps `in_process`'s contract: every entry of
        // function_table() is this crate's implementation of the libnrt function of that
        // name (`ffi`, with the bindings' signatures, checked by the compiler in
        // `exported!`), and symbol_lookup answers only those, the async v2 marker and
        // this crate's `nrt_sim_*` functions; all are plain functions of this binary,
        // callable from any thread for the life of the process.
        // SAFETY: the conditions just above hold for this table and lookup.
        unsafe { nrt_sys::Library::in_process("nrt-sim", function_table(), Some(symbol_lookup)) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SimControl;

    #[test]
    fn table_is_complete_and_matches_the_lookup() {
        let table = function_table();
        for (name, present) in table.presence() {
            assert!(present, "{name:?} missing from the table");
            assert!(
                !symbol_lookup(name).is_null(),
                "{name:?} missing from the lookup"
            );
        }
        // SAFETY: symbol_lookup returns this crate's functions with their C signatures.
        let looked_up = unsafe { nrt_sys::NrtFns::from_lookup(symbol_lookup) };
        assert_eq!(
            looked_up.nrt_init.map(|f| f as usize),
            table.nrt_init.map(|f| f as usize)
        );
        assert!(symbol_lookup(c"nrt_sim_get_counters").addr() != 0);
        assert!(symbol_lookup(c"nrta_error_tracker_create").addr() != 0);
        assert!(symbol_lookup(c"nrt_no_such_function").is_null());
    }

    #[test]
    fn library_is_made_once_and_controllable() {
        let lib = library();
        assert!(std::ptr::eq(lib, library()));
        assert!(lib.has_symbol(c"nrt_sim_inject_faults"));
        assert!(lib.has_symbol(c"nrt_sim_identity"));
        assert!(SimControl::new(lib).is_some());
        // SAFETY: an empty table and no lookup: nothing can be called.
        let plain = unsafe {
            nrt_sys::Library::in_process("not-the-sim", nrt_sys::NrtFns::default(), None)
        };
        assert!(SimControl::new(plain).is_none());
    }
}
