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
/* Why async request seq failed ("function: request n on core c TYPE queue q: reason"):
 * copied into buf like snprintf (at most size - 1 bytes and a NUL); returns its full
 * length; "" and 0 when the request did not fail (or is not among its queue's last 64
 * failures). */
size_t nrt_sim_request_error(uint64_t seq, char *buf, size_t size);
/* Faults that fired since the library was loaded: events (executions, allocations,
 * loads, async requests) an armed fault made fail, each counted once. Never reset. */
uint64_t nrt_sim_faults_injected(void);
/* Bytes moved between one device tensor's memory and the host since it was allocated
 * (counted on its memory, shared with its slices; executions count nothing; HOST and
 * VIRTUAL tensors report 0). */
typedef struct nrt_sim_tensor_transfers {
    uint64_t device_to_host_bytes; /* nrt_tensor_read (+batch, async), copies to host tensors */
    uint64_t host_to_device_bytes; /* nrt_tensor_write (+batch, async), copies from host tensors */
} nrt_sim_tensor_transfers_t;
/* size: sizeof(nrt_sim_tensor_transfers_t) (16). NRT_INVALID_HANDLE for a freed tensor. */
NRT_STATUS nrt_sim_get_tensor_transfers(const nrt_tensor_t *tensor,
                                        nrt_sim_tensor_transfers_t *transfers, size_t size);
/* The simulator's clock: its lag behind the device model over the last 4096 executions
 * (start lag: reaching the modelled start late; end lag: its clock error at the modelled
 * end), and its settings. */
typedef struct nrt_sim_clock_stats {
    uint64_t executions;        /* executions recorded (since load or the last reset) */
    uint64_t start_lag_p50_ns;
    uint64_t start_lag_p99_ns;
    uint64_t end_lag_p50_ns;
    uint64_t end_lag_p99_ns;
    uint64_t launch_ns;         /* launch cost per execution (NRT_SIM_LAUNCH_US) */
    uint64_t spin_margin_ns;    /* how long before a deadline it stops sleeping and spins */
} nrt_sim_clock_stats_t;

/* size: sizeof(nrt_sim_clock_stats_t) (or more); reset != 0 empties the samples after. */
NRT_STATUS nrt_sim_get_clock_stats(nrt_sim_clock_stats_t *stats, size_t size, uint32_t reset);
/* Launch cost L of every later execution: start = max(previous end, queued + L), until
 * the next nrt_init (which reads NRT_SIM_LAUNCH_US). NRT_INVALID above 10 s. */
NRT_STATUS nrt_sim_set_launch_us(uint64_t launch_us);
/* on != 0: later log lines go to an in-memory buffer (the last 4096 lines) instead of
 * stderr; on == 0: to stderr again (the buffer keeps its lines). Returns 1 if capture
 * was on before, else 0. */
uint32_t nrt_sim_capture_log(uint32_t on);
/* Moves captured lines, oldest first, into buf: as many whole lines (each ending in '\n')
 * as fit in size - 1 bytes, then a NUL (a first line longer than that is cut). Returns
 * the bytes written before the NUL; 0 when none is captured. Call until it returns 0. */
size_t nrt_sim_take_log(char *buf, size_t size);
/* Returns NRT_SIM_IDENTITY: marks the library as nrt-sim, with the version of this
 * interface (the structs and functions above) in the low byte (2: faults_injected,
 * 3: get_tensor_transfers, 4: request_error, 5: clock stats and launch cost, 7: log
 * capture). */
#define NRT_SIM_IDENTITY 0x6e72742d73696d07ULL
uint64_t nrt_sim_identity(void);

#ifdef __cplusplus
}
#endif
