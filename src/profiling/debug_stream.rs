//! [`DebugStream`]: a core's debug event stream (`nrt_debug_client_*`), and
//! [`Tensor::dmabuf_fd`] (`nrt_get_dmabuf_fd`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nrt_sys as sys;

use crate::error::{Error, Result};
use crate::objects::{Capabilities, Placement, Runtime, Tensor};
use crate::raw;

/// One debug event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DebugEvent {
    /// A tensor read reported by the core (`NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ`).
    TensorRead {
        /// What the event is about (the payload's `prefix` text).
        prefix: String,
        /// The logical core.
        core: u32,
        /// The payload's `pipe`.
        pipe: u32,
        /// The element type as text.
        dtype: String,
        /// The shape (trailing zero dimensions left out).
        shape: Vec<u64>,
        /// The tensor's bytes.
        data: Vec<u8>,
    },
    /// An event of another type, with its raw payload.
    Other {
        /// The header's `type`.
        event_type: u32,
        /// The payload bytes.
        payload: Vec<u8>,
    },
}

fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl DebugEvent {
    /// Decodes a payload of type `ty` (a tensor read shorter than its header, or whose
    /// data size does not fit, is returned as [`DebugEvent::Other`]).
    fn decode(ty: u32, payload: Vec<u8>) -> DebugEvent {
        use std::mem::offset_of;
        type P = sys::ndebug_stream_payload_debug_tensor_read_t;
        let head = offset_of!(P, tensor_data);
        if ty != sys::NDEBUG_STREAM_EVENT_TYPE_DEBUG_TENSOR_READ || payload.len() < head {
            return DebugEvent::Other {
                event_type: ty,
                payload,
            };
        }
        let u32_at = |at: usize| u32::from_ne_bytes(payload[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_ne_bytes(payload[at..at + 8].try_into().unwrap());
        let size = u64_at(offset_of!(P, tensor_data_size));
        let Some(end) = usize::try_from(size).ok().and_then(|s| head.checked_add(s)) else {
            return DebugEvent::Other {
                event_type: ty,
                payload,
            };
        };
        if end > payload.len() {
            return DebugEvent::Other {
                event_type: ty,
                payload,
            };
        }
        let shape_at = offset_of!(P, tensor_shape);
        let mut shape: Vec<u64> = (0..8).map(|i| u64_at(shape_at + 8 * i)).collect();
        while shape.last() == Some(&0) {
            shape.pop();
        }
        let prefix_at = offset_of!(P, prefix);
        let dtype_at = offset_of!(P, tensor_dtype);
        DebugEvent::TensorRead {
            prefix: c_text(&payload[prefix_at..prefix_at + 512]),
            core: u32_at(offset_of!(P, logical_nc_id)),
            pipe: u32_at(offset_of!(P, pipe)),
            dtype: c_text(&payload[dtype_at..dtype_at + 16]),
            shape,
            data: payload[head..end].to_vec(),
        }
    }
}

/// The one client of a core's debug stream, disconnected on drop.
///
/// Its descriptor ([`AsFd`]) polls readable when an event waits: wait for it with
/// `poll`/`epoll` or an async reactor, then [`DebugStream::read_event`]. Events emitted
/// before the connection are not delivered.
///
#[cfg_attr(feature = "sim", doc = "```")]
#[cfg_attr(not(feature = "sim"), doc = "```ignore")]
/// use neuron_rt::{DebugEvent, Placement, Runtime};
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let mut stream = runtime.debug_stream(0)?;
/// let t = runtime.allocate_tensor(Placement::Device, Some(0), 4, "probe")?;
/// t.write(&[1u8, 2, 3, 4])?;
/// let mut back = [0u8; 4];
/// t.read(&mut back)?; // the simulator reports device tensor reads
/// match stream.read_event()? {
///     Some(DebugEvent::TensorRead { prefix, data, .. }) => {
///         assert_eq!((prefix.as_str(), &data[..]), ("probe", &[1, 2, 3, 4][..]))
///     }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(stream.read_event()?, None);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct DebugStream {
    runtime: Runtime,
    fd: RawFd,
    core: u32,
}

impl Runtime {
    /// Connects to core `core`'s debug stream (one client per core).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::DEBUG_STREAM`];
    /// [`Error::InvalidArgument`] for a core index past `i32::MAX`; [`Error::Nrt`] when
    /// libnrt refuses (the core has a client, or is not visible).
    pub fn debug_stream(&self, core: u32) -> Result<DebugStream> {
        self.require(Capabilities::DEBUG_STREAM, "nrt_debug_client_connect")?;
        let lib = self.inner.lib();
        raw::debug::can_stream(lib)?;
        let index = i32::try_from(core)
            .map_err(|_| Error::invalid("core", format!("{core} is not a core index")))?;
        let fd = raw::debug::connect(lib, index).map_err(|e| e.context(format!("core {core}")))?;
        Ok(DebugStream {
            runtime: self.clone(),
            fd,
            core,
        })
    }
}

impl DebugStream {
    /// The core this stream reports.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// Takes the oldest waiting event; `None` when libnrt reports none waiting
    /// (`NRT_QUEUE_EMPTY`, as the simulator does). Whether libnrt's call blocks when the
    /// stream is empty is not documented: wait for the descriptor to poll readable first.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn read_event(&mut self) -> Result<Option<DebugEvent>> {
        // SAFETY: `fd` is this stream's live descriptor, and `&mut self` keeps other
        // threads off it for the call.
        let event = unsafe { raw::debug::read_one(self.runtime.inner.lib(), self.fd) }?;
        Ok(event.map(|(ty, payload)| DebugEvent::decode(ty, payload)))
    }
}

impl AsFd for DebugStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open until this stream is dropped.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl AsRawFd for DebugStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for DebugStream {
    fn drop(&mut self) {
        // SAFETY: the descriptor came from connect and is closed once, here.
        unsafe { raw::debug::close(self.runtime.inner.lib(), self.fd) };
    }
}

impl Tensor {
    /// A dma-buf file descriptor over this device tensor's memory (`nrt_get_dmabuf_fd`),
    /// for zero-copy peers (EFA, other devices); closed when the `OwnedFd` drops.
    ///
    /// The address passed is the tensor's virtual address (`nrt_tensor_get_va`) or,
    /// when libnrt gives none (the simulator), its device allocation address. On the
    /// simulator the descriptor is a memfd holding a copy of the bytes at the call.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::DMABUF`];
    /// [`Error::InvalidArgument`] for a tensor in host memory; [`Error::Nrt`] when
    /// libnrt refuses (e.g. memory not registered for export).
    pub fn dmabuf_fd(&self) -> Result<OwnedFd> {
        let rt = self.runtime();
        rt.require(Capabilities::DMABUF, "nrt_get_dmabuf_fd")?;
        if self.placement() != Placement::Device {
            return Err(Error::invalid(
                "tensor",
                format!(
                    "tensor `{}` is in host memory ({:?}); only device memory is exported",
                    self.name(),
                    self.placement()
                ),
            ));
        }
        let lib = rt.inner.lib();
        // SAFETY: the tensor is live while `self` is.
        let va = unsafe { raw::memory::tensor_va(lib, self.raw()) }.unwrap_or(None);
        let va = match va {
            Some(va) => va,
            // SAFETY: as above.
            None => unsafe { raw::memory::allocation_info(lib, self.raw()) }?.physical_address,
        };
        raw::memory::dmabuf_fd(lib, va, self.size() as u64)
            .map_err(|e| e.context(format!("tensor `{}`", self.name())))
    }
}
