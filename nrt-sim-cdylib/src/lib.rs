//! `libnrt_sim.so`: the simulated libnrt as a shared library, a drop-in for
//! `libnrt.so.1` (`LIBNRT_PATH=.../libnrt_sim.so`, or linked with `-lnrt_sim`).
//!
//! Nothing is defined here: every C function (`nrt_*`, `nrta_*`, `nrt_sim_*`) is nrt-sim's
//! own `#[no_mangle]` export, which rustc exports from a cdylib for the crates it links.
//! The lookup below references every one of them, so that the linker keeps them all.

/// Every exported function (the symbol lookup names them all), referenced so that none
/// is left out of the library.
#[used]
static EXPORTS: fn(&std::ffi::CStr) -> *mut std::ffi::c_void = sim::symbol_lookup;
