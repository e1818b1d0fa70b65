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
//!   event thread, or another runtime) when polled. The next registration on the unit
//!   (from any thread) removes dead watches: their `AsyncFd` is dropped, and with it
//!   the runtime's IO driver (its epoll fd and waker), and their eventfd is kept for
//!   the unit's next watch. So a unit holds the eventfds of the runtimes that are alive
//!   at once, whatever the number that came and went.
//! * A runtime without its IO driver (`enable_io` not called) cannot register fds:
//!   tokio panics on the attempt, which is caught once per runtime (tokio's panic hook
//!   prints its message; the unit remembers the last [`NO_IO_REMEMBERED`] such
//!   runtimes); that runtime's futures use the event thread. (Under `panic = "abort"`
//!   that panic aborts, as it would for any tokio IO type used on such a runtime: the
//!   feature's docs ask for `enable_io`.)
//! * A future polled in a runtime's context relies on that runtime's reactor being
//!   driven, as any tokio IO does (a current-thread runtime merely entered with
//!   `Handle::enter` and never run would not wake it).
//! * An eventfd is never closed before the unit closes (libnrt may still signal a
//!   registration nobody consumed): the unit keeps each one, in a watch or for reuse,
//!   until it is dropped after `nrt_close`. A stale signal in a reused eventfd causes
//!   one spurious check of the unit's waiters, nothing else.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::runtime::{Handle, Id};

/// How many runtimes without an IO driver a unit remembers (so as not to try, and have
/// tokio panic, again on each poll there).
const NO_IO_REMEMBERED: usize = 16;

/// What a watch calls back into: the unit's list of waiting futures.
pub(crate) trait Signalled: Send + Sync {
    /// `fd` was signalled: drain it, then wake the futures whose request completed.
    /// `woken` is a reusable buffer (empty on entry and on return). `everyone`: wake
    /// every waiter whatever its request (the watch died).
    fn on_signal(&self, fd: RawFd, woken: &mut Vec<Waker>, everyone: bool);
}

/// A raw eventfd number for `AsyncFd`, which must not own (close) it: [`TokioWatch`]
/// holds the fd and drops the `AsyncFd` first.
struct RawEventFd(RawFd);

impl AsRawFd for RawEventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The eventfd of one unit for the futures polled on one tokio runtime.
pub(crate) struct TokioWatch {
    /// The path of the futures waiting through it (> 0, never reused in the unit).
    path: u64,
    runtime: Id,
    /// Registered with that runtime's reactor; `None` once the unit closed or the watch
    /// was removed. Dropped (deregistered) before `fd` can close (see [`TokioWatches`]).
    afd: Mutex<Option<AsyncFd<RawEventFd>>>,
    /// False once the runtime shut down (or the unit closed).
    alive: AtomicBool,
    unit: Weak<dyn Signalled>,
    /// Reusable buffer for the wakers of one signal.
    woken: Mutex<Vec<Waker>>,
    /// Shared with the unit's [`TokioWatches`], which keeps it open until it is dropped.
    fd: Arc<OwnedFd>,
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

/// The tokio watches of one unit, one per live runtime its futures were polled on.
#[derive(Default)]
pub(crate) struct TokioWatches {
    list: Mutex<List>,
    /// Set by [`detach`](TokioWatches::detach): no watch is made any more.
    closed: AtomicBool,
}

#[derive(Default)]
struct List {
    watches: Vec<Arc<TokioWatch>>,
    /// Eventfds of removed watches, for the next ones (never closed before the unit).
    spare: Vec<Arc<OwnedFd>>,
    /// The last runtimes found without an IO driver, newest last.
    no_io: VecDeque<Id>,
    /// The path of the last watch made.
    last_path: u64,
}

impl List {
    /// Takes the watches whose runtime shut down out of the list (their eventfds go to
    /// the spares); the caller drops their `AsyncFd`s outside the list's lock.
    fn take_dead(&mut self) -> Vec<Arc<TokioWatch>> {
        if self.watches.iter().all(|w| w.alive()) {
            return Vec::new();
        }
        let (alive, dead): (Vec<_>, Vec<_>) = std::mem::take(&mut self.watches)
            .into_iter()
            .partition(|w| w.alive());
        self.watches = alive;
        self.spare.extend(dead.iter().map(|w| Arc::clone(&w.fd)));
        dead
    }
}

/// Deregisters removed watches from their (shut down) reactors; dropping the last
/// `AsyncFd` of a runtime frees its IO driver. Outside every lock of ours: dropping an
/// `AsyncFd` clears the reactor's wakers, which may drop a watch.
fn drop_dead(dead: Vec<Arc<TokioWatch>>) {
    for watch in dead {
        let afd = lock(&watch.afd).take();
        drop(afd);
    }
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
        let handle = Handle::try_current();
        let mut list = lock(&self.list);
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let dead = list.take_dead();
        if !dead.is_empty() {
            drop(list);
            drop_dead(dead);
            list = lock(&self.list);
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
        }
        let runtime = handle.ok()?.id();
        if let Some(watch) = list.watches.iter().find(|w| w.runtime == runtime) {
            return watch.alive().then(|| (watch.path, watch.fd.as_raw_fd()));
        }
        if list.no_io.contains(&runtime) {
            return None;
        }
        let fd = match list.spare.pop() {
            Some(fd) => fd,
            None => Arc::new(new_fd()?),
        };
        // Inside the runtime's context (try_current succeeded), as registering needs.
        // tokio panics when the runtime has no IO driver: caught, remembered.
        let afd = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the fd stays open while the AsyncFd exists: the watch made below
            // holds it, and this unit's `TokioWatches` holds it until it is dropped,
            // after every AsyncFd was (`detach`, `drop_dead`); nothing changes it.
            unsafe {
                AsyncFd::register_with_interest(RawEventFd(fd.as_raw_fd()), Interest::READABLE)
            }
        }))
        .ok()
        .and_then(Result::ok);
        let Some(afd) = afd else {
            list.spare.push(fd);
            if list.no_io.len() == NO_IO_REMEMBERED {
                list.no_io.pop_front();
            }
            list.no_io.push_back(runtime);
            return None;
        };
        list.last_path += 1;
        let watch = Arc::new(TokioWatch {
            path: list.last_path,
            runtime,
            afd: Mutex::new(Some(afd)),
            alive: AtomicBool::new(true),
            unit: unit(),
            woken: Mutex::new(Vec::new()),
            fd,
        });
        list.watches.push(Arc::clone(&watch));
        drop(list);
        // Outside the list's lock: arming may wake futures (a runtime shutting down).
        watch.arm();
        watch.alive().then(|| (watch.path, watch.fd.as_raw_fd()))
    }

    /// Deregisters every watch from its reactor (the unit closes); the eventfds stay
    /// open until this value is dropped, after `nrt_close`.
    pub(crate) fn detach(&self) {
        let watches = {
            let mut list = lock(&self.list);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut list.watches)
        };
        for watch in &watches {
            watch.alive.store(false, Ordering::Release);
        }
        // The eventfds must outlive nrt_close: kept until this value is dropped.
        lock(&self.list)
            .spare
            .extend(watches.iter().map(|w| Arc::clone(&w.fd)));
        drop_dead(watches);
    }
}
