/*
 * A stand-in libnrt exporting a few functions, built by tests/loader.rs:
 * with -DFAKE_A (lifecycle + version), -DFAKE_B (status strings + one async call), and
 * -DFAKE_V (lifecycle + three async calls + the async v2 marker), the last one with and
 * without linker version scripts that put the functions under version nodes.
 * fake_lib_id() tells the test which one was loaded.
 */
#include <string.h>
#include "nrt/nrt.h"
#include "nrt/nrt_version.h"
#include "nrt/nrt_async.h"

#ifdef FAKE_A
char fake_lib_id(void) { return 'A'; }
NRT_STATUS nrt_init(nrt_framework_type_t framework, const char *fw_version, const char *fal_version) {
    (void)framework; (void)fw_version; (void)fal_version;
    return NRT_SUCCESS;
}
void nrt_close(void) {}
NRT_STATUS nrt_get_version(nrt_version_t *ver, size_t size) {
    if (ver == NULL || size < sizeof(nrt_version_t)) return NRT_INVALID;
    memset(ver, 0, sizeof(*ver));
    ver->rt_major = 7;
    ver->rt_minor = 42;
    return NRT_SUCCESS;
}
#endif

#ifdef FAKE_B
char fake_lib_id(void) { return 'B'; }
const char *nrt_get_status_as_str(NRT_STATUS status) { return status == NRT_SUCCESS ? "fine" : "bad"; }
NRT_STATUS nrta_get_sequence(uint32_t lnc, nrta_xu_t xu, int queue, nrta_seq_t *seq) {
    (void)lnc; (void)xu; (void)queue;
    *seq = 0;
    return NRT_SUCCESS;
}
#endif

#ifdef FAKE_V
char fake_lib_id(void) { return 'V'; }
NRT_STATUS nrt_init(nrt_framework_type_t framework, const char *fw_version, const char *fal_version) {
    (void)framework; (void)fw_version; (void)fal_version;
    return NRT_SUCCESS;
}
void nrt_close(void) {}
/* Answers 3000 + lnc, so a test sees that the call reached this function. */
NRT_STATUS nrta_get_sequence(uint32_t lnc, nrta_xu_t xu, int queue, nrta_seq_t *seq) {
    (void)xu; (void)queue;
    if (seq == NULL) return NRT_INVALID;
    *seq = 3000 + (nrta_seq_t)lnc;
    return NRT_SUCCESS;
}
NRT_STATUS nrta_is_completed(nrta_seq_t seq, bool *is_completed) {
    if (is_completed == NULL) return NRT_INVALID;
    *is_completed = seq == 3000;
    return NRT_SUCCESS;
}
NRT_STATUS nrta_execute_schedule(nrt_model_t *model, const nrt_tensor_set_t *input, nrt_tensor_set_t *output,
                                 int queue, NRT_STATUS *ret, nrta_seq_t *req_sequence) {
    (void)model; (void)input; (void)output; (void)queue; (void)ret; (void)req_sequence;
    return NRT_INVALID_HANDLE;
}
/* The async v2 marker: only its presence matters (its real prototype is not in the headers). */
int nrta_error_tracker_create(void) { return 1; }
#endif
