//! Safe Rust API over libnrt (in progress).
