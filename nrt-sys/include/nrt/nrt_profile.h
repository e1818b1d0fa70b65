/*
 * neuron-rt project: execution profiling. Written for this project from
 * shared/nrt-abi.md.
 */
#pragma once

#include "nrt/nrt_status.h"
#include "nrt/nrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Profile the model's executions until nrt_profile_stop; results go to `filename`. */
NRT_STATUS nrt_profile_start(nrt_model_t *model, const char *filename);
NRT_STATUS nrt_profile_stop(const char *filename);

#ifdef __cplusplus
}
#endif
