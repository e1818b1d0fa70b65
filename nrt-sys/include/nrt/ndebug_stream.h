/*
 * neuron-rt project: the per-core debug event stream. Written for this project from
 * shared/nrt-abi.md.
 * Sources (two for every prototype and layout, nrt-abi.md section 7): the vendor's
 * public headers (aws-neuron/aws-neuron-sdk, src/libnrt/include/nrt/ndebug_stream.h)
 * and its API reference pages (neuron-runtime/api/ndebug_stream.rst).
 *
 * One client per logical core at a time. The stream descriptor can be polled for
 * readability; events are consumed only through nrt_debug_client_read_one_event. Events
 * emitted while no client is connected are dropped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nrt/nrt_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ndebug_stream_event_type {
    NDEBUG_STREAM_EVENT_TYPE_INVALID = 0,
    NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ = 1
} ndebug_stream_event_type_t;

/* 64 bytes ahead of each payload. */
typedef struct ndebug_stream_event_header {
    uint64_t data_size;   /* payload bytes */
    uint32_t type;        /* ndebug_stream_event_type_t */
    char reserved[52];
} ndebug_stream_event_header_t;

/* Payload of NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ. */
typedef struct ndebug_stream_payload_debug_tensor_read {
    char prefix[512];
    uint32_t logical_nc_id;
    uint32_t pipe;
    char tensor_dtype[16];
    uint64_t tensor_shape[8];
    uint64_t tensor_data_size;
    char reserved0[416];
    char tensor_data[];   /* tensor_data_size bytes */
} ndebug_stream_payload_debug_tensor_read_t;

/* Connects to core logical_nc_idx's stream; *stream_fd is pollable. */
NRT_STATUS nrt_debug_client_connect(int logical_nc_idx, int *stream_fd);
void nrt_debug_client_connect_close(int stream_fd);
/* Takes one event: its header, and a new *payload the caller frees with free(). */
NRT_STATUS nrt_debug_client_read_one_event(int stream_fd, ndebug_stream_event_header_t *header, void **payload);

#ifdef __cplusplus
}
#endif
