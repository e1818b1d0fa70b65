//! Completion events through tokio's reactor (feature `tokio`).
//!
//! A future polled inside a tokio runtime registers, for its request, an eventfd that
//! the runtime's own reactor watches (`tokio::io::unix::AsyncFd`), instead of the unit
//! eventfd the crate's event thread watches. When libnrt signals it, the reactor calls
//! this module's waker ([`TokioWatch`]), on the thread that turns the reactor; that
//! waker wakes the futures whose request completed, and re-arms. No thread of the
//! crate runs in between, and the crate's event thread is not woken.
//!
//! * One [`TokioWatch`] per (unit, tokio runtime): an `AsyncFd` is bound to the reactor
//!   that registered it. A future polled on another runtime, or outside any, registers
//!   again through that path (the caller, `events.rs`, tracks which path an entry used).
//! * The eventfd is shared by every future of the unit on that runtime; tokio's
//!   readiness is edge-triggered, so each wake-up clears readiness, then drains the
//!   eventfd, then checks the completion of every waiter: a signal after the drain
//!   makes the fd ready again, so none is lost.
//! * A runtime that shuts down wakes the watch one last time with an error: the watch
//!   is then dead and wakes every waiter of the unit, which register again (on the
//!   event thread, or another runtime) when polled.
//! * A runtime without its IO driver (`enable_io` not called) cannot register fds:
//!   tokio panics on the attempt, which is caught once per runtime (tokio's panic hook
//!   prints its message); the watch stays dead and that runtime's futures use the
//!   event thread. (Under `panic = "abort"` that panic aborts, as it would for any
//!   tokio IO type used on such a runtime: the feature's docs ask for `enable_io`.)
//! * A future polled in a runtime's context relies on that runtime's reactor being
//!   driven, as any tokio IO does (a current-thread runtime merely entered with
//!   `Handle::enter` and never run would not wake it).
//! * The eventfd is never closed before the unit closes (libnrt may still signal a
//!   registration nobody consumed): the unit keeps every watch, dead or alive, until it
//!   is dropped after `nrt_close`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::runtime::{Handle, Id};

/// What a watch calls back into: the unit's list of waiting futures.
pub(crate) trait Signalled: Send + Sync {
    /// `fd` was signalled: drain it, then wake the futures whose request completed.
    /// `woken` is a reusable buffer (empty on entry and on return). `everyone`: wake
    /// every waiter whatever its request (the watch died).
    fn on_signal(&self, fd: RawFd, woken: &mut Vec<Waker>, everyone: bool);
}

/// A raw eventfd number for `AsyncFd`, which must not own (close) it: [`TokioWatch`]
/// owns the fd and drops the `AsyncFd` first.
struct RawEventFd(RawFd);

impl AsRawFd for RawEventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The eventfd of one unit for the futures polled on one tokio runtime.
pub(crate) struct TokioWatch {
    runtime: Id,
    /// Registered with that runtime's reactor; `None` once the unit closed, or when the
    /// runtime has no IO driver. Declared before `fd`: dropped (deregistered) first.
    afd: Mutex<Option<AsyncFd<RawEventFd>>>,
    /// False once the runtime shut down (or could not register the fd).
    alive: AtomicBool,
    unit: Weak<dyn Signalled>,
    /// Reusable buffer for the wakers of one signal.
    woken: Mutex<Vec<Waker>>,
    fd: OwnedFd,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value under these locks is replaced whole: a poisoned one is consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TokioWatch {
    /// Whether futures can wait through this watch.
    fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Registers the waker with the reactor; handles every signal already pending first.
    fn arm(self: &Arc<Self>) {
        loop {
            let afd = lock(&self.afd);
            let Some(registered) = afd.as_ref() else {
                return;
            };
            // No allocation: the waker is this watch's Arc.
            let waker = Waker::from(Arc::clone(self));
            let mut cx = Context::from_waker(&waker);
            match registered.poll_read_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(mut ready)) => {
                    // Cleared before the drain: a signal after the drain is a new edge.
                    ready.clear_ready();
                    drop(ready);
                    drop(afd);
                    self.signal(false);
                }
                Poll::Ready(Err(_)) => {
                    // The runtime shuts down. The AsyncFd is dropped with the unit, not
                    // here (this may run inside tokio's shutdown).
                    drop(afd);
                    self.alive.store(false, Ordering::Release);
                    self.signal(true);
                    return;
                }
            }
        }
    }

    fn signal(&self, everyone: bool) {
        let mut woken = std::mem::take(&mut *lock(&self.woken));
        if let Some(unit) = self.unit.upgrade() {
            unit.on_signal(self.fd.as_raw_fd(), &mut woken, everyone);
        }
        *lock(&self.woken) = woken;
    }
}

impl Wake for TokioWatch {
    fn wake(self: Arc<Self>) {
        self.arm();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.arm();
    }
}

/// The tokio watches of one unit, one per runtime its futures were polled on.
#[derive(Default)]
pub(crate) struct TokioWatches {
    list: Mutex<Vec<Arc<TokioWatch>>>,
    /// Set by [`detach`](TokioWatches::detach): no watch is made any more.
    closed: AtomicBool,
}

impl TokioWatches {
    /// For a future polled now: `Some((path, fd))` inside a tokio runtime whose reactor
    /// watches (or now starts watching) an eventfd of this unit, where `path` (> 0)
    /// names that watch and `fd` is the eventfd to register with libnrt. `None` outside
    /// tokio, or when that runtime cannot watch fds (the caller uses the event thread).
    /// `unit` and `new_fd` are called only when a watch is made.
    pub(crate) fn current(
        &self,
        unit: impl FnOnce() -> Weak<dyn Signalled>,
        new_fd: impl FnOnce() -> Option<OwnedFd>,
    ) -> Option<(u64, RawFd)> {
        let runtime = Handle::try_current().ok()?.id();
        let mut list = lock(&self.list);
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if let Some(at) = list.iter().position(|w| w.runtime == runtime) {
            let watch = &list[at];
            return watch.alive().then(|| (at as u64 + 1, watch.fd.as_raw_fd()));
        }
        let fd = new_fd()?;
        // Inside the runtime's context (try_current succeeded), as registering needs.
        // tokio panics when the runtime has no IO driver: caught, the watch stays dead.
        let afd = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the fd is owned by the watch made below, which drops the AsyncFd
            // before it (field order) and never changes it.
            unsafe {
                AsyncFd::register_with_interest(RawEventFd(fd.as_raw_fd()), Interest::READABLE)
            }
        }))
        .ok()
        .and_then(Result::ok);
        let alive = afd.is_some();
        let watch = Arc::new(TokioWatch {
            runtime,
            afd: Mutex::new(afd),
            alive: AtomicBool::new(alive),
            unit: unit(),
            woken: Mutex::new(Vec::new()),
            fd,
        });
        let raw = watch.fd.as_raw_fd();
        list.push(Arc::clone(&watch));
        let path = list.len() as u64;
        drop(list);
        // Outside the list's lock: arming may wake futures (a runtime shutting down).
        watch.arm();
        watch.alive().then_some((path, raw))
    }

    /// Deregisters every watch from its reactor (the unit closes); the eventfds stay
    /// open until this value is dropped, after `nrt_close`.
    pub(crate) fn detach(&self) {
        let list = {
            let mut list = lock(&self.list);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *list)
        };
        for watch in &list {
            watch.alive.store(false, Ordering::Release);
            // Dropped outside the watch's lock: deregistering clears the reactor's
            // wakers, which may drop this watch's waker.
            let afd = lock(&watch.afd).take();
            drop(afd);
        }
        // The eventfds must outlive nrt_close: kept until this value is dropped.
        *lock(&self.list) = list;
    }
}
