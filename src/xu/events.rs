//! Completion events (runtime >= 2.32): eventfds that libnrt signals when requests
//! complete, so that waits block instead of polling.
//!
//! * Blocking waits ([`wait_for_seq`]) register the waiting thread's own eventfd for the
//!   one sequence id they wait for (`nrta_event_register_seq_id_completion`) and block
//!   in `ppoll(2)` on it: one wake-up, from libnrt, when the request completes.
//! * Futures register their waker with the unit's [`UnitEvents`], and the unit's
//!   eventfd with libnrt for their request's sequence id. One background thread blocks
//!   in `epoll_wait(2)` over the eventfds of every unit and wakes the futures whose
//!   request completed. It never holds a runtime handle, so it can never be the one
//!   that closes a runtime. (The unit eventfd is registered per awaited request rather
//!   than for every completion of the unit, `nrta_event_register_xu_completion`, so
//!   that requests nobody awaits, e.g. blocking waits, wake no second thread.) When
//!   the queue predicts the request's end (`timing.rs`), the event thread also wakes
//!   itself shortly before it and looks for the completion for a few microseconds
//!   (`near_end.rs`): the executor is then woken by a thread that is awake, or was
//!   microseconds ago, not by one back from a long sleep.
//! * With feature `tokio`, a future polled inside a tokio runtime registers an eventfd
//!   of the unit that the runtime's own reactor watches instead (`tokio_events.rs`):
//!   the event thread is not involved. Each waiter records its path; one polled again
//!   on another path (another runtime, or none) registers again there.
//!
//! Eventfds given to libnrt for a sequence are never closed: a registration that was
//! not consumed (a wait that timed out) may still be signalled later, and a closed fd
//! number can be reused by an unrelated file. Each thread takes one from a process-wide
//! pool and gives it back when it exits; a stale signal in a reused fd only causes one
//! spurious wake-up, after which the wait checks completion again. Unit eventfds are
//! closed only after `nrt_close`, when libnrt signals nothing any more.

use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use nrt_sys::Library;

use super::eventfd::{block_on, drain, new_eventfd};
use super::kind::XuKind;
use super::near_end::{MORE_LOOKS, NearEnd, NearEnds, WATCH_FOR, look_gap};
use super::seq::SeqId;
use super::timing::Timing;
use crate::objects::Capabilities;
use crate::raw;

/// A library with completion events: only made for one with
/// [`Capabilities::ASYNC_EVENTS`](crate::Capabilities::ASYNC_EVENTS) (which implies the v3
/// API), so having one is the proof the event calls below need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventApi {
    lib: &'static Library,
}

impl EventApi {
    /// `Some` for a library with ASYNC_EVENTS.
    pub(crate) fn new(lib: &'static Library, caps: Capabilities) -> Option<EventApi> {
        caps.contains(Capabilities::ASYNC_EVENTS)
            .then_some(EventApi { lib })
    }

    /// Asks libnrt to signal `fd` once request `seq` completed; whether it accepted.
    ///
    /// # Safety
    ///
    /// `fd` is an eventfd that stays open until the signal arrived or the runtime closed.
    pub(crate) unsafe fn register(self, seq: SeqId, fd: RawFd) -> bool {
        // SAFETY: ASYNC_EVENTS (how this value was made); `fd` as the caller guarantees.
        unsafe { raw::xu::event_register_seq_id_completion(self.lib, seq.raw(), fd) }.is_ok()
    }

    /// The number of the last request queue `(core, kind, queue)` completed, if libnrt
    /// answers (it does not after `nrt_close`).
    fn last_completed(self, core: u32, kind: XuKind, queue: u32) -> Option<u64> {
        // SAFETY: ASYNC_EVENTS implies the v3 API. Queue indices are below 3.
        unsafe { raw::xu::get_sequence(self.lib, core, kind.as_raw(), queue as c_int) }
            .ok()
            .map(|raw| SeqId::from_raw(raw).number())
    }
}

/// Eventfds of exited threads, for reuse (see the module docs: never closed).
static SPARE_FDS: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

fn spare_fds() -> MutexGuard<'static, Vec<OwnedFd>> {
    // Push and pop only: a poisoned list is still consistent.
    SPARE_FDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The calling thread's eventfd for sequence registrations.
struct ThreadFd(Option<OwnedFd>);

impl Drop for ThreadFd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            spare_fds().push(fd);
        }
    }
}

thread_local! {
    static THREAD_FD: ThreadFd = ThreadFd(spare_fds().pop().or_else(new_eventfd));
}

/// Wake-ups without completion after which [`wait_for_seq`] gives up on events.
const MAX_SPURIOUS_WAKEUPS: u32 = 64;

/// Waits until `done` says the request `seq` completed, blocking on an eventfd that
/// libnrt signals when it does. Returns whether it completed within `timeout`.
///
/// `None` when events cannot be used for this wait (no eventfd, the thread is exiting,
/// or libnrt refused the registration): the caller polls instead.
pub(crate) fn wait_for_seq<E>(
    api: EventApi,
    seq: SeqId,
    timeout: Option<Duration>,
    mut done: impl FnMut() -> Result<bool, E>,
) -> Option<Result<bool, E>> {
    let fd = THREAD_FD
        .try_with(|t| t.0.as_ref().map(AsRawFd::as_raw_fd))
        .ok()
        .flatten()?;
    // A timeout too long for an `Instant` (e.g. `Duration::MAX`) means no deadline.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    // Wake-ups after which the request still was not complete. A few are normal (stale
    // signals of earlier waits of this thread); many mean that the library signals
    // before it reports completion, and blocking on it would spin: poll instead.
    let mut spurious = 0u32;
    loop {
        match done() {
            Ok(true) => return Some(Ok(true)),
            Ok(false) => {}
            Err(e) => return Some(Err(e)),
        }
        let remaining = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) if !r.is_zero() => Some(r),
                _ => return Some(Ok(false)),
            },
        };
        // Stale signals (from earlier waits of this thread) go first; registering an
        // already completed sequence signals at once, so nothing is lost in between.
        drain(fd);
        // SAFETY: `fd` is an eventfd this thread keeps open for the rest of the process
        // (module docs).
        let accepted = unsafe { api.register(seq, fd) };
        if !accepted || spurious >= MAX_SPURIOUS_WAKEUPS {
            return None;
        }
        block_on(fd, remaining);
        spurious += 1;
    }
}

/// What [`UnitEvents::add_waiter`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// A new entry, registered with libnrt.
    Added,
    /// The entry of an earlier poll still waits (not woken yet).
    Kept,
    /// libnrt refused the registration; nothing is registered.
    Refused,
}

/// One waiting future: the request number it waits for, its key, its waker, and the
/// path its registration with libnrt signals: 0 for the unit's eventfd (the event
/// thread), otherwise a tokio watch of the unit (feature `tokio`, `tokio_events.rs`).
struct Entry {
    number: u64,
    key: u64,
    waker: Waker,
    path: u64,
}

/// A key unique in the process, for [`UnitEvents::add_waiter`] (several futures may
/// wait for the same request: its own future, and admissions waiting for room).
pub(crate) fn new_waiter_key() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The completion eventfd of one unit and the futures waiting for its requests.
pub(crate) struct UnitEvents {
    fd: OwnedFd,
    api: EventApi,
    core: u32,
    kind: XuKind,
    queue: u32,
    /// (request number, waker) of the futures waiting on this unit.
    waiting: Mutex<Vec<Entry>>,
    /// The queue's timing (shared with its state): predicted ends to watch, and the
    /// completions the event thread sees, to learn from.
    timing: Arc<Timing>,
    /// Index in the event loop's table while registered there.
    slot: Mutex<Option<usize>>,
    /// The eventfds tokio runtimes' reactors watch for the futures polled on them.
    #[cfg(feature = "tokio")]
    tokio: super::tokio_events::TokioWatches,
}

impl std::fmt::Debug for UnitEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitEvents")
            .field("fd", &self.fd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl UnitEvents {
    /// Creates the unit's eventfd and registers it with the event loop. `None` if that
    /// fails (waits on this unit then poll).
    pub(crate) fn register(
        api: EventApi,
        core: u32,
        kind: XuKind,
        queue: u32,
        timing: Arc<Timing>,
    ) -> Option<Arc<UnitEvents>> {
        let fd = new_eventfd()?;
        let events = Arc::new(UnitEvents {
            fd,
            api,
            core,
            kind,
            queue,
            waiting: Mutex::new(Vec::new()),
            timing,
            slot: Mutex::new(None),
            #[cfg(feature = "tokio")]
            tokio: Default::default(),
        });
        match event_loop() {
            Some(lp) if lp.add(&events) => Some(events),
            _ => None,
        }
    }

    /// Removes the eventfd from the event loop (when the runtime closes) and wakes
    /// every future still registered (they check again). The fd itself is closed when
    /// the last reference goes, after `nrt_close`.
    pub(crate) fn detach(&self) {
        if let Some(lp) = event_loop() {
            lp.remove(self);
        }
        #[cfg(feature = "tokio")]
        self.tokio.detach();
        let woken = std::mem::take(&mut *self.lock());
        wake_all(woken.into_iter().map(|e| e.waker));
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Entries are pushed and removed whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes `waker` once request `seq` of this unit completed. Returns what happened:
    /// [`Waiter::Added`] (a new entry, registered with libnrt), [`Waiter::Kept`] (the
    /// entry of an earlier poll is still waiting), or [`Waiter::Refused`] (libnrt refused
    /// the registration: the caller polls instead). The caller checks for completion
    /// again after [`Waiter::Added`] (a completion just before the registration is then
    /// seen by that check, and libnrt signals one at once anyway).
    ///
    /// Polled inside a tokio runtime (feature `tokio`), the registration signals that
    /// runtime's reactor instead of the event thread; an entry polled again on another
    /// path (another runtime, or none) is registered again on the new one.
    pub(crate) fn add_waiter(self: &Arc<Self>, seq: SeqId, key: u64, waker: &Waker) -> Waiter {
        let (path, fd) = self.path();
        let mut waiting = self.lock();
        let number = seq.number();
        // A future's entry is found by the request's number and the future's key.
        let found = waiting
            .iter_mut()
            .find(|e| e.number == number && e.key == key);
        let (replaced, new) = match found {
            Some(e) if e.path == path && e.waker.will_wake(waker) => (None, false),
            Some(e) if e.path == path => {
                (Some(std::mem::replace(&mut e.waker, waker.clone())), false)
            }
            // Moved to another path: the old one may never signal (a runtime gone).
            Some(e) => {
                e.path = path;
                (Some(std::mem::replace(&mut e.waker, waker.clone())), true)
            }
            None => {
                waiting.push(Entry {
                    number,
                    key,
                    waker: waker.clone(),
                    path,
                });
                (None, true)
            }
        };
        drop(waiting);
        // Outside the lock: dropping a waker runs executor code.
        drop(replaced);
        if !new {
            return Waiter::Kept;
        }
        // SAFETY: the fd stays open until after nrt_close (this value owns it and the
        // runtime's registry holds this value).
        // A tokio watch's fd, likewise, is kept until this value is dropped.
        let accepted = unsafe { self.api.register(seq, fd) };
        if !accepted {
            self.remove_waiter(seq, key);
            return Waiter::Refused;
        }
        // The event thread's own path: watch near the predicted end, if there is one.
        if path == 0
            && let Some(near) = event_loop().and_then(|lp| lp.near.as_ref())
            && let Some(at) = self.timing.watch_from(number, near.lead())
        {
            near.add(Arc::downgrade(self), number, at, MORE_LOOKS);
        }
        Waiter::Added
    }

    /// The event thread's watch of request `number`, due now (`near_end.rs`): while a
    /// future still waits for it on this path, looks at the queue's progress until the
    /// request completed or [`WATCH_FOR`] passed, then wakes the futures whose request
    /// completed. A prediction that was wrong costs only the watch: the completion
    /// event still wakes them. A look that gives up with the request still running is
    /// followed by up to [`MORE_LOOKS`] more, from its predicted end on, further and
    /// further apart (a watch that began early: the timer's lead or the queue's timing
    /// still being learned, or a loaded machine).
    fn watch(self: &Arc<Self>, entry: &NearEnd<UnitEvents>, woken: &mut Vec<Waker>) {
        let number = entry.number;
        if !self
            .lock()
            .iter()
            .any(|e| e.number == number && e.path == 0)
        {
            return;
        }
        let until = Instant::now() + WATCH_FOR;
        let mut first = true;
        loop {
            match self.api.last_completed(self.core, self.kind, self.queue) {
                Some(last) if last >= number => break,
                // libnrt no longer answers (its runtime closed): wake them to check.
                None => break,
                Some(_) => {}
            }
            first = false;
            let now = Instant::now();
            if now >= until {
                if entry.more > 0
                    && let Some(end) = self.timing.predicted_end(number)
                    && let Some(near) = event_loop().and_then(|lp| lp.near.as_ref())
                {
                    let at = end.max(now + look_gap(entry.more));
                    near.add(Arc::downgrade(self), number, at, entry.more - 1);
                }
                return;
            }
            // A few hundred nanoseconds between looks, not a call in a tight loop.
            (0..32).for_each(|_| std::hint::spin_loop());
        }
        if !first {
            // Seen completing: that is when it completed, to the microsecond.
            self.timing.completed(number, Instant::now(), true);
        }
        self.wake_completed(self.fd.as_raw_fd(), woken, false);
    }

    /// Which path a future polled now waits on, and the eventfd libnrt signals for it.
    fn path(self: &Arc<Self>) -> (u64, RawFd) {
        #[cfg(feature = "tokio")]
        {
            let unit = || {
                let weak: std::sync::Weak<dyn super::tokio_events::Signalled> =
                    Arc::downgrade(self) as std::sync::Weak<UnitEvents>;
                weak
            };
            if let Some(found) = self.tokio.current(unit, new_eventfd) {
                return found;
            }
        }
        (0, self.fd.as_raw_fd())
    }

    /// Forgets the waiter `key` of request `seq`, if any.
    pub(crate) fn remove_waiter(&self, seq: SeqId, key: u64) {
        let removed = {
            let mut waiting = self.lock();
            let at = waiting
                .iter()
                .position(|e| e.number == seq.number() && e.key == key);
            at.map(|i| waiting.swap_remove(i))
        };
        // Outside the lock: dropping a waker runs executor code.
        drop(removed);
    }

    /// After a signal: wakes the futures whose request completed. `woken` is the event
    /// thread's reusable buffer (empty on entry and on return), so that waking
    /// allocates nothing once it has grown.
    fn on_signal(&self, woken: &mut Vec<Waker>) {
        self.wake_completed(self.fd.as_raw_fd(), woken, false);
    }

    /// Drains `fd`, then wakes the futures whose request completed (every future if
    /// `everyone`).
    fn wake_completed(&self, fd: RawFd, woken: &mut Vec<Waker>, everyone: bool) {
        drain(fd);
        // After nrt_close libnrt does not answer: `None`, handled below.
        let last = if everyone {
            None
        } else {
            self.api.last_completed(self.core, self.kind, self.queue)
        };
        let mut latest = None;
        {
            let mut waiting = self.lock();
            let mut i = 0;
            while i < waiting.len() {
                // Unknown progress: wake everyone, each checks for itself.
                if last.is_none_or(|last| waiting[i].number <= last) {
                    let entry = waiting.swap_remove(i);
                    latest = latest.max(Some(entry.number));
                    woken.push(entry.waker);
                } else {
                    i += 1;
                }
            }
        }
        // Woken by the completion of an awaited request: it completed about a wake-up
        // ago (`Timing::completed` shades that), the estimate a first watch starts from.
        if let Some(last) = last.filter(|&l| latest == Some(l)) {
            self.timing.completed(last, Instant::now(), false);
        }
        wake_all(woken.drain(..));
    }
}

#[cfg(feature = "tokio")]
impl super::tokio_events::Signalled for UnitEvents {
    fn on_signal(&self, fd: RawFd, woken: &mut Vec<Waker>, everyone: bool) {
        self.wake_completed(fd, woken, everyone);
    }
}

/// Wakes each waker outside any lock; a panicking waker (an executor bug) is contained.
fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    for waker in wakers {
        let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
    }
}

/// The epoll instance over every unit's eventfd, served by one thread.
struct EventLoop {
    epoll: OwnedFd,
    /// Units by slot index (the epoll data); freed slots are `None` and reused.
    units: Mutex<Vec<Option<Arc<UnitEvents>>>>,
    /// Watches near predicted ends; its timer is in the epoll set as [`TIMER_DATA`].
    near: Option<NearEnds<UnitEvents>>,
}

/// The epoll data of the near-end timer (unit slots count from 0).
const TIMER_DATA: u64 = u64::MAX;

fn event_loop() -> Option<&'static EventLoop> {
    static LOOP: OnceLock<Option<&'static EventLoop>> = OnceLock::new();
    *LOOP.get_or_init(|| {
        // SAFETY: no pointers; a negative result is an error.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        // Leaked once per process: the thread uses it for as long as the process runs.
        // Without a timer (or its epoll entry), futures are woken by events alone.
        let near = NearEnds::new().filter(|near: &NearEnds<UnitEvents>| {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: TIMER_DATA,
            };
            // SAFETY: valid epoll fd and timerfd; `event` is a live epoll_event.
            unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, near.fd(), &mut event) == 0 }
        });
        let lp: &'static EventLoop = Box::leak(Box::new(EventLoop {
            epoll,
            units: Mutex::new(Vec::new()),
            near,
        }));
        std::thread::Builder::new()
            .name("neuron-rt-events".into())
            .spawn(move || lp.run())
            .ok()
            .map(|_| lp)
    })
}

impl EventLoop {
    fn lock(&self) -> MutexGuard<'_, Vec<Option<Arc<UnitEvents>>>> {
        // Slots are set and cleared whole.
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, unit: &Arc<UnitEvents>) -> bool {
        let mut units = self.lock();
        let index = units.iter().position(Option::is_none).unwrap_or_else(|| {
            units.push(None);
            units.len() - 1
        });
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: index as u64,
        };
        // SAFETY: valid epoll fd and eventfd; `event` is a live epoll_event.
        let added = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                unit.fd.as_raw_fd(),
                &mut event,
            )
        } == 0;
        if added {
            units[index] = Some(Arc::clone(unit));
            *unit.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
        }
        added
    }

    fn remove(&self, unit: &UnitEvents) {
        let mut units = self.lock();
        if let Some(index) = unit.slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // SAFETY: valid fds; the event argument is ignored for EPOLL_CTL_DEL.
            let _ = unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    unit.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
            if let Some(slot) = units.get_mut(index) {
                *slot = None;
            }
        }
    }

    fn run(&self) {
        const BATCH: usize = 32;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut woken = Vec::new();
        let mut due: Vec<NearEnd<UnitEvents>> = Vec::new();
        loop {
            // SAFETY: `events` has room for BATCH entries; -1 blocks until one is ready.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as c_int,
                    -1,
                )
            };
            for event in events.iter().take(n.max(0) as usize) {
                if event.u64 == TIMER_DATA {
                    if let Some(near) = &self.near {
                        near.take_due(Instant::now(), &mut due);
                        for entry in due.drain(..) {
                            if let Some(unit) = entry.unit.upgrade() {
                                unit.watch(&entry, &mut woken);
                            }
                        }
                    }
                    continue;
                }
                let index = event.u64 as usize;
                // Cloned out of the table so that no lock is held while waking.
                let unit = self.lock().get(index).cloned().flatten();
                if let Some(unit) = unit {
                    unit.on_signal(&mut woken);
                }
            }
        }
    }
}
