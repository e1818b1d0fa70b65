//! Feature `link`: the libnrt linked at build time, as a [`Library`].

use std::sync::OnceLock;

use nrt_sys::{Library, NrtFns};

use super::runtime::RuntimeBuilder;

impl RuntimeBuilder {
    /// Uses the libnrt linked at build time (feature `link`: `-lnrt` from
    /// `LIBNRT_LIB_DIR`, default `/opt/aws/neuron/lib`) instead of loading one at run time.
    #[cfg_attr(docsrs, doc(cfg(feature = "link")))]
    pub fn linked(self) -> RuntimeBuilder {
        static LINKED: OnceLock<&'static Library> = OnceLock::new();
        let lib = LINKED.get_or_init(|| {
            // Why the call below is sound: every entry of `NrtFns::linked()` is the libnrt
            // function of that name, declared from the same headers and resolved by the
            // linker against the libnrt this program was linked with; they stay valid for
            // the life of the process (the library is a load-time dependency).
            // SAFETY: the conditions just above hold for this call.
            unsafe { Library::in_process("libnrt (linked at build time)", NrtFns::linked(), None) }
        });
        self.library(lib)
    }
}
