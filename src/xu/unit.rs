//! Scheduling on an [`ExecUnit`]: executions and tensor transfers, and the unit's
//! queries and waits.

use std::ffi::{c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use nrt_sys as sys;

use super::kind::XuKind;
use super::payload::KeepAlive;
use super::payload::sealed::SealedBuffer;
use super::payload::{ExecSets, HostBuffer, Payload};
use super::queue::ExecUnit;
use super::request::{Rejected, Request, Scheduled};
use super::seq::SeqId;
use crate::error::{Error, NrtStatus, Result};
use crate::objects::host_lock::{Access, RequestHolds};
use crate::objects::{Model, Placement, Runtime, Tensor, TensorSet};
use crate::profiling::spans;
use crate::raw;

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

    /// The XU id libnrt uses for this queue (the top 16 bits of its [`SeqId`]s), known
    /// once a request was accepted on it (libnrt documents that the ids its schedule
    /// calls return name the queue, and nothing else).
    pub fn xu_id(&self) -> Option<u16> {
        self.inner.state.xu_id()
    }

    /// Whether waits on this unit block on completion events (runtime >= 2.32, see
    /// [`Capabilities::ASYNC_EVENTS`](crate::Capabilities::ASYNC_EVENTS)) rather than poll.
    pub fn has_events(&self) -> bool {
        self.inner.state.events.is_some()
    }

    /// The runtime this unit belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// The id of the last request this unit completed (`nrta_get_sequence`); number 0
    /// before any (its XU id bits are then whatever libnrt reports: compare numbers).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn last_completed(&self) -> Result<SeqId> {
        self.inner.last_completed()
    }

    /// The id of the last request scheduled on this queue through this crate (number 0,
    /// and XU id 0 while [`xu_id`](ExecUnit::xu_id) is unknown, before any).
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
        let submitted = self.inner.state.last_submitted_number();
        let completed = self.inner.last_completed()?.number();
        Ok(submitted.saturating_sub(completed))
    }

    /// Waits until request `seq` of this unit (and so every earlier one) has completed.
    ///
    /// This does not read the request's status: that is [`Request::wait`]'s job.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `seq` belongs to another queue or was never
    /// scheduled (waiting for it would never end); [`Error::Nrt`] if libnrt cannot tell
    /// whether it completed.
    pub fn wait_for(&self, seq: SeqId) -> Result<()> {
        self.wait_for_timeout(seq, None).map(|_| ())
    }

    /// Waits until every request scheduled on this queue so far has completed.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt cannot tell whether they completed.
    pub fn wait_idle(&self) -> Result<()> {
        match self.inner.state.xu_id() {
            // Nothing was ever accepted through this crate.
            None => Ok(()),
            Some(_) => self.wait_for(self.last_submitted()),
        }
    }

    /// Like [`wait_for`](ExecUnit::wait_for), giving up after `timeout`; returns whether
    /// `seq` completed.
    ///
    /// # Errors
    ///
    /// As for [`wait_for`](ExecUnit::wait_for).
    pub fn wait_for_timeout(&self, seq: SeqId, timeout: Option<Duration>) -> Result<bool> {
        let state = &self.inner.state;
        let submitted = state.last_submitted_number();
        match state.xu_id() {
            Some(xu_id) if xu_id != seq.xu_id() => {
                return Err(Error::invalid(
                    "seq",
                    format!(
                        "{seq} belongs to another queue (XU id {:#06x}), not to {self} (XU id {xu_id:#06x})",
                        seq.xu_id()
                    ),
                ));
            }
            // Nothing accepted yet: only "number 0" (nothing to wait for) is this unit's.
            None if seq.number() != 0 => {
                return Err(Error::invalid(
                    "seq",
                    format!("{seq} was never scheduled on {self}: it has accepted no request"),
                ));
            }
            _ => {}
        }
        if seq.number() > submitted {
            return Err(Error::invalid(
                "seq",
                format!("{seq} was never scheduled on {self} (last is number {submitted})"),
            ));
        }
        if seq.number() == 0 {
            return Ok(true);
        }
        self.inner.wait_until(seq, timeout)
    }

    /// The status that made this unit unrecoverable, if one did (see the type docs).
    pub fn unrecoverable(&self) -> Option<NrtStatus> {
        self.inner.state.fatal_status()
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
        let (raw_inputs, raw_outputs) = match checked {
            Ok(sets) => sets,
            Err(error) => return Err(Rejected::new(error, payload)),
        };
        let (lib, raw_model) = (self.lib(), model.raw());
        // The model's core is this unit's (checked); its compute queue index.
        let queue = self.inner.state.queue as c_int;
        // The host storage it reads and writes is held until it completed.
        let holds = {
            let (inputs, outputs) = sets(&payload);
            // Sets of device tensors only: no tensor to look at.
            let host = inputs.has_host_storage() || outputs.has_host_storage();
            RequestHolds::take(
                &self.inner,
                host.then(|| {
                    inputs
                        .iter()
                        .map(|(_, t)| (t, Access::Read))
                        .chain(outputs.iter().map(|(_, t)| (t, Access::Write)))
                })
                .into_iter()
                .flatten(),
            )
        };
        let holds = match holds {
            Ok(holds) => holds,
            Err(error) => return Err(Rejected::new(error, payload)),
        };
        self.schedule_held(
            "nrta_execute_schedule",
            || format!("model `{}`", model.label()),
            payload,
            KeepAlive::Model(model.clone()),
            holds,
            |_, ret| {
                // Why the call below is sound: v3 signature (ASYNC_V3 checked at unit creation). The model and
                // both sets stay alive and unchanged until completion: the request owns
                // the sets (or borrows them within a scope that waits for the request
                // before the borrow ends) and a model handle, and a forgotten request
                // leaks them. Every model tensor is bound with its exact size on the
                // model's core (checked). `ret` is a pool slot valid until completion is
                // observed.
                // SAFETY: the conditions just above hold for this call.
                unsafe {
                    raw::xu::execute_schedule(lib, raw_model, raw_inputs, raw_outputs, queue, ret)
                }
            },
        )
    }

    fn check_execute(
        &self,
        model: &Model,
        inputs: &TensorSet,
        outputs: &TensorSet,
    ) -> Result<(*const c_void, *mut c_void)> {
        self.expect_kind(XuKind::Compute, "execute")?;
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
        Ok((inputs.raw().cast_const(), outputs.raw()))
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
        let (offset64, len64) = match self.check_transfer("write", tensor, offset, data.byte_len())
        {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, data)),
        };
        let (lib, raw_tensor) = (self.lib(), tensor.raw());
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
            [(tensor, Access::Write)],
            |parked, ret| {
                let src = B::parked_ptr(parked).cast::<c_void>().cast_const();
                // Why the call below is sound: v3 signature (checked at unit creation). `src` points to
                // `len64` initialised bytes owned by the request (parked, never touched
                // by Rust until completion, leaked if the request is forgotten) or
                // borrowed by a scope that waits for the request before the borrow
                // ends; the range is inside the tensor (checked), which the request
                // keeps alive. `ret` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe {
                    raw::xu::tensor_write(lib, raw_tensor, src, offset64, len64, lnc, queue, ret)
                }
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
        let (offset64, len64) = match self.check_transfer("read", tensor, offset, buffer.byte_len())
        {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, buffer)),
        };
        let (lib, raw_tensor) = (self.lib(), tensor.raw());
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
            [(tensor, Access::Read)],
            |parked, ret| {
                let dst = B::parked_ptr(parked).cast::<c_void>();
                // Why the call below is sound: v3 signature (checked at unit creation). `dst` points to
                // `len64` bytes owned by the request (or exclusively borrowed by a scope
                // that waits for the request) and not accessed by Rust until completion
                // is observed (leaked if the request is forgotten); any bytes are valid
                // elements (`Element`'s contract). Range checked; tensor kept alive;
                // `ret` as in `execute_payload`.
                // SAFETY: the conditions just above hold for this call.
                unsafe {
                    raw::xu::tensor_read(lib, dst, raw_tensor, offset64, len64, lnc, queue, ret)
                }
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
        let checked =
            self.check_transfer("copy", src, src_offset, len)
                .and_then(|(src64, len64)| {
                    self.check_tensor(dst, dst_offset, len)?;
                    Ok((src64, to_u64("dst_offset", dst_offset)?, len64))
                });
        let (src64, dst64, len64) = match checked {
            Ok(v) => v,
            Err(error) => return Err(Rejected::new(error, ())),
        };
        let (lib, raw_src, raw_dst) = (self.lib(), src.raw(), dst.raw());
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
            [(src, Access::Read), (dst, Access::Write)],
            |_, ret| {
                // SAFETY: v3 signature (checked at unit creation); both tensors are live
                // (kept by the request) and both ranges are inside them (checked); `ret`
                // as in `execute_payload`.
                unsafe {
                    raw::xu::tensor_copy(
                        lib, raw_src, src64, raw_dst, dst64, len64, lnc, queue, ret,
                    )
                }
            },
        )
    }

    /// Checks shared by write, read and copy (for the source); returns the offset and
    /// length as u64.
    fn check_transfer(
        &self,
        operation: &'static str,
        tensor: &Tensor,
        offset: usize,
        len: usize,
    ) -> Result<(u64, u64)> {
        self.expect_kind(XuKind::TensorOp, operation)?;
        self.check_tensor(tensor, offset, len)?;
        Ok((to_u64("offset", offset)?, to_u64("len", len)?))
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

    /// The library this unit's runtime calls.
    fn lib(&self) -> &'static nrt_sys::Library {
        // The queue state's copy: the state is read anyway, the runtime's would be
        // another cache line per request.
        self.inner.state.lib()
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
    /// request, and build the request (or hand the payload back).
    fn schedule<T: Payload, const N: usize>(
        &self,
        function: &'static str,
        context: impl FnOnce() -> String,
        payload: T,
        keep: KeepAlive,
        host: [(&Tensor, Access); N],
        call: impl FnOnce(&T::Parked, *mut sys::NRT_STATUS) -> Result<u64>,
    ) -> Scheduled<T> {
        let holds = match RequestHolds::take(&self.inner, host) {
            Ok(holds) => holds,
            Err(error) => {
                let error = error.context(format!("{}: {}", self, context()));
                return Err(Rejected::new(error, payload));
            }
        };
        self.schedule_held(function, context, payload, keep, holds, call)
    }

    /// [`schedule`](Self::schedule) with the host-storage holds already taken: they get
    /// the request's id (held until it completed), or are dropped if it is refused.
    fn schedule_held<T: Payload>(
        &self,
        function: &'static str,
        context: impl FnOnce() -> String,
        payload: T,
        keep: KeepAlive,
        holds: RequestHolds,
        call: impl FnOnce(&T::Parked, *mut sys::NRT_STATUS) -> Result<u64>,
    ) -> Scheduled<T> {
        let state = &self.inner.state;
        if let Some(status) = state.fatal_status() {
            holds.finish(None);
            return Err(Rejected::new(state.unrecoverable_error(status), payload));
        }
        let slot = state.slots.take();
        let parked = payload.park();
        let scheduled = {
            let _queue = state.lock_submit();
            let at = super::timing::Timing::now();
            let scheduled = call(&parked, slot.as_ptr()).map(SeqId::from_raw);
            if let Ok(seq) = scheduled {
                state.count(seq);
                state.timing.submitted(seq.number(), at);
            }
            scheduled
        };
        holds.finish(scheduled.as_ref().ok().copied());
        let seq = match scheduled {
            Ok(seq) => seq,
            Err(error) => {
                // Nothing was queued, so libnrt holds no pointer to the slot or the payload.
                state.slots.give_back(slot);
                // SAFETY: `parked` came from `park` just above and libnrt did not keep it.
                let payload = unsafe { T::unpark(parked) };
                if error.status() == Some(NrtStatus::ExecUnitUnrecoverable) {
                    state.mark_fatal(NrtStatus::ExecUnitUnrecoverable.as_raw());
                }
                let error = error.context(format!("{}: {}", self, context()));
                return Err(Rejected::new(error, payload));
            }
        };
        let span = spans::debug_span!(
            "neuron_rt.schedule",
            model = keep.model_label(),
            core = state.core,
            unit_kind = state.kind.name(),
            queue = state.queue,
            seq_id = %seq,
        );
        Ok(Request::new(
            Arc::clone(&self.inner),
            seq,
            slot,
            function,
            parked,
            keep,
            span,
        ))
    }
}

fn to_u64(argument: &'static str, value: usize) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::invalid(argument, format!("{value} does not fit in 64 bits")))
}
