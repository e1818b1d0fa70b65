//! Tensor storage: owned zeroed allocations or caller-attached buffers, with a lock that
//! serialises the simulator's own accesses.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Alignment of owned storage (enough for any element type and cache-line friendly).
const ALIGN: usize = 64;

static NEXT_BUFFER: AtomicU64 = AtomicU64::new(1);

/// A block of memory a tensor (and its slices) read and write.
pub(crate) struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
    /// `Some` when the simulator allocated the block and frees it on drop.
    layout: Option<Layout>,
    /// Distinct per buffer; orders lock acquisition and names fake device addresses.
    pub(crate) id: u64,
    lock: Mutex<()>,
    /// Bytes of this block (device memory) read to the host and written from it; see
    /// `Tensor::count_host_transfer`.
    pub(crate) to_host: AtomicU64,
    pub(crate) from_host: AtomicU64,
}

// SAFETY: the block is plain bytes with no thread affinity. The simulator only touches it
// while holding `lock`; concurrent access by C code through `nrt_tensor_get_va` is that
// code's responsibility, as with the real runtime's host-visible memory.
unsafe impl Send for Buffer {}
// SAFETY: see `Send`: all shared access from the simulator is serialised by `lock`.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// A zeroed block of `len` bytes; `None` when the allocator refuses it.
    pub(crate) fn allocate(len: usize) -> Option<Buffer> {
        let layout = Layout::from_size_align(len.max(1), ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Buffer {
            ptr,
            len,
            layout: Some(layout),
            id: NEXT_BUFFER.fetch_add(1, Ordering::Relaxed),
            lock: Mutex::new(()),
            to_host: AtomicU64::new(0),
            from_host: AtomicU64::new(0),
        })
    }

    /// Wraps caller-owned memory (`nrt_tensor_attach_buffer`); never freed here.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as the buffer
    /// is used (the caller of `nrt_tensor_attach_buffer` promises that).
    pub(crate) unsafe fn attach(ptr: NonNull<u8>, len: usize) -> Buffer {
        Buffer {
            ptr,
            len,
            layout: None,
            id: NEXT_BUFFER.fetch_add(1, Ordering::Relaxed),
            lock: Mutex::new(()),
            to_host: AtomicU64::new(0),
            from_host: AtomicU64::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Start of the block, for `nrt_tensor_get_va`.
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while holding it cannot corrupt anything.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated in `allocate` with exactly this layout, freed only here.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

/// Locks one or two buffers in a fixed order (by id) so two copies in opposite
/// directions cannot deadlock. Returns the guards; the second is `None` for one buffer.
pub(crate) fn lock_pair<'a>(
    a: &'a Buffer,
    b: &'a Buffer,
) -> (MutexGuard<'a, ()>, Option<MutexGuard<'a, ()>>) {
    if a.id == b.id {
        (a.lock(), None)
    } else if a.id < b.id {
        let ga = a.lock();
        (ga, Some(b.lock()))
    } else {
        let gb = b.lock();
        (gb, Some(a.lock()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_zeroed_and_aligned() {
        let b = Buffer::allocate(100).unwrap();
        assert_eq!(b.len(), 100);
        assert_eq!(b.base() as usize % ALIGN, 0);
        // SAFETY: the block has 100 readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(b.base(), 100) };
        assert!(bytes.iter().all(|&x| x == 0));
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(Buffer::allocate(usize::MAX - 10).is_none());
    }
}
