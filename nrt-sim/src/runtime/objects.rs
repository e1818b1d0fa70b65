//! The simulated objects: tensors and their storage, models, tensor sets, cores.

use super::group::Group;
use crate::error::{Fail, Res, fail};
use crate::log::Level;
use crate::memory::{Buffer, lock_pair};
use crate::model::Program;
use nrt_sys::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Device(u32),
    Host,
    /// No storage of its own (allocate_empty, VIRTUAL placement): host memory attached.
    Virtual,
}

/// A tensor's storage: a window of a buffer. The buffer is shared by the tensor that
/// allocated it and every slice of it, and lives until the last of them is freed (the
/// runtime documents slice storage as reference counted).
#[derive(Clone)]
pub(crate) struct Mem {
    pub(crate) buf: Arc<Buffer>,
    pub(crate) offset: usize,
}

pub(crate) struct Tensor {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) size: usize,
    pub(crate) mem: Option<Mem>,
}

/// Live tensors using one buffer, and the memory the buffer is charged to.
pub(super) struct Storage {
    pub(super) users: u64,
    /// Where the buffer's bytes are accounted (`None`: caller-owned, not accounted).
    pub(super) charge: Option<(Place, u64)>,
}

impl Tensor {
    pub(super) fn label(&self) -> String {
        if self.name.is_empty() {
            format!("tensor #{}", self.id)
        } else {
            format!("tensor '{}'", self.name)
        }
    }

    pub(super) fn mem(&self) -> Res<&Mem> {
        self.mem.as_ref().ok_or_else(|| Fail {
            status: NRT_INVALID,
            message: format!(
                "{} has no memory (allocated empty; attach a buffer first)",
                self.label()
            ),
            level: Level::Error,
        })
    }

    /// Checks that `[offset, offset + size)` lies inside the tensor, without overflow.
    pub(crate) fn check_range(&self, what: &str, offset: u64, size: u64) -> Res<()> {
        match offset.checked_add(size) {
            Some(end) if end <= self.size as u64 => Ok(()),
            _ => fail(
                NRT_INVALID,
                format!(
                    "{what}: offset {offset} + size {size} is past the end of {} ({} bytes)",
                    self.label(),
                    self.size
                ),
            ),
        }
    }

    /// `NRT_FAILURE` unless `[offset, offset + size)` is inside the tensor and the
    /// tensor's window inside its buffer (callers check ranges first: this is the
    /// last line, kept in release builds).
    fn check_window(&self, mem: &Mem, what: &str, offset: usize, size: usize) -> Res<()> {
        let end = offset.checked_add(size);
        let inside = end.is_some_and(|e| e <= self.size)
            && mem
                .offset
                .checked_add(self.size)
                .is_some_and(|e| e <= mem.buf.len());
        if inside {
            return Ok(());
        }
        fail(
            NRT_FAILURE,
            format!(
                "internal: a {what} of {size} bytes at offset {offset} of {} ({} bytes) was refused: past its end",
                self.label(),
                self.size
            ),
        )
    }

    /// Copies `size` bytes at `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn read_into(&self, dst: *mut u8, offset: usize, size: usize) -> Res<()> {
        let mem = self.mem()?;
        if size == 0 {
            // Nothing to copy; `dst` may be NULL for an empty transfer.
            return Ok(());
        }
        self.check_window(mem, "read", offset, size)?;
        let _guard = mem.buf.lock();
        // SAFETY: the range is inside the tensor, whose window is inside the buffer;
        // `dst` is valid for `size` bytes (caller); a host buffer cannot overlap ours
        // except through get_va, where copy (memmove) semantics still hold.
        unsafe { std::ptr::copy(mem.buf.base().add(mem.offset + offset), dst, size) };
        Ok(())
    }

    /// Copies `size` bytes from `src` to `offset`.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn write_from(&self, src: *const u8, offset: usize, size: usize) -> Res<()> {
        let mem = self.mem()?;
        if size == 0 {
            // Nothing to copy; `src` may be NULL for an empty transfer.
            return Ok(());
        }
        // Checked in every build: a length from another process (a collective's part)
        // must never reach the copy unchecked.
        self.check_window(mem, "write", offset, size)?;
        let _guard = mem.buf.lock();
        // SAFETY: as in `read_into` (range checked just above), with `src` valid for
        // reads (caller).
        unsafe { std::ptr::copy(src, mem.buf.base().add(mem.offset + offset), size) };
        Ok(())
    }

    /// Sets `size` bytes at `offset` to `value`. The range must have been checked.
    pub(crate) fn fill(&self, offset: usize, value: u8, size: usize) -> Res<()> {
        let mem = self.mem()?;
        let _guard = mem.buf.lock();
        // SAFETY: the checked range lies inside this tensor's window of the buffer.
        unsafe { std::ptr::write_bytes(mem.buf.base().add(mem.offset + offset), value, size) };
        Ok(())
    }

    /// The host address of a HOST, VIRTUAL or attached tensor's memory (`nrt_tensor_get_va`);
    /// device memory has none.
    pub(crate) fn host_address(&self) -> Res<*mut u8> {
        if let Place::Device(c) = self.place {
            return fail(
                NRT_INVALID,
                format!(
                    "tensor '{}' is in device memory of core {c}, which has no host address",
                    self.name
                ),
            );
        }
        let Some(mem) = &self.mem else {
            return fail(
                NRT_INVALID,
                format!("tensor '{}' has no memory attached", self.name),
            );
        };
        // SAFETY: the offset lies inside the buffer (slices are checked when made).
        Ok(unsafe { mem.buf.base().add(mem.offset) })
    }

    /// Counts `bytes` moved between this tensor's device memory and the host
    /// (`to_host`: a read to the host); nothing for HOST or VIRTUAL placement. Counted
    /// on the buffer, which the tensor's slices share.
    pub(crate) fn count_host_transfer(&self, to_host: bool, bytes: usize) {
        if let (Place::Device(_), Some(mem)) = (self.place, &self.mem) {
            let counter = if to_host {
                &mem.buf.to_host
            } else {
                &mem.buf.from_host
            };
            counter.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Bytes read from this tensor's device memory to the host, and written to it from
    /// the host, since it was allocated (shared with its slices and parent).
    pub(crate) fn host_transfers(&self) -> (u64, u64) {
        match (self.place, &self.mem) {
            (Place::Device(_), Some(mem)) => (
                mem.buf.to_host.load(Ordering::Relaxed),
                mem.buf.from_host.load(Ordering::Relaxed),
            ),
            _ => (0, 0),
        }
    }

    /// The whole tensor's bytes.
    pub(super) fn to_vec(&self) -> Res<Vec<u8>> {
        let mut out = vec![0u8; self.size];
        // SAFETY: `out` has `self.size` writable bytes; the range is the whole tensor.
        unsafe { self.read_into(out.as_mut_ptr(), 0, self.size)? };
        Ok(out)
    }
}

/// Copies between two tensors (ranges checked by the caller).
pub(crate) fn copy_between(
    src: &Tensor,
    src_offset: usize,
    dst: &Tensor,
    dst_offset: usize,
    size: usize,
) -> Res<()> {
    let (s, d) = (src.mem()?, dst.mem()?);
    // A copy between device memory and the host is a transfer; device to device is not.
    match (src.place, dst.place) {
        (Place::Device(_), Place::Device(_)) => {}
        (Place::Device(_), _) => src.count_host_transfer(true, size),
        (_, Place::Device(_)) => dst.count_host_transfer(false, size),
        _ => {}
    }
    let _guards = lock_pair(&s.buf, &d.buf);
    // SAFETY: both ranges were checked against their tensors, whose windows lie inside
    // their buffers; `copy` allows overlap (a tensor copied onto its own slice).
    unsafe {
        std::ptr::copy(
            s.buf.base().add(s.offset + src_offset),
            d.buf.base().add(d.offset + dst_offset),
            size,
        )
    };
    Ok(())
}

/// A loaded model.
pub(crate) struct Model {
    pub(crate) id: u64,
    /// The (first) core it is loaded on; a real NEFF needing `n` cores uses the `n`
    /// cores from here.
    pub(crate) core: u32,
    pub(crate) program: Arc<Program>,
    /// Device bytes the model occupies on each of its cores (its file size / cores).
    pub(super) bytes: u64,
    /// The group and rank of a model loaded with `nrt_load_collectives`.
    pub(crate) rank: Option<Rank>,
    /// Executions that wrote outputs (numbers a real NEFF's synthetic outputs).
    pub(crate) executions: AtomicU64,
}

/// A model's place in its collective group.
pub(crate) struct Rank {
    pub(crate) group: Arc<Group>,
    pub(crate) rank: u32,
}

/// Tensors by name; does not own them (holds ids, resolved at use).
#[derive(Default)]
pub(super) struct TensorSet {
    pub(super) entries: BTreeMap<Vec<u8>, u64>,
}

/// One simulated NeuronCore: accounting, counters and the lock that serialises its
/// executions. Shared with async workers, so it outlives `nrt_close` while they finish.
pub(crate) struct Core {
    pub(crate) index: u32,
    pub(crate) capacity: u64,
    /// Serialises the core's executions (sync and async); holds when the last one ended
    /// on the device (the next starts no earlier, see `dma::device_start`).
    pub(super) exec_lock: Mutex<Option<Instant>>,
    pub(super) exec_latency: Option<Duration>,
    pub(super) exec_timeout: Duration,
    /// Set when the core's compute queue is unrecoverable; shared with that queue.
    pub(crate) compute_dead: Arc<AtomicBool>,
    pub(crate) models: AtomicU64,
    pub(crate) tensors: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) executions: AtomicU64,
    pub(crate) failed_executions: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) tensor_ops: AtomicU64,
    /// Transfer bandwidth in GB/s, 0 = instantaneous (`NRT_SIM_DMA_GBPS`).
    pub(crate) dma_gbps: f64,
    /// Collective link bandwidth in GB/s, 0 = free (`NRT_SIM_CC_GBPS`).
    pub(crate) cc_gbps: f64,
    /// Nanoseconds of work done by TENSOR_OP queues 0 and 1 and the COMPUTE queue.
    pub(crate) tensor_op_busy_ns: [AtomicU64; 2],
    pub(crate) compute_queue_busy_ns: AtomicU64,
    /// Nanoseconds spent in synchronous transfers of this core's device tensors.
    pub(crate) sync_transfer_ns: AtomicU64,
}

impl Core {
    /// Waits out the device time of a synchronous transfer of `bytes` started at
    /// `start`, and counts it.
    pub(crate) fn finish_sync_transfer(&self, start: Instant, bytes: u64) {
        crate::dma::finish_transfer(start, bytes, self.dma_gbps);
        self.sync_transfer_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_past_a_tensors_end_are_refused_in_every_build() {
        let t = Tensor {
            id: 1,
            name: "out".into(),
            place: Place::Host,
            size: 16,
            mem: Some(Mem {
                buf: Arc::new(Buffer::allocate(16).unwrap()),
                offset: 0,
            }),
        };
        let big = [7u8; 64];
        // SAFETY: `big` is readable for 64 bytes; the write must be refused.
        let e = unsafe { t.write_from(big.as_ptr(), 0, 64) }.unwrap_err();
        assert!(
            e.message.contains("64 bytes") && e.message.contains("16 bytes"),
            "{}",
            e.message
        );
        // SAFETY: as above.
        assert!(unsafe { t.write_from(big.as_ptr(), 8, 9) }.is_err());
        let mut out = [0u8; 64];
        // SAFETY: `out` is writable for 64 bytes; the read must be refused.
        assert!(unsafe { t.read_into(out.as_mut_ptr(), 0, 64) }.is_err());
        // SAFETY: `big` readable for 16 bytes, inside the tensor.
        unsafe { t.write_from(big.as_ptr(), 0, 16) }.unwrap();
        assert_eq!(t.to_vec().unwrap(), [7; 16]);
    }
}
