/*
 * A stand-in libnrt exporting a few functions, built by tests/loader.rs twice:
 * with -DFAKE_A (lifecycle + version) and -DFAKE_B (status strings + one async call).
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
