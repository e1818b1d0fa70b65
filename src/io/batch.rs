//! [`ReadBatch`] and [`WriteBatch`]: many tensor ranges moved in one libnrt call
//! (`nrt_tensor_read_batch` / `nrt_tensor_write_batch`).

use std::borrow::Cow;
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

use nrt_sys as sys;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::objects::host_lock::{Access, lock_host_storage};
use crate::objects::{Capabilities, Runtime, Tensor};
use crate::raw;

/// The ops collected for one batched call, grouped by tensor when it runs.
struct Batch<'a> {
    rt: Runtime,
    /// The distinct tensors, in the order of their first op.
    tensors: Vec<&'a Tensor>,
    /// One entry per tensor in `tensors` (same index): the handle and its op count. The
    /// `ops` pointer is filled in by `run`.
    batches: Vec<sys::nrt_tensor_batch_t>,
    /// Every op, in the order it was added.
    ops: Vec<sys::nrt_tensor_batch_op_t>,
    /// For each op, the index of its tensor in `tensors`.
    op_tensor: Vec<usize>,
    /// Whether `ops` is already ordered by tensor (each tensor's ops contiguous), so
    /// `run` can pass it as it is.
    grouped: bool,
}

/// Which of the two C functions a batch calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

impl Direction {
    fn function(self) -> &'static str {
        match self {
            Direction::Read => "nrt_tensor_read_batch",
            Direction::Write => "nrt_tensor_write_batch",
        }
    }
}

impl<'a> Batch<'a> {
    fn new(rt: &Runtime) -> Batch<'a> {
        Batch {
            rt: rt.clone(),
            tensors: Vec::new(),
            batches: Vec::new(),
            ops: Vec::new(),
            op_tensor: Vec::new(),
            grouped: true,
        }
    }

    /// Checks one op and records it. On error nothing is recorded.
    fn push(
        &mut self,
        tensor: &'a Tensor,
        offset: usize,
        len: usize,
        buffer: *mut c_void,
    ) -> Result<()> {
        self.rt
            .check_same(tensor.runtime(), || format!("tensor `{}`", tensor.name()))?;
        tensor.check_range(offset, len)?;
        let offset64 = u64::try_from(offset)
            .map_err(|_| Error::invalid("offset", format!("{offset} does not fit in 64 bits")))?;
        let len64 = u64::try_from(len)
            .map_err(|_| Error::invalid("len", format!("{len} bytes do not fit in 64 bits")))?;
        if len == 0 {
            // Checked like any other op, but nothing moves: libnrt is not asked to.
            return Ok(());
        }
        // The last op's tensor first: ops usually come tensor by tensor.
        let last = self.op_tensor.last().copied();
        let found = match last {
            Some(i) if self.tensors[i].raw() == tensor.raw() => Some(i),
            _ => self.tensors.iter().position(|t| t.raw() == tensor.raw()),
        };
        let count = match found {
            Some(i) => self.batches[i].num_ops.checked_add(1).ok_or_else(|| {
                Error::invalid(
                    "batch",
                    format!(
                        "tensor `{}` already has {} ops, the most one batch entry can hold",
                        tensor.name(),
                        u32::MAX
                    ),
                )
            })?,
            None => 1,
        };
        // Checks done; from here on the op is recorded.
        let index = match found {
            Some(i) => {
                self.batches[i].num_ops = count;
                if last != Some(i) {
                    self.grouped = false;
                }
                i
            }
            None => {
                self.tensors.push(tensor);
                self.batches.push(sys::nrt_tensor_batch_t {
                    tensor: tensor.raw(),
                    ops: std::ptr::null(),
                    num_ops: count,
                });
                self.tensors.len() - 1
            }
        };
        self.ops.push(sys::nrt_tensor_batch_op_t {
            offset: offset64,
            size: len64,
            buffer,
        });
        self.op_tensor.push(index);
        Ok(())
    }

    fn run(self, direction: Direction) -> Result<()> {
        let function = direction.function();
        self.rt.require(Capabilities::TENSOR_BATCH, function)?;
        if self.ops.is_empty() {
            return Ok(());
        }
        let ops = grouped_ops(&self.ops, &self.op_tensor, &self.batches, self.grouped);
        let mut batches = self.batches.clone();
        let mut start = 0usize;
        for b in &mut batches {
            let n = b.num_ops as usize;
            b.ops = ops[start..start + n].as_ptr();
            start += n;
        }
        // Why the call is sound: each entry of `batches` names a live tensor of this
        // runtime (borrowed for 'a) and points to its `num_ops` ops inside `ops`, which
        // outlives the call. Every op's range lies inside its tensor (checked in `push`)
        // and its buffer is a host slice borrowed for 'a with exactly `size` bytes:
        // mutably (exclusive, writable) for a read batch, shared for a write batch, whose
        // buffers libnrt only reads. Any bytes are a valid `Element`, so whatever a read
        // stores leaves the slices valid.
        // Host storage of every tensor: shared for a read batch, exclusive for a write
        // batch (see the `Tensor` docs); nothing for device tensors.
        let access = match direction {
            Direction::Read => Access::Read,
            Direction::Write => Access::Write,
        };
        let guards = lock_host_storage(self.tensors.iter().map(|&t| (t, access)));
        // SAFETY: the conditions just above hold for this call, and no other copy
        // touches the host storage of its tensors meanwhile (`guards`).
        let result = unsafe {
            raw::tensor::transfer_batch(self.rt.inner.lib(), direction == Direction::Read, &batches)
        };
        drop(guards);
        result.map_err(|e| e.context(self.describe()))
    }

    /// For error messages: the op count and the tensors, e.g. "3 ops on `a`, `b`".
    fn describe(&self) -> String {
        const SHOWN: usize = 4;
        let names: Vec<String> = self
            .tensors
            .iter()
            .take(SHOWN)
            .map(|t| format!("`{}`", t.name()))
            .collect();
        let more = match self.tensors.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let ops = match self.ops.len() {
            1 => "1 op".to_owned(),
            n => format!("{n} ops"),
        };
        format!("{ops} on {}{more}", names.join(", "))
    }

    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("ops", &self.ops.len())
            .field(
                "tensors",
                &self.tensors.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `ops` ordered by tensor (each tensor's ops contiguous, in the order added): `ops`
/// itself when it already is (`grouped`), else a counting sort by `op_tensor`.
fn grouped_ops<'o>(
    ops: &'o [sys::nrt_tensor_batch_op_t],
    op_tensor: &[usize],
    batches: &[sys::nrt_tensor_batch_t],
    grouped: bool,
) -> Cow<'o, [sys::nrt_tensor_batch_op_t]> {
    if grouped {
        return Cow::Borrowed(ops);
    }
    let mut next = Vec::with_capacity(batches.len());
    let mut start = 0usize;
    for b in batches {
        next.push(start);
        start += b.num_ops as usize;
    }
    let mut sorted = vec![sys::nrt_tensor_batch_op_t::default(); ops.len()];
    for (op, &t) in ops.iter().zip(op_tensor) {
        sorted[next[t]] = *op;
        next[t] += 1;
    }
    Cow::Owned(sorted)
}

/// Reads many byte ranges of many tensors into host slices with one libnrt call
/// (`nrt_tensor_read_batch`). Made by [`Runtime::read_batch`].
///
/// Each [`read`](ReadBatch::read) checks its range and records it; nothing moves until
/// [`run`](ReadBatch::run). The destination slices stay mutably borrowed until then, so
/// two ops can never write into the same host memory. Offsets are in **bytes**, as for
/// [`Tensor::read_at`].
///
/// The ops may be added in any order and for any mix of tensors (device, host or
/// virtual, on any core): they are passed to libnrt grouped by tensor, each tensor's ops
/// in the order they were added. Ops that read 0 bytes are checked and then left out.
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// // On hardware: `Runtime::new()?`. Here: the simulator.
/// let runtime = Runtime::builder().simulator().build()?;
/// let x = runtime.allocate_tensor(Placement::Device, Some(0), 16, "x")?;
/// let y = runtime.allocate_tensor(Placement::Host, None, 8, "y")?;
/// x.write(&[1.0f32, 2.0, 3.0, 4.0])?;
/// y.write(&[7u32, 9])?;
///
/// let (mut head, mut tail, mut both) = ([0f32; 2], [0f32; 1], [0u32; 2]);
/// let mut batch = runtime.read_batch();
/// batch
///     .read(&x, 0, &mut head)? // bytes 0..8 of x
///     .read(&x, 12, &mut tail)? // bytes 12..16 of x
///     .read(&y, 0, &mut both)?;
/// batch.run()?; // one nrt_tensor_read_batch call
/// assert_eq!((head, tail, both), ([1.0, 2.0], [4.0], [7, 9]));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
///
/// A destination stays lent to the batch until `run`, so it can neither be used
/// meanwhile nor be given to two ops; neither of these compiles:
///
/// ```compile_fail
/// # fn f(runtime: &neuron_rt::Runtime, t: &neuron_rt::Tensor) -> neuron_rt::Result<()> {
/// let mut out = [0u32; 2];
/// let mut batch = runtime.read_batch();
/// batch.read(t, 0, &mut out)?;
/// out[0] = 1; // error: `out` is borrowed by the batch
/// batch.run()?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// # fn f(runtime: &neuron_rt::Runtime, t: &neuron_rt::Tensor) -> neuron_rt::Result<()> {
/// let mut out = [0u32; 2];
/// let mut batch = runtime.read_batch();
/// batch.read(t, 0, &mut out)?;
/// batch.read(t, 8, &mut out)?; // error: `out` is already borrowed by the batch
/// batch.run()?;
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until `run` is called"]
pub struct ReadBatch<'a> {
    batch: Batch<'a>,
    _out: PhantomData<&'a mut [u8]>,
}

impl<'a> ReadBatch<'a> {
    /// Adds an op that fills `out` from the bytes starting `offset` bytes into `tensor`.
    ///
    /// # Errors
    ///
    /// On error nothing is added and the batch stays usable.
    ///
    /// * [`Error::ForeignHandle`] if `tensor` belongs to another runtime;
    /// * [`Error::OutOfBounds`] (naming the tensor, offset, length and tensor size) if
    ///   the range does not fit, including when `offset + len` overflows;
    /// * [`Error::InvalidArgument`] if `tensor` already has `u32::MAX` ops in this batch
    ///   (libnrt's count per tensor is 32-bit).
    pub fn read<T: Element>(
        &mut self,
        tensor: &'a Tensor,
        offset: usize,
        out: &'a mut [T],
    ) -> Result<&mut Self> {
        let len = size_of_val(out);
        self.batch
            .push(tensor, offset, len, out.as_mut_ptr().cast::<c_void>())?;
        Ok(self)
    }

    /// The number of ops that will be passed to libnrt (0-byte ops are not counted).
    pub fn len(&self) -> usize {
        self.batch.ops.len()
    }

    /// Whether no op moves any byte: [`run`](ReadBatch::run) would not call libnrt.
    pub fn is_empty(&self) -> bool {
        self.batch.ops.is_empty()
    }

    /// Performs every op with one `nrt_tensor_read_batch` call.
    ///
    /// An empty batch (see [`is_empty`](ReadBatch::is_empty)) succeeds without calling
    /// libnrt, once the capability check has passed.
    ///
    /// libnrt's batch call takes a flag whose effect is not publicly documented; this
    /// crate always passes `false` (the default, checked behaviour).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming `nrt_tensor_read_batch` if the library lacks
    /// [`Capabilities::TENSOR_BATCH`] (also for an empty batch; check
    /// [`Runtime::capabilities`] first to fall back to [`Tensor::read_at`]);
    /// [`Error::Nrt`] if libnrt fails, with the op count and tensors as context. On
    /// failure the contents of the destination slices are unspecified.
    pub fn run(self) -> Result<()> {
        self.batch.run(Direction::Read)
    }
}

impl fmt::Debug for ReadBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.batch.debug("ReadBatch", f)
    }
}

/// Writes many host slices to byte ranges of many tensors with one libnrt call
/// (`nrt_tensor_write_batch`). Made by [`Runtime::write_batch`].
///
/// Each [`write`](WriteBatch::write) checks its range and records it; nothing moves
/// until [`run`](WriteBatch::run). The source slices stay borrowed until then. Offsets
/// are in **bytes**, as for [`Tensor::write_at`].
///
/// Ops are passed to libnrt grouped by tensor, each tensor's ops in the order they were
/// added; ops that write 0 bytes are checked and then left out. libnrt does not
/// document the order in which it performs a batch's ops, so do not rely on it when
/// two ops write the same bytes of a tensor: the result is some mix of the two (a logic
/// error, not undefined behaviour, as for any concurrent tensor writes).
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// // On hardware: `Runtime::new()?`. Here: the simulator.
/// let runtime = Runtime::builder().simulator().build()?;
/// let a = runtime.allocate_tensor(Placement::Device, Some(0), 16, "a")?;
/// let b = runtime.allocate_tensor(Placement::Device, Some(1), 4, "b")?;
///
/// let mut batch = runtime.write_batch();
/// batch
///     .write(&a, 0, &[1i32, 2])?
///     .write(&b, 0, &[5i32])?
///     .write(&a, 8, &[3i32, 4])?;
/// batch.run()?; // one nrt_tensor_write_batch call
/// assert_eq!(a.to_vec::<i32>()?, [1, 2, 3, 4]);
/// assert_eq!(b.to_vec::<i32>()?, [5]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[must_use = "a batch does nothing until `run` is called"]
pub struct WriteBatch<'a> {
    batch: Batch<'a>,
    _data: PhantomData<&'a [u8]>,
}

impl<'a> WriteBatch<'a> {
    /// Adds an op that writes `data` starting `offset` bytes into `tensor`.
    ///
    /// # Errors
    ///
    /// As [`ReadBatch::read`]: [`Error::ForeignHandle`], [`Error::OutOfBounds`] or
    /// [`Error::InvalidArgument`]; on error nothing is added.
    pub fn write<T: Element>(
        &mut self,
        tensor: &'a Tensor,
        offset: usize,
        data: &'a [T],
    ) -> Result<&mut Self> {
        let len = size_of_val(data);
        // libnrt's op struct has one non-const buffer pointer for both directions; a
        // write batch only reads through it.
        let buffer = data.as_ptr().cast::<c_void>().cast_mut();
        self.batch.push(tensor, offset, len, buffer)?;
        Ok(self)
    }

    /// The number of ops that will be passed to libnrt (0-byte ops are not counted).
    pub fn len(&self) -> usize {
        self.batch.ops.len()
    }

    /// Whether no op moves any byte: [`run`](WriteBatch::run) would not call libnrt.
    pub fn is_empty(&self) -> bool {
        self.batch.ops.is_empty()
    }

    /// Performs every op with one `nrt_tensor_write_batch` call.
    ///
    /// An empty batch succeeds without calling libnrt, once the capability check has
    /// passed. The flag libnrt's batch call takes is always `false` (its effect is not
    /// publicly documented).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming `nrt_tensor_write_batch` if the library lacks
    /// [`Capabilities::TENSOR_BATCH`] (also for an empty batch); [`Error::Nrt`] if
    /// libnrt fails, with the op count and tensors as context. On failure the contents
    /// of the destination ranges are unspecified.
    pub fn run(self) -> Result<()> {
        self.batch.run(Direction::Write)
    }
}

impl fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.batch.debug("WriteBatch", f)
    }
}

impl Runtime {
    /// An empty [`ReadBatch`]: reads of tensors of this runtime, performed together by
    /// [`ReadBatch::run`].
    pub fn read_batch<'a>(&self) -> ReadBatch<'a> {
        ReadBatch {
            batch: Batch::new(self),
            _out: PhantomData,
        }
    }

    /// An empty [`WriteBatch`]: writes to tensors of this runtime, performed together by
    /// [`WriteBatch::run`].
    pub fn write_batch<'a>(&self) -> WriteBatch<'a> {
        WriteBatch {
            batch: Batch::new(self),
            _data: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(offset: u64) -> sys::nrt_tensor_batch_op_t {
        sys::nrt_tensor_batch_op_t {
            offset,
            size: 1,
            buffer: std::ptr::null_mut(),
        }
    }

    fn entry(num_ops: u32) -> sys::nrt_tensor_batch_t {
        sys::nrt_tensor_batch_t {
            tensor: std::ptr::null(),
            ops: std::ptr::null(),
            num_ops,
        }
    }

    fn offsets(ops: &[sys::nrt_tensor_batch_op_t]) -> Vec<u64> {
        ops.iter().map(|o| o.offset).collect()
    }

    #[test]
    fn grouped_ops_are_passed_as_they_are() {
        let ops = [op(0), op(1), op(2)];
        let out = grouped_ops(&ops, &[0, 0, 1], &[entry(2), entry(1)], true);
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(offsets(&out), [0, 1, 2]);
    }

    #[test]
    fn interleaved_ops_are_grouped_by_tensor_keeping_their_order() {
        // Tensors 0, 1, 2 in first-use order; ops added as t0 t1 t0 t2 t1 t0.
        let ops = [op(10), op(20), op(11), op(30), op(21), op(12)];
        let out = grouped_ops(
            &ops,
            &[0, 1, 0, 2, 1, 0],
            &[entry(3), entry(2), entry(1)],
            false,
        );
        assert_eq!(offsets(&out), [10, 11, 12, 20, 21, 30]);
    }
}
