//! [`StagedPipeline`]: write -> execute -> read on one core, the three units at once.

use std::fmt;

use super::driver::Driver;
use super::host::{HostInputs, HostOutputs};
use super::ring::Ring;
use super::run::{Staged, StagedStream};
use super::stats::CoreStats;
use crate::error::Result;
use crate::objects::Model;

/// The slots a [`StagedPipeline`] (and each core of [`Replicas`](crate::Replicas)) has
/// by default: 3 so that the write of job i+2, the execution of job i+1 and the read of
/// job i run at once, plus one so that the next write is already queued when a slot
/// frees up.
pub const DEFAULT_STAGED_DEPTH: usize = 4;

/// Runs jobs of one model on its core as three stages, each on its own execution unit:
/// write inputs (TENSOR_OP queue 0) -> execute (COMPUTE) -> read outputs (TENSOR_OP
/// queue 1), so that all three units work at once.
///
/// ```text
/// time (ms)     0       1       2       3       4
/// TENSOR_OP 0   [w0][w1][w2][w3][w4]    [w5]        write job inputs   (0.5 ms each)
/// COMPUTE           [exec 0][exec 1][exec 2][exec 3] execute the model (1 ms each)
/// TENSOR_OP 1               [r0]    [r1]    [r2]     read job outputs  (0.5 ms each)
/// ```
///
/// libnrt orders nothing across units, so the pipeline is the host logic that schedules
/// each stage of a job as soon as the stage before it completed (woken by completion
/// events, runtime >= 2.32; the crate's shared poller on 2.31). It owns a ring of
/// `depth` slots, each with the host buffers and device tensor sets of one job, reused
/// from job to job: once warm, a job allocates nothing (beyond what the caller's
/// closures do).
///
/// [`run`](StagedPipeline::run) takes the jobs, a `write` closure that fills a job's
/// [`HostInputs`] and a `read` closure that turns its [`HostOutputs`] into a result;
/// it returns the results in job order ([`Staged`], a blocking iterator;
/// [`run_async`](StagedPipeline::run_async) gives a [`StagedStream`]).
///
/// # Failures
///
/// A failed stage fails only its job: its item is an
/// [`Error::Stage`](crate::Error::Stage) naming the [`Stage`](crate::Stage), the job
/// index and the core, with the cause (a closure's error, a refused schedule, a
/// request's status). The other jobs carry on. If a unit of the core becomes
/// unrecoverable (`NRT_EXEC_UNIT_UNRECOVERABLE`, a timeout, a hardware error), no new
/// job starts; the jobs in flight end (with their errors) and then the run ends.
///
/// # Example
///
/// ```
/// use neuron_rt::{Runtime, StagedPipeline};
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // y = 2 x + 1 on f32 [4]. On hardware: `Runtime::new()?` and `load_model_file`.
/// let neff = ModelBuilder::new("affine")
///     .input("x", DType::F32, &[4])
///     .output("y", DType::F32, &[4])
///     .op(Op::ScaleBias { input: "x".into(), scale: 2.0, bias: 1.0, out: "y".into() })
///     .build()
///     .unwrap();
/// let rt = Runtime::builder().simulator().build()?;
/// let model = rt.load_model(&neff)?;
/// let mut pipeline = StagedPipeline::new(&model)?;
///
/// let results = pipeline.run(
///     0..10,
///     |job, inputs| inputs.write("x", &[*job as f32; 4]),
///     |_job, outputs| {
///         let mut y = [0f32; 4];
///         outputs.read("y", &mut y)?;
///         Ok(y[0])
///     },
/// );
/// let ys: Vec<f32> = results.collect::<neuron_rt::Result<_>>()?; // in job order
/// assert_eq!(ys, (0..10).map(|j| 2.0 * j as f32 + 1.0).collect::<Vec<_>>());
/// assert_eq!(pipeline.stats().jobs, 10);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct StagedPipeline {
    ring: Ring,
}

impl StagedPipeline {
    /// A pipeline of [`DEFAULT_STAGED_DEPTH`] slots on `model`'s core.
    ///
    /// # Errors
    ///
    /// As for [`with_depth`](StagedPipeline::with_depth).
    pub fn new(model: &Model) -> Result<StagedPipeline> {
        StagedPipeline::with_depth(model, DEFAULT_STAGED_DEPTH)
    }

    /// A pipeline of `depth` slots on `model`'s core. Slots allocate their tensor sets
    /// and host buffers when first used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) if `depth` is not
    /// between 1 and 256; [`Error::Unsupported`](crate::Error::Unsupported) if the
    /// model's core is unknown or the library has no async API; the errors of
    /// [`Runtime::exec_unit`](crate::Runtime::exec_unit).
    pub fn with_depth(model: &Model, depth: usize) -> Result<StagedPipeline> {
        Ok(StagedPipeline {
            ring: Ring::new(model, depth)?,
        })
    }

    /// The number of slots.
    pub fn depth(&self) -> usize {
        self.ring.depth()
    }

    /// The core the pipeline runs on.
    pub fn core(&self) -> u32 {
        self.ring.core()
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.ring.model()
    }

    /// What the pipeline did so far, over all its runs.
    pub fn stats(&self) -> CoreStats {
        self.ring.stats()
    }

    /// Runs `jobs`; results come back in job order from the returned iterator.
    ///
    /// For each job, `write(&job, inputs)` fills the host input buffers (every input's
    /// buffer has its exact size and holds whatever the slot's last job left), then the
    /// pipeline writes them to the device, executes the model and reads the outputs
    /// back; `read(job, outputs)` turns the host output buffers into the job's result.
    /// An error from either closure fails that job (as its
    /// [`Stage::Write`](crate::Stage::Write) or [`Stage::Read`](crate::Stage::Read)).
    /// Nothing starts before the first `next`.
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
        let rings = std::slice::from_mut(&mut self.ring);
        Staged::new(Driver::new(rings, jobs.into_iter(), write, read))
    }

    /// [`run`](StagedPipeline::run) as an async stream: waiting never blocks a thread.
    ///
    /// ```
    /// # use neuron_rt::{Runtime, StagedPipeline};
    /// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
    /// # let rt = Runtime::builder().simulator().build()?;
    /// # let model = rt.load_model(&neff)?;
    /// // out = a + b on f32 [2, 3]
    /// let mut pipeline = StagedPipeline::new(&model)?;
    /// let mut sums = pipeline.run_async(
    ///     0..4,
    ///     |job, inputs| {
    ///         inputs.write("a", &[*job as f32; 6])?;
    ///         inputs.write("b", &[100f32; 6])
    ///     },
    ///     |_, outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
    /// );
    /// # let waker = std::task::Waker::noop();
    /// # let mut cx = std::task::Context::from_waker(&waker);
    /// let next = async {
    ///     let mut all = Vec::new();
    ///     while let Some(sum) = sums.next().await {
    ///         all.push(sum?);
    ///     }
    ///     Ok::<_, neuron_rt::Error>(all)
    /// };
    /// # let mut next = std::pin::pin!(next);
    /// # let all = loop {
    /// #     if let std::task::Poll::Ready(r) = next.as_mut().poll(&mut cx) { break r; }
    /// #     std::thread::sleep(std::time::Duration::from_millis(1));
    /// # };
    /// assert_eq!(all?, [100.0, 101.0, 102.0, 103.0]);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
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
        let rings = std::slice::from_mut(&mut self.ring);
        StagedStream::new(Driver::new(rings, jobs.into_iter(), write, read))
    }
}

impl fmt::Debug for StagedPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedPipeline")
            .field("model", &self.ring.model().label())
            .field("core", &self.ring.core())
            .field("depth", &self.ring.depth())
            .finish_non_exhaustive()
    }
}
