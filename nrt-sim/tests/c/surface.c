/*
 * The profiling, debug and transfer surface from C, against the project's headers and
 * libnrt_sim.so (driven by tests/c_flow.rs):
 *   surface observe <model> <dir>   system trace, debug stream, dma-buf, inspect and
 *                                   continuous profiling in one runtime
 *   surface recv | surface send     the two ends of a send/recv transfer, run as two
 *                                   processes (NRT_SIM_SENDRECV_PORT set by the caller)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nrt/nrt.h"
#include "nrt/nrt_experimental.h"
#include "nrt/nrt_profile.h"
#include "nrt/nrt_sys_trace.h"
#include "nrt/ndebug_stream.h"
#include "nrt/nrt_async_sendrecv.h"
#include "nrt_sim.h"

static int failures = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            const char *why = nrt_sim_last_error();                                       \
            fprintf(stderr, "surface.c:%d: check failed: %s (last error: %s)\n", __LINE__, \
                    #cond, why ? why : "none");                                           \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

#define CHECK_OK(call) CHECK((call) == NRT_SUCCESS)

static void nap(void) {
    struct timespec ts = {0, 1000000}; /* 1 ms */
    nanosleep(&ts, NULL);
}

static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void observe(const char *model_path, const char *dir) {
    FILE *f = fopen(model_path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    static char neff[1 << 16];
    size_t size = fread(neff, 1, sizeof neff, f);
    fclose(f);
    CHECK_OK(nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, "", ""));

    /* System trace: two executions give two nc_exec_running spans of core 0. */
    nrt_sys_trace_config_t *cfg = NULL;
    CHECK_OK(nrt_sys_trace_config_allocate(&cfg));
    nrt_sys_trace_config_set_defaults(cfg);
    CHECK_OK(nrt_sys_trace_start(cfg));
    nrt_model_t *model = NULL;
    CHECK_OK(nrt_load(neff, size, 0, -1, &model));
    nrt_tensor_t *a = NULL, *b = NULL, *out = NULL;
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, 24, "a", &a));
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, 24, "b", &b));
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, 24, "out", &out));
    nrt_tensor_set_t *in = NULL, *outs = NULL;
    CHECK_OK(nrt_allocate_tensor_set(&in));
    CHECK_OK(nrt_allocate_tensor_set(&outs));
    CHECK_OK(nrt_add_tensor_to_tensor_set(in, "a", a));
    CHECK_OK(nrt_add_tensor_to_tensor_set(in, "b", b));
    CHECK_OK(nrt_add_tensor_to_tensor_set(outs, "out", out));
    float ones[6] = {1, 1, 1, 1, 1, 1};
    CHECK_OK(nrt_tensor_write(a, ones, 0, sizeof ones));
    CHECK_OK(nrt_tensor_write(b, ones, 0, sizeof ones));
    CHECK_OK(nrt_execute(model, in, outs));
    CHECK_OK(nrt_execute(model, in, outs));
    char *json = NULL;
    size_t len = 0;
    CHECK_OK(nrt_sys_trace_fetch_events(&json, &len, NULL));
    CHECK(json != NULL && strlen(json) == len);
    if (json) {
        CHECK(count(json, "\"type\":\"nc_exec_running\"") == 2);
        CHECK(count(json, "\"type\":\"nrt_execute\"") == 2);
        CHECK(count(json, "\"type\":\"nrt_load\"") == 1);
        nrt_sys_trace_buffer_free(json);
    }
    CHECK_OK(nrt_sys_trace_stop());
    nrt_sys_trace_config_free(cfg);

    /* Debug stream: a read of a device tensor of core 0 is one event. */
    int fd = -1;
    CHECK_OK(nrt_debug_client_connect(0, &fd));
    float got[6];
    CHECK_OK(nrt_tensor_read(out, got, 0, sizeof got));
    CHECK(got[0] == 2.0f);
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(poll(&p, 1, 1000) == 1);
    ndebug_stream_event_header_t header;
    void *payload = NULL;
    CHECK_OK(nrt_debug_client_read_one_event(fd, &header, &payload));
    CHECK(header.type == NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ);
    if (payload) {
        ndebug_stream_payload_debug_tensor_read_t *r = payload;
        CHECK(strcmp(r->prefix, "out") == 0 && r->tensor_data_size == sizeof got);
        CHECK(memcmp(r->tensor_data, got, sizeof got) == 0);
        free(payload);
    }
    nrt_debug_client_connect_close(fd);

    /* dma-buf: a descriptor over the output's bytes. */
    nrt_tensor_device_allocation_info_t info;
    CHECK_OK(nrt_tensor_get_device_allocation_info(out, &info));
    int dmabuf = -1;
    CHECK_OK(nrt_get_dmabuf_fd(info.physical_address, sizeof got, &dmabuf));
    float exported[6] = {0};
    CHECK(read(dmabuf, exported, sizeof exported) == (ssize_t)sizeof exported);
    CHECK(memcmp(exported, got, sizeof got) == 0);
    close(dmabuf);

    /* Inspect: one capture file under <dir>/inspect/session_3. */
    char path[4096];
    snprintf(path, sizeof path, "%s/inspect", dir);
    nrt_inspect_config_t *icfg = NULL;
    CHECK_OK(nrt_inspect_config_allocate(&icfg));
    CHECK_OK(nrt_inspect_config_set_output_dir(icfg, path));
    CHECK_OK(nrt_inspect_config_set_session_id(icfg, 3));
    CHECK_OK(nrt_inspect_config_set_enable_inspect(icfg, true));
    CHECK_OK(nrt_inspect_begin_with_options(icfg));
    CHECK_OK(nrt_execute(model, in, outs));
    CHECK_OK(nrt_inspect_stop());
    CHECK_OK(nrt_inspect_config_free(icfg));
    snprintf(path, sizeof path, "%s/inspect/session_3", dir);
    CHECK(files_in(path) == 1);

    /* Continuous profiling: a file per save. */
    snprintf(path, sizeof path, "%s/continuous", dir);
    nrt_profile_continuous_options_t *copt = NULL;
    CHECK_OK(nrt_profile_continuous_options_allocate(&copt));
    CHECK_OK(nrt_profile_continuous_options_set_output_dir(copt, path));
    CHECK_OK(nrt_profile_continuous_start(copt));
    CHECK_OK(nrt_execute(model, in, outs));
    CHECK_OK(nrt_profile_continuous_save(0, copt));
    CHECK_OK(nrt_profile_continuous_stop());
    CHECK_OK(nrt_profile_continuous_options_free(copt));
    CHECK(files_in(path) == 1);

    nrt_destroy_tensor_set(&in);
    nrt_destroy_tensor_set(&outs);
    nrt_tensor_free(&a);
    nrt_tensor_free(&b);
    nrt_tensor_free(&out);
    CHECK_OK(nrt_unload(model));
    nrt_close();
}

/* The receiver is core 1 of its runtime, the sender core 0 of its own. */
static void transfer(bool send) {
    CHECK_OK(nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, "", ""));
    int lnc = send ? 0 : 1, peer = send ? 1 : 0;
    uint8_t bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)(i * 3);
    nrt_tensor_t *t = NULL;
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, lnc, sizeof bytes, "kv", &t));
    if (send) CHECK_OK(nrt_tensor_write(t, bytes, 0, sizeof bytes));
    CHECK_OK(nrt_async_sendrecv_init(lnc));
    nrt_async_sendrecv_comm_t *comm = NULL;
    if (send)
        CHECK_OK(nrt_async_sendrecv_connect("127.0.0.1", peer, lnc, &comm));
    else
        CHECK_OK(nrt_async_sendrecv_accept("127.0.0.1", peer, lnc, &comm));
    bool done = false;
    for (int i = 0; i < 20000 && !done; i++) {
        CHECK_OK(nrt_async_sendrecv_test_comm(comm, &done));
        if (!done) nap();
    }
    CHECK(done);
    nrt_async_sendrecv_request_t *req = NULL;
    if (send)
        CHECK_OK(nrt_async_sendrecv_send_tensor(t, 0, sizeof bytes, comm, &req));
    else
        CHECK_OK(nrt_async_sendrecv_recv_tensor(t, 0, sizeof bytes, comm, &req));
    size_t moved = 0;
    done = false;
    for (int i = 0; i < 20000 && !done; i++) {
        CHECK_OK(nrt_async_sendrecv_test_request(req, &done, &moved));
        if (!done) nap();
    }
    CHECK(done && moved == sizeof bytes);
    if (!send) {
        CHECK_OK(nrt_async_sendrecv_flush(lnc));
        uint8_t got[256] = {0};
        CHECK_OK(nrt_tensor_read(t, got, 0, sizeof got));
        CHECK(memcmp(got, bytes, sizeof got) == 0);
    }
    CHECK_OK(nrt_async_sendrecv_close(lnc));
    nrt_tensor_free(&t);
    nrt_close();
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "observe") == 0)
        observe(argv[2], argv[3]);
    else if (argc == 2 && (strcmp(argv[1], "send") == 0 || strcmp(argv[1], "recv") == 0))
        transfer(strcmp(argv[1], "send") == 0);
    else {
        fprintf(stderr, "usage: surface observe <model> <dir> | send | recv\n");
        return 2;
    }
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("surface %s passed\n", argv[1]);
    return 0;
}
