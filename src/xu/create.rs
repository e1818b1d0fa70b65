//! Making execution units: [`Runtime::exec_unit`] and its shorthands per kind. Apart
//! from the queue state (`queue.rs`) so that starting the release thread of dropped
//! requests (`detached.rs`, which knows the queue state) creates no import circle.

use std::sync::Arc;

use super::detached;
use super::kind::XuKind;
use super::queue::ExecUnit;
use crate::error::{Error, Result};
use crate::objects::{Capabilities, Runtime};

impl Runtime {
    /// The COMPUTE unit of NeuronCore `core` (it has one queue), which runs models
    /// loaded on that core.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn compute_unit(&self, core: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::Compute, 0)
    }

    /// TENSOR_OP queue `queue` (0 or 1) of NeuronCore `core`, which moves data between
    /// host memory and tensors on that core.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn tensor_op_unit(&self, core: u32, queue: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::TensorOp, queue)
    }

    /// COLLECTIVES queue `queue` (0 to 2) of NeuronCore `core`.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn collectives_unit(&self, core: u32, queue: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::Collectives, queue)
    }

    /// The execution unit `(core, kind, queue)`.
    ///
    /// # Errors
    ///
    /// * [`Error::Unsupported`] unless the library offers the async API v3 (runtime
    ///   library >= 2.31, see [`Capabilities::ASYNC_V3`]); an older library is never
    ///   called through the v3 signatures;
    /// * [`Error::InvalidArgument`] if `core` is not below the number of visible cores,
    ///   or `queue` is not below [`XuKind::queue_count`]; nothing is called then;
    /// * [`Error::Nrt`] if libnrt rejects the unit (`nrta_get_sequence`).
    pub fn exec_unit(&self, core: u32, kind: XuKind, queue: u32) -> Result<ExecUnit> {
        self.require(Capabilities::ASYNC_V3, "the async API (execution units)")?;
        let cores = self.visible_core_count()?;
        // Cores are passed to libnrt as C ints (lnc_idx); no instance has 2^31 cores.
        if core >= cores || i32::try_from(core).is_err() {
            return Err(Error::invalid(
                "core",
                format!("core {core} is not visible: this runtime has {cores} visible cores"),
            ));
        }
        if queue >= kind.queue_count() {
            return Err(Error::invalid(
                "queue",
                format!(
                    "{kind} units have queues 0..{}, got {queue}",
                    kind.queue_count()
                ),
            ));
        }
        let state = self.inner.units.state(self, cores, core, kind, queue)?;
        // The thread that releases dropped, incomplete requests: started with the first
        // unit, so that neither a request's schedule nor its drop starts it.
        detached::start();
        log::debug!("execution unit created: {kind} queue {queue} on core {core}");
        Ok(ExecUnit::new(self.clone(), Arc::clone(state)))
    }
}
