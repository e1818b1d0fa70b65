/*
 * neuron-rt project: asynchronous tensor send/receive between logical cores of different
 * instances (peers named by IP address and logical core). Written for this project from
 * shared/nrt-abi.md.
 * Sources (two for every prototype and layout, nrt-abi.md section 7): the vendor's
 * public headers (aws-neuron/aws-neuron-sdk, src/libnrt/include/nrt/nrt_async_sendrecv.h)
 * and its API reference pages (neuron-runtime/api/nrt_async_sendrecv.rst).
 *
 * Order of use: init the local core, connect (sender) or accept (receiver), poll the
 * communicator with test_comm until connected, then send_tensor / recv_tensor and poll
 * each request with test_request until done; flush on the receiver; close the core before
 * nrt_close.
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

typedef struct nrt_async_sendrecv_comm nrt_async_sendrecv_comm_t;
typedef struct nrt_async_sendrecv_request nrt_async_sendrecv_request_t;

/* Limits: communicators per logical core, pending requests per communicator. */
NRT_STATUS nrt_async_sendrecv_get_max_num_communicators_per_lnc(int *num);
NRT_STATUS nrt_async_sendrecv_get_max_num_pending_request(int *num);

NRT_STATUS nrt_async_sendrecv_init(int lnc);
/* Ends every communicator and request of the core. */
NRT_STATUS nrt_async_sendrecv_close(int lnc);

/* A send communicator from local core lnc to peer_lnc at peer_ip. */
NRT_STATUS nrt_async_sendrecv_connect(const char *peer_ip, int peer_lnc, int lnc,
                                      nrt_async_sendrecv_comm_t **send_comm);
/* A receive communicator on local core lnc for peer_lnc at peer_ip. */
NRT_STATUS nrt_async_sendrecv_accept(const char *peer_ip, int peer_lnc, int lnc,
                                     nrt_async_sendrecv_comm_t **recv_comm);
/* *done: the connection is established. */
NRT_STATUS nrt_async_sendrecv_test_comm(nrt_async_sendrecv_comm_t *comm, bool *done);

/* Start moving length bytes at offset of tensor; non-blocking. */
NRT_STATUS nrt_async_sendrecv_send_tensor(nrt_tensor_t *tensor, size_t offset, size_t length,
                                          nrt_async_sendrecv_comm_t *send_comm,
                                          nrt_async_sendrecv_request_t **request);
NRT_STATUS nrt_async_sendrecv_recv_tensor(nrt_tensor_t *tensor, size_t offset, size_t length,
                                          nrt_async_sendrecv_comm_t *recv_comm,
                                          nrt_async_sendrecv_request_t **request);
/* *done: the request completed (*size bytes moved); a completed request is not tested again. */
NRT_STATUS nrt_async_sendrecv_test_request(nrt_async_sendrecv_request_t *request, bool *done, size_t *size);
/* Makes the bytes of every completed receive of core lnc visible in memory. */
NRT_STATUS nrt_async_sendrecv_flush(int lnc);

#ifdef __cplusplus
}
#endif
