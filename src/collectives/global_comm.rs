//! Host-driven collectives on the global communicator: [`Runtime::build_global_comm`],
//! [`Runtime::barrier`] and [`Runtime::all_gather`] (`nrt_build_global_comm`,
//! `nrt_barrier`, `nrt_all_gather`), for a rank given as a [`RankSpec`] (its core, its
//! global rank, the world).

use crate::collectives::rank_spec::RankSpec;
use crate::dtype::Element;
use crate::dtype::{bytes_of, bytes_of_mut};
use crate::error::{Error, Result};
use crate::objects::{Capabilities, Runtime};
use crate::raw;

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
        raw::collectives::build_global_comm(self.inner.lib(), vnc, spec.rank, spec.world)
            .map_err(in_rank(spec))
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
        raw::collectives::barrier(self.inner.lib(), vnc, spec.rank, spec.world)
            .map_err(in_rank(spec))
    }

    /// Gathers host data from every rank (`nrt_all_gather`): each rank gives `input` (the
    /// same length on every rank) and gets all ranks' inputs back, rank `r`'s at
    /// `r * input.len()`, like an all-gather of MPI or `torch.distributed` but of host
    /// memory (the data does not go through a tensor). Sets the global communicator up
    /// as [`Runtime::build_global_comm`] does. Every rank of `spec.world` must call it,
    /// in this process or in others; it returns when all did.
    ///
    /// ```
    /// # use neuron_rt::{RankSpec, Runtime};
    /// # let rt = Runtime::builder().simulator().build()?;
    /// // Two ranks on cores 0 and 1 of this process, one thread each.
    /// let gathered = std::thread::scope(|s| {
    ///     let ranks: Vec<_> = (0..2u32)
    ///         .map(|rank| {
    ///             let rt = &rt;
    ///             s.spawn(move || rt.all_gather(RankSpec::new(rank, rank, 2)?, &[rank as f32; 3]))
    ///         })
    ///         .collect();
    ///     ranks.into_iter().map(|r| r.join().unwrap()).collect::<Result<Vec<_>, _>>()
    /// })?;
    /// assert_eq!(gathered[0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    /// assert_eq!(gathered[0], gathered[1]);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Runtime::build_global_comm`]; [`Error::InvalidArgument`] for an input of
    /// more than `u32::MAX` bytes, or an output (`world * input.len()` elements) that
    /// does not fit in the address space or in the machine's memory, or cannot be
    /// allocated (checked before anything is allocated); [`Error::Nrt`] with
    /// [`NrtStatus::ExecHwErrCollectives`](crate::NrtStatus::ExecHwErrCollectives) when
    /// some rank did not come within `NEURON_RT_EXEC_TIMEOUT`, or when libnrt refuses
    /// (e.g. ranks giving different lengths).
    pub fn all_gather<T: Element>(&self, spec: RankSpec, input: &[T]) -> Result<Vec<T>> {
        // The rank, world and core first, then whether the output can exist at all:
        // nothing is allocated for a request that is refused.
        self.global_member(spec, "all-gather (nrt_all_gather)")?;
        let cannot = |why: &str| {
            Error::invalid(
                "output",
                format!(
                    "{} elements from each of {} ranks ({} bytes) {why}",
                    input.len(),
                    spec.world,
                    size_of_val(input) as u128 * u128::from(spec.world)
                ),
            )
        };
        let len = input
            .len()
            .checked_mul(spec.world as usize)
            .filter(|&n| {
                n.checked_mul(size_of::<T>())
                    .is_some_and(|b| b <= isize::MAX as usize)
            })
            .ok_or_else(|| cannot("do not fit in the address space"))?;
        let bytes = (len * size_of::<T>()) as u64;
        if physical_memory().is_some_and(|total| bytes > total) {
            return Err(cannot("are more than this machine's memory"));
        }
        let mut output =
            crate::dtype::zeroed_vec::<T>(len).ok_or_else(|| cannot("cannot be allocated"))?;
        self.all_gather_into(spec, input, &mut output)?;
        Ok(output)
    }

    /// As [`Runtime::all_gather`], into `output`, which holds exactly
    /// `spec.world * input.len()` elements (no allocation). After an error, `output`
    /// holds unspecified values.
    ///
    /// # Errors
    ///
    /// As [`Runtime::all_gather`]; [`Error::InvalidArgument`] naming both lengths when
    /// `output` has another length.
    pub fn all_gather_into<T: Element>(
        &self,
        spec: RankSpec,
        input: &[T],
        output: &mut [T],
    ) -> Result<()> {
        let vnc = self.global_member(spec, "all-gather (nrt_all_gather)")?;
        if Some(output.len()) != input.len().checked_mul(spec.world as usize) {
            return Err(Error::invalid(
                "output",
                format!(
                    "{} elements; the all-gather of {} elements from each of {} ranks needs {}",
                    output.len(),
                    input.len(),
                    spec.world,
                    input.len() as u128 * u128::from(spec.world)
                ),
            ));
        }
        // SAFETY: `output` holds `world * input.len()` elements of the same type as
        // `input` (checked above), so its bytes are `world` times the input's.
        unsafe {
            raw::collectives::all_gather(
                self.inner.lib(),
                vnc,
                spec.rank,
                spec.world,
                bytes_of(input),
                bytes_of_mut(output),
            )
        }
        .map_err(in_rank(spec))
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

/// Adds the rank's context to a libnrt error (on the error path only).
fn in_rank(spec: RankSpec) -> impl FnOnce(Error) -> Error {
    move |e| {
        e.context(format!(
            "rank {} of {} on core {}",
            spec.rank, spec.world, spec.core
        ))
    }
}

/// The machine's physical memory in bytes, if the system tells (an output larger than
/// it cannot be gathered, and is refused before the allocator is asked).
fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && page > 0).then(|| (pages as u64).saturating_mul(page as u64))
}
