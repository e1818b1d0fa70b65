//! Only nrt-sim is driven as nrt-sim: `nrt_sim::library()` cannot be taken over by a table
//! built under its name, and `SimControl` is refused for anything that is not nrt-sim.
//!
//! Its own test binary: the first test registers a table named "nrt-sim" before anything
//! else in the process has called `nrt_sim::library()`.

use nrt_sim::SimControl;
use nrt_sim::control::NRT_SIM_IDENTITY;
use nrt_sys::{Library, NrtFns, Origin};
use std::ffi::{CStr, c_void};
use std::path::PathBuf;
use std::process::Command;

/// An empty table whose lookup answers the `nrt_sim_*` names with nrt-sim's own functions.
fn sim_controls_only(name: &CStr) -> *mut c_void {
    if name.to_bytes().starts_with(b"nrt_sim_") {
        nrt_sim::symbol_lookup(name)
    } else {
        std::ptr::null_mut()
    }
}

#[test]
fn a_table_named_nrt_sim_registered_first_does_not_become_the_simulator() {
    // SAFETY: an empty table; the lookup answers only with nrt-sim's own control
    // functions, which behave as nrt-sim's (they are).
    let forged =
        unsafe { Library::in_process("nrt-sim", NrtFns::default(), Some(sim_controls_only)) };
    let real = nrt_sim::library();
    assert!(!std::ptr::eq(forged, real));
    assert!(std::ptr::eq(real, nrt_sim::library()));
    assert!(real.fns().nrt_init.is_some() && forged.fns().nrt_init.is_none());
    assert_eq!(real.origin(), &Origin::InProcess("nrt-sim"));
    assert!(SimControl::new(real).is_some());
    // Answers every nrt_sim_* name, and still is not the simulator.
    assert!(forged.has_symbol(c"nrt_sim_identity"));
    assert!(SimControl::new(forged).is_none());
}

#[test]
fn a_loaded_library_without_the_identity_is_not_nrt_sim() {
    // libm: a system library every glibc Linux has, exporting no nrt_sim_* name.
    let libm = Library::open("libm.so.6").unwrap();
    assert!(SimControl::new(libm).is_none());
}

#[test]
fn a_loaded_library_with_another_identity_is_not_nrt_sim() {
    // Exports every control function, but its identity is of another interface version.
    let source = format!(
        "#include <stdint.h>\n\
         #include <stddef.h>\n\
         uint64_t nrt_sim_identity(void) {{ return {:#x}ULL; }}\n\
         int nrt_sim_get_counters(void *c, size_t s) {{ (void)c; (void)s; return 1; }}\n\
         int nrt_sim_get_core_counters(uint32_t v, void *c, size_t s) {{ (void)v; (void)c; (void)s; return 1; }}\n\
         int nrt_sim_inject_faults(const char *s) {{ (void)s; return 1; }}\n\
         void nrt_sim_clear_faults(void) {{}}\n\
         const char *nrt_sim_last_error(void) {{ return NULL; }}\n",
        NRT_SIM_IDENTITY + 1
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nrt-sim-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, so) = (dir.join("other.c"), dir.join("libother_sim.so"));
    std::fs::write(&c, source).unwrap();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
        .arg(&c)
        .arg("-o")
        .arg(&so)
        .status()
        .expect("a C compiler (cc) is needed to build the stand-in");
    assert!(status.success());
    let lib = Library::open(&so).unwrap();
    assert!(lib.has_symbol(c"nrt_sim_clear_faults"));
    assert!(SimControl::new(lib).is_none());
}

#[test]
fn the_dlopened_simulator_is_nrt_sim_with_its_own_state() {
    let path = nrt_sim::cdylib_path().expect("libnrt_sim.so next to the test binary");
    let lib = Library::open(&path).unwrap();
    assert!(
        !lib.defines_symbol_versions(),
        "the cdylib has no version script"
    );
    let control = SimControl::new(lib).expect("libnrt_sim.so is nrt-sim");
    // Its own state: never initialised in this process.
    assert!(!control.counters().open);
    assert_eq!(control.last_error(), None);
    control.clear_faults();
}
