//! C handles: opaque tokens naming registry objects, never reused.

use crate::error::{Res, fail};
use nrt_sys::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a C handle points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleKind {
    Model,
    Tensor,
    TensorSet,
}

impl HandleKind {
    fn tag(self) -> usize {
        match self {
            HandleKind::Model => 0x4d,
            HandleKind::Tensor => 0x54,
            HandleKind::TensorSet => 0x53,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HandleKind::Model => "model",
            HandleKind::Tensor => "tensor",
            HandleKind::TensorSet => "tensor set",
        }
    }
}

/// Ids are never reused (not even across init/close), so a stale handle is always
/// recognised as such. 36 bits of id fit below the tag.
const ID_BITS: u32 = 36;
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn new_id() -> Res<u64> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= 1 << ID_BITS {
        return fail(NRT_RESOURCE, "the simulator ran out of handle ids");
    }
    Ok(id)
}

/// Handles are opaque tokens, not addresses: `tag << 40 | id << 4`. C code never
/// dereferences them, and a token cannot dangle.
pub(crate) fn to_handle<T>(kind: HandleKind, id: u64) -> *mut T {
    std::ptr::without_provenance_mut((kind.tag() << 40) | ((id as usize) << 4))
}

/// The id inside a handle; NULL -> `NRT_INVALID`, not a handle of this kind ->
/// `NRT_INVALID_HANDLE`. Whether the id is live is checked by the caller.
pub(crate) fn from_handle<T>(kind: HandleKind, handle: *const T, what: &str) -> Res<u64> {
    let addr = handle.addr();
    if addr == 0 {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    if addr >> 40 != kind.tag() || addr & 0xf != 0 {
        return fail(
            NRT_INVALID_HANDLE,
            format!("{what} {addr:#x} is not a {} handle", kind.name()),
        );
    }
    Ok(((addr & ((1 << 40) - 1)) >> 4) as u64)
}
