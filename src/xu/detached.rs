//! Requests dropped before they completed: their payload, status slot and handles are
//! handed to one background thread, which releases them once the device is done.
//!
//! Dropping a [`Request`](crate::Request) (or its future) therefore never blocks, and
//! cancelling a request is instant and safe: nothing libnrt may still use is freed
//! before its request completed. The thread blocks on one eventfd that libnrt signals
//! for each handed-over request (runtime >= 2.32, registered once per request) and that
//! a hand-over signals too; only while it holds a request of a unit without events does
//! it poll, every [`POLL_EVERY`]. Each request it holds keeps its unit, and so the
//! runtime, alive: `nrt_close` happens only after every handed-over request completed
//! (possibly on this thread, when it releases the last handle). A hand-over allocates
//! once, for the boxed release of its payload (nothing for a copy, whose payload is
//! empty); requests that complete before they are dropped are released on the spot.

use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::eventfd::{block_on, drain, new_eventfd, signal};
use super::payload::KeepAlive;
use super::payload::sealed::Detached;
use super::queue::UnitInner;
use super::seq::SeqId;
use super::slots::Slot;
use crate::error::NrtStatus;
use crate::profiling::spans::{self, Span};

/// Orphans the lists have room for before they grow.
const RESERVED: usize = 256;

/// How often the thread checks requests of units without completion events.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// A request dropped before completion.
pub(crate) struct Orphan {
    pub(crate) unit: Arc<UnitInner>,
    pub(crate) seq: SeqId,
    pub(crate) slot: Slot,
    pub(crate) payload: Detached,
    pub(crate) keep: Option<KeepAlive>,
    /// The request's `neuron_rt.schedule` span, closed when it is released.
    span: Span,
    /// Whether the thread's eventfd is registered with libnrt for this request.
    registered: bool,
}

impl Orphan {
    pub(crate) fn new(
        unit: Arc<UnitInner>,
        seq: SeqId,
        slot: Slot,
        payload: Detached,
        keep: Option<KeepAlive>,
        span: Span,
    ) -> Orphan {
        Orphan {
            unit,
            seq,
            slot,
            payload,
            keep,
            span,
            registered: false,
        }
    }

    /// Waits for completion on this thread, then releases (or leaks, if completion
    /// cannot be observed).
    pub(crate) fn release_when_complete(self) {
        match self.unit.wait(self.seq) {
            Ok(()) => self.release(),
            Err(_) => std::mem::forget(self),
        }
    }

    /// Releases everything; only after completion was observed.
    fn release(self) {
        // Pairs with libnrt's release when it publishes completion.
        fence(Ordering::Acquire);
        // SAFETY: the slot's pool belongs to `self.unit`, alive here.
        let raw = unsafe { self.slot.cell() }.load(Ordering::Acquire);
        // A fatal status still makes the unit unrecoverable, as for a waited request.
        let status = NrtStatus::from_raw(raw);
        if status.is_fatal() {
            self.unit.state.mark_fatal(raw);
        }
        let Orphan {
            unit,
            slot,
            payload,
            keep,
            span,
            ..
        } = self;
        spans::record_status(&span, status);
        drop(span);
        unit.state.slots.give_back(slot);
        // SAFETY: the request completed (observed by the caller), so libnrt no longer
        // accesses the payload.
        unsafe { payload.run() };
        drop(keep);
        drop(unit);
    }
}

struct Reaper {
    orphans: Mutex<Vec<Orphan>>,
    fd: OwnedFd,
}

fn reaper() -> Option<&'static Reaper> {
    static REAPER: OnceLock<Option<&'static Reaper>> = OnceLock::new();
    *REAPER.get_or_init(|| {
        let fd = new_eventfd()?;
        // Leaked once per process: the thread uses it for as long as it runs, and libnrt
        // may signal the fd until the process ends (it is never closed).
        let reaper: &'static Reaper = Box::leak(Box::new(Reaper {
            // Room for many at once, so that handing over does not allocate (requests
            // dropped while running are normally few at a time).
            orphans: Mutex::new(Vec::with_capacity(RESERVED)),
            fd,
        }));
        std::thread::Builder::new()
            .name("neuron-rt-reaper".into())
            .spawn(move || reaper.run())
            .ok()?;
        Some(reaper)
    })
}

/// Starts the background thread if it is not running yet (with the first request, so
/// that a later drop does not start a thread, or allocate, on its path).
pub(crate) fn start() {
    let _ = reaper();
}

/// Hands `orphan` to the background thread; gives it back if there is none (the
/// caller then waits for it itself).
pub(crate) fn hand_over(orphan: Orphan) -> Result<(), Orphan> {
    let Some(reaper) = reaper() else {
        return Err(orphan);
    };
    reaper.lock().push(orphan);
    signal(reaper.fd.as_raw_fd());
    Ok(())
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, Vec<Orphan>> {
        // Entries are pushed and removed whole.
        self.orphans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let fd = self.fd.as_raw_fd();
        let mut done = Vec::with_capacity(RESERVED);
        loop {
            drain(fd);
            let mut poll = false;
            {
                let mut orphans = self.lock();
                let mut i = 0;
                while i < orphans.len() {
                    let orphan = &mut orphans[i];
                    match orphan.unit.is_completed(orphan.seq) {
                        Ok(true) => done.push(orphans.swap_remove(i)),
                        // Completion can no longer be observed: leak it, as a waiting
                        // request would (nothing it holds may be freed).
                        Err(_) => std::mem::forget(orphans.swap_remove(i)),
                        Ok(false) => {
                            if !orphan.registered {
                                orphan.registered = orphan.unit.state.event_api.is_some_and(
                                    // SAFETY: `fd` is never closed (see `reaper`).
                                    |api| unsafe { api.register(orphan.seq, fd) },
                                );
                            }
                            poll |= !orphan.registered;
                            i += 1;
                        }
                    }
                }
            }
            // Outside the lock: releasing may drop the last handle of a runtime
            // (`nrt_close`). A panic there (a bug) must not end this thread.
            for orphan in done.drain(..) {
                let _ = catch_unwind(AssertUnwindSafe(|| orphan.release()));
            }
            block_on(fd, poll.then_some(POLL_EVERY));
        }
    }
}
