//! A whole model file as `nrt_load` reads it: the simulator's own model file (a
//! [`Program`] from its payload text), or a real NEFF read for its signature
//! ([`real`](super::real)).

use super::program::Program;
use super::real;
use crate::container;
use nrt_sys::*;

/// Parses a whole model file (container and payload): the simulator's own model
/// file, or a real NEFF (gzip'd tar payload) for its signature, whose hash is checked
/// when `validate_hash` (`NEURON_RT_VALIDATE_HASH`); own files' always is.
pub(crate) fn load(bytes: &[u8], validate_hash: bool) -> Result<Program, (NRT_STATUS, String)> {
    let (header, payload) = container::split(bytes)?;
    if payload.starts_with(&[0x1f, 0x8b]) {
        return real::load(bytes, validate_hash);
    }
    let payload = container::unwrap_own(&header, payload)?;
    Program::parse(payload).map_err(|e| (NRT_INVALID, e))
}
