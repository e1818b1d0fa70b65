//! The results of a staged run: [`Staged`] (a blocking iterator) and [`StagedStream`]
//! (an async stream), both over the same [`Driver`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};

use super::driver::Driver;
use super::host::{HostInputs, HostOutputs};
use super::stats::CoreStats;
use crate::error::Result;

/// Wakes a thread blocked in [`Staged::next`].
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// The waker of the thread that iterates, made once per thread (not per job).
struct Parker {
    owner: ThreadId,
    flag: Arc<ThreadWaker>,
    waker: Waker,
}

impl Parker {
    fn current() -> Parker {
        let flag = Arc::new(ThreadWaker {
            thread: thread::current(),
            woken: AtomicBool::new(false),
        });
        Parker {
            owner: thread::current().id(),
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// Polls until ready, parking the thread in between: it sleeps until a completion
    /// event (or the 2.31 poller) wakes it, never in a timed loop.
    fn block_on<T>(&self, mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
        let mut cx = Context::from_waker(&self.waker);
        loop {
            if let Poll::Ready(value) = poll(&mut cx) {
                return value;
            }
            while !self.flag.woken.swap(false, Ordering::Acquire) {
                thread::park();
            }
        }
    }
}

/// The results of a [`StagedPipeline::run`](crate::StagedPipeline::run) or
/// [`Replicas::run`](crate::Replicas::run), in job order: a blocking iterator.
///
/// Each [`next`](Iterator::next) keeps every unit busy while it waits: it starts jobs
/// in free slots, schedules each stage as soon as its producer completed, and sleeps
/// until the next completion (on a completion event where the runtime has them, or the
/// crate's shared poller on 2.31). Items are `Ok(value returned by read)` or an
/// [`Error::Stage`](crate::Error::Stage) naming the job, its stage and core.
///
/// The run ends (`None`) when every job was handed out, or when every core it uses is
/// unrecoverable (the jobs in flight then yield their errors first; jobs never started
/// stay in the job iterator). Dropping the run before that never blocks: it drops the
/// jobs in flight, their requests go on to complete in the background (like any dropped
/// [`Request`](crate::Request)), and the slots stay with the pipeline for the next run
/// (a slot whose requests were still running gets fresh buffers and sets when next
/// used). A run leaked with `mem::forget` leaves its requests in the slots, and the
/// next run drops them in the same way.
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// let mut pipeline = StagedPipeline::new(&model)?;
/// let mut run = pipeline.run(0..100, |_, _| Ok(()), |job, _| Ok(job));
/// assert_eq!(run.next().unwrap()?, 0);
/// assert!(run.pending() > 0); // the next jobs are already on their way
/// drop(run); // never blocks; the pipeline is ready for another run
/// let jobs: Vec<u32> = pipeline.run(0..3, |_, _| Ok(()), |job, _| Ok(job)).collect::<Result<_, _>>()?;
/// assert_eq!(jobs, [0, 1, 2]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct Staged<'r, I: Iterator, W, R, T> {
    driver: Driver<'r, I, W, R, T>,
    parker: Option<Parker>,
}

/// The results of a [`StagedPipeline::run_async`](crate::StagedPipeline::run_async) or
/// [`Replicas::run_async`](crate::Replicas::run_async), in job order: an async stream
/// ([`futures_core::Stream`]), also usable without a stream library through
/// [`next`](StagedStream::next).
///
/// Same machinery and items as [`Staged`], but waiting never blocks a thread: the task
/// is woken when a request it waits for completes. Works with any executor.
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// # let mut pipeline = StagedPipeline::new(&model)?;
/// async fn total(mut sums: impl futures_core::Stream<Item = neuron_rt::Result<f32>> + Unpin) -> neuron_rt::Result<f32> {
///     let mut total = 0.0;
///     while let Some(sum) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut sums).poll_next(cx)).await {
///         total += sum?;
///     }
///     Ok(total)
/// }
/// let sums = pipeline.run_async(
///     0..4,
///     |job, inputs| inputs.write("a", &[*job as f32; 6]),
///     |_, outputs| Ok(outputs.to_vec::<f32>("out")?[0]),
/// );
/// # let waker = std::task::Waker::noop();
/// # let mut cx = std::task::Context::from_waker(&waker);
/// # let mut fut = std::pin::pin!(total(sums));
/// # let total = loop {
/// #     if let std::task::Poll::Ready(t) = fut.as_mut().poll(&mut cx) { break t; }
/// #     std::thread::sleep(std::time::Duration::from_millis(1));
/// # };
/// // b holds whatever the slot held (zeros here: fresh slots).
/// assert_eq!(total?, 0.0 + 1.0 + 2.0 + 3.0);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct StagedStream<'r, I: Iterator, W, R, T> {
    driver: Driver<'r, I, W, R, T>,
}

// Nothing in a run is pinned in place (the driver holds no self-references and is
// only ever used through `&mut`), so pinning a run pins nothing.
impl<I: Iterator, W, R, T> Unpin for StagedStream<'_, I, W, R, T> {}

impl<'r, I, W, R, T> Staged<'r, I, W, R, T>
where
    I: Iterator,
    W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
    R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
{
    pub(crate) fn new(driver: Driver<'r, I, W, R, T>) -> Self {
        Staged {
            driver,
            parker: None,
        }
    }

    /// Jobs started whose results were not handed out yet.
    pub fn pending(&self) -> usize {
        self.driver.pending()
    }

    /// The counters of every core of the run, so far.
    pub fn stats(&self) -> Vec<CoreStats> {
        self.driver.rings().iter().map(|r| r.stats()).collect()
    }
}

impl<I, W, R, T> Iterator for Staged<'_, I, W, R, T>
where
    I: Iterator,
    W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
    R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let here = thread::current().id();
        let parker = match &mut self.parker {
            Some(p) if p.owner == here => p,
            other => other.insert(Parker::current()),
        };
        let driver = &mut self.driver;
        parker.block_on(|cx| driver.poll_next(cx))
    }
}

impl<'r, I, W, R, T> StagedStream<'r, I, W, R, T>
where
    I: Iterator,
    W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
    R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
{
    pub(crate) fn new(driver: Driver<'r, I, W, R, T>) -> Self {
        StagedStream { driver }
    }

    /// The next result in job order; `None` at the end of the run (see [`Staged`]).
    ///
    /// The name of `StreamExt::next` in the `futures` crates, which this mirrors.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> impl Future<Output = Option<Result<T>>> + '_ {
        std::future::poll_fn(move |cx| self.driver.poll_next(cx))
    }

    /// Jobs started whose results were not handed out yet.
    pub fn pending(&self) -> usize {
        self.driver.pending()
    }

    /// The counters of every core of the run, so far.
    pub fn stats(&self) -> Vec<CoreStats> {
        self.driver.rings().iter().map(|r| r.stats()).collect()
    }
}

impl<I, W, R, T> futures_core::Stream for StagedStream<'_, I, W, R, T>
where
    I: Iterator,
    W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
    R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        self.get_mut().driver.poll_next(cx)
    }
}

impl<I: Iterator, W, R, T> fmt::Debug for Staged<'_, I, W, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Staged")
            .field("pending", &self.driver.pending())
            .finish_non_exhaustive()
    }
}

impl<I: Iterator, W, R, T> fmt::Debug for StagedStream<'_, I, W, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedStream")
            .field("pending", &self.driver.pending())
            .finish_non_exhaustive()
    }
}
