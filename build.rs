//! Build script of neuron-rt: with feature `link`, link libnrt at build time.
//!
//! The link request is made here rather than in nrt-sys (which gets feature `linked`:
//! declarations only), so that it reaches the programs built on this crate and never
//! nrt-sim's cdylib, which depends on nrt-sys too and would otherwise be linked against
//! libnrt (or fail to link where there is none).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_LINK").is_none() {
        return;
    }
    println!("cargo::rerun-if-env-changed=LIBNRT_LIB_DIR");
    let dir = env::var_os("LIBNRT_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/aws/neuron/lib"));
    println!("cargo::rustc-link-search=native={}", dir.display());
    println!("cargo::rustc-link-lib=dylib=nrt");
    // For this crate's own tests and examples; programs set their rpath themselves (or
    // find libnrt through the dynamic linker's path).
    println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
