/*
 * nrt-sim control interface: functions exported by libnrt_sim.so besides the libnrt
 * API, for tests and tools. Not part of libnrt; check for them with dlsym before use
 * when the library may be a real libnrt.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include "nrt/nrt_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Process-wide counters. */
typedef struct nrt_sim_counters {
    uint32_t core_count;         /* visible cores of the open (or last closed) runtime */
    uint32_t open;               /* 1 between nrt_init and nrt_close */
    uint64_t tensor_sets;        /* live tensor sets */
    uint64_t host_tensors;       /* live tensors not on a device */
    uint64_t host_bytes;         /* host bytes owned by those tensors */
    uint64_t live_at_last_close; /* objects the last nrt_close had to free */
} nrt_sim_counters_t;

/* Counters of one core. After nrt_close the live counts are 0 and the rest are kept. */
typedef struct nrt_sim_core_counters {
    uint64_t models;             /* live models */
    uint64_t tensors;            /* live tensors, slices included */
    uint64_t device_bytes;       /* device bytes in use (tensors and models) */
    uint64_t device_bytes_limit; /* device memory of the core */
    uint64_t executions;         /* executions run, failed ones included */
    uint64_t failed_executions;  /* executions that did not succeed */
    uint64_t busy_ns;            /* time spent executing */
    uint64_t tensor_ops;         /* async tensor requests processed */
    /* Appended later (the struct only grows; pass the size you know, at least 64): */
    uint64_t tensor_op_busy_ns[2];  /* work done by TENSOR_OP queues 0 and 1, transfers included */
    uint64_t compute_queue_busy_ns; /* work done by the COMPUTE queue (async executions) */
    uint64_t sync_transfer_ns;      /* synchronous reads/writes of the core's device tensors */
} nrt_sim_core_counters_t;

/* size: sizeof(nrt_sim_counters_t) (or more). */
NRT_STATUS nrt_sim_get_counters(nrt_sim_counters_t *counters, size_t size);
/* size: sizeof(nrt_sim_core_counters_t) as the caller knows it (64 or more); the first
 * min(size, sizeof) bytes are filled. NRT_INVALID for an unknown core or a size below 64. */
NRT_STATUS nrt_sim_get_core_counters(uint32_t vnc, nrt_sim_core_counters_t *counters, size_t size);
/* Arms faults (the NRT_SIM_FAULTS language, see the nrt-sim README). NRT_INVALID if bad. */
NRT_STATUS nrt_sim_inject_faults(const char *spec);
/* Disarms every fault. */
void nrt_sim_clear_faults(void);
/* The calling thread's last error line, or NULL; valid until its next failing call. */
const char *nrt_sim_last_error(void);
/* Faults that fired since the library was loaded: events (executions, allocations,
 * loads, async requests) an armed fault made fail, each counted once. Never reset. */
uint64_t nrt_sim_faults_injected(void);
/* Returns NRT_SIM_IDENTITY: marks the library as nrt-sim, with the version of this
 * interface (the structs and functions above) in the low byte (2: faults_injected). */
#define NRT_SIM_IDENTITY 0x6e72742d73696d02ULL
uint64_t nrt_sim_identity(void);

#ifdef __cplusplus
}
#endif
