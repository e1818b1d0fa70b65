/*
 * Compiled by nrt-sys/tests/headers.rs with gcc -Wall -Wextra -Werror (as C11 and
 * as C++): every function, type and constant of shared/nrt-abi.md sections 2-4 and 7 must
 * be declared by the headers, or this file does not compile. It prints the size and
 * field offsets of each struct so the test can compare them with the Rust bindings.
 */
#include <stdio.h>
#include <stddef.h>

#include "nrt/nrt.h"
#include "nrt/nrt_status.h"
#include "nrt/nrt_version.h"
#include "nrt/nrt_experimental.h"
#include "nrt/nrt_async.h"
#include "nrt/nrt_profile.h"
#include "nrt/nrt_sys_trace.h"
#include "nrt/ndebug_stream.h"
#include "nrt/nrt_async_sendrecv.h"

#ifdef __cplusplus
#define STATIC_ASSERT static_assert
#else
#define STATIC_ASSERT _Static_assert
#endif

typedef void (*any_fn)(void);

/* LAYOUT_ONLY builds a program that runs without a libnrt to link against. */
#ifndef LAYOUT_ONLY

/* Every function (casting to void(*)(void) is the one cast -Wcast-function-type allows). */
static const any_fn functions[] = {
    (any_fn)nrt_get_instance_info, (any_fn)nrt_init, (any_fn)nrt_close, (any_fn)nrt_load,
    (any_fn)nrt_load_collectives, (any_fn)nrt_unload, (any_fn)nrt_get_model_nc_count,
    (any_fn)nrt_get_model_vnc_count, (any_fn)nrt_get_total_nc_count, (any_fn)nrt_get_total_vnc_count,
    (any_fn)nrt_get_visible_nc_count, (any_fn)nrt_get_visible_vnc_count, (any_fn)nrt_allocate_tensor_set,
    (any_fn)nrt_destroy_tensor_set, (any_fn)nrt_add_tensor_to_tensor_set,
    (any_fn)nrt_get_tensor_from_tensor_set, (any_fn)nrt_execute, (any_fn)nrt_execute_repeat,
    (any_fn)nrt_build_global_comm, (any_fn)nrt_tensor_allocate, (any_fn)nrt_tensor_free,
    (any_fn)nrt_tensor_read, (any_fn)nrt_tensor_write, (any_fn)nrt_tensor_read_batch,
    (any_fn)nrt_tensor_write_batch, (any_fn)nrt_tensor_copy, (any_fn)nrt_tensor_get_size,
    (any_fn)nrt_tensor_memset, (any_fn)nrt_tensor_allocate_empty, (any_fn)nrt_tensor_attach_buffer,
    (any_fn)nrt_tensor_allocate_slice, (any_fn)nrt_tensor_get_va, (any_fn)nrt_tensor_get_device_allocation_info,
    (any_fn)nrt_get_vnc_memory_stats, (any_fn)nrt_cc_global_comm_init, (any_fn)nrt_get_status_as_str,
    (any_fn)nrt_get_version, (any_fn)nrt_get_model_tensor_info, (any_fn)nrt_get_model_instance_count,
    (any_fn)nrt_free_model_tensor_info, (any_fn)nrt_barrier, (any_fn)nrt_all_gather,
    (any_fn)nrt_get_model_info,
    (any_fn)nrt_profile_start, (any_fn)nrt_profile_stop,
    /* async API v3 */
    (any_fn)nrta_tensor_write, (any_fn)nrta_tensor_read, (any_fn)nrta_tensor_copy,
    (any_fn)nrta_execute_schedule, (any_fn)nrta_cc_prepare, (any_fn)nrta_cc_schedule,
    (any_fn)nrta_is_completed, (any_fn)nrta_get_sequence,
    (any_fn)nrta_event_register_seq_id_completion, (any_fn)nrta_event_register_xu_completion,
    /* section 7: system trace */
    (any_fn)nrt_sys_trace_buffer_free, (any_fn)nrt_sys_trace_config_allocate, (any_fn)nrt_sys_trace_config_free,
    (any_fn)nrt_sys_trace_config_get_enabled_event_types,
    (any_fn)nrt_sys_trace_config_set_capture_enabled_for_event_type,
    (any_fn)nrt_sys_trace_config_set_capture_enabled_for_nc, (any_fn)nrt_sys_trace_config_set_defaults,
    (any_fn)nrt_sys_trace_config_set_max_events_per_nc, (any_fn)nrt_sys_trace_fetch_events,
    (any_fn)nrt_sys_trace_fetch_options_allocate, (any_fn)nrt_sys_trace_fetch_options_free,
    (any_fn)nrt_sys_trace_fetch_options_set_defaults, (any_fn)nrt_sys_trace_fetch_options_set_max_events_per_nc,
    (any_fn)nrt_sys_trace_fetch_options_set_nc_idx, (any_fn)nrt_sys_trace_free_event_types,
    (any_fn)nrt_sys_trace_get_event_types, (any_fn)nrt_sys_trace_start, (any_fn)nrt_sys_trace_stop,
    /* section 7: inspect and continuous profiling */
    (any_fn)nrt_inspect_begin, (any_fn)nrt_inspect_begin_with_options, (any_fn)nrt_inspect_config_allocate,
    (any_fn)nrt_inspect_config_free, (any_fn)nrt_inspect_config_free_activity_types,
    (any_fn)nrt_inspect_config_get_all_activity_types, (any_fn)nrt_inspect_config_get_enabled_activity_types,
    (any_fn)nrt_inspect_config_set_activity, (any_fn)nrt_inspect_config_set_capture_enabled_for_event_type_string,
    (any_fn)nrt_inspect_config_set_capture_enabled_for_nc, (any_fn)nrt_inspect_config_set_defaults,
    (any_fn)nrt_inspect_config_set_enable_inspect, (any_fn)nrt_inspect_config_set_enable_inspect_on_fail,
    (any_fn)nrt_inspect_config_set_output_dir, (any_fn)nrt_inspect_config_set_session_id,
    (any_fn)nrt_inspect_config_set_sys_trace_max_events_per_nc, (any_fn)nrt_inspect_stop,
    (any_fn)nrt_profile_continuous_options_allocate, (any_fn)nrt_profile_continuous_options_free,
    (any_fn)nrt_profile_continuous_options_set_output_dir, (any_fn)nrt_profile_continuous_save,
    (any_fn)nrt_profile_continuous_start, (any_fn)nrt_profile_continuous_stop,
    /* section 7: nrt_experimental.h */
    (any_fn)nrt_get_libnccl_net, (any_fn)nrt_memcpy_to_device, (any_fn)nrt_set_pool_eng_ucode,
    (any_fn)nrt_trace_start, (any_fn)nrt_trace_stop,
    /* section 7: nrt.h */
    (any_fn)nrt_get_attached_efa_bdf, (any_fn)nrt_get_dmabuf_fd, (any_fn)nrt_get_hbm_mmap_va,
    (any_fn)nrt_host_device_id_get, (any_fn)nrt_host_device_id_rid_map_get,
    (any_fn)nrt_tensor_check_output_completion, (any_fn)nrt_tensor_reset_output_completion,
    /* section 7: debug stream */
    (any_fn)nrt_debug_client_connect, (any_fn)nrt_debug_client_connect_close,
    (any_fn)nrt_debug_client_read_one_event,
    /* section 7: send/recv */
    (any_fn)nrt_async_sendrecv_accept, (any_fn)nrt_async_sendrecv_close, (any_fn)nrt_async_sendrecv_connect,
    (any_fn)nrt_async_sendrecv_flush, (any_fn)nrt_async_sendrecv_get_max_num_communicators_per_lnc,
    (any_fn)nrt_async_sendrecv_get_max_num_pending_request, (any_fn)nrt_async_sendrecv_init,
    (any_fn)nrt_async_sendrecv_recv_tensor, (any_fn)nrt_async_sendrecv_send_tensor,
    (any_fn)nrt_async_sendrecv_test_comm, (any_fn)nrt_async_sendrecv_test_request,
};

/*
 * The async v3 prototypes, parameter by parameter, as nrt-abi.md section 4 gives them
 * (the tensor calls with lnc_idx before queue). Initialising a pointer of the exact type
 * fails under -Werror if a header's prototype has a parameter more, less or of another type.
 */
NRT_STATUS (*const abi_tensor_write)(nrt_tensor_t *, const void *, uint64_t, uint64_t, int, int, NRT_STATUS *,
                                     nrta_seq_t *) = nrta_tensor_write;
NRT_STATUS (*const abi_tensor_read)(void *, nrt_tensor_t *, uint64_t, uint64_t, int, int, NRT_STATUS *,
                                    nrta_seq_t *) = nrta_tensor_read;
NRT_STATUS (*const abi_tensor_copy)(nrt_tensor_t *, uint64_t, nrt_tensor_t *, uint64_t, uint64_t, int, int,
                                    NRT_STATUS *, nrta_seq_t *) = nrta_tensor_copy;
NRT_STATUS (*const abi_execute_schedule)(nrt_model_t *, const nrt_tensor_set_t *, nrt_tensor_set_t *, int,
                                         NRT_STATUS *, nrta_seq_t *) = nrta_execute_schedule;
NRT_STATUS (*const abi_is_completed)(nrta_seq_t, bool *) = nrta_is_completed;
NRT_STATUS (*const abi_get_sequence)(uint32_t, nrta_xu_t, int, nrta_seq_t *) = nrta_get_sequence;
NRT_STATUS (*const abi_event_seq)(nrta_seq_t, int) = nrta_event_register_seq_id_completion;
NRT_STATUS (*const abi_event_xu)(int, nrta_xu_t, int, int) = nrta_event_register_xu_completion;

/* Section 7 and 8, the same way: each prototype parameter by parameter. */
#define PROTO(ret, name, ...) ret (*const abi_##name)(__VA_ARGS__) = name
PROTO(void, nrt_sys_trace_buffer_free, char *);
PROTO(NRT_STATUS, nrt_sys_trace_config_allocate, nrt_sys_trace_config_t **);
PROTO(void, nrt_sys_trace_config_free, nrt_sys_trace_config_t *);
PROTO(NRT_STATUS, nrt_sys_trace_config_get_enabled_event_types, nrt_sys_trace_config_t *, const char ***, size_t *);
PROTO(NRT_STATUS, nrt_sys_trace_config_set_capture_enabled_for_event_type, nrt_sys_trace_config_t *, const char *,
      bool);
PROTO(void, nrt_sys_trace_config_set_capture_enabled_for_nc, nrt_sys_trace_config_t *, uint32_t, bool);
PROTO(void, nrt_sys_trace_config_set_defaults, nrt_sys_trace_config_t *);
PROTO(void, nrt_sys_trace_config_set_max_events_per_nc, nrt_sys_trace_config_t *, uint64_t);
PROTO(NRT_STATUS, nrt_sys_trace_fetch_events, char **, size_t *, const nrt_sys_trace_fetch_options_t *);
PROTO(NRT_STATUS, nrt_sys_trace_fetch_options_allocate, nrt_sys_trace_fetch_options_t **);
PROTO(void, nrt_sys_trace_fetch_options_free, nrt_sys_trace_fetch_options_t *);
PROTO(void, nrt_sys_trace_fetch_options_set_defaults, nrt_sys_trace_fetch_options_t *);
PROTO(void, nrt_sys_trace_fetch_options_set_max_events_per_nc, nrt_sys_trace_fetch_options_t *, uint64_t);
PROTO(void, nrt_sys_trace_fetch_options_set_nc_idx, nrt_sys_trace_fetch_options_t *, uint64_t);
PROTO(void, nrt_sys_trace_free_event_types, const char **, size_t);
PROTO(NRT_STATUS, nrt_sys_trace_get_event_types, const char ***, size_t *);
PROTO(NRT_STATUS, nrt_sys_trace_start, nrt_sys_trace_config_t *);
PROTO(NRT_STATUS, nrt_sys_trace_stop, void);
PROTO(NRT_STATUS, nrt_inspect_begin, void);
PROTO(NRT_STATUS, nrt_inspect_begin_with_options, nrt_inspect_config_t *);
PROTO(NRT_STATUS, nrt_inspect_config_allocate, nrt_inspect_config_t **);
PROTO(NRT_STATUS, nrt_inspect_config_free, nrt_inspect_config_t *);
PROTO(void, nrt_inspect_config_free_activity_types, const char **, size_t);
PROTO(NRT_STATUS, nrt_inspect_config_get_all_activity_types, const char ***, size_t *);
PROTO(NRT_STATUS, nrt_inspect_config_get_enabled_activity_types, nrt_inspect_config_t *, const char ***, size_t *);
PROTO(NRT_STATUS, nrt_inspect_config_set_activity, nrt_inspect_config_t *, const char *, bool);
PROTO(NRT_STATUS, nrt_inspect_config_set_capture_enabled_for_event_type_string, nrt_inspect_config_t *,
      const char *, bool);
PROTO(NRT_STATUS, nrt_inspect_config_set_capture_enabled_for_nc, nrt_inspect_config_t *, uint32_t, bool);
PROTO(NRT_STATUS, nrt_inspect_config_set_defaults, nrt_inspect_config_t *);
PROTO(NRT_STATUS, nrt_inspect_config_set_enable_inspect, nrt_inspect_config_t *, bool);
PROTO(NRT_STATUS, nrt_inspect_config_set_enable_inspect_on_fail, nrt_inspect_config_t *, bool);
PROTO(NRT_STATUS, nrt_inspect_config_set_output_dir, nrt_inspect_config_t *, const char *);
PROTO(NRT_STATUS, nrt_inspect_config_set_session_id, nrt_inspect_config_t *, int);
PROTO(NRT_STATUS, nrt_inspect_config_set_sys_trace_max_events_per_nc, nrt_inspect_config_t *, uint64_t);
PROTO(NRT_STATUS, nrt_inspect_stop, void);
PROTO(NRT_STATUS, nrt_profile_continuous_options_allocate, nrt_profile_continuous_options_t **);
PROTO(NRT_STATUS, nrt_profile_continuous_options_free, nrt_profile_continuous_options_t *);
PROTO(NRT_STATUS, nrt_profile_continuous_options_set_output_dir, nrt_profile_continuous_options_t *, const char *);
PROTO(NRT_STATUS, nrt_profile_continuous_save, uint32_t, nrt_profile_continuous_options_t *);
PROTO(NRT_STATUS, nrt_profile_continuous_start, nrt_profile_continuous_options_t *);
PROTO(NRT_STATUS, nrt_profile_continuous_stop, void);
PROTO(void *, nrt_get_libnccl_net, int *, char *, size_t);
PROTO(NRT_STATUS, nrt_memcpy_to_device, void *, const void *, size_t);
PROTO(NRT_STATUS, nrt_set_pool_eng_ucode, const nrt_ucode_info *);
PROTO(NRT_STATUS, nrt_trace_start, bool);
PROTO(NRT_STATUS, nrt_trace_stop, const char *);
PROTO(NRT_STATUS, nrt_get_attached_efa_bdf, const void *, char *, size_t *);
PROTO(NRT_STATUS, nrt_get_dmabuf_fd, uint64_t, uint64_t, int *);
PROTO(NRT_STATUS, nrt_get_hbm_mmap_va, int, int, void **, size_t *);
PROTO(NRT_STATUS, nrt_host_device_id_get, int, uint32_t *);
PROTO(NRT_STATUS, nrt_host_device_id_rid_map_get, uint32_t *, uint32_t *);
PROTO(NRT_STATUS, nrt_tensor_check_output_completion, const nrt_tensor_t *, int64_t, uint64_t);
PROTO(NRT_STATUS, nrt_tensor_reset_output_completion, nrt_tensor_t *);
PROTO(NRT_STATUS, nrt_debug_client_connect, int, int *);
PROTO(void, nrt_debug_client_connect_close, int);
PROTO(NRT_STATUS, nrt_debug_client_read_one_event, int, ndebug_stream_event_header_t *, void **);
PROTO(NRT_STATUS, nrt_async_sendrecv_accept, const char *, int, int, nrt_async_sendrecv_comm_t **);
PROTO(NRT_STATUS, nrt_async_sendrecv_close, int);
PROTO(NRT_STATUS, nrt_async_sendrecv_connect, const char *, int, int, nrt_async_sendrecv_comm_t **);
PROTO(NRT_STATUS, nrt_async_sendrecv_flush, int);
PROTO(NRT_STATUS, nrt_async_sendrecv_get_max_num_communicators_per_lnc, int *);
PROTO(NRT_STATUS, nrt_async_sendrecv_get_max_num_pending_request, int *);
PROTO(NRT_STATUS, nrt_async_sendrecv_init, int);
PROTO(NRT_STATUS, nrt_async_sendrecv_recv_tensor, nrt_tensor_t *, size_t, size_t, nrt_async_sendrecv_comm_t *,
      nrt_async_sendrecv_request_t **);
PROTO(NRT_STATUS, nrt_async_sendrecv_send_tensor, nrt_tensor_t *, size_t, size_t, nrt_async_sendrecv_comm_t *,
      nrt_async_sendrecv_request_t **);
PROTO(NRT_STATUS, nrt_async_sendrecv_test_comm, nrt_async_sendrecv_comm_t *, bool *);
PROTO(NRT_STATUS, nrt_async_sendrecv_test_request, nrt_async_sendrecv_request_t *, bool *, size_t *);
/* Section 8: nrt_experimental.h holds these. */
PROTO(NRT_STATUS, nrt_barrier, int32_t, uint32_t, uint32_t);
PROTO(NRT_STATUS, nrt_all_gather, int32_t, uint32_t, uint32_t, uint32_t, void *, void *);
PROTO(NRT_STATUS, nrt_get_model_info, const nrt_model_t *, nrt_model_info_t *, size_t, size_t *);
#endif

/* Every constant, with the value nrt-abi.md gives it. */
#define CHECK(name, value) STATIC_ASSERT((long long)(name) == (long long)(value), #name)
CHECK(NRT_MAJOR_VERSION, 2); CHECK(NRT_MINOR_VERSION, 0);
CHECK(NRT_SUCCESS, 0); CHECK(NRT_FAILURE, 1); CHECK(NRT_INVALID, 2); CHECK(NRT_INVALID_HANDLE, 3);
CHECK(NRT_RESOURCE, 4); CHECK(NRT_TIMEOUT, 5); CHECK(NRT_HW_ERROR, 6); CHECK(NRT_QUEUE_FULL, 7);
CHECK(NRT_LOAD_NOT_ENOUGH_NC, 9); CHECK(NRT_UNSUPPORTED_NEFF_VERSION, 10); CHECK(NRT_FAIL_HOST_MEM_ALLOC, 11);
CHECK(NRT_UNINITIALIZED, 13); CHECK(NRT_CLOSED, 14); CHECK(NRT_QUEUE_EMPTY, 15);
CHECK(NRT_EXEC_UNIT_UNRECOVERABLE, 101); CHECK(NRT_EXEC_BAD_INPUT, 1002);
CHECK(NRT_EXEC_COMPLETED_WITH_NUM_ERR, 1003); CHECK(NRT_EXEC_COMPLETED_WITH_ERR, 1004);
CHECK(NRT_EXEC_NC_BUSY, 1005); CHECK(NRT_EXEC_OOB, 1006); CHECK(NRT_COLL_PENDING, 1100);
CHECK(NRT_EXEC_HW_ERR_COLLECTIVES, 1200); CHECK(NRT_EXEC_HW_ERR_HBM_UE, 1201);
CHECK(NRT_EXEC_HW_ERR_NC_UE, 1202); CHECK(NRT_EXEC_HW_ERR_DMA_ABORT, 1203);
CHECK(NRT_EXEC_SW_NQ_OVERFLOW, 1204); CHECK(NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE, 1205);
CHECK(NRT_NETWORK_PROXY_FAILURE, 1206);
CHECK(NRT_TENSOR_PLACEMENT_DEVICE, 0); CHECK(NRT_TENSOR_PLACEMENT_HOST, 1); CHECK(NRT_TENSOR_PLACEMENT_VIRTUAL, 2);
CHECK(NRT_FRAMEWORK_TYPE_INVALID, 0); CHECK(NRT_FRAMEWORK_TYPE_NO_FW, 1); CHECK(NRT_FRAMEWORK_TYPE_TENSORFLOW, 2);
CHECK(NRT_FRAMEWORK_TYPE_PYTORCH, 3); CHECK(NRT_FRAMEWORK_TYPE_MXNET, 4); CHECK(NRT_FRAMEWORK_TYPE_PRECHECK, 5);
CHECK(NRT_INSTANCE_UNKNOWN, 0); CHECK(NRT_INSTANCE_INF1, 1); CHECK(NRT_INSTANCE_TRN1, 2); CHECK(NRT_INSTANCE_TRN1N, 3);
CHECK(NRT_INSTANCE_INF2, 4); CHECK(NRT_INSTANCE_TRN2, 5); CHECK(NRT_INSTANCE_TRN2N, 6); CHECK(NRT_INSTANCE_INF2E, 7);
CHECK(NRT_INSTANCE_TRN2P, 8); CHECK(NRT_INSTANCE_TRN2U, 9); CHECK(NRT_INSTANCE_TRN2E, 10); CHECK(NRT_INSTANCE_TRN2EU, 11);
CHECK(NRT_INSTANCE_TRN2AC, 12); CHECK(NRT_INSTANCE_TRN2UAC, 13); CHECK(NRT_INSTANCE_TRN3, 14);
CHECK(NRT_INSTANCE_TRN3PDS98, 15);
CHECK(NRT_INSTANCE_SIZE_1XL, 0); CHECK(NRT_INSTANCE_SIZE_2XL, 1); CHECK(NRT_INSTANCE_SIZE_4XL, 2);
CHECK(NRT_INSTANCE_SIZE_6XL, 3); CHECK(NRT_INSTANCE_SIZE_8XL, 4); CHECK(NRT_INSTANCE_SIZE_24XL, 5);
CHECK(NRT_INSTANCE_SIZE_32XL, 6); CHECK(NRT_INSTANCE_SIZE_48XL, 7); CHECK(NRT_INSTANCE_SIZE_3XL, 8);
CHECK(NRT_INSTANCE_SIZE_UNKNOWN, 9); CHECK(NRT_INSTANCE_SIZE_NUM, 9);
CHECK(NRT_DTYPE_UNKNOWN, 0); CHECK(NRT_DTYPE_INVALID, 0); CHECK(NRT_DTYPE_UINT64, 1); CHECK(NRT_DTYPE_INT8, 2);
CHECK(NRT_DTYPE_UINT8, 3); CHECK(NRT_DTYPE_INT16, 4); CHECK(NRT_DTYPE_UINT16, 5); CHECK(NRT_DTYPE_BFLOAT16, 6);
CHECK(NRT_DTYPE_FLOAT16, 7); CHECK(NRT_DTYPE_INT32, 8); CHECK(NRT_DTYPE_UINT32, 9); CHECK(NRT_DTYPE_FLOAT32, 10);
CHECK(NRT_DTYPE_FP32R, 11); CHECK(NRT_DTYPE_INT64, 12); CHECK(NRT_DTYPE_FP8_E3, 13); CHECK(NRT_DTYPE_FP8_E4, 14);
CHECK(NRT_DTYPE_FP8_E5, 15);
CHECK(NRT_OP_ADD, 0); CHECK(NRT_OP_FMA, 1); CHECK(NRT_OP_MAX, 2); CHECK(NRT_OP_MIN, 3); CHECK(NRT_OP_INVALID, 15);
CHECK(NRT_CC_ALLGATHER, 0); CHECK(NRT_CC_ALLREDUCE, 1); CHECK(NRT_CC_REDUCESCATTER, 2);
CHECK(NRT_TENSOR_USAGE_INPUT, 0); CHECK(NRT_TENSOR_USAGE_OUTPUT, 1); CHECK(NRT_TENSOR_NAME_MAX, 256);
CHECK(NRTA_XU_TENSOR_OP, 0); CHECK(NRTA_XU_COMPUTE, 1); CHECK(NRTA_XU_COLLECTIVES, 2); CHECK(NRTA_XU_TYPE_NUM, 3);
CHECK(NRTA_SEQ_NUM_MAX, 281474976710655ull); CHECK(NRTA_SEQ_NUM_MASK, 281474976710655ull);
CHECK(NRTA_SEQ_GET_SEQ_NUM(0x0123000000000005ull), 5); CHECK(NRTA_SEQ_GET_XU_ID(0x0123000000000005ull), 0x0123);
CHECK(NDEBUG_STREAM_EVENT_TYPE_INVALID, 0); CHECK(NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ, 1);
STATIC_ASSERT(sizeof(ndebug_stream_event_header_t) == 64, "ndebug_stream_event_header_t");
STATIC_ASSERT(sizeof(nrta_seq_t) == 8, "nrta_seq_t"); STATIC_ASSERT(sizeof(nrta_xu_id_t) == 2, "nrta_xu_id_t");

/* Every type: opaque handles through pointers, the rest by value. */
struct all_types {
    nrt_model_t *model; nrt_tensor_t *tensor; nrt_cc_context_t *cc_ctx; nrt_tensor_set_t *set;
    nrta_error_tracker_t *tracker; NRT_STATUS status; nrt_tensor_placement_t placement;
    nrt_framework_type_t framework; nrt_dtype_t dtype; nrt_op_type_t op; nrt_cc_op_type_t cc_op;
    nrt_tensor_usage_t usage; nrta_xu_t xu; nrta_seq_t seq; nrta_xu_id_t xu_id;
    nrt_sys_trace_config_t *trace_config; nrt_sys_trace_fetch_options_t *fetch_options;
    nrt_inspect_config_t *inspect_config; nrt_profile_continuous_options_t *continuous_options;
    nrt_async_sendrecv_comm_t *sr_comm; nrt_async_sendrecv_request_t *sr_request;
    ndebug_stream_event_type_t debug_event_type;
};

#define FIELD(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
#define SIZE(T) printf(#T " %zu\n", sizeof(T))

int main(void) {
    struct all_types t;
    t.status = NRT_SUCCESS;
    (void)t;
#ifndef LAYOUT_ONLY
    printf("functions %zu\n", sizeof(functions) / sizeof(functions[0]));
#endif
    SIZE(nrt_instance_info_t); FIELD(nrt_instance_info_t, family); FIELD(nrt_instance_info_t, size);
    FIELD(nrt_instance_info_t, arch_name); FIELD(nrt_instance_info_t, device_revision);
    SIZE(nrt_version_t); FIELD(nrt_version_t, rt_major); FIELD(nrt_version_t, rt_minor);
    FIELD(nrt_version_t, rt_patch); FIELD(nrt_version_t, rt_maintenance); FIELD(nrt_version_t, rt_detail);
    FIELD(nrt_version_t, git_hash);
    SIZE(nrt_tensor_info_t); FIELD(nrt_tensor_info_t, name); FIELD(nrt_tensor_info_t, usage);
    FIELD(nrt_tensor_info_t, size); FIELD(nrt_tensor_info_t, dtype); FIELD(nrt_tensor_info_t, shape);
    FIELD(nrt_tensor_info_t, ndim);
    SIZE(nrt_tensor_info_array_t); FIELD(nrt_tensor_info_array_t, tensor_count);
    FIELD(nrt_tensor_info_array_t, tensor_array);
    SIZE(nrt_model_info_t); FIELD(nrt_model_info_t, vnc);
    SIZE(nrt_vnc_memory_stats_t); FIELD(nrt_vnc_memory_stats_t, bytes_used); FIELD(nrt_vnc_memory_stats_t, bytes_limit);
    SIZE(nrt_tensor_device_allocation_info_t); FIELD(nrt_tensor_device_allocation_info_t, physical_address);
    FIELD(nrt_tensor_device_allocation_info_t, size); FIELD(nrt_tensor_device_allocation_info_t, hbm_index);
    SIZE(nrt_tensor_batch_op_t); FIELD(nrt_tensor_batch_op_t, offset); FIELD(nrt_tensor_batch_op_t, size);
    FIELD(nrt_tensor_batch_op_t, buffer);
    SIZE(nrt_tensor_batch_t); FIELD(nrt_tensor_batch_t, tensor); FIELD(nrt_tensor_batch_t, ops);
    FIELD(nrt_tensor_batch_t, num_ops);
    SIZE(nrt_cc_comm_t); FIELD(nrt_cc_comm_t, replica_group); FIELD(nrt_cc_comm_t, rank);
    FIELD(nrt_cc_comm_t, rank_n); FIELD(nrt_cc_comm_t, ctx_device_id); FIELD(nrt_cc_comm_t, ctx_device_count);
    FIELD(nrt_cc_comm_t, vnc);
    SIZE(nrt_tensor_list_t); FIELD(nrt_tensor_list_t, tensors); FIELD(nrt_tensor_list_t, num_tensors);
    SIZE(ndebug_stream_event_header_t); FIELD(ndebug_stream_event_header_t, data_size);
    FIELD(ndebug_stream_event_header_t, type); FIELD(ndebug_stream_event_header_t, reserved);
    SIZE(ndebug_stream_payload_debug_tensor_read_t); FIELD(ndebug_stream_payload_debug_tensor_read_t, prefix);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, logical_nc_id);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, pipe);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, tensor_dtype);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, tensor_shape);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, tensor_data_size);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, reserved0);
    FIELD(ndebug_stream_payload_debug_tensor_read_t, tensor_data);
    SIZE(nrt_ucode_img); FIELD(nrt_ucode_img, bin); FIELD(nrt_ucode_img, size);
    SIZE(nrt_ucode_info); FIELD(nrt_ucode_info, iram); FIELD(nrt_ucode_info, dram);
    return 0;
}
