//! Tensors over caller-owned host buffers: [`Runtime::tensor_from_buffer`] and
//! [`Tensor::into_buffer`].

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use super::attached_buffer::AttachedBuffer;
use super::capabilities::Capabilities;
use super::runtime::Runtime;
use super::runtime::c_string;
use super::tensor::NewTensor;
use super::tensor::{Placement, Tensor};
use crate::error::{Error, Result};
use crate::raw;

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
        let lib = self.inner.lib();
        // Without nrt_tensor_free the libnrt tensor would outlive the buffer it points to
        // (the buffer goes with the handle).
        raw::tensor::can_free(lib)?;
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
        let raw = raw::tensor::allocate_empty(lib, &c_name)
            .map_err(|e| e.context(format!("tensor `{name}`")))?;
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
        .wrap(raw);
        let inner = &tensor.inner;
        let data = inner
            .buffer
            .as_ref()
            .map_or(ptr::null_mut(), |b| b.data_ptr());
        // SAFETY: `data` points to `size` bytes that the tensor owns and frees only after
        // nrt_tensor_free (AttachedBuffer drops after TensorInner::drop), so the buffer
        // outlives its use by libnrt. Nothing in Rust references those bytes meanwhile.
        unsafe { raw::tensor::attach_buffer(lib, tensor.raw(), data.cast::<c_void>(), size) }
            .map_err(|e| e.context(format!("tensor `{name}`, {size} bytes")))?;
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
