//! Host-driven collectives on the global communicator: [`Runtime::build_global_comm`]
//! and [`Runtime::barrier`] (`nrt_build_global_comm`, `nrt_barrier`), for a rank given
//! as a [`RankSpec`] (its core, its global rank, the world).

use crate::raw;
use crate::{Capabilities, Error, RankSpec, Result, Runtime};

impl Runtime {
    /// Sets up the global communicator (`nrt_build_global_comm`) for `spec`: core
    /// `spec.core` becomes member `spec.rank` of `spec.world`. Every rank (in this
    /// process or in others, see [`RankSpec::from_env`]) calls it with its own spec;
    /// calling it again with the same spec is harmless.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::COLLECTIVES`] or without the
    /// function; [`Error::InvalidArgument`] naming the values for a core that is not
    /// visible or a bad rank or world; [`Error::Nrt`] if libnrt refuses (e.g. another
    /// world than the communicator's).
    pub fn build_global_comm(&self, spec: RankSpec) -> Result<()> {
        let vnc = self.global_member(spec, "global communicator (nrt_build_global_comm)")?;
        raw::collectives::build_global_comm(self.inner.lib(), vnc, spec.rank, spec.world).map_err(
            |e| {
                e.context(format!(
                    "rank {} of {} on core {}",
                    spec.rank, spec.world, spec.core
                ))
            },
        )
    }

    /// Waits until every rank of `spec.world` entered the barrier (`nrt_barrier`), like
    /// [`std::sync::Barrier::wait`] across cores and processes. Needs no prior
    /// [`Runtime::build_global_comm`].
    ///
    /// # Errors
    ///
    /// As [`Runtime::build_global_comm`]; [`Error::Nrt`] with
    /// [`NrtStatus::ExecHwErrCollectives`](crate::NrtStatus::ExecHwErrCollectives) when
    /// some rank did not come within `NEURON_RT_EXEC_TIMEOUT`.
    pub fn barrier(&self, spec: RankSpec) -> Result<()> {
        let vnc = self.global_member(spec, "barrier (nrt_barrier)")?;
        raw::collectives::barrier(self.inner.lib(), vnc, spec.rank, spec.world).map_err(|e| {
            e.context(format!(
                "rank {} of {} on core {}",
                spec.rank, spec.world, spec.core
            ))
        })
    }

    /// Checks the capability and `spec` (rank below world, a visible core); the core as
    /// libnrt's `vnc`.
    fn global_member(&self, spec: RankSpec, feature: &'static str) -> Result<i32> {
        self.require(Capabilities::COLLECTIVES, feature)?;
        let spec = RankSpec::new(spec.core, spec.rank, spec.world)?;
        if let Ok(visible) = self.visible_core_count()
            && spec.core >= visible
        {
            return Err(Error::invalid(
                "core",
                format!(
                    "core {} of rank {} of {} is not visible ({visible} core(s) are)",
                    spec.core, spec.rank, spec.world
                ),
            ));
        }
        i32::try_from(spec.core).map_err(|_| {
            Error::invalid(
                "core",
                format!("core {} is larger than libnrt accepts", spec.core),
            )
        })
    }
}
