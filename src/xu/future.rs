//! Awaiting requests: [`RequestFuture`], woken by one shared poller thread.
//!
//! libnrt offers no completion callback in the v3 API, only polls. Rather than have
//! every pending future re-poll itself through the executor (a busy loop), pending
//! futures register with one background thread that polls all of them with the usual
//! backoff and wakes each when its request completes. The thread is started on first
//! use and blocks on a condition variable (no CPU) while nothing is registered.

use std::future::{Future, IntoFuture};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use super::request::{Payload, Request};
use super::seq::SeqId;
use super::unit::UnitInner;
use super::wait::Backoff;
use crate::{Error, Result};

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
/// Dropping the future before it resolves drops the request, which waits for it.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct RequestFuture<T: Payload> {
    request: Option<Request<T>>,
    /// Whether the poller thread may hold an entry for this future. The entry goes
    /// before the request does (on resolving and on drop), so that the poller never
    /// holds the last handle of the unit, and through it of the runtime.
    registered: bool,
}

impl<T: Payload> IntoFuture for Request<T> {
    type Output = Result<T>;
    type IntoFuture = RequestFuture<T>;

    fn into_future(self) -> RequestFuture<T> {
        RequestFuture {
            request: Some(self),
            registered: false,
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
        match request.is_complete() {
            Ok(false) => {
                poller().register(&request.unit_inner(), request.seq(), cx.waker());
                this.registered = true;
                Poll::Pending
            }
            // Complete: `wait` returns at once. On a polling error, `wait` reports it
            // (and leaks the payload if completion stays unobservable).
            Ok(true) | Err(_) => {
                this.deregister();
                match this.request.take() {
                    Some(request) => Poll::Ready(request.wait()),
                    None => Poll::Pending,
                }
            }
        }
    }
}

impl<T: Payload> RequestFuture<T> {
    /// Removes this future's entry from the poller, if it has one. Once this returns,
    /// the poller holds no handle obtained through the entry (it upgrades its weak
    /// reference only under the lock that this takes).
    fn deregister(&mut self) {
        if std::mem::take(&mut self.registered)
            && let Some(request) = &self.request
        {
            poller().deregister(request.unit_ptr(), request.seq());
        }
    }
}

impl<T: Payload> Drop for RequestFuture<T> {
    fn drop(&mut self) {
        // Before the request (a field) is dropped: see `registered`.
        self.deregister();
    }
}

/// Futures waiting for their request, polled by one thread.
struct Poller {
    waiting: Mutex<Vec<Waiting>>,
    changed: Condvar,
    /// Whether the thread could be started; if not, futures wake themselves at once.
    running: bool,
}

/// A registered future. The unit is held weakly: the poller must not be what keeps a
/// runtime open (its future, which owns the request, does that while it lives). The
/// poller upgrades it only while it holds the list's lock, and a future removes its
/// entry under that lock before letting go of its request, so the poller never holds
/// the last handle of a unit.
struct Waiting {
    unit: Weak<UnitInner>,
    seq: SeqId,
    waker: Waker,
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

    fn register(&self, unit: &Arc<UnitInner>, seq: SeqId, waker: &Waker) {
        if !self.running {
            // No poller thread: fall back to being polled again by the executor.
            waker.wake_by_ref();
            return;
        }
        let mut waiting = self.lock();
        let replaced = match waiting
            .iter_mut()
            .find(|w| w.seq == seq && std::ptr::eq(w.unit.as_ptr(), Arc::as_ptr(unit)))
        {
            Some(entry) if entry.waker.will_wake(waker) => None,
            Some(entry) => Some(std::mem::replace(&mut entry.waker, waker.clone())),
            None => {
                waiting.push(Waiting {
                    unit: Arc::downgrade(unit),
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

    /// Forgets the entry of request `seq` of `unit`, if there is one.
    fn deregister(&self, unit: *const UnitInner, seq: SeqId) {
        if !self.running {
            return;
        }
        let entry = {
            let mut waiting = self.lock();
            waiting
                .iter()
                .position(|w| w.seq == seq && std::ptr::eq(w.unit.as_ptr(), unit))
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
                let pending = w
                    .unit
                    .upgrade()
                    .is_some_and(|unit| matches!(unit.is_completed(w.seq), Ok(false)));
                if pending {
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
