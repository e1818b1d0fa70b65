//! The state of one execution-unit queue, shared by its handles and requests; the
//! [`ExecUnit`] handle itself and the `Runtime` methods that create it (its scheduling
//! methods live in `unit.rs`, retries in `retry.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Duration;

use std::ffi::c_int;

use nrt_sys::{self as sys, Library};

use super::events::{self, EventApi, UnitEvents};
use super::kind::XuKind;
use super::seq::SeqId;
use super::slots::SlotPool;
use super::wait::poll_until;
use crate::error::{Error, NrtStatus, Result};
use crate::objects::Runtime;
use crate::raw;

/// One execution-unit queue: `(core, kind, queue)`, the target of async requests.
///
/// Requests scheduled on one unit run one at a time in the order they were scheduled;
/// units run concurrently with each other. Create units with
/// [`Runtime::compute_unit`], [`Runtime::tensor_op_unit`],
/// [`Runtime::collectives_unit`] or [`Runtime::exec_unit`].
///
/// `ExecUnit` is a cheap handle (`Clone` shares it). All handles of one queue, however
/// they were created, share the queue's state, which lives as long as the runtime: the
/// count of submitted requests, the unrecoverable flag, the status slots, the
/// completion eventfd and a lock that serialises the schedule calls on that queue. A
/// unit keeps the runtime open.
///
/// # Threads
///
/// `ExecUnit` is `Send + Sync` and can be cloned into many threads. Schedule calls on
/// one queue are serialised by that queue's lock (cheap: a schedule call never blocks
/// in libnrt), so this crate does not rely on libnrt accepting concurrent schedules on
/// one queue; different queues are scheduled concurrently, as the one-queue-per-unit
/// design of the async API intends. Completion queries run without a lock.
///
/// # Transfers and cores
///
/// A write, read or copy runs on the TENSOR_OP queue it is scheduled on: the unit passes
/// its own core as libnrt's `lnc_idx` (the core whose DMA engine moves the data) and its
/// queue index, also for host tensors, and the request's [`SeqId`] names this unit. A
/// device tensor must be on the unit's core ([`Error::WrongCore`] otherwise, before any
/// call): whether another core's DMA engine may move it is not documented.
///
/// # Waiting
///
/// With a runtime that has completion events (runtime library >= 2.32,
/// [`Capabilities::ASYNC_EVENTS`](crate::Capabilities::ASYNC_EVENTS)), every wait blocks
/// on an eventfd that libnrt signals when the request completes: no sleep-polling, and
/// no spinning beyond [`Request::wait`](crate::Request::wait)'s first 50 µs, in which it
/// watches the request's own status memory (no libnrt or system call). Futures never
/// spin. With a 2.31 runtime, waits poll with backoff.
///
/// # Unrecoverable units
///
/// When libnrt reports that a unit hit a fatal error (a schedule call returns
/// `NRT_EXEC_UNIT_UNRECOVERABLE`, or a request completes with a fatal status, see
/// [`NrtStatus::is_fatal`]), the unit remembers it, and every later schedule on it fails
/// at once with [`Error::Unrecoverable`] without calling libnrt. Requests already queued
/// still complete (with their own status). The only recovery is re-initialising the
/// runtime, which in practice means restarting the process.
#[derive(Clone)]
pub struct ExecUnit {
    pub(crate) inner: Arc<UnitInner>,
}

/// What a handle (and each request made through it) holds: the runtime, which keeps
/// the queue states alive, and the state of its queue.
pub(crate) struct UnitInner {
    pub(crate) rt: Runtime,
    pub(crate) state: Arc<QueueState>,
}

/// `QueueState::xu_id` before the queue's first accepted request.
const XU_ID_UNKNOWN: u32 = u32::MAX;

/// One queue of one runtime: what all its handles and requests share. Created on first
/// use and kept by the runtime's [`UnitRegistry`]; it holds no runtime handle itself.
///
/// `repr(C)`, fields in this order: what every schedule and completion touches comes
/// first (with the slot pool's spare slot), so that a request reads one or two cache
/// lines of it rather than bits of four; a request after an idle spell finds them cold.
/// Aligned to a cache line so that those first fields share one (the reference counts
/// of its `Arc` sit in the line before, touched only when a handle is made or dropped).
#[repr(C, align(64))]
pub(crate) struct QueueState {
    /// 0, or the raw fatal status that made the queue unrecoverable.
    fatal: AtomicU32,
    /// The XU id of this queue, from the first sequence id a schedule call on it
    /// returned (libnrt documents that those name the queue); [`XU_ID_UNKNOWN`] before.
    xu_id: AtomicU32,
    /// Number of the last request of this queue accepted through this crate.
    last_submitted: AtomicU64,
    /// The library (of the runtime that holds this state), for every call of the unit.
    lib: &'static Library,
    /// Held across each schedule call on this queue.
    submit: Mutex<()>,
    pub(crate) core: u32,
    pub(crate) queue: u32,
    pub(crate) kind: XuKind,
    /// Status slots of the requests scheduled through handles of this queue.
    pub(crate) slots: SlotPool,
    /// The event functions, when the library has them.
    pub(crate) event_api: Option<EventApi>,
    /// The queue's completion eventfd (futures), when events work for it.
    pub(crate) events: Option<Arc<UnitEvents>>,
    /// Requests the queue takes at once, learned from a full queue; 0 before.
    pub(crate) capacity: AtomicUsize,
    /// Submissions waiting for room ([`ExecUnit::submit`]).
    pub(crate) admission: AdmissionQueue,
    /// Whether the last blocking wait for a request of this queue lasted longer than a
    /// blocking wait watches the status slot: the next one then blocks at once instead
    /// of spinning (see `Request::wait`).
    pub(crate) long_waits: AtomicBool,
    /// When its last request was submitted and how long its requests take, for the
    /// event thread's watch near an awaited request's predicted end (`timing.rs`).
    pub(crate) timing: Arc<super::timing::Timing>,
}

// The fields every request touches, the spare slot included (`SlotPool` is `repr(C)`
// with it first), fit in the first cache line of the aligned state.
const _: () = assert!(std::mem::offset_of!(QueueState, slots) + 8 <= 64);

/// The waiting submissions of one queue, oldest first.
#[derive(Default)]
pub(crate) struct AdmissionQueue {
    waiting: Mutex<VecDeque<Admit>>,
}

/// A submission's place in its unit's admission line (`xu/admission.rs`).
pub(crate) struct Admit {
    pub(crate) key: u64,
    pub(crate) waker: Waker,
    /// Given its turn (the one before it left) and not polled since.
    pub(crate) granted: bool,
    /// At the front, waiting for room: the request whose completion frees it.
    pub(crate) room: Option<SeqId>,
}

impl Admit {
    pub(crate) fn new(key: u64, waker: &Waker) -> Admit {
        Admit {
            key,
            waker: waker.clone(),
            granted: false,
            room: None,
        }
    }
}

impl AdmissionQueue {
    pub(crate) fn lock(&self) -> MutexGuard<'_, VecDeque<Admit>> {
        // Entries are pushed and removed whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `key`; the new front is given its turn, and it and the one after it
    /// (which watches that the front takes it) are woken.
    pub(crate) fn leave(&self, key: u64) {
        let (front, second) = {
            let mut waiting = self.lock();
            let Some(at) = waiting.iter().position(|e| e.key == key) else {
                return;
            };
            waiting.remove(at);
            if at == 0
                && let Some(front) = waiting.front_mut()
            {
                front.granted = true;
            }
            let wake = |i: usize| waiting.get(i).map(|e| e.waker.clone());
            (wake(0), if at <= 1 { wake(1) } else { None })
        };
        front.into_iter().chain(second).for_each(Waker::wake);
    }
}

/// Queues per core, all kinds: TENSOR_OP 2, COMPUTE 1, COLLECTIVES 3.
const QUEUES_PER_CORE: usize = 6;

/// The async state of one runtime (held by the runtime itself): the [`QueueState`] of
/// every queue, created on first use, so that all handles of a queue share one.
///
/// No lock: each entry is set once. Nothing here holds a runtime handle, so this keeps
/// nothing open.
#[derive(Default)]
pub(crate) struct UnitRegistry {
    /// Index `core * QUEUES_PER_CORE + offset of the kind + queue`; sized at first use
    /// for the visible cores.
    table: OnceLock<Box<[OnceLock<Arc<QueueState>>]>>,
}

fn table_index(core: u32, kind: XuKind, queue: u32) -> usize {
    let first = match kind {
        XuKind::TensorOp => 0,
        XuKind::Compute => 2,
        XuKind::Collectives => 3,
    };
    core as usize * QUEUES_PER_CORE + first + queue as usize
}

impl UnitRegistry {
    /// The state of queue `(core, kind, queue)` (already checked to exist), created on
    /// first use: validated with `nrta_get_sequence`, whose number counts as the last
    /// submitted one, and registered for completion events when the library has them.
    pub(crate) fn state(
        &self,
        rt: &Runtime,
        cores: u32,
        core: u32,
        kind: XuKind,
        queue: u32,
    ) -> Result<&Arc<QueueState>> {
        let table = self.table.get_or_init(|| {
            (0..cores as usize * QUEUES_PER_CORE)
                .map(|_| OnceLock::new())
                .collect()
        });
        let cell = table.get(table_index(core, kind, queue)).ok_or_else(|| {
            Error::invalid(
                "core",
                format!(
                    "core {core} is beyond the {} cores this runtime first saw",
                    table.len() / QUEUES_PER_CORE
                ),
            )
        })?;
        if let Some(state) = cell.get() {
            return Ok(state);
        }
        // Created outside any lock; a thread racing here may set the cell first, and
        // this state is then dropped unused (its eventfd deregistered first).
        let lib = rt.inner.lib();
        let last = query_sequence(lib, core, kind, queue)?;
        let event_api = EventApi::new(lib, rt.capabilities());
        let timing = Arc::new(super::timing::Timing::default());
        let events = event_api
            .and_then(|ev| UnitEvents::register(ev, core, kind, queue, Arc::clone(&timing)));
        let state = QueueState {
            core,
            kind,
            queue,
            xu_id: AtomicU32::new(XU_ID_UNKNOWN),
            lib,
            slots: SlotPool::new(),
            submit: Mutex::new(()),
            last_submitted: AtomicU64::new(last.number()),
            fatal: AtomicU32::new(0),
            event_api,
            events,
            capacity: AtomicUsize::new(0),
            admission: AdmissionQueue::default(),
            long_waits: AtomicBool::new(false),
            timing,
        };
        let mut unused = Some(state);
        let kept = cell.get_or_init(|| Arc::new(unused.take().expect("taken once")));
        if let Some(unused) = unused {
            unused.close_events();
        }
        Ok(kept)
    }

    /// Takes every queue's completion eventfd out of the event loop; called before
    /// `nrt_close`.
    pub(crate) fn close(&self) {
        for state in self
            .table
            .get()
            .into_iter()
            .flatten()
            .filter_map(OnceLock::get)
        {
            state.close_events();
        }
    }
}

/// `nrta_get_sequence` for one queue.
fn query_sequence(lib: &Library, core: u32, kind: XuKind, queue: u32) -> Result<SeqId> {
    // SAFETY: the library has the v3 API (ASYNC_V3 is checked before any queue state is
    // made). `queue` < 3 (checked by every caller), so it fits in a C int.
    let raw = unsafe { raw::xu::get_sequence(lib, core, kind.as_raw(), queue as c_int) }
        .map_err(|e| e.context(format!("{kind} unit, core {core}, queue {queue}")))?;
    Ok(SeqId::from_raw(raw))
}

impl QueueState {
    fn close_events(&self) {
        if let Some(events) = &self.events {
            events.detach();
        }
    }

    /// The library of the runtime this queue belongs to.
    pub(crate) fn lib(&self) -> &'static Library {
        self.lib
    }

    /// The XU id of this queue, once a request was accepted on it.
    pub(crate) fn xu_id(&self) -> Option<u16> {
        u16::try_from(self.xu_id.load(Ordering::Acquire)).ok()
    }

    /// The id of the last request this queue completed (`nrta_get_sequence`). Only its
    /// number is meaningful before the queue completed anything (libnrt documents no
    /// value for that case).
    pub(crate) fn last_completed(&self) -> Result<SeqId> {
        query_sequence(self.lib, self.core, self.kind, self.queue)
    }

    pub(crate) fn last_submitted_number(&self) -> u64 {
        self.last_submitted.load(Ordering::Acquire)
    }

    pub(crate) fn last_submitted(&self) -> SeqId {
        SeqId::new(self.xu_id().unwrap_or(0), self.last_submitted_number())
    }

    /// Counts request `seq`, just accepted on this queue (called under the submit
    /// lock); the first one tells the queue its XU id.
    pub(crate) fn count(&self, seq: SeqId) {
        if self.xu_id.load(Ordering::Relaxed) == XU_ID_UNKNOWN {
            self.xu_id.store(seq.xu_id().into(), Ordering::Release);
        }
        self.last_submitted
            .fetch_max(seq.number(), Ordering::AcqRel);
    }

    pub(crate) fn lock_submit(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data, so poisoning carries no meaning here.
        self.submit.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fatal_status(&self) -> Option<NrtStatus> {
        match self.fatal.load(Ordering::Acquire) {
            0 => None,
            raw => Some(NrtStatus::from_raw(raw)),
        }
    }

    pub(crate) fn mark_fatal(&self, raw: sys::NRT_STATUS) {
        // Keep the first cause.
        let _ = self
            .fatal
            .compare_exchange(0, raw, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn unrecoverable_error(&self, status: NrtStatus) -> Error {
        Error::Unrecoverable {
            unit: self.to_string(),
            status,
        }
    }
}

impl UnitInner {
    pub(crate) fn last_completed(&self) -> Result<SeqId> {
        self.state.last_completed()
    }

    /// Whether request `seq` of this queue has completed (`nrta_is_completed`).
    ///
    /// If libnrt cannot answer for `seq` (it answers `NRT_INVALID` for ids it does not
    /// know), the queue's last completed number answers instead: requests of one queue
    /// complete in order. Only if that fails too is the error returned.
    pub(crate) fn is_completed(&self, seq: SeqId) -> Result<bool> {
        // SAFETY: the library has the v3 API (checked at unit creation).
        let error = match unsafe { raw::xu::is_completed(self.state.lib, seq.raw()) } {
            Ok(done) => return Ok(done),
            Err(error) => error.context(format!("request {seq} on {self}")),
        };
        match self.last_completed() {
            Ok(last) => Ok(last.number() >= seq.number()),
            Err(_) => Err(error),
        }
    }

    /// Waits until request `seq` of this queue has completed.
    pub(crate) fn wait(&self, seq: SeqId) -> Result<()> {
        match self.wait_until(seq, None)? {
            true => Ok(()),
            // A wait without a limit only returns once complete: `false` would be a bug.
            false => Err(Error::UnexpectedResult {
                function: "nrta_is_completed",
                reason: format!("an unlimited wait for {seq} returned before completion"),
            }),
        }
    }

    /// Waits until request `seq` of this queue has completed, at most `timeout`;
    /// returns whether it did. Blocks on a completion event where the runtime has them,
    /// else polls with backoff.
    pub(crate) fn wait_until(&self, seq: SeqId, timeout: Option<Duration>) -> Result<bool> {
        if let Some(api) = self.state.event_api
            && let Some(done) = events::wait_for_seq(api, seq, timeout, || self.is_completed(seq))
        {
            return done;
        }
        let done = poll_until(timeout, || self.is_completed(seq).map(|d| d.then_some(())))?;
        Ok(done.is_some())
    }

    /// The error for request `seq`, which completed with `raw`; a fatal status marks the
    /// queue unrecoverable.
    pub(crate) fn request_error(
        &self,
        function: &'static str,
        seq: SeqId,
        raw: sys::NRT_STATUS,
    ) -> Error {
        if NrtStatus::from_raw(raw).is_fatal() {
            self.state.mark_fatal(raw);
        }
        if raw == sys::NRT_SUCCESS {
            return Error::UnexpectedResult {
                function,
                reason: "failure status lost".into(),
            };
        }
        // The request ran on the library's worker: its reason is the request's, not this
        // thread's last error.
        let lib = self.state.lib;
        raw::failed_because(lib, function, raw, raw::sim::request_reason(lib, seq.raw()))
            .context(format!("request {seq} on {}", self.state))
    }
}

impl fmt::Display for QueueState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} unit (core {}, queue {})",
            self.kind, self.core, self.queue
        )
    }
}

impl fmt::Display for UnitInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.state.fmt(f)
    }
}

impl ExecUnit {
    /// A handle of queue `state` of runtime `rt`.
    pub(crate) fn new(rt: Runtime, state: Arc<QueueState>) -> ExecUnit {
        ExecUnit {
            inner: Arc::new(UnitInner { rt, state }),
        }
    }
}

impl fmt::Display for ExecUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Debug for ExecUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.inner.state;
        f.debug_struct("ExecUnit")
            .field("core", &state.core)
            .field("kind", &state.kind)
            .field("queue", &state.queue)
            .field("xu_id", &state.xu_id().map(|id| format!("{id:#06x}")))
            .field("last_submitted", &state.last_submitted_number())
            .field("events", &state.events.is_some())
            .field("unrecoverable", &state.fatal_status())
            .finish()
    }
}
