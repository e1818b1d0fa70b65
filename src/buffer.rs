//! Tensors over caller-owned host buffers: [`Runtime::tensor_from_buffer`] and
//! [`Tensor::into_buffer`].

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use crate::runtime::{c_string, nrt_fn};
use crate::tensor::NewTensor;
use crate::{Capabilities, Error, Placement, Result, Runtime, Tensor};

/// Host memory handed to libnrt with `nrt_tensor_attach_buffer`. Held as a raw pointer
/// (not a `Box`) because libnrt and the device write through it while attached.
pub(crate) struct AttachedBuffer {
    ptr: *mut [u8],
}

impl AttachedBuffer {
    fn new(buffer: Vec<u8>) -> AttachedBuffer {
        AttachedBuffer {
            ptr: Box::into_raw(buffer.into_boxed_slice()),
        }
    }

    fn data_ptr(&self) -> *mut u8 {
        self.ptr.cast()
    }

    fn into_vec(self) -> Vec<u8> {
        let ptr = self.ptr;
        std::mem::forget(self);
        // SAFETY: `ptr` came from `Box::into_raw` in `new` and was not freed (this
        // value's Drop does that, and it was forgotten just above).
        unsafe { Box::from_raw(ptr) }.into_vec()
    }
}

impl Drop for AttachedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::into_raw` in `new`; the tensor using it has been
        // freed (TensorInner::drop runs before its fields drop).
        drop(unsafe { Box::from_raw(self.ptr) });
    }
}

impl Runtime {
    /// A host tensor over `buffer`, which the tensor then owns
    /// (`nrt_tensor_allocate_empty` + `nrt_tensor_attach_buffer`). The buffer is
    /// freed with the tensor, or handed back by [`Tensor::into_buffer`].
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::TENSOR_ATTACH`] or
    /// `nrt_tensor_free`; [`Error::InvalidArgument`] for an empty buffer or a name with a NUL byte;
    /// [`Error::Nrt`] if libnrt fails.
    pub fn tensor_from_buffer(&self, buffer: Vec<u8>, name: &str) -> Result<Tensor> {
        self.require(Capabilities::TENSOR_ATTACH, "tensors over host buffers")?;
        let allocate_empty = nrt_fn!(self.inner, nrt_tensor_allocate_empty);
        let attach = nrt_fn!(self.inner, nrt_tensor_attach_buffer);
        // Without it the libnrt tensor would outlive the buffer it points to (the buffer
        // goes with the handle).
        nrt_fn!(self.inner, nrt_tensor_free);
        let c_name = c_string("name", name)?;
        let size = buffer.len();
        if size == 0 {
            // libnrt has no storage to attach for zero bytes and refuses it.
            return Err(Error::invalid(
                "buffer",
                format!("tensor `{name}` needs at least 1 byte, got an empty buffer"),
            ));
        }
        let buffer = AttachedBuffer::new(buffer);
        let mut raw = ptr::null_mut();
        // SAFETY: `c_name` is NUL-terminated and outlives the call; `raw` is a valid
        // out-pointer.
        let status = unsafe { allocate_empty(c_name.as_ptr(), &mut raw) };
        self.inner.check("nrt_tensor_allocate_empty", status, || {
            format!("tensor `{name}`")
        })?;
        // Wrapped before attaching, so that a failed attach still frees the tensor.
        let tensor = NewTensor {
            rt: self,
            size,
            placement: Placement::Host,
            core: None,
            name: name.to_owned(),
            parent: None,
            buffer: Some(buffer),
        }
        .wrap("nrt_tensor_allocate_empty", raw)?;
        let inner = &tensor.inner;
        let data = inner
            .buffer
            .as_ref()
            .map_or(ptr::null_mut(), |b| b.data_ptr());
        // SAFETY: `data` points to `size` bytes that the tensor owns and frees only after
        // nrt_tensor_free (AttachedBuffer drops after TensorInner::drop), so the buffer
        // outlives its use by libnrt. Nothing in Rust references those bytes meanwhile.
        let status = unsafe { attach(tensor.raw(), data.cast::<c_void>(), size) };
        self.inner.check("nrt_tensor_attach_buffer", status, || {
            format!("tensor `{name}`, {size} bytes")
        })?;
        Ok(tensor)
    }
}

impl Tensor {
    /// Frees the tensor and returns the buffer it was created over
    /// ([`Runtime::tensor_from_buffer`]), with the data libnrt or the device left in it.
    ///
    /// On error the handle is dropped like any other: the tensor (and its buffer) are
    /// freed when the last holder lets go.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the tensor was not created over a buffer;
    /// [`Error::InUse`] if another handle (a clone, a tensor set, a slice) still holds it.
    pub fn into_buffer(self) -> Result<Vec<u8>> {
        if self.inner.buffer.is_none() {
            return Err(Error::invalid(
                "self",
                format!("tensor `{}` does not own a host buffer", self.name()),
            ));
        }
        let users = Arc::strong_count(&self.inner) - 1;
        let name = self.name().to_owned();
        let mut inner = Arc::try_unwrap(self.inner).map_err(|_| Error::InUse {
            what: format!("tensor `{name}`"),
            users,
        })?;
        match inner.buffer.take() {
            Some(buffer) => {
                // Frees the libnrt tensor (TensorInner::drop) before the buffer is handed out.
                drop(inner);
                Ok(buffer.into_vec())
            }
            None => Err(Error::invalid(
                "self",
                format!("tensor `{name}` does not own a host buffer"),
            )),
        }
    }
}
