//! The registry's side of the async API v3: checking and queueing requests, completion
//! queries and completion-event registration (`nrta_*` behind the exported functions).

use super::objects::{Place, Tensor};
use super::state::Runtime;
use super::units::{HostPtr, Queue, Request, RequestOp};
use crate::error::{Res, fail};
use crate::xu;
use nrt_sys::*;
use std::ffi::c_int;
use std::sync::Arc;

impl Runtime {
    /// The TENSOR_OP queue `(lnc_idx, queue)` that carries a transfer of `tensors`.
    ///
    /// `lnc_idx` names the core whose DMA engine moves the data (runtime 2.31.24 added the
    /// parameter "to select the DMA engine"). Whether another core's engine may move a
    /// device tensor is not documented; the simulator takes the strict answer and refuses
    /// it with `NRT_INVALID`, so code that works here never relies on it.
    fn transfer_queue(
        &self,
        lnc_idx: c_int,
        queue: c_int,
        tensors: &[(&str, &Tensor)],
    ) -> Res<&Arc<Queue>> {
        let q = xu::lookup(
            &self.queues,
            self.cores.len(),
            lnc_idx.into(),
            NRTA_XU_TENSOR_OP,
            queue.into(),
        )?;
        for (what, t) in tensors {
            if let Place::Device(core) = t.place
                && i64::from(core) != i64::from(lnc_idx)
            {
                return fail(
                    NRT_INVALID,
                    format!(
                        "{what} is a device tensor on core {core}, but lnc_idx {lnc_idx} names another core's DMA engine"
                    ),
                );
            }
        }
        Ok(q)
    }

    /// Queues `op` on `q` (on the queue's core); returns the sequence id.
    ///
    /// # Safety
    ///
    /// As [`xu::XuQueue::schedule`]: `ret` and the host memory of `op` stay valid until
    /// the request completes.
    unsafe fn enqueue(
        &self,
        q: &Arc<Queue>,
        vnc: usize,
        op: RequestOp,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t> {
        let request = Request {
            core: self.cores[vnc].clone(),
            op,
        };
        // SAFETY: passed on from the caller.
        unsafe { q.schedule(request, ret) }
    }

    /// `nrta_tensor_write`: checks and queues a write of `size` bytes from `buf`.
    ///
    /// # Safety
    ///
    /// `buf` stays valid for reads of `size` bytes, and `ret` (non-null, aligned) for
    /// writes, until the request completes.
    #[allow(clippy::too_many_arguments)] // the C call's arguments
    pub(crate) unsafe fn schedule_write(
        &self,
        tensor: *const nrt_tensor_t,
        buf: *const u8,
        offset: u64,
        size: u64,
        lnc_idx: c_int,
        queue: c_int,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t> {
        let t = self.tensor(tensor, "tensor")?;
        t.check_range("write", offset, size)?;
        if buf.is_null() && size > 0 {
            return fail(NRT_INVALID, "buf is NULL");
        }
        let q = self.transfer_queue(lnc_idx, queue, &[("tensor", &t)])?;
        let op = RequestOp::Write {
            tensor: t.clone(),
            src: HostPtr(buf.cast_mut()),
            offset: offset as usize,
            size: size as usize,
        };
        // SAFETY: `ret` and `buf` stay valid until completion (caller); the queue
        // exists, so `lnc_idx` is a valid core index.
        unsafe { self.enqueue(q, lnc_idx as usize, op, ret) }
    }

    /// `nrta_tensor_read`: checks and queues a read of `size` bytes into `buf`.
    ///
    /// # Safety
    ///
    /// `buf` stays valid for writes of `size` bytes, and `ret` (non-null, aligned) for
    /// writes, until the request completes.
    #[allow(clippy::too_many_arguments)] // the C call's arguments
    pub(crate) unsafe fn schedule_read(
        &self,
        buf: *mut u8,
        tensor: *const nrt_tensor_t,
        offset: u64,
        size: u64,
        lnc_idx: c_int,
        queue: c_int,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t> {
        let t = self.tensor(tensor, "tensor")?;
        t.check_range("read", offset, size)?;
        if buf.is_null() && size > 0 {
            return fail(NRT_INVALID, "buf is NULL");
        }
        let q = self.transfer_queue(lnc_idx, queue, &[("tensor", &t)])?;
        let op = RequestOp::Read {
            tensor: t.clone(),
            dst: HostPtr(buf),
            offset: offset as usize,
            size: size as usize,
        };
        // SAFETY: `ret` and `buf` stay valid until completion (caller); the queue
        // exists, so `lnc_idx` is a valid core index.
        unsafe { self.enqueue(q, lnc_idx as usize, op, ret) }
    }

    /// `nrta_tensor_copy`: checks (as `nrt_tensor_copy`) and queues a copy.
    ///
    /// # Safety
    ///
    /// `ret` (non-null, aligned) stays valid for writes until the request completes.
    #[allow(clippy::too_many_arguments)] // the C call's arguments
    pub(crate) unsafe fn schedule_copy(
        &self,
        src: *const nrt_tensor_t,
        src_offset: u64,
        dst: *const nrt_tensor_t,
        dst_offset: u64,
        size: u64,
        lnc_idx: c_int,
        queue: c_int,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t> {
        let (s, d) = self.check_copy(src, src_offset, dst, dst_offset, size)?;
        let q = self.transfer_queue(lnc_idx, queue, &[("src", &s), ("dst", &d)])?;
        let op = RequestOp::Copy {
            src: s,
            src_offset: src_offset as usize,
            dst: d,
            dst_offset: dst_offset as usize,
            size: size as usize,
        };
        // SAFETY: `ret` stays valid until completion (caller); the queue exists, so
        // `lnc_idx` is a valid core index.
        unsafe { self.enqueue(q, lnc_idx as usize, op, ret) }
    }

    /// `nrta_execute_schedule`: binds (the checks of `nrt_execute`) and queues an
    /// execution on the COMPUTE queue `queue` of the model's core.
    ///
    /// # Safety
    ///
    /// `ret` (non-null, aligned) stays valid for writes until the request completes.
    pub(crate) unsafe fn schedule_execute(
        &self,
        model: *const nrt_model_t,
        input: *const nrt_tensor_set_t,
        output: *const nrt_tensor_set_t,
        queue: c_int,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t> {
        let bound = self.bind(model, input, output)?;
        let vnc = bound.model.core;
        let q = xu::lookup(
            &self.queues,
            self.cores.len(),
            vnc.into(),
            NRTA_XU_COMPUTE,
            queue.into(),
        )?;
        // SAFETY: `ret` stays valid until completion (caller); the model's core exists.
        unsafe { self.enqueue(q, vnc as usize, RequestOp::Execute(bound), ret) }
    }

    /// `nrta_is_completed`: whether request `seq` completed (`NRT_INVALID` if never issued).
    pub(crate) fn is_completed(&self, seq: nrta_seq_t) -> Res<bool> {
        xu::queue_of_seq(&self.queues, self.cores.len(), seq)?.is_completed(seq)
    }

    /// `nrt_sim_request_error`: why request `seq` failed, if it did (and is among its
    /// queue's recent failures).
    pub(crate) fn request_reason(&self, seq: nrta_seq_t) -> Option<String> {
        xu::queue_of_seq(&self.queues, self.cores.len(), seq)
            .ok()?
            .failure_reason(seq)
    }

    /// `nrta_get_sequence`: the last completed id of unit `(lnc, xu, queue)`.
    pub(crate) fn last_completed(&self, lnc: i64, xu: nrta_xu_t, queue: i64) -> Res<nrta_seq_t> {
        Ok(xu::lookup(&self.queues, self.cores.len(), lnc, xu, queue)?.last_completed())
    }

    /// `nrta_event_register_seq_id_completion` (see [`xu::XuQueue::register_seq_event`]).
    pub(crate) fn register_seq_event(&self, seq: nrta_seq_t, fd: c_int) -> Res<()> {
        xu::queue_of_seq(&self.queues, self.cores.len(), seq)?.register_seq_event(seq, fd)
    }

    /// `nrta_event_register_xu_completion` (see [`xu::XuQueue::register_xu_event`]).
    pub(crate) fn register_xu_event(
        &self,
        lnc: i64,
        xu: nrta_xu_t,
        queue: i64,
        fd: c_int,
    ) -> Res<()> {
        xu::lookup(&self.queues, self.cores.len(), lnc, xu, queue)?.register_xu_event(fd)
    }
}
