/*
 * neuron-rt project: execution profiling. Written for this project from
 * shared/nrt-abi.md.
 * Sources of the section 7 declarations: the vendor's public header
 * (aws-neuron/aws-neuron-sdk, src/libnrt/include/nrt/nrt_profile.h) and its API reference
 * page (neuron-runtime/api/nrt_profile.rst).
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

/* Profile the model's executions until nrt_profile_stop; results go to `filename`. */
NRT_STATUS nrt_profile_start(nrt_model_t *model, const char *filename);
NRT_STATUS nrt_profile_stop(const char *filename);

/* ---- continuous device profiling ----
   Every execution is profiled; a profile reaches disk only when nrt_profile_continuous_save
   asks for it (the latest execution on a core). Options are opaque: allocate (defaults),
   set, free. Default output directory: ./output. */
typedef struct nrt_profile_continuous_options nrt_profile_continuous_options_t;

NRT_STATUS nrt_profile_continuous_options_allocate(nrt_profile_continuous_options_t **options);
NRT_STATUS nrt_profile_continuous_options_free(nrt_profile_continuous_options_t *options);
NRT_STATUS nrt_profile_continuous_options_set_output_dir(nrt_profile_continuous_options_t *options,
                                                         const char *output_dir);
NRT_STATUS nrt_profile_continuous_start(nrt_profile_continuous_options_t *options);
/* Writes the profile of the latest execution on core vnc into the options' directory. */
NRT_STATUS nrt_profile_continuous_save(uint32_t vnc, nrt_profile_continuous_options_t *options);
/* Stops without saving. */
NRT_STATUS nrt_profile_continuous_stop(void);

/* ---- inspect (system and device profiles written to an output directory) ---- */
/* Configured by the NEURON_RT_INSPECT_* environment variables. */
NRT_STATUS nrt_inspect_begin(void);
/* Stops and writes what was captured. */
NRT_STATUS nrt_inspect_stop(void);

/* Opaque options of nrt_inspect_begin_with_options (which ignores the environment). */
typedef struct nrt_inspect_config nrt_inspect_config_t;

NRT_STATUS nrt_inspect_config_allocate(nrt_inspect_config_t **options);
/* Defaults: session 1, output ./output, every activity type, every core and event type
   captured, inspect and inspect-on-fail off. */
NRT_STATUS nrt_inspect_config_set_defaults(nrt_inspect_config_t *options);
NRT_STATUS nrt_inspect_config_free(nrt_inspect_config_t *options);
NRT_STATUS nrt_inspect_config_set_session_id(nrt_inspect_config_t *options, int session_id);
/* The text is copied. */
NRT_STATUS nrt_inspect_config_set_output_dir(nrt_inspect_config_t *options, const char *output_dir);
NRT_STATUS nrt_inspect_config_set_sys_trace_max_events_per_nc(nrt_inspect_config_t *options,
                                                              uint64_t sys_trace_max_events_per_nc);
NRT_STATUS nrt_inspect_config_set_capture_enabled_for_nc(nrt_inspect_config_t *options, uint32_t nc_idx,
                                                         bool enabled);
/* event_type: a name from nrt_sys_trace_get_event_types. */
NRT_STATUS nrt_inspect_config_set_capture_enabled_for_event_type_string(nrt_inspect_config_t *options,
                                                                        const char *event_type, bool enabled);
/* Capture every execution. */
NRT_STATUS nrt_inspect_config_set_enable_inspect(nrt_inspect_config_t *options, bool enable_inspect);
/* Capture device profiles of failing executions. */
NRT_STATUS nrt_inspect_config_set_enable_inspect_on_fail(nrt_inspect_config_t *options,
                                                         bool enable_inspect_on_fail);
/* options NULL: the defaults. */
NRT_STATUS nrt_inspect_begin_with_options(nrt_inspect_config_t *options);
/* Activity type names (arrays of allocated strings; free with
   nrt_inspect_config_free_activity_types, or free() each string and the array). */
NRT_STATUS nrt_inspect_config_get_all_activity_types(const char ***activity_types, size_t *count);
NRT_STATUS nrt_inspect_config_get_enabled_activity_types(nrt_inspect_config_t *options,
                                                         const char ***activity_types, size_t *count);
void nrt_inspect_config_free_activity_types(const char **activity_types, size_t count);
/* activity_type: one of the names above, or "all". */
NRT_STATUS nrt_inspect_config_set_activity(nrt_inspect_config_t *options, const char *activity_type,
                                           bool enabled);

#ifdef __cplusplus
}
#endif
