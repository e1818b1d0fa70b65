//! Opaque C objects that are not runtime handles (trace and profiling options,
//! send/recv communicators and requests): values in a registry, named by tokens that are
//! never reused, so a freed, foreign or wrong-kind pointer is recognised, never followed.

use crate::error::{Res, fail};
use nrt_sys::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One kind of opaque object: its values by id, and the tag its tokens carry.
pub(crate) struct Registry<T> {
    tag: usize,
    what: &'static str,
    objects: Mutex<Option<HashMap<u64, T>>>,
}

impl<T> Registry<T> {
    /// A registry whose tokens carry `tag` (one byte, distinct per kind).
    pub(crate) const fn new(tag: u8, what: &'static str) -> Self {
        Registry {
            tag: tag as usize,
            what,
            objects: Mutex::new(None),
        }
    }

    fn map(&self) -> MutexGuard<'_, Option<HashMap<u64, T>>> {
        // Every update is a single insert or remove: a panic cannot leave it half done.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `value`; its token, as a C pointer of any type.
    pub(crate) fn insert<P>(&self, value: T) -> Res<*mut P> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if id >= 1 << 36 {
            return fail(NRT_RESOURCE, "the simulator ran out of object ids");
        }
        self.map()
            .get_or_insert_with(HashMap::new)
            .insert(id, value);
        Ok(std::ptr::without_provenance_mut(
            (self.tag << 40) | ((id as usize) << 4),
        ))
    }

    fn id<P>(&self, token: *const P, what: &str) -> Res<u64> {
        let addr = token.addr();
        if addr == 0 {
            return fail(NRT_INVALID, format!("{what} is NULL"));
        }
        if addr >> 40 != self.tag || addr & 0xf != 0 {
            return fail(
                NRT_INVALID_HANDLE,
                format!("{what} {addr:#x} is not a {} of this library", self.what),
            );
        }
        Ok(((addr & ((1 << 40) - 1)) >> 4) as u64)
    }

    /// Runs `f` on the live object named by `token`.
    pub(crate) fn with<P, R>(
        &self,
        token: *const P,
        what: &str,
        f: impl FnOnce(&mut T) -> Res<R>,
    ) -> Res<R> {
        let id = self.id(token, what)?;
        let mut map = self.map();
        match map.as_mut().and_then(|m| m.get_mut(&id)) {
            Some(value) => f(value),
            None => fail(
                NRT_INVALID_HANDLE,
                format!("{what} {:#x} is not a live {}", token.addr(), self.what),
            ),
        }
    }

    /// Removes the live object named by `token` and returns it.
    pub(crate) fn remove<P>(&self, token: *const P, what: &str) -> Res<T> {
        let id = self.id(token, what)?;
        match self.map().as_mut().and_then(|m| m.remove(&id)) {
            Some(value) => Ok(value),
            None => fail(
                NRT_INVALID_HANDLE,
                format!("{what} {:#x} is not a live {}", token.addr(), self.what),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_kind_and_liveness() {
        static A: Registry<u32> = Registry::new(0x61, "a");
        static B: Registry<u32> = Registry::new(0x62, "b");
        let t: *mut u8 = A.insert(7).unwrap();
        assert_eq!(A.with(t, "t", |v| Ok(*v)).unwrap(), 7);
        assert_eq!(
            B.with(t, "t", |v| Ok(*v)).unwrap_err().status,
            NRT_INVALID_HANDLE
        );
        assert_eq!(A.remove(t, "t").unwrap(), 7);
        assert_eq!(A.remove(t, "t").unwrap_err().status, NRT_INVALID_HANDLE);
        let null: *const u8 = std::ptr::null();
        assert_eq!(
            A.with(null, "t", |v| Ok(*v)).unwrap_err().status,
            NRT_INVALID
        );
    }
}
