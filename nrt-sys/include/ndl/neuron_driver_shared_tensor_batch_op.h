/*
 * neuron-rt project: one host<->tensor copy inside a batched tensor read/write.
 * Written for this project from shared/nrt-abi.md (see nrt/nrt_status.h).
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nrt_tensor_batch_op {
    uint64_t offset; /* byte offset into the tensor */
    uint64_t size;   /* bytes to copy */
    void *buffer;    /* host memory, at least `size` bytes */
} nrt_tensor_batch_op_t;

#ifdef __cplusplus
}
#endif
