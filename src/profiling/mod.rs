//! Profiling and observation: device profiles of a model ([`ProfileGuard`](crate::ProfileGuard)),
//! the system trace ([`SysTrace`](crate::SysTrace)), device-timed benchmarks
//! ([`Model::benchmark_device`](crate::Model::benchmark_device)), inspect and continuous
//! profiling sessions, and the debug stream / dma-buf export of tensors.

pub(crate) mod bench_device;
pub(crate) mod debug_stream;
pub(crate) mod inspect;
pub(crate) mod profile;
pub(crate) mod spans;
pub(crate) mod trace;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A facility libnrt runs once per process (a system trace, an inspect session,
/// continuous profiling), held by one wrapper at a time and released exactly once, by
/// its `stop` or its drop.
#[derive(Debug)]
pub(crate) struct Claim {
    flag: &'static AtomicBool,
    held: bool,
}

impl Claim {
    /// Claims `flag` and runs `start`; the claim is given back when `start` fails.
    /// [`Error::InvalidArgument`] for `argument` with `busy` while another holds it.
    pub(crate) fn start(
        flag: &'static AtomicBool,
        argument: &'static str,
        busy: &str,
        start: impl FnOnce() -> Result<()>,
    ) -> Result<Claim> {
        if flag.swap(true, Ordering::AcqRel) {
            return Err(Error::invalid(argument, busy));
        }
        if let Err(e) = start() {
            flag.store(false, Ordering::Release);
            return Err(e);
        }
        Ok(Claim { flag, held: true })
    }

    /// Runs `stop` and gives the claim back, the first time only (later calls are `Ok`);
    /// the claim is given back whatever `stop` returns.
    pub(crate) fn stop(&mut self, stop: impl FnOnce() -> Result<()>) -> Result<()> {
        if !std::mem::replace(&mut self.held, false) {
            return Ok(());
        }
        let result = stop();
        self.flag.store(false, Ordering::Release);
        result
    }
}
