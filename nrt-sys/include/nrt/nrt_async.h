/*
 * neuron-rt project: the explicit asynchronous API, version 3 (runtime library
 * 2.31 and later). Written for this project from shared/nrt-abi.md.
 *
 * Every call schedules a request on one execution-unit (XU) queue and returns at
 * once. The request's final status is stored in *ret before the request counts
 * as completed, so *ret and any host buffer must stay valid until then.
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

/* Execution-unit types (v3 numbering). */
typedef enum {
    NRTA_XU_TENSOR_OP = 0,   /* host<->device transfers and tensor copies */
    NRTA_XU_COMPUTE = 1,     /* model execution */
    NRTA_XU_COLLECTIVES = 2, /* standalone collectives */
    NRTA_XU_TYPE_NUM = 3
} nrta_xu_t;

/* Request id: XU queue id in the top 16 bits, per-queue number in the low 48. */
typedef uint64_t nrta_seq_t;
typedef uint16_t nrta_xu_id_t;

#define NRTA_SEQ_NUM_MAX ((1ull << 48) - 1)
#define NRTA_SEQ_NUM_MASK NRTA_SEQ_NUM_MAX
#define NRTA_SEQ_GET_SEQ_NUM(seq_id) ((seq_id) & NRTA_SEQ_NUM_MASK)
#define NRTA_SEQ_GET_XU_ID(seq_id) ((seq_id) >> 48)

/* Error tracker of the earlier (v2) asynchronous API; no v3 call uses it. */
typedef struct nrta_error_tracker nrta_error_tracker_t;

/*
 * Tensor-op requests. lnc_idx is the logical NeuronCore whose DMA engine, and so whose
 * TENSOR_OP queue `queue`, carries the transfer (also for host tensors); the returned
 * sequence id names that unit. Runtime 2.31.24 added lnc_idx to these three calls; the
 * vendor's API reference page omits it, its release notes and application code have it.
 */
NRT_STATUS nrta_tensor_write(nrt_tensor_t *tensor, const void *buf, uint64_t offset, uint64_t size, int lnc_idx,
                             int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence);
NRT_STATUS nrta_tensor_read(void *buf, nrt_tensor_t *tensor, uint64_t offset, uint64_t size, int lnc_idx,
                            int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence);
NRT_STATUS nrta_tensor_copy(nrt_tensor_t *src, uint64_t src_offset, nrt_tensor_t *dst, uint64_t dst_offset,
                            uint64_t size, int lnc_idx, int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence);
/* queue must be 0 */
NRT_STATUS nrta_execute_schedule(nrt_model_t *model, const nrt_tensor_set_t *input, nrt_tensor_set_t *output,
                                 int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence);
/* Collectives: marked work in progress by the vendor. */
NRT_STATUS nrta_cc_prepare(nrt_cc_comm_t *comm, nrt_tensor_list_t *input, nrt_tensor_list_t *output,
                           nrt_dtype_t dtype, nrt_op_type_t op, nrt_cc_op_type_t cc_op,
                           nrt_cc_context_t **cc_ctx);
NRT_STATUS nrta_cc_schedule(nrt_cc_context_t **cc_ctx, int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence);
/* NRT_INVALID for an id that was never issued. */
NRT_STATUS nrta_is_completed(nrta_seq_t seq, bool *is_completed);
/* Last completed id on one XU queue. */
NRT_STATUS nrta_get_sequence(uint32_t lnc, nrta_xu_t xu, int queue, nrta_seq_t *seq);

/*
 * Completion notification through a caller-owned eventfd (runtime 2.32 and later).
 * No published header declares these two: the prototypes are inferred from the vendor's
 * migration guide example and its application code (all arguments are 32-bit integers
 * or the 64-bit sequence id). The eventfd's counter grows by one per signal, so one
 * wake-up may stand for several completions.
 */
/* Signal fd when seq completes (at once if it already has); fd = -1 deregisters. */
NRT_STATUS nrta_event_register_seq_id_completion(nrta_seq_t seq, int fd);
/* Signal fd on every completion of unit (lnc, xu, queue); a negative fd deregisters. */
NRT_STATUS nrta_event_register_xu_completion(int lnc, nrta_xu_t xu, int queue, int fd);

#ifdef __cplusplus
}
#endif
