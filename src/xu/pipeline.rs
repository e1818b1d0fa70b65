//! [`Pipeline`]: keep N requests queued from a stream of jobs, results in order.

use std::collections::VecDeque;
use std::fmt;
use std::iter::Fuse;

use super::failed::{Failed, finish};
use super::future::CompletionWatch;
use super::payload::Payload;
use super::request::Request;
use crate::error::{Error, Result};

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
/// it), and returns the result. Dropping the pipeline drops the requests still in
/// flight without waiting (see [`Request`]'s drop).
///
/// # Failed jobs keep their payload
///
/// Each item is `Ok(payload)` or `Err(`[`Failed`]`)`: the error *and* the payload
/// (tensor sets, buffers) whenever it still exists, so a pool of recycled sets never
/// shrinks because a job failed. A request that completed with an error status (e.g.
/// [`NrtStatus::ExecCompletedWithErr`](crate::NrtStatus::ExecCompletedWithErr), whose
/// outputs libnrt still wrote) yields its payload in the `Failed`; so does a submit the
/// unit refused: `submit` returns `Err(Failed)`, which `?` makes from a [`Rejected`](crate::Rejected)
/// with its payload, or from an [`Error`] raised before any payload existed. A job
/// whose preparation fails after it took a payload should hand it back with
/// [`Failed::new`]. The other jobs carry on. `?` on an item turns a `Failed` into its
/// [`Error`], dropping the payload.
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
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // y = x + 1 on f32 [4]. On hardware: `Runtime::new()?` and `load_model_file`.
/// let neff = ModelBuilder::new("inc")
///     .input("x", DType::F32, &[4])
///     .output("y", DType::F32, &[4])
///     .op(Op::ScaleBias { input: "x".into(), scale: 1.0, bias: 1.0, out: "y".into() })
///     .build()
///     .unwrap();
/// let rt = Runtime::builder().simulator().build()?;
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
///     let (_inputs, outputs) = result?; // in job order; `?` drops a failed job's sets
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

/// What `submit` returns: the scheduled request, or why not (with the payload if any).
pub type Submitted<T> = std::result::Result<Request<T>, Failed<T>>;

enum Slot<T: Payload> {
    Pending(Request<T>),
    Failed(Failed<T>),
}

impl<I, F, T> Pipeline<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Submitted<T>,
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
                Err(failed) => Slot::Failed(failed),
            });
        }
    }
}

impl<I, F, T> Iterator for Pipeline<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Submitted<T>,
    T: Payload,
{
    type Item = std::result::Result<T, Failed<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let result = match self.queue.pop_front()? {
            Slot::Pending(request) => finish(request),
            Slot::Failed(failed) => Err(failed),
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

impl<I, F, T> Pipeline<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Submitted<T>,
    T: Payload,
{
    /// The same pipeline as an asynchronous stream of results
    /// ([`futures_core::Stream`], or [`PipelineStream::next`] without a stream library):
    /// the same depth, job order and failed-job payloads, but waiting for the oldest
    /// request never blocks the thread (its task is woken by the request's completion
    /// event).
    ///
    /// ```
    /// use neuron_rt::{Pipeline, Runtime};
    /// use neuron_rt::sim::ModelBuilder;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::yield_now();
    /// #     }
    /// # }
    /// let rt = Runtime::builder().simulator().build()?;
    /// let model = rt.load_model_on(&ModelBuilder::add_example(&[2, 3]).build().unwrap(), 0)?;
    /// let unit = rt.compute_unit(0)?;
    /// let mut results = Pipeline::new(0..5, |_job| {
    ///     let (inputs, outputs) = (model.allocate_inputs()?, model.allocate_outputs()?);
    ///     Ok(unit.execute(&model, inputs, outputs)?)
    /// })
    /// .into_stream();
    /// let mut done = 0;
    /// block_on(async {
    ///     while let Some(result) = results.next().await {
    ///         let (_inputs, _outputs) = result?;
    ///         done += 1;
    ///     }
    ///     Ok::<(), neuron_rt::Error>(())
    /// })?;
    /// assert_eq!(done, 5);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    pub fn into_stream(self) -> PipelineStream<I, F, T> {
        PipelineStream {
            pipeline: self,
            watch: CompletionWatch::new(),
        }
    }
}

/// A [`Pipeline`] as an asynchronous stream of results, from
/// [`Pipeline::into_stream`]. Items are those of the pipeline, in job order.
///
/// Dropping it drops the requests in flight without waiting (see [`Request`]).
pub struct PipelineStream<I: Iterator, F, T: Payload> {
    pipeline: Pipeline<I, F, T>,
    /// Follows the oldest request while its task waits.
    watch: CompletionWatch,
}

// Nothing in it is pinned structurally: fields are only used through `&mut`.
impl<I: Iterator, F, T: Payload> Unpin for PipelineStream<I, F, T> {}

impl<I, F, T> PipelineStream<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Submitted<T>,
    T: Payload,
{
    /// The next result, once the oldest job completed; `None` after the last one.
    pub async fn next(&mut self) -> Option<std::result::Result<T, Failed<T>>> {
        std::future::poll_fn(|cx| self.poll_result(cx)).await
    }

    /// The number of jobs submitted whose results have not been returned yet.
    pub fn pending(&self) -> usize {
        self.pipeline.pending()
    }

    fn poll_result(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<T, Failed<T>>>> {
        use std::task::Poll;
        let pipeline = &mut self.pipeline;
        pipeline.fill();
        match pipeline.queue.front() {
            None => return Poll::Ready(None),
            Some(Slot::Pending(request)) => {
                if self.watch.poll(request, cx).is_pending() {
                    return Poll::Pending;
                }
                self.watch.cancel(request);
            }
            Some(Slot::Failed(_)) => {}
        }
        let result = match pipeline.queue.pop_front() {
            // Completed (observed just above): `finish` does not block.
            Some(Slot::Pending(request)) => finish(request),
            Some(Slot::Failed(failed)) => Err(failed),
            None => return Poll::Ready(None),
        };
        pipeline.fill();
        Poll::Ready(Some(result))
    }
}

impl<I, F, T> futures_core::Stream for PipelineStream<I, F, T>
where
    I: Iterator,
    F: FnMut(I::Item) -> Submitted<T>,
    T: Payload,
{
    type Item = std::result::Result<T, Failed<T>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().poll_result(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pipeline.size_hint()
    }
}

impl<I: Iterator, F, T: Payload> Drop for PipelineStream<I, F, T> {
    fn drop(&mut self) {
        // The watch may be registered for the oldest request: take it back first.
        if let Some(Slot::Pending(request)) = self.pipeline.queue.front() {
            self.watch.cancel(request);
        }
    }
}

impl<I: Iterator, F, T: Payload> fmt::Debug for PipelineStream<I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineStream")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
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
