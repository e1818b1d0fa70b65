//! [`Pipeline`]: keep N requests queued from a stream of jobs, results in order.

use std::collections::VecDeque;
use std::fmt;
use std::iter::Fuse;

use super::request::{Payload, Request};
use crate::{Error, Result};

/// The default number of requests a [`Pipeline`] keeps queued: the vendor's advice of
/// 2-3 per execution unit.
pub const DEFAULT_DEPTH: usize = 3;

/// The most queue entries a pipeline allocates up front. A deeper pipeline (e.g.
/// `usize::MAX` for "as deep as there are jobs") grows its queue as it fills, once, and
/// then allocates nothing more: the depth is a bound, not an amount to reserve.
const MAX_PREALLOCATED: usize = 1024;

/// Keeps up to `depth` requests in flight from an iterator of jobs and yields their
/// results in job order.
///
/// `submit` turns a job into a scheduled [`Request`] (doing any host-side preparation
/// first, e.g. filling input tensors). On each [`next`](Iterator::next), the pipeline
/// tops the queue up to `depth`, waits for the oldest request, submits the next job
/// *before* handing the result back (so the unit stays busy while the caller works on
/// it), and returns the result. A job whose `submit` fails yields that error in its
/// place; the other jobs carry on. Dropping the pipeline waits for the requests still in
/// flight.
///
/// The queue is allocated once (with room for `depth` requests, up to 1024 of them up
/// front), so the steady state allocates nothing per job beyond what `submit` does.
///
/// The depth should not exceed what the unit's queue holds (libnrt's queue depth):
/// a job submitted to a full queue fails with
/// [`NrtStatus::QueueFull`](crate::NrtStatus::QueueFull) and yields that error in its
/// place, unless `submit` retries (see
/// [`ExecUnit::submit_with_retry`](crate::ExecUnit::submit_with_retry)).
///
/// ```
/// use neuron_rt::{Pipeline, Runtime};
/// use nrt_sim::{DType, ModelBuilder, Op};
///
/// // y = x + 1 on f32 [4]. On hardware: `Runtime::new()?` and `load_model_file`.
/// let neff = ModelBuilder::new("inc")
///     .input("x", DType::F32, &[4])
///     .output("y", DType::F32, &[4])
///     .op(Op::ScaleBias { input: "x".into(), scale: 1.0, bias: 1.0, out: "y".into() })
///     .build()
///     .unwrap();
/// let rt = Runtime::builder().library(nrt_sim::library()).build()?;
/// let model = rt.load_model(&neff)?;
/// let unit = rt.compute_unit(model.core().unwrap_or(0))?;
///
/// // One pair of (inputs, outputs) per job here; see `ExecSets` recycling in the
/// // crate's examples for a fixed pool.
/// let results = Pipeline::new(0..10, |job| {
///     let (inputs, outputs) = (model.allocate_inputs()?, model.allocate_outputs()?);
///     inputs.get("x").expect("model input").write(&[job as f32; 4])?; // host-side work
///     Ok(unit.execute(&model, inputs, outputs)?)
/// });
/// for (job, result) in results.enumerate() {
///     let (_inputs, outputs) = result?; // in job order
///     let y: Vec<f32> = outputs.get("y").expect("model output").to_vec()?;
///     assert_eq!(y, [job as f32 + 1.0; 4]);
/// }
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct Pipeline<I: Iterator, F, T: Payload> {
    jobs: Fuse<I>,
    submit: F,
    queue: VecDeque<Slot<T>>,
    depth: usize,
}

enum Slot<T: Payload> {
    Pending(Request<T>),
    Failed(Error),
}

impl<I, F, T> Pipeline<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Result<Request<T>>,
    T: Payload,
{
    /// A pipeline of depth [`DEFAULT_DEPTH`]. Nothing is submitted until the first call
    /// to `next`.
    pub fn new(jobs: impl IntoIterator<IntoIter = I>, submit: F) -> Pipeline<I, F, T> {
        Pipeline {
            jobs: jobs.into_iter().fuse(),
            submit,
            queue: VecDeque::with_capacity(DEFAULT_DEPTH),
            depth: DEFAULT_DEPTH,
        }
    }

    /// A pipeline keeping up to `depth` requests in flight.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `depth` is 0.
    pub fn with_depth(
        depth: usize,
        jobs: impl IntoIterator<IntoIter = I>,
        submit: F,
    ) -> Result<Pipeline<I, F, T>> {
        if depth == 0 {
            return Err(Error::invalid(
                "depth",
                "a pipeline needs a depth of at least 1, got 0",
            ));
        }
        let mut pipeline = Pipeline::new(jobs, submit);
        pipeline.depth = depth;
        pipeline.queue.reserve_exact(depth.min(MAX_PREALLOCATED));
        Ok(pipeline)
    }

    /// The number of requests kept in flight.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The number of jobs submitted whose results have not been returned yet.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    fn fill(&mut self) {
        while self.queue.len() < self.depth {
            let Some(job) = self.jobs.next() else { break };
            self.queue.push_back(match (self.submit)(job) {
                Ok(request) => Slot::Pending(request),
                Err(error) => Slot::Failed(error),
            });
        }
    }
}

impl<I, F, T> Iterator for Pipeline<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Result<Request<T>>,
    T: Payload,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        self.fill();
        let result = match self.queue.pop_front()? {
            Slot::Pending(request) => request.wait(),
            Slot::Failed(error) => Err(error),
        };
        self.fill();
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.jobs.size_hint();
        let queued = self.queue.len();
        (
            low.saturating_add(queued),
            high.and_then(|h| h.checked_add(queued)),
        )
    }
}

impl<I: Iterator, F, T: Payload> fmt::Debug for Pipeline<I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("depth", &self.depth)
            .field("pending", &self.queue.len())
            .finish_non_exhaustive()
    }
}
