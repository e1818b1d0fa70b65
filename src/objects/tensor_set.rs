//! [`TensorSet`]: named tensors passed to a model execution.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nrt_sys as sys;

use super::runtime::Runtime;
use super::runtime::c_string;
use super::tensor::Tensor;
use crate::error::{Error, Result};
use crate::raw;

/// Named tensors, the inputs or outputs of an execution (`nrt_tensor_set_t`).
///
/// The set holds a handle to each tensor in it, so a tensor stays alive as long as it is
/// in a set, even if every other handle is dropped. Dropping the set destroys the libnrt
/// set first, then lets go of the tensors.
///
/// `TensorSet` is `Send + Sync`: libnrt only reads a set during an execution, and the set
/// is changed only through `&mut self`.
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// // On hardware: `Runtime::new()?`. Here: the simulator.
/// let runtime = Runtime::builder().simulator().build()?;
/// let mut inputs = runtime.tensor_set()?;
/// let a = runtime.allocate_tensor(Placement::Device, Some(0), 24, "a")?;
/// inputs.insert("a", &a)?;
/// assert_eq!(inputs.get("a").map(|t| t.size()), Some(24));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct TensorSet {
    inner: Arc<TensorSetInner>,
}

pub(crate) struct TensorSetInner {
    raw: NonNull<c_void>,
    rt: Runtime,
    // Dropped after the libnrt set is destroyed (TensorSetInner::drop runs first).
    tensors: BTreeMap<String, Tensor>,
    /// The binding this set last passed (`Model::check_bindings`): a model's id and the
    /// role, see [`TensorSet::passed`]; 0 for none. Cleared by every change of the set.
    passed: AtomicU64,
    /// Whether a tensor in it has host storage (a host lock an execution must take):
    /// kept by `insert`, so that executions with device tensors only look at no tensor.
    host: bool,
}

// libnrt reads a set during nrt_execute (documented as callable concurrently), and this
// crate changes a set only through `&mut TensorSet` while no other owner exists
// (`Arc::get_mut`), so shared access never mutates it.
// SAFETY: libnrt accepts the set handle from any thread; see above for shared use.
unsafe impl Send for TensorSetInner {}
// SAFETY: see `Send` above: `&TensorSetInner` only reads.
unsafe impl Sync for TensorSetInner {}

impl Drop for TensorSetInner {
    fn drop(&mut self) {
        // SAFETY: `raw` is a live set of this runtime, destroyed exactly once (this is
        // the last owner, so no execution uses it); its tensors are still alive (dropped
        // after this).
        unsafe { raw::set::destroy(self.rt.inner.lib(), self.raw) };
    }
}

impl Runtime {
    /// An empty tensor set (`nrt_allocate_tensor_set`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the library lacks `nrt_allocate_tensor_set` or
    /// `nrt_destroy_tensor_set`; [`Error::Nrt`] if libnrt fails.
    pub fn tensor_set(&self) -> Result<TensorSet> {
        let lib = self.inner.lib();
        // Never create what could not be freed.
        raw::set::can_destroy(lib)?;
        let raw = raw::set::allocate(lib)?;
        Ok(TensorSet {
            inner: Arc::new(TensorSetInner {
                raw,
                rt: self.clone(),
                tensors: BTreeMap::new(),
                passed: AtomicU64::new(0),
                host: false,
            }),
        })
    }
}

impl TensorSet {
    /// Adds `tensor` under `name`, replacing (and returning) the tensor that had that
    /// name (`nrt_add_tensor_to_tensor_set`). The set keeps the tensor alive.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an empty name, a name with a NUL byte or longer
    /// than libnrt's limit (255 bytes); [`Error::ForeignHandle`] if the tensor belongs to
    /// another runtime; [`Error::InUse`] while an in-flight request uses the set;
    /// [`Error::Nrt`] if libnrt fails. On error the set is unchanged.
    pub fn insert(&mut self, name: &str, tensor: &Tensor) -> Result<Option<Tensor>> {
        let max = sys::NRT_TENSOR_NAME_MAX as usize - 1;
        if name.is_empty() || name.len() > max {
            return Err(Error::invalid(
                "name",
                format!(
                    "tensor set names must be 1 to {max} bytes, `{name}` has {}",
                    name.len()
                ),
            ));
        }
        let c_name = c_string("name", name)?;
        self.inner
            .rt
            .check_same(tensor.runtime(), || format!("tensor `{}`", tensor.name()))?;
        let users = Arc::strong_count(&self.inner) - 1;
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| Error::InUse {
            what: "tensor set".into(),
            users,
        })?;
        // Why the call is sound: the set and the tensor are live handles of the same
        // runtime; `c_name` outlives the call. The set keeps the tensor alive from here on
        // (map below), and the tensor it replaces stays alive until after the call. No
        // execution uses the set: this is its only handle (`Arc::get_mut` above).
        // SAFETY: the conditions just above hold for this call.
        unsafe {
            raw::set::add_tensor(
                inner.rt.inner.lib(),
                inner.raw.as_ptr(),
                &c_name,
                tensor.raw(),
            )
        }
        .map_err(|e| e.context(format!("tensor `{}` as `{name}`", tensor.name())))?;
        // The set changed: whatever binding it passed must be checked again.
        *inner.passed.get_mut() = 0;
        let replaced = inner.tensors.insert(name.to_owned(), tensor.clone());
        inner.host = inner.tensors.values().any(|t| t.host_lock().is_some());
        Ok(replaced)
    }

    /// Whether the set passed the binding check `key` (a model's id and a role, never
    /// 0) and did not change since. Sound to trust because a set changes only through
    /// `&mut self` (which clears the mark) and a tensor's size, placement and core never
    /// change.
    pub(crate) fn passed(&self, key: u64) -> bool {
        self.inner.passed.load(Ordering::Relaxed) == key
    }

    /// Remembers that the set, as it is now, passed the binding check `key`.
    /// Whether a tensor of this set has host storage (see `Tensor::host_lock`).
    pub(crate) fn has_host_storage(&self) -> bool {
        self.inner.host
    }

    pub(crate) fn mark_passed(&self, key: u64) {
        self.inner.passed.store(key, Ordering::Relaxed);
    }

    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.inner.tensors.get(name)
    }

    /// Whether a tensor is stored under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.tensors.contains_key(name)
    }

    /// The names in the set, in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.inner.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The number of tensors in the set.
    pub fn len(&self) -> usize {
        self.inner.tensors.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.tensors.is_empty()
    }

    /// The runtime this set belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// The raw libnrt set, valid while this `TensorSet` is alive.
    pub(crate) fn raw(&self) -> *mut c_void {
        self.inner.raw.as_ptr()
    }

    /// Another owner of the set, for in-flight requests that must keep it (and its
    /// tensors) alive and unchanged.
    #[allow(dead_code)] // used by the async API
    pub(crate) fn share(&self) -> Arc<TensorSetInner> {
        Arc::clone(&self.inner)
    }
}

impl fmt::Debug for TensorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
