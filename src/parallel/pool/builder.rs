//! [`ModelPoolBuilder`]: which cores, how many copies per core, how many tensor sets per
//! copy; loading every copy.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ModelPool;
use super::dispatch::{CopyState, PoolLoad, Shared};
use super::sets::SetPool;
use crate::error::{Error, Result};
use crate::objects::{Model, Runtime};

/// Tensors of at least this many bytes are moved on the copy's TENSOR_OP units by
/// [`ModelPool::infer`]; smaller ones are copied synchronously by the calling task.
///
/// Decided by measurement on the simulator (`cargo bench --bench pool_transfer`: the
/// same requests with every transfer synchronous and with every transfer scheduled, 16
/// KiB to 4 MiB, at concurrency 1 and 16, 2 cores, 16 GB/s): up to 512 KiB the
/// synchronous copy is as fast or faster in every run (by 20-40 % at concurrency 1: a
/// scheduled transfer costs a completion wake-up and a host copy into an owned buffer);
/// from 1 MiB the two were within the runs' noise at concurrency 1, and at 4 MiB and
/// concurrency 16 the scheduled one served 1.4-1.8 times more requests (a synchronous
/// copy holds an executor thread for its whole DMA time, 65 µs per MiB at 16 GB/s, so
/// two such copies stall a 2-thread executor). Change it with
/// [`ModelPoolBuilder::large_transfer_bytes`].
pub const LARGE_TRANSFER_BYTES: usize = 1 << 20;

/// Tensor-set pairs allocated per copy when the pool is built.
pub const DEFAULT_INITIAL_SETS: usize = 2;
/// The most tensor-set pairs a copy allocates (on demand, when all are in use).
pub const DEFAULT_MAX_SETS: usize = 8;

/// The most copies per core a pool loads: far more than a core's memory or its one
/// COMPUTE queue serves usefully; a larger count is a mistake, refused before anything
/// is loaded or allocated.
const MAX_COPIES_PER_CORE: usize = 256;
/// The most tensor-set pairs per copy (initial or maximum): `max` also bounds the copy's
/// requests queued on its unit, and libnrt's queues hold far fewer.
const MAX_SETS_PER_COPY: usize = 4096;

/// Where a [`ModelPool`]'s model comes from: NEFF bytes or a NEFF file.
#[derive(Debug, Clone)]
pub enum NeffSource<'a> {
    /// The model file's contents.
    Bytes(Cow<'a, [u8]>),
    /// The model file (read once per copy, so errors name it).
    File(PathBuf),
}

impl<'a> From<&'a [u8]> for NeffSource<'a> {
    fn from(bytes: &'a [u8]) -> NeffSource<'a> {
        NeffSource::Bytes(Cow::Borrowed(bytes))
    }
}

impl<'a> From<&'a Vec<u8>> for NeffSource<'a> {
    fn from(bytes: &'a Vec<u8>) -> NeffSource<'a> {
        NeffSource::Bytes(Cow::Borrowed(bytes))
    }
}

impl From<Vec<u8>> for NeffSource<'static> {
    fn from(bytes: Vec<u8>) -> NeffSource<'static> {
        NeffSource::Bytes(Cow::Owned(bytes))
    }
}

impl<'a> From<&'a Path> for NeffSource<'a> {
    fn from(path: &'a Path) -> NeffSource<'a> {
        NeffSource::File(path.to_owned())
    }
}

impl From<PathBuf> for NeffSource<'static> {
    fn from(path: PathBuf) -> NeffSource<'static> {
        NeffSource::File(path)
    }
}

impl ModelPool {
    /// A builder loading `neff` (bytes, or a file path: see [`NeffSource`]) on every
    /// visible core of `runtime`, one copy each, unless told otherwise.
    pub fn builder<'a>(runtime: &Runtime, neff: impl Into<NeffSource<'a>>) -> ModelPoolBuilder<'a> {
        ModelPoolBuilder::new(runtime, neff.into())
    }
}

/// Builds a [`ModelPool`]: made by [`ModelPool::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ModelPoolBuilder<'a> {
    runtime: Runtime,
    neff: NeffSource<'a>,
    cores: Option<Vec<u32>>,
    copies_per_core: usize,
    initial_sets: usize,
    max_sets: usize,
    large_transfer: usize,
}

impl<'a> ModelPoolBuilder<'a> {
    pub(super) fn new(runtime: &Runtime, neff: NeffSource<'a>) -> ModelPoolBuilder<'a> {
        ModelPoolBuilder {
            runtime: runtime.clone(),
            neff,
            cores: None,
            copies_per_core: 1,
            initial_sets: DEFAULT_INITIAL_SETS,
            max_sets: DEFAULT_MAX_SETS,
            large_transfer: LARGE_TRANSFER_BYTES,
        }
    }

    /// Loads the model on these cores (indices among the visible cores), instead of on
    /// every visible core.
    pub fn cores(mut self, cores: impl IntoIterator<Item = u32>) -> Self {
        self.cores = Some(cores.into_iter().collect());
        self
    }

    /// Loads `copies` copies of the model on each core (default 1): the vendor's advice
    /// for more throughput from a core is more models per core, rather than more
    /// processes. Copies on one core share its COMPUTE queue. At most 256.
    pub fn copies_per_core(mut self, copies: usize) -> Self {
        self.copies_per_core = copies;
        self
    }

    /// Allocates `initial` input/output set pairs per copy now, and more on demand while
    /// every pair is in use, up to `max` per copy (defaults [`DEFAULT_INITIAL_SETS`],
    /// [`DEFAULT_MAX_SETS`]). A request waits (asynchronously) for a pair when `max`
    /// are in use; `max` also bounds how many of a copy's requests are queued on its
    /// unit at once. At most 4,096.
    pub fn sets_per_copy(mut self, initial: usize, max: usize) -> Self {
        self.initial_sets = initial;
        self.max_sets = max;
        self
    }

    /// Moves inputs and outputs of at least `bytes` bytes on TENSOR_OP units instead of
    /// copying them synchronously (default [`LARGE_TRANSFER_BYTES`]; `usize::MAX`:
    /// never).
    pub fn large_transfer_bytes(mut self, bytes: usize) -> Self {
        self.large_transfer = bytes;
        self
    }

    /// Loads every copy, allocates their initial sets and creates their units.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for no cores, a core listed twice or not visible, 0
    /// or more than 256 copies per core, 0 sets, more initial sets than the maximum or
    /// a maximum above 4,096 (checked before anything is loaded); the errors of
    /// loading the model ([`Runtime::load_model_on`], with a hint), of allocating its
    /// sets and of creating the units (e.g. [`Error::Unsupported`] without the async
    /// API).
    pub fn build(self) -> Result<ModelPool> {
        let cores = self.check()?;
        let load = Arc::new(PoolLoad::new(cores.len()));
        // Both bounded by `check` (distinct visible cores, MAX_COPIES_PER_CORE).
        let mut copies = Vec::with_capacity(cores.len() * self.copies_per_core);
        for (slot, &core) in cores.iter().enumerate() {
            let compute = self.runtime.compute_unit(core)?;
            let writer = self.runtime.tensor_op_unit(core, 0)?;
            let reader = self.runtime.tensor_op_unit(core, 1)?;
            for _ in 0..self.copies_per_core {
                let model = self.load(core)?;
                let sets = SetPool::new(&model, self.initial_sets, self.max_sets)?;
                copies.push(Arc::new(CopyState::new(
                    copies.len(),
                    slot,
                    model,
                    compute.clone(),
                    writer.clone(),
                    reader.clone(),
                    sets,
                    Arc::clone(&load),
                )));
            }
        }
        let Some(first) = copies.first().and_then(|c| c.model()) else {
            return Err(Error::invalid("cores", "no core to load the model on"));
        };
        log::info!(
            "model pool: `{}` loaded {} times on cores {cores:?}",
            first.label(),
            copies.len()
        );
        let shared = Shared::new(
            copies,
            load,
            first.inputs().to_vec(),
            first.outputs().to_vec(),
            first.label().to_owned(),
            self.large_transfer,
        );
        Ok(ModelPool {
            shared: Arc::new(shared),
        })
    }

    fn check(&self) -> Result<Vec<u32>> {
        let visible = self.runtime.visible_core_count()?;
        let cores = self.cores.clone().unwrap_or_else(|| (0..visible).collect());
        if cores.is_empty() {
            return Err(Error::invalid("cores", "no core to load the model on"));
        }
        if let Some(&core) = cores.iter().find(|&&c| c >= visible) {
            return Err(Error::invalid(
                "cores",
                format!("core {core} is not visible: {visible} cores are (0..{visible})"),
            ));
        }
        if let Some((i, &core)) = cores
            .iter()
            .enumerate()
            .find(|(i, c)| cores[..*i].contains(c))
        {
            return Err(Error::invalid(
                "cores",
                format!(
                    "core {core} is listed twice (at {i}); use copies_per_core for more copies on a core"
                ),
            ));
        }
        if self.copies_per_core == 0 {
            return Err(Error::invalid(
                "copies_per_core",
                "at least one copy per core is needed, got 0",
            ));
        }
        if self.copies_per_core > MAX_COPIES_PER_CORE {
            return Err(Error::invalid(
                "copies_per_core",
                format!(
                    "{} copies per core is more than the {MAX_COPIES_PER_CORE} a pool loads",
                    self.copies_per_core
                ),
            ));
        }
        if self.max_sets > MAX_SETS_PER_COPY {
            return Err(Error::invalid(
                "sets_per_copy",
                format!(
                    "a maximum of {} pairs per copy is more than the {MAX_SETS_PER_COPY} a pool allows",
                    self.max_sets
                ),
            ));
        }
        if self.max_sets == 0 || self.initial_sets > self.max_sets {
            return Err(Error::invalid(
                "sets_per_copy",
                format!(
                    "needs 1 <= max and initial <= max, got initial {} and max {}",
                    self.initial_sets, self.max_sets
                ),
            ));
        }
        Ok(cores)
    }

    fn load(&self, core: u32) -> Result<Model> {
        match &self.neff {
            NeffSource::Bytes(bytes) => self.runtime.load_model_on(bytes, core),
            NeffSource::File(path) => self.runtime.load_model_file_on(path, core),
        }
    }
}
