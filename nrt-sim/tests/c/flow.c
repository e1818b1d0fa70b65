/*
 * The canonical libnrt flows in C, against nrt-sim:
 *   sync:  init, load a model file, tensor info, allocate, build sets, write, execute,
 *          read, check, free, unload, close;
 *   async: schedule three executions, poll nrta_get_sequence, check every ret, read the
 *          outputs back with async reads;
 *   tensor ops and events: the 8/9-argument nrta_tensor_write/read/copy (lnc_idx before
 *          queue), and completion eventfds of one request and of one unit, read(2)
 *          and deregistered.
 * Usage: flow MODEL_FILE   (the model: out = a + b, f32, any shape; see c_flow.rs)
 * Exit status 0 when every check passes; each failure prints the line and the
 * simulator's last error.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "nrt/nrt.h"
#include "nrt/nrt_async.h"
#include "nrt/nrt_experimental.h"
#include "nrt/nrt_status.h"
#include "nrt/nrt_version.h"
#include "nrt_sim.h"

static int failures = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            const char *why = nrt_sim_last_error();                                    \
            fprintf(stderr, "flow.c:%d: check failed: %s (last error: %s)\n", __LINE__, \
                    #cond, why ? why : "none");                                        \
            failures++;                                                                \
        }                                                                              \
    } while (0)

#define CHECK_OK(call) CHECK((call) == NRT_SUCCESS)

static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}

static void pause_briefly(void) {
    struct timespec ts = {0, 200000}; /* 0.2 ms */
    nanosleep(&ts, NULL);
}

/* Model tensors, allocated from the model's own tensor info. */
typedef struct {
    nrt_tensor_info_array_t *info;
    nrt_tensor_t **tensors;
    nrt_tensor_set_t *inputs;
    nrt_tensor_set_t *outputs;
} bound_t;

static void bind_model(nrt_model_t *model, bound_t *b) {
    CHECK_OK(nrt_get_model_tensor_info(model, &b->info));
    uint64_t n = b->info->tensor_count;
    CHECK(n == 3);
    b->tensors = calloc(n, sizeof(nrt_tensor_t *));
    CHECK_OK(nrt_allocate_tensor_set(&b->inputs));
    CHECK_OK(nrt_allocate_tensor_set(&b->outputs));
    for (uint64_t i = 0; i < n; i++) {
        nrt_tensor_info_t *t = &b->info->tensor_array[i];
        CHECK(t->dtype == NRT_DTYPE_FLOAT32);
        CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, t->size, t->name, &b->tensors[i]));
        nrt_tensor_set_t *set = t->usage == NRT_TENSOR_USAGE_INPUT ? b->inputs : b->outputs;
        CHECK_OK(nrt_add_tensor_to_tensor_set(set, t->name, b->tensors[i]));
    }
}

static void unbind(bound_t *b) {
    for (uint64_t i = 0; i < b->info->tensor_count; i++) {
        nrt_tensor_free(&b->tensors[i]);
        CHECK(b->tensors[i] == NULL);
    }
    free(b->tensors);
    nrt_destroy_tensor_set(&b->inputs);
    nrt_destroy_tensor_set(&b->outputs);
    CHECK(b->inputs == NULL && b->outputs == NULL);
    CHECK_OK(nrt_free_model_tensor_info(b->info));
}

static size_t find(const bound_t *b, const char *name) {
    for (uint64_t i = 0; i < b->info->tensor_count; i++)
        if (strcmp(b->info->tensor_array[i].name, name) == 0) return (size_t)i;
    fprintf(stderr, "model has no tensor %s\n", name);
    exit(2);
}

static void sync_flow(nrt_model_t *model) {
    bound_t b;
    bind_model(model, &b);
    size_t ia = find(&b, "a"), ib = find(&b, "b"), io = find(&b, "out");
    size_t bytes = b.info->tensor_array[ia].size, n = bytes / sizeof(float);
    float *a = malloc(bytes), *bv = malloc(bytes), *out = malloc(bytes);
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)i;
        bv[i] = 10.0f * (float)i + 0.5f;
    }
    CHECK_OK(nrt_tensor_write(b.tensors[ia], a, 0, bytes));
    CHECK_OK(nrt_tensor_write(b.tensors[ib], bv, 0, bytes));
    CHECK_OK(nrt_execute(model, b.inputs, b.outputs));
    CHECK_OK(nrt_tensor_read(b.tensors[io], out, 0, bytes));
    for (size_t i = 0; i < n; i++) CHECK(out[i] == a[i] + bv[i]);
    /* An out-of-range read is refused and names the numbers. */
    CHECK(nrt_tensor_read(b.tensors[io], out, 1, bytes) == NRT_INVALID);
    CHECK(strstr(nrt_sim_last_error(), "past the end") != NULL);
    free(a);
    free(bv);
    free(out);
    unbind(&b);
}

static void async_flow(nrt_model_t *model) {
    enum { RUNS = 3 };
    bound_t b[RUNS];
    float *results[RUNS];
    NRT_STATUS ret[RUNS], read_ret[RUNS];
    nrta_seq_t seq[RUNS], read_seq[RUNS];
    size_t bytes = 0, n = 0;
    for (int r = 0; r < RUNS; r++) {
        bind_model(model, &b[r]);
        size_t ia = find(&b[r], "a"), ib = find(&b[r], "b");
        bytes = b[r].info->tensor_array[ia].size;
        n = bytes / sizeof(float);
        float *a = malloc(bytes), *bv = malloc(bytes);
        for (size_t i = 0; i < n; i++) {
            a[i] = (float)(r + 1);
            bv[i] = (float)i;
        }
        CHECK_OK(nrt_tensor_write(b[r].tensors[ia], a, 0, bytes));
        CHECK_OK(nrt_tensor_write(b[r].tensors[ib], bv, 0, bytes));
        free(a);
        free(bv);
    }
    for (int r = 0; r < RUNS; r++) {
        ret[r] = 12345;
        CHECK_OK(nrta_execute_schedule(model, b[r].inputs, b[r].outputs, 0, &ret[r], &seq[r]));
        CHECK(NRTA_SEQ_GET_SEQ_NUM(seq[r]) == (uint64_t)(r + 1));
        CHECK(NRTA_SEQ_GET_XU_ID(seq[r]) == NRTA_XU_COMPUTE);
    }
    /* An id the queue never issued is rejected. */
    bool done = false;
    CHECK(nrta_is_completed(seq[RUNS - 1] + 100, &done) == NRT_INVALID);
    /* Poll the last completed id of the compute queue until all three are done. */
    nrta_seq_t last = 0;
    for (int spins = 0; spins < 50000; spins++) {
        CHECK_OK(nrta_get_sequence(0, NRTA_XU_COMPUTE, 0, &last));
        if (last >= seq[RUNS - 1]) break;
        pause_briefly();
    }
    CHECK(last == seq[RUNS - 1]);
    for (int r = 0; r < RUNS; r++) {
        CHECK_OK(nrta_is_completed(seq[r], &done));
        CHECK(done);
        CHECK(ret[r] == NRT_SUCCESS);
    }
    /* Read the outputs back on both TENSOR_OP queues. */
    for (int r = 0; r < RUNS; r++) {
        results[r] = malloc(bytes);
        read_ret[r] = 12345;
        CHECK_OK(nrta_tensor_read(results[r], b[r].tensors[find(&b[r], "out")], 0, bytes, 0, r % 2,
                                  &read_ret[r], &read_seq[r]));
    }
    for (int r = 0; r < RUNS; r++) {
        for (int spins = 0; spins < 50000; spins++) {
            CHECK_OK(nrta_is_completed(read_seq[r], &done));
            if (done) break;
            pause_briefly();
        }
        CHECK(done && read_ret[r] == NRT_SUCCESS);
        for (size_t i = 0; i < n; i++) CHECK(results[r][i] == (float)(r + 1) + (float)i);
        free(results[r]);
    }
    for (int r = 0; r < RUNS; r++) unbind(&b[r]);
}

/* Waits (at most 20 s) until fd is readable, then returns its counter (0 on timeout). */
static uint64_t read_event(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 20000) != 1) return 0;
    uint64_t count = 0;
    if (read(fd, &count, sizeof count) != (ssize_t)sizeof count) return 0;
    return count;
}

static void tensor_op_and_event_flow(nrt_model_t *model) {
    enum { BYTES = 64 };
    unsigned char src[BYTES], back[BYTES];
    for (int i = 0; i < BYTES; i++) src[i] = (unsigned char)(3 * i);
    nrt_tensor_t *host = NULL, *dev0 = NULL;
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_HOST, -1, BYTES, "host", &host));
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, BYTES, "dev0", &dev0));

    /* A host tensor moves on the unit lnc_idx names: core 1, TENSOR_OP queue 1. */
    NRT_STATUS ret = 12345;
    nrta_seq_t seq = 0;
    bool done = false;
    CHECK_OK(nrta_tensor_write(host, src, 0, BYTES, 1, 1, &ret, &seq));
    CHECK(NRTA_SEQ_GET_XU_ID(seq) == (NRTA_XU_TENSOR_OP | 1 << 4 | 1 << 8));
    int seq_fd = eventfd(0, EFD_CLOEXEC);
    CHECK(seq_fd >= 0);
    CHECK_OK(nrta_event_register_seq_id_completion(seq, seq_fd));
    CHECK(read_event(seq_fd) == 1);
    CHECK_OK(nrta_is_completed(seq, &done));
    CHECK(done && ret == NRT_SUCCESS);

    /* Copy to a device tensor of core 0 on core 0's engine (9 arguments); another core's
     * engine is refused and writes nothing. */
    ret = 12345;
    CHECK(nrta_tensor_copy(host, 0, dev0, 0, BYTES, 1, 0, &ret, &seq) == NRT_INVALID);
    CHECK(ret == 12345);
    CHECK_OK(nrta_tensor_copy(host, 0, dev0, 0, BYTES, 0, 0, &ret, &seq));
    CHECK_OK(nrta_event_register_seq_id_completion(seq, seq_fd));
    CHECK(read_event(seq_fd) == 1);
    CHECK(ret == NRT_SUCCESS);
    ret = 12345;
    CHECK_OK(nrta_tensor_read(back, dev0, 0, BYTES, 0, 1, &ret, &seq));
    CHECK_OK(nrta_event_register_seq_id_completion(seq, seq_fd));
    CHECK(read_event(seq_fd) == 1);
    CHECK(ret == NRT_SUCCESS && memcmp(src, back, BYTES) == 0);

    /* Every completion of core 0's COMPUTE queue signals its unit eventfd. */
    int xu_fd = eventfd(0, EFD_CLOEXEC);
    CHECK(xu_fd >= 0);
    CHECK_OK(nrta_event_register_xu_completion(0, NRTA_XU_COMPUTE, 0, xu_fd));
    bound_t b;
    bind_model(model, &b);
    ret = 12345;
    CHECK_OK(nrta_execute_schedule(model, b.inputs, b.outputs, 0, &ret, &seq));
    uint64_t signals = read_event(xu_fd);
    CHECK(signals == 1);
    nrta_seq_t last = 0;
    CHECK_OK(nrta_get_sequence(0, NRTA_XU_COMPUTE, 0, &last));
    CHECK(last == seq && ret == NRT_SUCCESS);
    /* A completed request signals at once. */
    CHECK_OK(nrta_event_register_seq_id_completion(seq, seq_fd));
    CHECK(read_event(seq_fd) == 1);
    /* Deregister before closing; unknown units and ids are refused. */
    CHECK_OK(nrta_event_register_xu_completion(0, NRTA_XU_COMPUTE, 0, -1));
    CHECK_OK(nrta_event_register_seq_id_completion(seq, -1));
    CHECK(nrta_event_register_xu_completion(0, NRTA_XU_COMPUTE, 1, xu_fd) == NRT_INVALID);
    CHECK(nrta_event_register_seq_id_completion(seq + 1000, seq_fd) == NRT_INVALID);
    close(xu_fd);
    close(seq_fd);
    unbind(&b);
    nrt_tensor_free(&host);
    nrt_tensor_free(&dev0);
}

/* A periodic fault through the control interface: every 2nd allocation fails, and the
 * count of injected faults says so. */
static void fault_flow(void) {
    uint64_t injected = nrt_sim_faults_injected();
    CHECK_OK(nrt_sim_inject_faults("alloc:every=2"));
    nrt_tensor_t *first = NULL, *second = NULL;
    CHECK_OK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_HOST, -1, 8, "first", &first));
    CHECK(nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_HOST, -1, 8, "second", &second) ==
          NRT_RESOURCE);
    CHECK(second == NULL);
    CHECK(nrt_sim_faults_injected() == injected + 1);
    nrt_sim_clear_faults();
    nrt_tensor_free(&first);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_FILE\n", argv[0]);
        return 2;
    }
    CHECK(sizeof(nrt_sim_counters_t) == 40);
    CHECK(sizeof(nrt_sim_core_counters_t) == 96);
    CHECK(sizeof(nrt_sim_clock_stats_t) == 56);
    CHECK(nrt_sim_identity() == NRT_SIM_IDENTITY);
    size_t size = 0;
    void *neff = read_file(argv[1], &size);
    if (!neff) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    CHECK(nrt_load(neff, size, 0, -1, NULL) == NRT_UNINITIALIZED);
    CHECK_OK(nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, "", ""));
    nrt_version_t ver;
    CHECK_OK(nrt_get_version(&ver, sizeof ver));
    CHECK(ver.rt_major == 2 && ver.rt_minor >= 31);

    nrt_model_t *model = NULL;
    CHECK_OK(nrt_load(neff, size, 0, -1, &model));
    free(neff);
    if (!model) return 1;
    sync_flow(model);
    async_flow(model);
    tensor_op_and_event_flow(model);
    fault_flow();
    CHECK_OK(nrt_unload(model));

    nrt_sim_counters_t counters;
    nrt_sim_core_counters_t core;
    CHECK_OK(nrt_sim_get_counters(&counters, sizeof counters));
    CHECK_OK(nrt_sim_get_core_counters(0, &core, sizeof core));
    CHECK(counters.open == 1 && counters.tensor_sets == 0 && counters.host_tensors == 0);
    CHECK(core.models == 0 && core.tensors == 0 && core.device_bytes == 0);
    CHECK(core.executions == 5 && core.failed_executions == 0 && core.tensor_ops == 5);
    nrt_close();
    CHECK_OK(nrt_sim_get_counters(&counters, sizeof counters));
    CHECK(counters.open == 0 && counters.live_at_last_close == 0);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c flow: sync, async and events passed\n");
    return 0;
}
