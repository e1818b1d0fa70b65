//! [`ExecUnit`]: one execution-unit queue, and scheduling on it.

use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use nrt_sys as sys;

use super::request::sealed::SealedBuffer;
use super::request::{ExecSets, HostBuffer, KeepAlive, Payload, Rejected, Request, Scheduled};
use super::seq::SeqId;
use super::slots::SlotPool;
use super::wait::poll_until;
use crate::runtime::require_fn;
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
/// they were created, share its state: the count of submitted requests, the
/// unrecoverable flag and a lock that serialises the schedule calls on that queue (so
/// that sequence ids and [`last_submitted`](ExecUnit::last_submitted) agree). A unit
/// keeps the runtime open.
///
/// # Threads
///
/// `ExecUnit` is `Send + Sync` and can be cloned into many threads. Schedule calls on
/// one queue are serialised by the unit's lock (cheap: a schedule call never blocks in
/// libnrt), so this crate does not rely on libnrt accepting concurrent schedules on one
/// queue (host tensors aside, see below); different queues are scheduled concurrently, as the one-queue-per-unit design
/// of the async API intends. Polls (`nrta_is_completed`, `nrta_get_sequence`) are
/// read-only queries and run without a lock.
///
/// # Host tensors
///
/// A write, read or copy runs on the TENSOR_OP queue of the tensor's core. Host tensors
/// have no core, so libnrt picks the queue (nrt-sim: the queue of the same index on
/// core 0; a copy with a device tensor runs on that tensor's core); schedule them
/// on the unit of that queue. Scheduled through another unit, their requests still
/// complete, are waited for and report normally, but no unit counts them: the
/// [`last_submitted`](ExecUnit::last_submitted), [`in_flight`](ExecUnit::in_flight),
/// [`wait_idle`](ExecUnit::wait_idle) and retries of the queue that runs them do not see
/// them, and their schedule calls are not serialised with that queue's own.
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

pub(crate) struct UnitInner {
    rt: Runtime,
    core: u32,
    kind: XuKind,
    queue: u32,
    xu_id: u16,
    is_completed: sys::fn_types::nrta_is_completed,
    get_sequence: sys::fn_types::nrta_get_sequence,
    pub(crate) slots: SlotPool,
    /// Held across each schedule call on this queue.
    submit: Mutex<()>,
    /// Number of the last request accepted through this crate.
    last_submitted: AtomicU64,
    /// 0, or the raw fatal status that made the unit unrecoverable.
    fatal: AtomicU32,
}

/// Units alive per runtime, so that every handle of one queue shares one [`UnitInner`].
/// Keyed by the runtime's address and the queue; dead entries are pruned on insert.
type Registry = Vec<(usize, u32, XuKind, u32, Weak<UnitInner>)>;
static UNITS: Mutex<Registry> = Mutex::new(Vec::new());

fn units() -> MutexGuard<'static, Registry> {
    // Each change is one push or retain, so a panic under the lock leaves it consistent.
    UNITS.lock().unwrap_or_else(|e| e.into_inner())
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
        let key = Arc::as_ptr(&self.inner) as usize;
        let mut registry = units();
        let existing = registry
            .iter()
            .find(|(k, c, t, q, _)| (*k, *c, *t, *q) == (key, core, kind, queue))
            .and_then(|(.., weak)| weak.upgrade());
        if let Some(inner) = existing {
            return Ok(ExecUnit { inner });
        }
        let last = query_sequence(self, get_sequence, core, kind, queue)?;
        let inner = Arc::new(UnitInner {
            rt: self.clone(),
            core,
            kind,
            queue,
            xu_id: last.xu_id(),
            is_completed,
            get_sequence,
            slots: SlotPool::new(),
            submit: Mutex::new(()),
            last_submitted: AtomicU64::new(last.number()),
            fatal: AtomicU32::new(0),
        });
        registry.retain(|(.., weak)| weak.strong_count() > 0);
        registry.push((key, core, kind, queue, Arc::downgrade(&inner)));
        Ok(ExecUnit { inner })
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

impl ExecUnit {
    /// The NeuronCore of this unit.
    pub fn core(&self) -> u32 {
        self.inner.core
    }

    /// The kind of this unit.
    pub fn kind(&self) -> XuKind {
        self.inner.kind
    }

    /// The queue index of this unit within its core and kind.
    pub fn queue(&self) -> u32 {
        self.inner.queue
    }

    /// The XU id libnrt uses for this queue (the top 16 bits of its [`SeqId`]s).
    pub fn xu_id(&self) -> u16 {
        self.inner.xu_id
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
    /// before any).
    pub fn last_submitted(&self) -> SeqId {
        SeqId::new(
            self.inner.xu_id,
            self.inner.last_submitted.load(Ordering::Acquire),
        )
    }

    /// How many requests scheduled on this unit have not completed yet.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn in_flight(&self) -> Result<u64> {
        // Read `submitted` first: a request scheduled between the two reads then only
        // makes the count smaller, never makes `completed` exceed `submitted`.
        let submitted = self.inner.last_submitted.load(Ordering::Acquire);
        let completed = self.inner.last_completed()?.number();
        Ok(submitted.saturating_sub(completed))
    }

    /// Waits until request `seq` of this unit (and so every earlier one) has completed.
    ///
    /// This does not read the request's status: that is [`Request::wait`]'s job.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `seq` belongs to another unit or was never
    /// scheduled (waiting for it would never end); [`Error::Nrt`] if polling fails.
    pub fn wait_for(&self, seq: SeqId) -> Result<()> {
        self.wait_for_timeout(seq, None).map(|_| ())
    }

    /// Waits until every request scheduled on this unit so far has completed.
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
        if seq.xu_id() != self.inner.xu_id {
            return Err(Error::invalid(
                "seq",
                format!(
                    "{seq} belongs to XU id {:#06x}, not to {self} (XU id {:#06x})",
                    seq.xu_id(),
                    self.inner.xu_id
                ),
            ));
        }
        let submitted = self.inner.last_submitted.load(Ordering::Acquire);
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
        self.inner.fatal_status()
    }

    /// Calls `submit` with `payload` until it is accepted, waiting for a completion on
    /// this unit after each [`NrtStatus::QueueFull`] rejection, within `policy`'s bounds.
    ///
    /// `submit` is typically a closure around one of the schedule methods, e.g.
    /// `|(inputs, outputs)| unit.execute(&model, inputs, outputs)`.
    ///
    /// # Errors
    ///
    /// Any rejection other than `QueueFull` (also [`NrtStatus::ExecNcBusy`], which
    /// waiting for this unit cannot cure) is returned at once; when the policy's attempts
    /// or time run out, or progress on this unit can no longer be observed, the last
    /// `QueueFull` rejection is returned. Either way the payload comes back in the
    /// [`Rejected`].
    pub fn submit_with_retry<T: Payload>(
        &self,
        policy: RetryPolicy,
        payload: T,
        mut submit: impl FnMut(T) -> Scheduled<T>,
    ) -> Scheduled<T> {
        let mut payload = payload;
        let mut attempts = 0u32;
        let started = std::time::Instant::now();
        loop {
            // Completions counted from before the attempt, so one that happens between
            // the rejection and the wait below is not missed.
            let before = self.inner.last_completed().ok();
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
            let before = match before {
                Some(b) => b.number(),
                None => return Err(rejected),
            };
            let progressed = poll_until(Some(remaining), || {
                let last = self.inner.last_completed()?;
                Ok::<_, Error>((last.number() > before).then_some(()))
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
        if model_core != self.inner.core {
            return Err(Error::WrongCore {
                tensor: format!("model `{}`", model.label()),
                tensor_core: model_core,
                what: self.to_string(),
                expected_core: self.inner.core,
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
        let queue = self.queue_arg();
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
            |parked, ret, seq| {
                let src = B::parked_ptr(parked).cast::<c_void>().cast_const();
                // Why the call below is sound: v3 signature (checked at unit creation). `src` points to
                // `len64` initialised bytes owned by the request (parked, never touched
                // by Rust until completion, leaked if the request is forgotten) or
                // borrowed by a scope that waits for the request before the borrow
                // ends; the range is inside the tensor (checked), which the request
                // keeps alive. `ret`/`seq` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe { function(raw_tensor, src, offset64, len64, queue, ret, seq) }
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
        let queue = self.queue_arg();
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
            |parked, ret, seq| {
                let dst = B::parked_ptr(parked).cast::<c_void>();
                // Why the call below is sound: v3 signature (checked at unit creation). `dst` points to
                // `len64` bytes owned by the request (or exclusively borrowed by a scope
                // that waits for the request) and not accessed by Rust until completion
                // is observed (leaked if the request is forgotten); any bytes are valid
                // elements (`Element`'s contract). Range checked; tensor kept alive;
                // `ret`/`seq` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe { function(dst, raw_tensor, offset64, len64, queue, ret, seq) }
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
        let queue = self.queue_arg();
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
            |_, ret, seq| {
                // SAFETY: v3 signature (checked at unit creation); both tensors are live
                // (kept by the request) and both ranges are inside them (checked);
                // `ret`/`seq` as in `execute_payload`.
                unsafe { function(raw_src, src64, raw_dst, dst64, len64, queue, ret, seq) }
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
            && core != self.inner.core
        {
            return Err(Error::WrongCore {
                tensor: tensor.name().to_owned(),
                tensor_core: core,
                what: self.to_string(),
                expected_core: self.inner.core,
            });
        }
        tensor.check_range(offset, len)
    }

    fn expect_kind(&self, kind: XuKind, operation: &str) -> Result<()> {
        if self.inner.kind == kind {
            Ok(())
        } else {
            Err(Error::invalid(
                "unit",
                format!(
                    "{operation} needs a {kind} unit, but {self} is a {} unit",
                    self.inner.kind
                ),
            ))
        }
    }

    fn queue_arg(&self) -> i32 {
        // Queue indices are below XuKind::queue_count (<= 3), checked at creation.
        self.inner.queue as i32
    }

    /// The common part of every schedule: fail fast on an unrecoverable unit, take a
    /// status slot, park the payload, call libnrt under the queue's lock, and build the
    /// request (or hand the payload back).
    fn schedule<T: Payload>(
        &self,
        function: &'static str,
        context: impl FnOnce() -> String,
        payload: T,
        keep: KeepAlive,
        call: impl FnOnce(&T::Parked, *mut sys::NRT_STATUS, *mut u64) -> sys::NRT_STATUS,
    ) -> Scheduled<T> {
        if let Some(status) = self.inner.fatal_status() {
            return Err(Rejected::new(
                self.inner.unrecoverable_error(status),
                payload,
            ));
        }
        let slot = self.inner.slots.take();
        let parked = payload.park();
        let mut raw_seq = 0u64;
        let status = {
            let _queue = self.inner.lock_submit();
            let status = call(&parked, slot.as_ptr(), &mut raw_seq);
            if status == sys::NRT_SUCCESS {
                let seq = SeqId::from_raw(raw_seq);
                if seq.xu_id() == self.inner.xu_id {
                    self.inner
                        .last_submitted
                        .fetch_max(seq.number(), Ordering::AcqRel);
                }
            }
            status
        };
        if status != sys::NRT_SUCCESS {
            // Nothing was queued, so libnrt holds no pointer to the slot or the payload.
            self.inner.slots.give_back(slot);
            // SAFETY: `parked` came from `park` just above and libnrt did not keep it.
            let payload = unsafe { T::unpark(parked) };
            if status == sys::NRT_EXEC_UNIT_UNRECOVERABLE {
                self.inner.mark_fatal(status);
            }
            let error = self
                .inner
                .rt
                .inner
                .check(function, status, || format!("{}: {}", self, context()))
                .err()
                .unwrap_or(Error::UnexpectedResult {
                    function,
                    reason: "failure status lost".into(),
                });
            return Err(Rejected::new(error, payload));
        }
        Ok(Request::new(
            Arc::clone(&self.inner),
            SeqId::from_raw(raw_seq),
            slot,
            function,
            parked,
            keep,
        ))
    }
}

fn to_u64(argument: &'static str, value: usize) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::invalid(argument, format!("{value} does not fit in 64 bits")))
}

impl UnitInner {
    pub(crate) fn last_completed(&self) -> Result<SeqId> {
        query_sequence(
            &self.rt,
            self.get_sequence,
            self.core,
            self.kind,
            self.queue,
        )
    }

    /// Whether request `seq` of this unit has completed (`nrta_is_completed`).
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
        match self.last_completed_of(seq.xu_id()) {
            Some(last) => Ok(last.number() >= seq.number()),
            None => Err(error),
        }
    }

    /// The last completed id of the queue with XU id `xu_id`: this unit's queue, or the
    /// queue of this runtime that reports that XU id; `None` if none answers.
    fn last_completed_of(&self, xu_id: u16) -> Option<SeqId> {
        if xu_id == self.xu_id {
            return self.last_completed().ok();
        }
        let cores = self.rt.visible_core_count().ok()?;
        for core in 0..cores {
            for kind in XuKind::ALL {
                for queue in 0..kind.queue_count() {
                    let last = query_sequence(&self.rt, self.get_sequence, core, kind, queue);
                    if let Ok(last) = last
                        && last.xu_id() == xu_id
                    {
                        return Some(last);
                    }
                }
            }
        }
        None
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

    /// The error for a request of this unit that completed with `raw`.
    pub(crate) fn request_error(
        &self,
        function: &'static str,
        seq: SeqId,
        raw: sys::NRT_STATUS,
    ) -> Error {
        if NrtStatus::from_raw(raw).is_fatal() {
            self.mark_fatal(raw);
        }
        self.rt
            .inner
            .check(function, raw, || format!("request {seq} on {self}"))
            .err()
            .unwrap_or(Error::UnexpectedResult {
                function,
                reason: "failure status lost".into(),
            })
    }
}

impl fmt::Display for UnitInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} unit (core {}, queue {})",
            self.kind, self.core, self.queue
        )
    }
}

impl fmt::Display for ExecUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Debug for ExecUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecUnit")
            .field("core", &self.inner.core)
            .field("kind", &self.inner.kind)
            .field("queue", &self.inner.queue)
            .field("xu_id", &format_args!("{:#06x}", self.inner.xu_id))
            .field(
                "last_submitted",
                &self.inner.last_submitted.load(Ordering::Relaxed),
            )
            .field("unrecoverable", &self.inner.fatal_status())
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
