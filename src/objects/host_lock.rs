//! The lock over host memory that libnrt copies into and out of (see the `Tensor`
//! docs): synchronous calls on host-backed tensors hold it for the libnrt call, and
//! asynchronous requests from the call that schedules them until libnrt completed them;
//! device tensors have none.
//!
//! A request's hold is not released by dropping anything: it lasts exactly until the
//! request completed on its queue (asked of libnrt when someone needs the storage), so
//! it survives detaching, scope ends and even `mem::forget` of the request, and a
//! request whose handle the caller still keeps but which completed holds nothing. Two
//! requests of the same queue never conflict (a queue runs its requests in order); a
//! request that would conflict with a running one of another queue is refused with
//! [`Error::InUse`]; a synchronous call waits for conflicting requests to complete
//! (blocking on their completion, as [`Request::wait`](crate::xu::Request::wait) does).

use std::ptr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::error::{Error, Result};
use crate::xu::{SeqId, UnitInner};

/// The lock over one block of host memory that libnrt copies into and out of.
#[derive(Default)]
pub(crate) struct HostLock {
    holders: Mutex<Holders>,
    released: Condvar,
}

#[derive(Default)]
struct Holders {
    /// Synchronous readers inside a libnrt call.
    readers: u32,
    /// A synchronous writer inside a libnrt call.
    writer: bool,
    /// Requests that may still use the storage (a `Vec` reused for the tensor's life).
    requests: Vec<Held>,
}

/// A request's hold: its unit (weakly: nothing is kept alive by the lock), its queue's
/// identity and its id once libnrt gave one (`None` while it is being scheduled).
struct Held {
    access: Access,
    unit: Weak<UnitInner>,
    queue: usize,
    ticket: u64,
    seq: Option<SeqId>,
}

impl Held {
    /// Whether libnrt is done with the storage for this request.
    fn done(&self) -> bool {
        let Some(seq) = self.seq else {
            return false;
        };
        // No handle of its unit left: no request of it exists, so it completed.
        self.unit
            .upgrade()
            .is_none_or(|unit| unit.is_completed(seq).unwrap_or(true))
    }
}

/// Whether an operation only reads a tensor's storage or also writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// libnrt only reads the storage (`nrt_tensor_read`, a copy's source, an execution input).
    Read,
    /// libnrt writes the storage (write, fill, a copy's destination, an execution output).
    Write,
}

fn conflict(a: Access, b: Access) -> bool {
    a == Access::Write || b == Access::Write
}

impl HostLock {
    fn holders(&self) -> MutexGuard<'_, Holders> {
        // Plain counters and entries pushed and removed whole: a poisoned lock is still
        // consistent.
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, h: MutexGuard<'a, Holders>) -> MutexGuard<'a, Holders> {
        self.released.wait(h).unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request about to be scheduled on `unit` with `access`; returns its
    /// ticket, for [`HostLock::scheduled`]. Waits only for synchronous calls inside
    /// libnrt; a conflicting request of another queue still running is
    /// [`Error::InUse`] naming `what`.
    pub(crate) fn hold_for_request(
        &self,
        unit: &Arc<UnitInner>,
        access: Access,
        what: impl FnOnce() -> String,
    ) -> Result<u64> {
        static TICKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let queue = Arc::as_ptr(&unit.state) as usize;
        let mut h = self.holders();
        loop {
            if h.writer || (access == Access::Write && h.readers > 0) {
                h = self.wait(h);
                continue;
            }
            h.requests.retain(|r| !r.done());
            let others = h
                .requests
                .iter()
                .filter(|r| r.queue != queue && conflict(r.access, access))
                .count();
            if others > 0 {
                return Err(Error::InUse {
                    what: format!(
                        "{} (requests of another queue {} it, and libnrt copies on its own threads: wait for them, or use one queue)",
                        what(),
                        if access == Access::Write {
                            "use"
                        } else {
                            "write"
                        }
                    ),
                    users: others,
                });
            }
            let ticket = TICKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            h.requests.push(Held {
                access,
                unit: Arc::downgrade(unit),
                queue,
                ticket,
                seq: None,
            });
            return Ok(ticket);
        }
    }

    /// The request of `ticket` was scheduled as `seq` (it holds the storage until it
    /// completed), or refused (`None`: it holds nothing).
    pub(crate) fn scheduled(&self, ticket: u64, seq: Option<SeqId>) {
        let mut h = self.holders();
        if let Some(at) = h.requests.iter().position(|r| r.ticket == ticket) {
            match seq {
                Some(seq) => h.requests[at].seq = Some(seq),
                None => {
                    h.requests.swap_remove(at);
                }
            }
        }
        drop(h);
        self.released.notify_all();
    }
}

/// A held [`HostLock`] of a synchronous call: released when dropped.
pub(crate) struct HostGuard<'a> {
    lock: &'a HostLock,
    access: Access,
}

impl HostGuard<'_> {
    /// Takes `lock` for `access`: waits for synchronous calls and for requests (until
    /// they complete) that conflict.
    pub(crate) fn lock(lock: &HostLock, access: Access) -> HostGuard<'_> {
        let mut h = lock.holders();
        loop {
            let busy = h.writer || (access == Access::Write && h.readers > 0);
            if !busy {
                h.requests.retain(|r| !r.done());
                match h.requests.iter().find(|r| conflict(r.access, access)) {
                    None => break,
                    Some(r) => {
                        if let (Some(seq), Some(unit)) = (r.seq, r.unit.upgrade()) {
                            // Block on its completion with the lock released; an error
                            // (libnrt cannot say) is seen again by `done` above.
                            drop(h);
                            let _ = unit.wait(seq);
                            h = lock.holders();
                            continue;
                        }
                    }
                }
            }
            // A synchronous call inside libnrt, or a request being scheduled.
            h = lock.wait(h);
        }
        match access {
            Access::Read => h.readers += 1,
            Access::Write => h.writer = true,
        }
        HostGuard { lock, access }
    }
}

impl Drop for HostGuard<'_> {
    fn drop(&mut self) {
        let mut h = self.lock.holders();
        match self.access {
            Access::Read => h.readers -= 1,
            Access::Write => h.writer = false,
        }
        drop(h);
        self.lock.released.notify_all();
    }
}

/// What the lock functions need of a tensor (implemented by `Tensor` in `tensor.rs`,
/// which holds the lock): the lock over its host storage, and its name for errors.
pub(crate) trait HostStorage {
    /// The lock over its host storage; `None` for device memory.
    fn storage_lock(&self) -> Option<&HostLock>;
    /// The same lock, shared.
    fn shared_storage_lock(&self) -> Option<Arc<HostLock>>;
    /// Its name, for error messages.
    fn storage_name(&self) -> &str;
}

/// Locks the host storage of every tensor in `uses` (device tensors are skipped), each
/// once in the strongest access asked for it, in address order, so that two calls
/// locking overlapping sets of tensors cannot deadlock. Allocates only when at least
/// one tensor is in host memory.
pub(crate) fn lock_host_storage<'a, T: HostStorage + 'a>(
    uses: impl IntoIterator<Item = (&'a T, Access)>,
) -> Vec<HostGuard<'a>> {
    sorted_locks(uses)
        .into_iter()
        .map(|(lock, access)| HostGuard::lock(lock, access))
        .collect()
}

/// The host locks of `uses`, each once with the strongest access, in address order.
fn sorted_locks<'a, T: HostStorage + 'a>(
    uses: impl IntoIterator<Item = (&'a T, Access)>,
) -> Vec<(&'a HostLock, Access)> {
    let mut locks: Vec<(&'a HostLock, Access)> = Vec::new();
    for (tensor, access) in uses {
        if let Some(lock) = tensor.storage_lock() {
            locks.push((lock, access));
        }
    }
    if locks.is_empty() {
        return locks;
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
}

/// A list that holds its first two items inline (no allocation): a transfer uses at
/// most two tensors; only a request with more host tensors (an execution) allocates.
struct Few<T> {
    inline: [Option<T>; 2],
    more: Vec<T>,
}

impl<T> Few<T> {
    fn new() -> Few<T> {
        Few {
            inline: [None, None],
            more: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(item),
            None => self.more.push(item),
        }
    }

    fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    fn into_iter(self) -> impl Iterator<Item = T> {
        self.inline.into_iter().flatten().chain(self.more)
    }

    /// Sorted by `key`; of neighbours with the same key, the later is merged into the
    /// earlier by `merge` (which says whether they are one).
    fn sorted_dedup(self, key: impl Fn(&T) -> usize, merge: impl Fn(&mut T, &T) -> bool) -> Few<T> {
        let mut out = Few::new();
        if self.more.is_empty() {
            let [a, b] = self.inline;
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) if key(&b) < key(&a) => (b, Some(a)),
                (Some(a), b) => (a, b),
                (None, _) => return out,
            };
            out.push(a);
            if let Some(b) = b {
                let first = out.inline[0].as_mut().expect("pushed above");
                if !merge(first, &b) {
                    out.push(b);
                }
            }
            return out;
        }
        let mut all: Vec<T> = self.into_iter().collect();
        all.sort_by_key(|x| key(x));
        let mut merged: Vec<T> = Vec::with_capacity(all.len());
        for x in all {
            match merged.last_mut() {
                Some(last) if key(last) == key(&x) => {
                    merge(last, &x);
                }
                _ => merged.push(x),
            }
        }
        out.more = merged;
        out
    }
}

/// The holds a request being scheduled takes on the host storage it uses: registered
/// before libnrt is called, given the request's id (or dropped) after. No allocation
/// for up to two host tensors (every transfer); none at all for device tensors.
pub(crate) struct RequestHolds {
    held: Few<(Arc<HostLock>, u64)>,
}

impl RequestHolds {
    /// Registers the request on `unit` with every host tensor of `uses` (see
    /// [`HostLock::hold_for_request`]), each once with the strongest access, in address
    /// order; on a conflict, nothing stays registered.
    pub(crate) fn take<'a, T: HostStorage + 'a>(
        unit: &Arc<UnitInner>,
        uses: impl IntoIterator<Item = (&'a T, Access)>,
    ) -> Result<RequestHolds> {
        let mut locks: Few<(Arc<HostLock>, Access, &'a T)> = Few::new();
        for (tensor, access) in uses {
            if let Some(lock) = tensor.shared_storage_lock() {
                locks.push((lock, access, tensor));
            }
        }
        let mut holds = RequestHolds { held: Few::new() };
        if locks.is_empty() {
            return Ok(holds);
        }
        let locks = locks.sorted_dedup(
            |(lock, _, _)| Arc::as_ptr(lock) as usize,
            |kept, later| {
                if !Arc::ptr_eq(&kept.0, &later.0) {
                    return false;
                }
                if later.1 == Access::Write {
                    kept.1 = Access::Write;
                }
                true
            },
        );
        for (lock, access, tensor) in locks.into_iter() {
            let ticket = lock.hold_for_request(unit, access, || {
                format!("the host storage of tensor `{}`", tensor.storage_name())
            });
            match ticket {
                Ok(ticket) => holds.held.push((lock, ticket)),
                Err(e) => {
                    holds.finish(None);
                    return Err(e);
                }
            }
        }
        Ok(holds)
    }

    /// The request was scheduled as `seq`, or refused (`None`).
    pub(crate) fn finish(self, seq: Option<SeqId>) {
        for (lock, ticket) in self.held.into_iter() {
            lock.scheduled(ticket, seq);
        }
    }
}
