/*
 * neuron-rt project: the system trace (runtime and NeuronCore events kept in per-core
 * ring buffers, fetched as JSON). Written for this project from shared/nrt-abi.md.
 * Sources (two for every prototype, nrt-abi.md section 7): the vendor's public headers
 * (aws-neuron/aws-neuron-sdk, src/libnrt/include/nrt/nrt_sys_trace.h) and its API
 * reference pages (neuron-runtime/api/nrt_sys_trace.rst).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nrt/nrt_status.h"
#include "nrt/nrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- capture ---- */
/* Opaque capture options: allocate (defaults), adjust, pass to nrt_sys_trace_start, free. */
typedef struct nrt_sys_trace_config nrt_sys_trace_config_t;

NRT_STATUS nrt_sys_trace_config_allocate(nrt_sys_trace_config_t **options);
/* Every event type and every core on. */
void nrt_sys_trace_config_set_defaults(nrt_sys_trace_config_t *options);
void nrt_sys_trace_config_free(nrt_sys_trace_config_t *options);
/* Ring buffer capacity of each core, in events. */
void nrt_sys_trace_config_set_max_events_per_nc(nrt_sys_trace_config_t *options, uint64_t max_events_per_nc);
/* A core turned off gets no ring buffer. */
void nrt_sys_trace_config_set_capture_enabled_for_nc(nrt_sys_trace_config_t *options, uint32_t nc_idx,
                                                     bool enabled);
/* event_type: a name from nrt_sys_trace_get_event_types. */
NRT_STATUS nrt_sys_trace_config_set_capture_enabled_for_event_type(nrt_sys_trace_config_t *options,
                                                                   const char *event_type, bool enabled);
/* Every event type name (an allocated array of allocated strings: free with
   nrt_sys_trace_free_event_types, or free() each string and then the array). */
NRT_STATUS nrt_sys_trace_get_event_types(const char ***event_types, size_t *count);
void nrt_sys_trace_free_event_types(const char **event_types, size_t count);
/* The names the options have on, allocated the same way. */
NRT_STATUS nrt_sys_trace_config_get_enabled_event_types(nrt_sys_trace_config_t *options,
                                                        const char ***event_types, size_t *count);
/* Allocates the ring buffers and starts recording. */
NRT_STATUS nrt_sys_trace_start(nrt_sys_trace_config_t *options);
/* Stops recording and frees the ring buffers. */
NRT_STATUS nrt_sys_trace_stop(void);

/* ---- fetch ---- */
typedef struct nrt_sys_trace_fetch_options nrt_sys_trace_fetch_options_t;

NRT_STATUS nrt_sys_trace_fetch_options_allocate(nrt_sys_trace_fetch_options_t **options);
void nrt_sys_trace_fetch_options_set_defaults(nrt_sys_trace_fetch_options_t *options);
void nrt_sys_trace_fetch_options_free(nrt_sys_trace_fetch_options_t *options);
/* At most this many events from each core. */
void nrt_sys_trace_fetch_options_set_max_events_per_nc(nrt_sys_trace_fetch_options_t *options,
                                                       uint64_t max_events_per_nc);
/* Only this core's events. */
void nrt_sys_trace_fetch_options_set_nc_idx(nrt_sys_trace_fetch_options_t *options, uint64_t nc_idx);

/* Takes recorded events out of the ring buffers (each is returned once) as a NUL-terminated
   JSON text in a new *buffer (*written_size bytes); free it with nrt_sys_trace_buffer_free.
   options NULL: every event of every core. */
NRT_STATUS nrt_sys_trace_fetch_events(char **buffer, size_t *written_size,
                                      const nrt_sys_trace_fetch_options_t *options);
void nrt_sys_trace_buffer_free(char *buffer);

#ifdef __cplusplus
}
#endif
