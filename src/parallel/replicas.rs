//! [`Replicas`]: one model loaded on many cores, jobs dispatched to the least loaded.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::objects::{Model, Runtime};
use crate::parallel::staged::ring::Ring;
use crate::parallel::staged::{
    CoreStats, DEFAULT_STAGED_DEPTH, Driver, HostInputs, HostOutputs, Staged, StagedStream,
};

/// One model loaded on several NeuronCores, each running the staged pipeline of
/// [`StagedPipeline`](crate::StagedPipeline) (write -> execute -> read) on its own
/// units; every job goes to the least loaded live core, and results come back in job
/// order.
///
/// * [`run`](Replicas::run) / [`run_async`](Replicas::run_async): a stream of jobs over
///   all cores at once;
/// * [`execute`](Replicas::execute): one synchronous job (`nrt_execute`) on the least
///   busy core, callable from many threads at once (`Replicas` is `Sync`).
///
/// Per-core counters (jobs, failures, busy time) are in [`stats`](Replicas::stats).
///
/// # Dead cores
///
/// When a unit of a core becomes unrecoverable (`NRT_EXEC_UNIT_UNRECOVERABLE`, a
/// timeout or a hardware error), that core is taken out of rotation: its jobs in flight
/// end with their errors ([`Error::Stage`] naming the core), no new job goes there, and
/// the other cores carry on. Its [`CoreStats::unrecoverable`] says why. A run ends early
/// only when every core is out.
///
/// ```
/// use neuron_rt::{Replicas, Runtime};
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // y = x + 1 on f32 [4], on every visible core (the simulator has 2 by default).
/// let neff = ModelBuilder::new("inc")
///     .input("x", DType::F32, &[4])
///     .output("y", DType::F32, &[4])
///     .op(Op::ScaleBias { input: "x".into(), scale: 1.0, bias: 1.0, out: "y".into() })
///     .build()
///     .unwrap();
/// let rt = Runtime::builder().simulator().build()?;
/// let mut replicas = Replicas::load(&rt, &neff)?;
///
/// let ys = replicas
///     .run(
///         0..20,
///         |job, inputs| inputs.write("x", &[*job as f32; 4]),
///         |_, outputs| Ok(outputs.to_vec::<f32>("y")?[0]),
///     )
///     .collect::<neuron_rt::Result<Vec<f32>>>()?;
/// assert_eq!(ys, (1..=20).map(|y| y as f32).collect::<Vec<_>>()); // in job order
///
/// // One synchronous job on the least busy core.
/// let y = replicas.execute(
///     |inputs| inputs.write("x", &[41f32; 4]),
///     |outputs| Ok(outputs.to_vec::<f32>("y")?[0]),
/// )?;
/// assert_eq!(y, 42.0);
/// let jobs: u64 = replicas.stats().iter().map(|s| s.jobs).sum();
/// assert_eq!(jobs, 21);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct Replicas {
    rings: Vec<Ring>,
    /// Per core: buffers of finished synchronous jobs, for the next ones.
    spare: Vec<Mutex<Vec<crate::parallel::staged::SyncBuffers>>>,
    /// Where the search for the least busy core starts (spreads ties).
    rotate: AtomicUsize,
    /// Synchronous jobs started so far: the next one's index in its errors.
    sync_jobs: AtomicU64,
}

impl Replicas {
    /// Loads `neff` on every visible core, with [`DEFAULT_STAGED_DEPTH`] slots per core.
    ///
    /// # Errors
    ///
    /// As for [`load_on`](Replicas::load_on).
    pub fn load(rt: &Runtime, neff: &[u8]) -> Result<Replicas> {
        let cores: Vec<u32> = (0..rt.visible_core_count()?).collect();
        Replicas::load_on(rt, neff, &cores)
    }

    /// Loads `neff` on each of `cores`, with [`DEFAULT_STAGED_DEPTH`] slots per core.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `cores` is empty, names a core twice or names more
    /// cores than are visible (checked before anything is loaded); the errors of
    /// [`Runtime::load_model_on`] (nothing stays loaded then) and of
    /// [`from_models`](Replicas::from_models).
    pub fn load_on(rt: &Runtime, neff: &[u8], cores: &[u32]) -> Result<Replicas> {
        let visible = rt.visible_core_count()?;
        if cores.len() > visible as usize {
            return Err(Error::invalid(
                "cores",
                format!(
                    "{} cores named, more than the {visible} visible: one replica per core",
                    cores.len()
                ),
            ));
        }
        check_cores(cores)?;
        let models = cores
            .iter()
            .map(|&core| rt.load_model_on(neff, core))
            .collect::<Result<Vec<_>>>()?;
        Replicas::from_models(models, DEFAULT_STAGED_DEPTH)
    }

    /// Replicas over models the caller loaded (e.g. from a file), one per core, each
    /// with `depth` slots.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `models` is empty, two are on the same core, or
    /// `depth` is not between 1 and 256; the errors of
    /// [`StagedPipeline::with_depth`](crate::StagedPipeline::with_depth).
    pub fn from_models(models: Vec<Model>, depth: usize) -> Result<Replicas> {
        let cores: Vec<u32> = models.iter().filter_map(Model::core).collect();
        if cores.len() == models.len() {
            check_cores(&cores)?;
        }
        let rings = models
            .iter()
            .map(|model| Ring::new(model, depth))
            .collect::<Result<Vec<_>>>()?;
        Ok(Replicas {
            spare: rings.iter().map(|_| Mutex::new(Vec::new())).collect(),
            rings,
            rotate: AtomicUsize::new(0),
            sync_jobs: AtomicU64::new(0),
        })
    }

    /// The cores, in the order given at loading.
    pub fn cores(&self) -> Vec<u32> {
        self.rings.iter().map(Ring::core).collect()
    }

    /// The cores still in rotation (none of their units is unrecoverable).
    pub fn live_cores(&self) -> Vec<u32> {
        (self.rings.iter())
            .filter(|r| r.unrecoverable().is_none())
            .map(Ring::core)
            .collect()
    }

    /// The model on each core, in the order of [`cores`](Replicas::cores).
    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.rings.iter().map(Ring::model)
    }

    /// What each core did so far (all runs and synchronous jobs), in the order of
    /// [`cores`](Replicas::cores).
    pub fn stats(&self) -> Vec<CoreStats> {
        self.rings.iter().map(Ring::stats).collect()
    }

    /// Runs `jobs` over every live core; results come back in job order. `write` and
    /// `read` as for [`StagedPipeline::run`](crate::StagedPipeline::run); each job goes
    /// to the live core with a free slot and the fewest jobs in flight.
    pub fn run<I, W, R, T>(
        &mut self,
        jobs: I,
        write: W,
        read: R,
    ) -> Staged<'_, I::IntoIter, W, R, T>
    where
        I: IntoIterator,
        W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
        R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
    {
        Staged::new(Driver::new(&mut self.rings, jobs.into_iter(), write, read))
    }

    /// [`run`](Replicas::run) as an async stream (see [`StagedStream`]).
    pub fn run_async<I, W, R, T>(
        &mut self,
        jobs: I,
        write: W,
        read: R,
    ) -> StagedStream<'_, I::IntoIter, W, R, T>
    where
        I: IntoIterator,
        W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
        R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
    {
        StagedStream::new(Driver::new(&mut self.rings, jobs.into_iter(), write, read))
    }

    /// Runs one job synchronously on the live core with the fewest jobs in flight:
    /// `write` fills the host inputs, which are written to that core's input tensors
    /// (`nrt_tensor_write`), the model runs ([`Model::execute`], with its stack rule),
    /// the outputs are read back and handed to `read`. Buffers and sets are reused
    /// from one call to the next (one set per concurrent caller and core).
    ///
    /// # Errors
    ///
    /// [`Error::Stage`] naming the stage, the core, the cause and the job's index among
    /// the synchronous jobs of these replicas (0 for the first call that reached a
    /// core); a fatal cause takes the core out of rotation. [`Error::Unrecoverable`] if
    /// no core is live any more.
    pub fn execute<T>(
        &self,
        write: impl FnOnce(&mut HostInputs<'_>) -> Result<()>,
        read: impl FnOnce(&HostOutputs<'_>) -> Result<T>,
    ) -> Result<T> {
        let k = self.pick_idle()?;
        let job = self.sync_jobs.fetch_add(1, Ordering::Relaxed);
        let ring = &self.rings[k];
        let mut bufs = lock(&self.spare[k])
            .pop()
            .unwrap_or_else(|| crate::parallel::staged::SyncBuffers::new(ring.model()));
        ring.counters().start();
        let result = crate::parallel::staged::execute_sync(ring.model(), &mut bufs, write, read);
        ring.counters().finish(result.is_ok());
        match result {
            Ok(value) => {
                lock(&self.spare[k]).push(bufs);
                Ok(value)
            }
            Err((stage, error)) => {
                if let Some(status) = error.status().filter(|s| s.is_fatal()) {
                    ring.counters().mark_fatal(status);
                }
                // Buffers of a failed job are dropped: a fresh set next time.
                Err(Error::Stage {
                    stage,
                    job,
                    core: ring.core(),
                    error: Box::new(error),
                })
            }
        }
    }

    /// The live core with the fewest jobs in flight.
    fn pick_idle(&self) -> Result<usize> {
        let n = self.rings.len();
        let start = self.rotate.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|&k| self.rings[k].unrecoverable().is_none())
            .min_by_key(|&k| self.rings[k].counters().in_flight())
            .ok_or_else(|| {
                let status = (self.rings.iter().find_map(Ring::unrecoverable))
                    .unwrap_or(crate::NrtStatus::ExecUnitUnrecoverable);
                Error::Unrecoverable {
                    unit: format!("every core of the replicas ({:?})", self.cores()),
                    status,
                }
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Pushes and pops only: a poisoned list is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_cores(cores: &[u32]) -> Result<()> {
    if cores.is_empty() {
        return Err(Error::invalid(
            "cores",
            "replicas need at least one core, got none",
        ));
    }
    for (i, core) in cores.iter().enumerate() {
        if cores[..i].contains(core) {
            return Err(Error::invalid(
                "cores",
                format!("core {core} is named twice in {cores:?}"),
            ));
        }
    }
    Ok(())
}

impl fmt::Debug for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicas")
            .field("cores", &self.cores())
            .field("live", &self.live_cores())
            .finish_non_exhaustive()
    }
}
