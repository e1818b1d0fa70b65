//! The device side of the async execution units: what a queued request does
//! ([`Request`], the [`xu::Work`] of every queue), what a queue sees of its core (the
//! [`xu::UnitCore`] of [`Core`]), and the queues of a set of cores.

use super::exec::Bound;
use super::objects::{Core, Tensor, copy_between};
use crate::error::Res;
use crate::faults;
use crate::xu::{self, XuQueue};
use nrt_sys::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// An async queue of the simulated device.
pub(crate) type Queue = XuQueue<Request>;

/// Host memory of a request (source of a write, destination of a read).
pub(crate) struct HostPtr(pub(crate) *mut u8);

// SAFETY: the scheduling caller promised the memory stays valid until the request
// completes; only the queue's worker touches it, and only before completing.
unsafe impl Send for HostPtr {}

/// One queued request: what it does, on the queue of `core`.
pub(crate) struct Request {
    /// The core whose queue runs the request (its DMA engine for transfers).
    pub(crate) core: Arc<Core>,
    pub(crate) op: RequestOp,
}

/// What a request does.
pub(crate) enum RequestOp {
    Write {
        tensor: Arc<Tensor>,
        src: HostPtr,
        offset: usize,
        size: usize,
    },
    Read {
        tensor: Arc<Tensor>,
        dst: HostPtr,
        offset: usize,
        size: usize,
    },
    Copy {
        src: Arc<Tensor>,
        src_offset: usize,
        dst: Arc<Tensor>,
        dst_offset: usize,
        size: usize,
    },
    Execute(Bound),
}

impl RequestOp {
    /// Bytes a tensor op moves; None for an execution.
    fn bytes(&self) -> Option<u64> {
        match self {
            RequestOp::Write { size, .. }
            | RequestOp::Read { size, .. }
            | RequestOp::Copy { size, .. } => Some(*size as u64),
            RequestOp::Execute(_) => None,
        }
    }
}

impl xu::Work for Request {
    fn func(&self) -> &'static str {
        match self.op {
            RequestOp::Write { .. } => "nrta_tensor_write",
            RequestOp::Read { .. } => "nrta_tensor_read",
            RequestOp::Copy { .. } => "nrta_tensor_copy",
            RequestOp::Execute(_) => "nrta_execute_schedule",
        }
    }

    fn run(self) -> Res<()> {
        let bytes = self.op.bytes();
        // Transfers take their time on this queue's device clock; an execution keeps
        // its core's own (`Bound::run`).
        let start = if bytes.is_some() {
            crate::dma::transfer_start()
        } else {
            Instant::now()
        };
        let result = match self.op {
            RequestOp::Write {
                tensor,
                src,
                offset,
                size,
            } => {
                // SAFETY: the caller of nrta_tensor_write promised `src` holds `size`
                // readable bytes until completion; the range was checked at schedule time.
                let r = unsafe { tensor.write_from(src.0, offset, size) };
                if r.is_ok() {
                    tensor.count_host_transfer(false, size);
                }
                r
            }
            RequestOp::Read {
                tensor,
                dst,
                offset,
                size,
            } => {
                // SAFETY: as for writes: `dst` holds `size` writable bytes until completion.
                let r = unsafe { tensor.read_into(dst.0, offset, size) };
                if r.is_ok() {
                    tensor.count_host_transfer(true, size);
                }
                r
            }
            RequestOp::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                size,
            } => copy_between(&src, src_offset, &dst, dst_offset, size),
            RequestOp::Execute(bound) => bound.run(),
        };
        // A transfer takes its device time on this queue (requests of one queue run one
        // at a time, so transfers on it serialise; other queues run meanwhile).
        if let Some(bytes) = bytes {
            if result.is_ok() {
                crate::dma::finish_transfer(start, bytes, self.core.dma_gbps);
            }
            self.core.tensor_ops.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl xu::UnitCore for Core {
    fn index(&self) -> u32 {
        self.index
    }

    fn add_busy(&self, xu: nrta_xu_t, queue: u32, ns: u64) {
        let counter = match xu {
            NRTA_XU_TENSOR_OP => self.tensor_op_busy_ns.get(queue as usize),
            NRTA_XU_COMPUTE => Some(&self.compute_queue_busy_ns),
            _ => None,
        };
        if let Some(c) = counter {
            c.fetch_add(ns, Ordering::Relaxed);
        }
    }
}

/// Every queue of every core: per core, TENSOR_OP 0-1, COMPUTE 0, COLLECTIVES 0-2. The
/// COMPUTE queue shares its unrecoverable flag with the core (sync executions see it).
pub(crate) fn make_queues(cores: &[Arc<Core>], depth: u32) -> Vec<Arc<Queue>> {
    let mut queues = Vec::new();
    for core in cores {
        for xu in [NRTA_XU_TENSOR_OP, NRTA_XU_COMPUTE, NRTA_XU_COLLECTIVES] {
            for queue in 0..faults::queues_of(xu).unwrap_or(0) {
                let dead = if xu == NRTA_XU_COMPUTE {
                    core.compute_dead.clone()
                } else {
                    Arc::new(AtomicBool::new(false))
                };
                let unit_core: Arc<dyn xu::UnitCore> = core.clone();
                queues.push(Arc::new(XuQueue::new(unit_core, xu, queue, depth, dead)));
            }
        }
    }
    queues
}
