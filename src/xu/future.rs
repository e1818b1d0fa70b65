//! Awaiting requests: [`RequestFuture`].
//!
//! A pending future registers its waker where it is woken when its request completes:
//! with completion events (runtime >= 2.32), with its unit's eventfd, which one thread
//! watches with `epoll` for every unit (`events.rs`), or, with feature `tokio` inside a
//! tokio runtime, with an eventfd of the unit that runtime's reactor watches
//! (`tokio_events.rs`); on a 2.31 runtime, with one
//! background thread that polls every registered request with the usual backoff.
//! Neither thread holds a runtime handle (only function pointers, ids and wakers), so
//! neither can be what keeps a runtime open or the one that closes it.

use std::future::{Future, IntoFuture};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use super::events::{Waiter, new_waiter_key};
use super::failed::{Failed, finish};
use super::payload::Payload;
use super::queue::QueueState;
use super::request::Request;
use super::seq::SeqId;
use super::wait::Backoff;
use crate::error::{Error, Result};
use crate::raw;
use nrt_sys::Library;

/// A [`Request`] as a [`Future`]: resolves to what [`Request::wait`] returns, without
/// blocking the executor's thread and without busy polling. Works with any executor.
///
/// ```no_run
/// # async fn demo(unit: neuron_rt::ExecUnit, tensor: neuron_rt::Tensor) -> neuron_rt::Result<()> {
/// let filled: Vec<f32> = unit.read(&tensor, 0, vec![0.0f32; 6])?.await?;
/// # Ok(())
/// # }
/// ```
///
/// Dropping the future before it resolves (a timeout, `select!`, an aborted task) drops
/// the request, which never blocks: cancellation is instant and safe (see [`Request`]).
///
/// Waking costs nothing while the request runs: with completion events the future is
/// woken once, by the event thread, when its request completed (when the queue
/// predicts the end of a request awaited right after its submission, the event thread
/// wakes itself shortly before and looks for the completion for a few microseconds, so
/// the executor is woken by a thread that is awake; with feature `tokio`,
/// awaited on a tokio runtime: by that runtime's own reactor, no thread of this crate in
/// between; the runtime needs its IO driver, and must be driven, as for any tokio IO);
/// without, the polling
/// thread checks it with backoff (5 ms apart at most: no more than 200 wake-ups per
/// second).
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RequestFuture<T: Payload> {
    request: Option<Request<T>>,
    watch: CompletionWatch,
}

impl<T: Payload> IntoFuture for Request<T> {
    type Output = Result<T>;
    type IntoFuture = RequestFuture<T>;

    fn into_future(self) -> RequestFuture<T> {
        RequestFuture {
            request: Some(self),
            watch: CompletionWatch::new(),
        }
    }
}

impl<T: Payload> Future for RequestFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // RequestFuture is Unpin (it holds no self-references).
        let this = self.get_mut();
        let Some(request) = this.request.as_ref() else {
            return Poll::Ready(Err(Error::invalid(
                "self",
                "a request future was polled after it resolved",
            )));
        };
        if this.watch.poll(request, cx).is_pending() {
            return Poll::Pending;
        }
        this.watch.cancel(request);
        match this.request.take() {
            // Complete: `wait` returns at once. On an error, `wait` reports it (and leaks
            // the payload if completion stays unobservable).
            Some(request) => Poll::Ready(request.wait()),
            None => Poll::Pending,
        }
    }
}

impl<T: Payload> Drop for RequestFuture<T> {
    fn drop(&mut self) {
        // Before the request (a field) is dropped: see `CompletionWatch::registered`.
        if let Some(request) = &self.request {
            self.watch.cancel(request);
        }
    }
}

/// A [`Request`] awaited with its payload also on failure: resolves to `Ok(payload)`, or
/// to a [`Failed`] with the error and the payload (tensor sets, buffers) whenever it still
/// exists. The async form of [`Request::wait_with_payload`], made by
/// [`Request::completion`]; with it, a pool of recycled sets loses none to a failed
/// request.
///
/// Like [`RequestFuture`], it never blocks its executor's thread and never busy-polls,
/// and dropping it before it resolves drops the request, which never blocks (see
/// [`Request`]).
///
/// ```no_run
/// # async fn demo(unit: neuron_rt::ExecUnit, model: neuron_rt::Model,
/// #     pool: &mut Vec<neuron_rt::ExecSets>) -> neuron_rt::Result<()> {
/// let (inputs, outputs) = pool.pop().expect("a free pair");
/// match unit.execute(&model, inputs, outputs)?.completion().await {
///     Ok(sets) => pool.push(sets),
///     Err(failed) => {
///         eprintln!("{}", failed.error());
///         // The sets come back even though the execution failed.
///         pool.extend(failed.into_payload());
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Completion<T: Payload> {
    request: Option<Request<T>>,
    watch: CompletionWatch,
}

impl<T: Payload> Request<T> {
    /// This request as a future that hands the payload back also when the request
    /// failed (see [`Completion`]); `request.await` drops it on failure instead.
    pub fn completion(self) -> Completion<T> {
        Completion {
            request: Some(self),
            watch: CompletionWatch::new(),
        }
    }
}

impl<T: Payload> Future for Completion<T> {
    type Output = std::result::Result<T, Failed<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Completion is Unpin (it holds no self-references).
        let this = self.get_mut();
        let Some(request) = this.request.as_ref() else {
            return Poll::Ready(Err(Failed::new(
                Error::invalid("self", "a completion was polled after it resolved"),
                None,
            )));
        };
        if this.watch.poll(request, cx).is_pending() {
            return Poll::Pending;
        }
        this.watch.cancel(request);
        match this.request.take() {
            // Complete: `finish` returns at once.
            Some(request) => Poll::Ready(finish(request)),
            None => Poll::Pending,
        }
    }
}

impl<T: Payload> Drop for Completion<T> {
    fn drop(&mut self) {
        // Before the request (a field) is dropped: see `CompletionWatch::registered`.
        if let Some(request) = &self.request {
            self.watch.cancel(request);
        }
    }
}

/// Wakes a task when a request it does not own completes: what [`RequestFuture`] and
/// the staged pipelines (which watch the oldest request of several units at once) wait
/// with. One watch follows one request at a time: [`cancel`](CompletionWatch::cancel)
/// it with that request before the request is consumed or dropped, then it can watch
/// another one.
#[derive(Debug, Default)]
pub(crate) struct CompletionWatch {
    /// Whether a waker of this watch may be registered (with the unit's events or the
    /// poller); removed by `cancel`.
    registered: bool,
    /// This watch's key with the units' events and in the poller, unique in the
    /// process; 0 before the first registration.
    token: u64,
    /// Whether it was registered with the poller since the last `cancel` (runtime 2.31,
    /// or events refused).
    polled: bool,
    /// Polls that found the request still running after a completion event woke this
    /// watch. A few are normal; many mean the library signals before it reports
    /// completion, and the watch then polls instead of spinning with the event thread.
    early_wakeups: u32,
}

/// [`CompletionWatch::early_wakeups`] after which a watch stops relying on events.
const MAX_EARLY_WAKEUPS: u32 = 64;

impl CompletionWatch {
    pub(crate) const fn new() -> CompletionWatch {
        CompletionWatch {
            registered: false,
            token: 0,
            polled: false,
            early_wakeups: 0,
        }
    }

    /// `Ready` once `request` has completed (or completion cannot be observed: waiting
    /// for it then reports the error); otherwise registers `cx`'s waker to be woken when
    /// it completes and returns `Pending`.
    pub(crate) fn poll<T: Payload>(
        &mut self,
        request: &Request<T>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match request.is_complete() {
            Ok(false) => {}
            Ok(true) | Err(_) => return Poll::Ready(()),
        }
        let was_registered = std::mem::replace(&mut self.registered, true);
        if self.token == 0 {
            self.token = new_waiter_key();
        }
        let unit = request.unit_ref();
        let waiter = match &unit.state.events {
            Some(events) if self.early_wakeups < MAX_EARLY_WAKEUPS => {
                events.add_waiter(request.seq(), self.token, cx.waker())
            }
            _ => Waiter::Refused,
        };
        // A new entry after an earlier one: the event thread woke (and removed) it, yet
        // the request is still running.
        if was_registered && waiter == Waiter::Added {
            self.early_wakeups += 1;
        }
        match waiter {
            // The earlier entry still waits for its signal.
            Waiter::Kept => Poll::Pending,
            Waiter::Added => {
                // A completion just before the registration signalled nobody: look once
                // more (the registration is visible to later signals).
                if matches!(request.is_complete(), Ok(false)) {
                    return Poll::Pending;
                }
                Poll::Ready(())
            }
            Waiter::Refused => {
                self.polled = true;
                poller().register(
                    self.token,
                    unit.rt.inner.lib(),
                    &unit.state,
                    request.seq(),
                    cx.waker(),
                );
                Poll::Pending
            }
        }
    }

    /// Removes this watch's waker from wherever it was registered for `request` (the
    /// request it watched), so that it can watch another one.
    pub(crate) fn cancel<T: Payload>(&mut self, request: &Request<T>) {
        if std::mem::take(&mut self.registered) {
            if let Some(events) = &request.unit_ref().state.events {
                events.remove_waiter(request.seq(), self.token);
            }
            // A unit with events uses the poller only when libnrt refused a registration.
            if std::mem::take(&mut self.polled) {
                poller().deregister(self.token);
            }
        }
        self.early_wakeups = 0;
    }
}

/// Futures waiting for their request, polled by one thread.
struct Poller {
    waiting: Mutex<Vec<Waiting>>,
    changed: Condvar,
    /// Whether the thread could be started; if not, futures wake themselves at once.
    running: bool,
}

/// A registered future: the library (libraries stay loaded for the life of the process;
/// it has the v3 API: ASYNC_V3 is checked before any unit exists), the request's queue
/// (weakly), the request's id and the waker. No handle: the poller never keeps a runtime
/// open. Once the queue's state is gone (its runtime closed: only a forgotten future
/// that borrowed its unit can still be listed then), the entry is woken and dropped
/// without asking libnrt, which may by then run a later runtime that never issued the
/// id.
struct Waiting {
    token: u64,
    lib: &'static Library,
    queue: Weak<QueueState>,
    seq: SeqId,
    waker: Waker,
}

impl Waiting {
    fn pending(&self) -> bool {
        if self.queue.strong_count() == 0 {
            return false;
        }
        // SAFETY: the library has the v3 API (see `Waiting`). After nrt_close libnrt
        // answers with an error: not pending (the entry is woken and dropped).
        matches!(
            unsafe { raw::xu::is_completed(self.lib, self.seq.raw()) },
            Ok(false)
        )
    }
}

/// Wakes `waker` once request `seq` (of `lib`, which has the v3 API) completed, by
/// polling with backoff on the process's poller thread; `key` names the entry (see
/// [`new_waiter_key`]). For units without completion events.
pub(crate) fn poll_for(key: u64, queue: &Arc<QueueState>, seq: SeqId, waker: &Waker) {
    poller().register(key, queue.lib(), queue, seq, waker);
}

/// Removes the poller entry `key`, if any.
pub(crate) fn stop_polling(key: u64) {
    poller().deregister(key);
}

fn poller() -> &'static Poller {
    static POLLER: OnceLock<&'static Poller> = OnceLock::new();
    POLLER.get_or_init(|| {
        let started = std::thread::Builder::new()
            .name("neuron-rt-poller".into())
            .spawn(|| poll_forever(poller()));
        // Leaked once per process: the thread refers to it for as long as it runs.
        Box::leak(Box::new(Poller {
            waiting: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            running: started.is_ok(),
        }))
    })
}

impl Poller {
    fn lock(&self) -> MutexGuard<'_, Vec<Waiting>> {
        // Entries are pushed and removed whole, so a poisoned list is still consistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(
        &self,
        token: u64,
        lib: &'static Library,
        queue: &Arc<QueueState>,
        seq: SeqId,
        waker: &Waker,
    ) {
        if !self.running {
            // No poller thread: fall back to being polled again by the executor.
            waker.wake_by_ref();
            return;
        }
        let mut waiting = self.lock();
        let replaced = match waiting.iter_mut().find(|w| w.token == token) {
            Some(entry) if entry.waker.will_wake(waker) => None,
            Some(entry) => Some(std::mem::replace(&mut entry.waker, waker.clone())),
            None => {
                waiting.push(Waiting {
                    token,
                    lib,
                    queue: Arc::downgrade(queue),
                    seq,
                    waker: waker.clone(),
                });
                None
            }
        };
        drop(waiting);
        // Dropped outside the lock: dropping a waker runs the executor's code, which may
        // free a task holding another registered future, whose drop takes the lock.
        drop(replaced);
        self.changed.notify_one();
    }

    /// Forgets the entry with `token`, if there is one.
    fn deregister(&self, token: u64) {
        if !self.running {
            return;
        }
        let entry = {
            let mut waiting = self.lock();
            waiting
                .iter()
                .position(|w| w.token == token)
                .map(|i| waiting.swap_remove(i))
        };
        // Dropped outside the lock: dropping a waker may run the executor's code.
        drop(entry);
    }
}

fn poll_forever(poller: &'static Poller) {
    let mut backoff = Backoff::new();
    let mut ready: Vec<Waker> = Vec::new();
    loop {
        {
            let mut waiting = poller.lock();
            while waiting.is_empty() {
                waiting = poller
                    .changed
                    .wait(waiting)
                    .unwrap_or_else(|e| e.into_inner());
                backoff = Backoff::new();
            }
            // Completed, unpollable (the future reports the error) and abandoned (future
            // dropped) entries go. Their wakers are moved out, not dropped here: dropping
            // one runs the executor's code, which must not run under the lock.
            let mut i = 0;
            while let Some(w) = waiting.get(i) {
                if w.pending() {
                    i += 1;
                } else {
                    ready.push(waiting.swap_remove(i).waker);
                }
            }
        }
        if ready.is_empty() {
            backoff.pause(None);
        } else {
            // Woken outside the lock: a waker may poll (and register) right away. A
            // waker that panics (an executor's bug) must not end this thread, which
            // every future of the process relies on.
            for waker in ready.drain(..) {
                let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
            }
            backoff = Backoff::new();
        }
    }
}
