//! The lock over host memory that libnrt copies into and out of (see the `Tensor`
//! docs): synchronous calls on host-backed tensors hold it, device tensors have none.

use std::ptr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Tensor;

/// The lock over one block of host memory that libnrt copies into and out of.
pub(crate) type HostLock = RwLock<()>;

/// Whether an operation only reads a tensor's storage or also writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// libnrt only reads the storage (`nrt_tensor_read`, a copy's source, an execution input).
    Read,
    /// libnrt writes the storage (write, fill, a copy's destination, an execution output).
    Write,
}

/// A held [`HostLock`]: released when dropped.
pub(crate) enum HostGuard<'a> {
    /// Shared: readers only.
    Read {
        /// Held, never read.
        _guard: RwLockReadGuard<'a, ()>,
    },
    /// Exclusive.
    Write {
        /// Held, never read.
        _guard: RwLockWriteGuard<'a, ()>,
    },
}

impl HostGuard<'_> {
    pub(crate) fn lock(lock: &HostLock, access: Access) -> HostGuard<'_> {
        // The lock guards no data (`()`): a panic while it was held (none is possible
        // inside the libnrt call it covers) leaves nothing inconsistent, so poisoning
        // is ignored.
        match access {
            Access::Read => HostGuard::Read {
                _guard: lock.read().unwrap_or_else(|e| e.into_inner()),
            },
            Access::Write => HostGuard::Write {
                _guard: lock.write().unwrap_or_else(|e| e.into_inner()),
            },
        }
    }
}

/// Locks the host storage of every tensor in `uses` (device tensors are skipped), each
/// once in the strongest access asked for it, in address order, so that two calls
/// locking overlapping sets of tensors cannot deadlock. Allocates only when at least
/// one tensor is in host memory.
pub(crate) fn lock_host_storage<'a>(
    uses: impl IntoIterator<Item = (&'a Tensor, Access)>,
) -> Vec<HostGuard<'a>> {
    let mut locks: Vec<(&'a HostLock, Access)> = Vec::new();
    for (tensor, access) in uses {
        if let Some(lock) = tensor.host_lock() {
            locks.push((lock, access));
        }
    }
    if locks.is_empty() {
        return Vec::new();
    }
    locks.sort_by_key(|(lock, _)| ptr::from_ref(*lock) as usize);
    locks.dedup_by(|later, kept| {
        let same = ptr::eq(later.0, kept.0);
        if same && later.1 == Access::Write {
            kept.1 = Access::Write;
        }
        same
    });
    locks
        .into_iter()
        .map(|(lock, access)| HostGuard::lock(lock, access))
        .collect()
}
