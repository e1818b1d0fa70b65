//! [`Tensor`]: a libnrt tensor (device, host or virtual memory) with checked, typed access.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use nrt_sys as sys;

use super::attached_buffer::AttachedBuffer;
use super::capabilities::Capabilities;
use super::host_lock::HostLock;
use super::host_lock::{Access, HostGuard, HostStorage, lock_host_storage};
use super::runtime::Runtime;
use super::runtime::c_string;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::raw;

/// The runtime library version that removed VIRTUAL placement.
const VIRTUAL_REMOVED_IN: (u64, u64) = super::capabilities::ASYNC_EVENTS_MIN;

/// Where a tensor's storage lives (`nrt_tensor_placement_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Placement {
    /// Device memory (HBM) of one NeuronCore.
    Device,
    /// Host memory managed by libnrt.
    Host,
    /// Pageable host memory (`NRT_TENSOR_PLACEMENT_VIRTUAL`). Removed from libnrt in
    /// runtime library 2.32 (Neuron SDK 2.30): allocating one there is refused with
    /// [`Error::Unsupported`] before libnrt is called. Use [`Placement::Host`], or
    /// [`Runtime::tensor_from_buffer`] for caller-owned memory.
    Virtual,
}

impl Placement {
    fn as_raw(self) -> sys::nrt_tensor_placement_t {
        match self {
            Placement::Device => sys::NRT_TENSOR_PLACEMENT_DEVICE,
            Placement::Host => sys::NRT_TENSOR_PLACEMENT_HOST,
            Placement::Virtual => sys::NRT_TENSOR_PLACEMENT_VIRTUAL,
        }
    }
}

/// A tensor: a named block of `size` bytes in device, host or virtual memory.
///
/// `Tensor` is a handle: `clone` gives another handle to the *same* tensor (like
/// `Arc`), not a copy of its data. The tensor is freed (`nrt_tensor_free`) when the last
/// handle is dropped, including the handles that [`TensorSet`](crate::TensorSet)s and
/// slices ([`Tensor::slice`]) hold; a slice keeps its parent alive, and every tensor
/// keeps its [`Runtime`] open.
///
/// All access goes through libnrt calls, with every offset and length checked first on
/// the Rust side. Offsets and lengths are in **bytes**, also for the typed methods.
///
/// # Thread safety
///
/// `Tensor` is `Send + Sync`. Its handle is not tied to a thread in libnrt, and Rust never
/// forms a reference into the tensor's storage: data moves only by copies that libnrt
/// makes (`nrt_tensor_read`, `nrt_tensor_write`, ...) into or out of buffers Rust owns.
///
/// For tensors in **host memory** ([`Placement::Host`], [`Placement::Virtual`], and
/// tensors over a buffer from [`Runtime::tensor_from_buffer`]) those copies are `memcpy`s
/// by the calling thread into process memory, so two of them on the same bytes at once
/// would be a data race. Every synchronous operation on such a tensor therefore holds a
/// lock on its storage for the duration of the libnrt call: shared for reads, exclusive
/// for writes, copies into it, fills, batches and executions writing it. Slices share
/// their parent's lock (they alias its storage). So concurrent calls on host tensors are
/// serialised, and each call sees or leaves whole the bytes of any other call.
///
/// Device tensors ([`Placement::Device`], and their slices) take no lock: libnrt moves
/// their data by DMA, and two threads writing the same device tensor race on its
/// *contents* only (the result is some mix of the bytes), never on process memory.
///
/// The asynchronous operations of [`xu`](crate::xu) (libnrt runs them on its own
/// threads, after the call that scheduled them has returned) hold the same lock from
/// the call that schedules them until libnrt completed them, whatever happens to the
/// request handle (waited for, dropped, forgotten): a synchronous call on the storage
/// waits for conflicting requests to complete. Requests of one queue never conflict
/// (a queue runs them in order); a request that would conflict with one still running
/// on another queue is refused with [`Error::InUse`].
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// // On hardware: `Runtime::new()?`. Here: the simulator.
/// let runtime = Runtime::builder().simulator().build()?;
/// let t = runtime.allocate_tensor(Placement::Device, Some(0), 16, "x")?;
/// t.write(&[1.0f32, 2.0, 3.0, 4.0])?;
/// assert_eq!(t.to_vec::<f32>()?, [1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) inner: Arc<TensorInner>,
}

/// The tensor behind every handle. Dropped once: frees the libnrt tensor, then the
/// parent (for a slice) and the attached buffer (for [`Runtime::tensor_from_buffer`]).
///
/// `repr(C)`: what every call reads (handle, runtime, size, core, placement, host lock)
/// comes first, right after the `Arc`'s reference counts (64 bytes together), so a call
/// touches one or two cache lines of it rather than fields scattered over three.
#[repr(C)]
pub(crate) struct TensorInner {
    raw: NonNull<sys::nrt_tensor_t>,
    rt: Runtime,
    size: usize,
    core: Option<u32>,
    placement: Placement,
    /// For storage in host memory: the lock every synchronous libnrt call on it holds
    /// (see the `Tensor` docs), shared with slices of it. `None` for device storage.
    host: Option<Arc<HostLock>>,
    name: String,
    // Declared after the fields above so it drops after the tensor is freed; only held,
    // never read: a slice's storage is its parent's.
    _parent: Option<Arc<TensorInner>>,
    pub(crate) buffer: Option<AttachedBuffer>,
    /// Element type and shape, for a tensor made for a model tensor (`crate::typed`).
    pub(crate) layout: std::sync::OnceLock<super::typed::Layout>,
}

// The Rust-side fields are immutable after creation, and data is only moved by libnrt
// copies, never through Rust references to the storage, so sharing (`Sync`) cannot make
// Rust code observe a data race; see the `Tensor` docs.
// SAFETY: libnrt accepts the tensor handle from any thread (its functions are not thread-bound).
unsafe impl Send for TensorInner {}
// SAFETY: as for `Send` above; `&TensorInner` only reads the immutable fields and passes
// the handle to libnrt.
unsafe impl Sync for TensorInner {}

impl Drop for TensorInner {
    fn drop(&mut self) {
        // SAFETY: `raw` is a live tensor of this runtime, freed exactly once (this is
        // the last handle). No set, slice or request refers to it: each holds a handle
        // while it does.
        unsafe { raw::tensor::free(self.rt.inner.lib(), self.raw) };
    }
}

/// Where a new tensor comes from: [`Runtime::allocate_tensor`] and friends fill it in.
pub(crate) struct NewTensor<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) size: usize,
    pub(crate) placement: Placement,
    pub(crate) core: Option<u32>,
    pub(crate) name: String,
    pub(crate) parent: Option<Arc<TensorInner>>,
    pub(crate) buffer: Option<AttachedBuffer>,
}

impl NewTensor<'_> {
    /// Wraps `raw`, which libnrt just created (or [`Error::UnexpectedResult`] if null).
    pub(crate) fn wrap(self, raw: NonNull<sys::nrt_tensor_t>) -> Tensor {
        // A slice aliases its parent's storage, so it shares the parent's lock.
        let host = match &self.parent {
            Some(parent) => parent.host.clone(),
            None if self.placement == Placement::Device => None,
            None => Some(Arc::new(HostLock::default())),
        };
        Tensor {
            inner: Arc::new(TensorInner {
                raw,
                rt: self.rt.clone(),
                size: self.size,
                placement: self.placement,
                core: self.core,
                name: self.name,
                _parent: self.parent,
                buffer: self.buffer,
                host,
                layout: std::sync::OnceLock::new(),
            }),
        }
    }
}

/// `core` as libnrt's `int`: -1 for none.
pub(crate) fn core_arg(core: Option<u32>) -> Result<i32> {
    match core {
        None => Ok(-1),
        Some(c) => i32::try_from(c)
            .map_err(|_| Error::invalid("core", format!("core {c} is larger than libnrt accepts"))),
    }
}

impl Runtime {
    /// Allocates a tensor of `size` bytes (`nrt_tensor_allocate`).
    ///
    /// `core` is the NeuronCore for [`Placement::Device`] (required) and
    /// [`Placement::Virtual`]; for [`Placement::Host`] pass `None` (or a core as a
    /// locality hint). `name` labels the tensor in libnrt and in this crate's errors.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the library lacks `nrt_tensor_allocate` or
    /// `nrt_tensor_free`; [`Error::InvalidArgument`] for a device tensor without a core,
    /// a core above `i32::MAX` or a name with a NUL byte; [`Error::Nrt`] if libnrt fails (e.g.
    /// [`NrtStatus::Resource`](crate::NrtStatus::Resource) when the core's memory is full,
    /// [`NrtStatus::Invalid`](crate::NrtStatus::Invalid) for a core that does not exist);
    /// [`Error::Unsupported`] for [`Placement::Virtual`] on a runtime library >= 2.32.
    pub fn allocate_tensor(
        &self,
        placement: Placement,
        core: Option<u32>,
        size: usize,
        name: &str,
    ) -> Result<Tensor> {
        let lib = self.inner.lib();
        // Never create what could not be freed.
        raw::tensor::can_free(lib)?;
        if placement == Placement::Virtual
            && let Some(v) = self.inner.version()
            && v.at_least(VIRTUAL_REMOVED_IN.0, VIRTUAL_REMOVED_IN.1)
        {
            return Err(Error::Unsupported {
                feature: "VIRTUAL tensor placement",
                needed: Some(format!(
                    "a runtime library older than {}.{} (this one is {v}); allocate `{name}` as Placement::Host instead",
                    VIRTUAL_REMOVED_IN.0, VIRTUAL_REMOVED_IN.1
                )),
            });
        }
        if placement == Placement::Device && core.is_none() {
            return Err(Error::invalid(
                "core",
                format!("device tensor `{name}` needs a core, got None"),
            ));
        }
        let vnc = core_arg(core)?;
        let c_name = c_string("name", name)?;
        let raw =
            raw::tensor::allocate(lib, placement.as_raw(), vnc, size, &c_name).map_err(|e| {
                crate::diagnose::hints::alloc_error(self, e, placement, core, size, name)
            })?;
        Ok(NewTensor {
            rt: self,
            size,
            placement,
            core,
            name: name.to_owned(),
            parent: None,
            buffer: None,
        }
        .wrap(raw))
    }
}

impl Tensor {
    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Where the storage lives.
    pub fn placement(&self) -> Placement {
        self.inner.placement
    }

    /// The NeuronCore it was allocated on (`None` for host tensors allocated without one).
    pub fn core(&self) -> Option<u32> {
        self.inner.core
    }

    /// The runtime this tensor belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// The library this tensor's runtime calls.
    fn lib(&self) -> &'static nrt_sys::Library {
        self.inner.rt.inner.lib()
    }

    /// The raw libnrt handle (`nrt_tensor_t *`), for tools that identify a tensor by it
    /// (the simulator's per-tensor transfer counters,
    /// `neuron_rt::sim::SimControl::tensor_transfers`). Valid while this `Tensor` (or
    /// any clone) is alive; this crate frees it, never the caller.
    ///
    /// ```
    /// let runtime = neuron_rt::Runtime::builder().simulator().build()?;
    /// let t = runtime.allocate_tensor(neuron_rt::Placement::Device, Some(0), 16, "t")?;
    /// assert!(!t.as_raw().is_null());
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    pub fn as_raw(&self) -> *const sys::nrt_tensor_t {
        self.inner.raw.as_ptr()
    }

    /// The raw libnrt handle, valid while this `Tensor` (or any clone) is alive.
    pub(crate) fn raw(&self) -> *mut sys::nrt_tensor_t {
        self.inner.raw.as_ptr()
    }

    /// Another owner of the tensor, for sets and in-flight requests that must keep it alive.
    pub(crate) fn share(&self) -> Arc<TensorInner> {
        Arc::clone(&self.inner)
    }

    /// Holds the tensor's host-storage lock for `access` (see the type's docs); `None`
    /// (no lock, no cost) for device storage.
    pub(crate) fn lock_host(&self, access: Access) -> Option<HostGuard<'_>> {
        self.host_lock().map(|lock| HostGuard::lock(lock, access))
    }

    /// The host-storage lock of this tensor; `None` for device storage.
    pub(crate) fn host_lock(&self) -> Option<&HostLock> {
        self.inner.host.as_deref()
    }

    /// Another owner of the host-storage lock, for a request that holds it until it
    /// completed; `None` for device storage.
    pub(crate) fn host_lock_arc(&self) -> Option<Arc<HostLock>> {
        self.inner.host.clone()
    }

    /// [`Error::OutOfBounds`] unless `offset..offset + len` lies inside the tensor.
    pub(crate) fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(Error::OutOfBounds {
                tensor: self.name().to_owned(),
                offset,
                len,
                size: self.size(),
            }),
        }
    }

    /// Writes `data` at the start of the tensor (`nrt_tensor_write`).
    ///
    /// # Errors
    ///
    /// For a typed tensor ([`Tensor::dtype`]): [`Error::WrongElementType`] /
    /// [`Error::WrongLength`] unless `data` is exactly its elements. [`Error::OutOfBounds`]
    /// if `data` is larger than the tensor; [`Error::Nrt`] if libnrt fails.
    pub fn write<T: Element>(&self, data: &[T]) -> Result<()> {
        self.check_whole::<T>(data.len())?;
        self.write_at(0, data)
    }

    /// Writes `data` starting `offset` bytes into the tensor (`nrt_tensor_write`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the bytes do not fit; [`Error::Nrt`] if libnrt fails.
    pub fn write_at<T: Element>(&self, offset: usize, data: &[T]) -> Result<()> {
        let len = size_of_val(data);
        self.check_range(offset, len)?;
        let guard = self.lock_host(Access::Write);
        // SAFETY: the tensor is live (this handle); `data` is valid for reads of `len`
        // bytes for the whole call, and `offset + len` is inside the tensor (checked).
        // Host storage is locked exclusively (`guard`), so no other copy touches it.
        let result = unsafe {
            raw::tensor::write(
                self.lib(),
                self.raw(),
                data.as_ptr().cast::<c_void>(),
                offset,
                len,
            )
        };
        drop(guard);
        result.map_err(|e| {
            e.context(format!(
                "tensor `{}`, {len} bytes at offset {offset}",
                self.name()
            ))
        })
    }

    /// Fills `out` from the start of the tensor (`nrt_tensor_read`), with no extra copy.
    ///
    /// # Errors
    ///
    /// For a typed tensor ([`Tensor::dtype`]): [`Error::WrongElementType`] /
    /// [`Error::WrongLength`] unless `out` is exactly its elements. [`Error::OutOfBounds`]
    /// if `out` is larger than the tensor; [`Error::Nrt`] if libnrt fails.
    pub fn read<T: Element>(&self, out: &mut [T]) -> Result<()> {
        self.check_whole::<T>(out.len())?;
        self.read_at(0, out)
    }

    /// Fills `out` from the bytes starting `offset` bytes into the tensor (`nrt_tensor_read`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the bytes do not fit; [`Error::Nrt`] if libnrt fails.
    pub fn read_at<T: Element>(&self, offset: usize, out: &mut [T]) -> Result<()> {
        let len = size_of_val(out);
        self.check_range(offset, len)?;
        let guard = self.lock_host(Access::Read);
        // Why the call below is sound: the tensor is live; `out` is valid for writes of
        // `len` bytes for the whole call, and any bytes are a valid `T` (Element's sealed
        // contract), so whatever libnrt copies leaves `out` initialised and valid. Host
        // storage is locked shared (`guard`), so nothing writes it meanwhile.
        // SAFETY: the conditions just above hold for this call.
        let result = unsafe {
            raw::tensor::read(
                self.lib(),
                self.raw(),
                out.as_mut_ptr().cast::<c_void>(),
                offset,
                len,
            )
        };
        drop(guard);
        result.map_err(|e| {
            e.context(format!(
                "tensor `{}`, {len} bytes at offset {offset}",
                self.name()
            ))
        })
    }

    /// The whole tensor as elements of `T`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongElementType`] if the tensor is typed and `T` is not its element
    /// type; [`Error::InvalidArgument`] if the size is not a multiple of `T`'s size;
    /// [`Error::Nrt`] if libnrt fails.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let elem = size_of::<T>();
        self.check_whole::<T>(self.size() / elem.max(1))?;
        if !self.size().is_multiple_of(elem) {
            return Err(Error::invalid(
                "T",
                format!(
                    "tensor `{}` has {} bytes, not a multiple of the {elem}-byte element {}",
                    self.name(),
                    self.size(),
                    std::any::type_name::<T>()
                ),
            ));
        }
        let mut out = vec![T::default(); self.size() / elem];
        self.read(&mut out)?;
        Ok(out)
    }

    /// Copies all of `src` into this tensor (`nrt_tensor_copy`); both must have the same size.
    ///
    /// # Errors
    ///
    /// [`Error::SizeMismatch`] if the sizes differ; otherwise as [`Tensor::copy_range_from`].
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.size() != self.size() {
            return Err(Error::SizeMismatch {
                tensor: self.name().to_owned(),
                what: "copy destination",
                expected: src.size(),
                actual: self.size(),
            });
        }
        self.copy_range_from(src, 0, 0, src.size())
    }

    /// Copies `len` bytes from `src` at `src_offset` to this tensor at `dst_offset`
    /// (`nrt_tensor_copy`).
    ///
    /// # Errors
    ///
    /// [`Error::ForeignHandle`] if `src` belongs to another runtime;
    /// [`Error::WrongCore`] for two device tensors on different cores (libnrt copies
    /// device to device only within a core); [`Error::OutOfBounds`] if either range does
    /// not fit; [`Error::Nrt`] if libnrt fails.
    pub fn copy_range_from(
        &self,
        src: &Tensor,
        src_offset: usize,
        dst_offset: usize,
        len: usize,
    ) -> Result<()> {
        let rt = &self.inner.rt;
        rt.check_same(src.runtime(), || format!("tensor `{}`", src.name()))?;
        if let (Placement::Device, Placement::Device, Some(s), Some(d)) =
            (src.placement(), self.placement(), src.core(), self.core())
            && s != d
        {
            return Err(Error::WrongCore {
                tensor: src.name().to_owned(),
                tensor_core: s,
                what: format!("copy destination `{}`", self.name()),
                expected_core: d,
            });
        }
        src.check_range(src_offset, len)?;
        self.check_range(dst_offset, len)?;
        let guards = lock_host_storage([(src, Access::Read), (self, Access::Write)]);
        // SAFETY: both tensors are live handles of this runtime and both ranges are
        // inside their tensors (checked). Host storage is locked (`guards`): the source
        // shared, the destination exclusive (once, exclusive, if they share storage).
        let result = unsafe {
            raw::tensor::copy(
                rt.inner.lib(),
                src.raw(),
                src_offset,
                self.raw(),
                dst_offset,
                len,
            )
        };
        drop(guards);
        result.map_err(|e| {
            e.context(format!(
                "{len} bytes from `{}`+{src_offset} to `{}`+{dst_offset}",
                src.name(),
                self.name()
            ))
        })
    }

    /// Sets every byte of the tensor to `value` (`nrt_tensor_memset`).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn fill(&self, value: u8) -> Result<()> {
        self.fill_range(0, self.size(), value)
    }

    /// Sets `len` bytes starting at `offset` to `value` (`nrt_tensor_memset`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the range does not fit; [`Error::Nrt`] if libnrt fails.
    pub fn fill_range(&self, offset: usize, len: usize, value: u8) -> Result<()> {
        self.check_range(offset, len)?;
        let offset64 = u64::try_from(offset)
            .map_err(|_| Error::invalid("offset", format!("{offset} does not fit in 64 bits")))?;
        let guard = self.lock_host(Access::Write);
        // SAFETY: the tensor is live and the range is inside it (checked); host storage
        // is locked exclusively (`guard`).
        let result = unsafe { raw::tensor::memset(self.lib(), self.raw(), offset64, value, len) };
        drop(guard);
        result.map_err(|e| {
            e.context(format!(
                "tensor `{}`, {len} bytes at offset {offset} to {value:#04x}",
                self.name()
            ))
        })
    }

    /// A tensor viewing `len` bytes of this one starting at `offset`, without a copy
    /// (`nrt_tensor_allocate_slice`). The slice keeps this tensor alive.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::TENSOR_SLICE`];
    /// [`Error::OutOfBounds`] if the range does not fit; [`Error::InvalidArgument`] for a
    /// name with a NUL byte; [`Error::Nrt`] if libnrt fails.
    pub fn slice(&self, offset: usize, len: usize, name: &str) -> Result<Tensor> {
        let rt = &self.inner.rt;
        rt.require(Capabilities::TENSOR_SLICE, "tensor slices")?;
        raw::tensor::can_free(rt.inner.lib())?;
        self.check_range(offset, len)?;
        let c_name = c_string("name", name)?;
        // SAFETY: the source tensor is live and outlives the slice (which keeps it, below);
        // the range is inside it (checked).
        let raw = unsafe {
            raw::tensor::allocate_slice(rt.inner.lib(), self.raw(), offset, len, &c_name)
        }
        .map_err(|e| {
            e.context(format!(
                "{len} bytes at offset {offset} of `{}`",
                self.name()
            ))
        })?;
        Ok(NewTensor {
            rt,
            size: len,
            placement: self.placement(),
            core: self.core(),
            name: name.to_owned(),
            parent: Some(self.share()),
            buffer: None,
        }
        .wrap(raw))
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("placement", &self.inner.placement)
            .field("core", &self.inner.core)
            .finish()
    }
}

impl HostStorage for Tensor {
    fn storage_lock(&self) -> Option<&HostLock> {
        self.host_lock()
    }

    fn shared_storage_lock(&self) -> Option<Arc<HostLock>> {
        self.host_lock_arc()
    }

    fn storage_name(&self) -> &str {
        self.name()
    }
}
