//! [`ModelPool`]: one model on many cores, serving independent requests from any number
//! of tasks and threads.

pub(crate) mod builder;
mod dispatch;
mod infer;
mod lease;
mod metrics;
mod sets;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

pub use lease::Lease;
pub use metrics::{CopyMetrics, LatencyHistogram, PoolMetrics, RequestCounts};

use dispatch::Shared;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::io::{Input, Outputs};
use crate::objects::TensorInfo;
#[cfg(doc)]
use crate::xu::ExecUnit;

/// One model loaded on several NeuronCores, serving independent requests: the layer an
/// inference server works at.
///
/// The pool loads a NEFF on every visible core (or a list, or several copies per core),
/// keeps a pool of tensor-set pairs per copy, and for each request:
///
/// 1. checks the host inputs against the model (a typed error naming the input);
/// 2. dispatches it to the least loaded live copy, counting requests waiting for sets or
///    for admission as well as those on the device;
/// 3. takes a set pair of that copy (waiting, woken by the pair's return, when the
///    copy's bound is reached);
/// 4. writes the inputs (large ones on the core's TENSOR_OP queue 0, see
///    [`LARGE_TRANSFER_BYTES`](crate::LARGE_TRANSFER_BYTES));
/// 5. admits the execution to the core's COMPUTE unit through [`ExecUnit::submit`]
///    (never more than the queue holds) and awaits it without blocking a thread;
/// 6. reads the outputs (large ones on TENSOR_OP queue 1) and gives the pair back.
///
/// # Failures
///
/// * A failed request's sets go back to the pool, whatever failed (an execution status,
///   a transfer, a unit that died), and so do those of a request dropped at any await
///   point: a pair the device may still use goes back once the device is done with it.
/// * A request a dead unit refused before it ran is sent to another copy; the dead copy
///   leaves the rotation and [`PoolMetrics`] reports it (`out_of_service`, with the
///   error). With no copy left, requests fail with [`Error::PoolUnavailable`].
/// * A request that was on a unit when the unit died fails with the unit's error: it is
///   never retried, since an execution may have changed device state.
///
/// # Shutdown
///
/// [`ModelPool::shutdown`] stops admitting (new requests fail with
/// [`Error::PoolUnavailable`]), waits for every request in the pool to finish, then
/// frees every set and unloads every copy.
///
/// # Use
/// Cloning is cheap (a shared handle): clone it into every task. Requests come from
/// async code ([`infer`](ModelPool::infer), [`lease`](ModelPool::lease)) on any executor
/// (nothing blocks its threads, nothing polls: every wait is woken by a completion
/// event or a returned set pair) or from threads
/// ([`infer_blocking`](ModelPool::infer_blocking)).
///
/// ```
/// use neuron_rt::{ModelPool, Runtime, inputs};
/// use neuron_rt::sim::ModelBuilder;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> neuron_rt::Result<()> {
/// let runtime = Runtime::builder().simulator().build()?;
/// let neff = ModelBuilder::add_example(&[4]).build().unwrap(); // out = a + b
/// // On hardware: `Runtime::new()?` and `ModelPool::builder(&runtime, Path::new("model.neff"))`.
/// let pool = ModelPool::builder(&runtime, neff).build()?; // every visible core
///
/// let tasks: Vec<_> = (0..8)
///     .map(|i| {
///         let pool = pool.clone();
///         tokio::spawn(async move {
///             let x = vec![i as f32; 4];
///             let out = pool.infer(&inputs!["a" => &x, "b" => &[1.0f32; 4]]).await?;
///             out["out"].to_vec::<f32>()
///         })
///     })
///     .collect();
/// for (i, task) in tasks.into_iter().enumerate() {
///     assert_eq!(task.await.unwrap()?, [i as f32 + 1.0; 4]);
/// }
/// let metrics = pool.shutdown().await; // waits for requests in flight, then unloads
/// assert_eq!(metrics.total.ok, 8);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ModelPool {
    shared: Arc<Shared>,
}

impl ModelPool {
    /// Runs the model on `inputs` (one [`Input`] per model input, by name: the
    /// [`inputs!`](crate::inputs) macro builds the list) on the least loaded live copy,
    /// and returns every output, typed and shaped ([`Outputs`]).
    ///
    /// The future borrows `self` and `inputs`; to spawn it, move a clone of the pool
    /// (and owned inputs, e.g. [`Input::from_vec`]) into the task, as in the type's
    /// example. Dropping it at any point is safe and loses nothing (see the module docs).
    ///
    /// # Errors
    ///
    /// Before anything runs: the argument errors of
    /// [`Model::check_inputs`](crate::Model::check_inputs) (unknown, missing or
    /// repeated input, element type, shape, length), [`Error::PoolUnavailable`] when
    /// the pool is shut down or no copy is left in service. Then the execution's own
    /// error (e.g. an [`Error::Nrt`] with its status, or a fatal one if the unit died
    /// under it) or a transfer's.
    pub async fn infer(&self, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        self.shared.infer(inputs).await
    }

    /// [`infer`](ModelPool::infer) for synchronous callers: blocks the calling thread
    /// (parked, woken by the request's events) until the outputs are read. Any number
    /// of threads may call it at once, also while tasks use the pool. Do not call it on
    /// an async executor's thread: use `infer` there.
    ///
    /// # Errors
    ///
    /// As [`infer`](ModelPool::infer).
    pub fn infer_blocking(&self, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        block_on(self.shared.infer(inputs))
    }

    /// Leases a set pair of the least loaded live copy, for callers that fill and read
    /// the device tensors themselves (no host copies by the pool): see [`Lease`].
    ///
    /// # Errors
    ///
    /// [`Error::PoolUnavailable`] when the pool is shut down or no copy is in service;
    /// the errors of allocating a set pair when a copy grows its pool.
    pub async fn lease(&self) -> Result<Lease> {
        self.shared.lease(None).await
    }

    /// [`lease`](ModelPool::lease) for synchronous callers (blocks the thread).
    ///
    /// # Errors
    ///
    /// As [`lease`](ModelPool::lease).
    pub fn lease_blocking(&self) -> Result<Lease> {
        block_on(self.shared.lease(None))
    }

    /// [`lease`](ModelPool::lease) on a copy on NeuronCore `core`: for work on device
    /// tensors that live there (a state bound with [`Lease::bind_state`]).
    ///
    /// ```
    /// use neuron_rt::{ModelPool, Placement, Runtime};
    /// use neuron_rt::sim::{DType, ModelBuilder, Op};
    ///
    /// // state.out = state + x
    /// let neff = ModelBuilder::new("acc")
    ///     .input("state", DType::F32, &[4])
    ///     .input("x", DType::F32, &[4])
    ///     .output("state.out", DType::F32, &[4])
    ///     .op(Op::Add { a: "state".into(), b: "x".into(), out: "state.out".into() })
    ///     .build()
    ///     .unwrap();
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let pool = ModelPool::builder(&runtime, neff).build()?;
    /// let state = runtime.allocate_tensor(Placement::Device, Some(1), 16, "state")?;
    /// for _ in 0..2 {
    ///     let mut lease = pool.lease_on_blocking(1)?;
    ///     lease.bind_state("state", "state.out", &state)?;
    ///     lease.inputs().get("x").unwrap().write(&[1.0f32; 4])?;
    ///     let lease = lease.execute_blocking().map_err(|f| f.into_error())?;
    ///     drop(lease); // the pool's own tensors go back into its sets
    /// }
    /// assert_eq!(state.to_vec::<f32>()?, [2.0; 4]);
    /// # pool.shutdown_blocking();
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PoolUnavailable`] when no copy on `core` is in service (or none at all,
    /// or the pool is shut down); otherwise as [`lease`](ModelPool::lease).
    pub async fn lease_on(&self, core: u32) -> Result<Lease> {
        self.shared.lease(Some(core)).await
    }

    /// [`lease_on`](ModelPool::lease_on) for synchronous callers (blocks the thread).
    ///
    /// # Errors
    ///
    /// As [`lease_on`](ModelPool::lease_on).
    pub fn lease_on_blocking(&self, core: u32) -> Result<Lease> {
        block_on(self.shared.lease(Some(core)))
    }

    /// A snapshot of the counters, per copy and in total (see [`PoolMetrics`]).
    pub fn metrics(&self) -> PoolMetrics {
        self.shared.metrics()
    }

    /// Stops admitting requests (new ones fail with [`Error::PoolUnavailable`], for
    /// every handle of the pool), waits until every request in the pool finished
    /// (those waiting for sets or admission are served, dropped ones finish on the
    /// device), then frees the sets and unloads the copies. Returns the final
    /// counters. Safe to call more than once, from any handle. A request or lease leaked
    /// with [`mem::forget`](std::mem::forget) never finishes: a shutdown then waits
    /// forever (bound it with your executor's timeout).
    pub async fn shutdown(&self) -> PoolMetrics {
        let load = &self.shared.load;
        load.close();
        poll_fn(|cx: &mut Context<'_>| {
            if load.drained(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        for copy in self.shared.copies.iter() {
            copy.unload();
        }
        log::info!("model pool: `{}` shut down", self.shared.label);
        self.metrics()
    }

    /// [`shutdown`](ModelPool::shutdown) for synchronous callers (blocks the thread).
    pub fn shutdown_blocking(&self) -> PoolMetrics {
        block_on(self.shutdown())
    }

    /// The model's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.shared.inputs
    }

    /// The model's outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.shared.outputs
    }

    /// The core of each copy, in pool order.
    pub fn cores(&self) -> Vec<u32> {
        self.shared.copies.iter().map(|c| c.core).collect()
    }

    /// Inputs and outputs of at least this many bytes move on TENSOR_OP units.
    pub fn large_transfer_bytes(&self) -> usize {
        self.shared.large_transfer
    }
}

impl std::fmt::Debug for ModelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelPool")
            .field("model", &self.shared.label)
            .field("cores", &self.cores())
            .finish_non_exhaustive()
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread, parked while it is pending (every wait of the pool is
/// woken by an event, so parking never misses progress).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
