//! Synchronous data movement: reads and writes (a device tensor's transfer takes DMA
//! time on the caller's thread), batches checked before any byte moves, and the checks
//! of tensor-to-tensor copies (sync and async).

use super::objects::{Core, Place, Tensor};
use super::state::Runtime;
use crate::error::{Res, fail};
use nrt_sys::*;
use std::sync::Arc;
use std::time::Instant;

/// A tensor resolved for a synchronous transfer, with the core whose DMA time it costs
/// (`None` for host memory).
pub(crate) struct SyncTensor {
    pub(crate) tensor: Arc<Tensor>,
    core: Option<Arc<Core>>,
}

impl SyncTensor {
    /// The tensor's core; `None` for host memory.
    pub(crate) fn core_index(&self) -> Option<u32> {
        self.core.as_ref().map(|c| c.index)
    }

    /// Copies `size` bytes at `offset` into `dst`, then waits out the transfer time.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn read(&self, dst: *mut u8, offset: usize, size: usize) -> Res<()> {
        let start = Instant::now();
        // SAFETY: passed on from the caller.
        unsafe { self.tensor.read_into(dst, offset, size) }?;
        self.tensor.count_host_transfer(true, size);
        if let Some(core) = &self.core {
            core.finish_sync_transfer(start, size as u64);
        }
        Ok(())
    }

    /// Copies `size` bytes from `src` to `offset`, then waits out the transfer time.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn write(&self, src: *const u8, offset: usize, size: usize) -> Res<()> {
        let start = Instant::now();
        // SAFETY: passed on from the caller.
        unsafe { self.tensor.write_from(src, offset, size) }?;
        self.tensor.count_host_transfer(false, size);
        if let Some(core) = &self.core {
            core.finish_sync_transfer(start, size as u64);
        }
        Ok(())
    }
}

/// One checked batch op: the tensor, its core if on a device (transfer time), the op.
type BatchOp = (Arc<Tensor>, Option<Arc<Core>>, nrt_tensor_batch_op_t);

/// The ops of `nrt_tensor_read_batch` / `nrt_tensor_write_batch`, every one checked.
#[derive(Default)]
pub(crate) struct Batch(Vec<BatchOp>);

impl Batch {
    /// Runs `op` on every op in order; device ops take transfer time.
    fn run(&self, op: impl Fn(&Tensor, &nrt_tensor_batch_op_t) -> Res<()>) -> Res<()> {
        self.0.iter().try_for_each(|(t, core, o)| {
            let start = Instant::now();
            op(t, o)?;
            if let Some(core) = core {
                core.finish_sync_transfer(start, o.size);
            }
            Ok(())
        })
    }

    /// Reads every op's range into its buffer.
    ///
    /// # Safety
    ///
    /// Each op's buffer must be valid for writes of its size.
    pub(crate) unsafe fn read(&self) -> Res<()> {
        self.run(|t, op| {
            // SAFETY: the buffer holds `size` writable bytes (caller); range checked.
            unsafe { t.read_into(op.buffer.cast(), op.offset as usize, op.size as usize) }?;
            t.count_host_transfer(true, op.size as usize);
            Ok(())
        })
    }

    /// Writes every op's buffer to its range.
    ///
    /// # Safety
    ///
    /// Each op's buffer must be valid for reads of its size.
    pub(crate) unsafe fn write(&self) -> Res<()> {
        self.run(|t, op| {
            // SAFETY: the buffer holds `size` readable bytes (caller); range checked.
            unsafe { t.write_from(op.buffer.cast(), op.offset as usize, op.size as usize) }?;
            t.count_host_transfer(false, op.size as usize);
            Ok(())
        })
    }
}

impl Runtime {
    /// The core of a device tensor (whose transfers take DMA time), None for host memory.
    pub(crate) fn core_of(&self, t: &Tensor) -> Option<Arc<Core>> {
        match t.place {
            Place::Device(c) => self.cores.get(c as usize).cloned(),
            _ => None,
        }
    }

    /// Resolves a tensor handle for `nrt_tensor_read` / `nrt_tensor_write`.
    pub(crate) fn sync_tensor(&self, handle: *const nrt_tensor_t) -> Res<SyncTensor> {
        let tensor = self.tensor(handle, "tensor")?;
        let core = self.core_of(&tensor);
        Ok(SyncTensor { tensor, core })
    }

    /// Resolves and checks every op of a batch before any byte moves.
    ///
    /// # Safety
    ///
    /// Each batch's `ops` must point to `num_ops` ops when `num_ops > 0`.
    pub(crate) unsafe fn check_batches(&self, batches: &[nrt_tensor_batch_t]) -> Res<Batch> {
        let mut ops = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let t = self.tensor(b.tensor, &format!("batches[{i}].tensor"))?;
            if b.num_ops > 0 && b.ops.is_null() {
                return fail(
                    NRT_INVALID,
                    format!("batches[{i}].ops is NULL with num_ops {}", b.num_ops),
                );
            }
            if b.num_ops == 0 {
                continue;
            }
            // SAFETY: `ops` points to `num_ops` ops (caller).
            let list = unsafe { std::slice::from_raw_parts(b.ops, b.num_ops as usize) };
            for (j, op) in list.iter().enumerate() {
                t.check_range(&format!("batches[{i}].ops[{j}]"), op.offset, op.size)?;
                if op.buffer.is_null() && op.size > 0 {
                    return fail(NRT_INVALID, format!("batches[{i}].ops[{j}].buffer is NULL"));
                }
                ops.push((t.clone(), self.core_of(&t), *op));
            }
        }
        Ok(Batch(ops))
    }

    /// Checks a sync or async copy; `Ok((src, dst))` when it may go ahead.
    pub(crate) fn check_copy(
        &self,
        src: *const nrt_tensor_t,
        src_offset: u64,
        dst: *const nrt_tensor_t,
        dst_offset: u64,
        size: u64,
    ) -> Res<(Arc<Tensor>, Arc<Tensor>)> {
        let s = self.tensor(src, "src")?;
        let d = self.tensor(dst, "dst")?;
        s.check_range("copy source", src_offset, size)?;
        d.check_range("copy destination", dst_offset, size)?;
        if let (Place::Device(a), Place::Device(b)) = (s.place, d.place)
            && a != b
        {
            return fail(
                NRT_INVALID,
                format!(
                    "device-to-device copy from core {a} to core {b}: both tensors must be on one core"
                ),
            );
        }
        Ok((s, d))
    }
}
