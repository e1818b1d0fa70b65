//! [`ExecUnit`]: one execution-unit queue, and scheduling on it.

use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use nrt_sys as sys;

use super::request::sealed::SealedBuffer;
use super::request::{ExecSets, HostBuffer, KeepAlive, Payload, Rejected, Request, Scheduled};
use super::seq::SeqId;
use super::slots::SlotPool;
use super::wait::{Backoff, poll_until};
use crate::runtime::{RuntimeInner, require_fn};
use crate::{Capabilities, Error, Model, NrtStatus, Placement, Result, Runtime, Tensor, TensorSet};

/// The type of an execution unit (`nrta_xu_t`, v3 numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XuKind {
    /// Data movement: host<->device tensor writes and reads, and tensor copies
    /// (`NRTA_XU_TENSOR_OP`); 2 queues per core.
    TensorOp,
    /// Model execution (`NRTA_XU_COMPUTE`); 1 queue per core.
    Compute,
    /// Standalone collective operations (`NRTA_XU_COLLECTIVES`); 3 queues per core.
    /// Units of this kind can be created and queried, but this crate does not schedule
    /// collectives yet (the vendor marks that part of the API as work in progress).
    Collectives,
}

impl XuKind {
    /// Every kind.
    pub const ALL: [XuKind; 3] = [XuKind::TensorOp, XuKind::Compute, XuKind::Collectives];

    /// The number of queues each core has for this kind.
    pub const fn queue_count(self) -> u32 {
        match self {
            XuKind::TensorOp => 2,
            XuKind::Compute => 1,
            XuKind::Collectives => 3,
        }
    }

    /// The C value (`nrta_xu_t`) of the v3 API.
    pub const fn as_raw(self) -> sys::nrta_xu_t {
        match self {
            XuKind::TensorOp => sys::NRTA_XU_TENSOR_OP,
            XuKind::Compute => sys::NRTA_XU_COMPUTE,
            XuKind::Collectives => sys::NRTA_XU_COLLECTIVES,
        }
    }

    fn name(self) -> &'static str {
        match self {
            XuKind::TensorOp => "tensor-op",
            XuKind::Compute => "compute",
            XuKind::Collectives => "collectives",
        }
    }
}

impl fmt::Display for XuKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One execution-unit queue: `(core, kind, queue)`, the target of async requests.
///
/// Requests scheduled on one unit run one at a time in the order they were scheduled;
/// units run concurrently with each other. Create units with
/// [`Runtime::compute_unit`], [`Runtime::tensor_op_unit`],
/// [`Runtime::collectives_unit`] or [`Runtime::exec_unit`].
///
/// `ExecUnit` is a cheap handle (`Clone` shares it). All handles of one queue, however
/// they were created, share the queue's state, which lives as long as the runtime: the
/// count of submitted requests, the unrecoverable flag, the status slots and a lock that
/// serialises the schedule calls on that queue. A unit keeps the runtime open.
///
/// # Threads
///
/// `ExecUnit` is `Send + Sync` and can be cloned into many threads. Schedule calls that
/// libnrt runs on one queue are serialised by that queue's lock (cheap: a schedule call
/// never blocks in libnrt), so this crate does not rely on libnrt accepting concurrent
/// schedules on one queue; different queues are scheduled concurrently, as the
/// one-queue-per-unit design of the async API intends. Polls (`nrta_is_completed`,
/// `nrta_get_sequence`) are read-only queries and run without a lock.
///
/// # Host tensors
///
/// A write, read or copy with a device tensor runs on the TENSOR_OP queue of this unit's
/// index on that tensor's core (which must be this unit's core). Host tensors have no
/// core, so for a request with host tensors only, libnrt picks the queue itself, and
/// does not document which (nrt-sim takes the queue of the same index on core 0). Such a
/// request may therefore be scheduled through any TENSOR_OP unit, and it belongs to the
/// queue that runs it, the one whose XU id its [`SeqId`] carries: it counts in *that*
/// queue's [`last_submitted`](ExecUnit::last_submitted),
/// [`in_flight`](ExecUnit::in_flight), [`wait_for`](ExecUnit::wait_for) and
/// [`wait_idle`](ExecUnit::wait_idle), a fatal status marks *that* queue unrecoverable,
/// [`Request::unit`] returns *that* queue, and
/// [`submit_with_retry`](ExecUnit::submit_with_retry) waits for *that* queue when it is
/// full. This crate learns the queue from the first such request (per queue index), and
/// from then on serialises their schedule calls with that queue's own. As that is only
/// a guess about libnrt's next choice, it is not used to refuse such requests at once
/// when that queue is unrecoverable (libnrt answers), nor to mark a queue unrecoverable
/// when libnrt refuses one (which queue refused is not known).
///
/// (Refusing host-only requests on the "wrong" unit instead would need to know libnrt's
/// choice before the call, which no documented rule gives; the sequence id libnrt
/// returns names the queue exactly.)
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
    rt: Runtime,
    pub(crate) state: Arc<QueueState>,
    is_completed: sys::fn_types::nrta_is_completed,
}

/// One queue of one runtime: what all its handles and requests share. Created on first
/// use and kept by the runtime's [`UnitRegistry`]; it holds no runtime handle itself.
pub(crate) struct QueueState {
    core: u32,
    kind: XuKind,
    queue: u32,
    xu_id: u16,
    get_sequence: sys::fn_types::nrta_get_sequence,
    /// Status slots of the requests scheduled through handles of this queue.
    pub(crate) slots: SlotPool,
    /// Held across each schedule call that libnrt runs on this queue.
    submit: Mutex<()>,
    /// Number of the last request of this queue accepted through this crate.
    last_submitted: AtomicU64,
    /// 0, or the raw fatal status that made the queue unrecoverable.
    fatal: AtomicU32,
}

/// Queues per core, all kinds: TENSOR_OP 2, COMPUTE 1, COLLECTIVES 3.
const QUEUES_PER_CORE: usize = 6;

/// TENSOR_OP queues per core.
const TENSOR_OP_QUEUES: usize = XuKind::TensorOp.queue_count() as usize;

/// The async state of one runtime (held by the runtime itself): the [`QueueState`] of
/// every queue, created on first use, so that all handles of a queue share one and a
/// request is counted on the queue that runs it, found by the XU id of its sequence id.
///
/// No lock: each entry is set once. Nothing here holds a runtime handle, so this keeps
/// nothing open.
#[derive(Default)]
pub(crate) struct UnitRegistry {
    /// Index `core * QUEUES_PER_CORE + offset of the kind + queue`; sized at first use
    /// for the visible cores.
    table: OnceLock<Box<[OnceLock<Arc<QueueState>>]>>,
    /// Per TENSOR_OP queue index: 1 + the table index of the queue that ran the last
    /// request without a device tensor (libnrt picks that queue); 0 before any.
    host_route: [AtomicUsize; TENSOR_OP_QUEUES],
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
    /// first use with the queue's last completed id as its last submitted one.
    fn state(
        &self,
        rt: &Runtime,
        get_sequence: sys::fn_types::nrta_get_sequence,
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
        // Asked with no lock held. A thread racing here may set the cell first; its
        // state is then the one used, and this one is dropped unused.
        let last = query_sequence(rt, get_sequence, core, kind, queue)?;
        let state = Arc::new(QueueState {
            core,
            kind,
            queue,
            xu_id: last.xu_id(),
            get_sequence,
            slots: SlotPool::new(),
            submit: Mutex::new(()),
            last_submitted: AtomicU64::new(last.number()),
            fatal: AtomicU32::new(0),
        });
        Ok(cell.get_or_init(|| state))
    }

    /// The state of the queue with XU id `xu_id` among those created so far.
    fn known(&self, xu_id: u16) -> Option<&Arc<QueueState>> {
        self.table
            .get()?
            .iter()
            .filter_map(OnceLock::get)
            .find(|state| state.xu_id == xu_id)
    }

    /// The state of the queue with XU id `xu_id`: a known one, else found by creating
    /// the states not created yet (one `nrta_get_sequence` each, once per queue);
    /// `None` if no queue of this runtime has that id.
    fn by_xu_id(&self, rt: &Runtime, xu_id: u16) -> Option<&Arc<QueueState>> {
        if let Some(state) = self.known(xu_id) {
            return Some(state);
        }
        let table = self.table.get()?;
        let get_sequence = table.iter().find_map(OnceLock::get)?.get_sequence;
        let cores = (table.len() / QUEUES_PER_CORE) as u32;
        for core in 0..cores {
            for kind in XuKind::ALL {
                for queue in 0..kind.queue_count() {
                    if table[table_index(core, kind, queue)].get().is_some() {
                        continue;
                    }
                    if let Ok(state) = self.state(rt, get_sequence, cores, core, kind, queue)
                        && state.xu_id == xu_id
                    {
                        return Some(state);
                    }
                }
            }
        }
        None
    }

    /// The queue that ran the last request without a device tensor scheduled with
    /// TENSOR_OP queue index `queue`, if there was one.
    fn host_route(&self, queue: u32) -> Option<&Arc<QueueState>> {
        let index = self
            .host_route
            .get(queue as usize)?
            .load(Ordering::Acquire)
            .checked_sub(1)?;
        self.table.get()?.get(index)?.get()
    }

    /// Remembers that libnrt ran a request without a device tensor, scheduled with
    /// TENSOR_OP queue index `queue`, on `state`'s queue.
    fn learn_host_route(&self, queue: u32, state: &QueueState) {
        if let Some(route) = self.host_route.get(queue as usize) {
            let index = table_index(state.core, state.kind, state.queue) + 1;
            // Read first: the route rarely changes, so this normally writes nothing.
            if route.load(Ordering::Relaxed) != index {
                route.store(index, Ordering::Release);
            }
        }
    }
}

impl Runtime {
    /// The COMPUTE unit of NeuronCore `core` (it has one queue), which runs models
    /// loaded on that core.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn compute_unit(&self, core: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::Compute, 0)
    }

    /// TENSOR_OP queue `queue` (0 or 1) of NeuronCore `core`, which moves data between
    /// host memory and tensors on that core.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn tensor_op_unit(&self, core: u32, queue: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::TensorOp, queue)
    }

    /// COLLECTIVES queue `queue` (0 to 2) of NeuronCore `core`.
    ///
    /// # Errors
    ///
    /// As for [`Runtime::exec_unit`].
    pub fn collectives_unit(&self, core: u32, queue: u32) -> Result<ExecUnit> {
        self.exec_unit(core, XuKind::Collectives, queue)
    }

    /// The execution unit `(core, kind, queue)`.
    ///
    /// # Errors
    ///
    /// * [`Error::Unsupported`] unless the library offers the async API v3 (runtime
    ///   library >= 2.31, see [`Capabilities::ASYNC_V3`]); an older library is never
    ///   called through the v3 signatures;
    /// * [`Error::InvalidArgument`] if `core` is not below the number of visible cores,
    ///   or `queue` is not below [`XuKind::queue_count`]; nothing is called then;
    /// * [`Error::Nrt`] if libnrt rejects the unit (`nrta_get_sequence`).
    pub fn exec_unit(&self, core: u32, kind: XuKind, queue: u32) -> Result<ExecUnit> {
        self.require(Capabilities::ASYNC_V3, "the async API (execution units)")?;
        let fns = self.inner.fns();
        let is_completed = require_fn(fns.nrta_is_completed, "nrta_is_completed")?;
        let get_sequence = require_fn(fns.nrta_get_sequence, "nrta_get_sequence")?;
        let cores = self.visible_core_count()?;
        if core >= cores {
            return Err(Error::invalid(
                "core",
                format!("core {core} is not visible: this runtime has {cores} visible cores"),
            ));
        }
        if queue >= kind.queue_count() {
            return Err(Error::invalid(
                "queue",
                format!(
                    "{kind} units have queues 0..{}, got {queue}",
                    kind.queue_count()
                ),
            ));
        }
        let state = self
            .inner
            .units
            .state(self, get_sequence, cores, core, kind, queue)?;
        Ok(ExecUnit {
            inner: Arc::new(UnitInner {
                rt: self.clone(),
                state: Arc::clone(state),
                is_completed,
            }),
        })
    }
}

/// `nrta_get_sequence` for one queue.
fn query_sequence(
    rt: &Runtime,
    get_sequence: sys::fn_types::nrta_get_sequence,
    core: u32,
    kind: XuKind,
    queue: u32,
) -> Result<SeqId> {
    let mut raw = 0u64;
    // `queue` < 3 (checked by every caller), so it fits in a C int.
    let queue_arg = queue as i32;
    // SAFETY: the library has the v3 API (ASYNC_V3 checked at unit creation), so this is
    // the v3 signature; `raw` is a valid out-pointer.
    let status = unsafe { get_sequence(core, kind.as_raw(), queue_arg, &mut raw) };
    rt.inner.check("nrta_get_sequence", status, || {
        format!("{kind} unit, core {core}, queue {queue}")
    })?;
    Ok(SeqId::from_raw(raw))
}

/// The queue a schedule call reported full, and its runtime (weakly: a [`Rejected`]
/// does not keep the runtime open): what [`ExecUnit::submit_with_retry`] waits for.
pub(crate) struct FullQueue {
    rt: Weak<RuntimeInner>,
    state: Arc<QueueState>,
}

impl FullQueue {
    /// The queue's last completed id; `None` if that cannot be known (any more).
    fn last_completed(&self) -> Option<SeqId> {
        let rt = Runtime {
            inner: self.rt.upgrade()?,
        };
        self.state.last_completed(&rt).ok()
    }
}

impl ExecUnit {
    /// The NeuronCore of this unit.
    pub fn core(&self) -> u32 {
        self.inner.state.core
    }

    /// The kind of this unit.
    pub fn kind(&self) -> XuKind {
        self.inner.state.kind
    }

    /// The queue index of this unit within its core and kind.
    pub fn queue(&self) -> u32 {
        self.inner.state.queue
    }

    /// The XU id libnrt uses for this queue (the top 16 bits of its [`SeqId`]s).
    pub fn xu_id(&self) -> u16 {
        self.inner.state.xu_id
    }

    /// The runtime this unit belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// The id of the last request this unit completed (`nrta_get_sequence`); number 0
    /// before any.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn last_completed(&self) -> Result<SeqId> {
        self.inner.last_completed()
    }

    /// The id of the last request scheduled on this queue through this crate (number 0
    /// before any), including requests with host tensors only that were scheduled
    /// through another unit and that libnrt runs on this queue.
    pub fn last_submitted(&self) -> SeqId {
        self.inner.state.last_submitted()
    }

    /// How many requests scheduled on this queue have not completed yet.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn in_flight(&self) -> Result<u64> {
        // Read `submitted` first: a request scheduled between the two reads then only
        // makes the count smaller, never makes `completed` exceed `submitted`.
        let submitted = self.inner.state.last_submitted.load(Ordering::Acquire);
        let completed = self.inner.last_completed()?.number();
        Ok(submitted.saturating_sub(completed))
    }

    /// Waits until request `seq` of this unit (and so every earlier one) has completed.
    ///
    /// This does not read the request's status: that is [`Request::wait`]'s job.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `seq` belongs to another queue (see the type docs
    /// on host tensors: [`Request::unit`] names the queue of a request) or was never
    /// scheduled (waiting for it would never end); [`Error::Nrt`] if polling fails.
    pub fn wait_for(&self, seq: SeqId) -> Result<()> {
        self.wait_for_timeout(seq, None).map(|_| ())
    }

    /// Waits until every request scheduled on this queue so far has completed: also
    /// requests with host tensors only that libnrt runs on this queue, but not those
    /// scheduled through this unit that libnrt runs on another (see the type docs).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if polling fails.
    pub fn wait_idle(&self) -> Result<()> {
        self.wait_for(self.last_submitted())
    }

    /// Like [`wait_for`](ExecUnit::wait_for), giving up after `timeout`; returns whether
    /// `seq` completed.
    ///
    /// # Errors
    ///
    /// As for [`wait_for`](ExecUnit::wait_for).
    pub fn wait_for_timeout(&self, seq: SeqId, timeout: Option<Duration>) -> Result<bool> {
        let state = &self.inner.state;
        if seq.xu_id() != state.xu_id {
            let owner = match self.inner.rt.inner.units.known(seq.xu_id()) {
                Some(owner) => owner.to_string(),
                None => "a queue this runtime has not used".to_owned(),
            };
            return Err(Error::invalid(
                "seq",
                format!(
                    "{seq} belongs to {owner} (XU id {:#06x}), not to {self} (XU id {:#06x})",
                    seq.xu_id(),
                    state.xu_id
                ),
            ));
        }
        let submitted = state.last_submitted.load(Ordering::Acquire);
        if seq.number() > submitted {
            return Err(Error::invalid(
                "seq",
                format!("{seq} was never scheduled on {self} (last is number {submitted})"),
            ));
        }
        let done = poll_until(timeout, || {
            let last = self.inner.last_completed()?;
            Ok::<_, Error>((last.number() >= seq.number()).then_some(()))
        })?;
        Ok(done.is_some())
    }

    /// The status that made this unit unrecoverable, if one did (see the type docs).
    pub fn unrecoverable(&self) -> Option<NrtStatus> {
        self.inner.state.fatal_status()
    }

    /// Calls `submit` with `payload` until it is accepted, waiting for a completion on
    /// the full queue after each [`NrtStatus::QueueFull`] rejection, within `policy`'s
    /// bounds.
    ///
    /// `submit` is typically a closure around one of the schedule methods, e.g.
    /// `|(inputs, outputs)| unit.execute(&model, inputs, outputs)`. The queue waited for
    /// is the one the rejection came from: normally this unit's, for a request with
    /// host tensors only the queue libnrt runs those on (see the type docs). Only when
    /// that queue is not known yet (no such request was accepted before) does a retry
    /// follow a short pause instead (spinning, then yielding, then sleeping up to 1 ms).
    ///
    /// # Errors
    ///
    /// Any rejection other than `QueueFull` (also [`NrtStatus::ExecNcBusy`], which
    /// waiting for a completion cannot cure) is returned at once; when the policy's
    /// attempts or time run out, or progress on the full queue can no longer be observed,
    /// the last `QueueFull` rejection is returned. Either way the payload comes back in
    /// the [`Rejected`].
    pub fn submit_with_retry<T: Payload>(
        &self,
        policy: RetryPolicy,
        payload: T,
        mut submit: impl FnMut(T) -> Scheduled<T>,
    ) -> Scheduled<T> {
        let mut payload = payload;
        let mut attempts = 0u32;
        let started = std::time::Instant::now();
        // The queue whose completions are counted before each attempt: this unit's, until
        // a rejection names another.
        let mut watched = FullQueue {
            rt: Arc::downgrade(&self.inner.rt.inner),
            state: Arc::clone(&self.inner.state),
        };
        let mut unknown_queue = Backoff::new();
        loop {
            // Counted before the attempt, so that a completion between the rejection and
            // the wait below is not missed.
            let before = watched.last_completed();
            let rejected = match submit(payload) {
                Ok(request) => return Ok(request),
                Err(rejected) => rejected,
            };
            attempts = attempts.saturating_add(1);
            let status = rejected.error().status();
            if status != Some(NrtStatus::QueueFull) || attempts >= policy.max_attempts {
                return Err(rejected);
            }
            let remaining = match policy.timeout.checked_sub(started.elapsed()) {
                Some(r) if !r.is_zero() => r,
                _ => return Err(rejected),
            };
            let Some(full) = rejected.full_queue() else {
                unknown_queue.pause(Some(remaining));
                payload = rejected.into_inner();
                continue;
            };
            let before = if Arc::ptr_eq(&full.state, &watched.state) {
                before
            } else {
                // Another queue than expected: counted only now, so a completion may have
                // slipped in since the rejection. Then either more requests are in
                // flight (and one of them completes next) or none is (and the drained
                // test below retries at once).
                watched = FullQueue {
                    rt: Weak::clone(&full.rt),
                    state: Arc::clone(&full.state),
                };
                watched.last_completed()
            };
            let Some(before) = before.map(SeqId::number) else {
                return Err(rejected);
            };
            let progressed = poll_until(Some(remaining), || {
                let last = watched.last_completed().ok_or(())?.number();
                let drained = last >= watched.state.last_submitted.load(Ordering::Acquire);
                Ok::<_, ()>((last > before || drained).then_some(()))
            });
            match progressed {
                Ok(_) => payload = rejected.into_inner(),
                Err(_) => return Err(rejected),
            }
        }
    }

    /// Schedules an execution of `model` on this COMPUTE unit (`nrta_execute_schedule`).
    ///
    /// The request owns both tensor sets until it completes, so they cannot be changed
    /// or freed while libnrt uses them; [`Request::wait`] hands them back as
    /// `(inputs, outputs)`. It also keeps `model` loaded.
    ///
    /// # Errors
    ///
    /// The sets come back in the [`Rejected`] with: [`Error::InvalidArgument`] if this
    /// is not a COMPUTE unit, [`Error::WrongCore`] if the model is on another core,
    /// [`Error::Unsupported`] if the model's core is unknown, the binding errors of
    /// [`Model::execute`] (missing tensor, size, core, runtime), [`Error::Unrecoverable`]
    /// if the unit failed earlier, and [`Error::Nrt`] if libnrt refuses the request
    /// (e.g. [`NrtStatus::QueueFull`], retryable: see
    /// [`submit_with_retry`](ExecUnit::submit_with_retry)).
    pub fn execute(
        &self,
        model: &Model,
        inputs: TensorSet,
        outputs: TensorSet,
    ) -> Scheduled<ExecSets> {
        self.execute_payload(model, (inputs, outputs), |(i, o)| (i, o))
    }

    /// [`execute`](ExecUnit::execute) for any payload holding the two sets: owned, or
    /// borrowed for an async [`scope`](crate::xu::scope) (which outlives the request).
    pub(crate) fn execute_payload<P: Payload>(
        &self,
        model: &Model,
        payload: P,
        sets: impl Fn(&P) -> (&TensorSet, &TensorSet),
    ) -> Scheduled<P> {
        let checked = {
            let (inputs, outputs) = sets(&payload);
            self.check_execute(model, inputs, outputs)
        };
        let (function, raw_inputs, raw_outputs) = match checked {
            Ok(f) => f,
            Err(error) => return Err(Rejected::new(error, payload)),
        };
        let raw_model = model.raw();
        self.schedule(
            "nrta_execute_schedule",
            || format!("model `{}`", model.label()),
            payload,
            KeepAlive::Model(model.clone()),
            Runs::OnThisUnit,
            |_, ret, seq| {
                // Why the call below is sound: v3 signature (ASYNC_V3 checked at unit creation). The model and
                // both sets stay alive and unchanged until completion: the request owns
                // the sets (or borrows them within a scope that waits for the request
                // before the borrow ends) and a model handle, and a forgotten request
                // leaks them. Every model tensor is bound with its exact size on the
                // model's core (checked). `ret` is a pool slot valid until completion is
                // observed; `seq` is a valid out-pointer.
                // SAFETY: the conditions just above hold for this call.
                unsafe { function(raw_model, raw_inputs, raw_outputs, 0, ret, seq) }
            },
        )
    }

    fn check_execute(
        &self,
        model: &Model,
        inputs: &TensorSet,
        outputs: &TensorSet,
    ) -> Result<(
        sys::fn_types::nrta_execute_schedule,
        *const c_void,
        *mut c_void,
    )> {
        self.expect_kind(XuKind::Compute, "execute")?;
        let function = require_fn(
            self.inner.rt.inner.fns().nrta_execute_schedule,
            "nrta_execute_schedule",
        )?;
        self.inner
            .rt
            .check_same(model.runtime(), || format!("model `{}`", model.label()))?;
        let model_core = model.core().ok_or_else(|| Error::Unsupported {
            feature: "nrt_get_model_info",
            needed: Some("a libnrt that reports the core of an auto-placed model".into()),
        })?;
        if model_core != self.inner.state.core {
            return Err(Error::WrongCore {
                tensor: format!("model `{}`", model.label()),
                tensor_core: model_core,
                what: self.to_string(),
                expected_core: self.inner.state.core,
            });
        }
        model.check_bindings(inputs, outputs)?;
        Ok((function, inputs.raw().cast_const(), outputs.raw()))
    }

    /// Schedules a write of `data` into `tensor` at byte `offset` on this TENSOR_OP unit
    /// (`nrta_tensor_write`).
    ///
    /// The request owns `data` until the write completes; [`Request::wait`] hands it
    /// back (unchanged) for reuse. It keeps `tensor` alive.
    ///
    /// # Errors
    ///
    /// `data` comes back in the [`Rejected`] with: [`Error::InvalidArgument`] if this is
    /// not a TENSOR_OP unit, [`Error::WrongCore`] if a device tensor is on another core,
    /// [`Error::ForeignHandle`] for a tensor of another runtime, [`Error::OutOfBounds`]
    /// if the bytes do not fit, [`Error::Unrecoverable`] if the unit failed earlier, and
    /// [`Error::Nrt`] if libnrt refuses the request.
    pub fn write<B: HostBuffer>(&self, tensor: &Tensor, offset: usize, data: B) -> Scheduled<B> {
        self.write_payload(tensor, offset, data)
    }

    /// [`write`](ExecUnit::write) for owned buffers and for slices borrowed by a scope.
    pub(crate) fn write_payload<B: SealedBuffer + Payload>(
        &self,
        tensor: &Tensor,
        offset: usize,
        data: B,
    ) -> Scheduled<B> {
        let (function, offset64, len64) = match self.check_transfer(
            "write",
            tensor,
            offset,
            data.byte_len(),
            |f| f.nrta_tensor_write,
            "nrta_tensor_write",
        ) {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, data)),
        };
        let raw_tensor = tensor.raw();
        let (lnc, queue) = self.transfer_args();
        self.schedule(
            "nrta_tensor_write",
            || {
                format!(
                    "tensor `{}`, {len64} bytes at offset {offset}",
                    tensor.name()
                )
            },
            data,
            KeepAlive::Tensor(tensor.share()),
            Runs::for_tensors(&[tensor]),
            |parked, ret, seq| {
                let src = B::parked_ptr(parked).cast::<c_void>().cast_const();
                // Why the call below is sound: v3 signature (checked at unit creation). `src` points to
                // `len64` initialised bytes owned by the request (parked, never touched
                // by Rust until completion, leaked if the request is forgotten) or
                // borrowed by a scope that waits for the request before the borrow
                // ends; the range is inside the tensor (checked), which the request
                // keeps alive. `ret`/`seq` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe { function(raw_tensor, src, offset64, len64, lnc, queue, ret, seq) }
            },
        )
    }

    /// Schedules a read from `tensor` at byte `offset` into `buffer` on this TENSOR_OP
    /// unit (`nrta_tensor_read`), filling the whole buffer.
    ///
    /// The request owns `buffer` until the read completes; [`Request::wait`] hands it
    /// back filled.
    ///
    /// # Errors
    ///
    /// As for [`write`](ExecUnit::write); `buffer` comes back in the [`Rejected`].
    pub fn read<B: HostBuffer>(&self, tensor: &Tensor, offset: usize, buffer: B) -> Scheduled<B> {
        self.read_payload(tensor, offset, buffer)
    }

    /// [`read`](ExecUnit::read) for owned buffers and for slices borrowed by a scope.
    pub(crate) fn read_payload<B: SealedBuffer + Payload>(
        &self,
        tensor: &Tensor,
        offset: usize,
        buffer: B,
    ) -> Scheduled<B> {
        let (function, offset64, len64) = match self.check_transfer(
            "read",
            tensor,
            offset,
            buffer.byte_len(),
            |f| f.nrta_tensor_read,
            "nrta_tensor_read",
        ) {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, buffer)),
        };
        let raw_tensor = tensor.raw();
        let (lnc, queue) = self.transfer_args();
        self.schedule(
            "nrta_tensor_read",
            || {
                format!(
                    "tensor `{}`, {len64} bytes at offset {offset}",
                    tensor.name()
                )
            },
            buffer,
            KeepAlive::Tensor(tensor.share()),
            Runs::for_tensors(&[tensor]),
            |parked, ret, seq| {
                let dst = B::parked_ptr(parked).cast::<c_void>();
                // Why the call below is sound: v3 signature (checked at unit creation). `dst` points to
                // `len64` bytes owned by the request (or exclusively borrowed by a scope
                // that waits for the request) and not accessed by Rust until completion
                // is observed (leaked if the request is forgotten); any bytes are valid
                // elements (`Element`'s contract). Range checked; tensor kept alive;
                // `ret`/`seq` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe { function(dst, raw_tensor, offset64, len64, lnc, queue, ret, seq) }
            },
        )
    }

    /// Schedules a copy of `len` bytes from `src` at `src_offset` to `dst` at
    /// `dst_offset` on this TENSOR_OP unit (`nrta_tensor_copy`). The request keeps both
    /// tensors alive.
    ///
    /// # Errors
    ///
    /// As for [`write`](ExecUnit::write), for both tensors; device tensors must both be
    /// on this unit's core. The payload is `()`.
    pub fn copy(
        &self,
        src: &Tensor,
        src_offset: usize,
        dst: &Tensor,
        dst_offset: usize,
        len: usize,
    ) -> Scheduled<()> {
        let checked = self
            .check_transfer(
                "copy",
                src,
                src_offset,
                len,
                |f| f.nrta_tensor_copy,
                "nrta_tensor_copy",
            )
            .and_then(|(function, src64, len64)| {
                self.check_tensor(dst, dst_offset, len)?;
                Ok((function, src64, to_u64("dst_offset", dst_offset)?, len64))
            });
        let (function, src64, dst64, len64) = match checked {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, ())),
        };
        let (raw_src, raw_dst) = (src.raw(), dst.raw());
        let (lnc, queue) = self.transfer_args();
        self.schedule(
            "nrta_tensor_copy",
            || {
                format!(
                    "{len} bytes from `{}`+{src_offset} to `{}`+{dst_offset}",
                    src.name(),
                    dst.name()
                )
            },
            (),
            KeepAlive::Tensors(src.share(), dst.share()),
            Runs::for_tensors(&[src, dst]),
            |_, ret, seq| {
                // SAFETY: v3 signature (checked at unit creation); both tensors are live
                // (kept by the request) and both ranges are inside them (checked);
                // `ret`/`seq` as in `execute_payload`.
                unsafe { function(raw_src, src64, raw_dst, dst64, len64, lnc, queue, ret, seq) }
            },
        )
    }

    /// Checks shared by write, read and copy (for the source); returns the function and
    /// the offset and length as u64.
    fn check_transfer<F>(
        &self,
        operation: &'static str,
        tensor: &Tensor,
        offset: usize,
        len: usize,
        pick: impl FnOnce(&sys::NrtFns) -> Option<F>,
        function: &'static str,
    ) -> Result<(F, u64, u64)> {
        self.expect_kind(XuKind::TensorOp, operation)?;
        let f = require_fn(pick(self.inner.rt.inner.fns()), function)?;
        self.check_tensor(tensor, offset, len)?;
        Ok((f, to_u64("offset", offset)?, to_u64("len", len)?))
    }

    fn check_tensor(&self, tensor: &Tensor, offset: usize, len: usize) -> Result<()> {
        self.inner
            .rt
            .check_same(tensor.runtime(), || format!("tensor `{}`", tensor.name()))?;
        if let (Placement::Device, Some(core)) = (tensor.placement(), tensor.core())
            && core != self.inner.state.core
        {
            return Err(Error::WrongCore {
                tensor: tensor.name().to_owned(),
                tensor_core: core,
                what: self.to_string(),
                expected_core: self.inner.state.core,
            });
        }
        tensor.check_range(offset, len)
    }

    fn expect_kind(&self, kind: XuKind, operation: &str) -> Result<()> {
        if self.inner.state.kind == kind {
            Ok(())
        } else {
            Err(Error::invalid(
                "unit",
                format!(
                    "{operation} needs a {kind} unit, but {self} is a {} unit",
                    self.inner.state.kind
                ),
            ))
        }
    }

    /// `(lnc_idx, queue)` of a tensor-op call: this unit's core (whose DMA engine moves
    /// the data, also for host tensors) and queue index.
    fn transfer_args(&self) -> (i32, i32) {
        let state = &self.inner.state;
        // Queue indices are below XuKind::queue_count (<= 3), checked at creation; core
        // indices are below the visible core count, itself from a u32 that libnrt bounds
        // far below i32::MAX (at most 128 cores per instance), checked at creation too.
        (state.core as i32, state.queue as i32)
    }

    /// The common part of every schedule: fail fast on an unrecoverable queue, take a
    /// status slot, park the payload, call libnrt under the queue's lock, count the
    /// request on the queue that runs it, and build the request (or hand the payload
    /// back).
    fn schedule<T: Payload>(
        &self,
        function: &'static str,
        context: impl FnOnce() -> String,
        payload: T,
        keep: KeepAlive,
        runs: Runs,
        call: impl FnOnce(&T::Parked, *mut sys::NRT_STATUS, *mut u64) -> sys::NRT_STATUS,
    ) -> Scheduled<T> {
        let unit = &*self.inner;
        let units = &unit.rt.inner.units;
        // The queue libnrt will run the request on: this unit's, or for host tensors only
        // a guess (the queue libnrt picked last time), used only to serialise the call
        // and, if libnrt reports that queue full, to wait for it. Failing fast, or
        // marking a queue unrecoverable when libnrt refuses, is done only for a queue
        // that is known: acting on a wrong guess would refuse requests that libnrt could
        // run, or condemn a healthy queue.
        let (known, guess) = match runs {
            Runs::OnThisUnit => (Some(&unit.state), None),
            Runs::WhereLibnrtPicks => (None, units.host_route(unit.state.queue)),
        };
        if let Some(state) = known
            && let Some(status) = state.fatal_status()
        {
            return Err(Rejected::new(state.unrecoverable_error(status), payload));
        }
        let slot = unit.state.slots.take();
        let parked = payload.park();
        let mut raw_seq = 0u64;
        // The first request whose queue is not known beforehand takes this unit's lock.
        let locked = known.or(guess).unwrap_or(&unit.state);
        let status = {
            let _queue = locked.lock_submit();
            let status = call(&parked, slot.as_ptr(), &mut raw_seq);
            if status == sys::NRT_SUCCESS {
                locked.count(SeqId::from_raw(raw_seq));
            }
            status
        };
        if status != sys::NRT_SUCCESS {
            // Nothing was queued, so libnrt holds no pointer to the slot or the payload.
            unit.state.slots.give_back(slot);
            // SAFETY: `parked` came from `park` just above and libnrt did not keep it.
            let payload = unsafe { T::unpark(parked) };
            if status == sys::NRT_EXEC_UNIT_UNRECOVERABLE
                && let Some(state) = known
            {
                state.mark_fatal(status);
            }
            let error = unit
                .rt
                .inner
                .check(function, status, || format!("{}: {}", self, context()))
                .err()
                .unwrap_or(Error::UnexpectedResult {
                    function,
                    reason: "failure status lost".into(),
                });
            let full = match known.or(guess) {
                Some(state) if status == sys::NRT_QUEUE_FULL => Some(FullQueue {
                    rt: Arc::downgrade(&unit.rt.inner),
                    state: Arc::clone(state),
                }),
                _ => None,
            };
            return Err(Rejected::new(error, payload).with_full_queue(full));
        }
        let seq = SeqId::from_raw(raw_seq);
        // The queue that runs the request is the one whose XU id `seq` carries.
        let ran_on = if seq.xu_id() == locked.xu_id {
            Some(locked)
        } else {
            let found = units.by_xu_id(&unit.rt, seq.xu_id());
            if let Some(state) = found {
                state.count(seq);
            }
            found
        };
        if let (Runs::WhereLibnrtPicks, Some(state)) = (runs, ran_on) {
            units.learn_host_route(unit.state.queue, state);
        }
        // `None`: this unit's queue (or, if libnrt returned an id that no queue reports,
        // the unit it was scheduled through, for lack of a better one).
        let ran_on = ran_on
            .filter(|state| !Arc::ptr_eq(state, &unit.state))
            .map(Arc::clone);
        Ok(Request::new(
            Arc::clone(&self.inner),
            seq,
            slot,
            function,
            parked,
            keep,
            ran_on,
        ))
    }
}

/// Which queue libnrt runs a request on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runs {
    /// The unit's own: executions, and transfers with a device tensor (on the unit's
    /// core, checked).
    OnThisUnit,
    /// One libnrt picks: transfers of host tensors only.
    WhereLibnrtPicks,
}

impl Runs {
    fn for_tensors(tensors: &[&Tensor]) -> Runs {
        if tensors.iter().any(|t| t.placement() == Placement::Device) {
            Runs::OnThisUnit
        } else {
            Runs::WhereLibnrtPicks
        }
    }
}

fn to_u64(argument: &'static str, value: usize) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::invalid(argument, format!("{value} does not fit in 64 bits")))
}

impl QueueState {
    /// The id of the last request this queue completed (`nrta_get_sequence`).
    fn last_completed(&self, rt: &Runtime) -> Result<SeqId> {
        query_sequence(rt, self.get_sequence, self.core, self.kind, self.queue)
    }

    fn last_submitted(&self) -> SeqId {
        SeqId::new(self.xu_id, self.last_submitted.load(Ordering::Acquire))
    }

    /// Counts request `seq` as submitted, if it is one of this queue's.
    fn count(&self, seq: SeqId) {
        if seq.xu_id() == self.xu_id {
            self.last_submitted
                .fetch_max(seq.number(), Ordering::AcqRel);
        }
    }

    fn lock_submit(&self) -> MutexGuard<'_, ()> {
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

    fn unrecoverable_error(&self, status: NrtStatus) -> Error {
        Error::Unrecoverable {
            unit: self.to_string(),
            status,
        }
    }
}

impl UnitInner {
    pub(crate) fn last_completed(&self) -> Result<SeqId> {
        self.state.last_completed(&self.rt)
    }

    /// A handle to another queue of the same runtime.
    pub(crate) fn sibling(&self, state: &Arc<QueueState>) -> UnitInner {
        UnitInner {
            rt: self.rt.clone(),
            state: Arc::clone(state),
            is_completed: self.is_completed,
        }
    }

    /// Whether request `seq` has completed (`nrta_is_completed`).
    ///
    /// If libnrt cannot answer for `seq` (it answers `NRT_INVALID` for ids it does not
    /// know), the last completed number of the queue that issued `seq` answers instead:
    /// requests of one queue complete in order. That queue is the one with `seq`'s XU
    /// id, which is not always this unit's (libnrt picks the queue of a host tensor).
    /// Only if no queue answers is the error returned.
    pub(crate) fn is_completed(&self, seq: SeqId) -> Result<bool> {
        let mut done = false;
        // SAFETY: v3 signature (checked at unit creation); `done` is a valid out-pointer.
        let status = unsafe { (self.is_completed)(seq.raw(), &mut done) };
        let error = match self.rt.inner.check("nrta_is_completed", status, || {
            format!("request {seq} on {self}")
        }) {
            Ok(()) => return Ok(done),
            Err(error) => error,
        };
        let last = match self.queue_of(seq.xu_id()) {
            Some(state) => state.last_completed(&self.rt).ok(),
            None => None,
        };
        match last {
            Some(last) => Ok(last.number() >= seq.number()),
            None => Err(error),
        }
    }

    /// The state of the queue with XU id `xu_id`: this unit's, or another queue of this
    /// runtime that reports that id.
    fn queue_of(&self, xu_id: u16) -> Option<&Arc<QueueState>> {
        if xu_id == self.state.xu_id {
            Some(&self.state)
        } else {
            self.rt.inner.units.by_xu_id(&self.rt, xu_id)
        }
    }

    /// The error for request `seq`, which completed with `raw` on queue `ran_on`; a
    /// fatal status marks that queue unrecoverable.
    pub(crate) fn request_error(
        &self,
        function: &'static str,
        seq: SeqId,
        raw: sys::NRT_STATUS,
        ran_on: &QueueState,
    ) -> Error {
        if NrtStatus::from_raw(raw).is_fatal() {
            ran_on.mark_fatal(raw);
        }
        self.rt
            .inner
            .check(function, raw, || format!("request {seq} on {ran_on}"))
            .err()
            .unwrap_or(Error::UnexpectedResult {
                function,
                reason: "failure status lost".into(),
            })
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
            .field("xu_id", &format_args!("{:#06x}", state.xu_id))
            .field(
                "last_submitted",
                &state.last_submitted.load(Ordering::Relaxed),
            )
            .field("unrecoverable", &state.fatal_status())
            .finish()
    }
}

/// Bounds for [`ExecUnit::submit_with_retry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Submissions to try in total, the first one included (one is always made, also
    /// with 0).
    pub max_attempts: u32,
    /// Time after which no further attempt is made (the first one is always made).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 1000 attempts within 30 seconds.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1000,
            timeout: Duration::from_secs(30),
        }
    }
}
