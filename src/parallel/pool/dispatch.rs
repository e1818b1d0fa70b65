//! The pool's shared state and dispatch: its copies, the least-loaded choice among the
//! live ones, the guards that count a request on its copy and in the pool, and copies
//! leaving the rotation.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::metrics::{CopyMetrics, Counters, PoolMetrics, RequestCounts};
use super::sets::SetPool;
use crate::error::{Error, Result};
use crate::objects::{Model, TensorInfo};
use crate::xu::ExecUnit;

/// Everything a [`ModelPool`](super::ModelPool) handle shares.
pub(super) struct Shared {
    pub(super) copies: Box<[Arc<CopyState>]>,
    pub(super) load: Arc<PoolLoad>,
    pub(super) inputs: Vec<TensorInfo>,
    pub(super) outputs: Vec<TensorInfo>,
    /// The model's label, for errors.
    pub(super) label: String,
    /// Tensors of at least this many bytes are moved on TENSOR_OP units.
    pub(super) large_transfer: usize,
    /// Where the round robin among equally loaded copies starts next.
    next: AtomicUsize,
    /// Calls of `infer` and `lease`.
    pub(super) requests: AtomicU64,
    /// Requests refused before a copy was chosen.
    pub(super) rejected: AtomicU64,
}

/// Load counts shared by the copies and the guards (no reference back to the copies).
pub(super) struct PoolLoad {
    /// Requests dispatched and not released, per core (index: a core's slot).
    core_load: Box<[AtomicUsize]>,
    /// Requests in the pool (calls in progress, leases alive): what shutdown waits for.
    active: AtomicUsize,
    closing: AtomicBool,
    /// Shutdowns waiting for `active` to reach 0.
    drained: Mutex<Vec<Waker>>,
}

/// The union of the intervals in which the copy had executions on its unit (accepted,
/// completion not yet seen): its busy time as the host sees it.
struct Busy {
    on_unit: u32,
    since: Instant,
    total: Duration,
}

/// One copy of the model: its units, sets, state and counters.
pub(super) struct CopyState {
    pub(super) index: usize,
    pub(super) core: u32,
    core_slot: usize,
    /// `None` once the pool was shut down (the model unloaded with the last handle).
    model: Mutex<Option<Model>>,
    pub(super) compute: ExecUnit,
    /// TENSOR_OP queue 0: large input writes.
    pub(super) writer: ExecUnit,
    /// TENSOR_OP queue 1: large output reads.
    pub(super) reader: ExecUnit,
    pub(super) sets: SetPool,
    dead: AtomicBool,
    why: Mutex<Option<String>>,
    busy: Mutex<Busy>,
    pub(super) counters: Counters,
    pub(super) load: Arc<PoolLoad>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single assignment or push: a poisoned lock still
    // holds a consistent value.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PoolLoad {
    pub(super) fn new(core_slots: usize) -> PoolLoad {
        PoolLoad {
            core_load: (0..core_slots).map(|_| AtomicUsize::new(0)).collect(),
            active: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            drained: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Stops admitting; `true` for the first caller.
    pub(super) fn close(&self) -> bool {
        !self.closing.swap(true, Ordering::SeqCst)
    }

    /// Whether nothing is in the pool; if something is, `waker` is woken when that
    /// changes.
    pub(super) fn drained(&self, waker: &Waker) -> bool {
        if self.active.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let mut waiting = lock(&self.drained);
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
        drop(waiting);
        // The last request may have left before the waker was registered.
        self.active.load(Ordering::SeqCst) == 0
    }
}

/// A request inside the pool: counted for shutdown, refused once the pool is closing.
pub(super) struct Entry(Arc<PoolLoad>);

impl Entry {
    pub(super) fn new(load: &Arc<PoolLoad>) -> Option<Entry> {
        // Counted before the check: a shutdown that closed the pool after the check saw
        // this request as active (both SeqCst), so it waits for it.
        load.active.fetch_add(1, Ordering::SeqCst);
        let entry = Entry(Arc::clone(load));
        (!load.closing()).then_some(entry)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.closing() {
            let waiting = std::mem::take(&mut *lock(&self.0.drained));
            for waker in waiting {
                waker.wake();
            }
        }
    }
}

/// A request dispatched to a copy: counted in its load until released.
pub(super) struct Assigned {
    pub(super) copy: Arc<CopyState>,
    start: Instant,
    /// Whether its execution succeeded (its latency is recorded on release).
    pub(super) ok: bool,
}

impl Assigned {
    fn new(copy: &Arc<CopyState>) -> Assigned {
        let counters = &copy.counters;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.assigned.fetch_add(1, Ordering::Relaxed);
        copy.load.core_load[copy.core_slot].fetch_add(1, Ordering::Relaxed);
        Assigned {
            copy: Arc::clone(copy),
            start: Instant::now(),
            ok: false,
        }
    }
}

impl Drop for Assigned {
    fn drop(&mut self) {
        let copy = &self.copy;
        if self.ok {
            copy.counters.latency.record(self.start.elapsed());
        }
        copy.counters.assigned.fetch_sub(1, Ordering::Relaxed);
        copy.load.core_load[copy.core_slot].fetch_sub(1, Ordering::Relaxed);
    }
}

impl CopyState {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        index: usize,
        core_slot: usize,
        model: Model,
        compute: ExecUnit,
        writer: ExecUnit,
        reader: ExecUnit,
        sets: SetPool,
        load: Arc<PoolLoad>,
    ) -> CopyState {
        CopyState {
            index,
            core: compute.core(),
            core_slot,
            model: Mutex::new(Some(model)),
            compute,
            writer,
            reader,
            sets,
            dead: AtomicBool::new(false),
            why: Mutex::new(None),
            busy: Mutex::new(Busy {
                on_unit: 0,
                since: Instant::now(),
                total: Duration::ZERO,
            }),
            counters: Counters::new(),
            load,
        }
    }

    /// Whether the copy is in the rotation.
    pub(super) fn alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && self.compute.unrecoverable().is_none()
    }

    /// Why the copy is out of the rotation, if it is.
    pub(super) fn out_of_service(&self) -> Option<String> {
        if let Some(why) = lock(&self.why).clone() {
            return Some(why);
        }
        // Another copy on the same core saw the unit die.
        self.compute
            .unrecoverable()
            .map(|status| format!("{} is unrecoverable ({status})", self.compute))
    }

    /// Takes the copy out of the rotation because of `error` (a unit of it is dead).
    pub(super) fn mark_dead(&self, error: &Error) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            *lock(&self.why) = Some(error.to_string());
            log::warn!(
                "model pool: copy {} (core {}) leaves the rotation: {error}",
                self.index,
                self.core
            );
        }
    }

    /// The model handle, `None` after shutdown.
    pub(super) fn model(&self) -> Option<Model> {
        lock(&self.model).clone()
    }

    /// Unloads (drops the pool's handle; the last request's handle goes with it).
    pub(super) fn unload(&self) {
        let model = lock(&self.model).take();
        self.sets.close();
        drop(model);
    }

    /// One of the copy's executions was accepted by its unit.
    pub(super) fn busy_start(&self) {
        let mut busy = lock(&self.busy);
        if busy.on_unit == 0 {
            busy.since = Instant::now();
        }
        busy.on_unit += 1;
    }

    /// One of the copy's executions completed (or was released after completing).
    pub(super) fn busy_end(&self) {
        let mut busy = lock(&self.busy);
        busy.on_unit = busy.on_unit.saturating_sub(1);
        if busy.on_unit == 0 {
            let elapsed = busy.since.elapsed();
            busy.total += elapsed;
        }
    }

    /// The time at least one of the copy's executions was on its unit, until now.
    fn busy_time(&self) -> Duration {
        let busy = lock(&self.busy);
        match busy.on_unit {
            0 => busy.total,
            _ => busy.total + busy.since.elapsed(),
        }
    }

    fn metrics(&self) -> CopyMetrics {
        CopyMetrics {
            copy: self.index,
            core: self.core,
            out_of_service: if self.alive() {
                None
            } else {
                self.out_of_service()
            },
            sets: self.sets.allocated(),
            counts: self.counters.snapshot(self.busy_time()),
        }
    }
}

impl Shared {
    pub(super) fn new(
        copies: Vec<Arc<CopyState>>,
        load: Arc<PoolLoad>,
        inputs: Vec<TensorInfo>,
        outputs: Vec<TensorInfo>,
        label: String,
        large_transfer: usize,
    ) -> Shared {
        Shared {
            copies: copies.into_boxed_slice(),
            load,
            inputs,
            outputs,
            label,
            large_transfer,
            next: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Counts a new request and lets it in, unless the pool is closing.
    pub(super) fn enter(&self) -> Result<Entry> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Entry::new(&self.load).ok_or_else(|| self.reject(self.closed()))
    }

    pub(super) fn reject(&self, error: Error) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        error
    }

    pub(super) fn closed(&self) -> Error {
        Error::PoolUnavailable {
            model: self.label.clone(),
            reason: "the pool is shut down".into(),
        }
    }

    /// Dispatches a request to the live copy with the least load: first the least
    /// loaded core (requests dispatched to any of its copies: waiting for sets or
    /// admission, or in flight), then the least loaded copy on it; ties go round robin.
    /// With `core`: only among the copies on that core.
    pub(super) fn dispatch(&self, core: Option<u32>) -> Result<Assigned> {
        let n = self.copies.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(&Arc<CopyState>, (usize, u64))> = None;
        for k in 0..n {
            let copy = &self.copies[(start + k) % n];
            if !copy.alive() || core.is_some_and(|c| c != copy.core) {
                continue;
            }
            let key = (
                self.load.core_load[copy.core_slot].load(Ordering::Relaxed),
                copy.counters.assigned.load(Ordering::Relaxed),
            );
            if best.is_none_or(|(_, b)| key < b) {
                best = Some((copy, key));
            }
        }
        match (best, core) {
            (Some((copy, _)), _) => Ok(Assigned::new(copy)),
            (None, Some(core)) if self.copies.iter().any(|c| c.alive()) => {
                Err(self.reject(Error::PoolUnavailable {
                    model: self.label.clone(),
                    reason: format!(
                        "no copy in service on core {core} (copies in service on cores {:?})",
                        self.copies
                            .iter()
                            .filter(|c| c.alive())
                            .map(|c| c.core)
                            .collect::<Vec<_>>()
                    ),
                }))
            }
            (None, _) => Err(self.reject(self.no_live_copy())),
        }
    }

    fn no_live_copy(&self) -> Error {
        let why: Vec<String> = self
            .copies
            .iter()
            .map(|c| {
                format!(
                    "copy {} (core {}): {}",
                    c.index,
                    c.core,
                    c.out_of_service().unwrap_or_else(|| "in service".into())
                )
            })
            .collect();
        Error::PoolUnavailable {
            model: self.label.clone(),
            reason: format!("no copy is left in service ({})", why.join("; ")),
        }
    }

    pub(super) fn metrics(&self) -> PoolMetrics {
        let copies: Vec<CopyMetrics> = self.copies.iter().map(|c| c.metrics()).collect();
        let mut total = RequestCounts::empty();
        for copy in &copies {
            total.add(&copy.counts);
        }
        total.requests = self.requests.load(Ordering::Relaxed);
        PoolMetrics {
            copies,
            total,
            rejected: self.rejected.load(Ordering::Relaxed),
            shut_down: self.load.closing(),
        }
    }
}
