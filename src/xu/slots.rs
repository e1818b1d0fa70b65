//! Status slots: the `NRT_STATUS *ret` memory of in-flight requests.
//!
//! libnrt writes a request's final status through the `ret` pointer given at schedule
//! time, at any moment until the request completes. That memory must therefore stay
//! valid, and must not be reused, until completion has been observed, even if the
//! `Request` that owns it is leaked with `mem::forget`. A pool per execution unit
//! provides it without a heap allocation per request:
//!
//! - slots live in fixed-size chunks allocated once and never moved or freed while the
//!   pool exists (a chunk is a `Box<[AtomicU32]>`; growing the chunk list moves the
//!   boxes, not the slots);
//! - a free list, whose capacity always covers every slot, so returning a slot never
//!   allocates;
//! - a request holds its slot and an `Arc` of the unit that owns the pool; it returns
//!   the slot only once the device is done with it. A forgotten request never returns
//!   its slot and never releases its `Arc`, so the pool (and the slot) outlive any
//!   write the device may still make;
//! - one free slot is kept aside outside the lock (`spare`), so a unit with one
//!   request at a time (the common synchronous-style use) takes and returns its slot
//!   with one atomic swap each, touching no lock and no free-list memory.

use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use nrt_sys as sys;

/// Slots per chunk.
const CHUNK: usize = 32;

/// The value a slot holds before libnrt writes a status: not a status libnrt uses, so a
/// completed request whose slot still holds it was never written (a library bug).
pub(crate) const UNWRITTEN: sys::NRT_STATUS = 0xDEAD_5107;

/// A pool of status slots (see the module docs).
#[derive(Debug)]
#[repr(C)] // `spare` first: it sits next to the hot fields of `QueueState`.
pub(crate) struct SlotPool {
    /// A free slot not on the free list (null: none).
    spare: AtomicPtr<AtomicU32>,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    chunks: Vec<Box<[AtomicU32]>>,
    /// Indices (chunk * CHUNK + slot) of the slots not held by any request.
    free: Vec<u32>,
}

/// A slot taken from a [`SlotPool`]; must go back to the same pool (or be leaked).
#[derive(Debug)]
pub(crate) struct Slot {
    ptr: NonNull<AtomicU32>,
}

// SAFETY: a `Slot` is a pointer into a chunk owned by its pool; the chunk is never freed
// while the pool lives (and the holder keeps the pool alive), and the slot itself is an
// `AtomicU32`, which any thread may access.
unsafe impl Send for Slot {}
// SAFETY: as for `Send`; `&Slot` only gives `&AtomicU32`, which is `Sync`.
unsafe impl Sync for Slot {}

impl SlotPool {
    /// A pool with one chunk of slots.
    pub(crate) fn new() -> SlotPool {
        let mut state = PoolState {
            chunks: Vec::with_capacity(4),
            free: Vec::new(),
        };
        state.grow();
        SlotPool {
            spare: AtomicPtr::new(ptr::null_mut()),
            state: Mutex::new(state),
        }
    }

    /// Takes a free slot (allocating a new chunk only when all are in use), set to
    /// [`UNWRITTEN`]; its pointer is valid for as long as this pool lives.
    pub(crate) fn take(&self) -> Slot {
        if let Some(ptr) = NonNull::new(self.spare.swap(ptr::null_mut(), Ordering::Acquire)) {
            // SAFETY: `spare` only ever holds a pointer to a slot of this pool's chunks,
            // which live as long as the pool.
            let cell = unsafe { ptr.as_ref() };
            // Its previous holder observed completion before giving it back (as below).
            cell.store(UNWRITTEN, Ordering::Relaxed);
            return Slot { ptr };
        }
        let mut state = self.lock();
        let index = match state.free.pop() {
            Some(i) => i,
            None => {
                state.grow();
                // `grow` added CHUNK free slots.
                state.free.pop().unwrap_or(0)
            }
        };
        let (chunk, offset) = (index as usize / CHUNK, index as usize % CHUNK);
        let cell = &state.chunks[chunk][offset];
        // The previous holder observed completion before returning the slot, so no
        // write by libnrt can be pending on it.
        cell.store(UNWRITTEN, Ordering::Relaxed);
        Slot {
            ptr: NonNull::from(cell),
        }
    }

    /// Returns a slot, which libnrt no longer writes, as the spare or to the free list
    /// (never allocates).
    pub(crate) fn give_back(&self, slot: Slot) {
        if self
            .spare
            .compare_exchange(
                ptr::null_mut(),
                slot.ptr.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return;
        }
        let mut state = self.lock();
        // Slots come only from this pool's chunks; one that did not would be kept out
        // of circulation rather than risk handing out foreign memory.
        if let Some(index) = state.index_of(&slot) {
            debug_assert!(state.free.len() < state.free.capacity());
            state.free.push(index);
        } else {
            debug_assert!(false, "a slot of another pool");
        }
    }

    /// Slots currently allocated (free or held).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.lock().chunks.len() * CHUNK
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the state inconsistent (each
        // operation is a single push/pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PoolState {
    /// The index of `slot` (chunk * CHUNK + offset), from its address.
    fn index_of(&self, slot: &Slot) -> Option<u32> {
        let addr = slot.ptr.as_ptr() as usize;
        let size = size_of::<AtomicU32>();
        self.chunks.iter().enumerate().find_map(|(c, chunk)| {
            let start = chunk.as_ptr() as usize;
            (start..start + CHUNK * size)
                .contains(&addr)
                .then(|| (c * CHUNK + (addr - start) / size) as u32)
        })
    }

    fn grow(&mut self) {
        let first = self.chunks.len() * CHUNK;
        self.chunks
            .push((0..CHUNK).map(|_| AtomicU32::new(UNWRITTEN)).collect());
        let total = self.chunks.len() * CHUNK;
        // Room for every slot, so `give_back` never allocates.
        self.free.reserve_exact(total - self.free.len());
        // Hand out low indices first (popped from the end).
        self.free.extend((first..total).rev().map(|i| i as u32));
    }
}

impl Slot {
    /// The slot's memory.
    ///
    /// # Safety
    ///
    /// The pool this slot was taken from must stay alive while the returned reference
    /// is used (chunks are freed only when their pool is dropped).
    pub(crate) unsafe fn cell(&self) -> &AtomicU32 {
        // SAFETY: the caller guarantees the owning pool outlives the borrow; chunks are
        // never freed or moved while it lives; an `AtomicU32` may be shared.
        unsafe { self.ptr.as_ref() }
    }

    /// The pointer passed to libnrt as `NRT_STATUS *ret`.
    pub(crate) fn as_ptr(&self) -> *mut sys::NRT_STATUS {
        // `AtomicU32` has the same in-memory representation as `u32`.
        self.ptr.as_ptr().cast::<sys::NRT_STATUS>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn cell<'a>(_pool: &'a SlotPool, slot: &'a Slot) -> &'a AtomicU32 {
        // SAFETY: every slot in these tests comes from the pool borrowed for 'a.
        unsafe { slot.cell() }
    }

    #[test]
    fn slots_are_distinct_and_reused_after_give_back() {
        let pool = SlotPool::new();
        let a = pool.take();
        let b = pool.take();
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!(cell(&pool, &a).load(Ordering::Relaxed), UNWRITTEN);
        let a_ptr = a.as_ptr();
        cell(&pool, &a).store(7, Ordering::Relaxed);
        pool.give_back(a);
        let c = pool.take();
        assert_eq!(c.as_ptr(), a_ptr, "the freed slot is reused first");
        assert_eq!(
            cell(&pool, &c).load(Ordering::Relaxed),
            UNWRITTEN,
            "reset on take"
        );
        pool.give_back(b);
        pool.give_back(c);
    }

    #[test]
    fn grows_without_moving_held_slots() {
        let pool = SlotPool::new();
        let held: Vec<Slot> = (0..CHUNK * 3 + 1).map(|_| pool.take()).collect();
        assert_eq!(pool.capacity(), CHUNK * 4);
        let ptrs: HashSet<usize> = held.iter().map(|s| s.as_ptr() as usize).collect();
        assert_eq!(ptrs.len(), held.len(), "every held slot is distinct");
        // Writes through early slots stay visible after the pool grew.
        cell(&pool, &held[0]).store(42, Ordering::Relaxed);
        let more: Vec<Slot> = (0..CHUNK).map(|_| pool.take()).collect();
        assert_eq!(cell(&pool, &held[0]).load(Ordering::Relaxed), 42);
        for s in held.into_iter().chain(more) {
            pool.give_back(s);
        }
        let cap = pool.capacity();
        let again: Vec<Slot> = (0..cap).map(|_| pool.take()).collect();
        assert_eq!(pool.capacity(), cap, "no growth while free slots remain");
        for s in again {
            pool.give_back(s);
        }
    }

    #[test]
    fn the_spare_and_the_free_list_never_hand_out_a_held_slot() {
        let pool = SlotPool::new();
        let held: Vec<Slot> = (0..4).map(|_| pool.take()).collect();
        let ptrs: Vec<_> = held.iter().map(Slot::as_ptr).collect();
        // The first goes to the spare, the others to the free list (by index).
        for s in held {
            pool.give_back(s);
        }
        let again: Vec<Slot> = (0..CHUNK).map(|_| pool.take()).collect();
        let distinct: HashSet<usize> = again.iter().map(|s| s.as_ptr() as usize).collect();
        assert_eq!(distinct.len(), CHUNK, "a slot was handed out twice");
        assert!(ptrs.iter().all(|p| distinct.contains(&(*p as usize))));
        assert_eq!(pool.capacity(), CHUNK, "no growth while slots were free");
        for s in again {
            pool.give_back(s);
        }
    }

    #[test]
    fn forgotten_slot_is_never_handed_out_again() {
        let pool = SlotPool::new();
        let lost = pool.take();
        let lost_ptr = lost.as_ptr();
        // A request that is forgotten simply never gives its slot back.
        let _ = lost;
        let all: Vec<Slot> = (0..CHUNK * 2).map(|_| pool.take()).collect();
        assert!(all.iter().all(|s| s.as_ptr() != lost_ptr));
        for s in all {
            pool.give_back(s);
        }
    }
}
