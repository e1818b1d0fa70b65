/*
 * neuron-rt project: model introspection and other calls the SDK groups as
 * experimental. Written for this project from shared/nrt-abi.md.
 * Sources of the section 7 declarations: the vendor's public header
 * (aws-neuron/aws-neuron-sdk, src/libnrt/include/nrt/nrt_experimental.h) and its API reference
 * page (neuron-runtime/api/nrt_experimental.rst). Section 8: nrt_barrier,
 * nrt_all_gather, nrt_get_model_info and nrt_model_info_t live here, as in the vendor's
 * header (second source: public debug-info notes of libnrt 2.31.24).
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

/* Whether a model tensor is read (input) or written (output) by the model. */
typedef enum nrt_tensor_usage {
    NRT_TENSOR_USAGE_INPUT = 0,
    NRT_TENSOR_USAGE_OUTPUT = 1
} nrt_tensor_usage_t;

#define NRT_TENSOR_NAME_MAX 256

typedef struct nrt_tensor_info {
    char name[NRT_TENSOR_NAME_MAX];
    nrt_tensor_usage_t usage;
    size_t size;         /* bytes */
    nrt_dtype_t dtype;
    uint32_t *shape;     /* ndim entries, owned by the array */
    uint32_t ndim;
} nrt_tensor_info_t;

typedef struct nrt_tensor_info_array {
    uint64_t tensor_count;
    nrt_tensor_info_t tensor_array[];
} nrt_tensor_info_array_t;

/* Allocates *tensor_info; free it with nrt_free_model_tensor_info. */
NRT_STATUS nrt_get_model_tensor_info(nrt_model_t *model, nrt_tensor_info_array_t **tensor_info);
NRT_STATUS nrt_free_model_tensor_info(nrt_tensor_info_array_t *tensor_info);
NRT_STATUS nrt_get_model_instance_count(nrt_model_t *model, uint32_t *instance_count);

/* Extensible: callers pass the size they know, the library reports the size it wrote.
   Fields are only ever appended. */
typedef struct nrt_model_info {
    uint32_t vnc;
} nrt_model_info_t;

NRT_STATUS nrt_get_model_info(const nrt_model_t *model, nrt_model_info_t *info, size_t info_size_in,
                              size_t *info_size_out);

/* ---- host-driven collectives over the global communicator ---- */
/* Returns once all g_device_count members entered it. */
NRT_STATUS nrt_barrier(int32_t vnc, uint32_t g_device_id, uint32_t g_device_count);
/* Every member contributes rank_input_size bytes from input; output (g_device_count *
   rank_input_size bytes) receives member i's bytes at offset i * rank_input_size. Sets the
   global communicator up first, as nrt_build_global_comm does. */
NRT_STATUS nrt_all_gather(int32_t vnc, uint32_t g_device_id, uint32_t g_device_count,
                          uint32_t rank_input_size, void *input, void *output);

/* ---- legacy whole-process trace ---- */
/* Starts tracing every visible core; trace_mem also records memory allocations. */
NRT_STATUS nrt_trace_start(bool trace_mem);
/* Stops tracing and writes what was recorded to filename. */
NRT_STATUS nrt_trace_stop(const char *filename);

/* ---- low-level helpers ---- */
/* The collectives network plugin's handle; on failure NULL, *err set and a message in
   err_msg (at most err_msg_size bytes). */
void *nrt_get_libnccl_net(int *err, char *err_msg, size_t err_msg_size);

/* One microcode image: size bytes at bin. */
typedef struct nrt_ucode_img {
    uint8_t *bin;
    size_t size;
} nrt_ucode_img;

/* The pooling engine's instruction and data memory images. */
typedef struct nrt_ucode_info {
    nrt_ucode_img iram;
    nrt_ucode_img dram;
} nrt_ucode_info;

/* Replaces the pooling engine's microcode that nrt_init loads; call before nrt_init. */
NRT_STATUS nrt_set_pool_eng_ucode(const nrt_ucode_info *ucode_info);
/* Copies size bytes from src to dest, a mapping of device memory (nrt_get_hbm_mmap_va). */
NRT_STATUS nrt_memcpy_to_device(void *dest, const void *src, size_t size);

#ifdef __cplusplus
}
#endif
