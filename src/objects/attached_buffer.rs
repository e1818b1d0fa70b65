//! [`AttachedBuffer`]: the host memory of a tensor made over a caller's buffer
//! ([`Runtime::tensor_from_buffer`](crate::Runtime::tensor_from_buffer)), owned by the
//! tensor and freed after it.

/// Host memory handed to libnrt with `nrt_tensor_attach_buffer`. Held as a raw pointer
/// (not a `Box`) because libnrt and the device write through it while attached.
pub(crate) struct AttachedBuffer {
    ptr: *mut [u8],
}

impl AttachedBuffer {
    pub(crate) fn new(buffer: Vec<u8>) -> AttachedBuffer {
        AttachedBuffer {
            ptr: Box::into_raw(buffer.into_boxed_slice()),
        }
    }

    pub(crate) fn data_ptr(&self) -> *mut u8 {
        self.ptr.cast()
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
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
