//! Typed tensors: a tensor made for a model tensor ([`Model::allocate_inputs`](crate::Model::allocate_inputs),
//! [`Runtime::allocate_for`]) carries the model's element type and shape, and its
//! whole-tensor accesses check them.

use super::model::TensorInfo;
use super::runtime::Runtime;
use super::tensor::{Placement, Tensor};
use crate::dtype::short_type_name;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// A typed tensor's element type and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<u32>,
}

/// Whether elements of `T` may be stored in a tensor of `dtype`: the same dtype; `f32`
/// for [`DType::Fp32R`] (stored as 32-bit floats); `u8` for the 8-bit float types,
/// which have no Rust type.
pub(crate) fn accepts<T: Element>(dtype: DType) -> bool {
    T::DTYPE.is_some_and(|given| crate::dtype::stores(given, dtype))
}

impl Runtime {
    /// Allocates a tensor for the model tensor `info`: its size and name, and its element
    /// type and shape, which [`Tensor::write`], [`Tensor::read`] and [`Tensor::to_vec`]
    /// then check ([`Tensor::dtype`], [`Tensor::shape`]).
    ///
    /// ```
    /// use neuron_rt::{Error, Placement, Runtime};
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
    /// let model = runtime.load_model(&neff)?;
    /// let a = runtime.allocate_for(&model.inputs()[0], Placement::Device, model.core())?;
    /// assert_eq!(a.shape(), Some(&[2, 3][..]));
    /// let five = a.write(&[1.0f32; 5]).unwrap_err();
    /// assert!(matches!(five, Error::WrongLength { expected: 6, given: 5, .. }));
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Runtime::allocate_tensor`].
    pub fn allocate_for(
        &self,
        info: &TensorInfo,
        placement: Placement,
        core: Option<u32>,
    ) -> Result<Tensor> {
        let tensor = self.allocate_tensor(placement, core, info.size, &info.name)?;
        // A fresh tensor: the layout cannot be set yet.
        let _ = tensor.inner.layout.set(Layout {
            dtype: info.dtype,
            shape: info.shape.clone(),
        });
        Ok(tensor)
    }
}

impl Tensor {
    /// The element type of a tensor made for a model tensor; `None` for an untyped
    /// tensor ([`Runtime::allocate_tensor`], slices, tensors over buffers), whose
    /// accesses are only bounds-checked.
    pub fn dtype(&self) -> Option<DType> {
        self.inner.layout.get().map(|l| l.dtype)
    }

    /// The shape of a tensor made for a model tensor; `None` for an untyped tensor.
    pub fn shape(&self) -> Option<&[u32]> {
        self.inner.layout.get().map(|l| l.shape.as_slice())
    }

    /// Writes the whole tensor from raw bytes: `bytes` must be exactly its size; the
    /// element type is not checked (`nrt_tensor_write`).
    ///
    /// The byte path for tensors whose element type has no Rust type (fp8, which libnrt
    /// may report as `int8`), dtypes the library reports as unknown, and data that is
    /// already encoded. Typed data goes through [`Tensor::write`], which checks it.
    ///
    /// # Errors
    ///
    /// [`Error::SizeMismatch`] unless `bytes` is exactly the tensor's size;
    /// [`Error::Nrt`] if libnrt fails.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.check_byte_len(bytes.len())?;
        self.write_at(0, bytes)
    }

    /// Reads the whole tensor into `out`, which must be exactly its size; the element
    /// type is not checked (`nrt_tensor_read`). See [`Tensor::write_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::SizeMismatch`] unless `out` is exactly the tensor's size;
    /// [`Error::Nrt`] if libnrt fails.
    pub fn read_bytes(&self, out: &mut [u8]) -> Result<()> {
        self.check_byte_len(out.len())?;
        self.read_at(0, out)
    }

    /// The whole tensor's bytes, whatever its element type (see [`Tensor::write_bytes`]).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.size()];
        self.read_at(0, &mut out)?;
        Ok(out)
    }

    fn check_byte_len(&self, len: usize) -> Result<()> {
        if len == self.size() {
            return Ok(());
        }
        Err(Error::SizeMismatch {
            tensor: self.name().to_owned(),
            what: "whole-tensor byte access",
            expected: self.size(),
            actual: len,
        })
    }

    /// For a typed tensor: [`Error::WrongElementType`] unless
    /// `T` fits its dtype, [`Error::WrongLength`] unless `len` elements fill it exactly.
    pub(crate) fn check_whole<T: Element>(&self, len: usize) -> Result<()> {
        let Some(layout) = self.inner.layout.get() else {
            return Ok(());
        };
        // Unknown dtypes take no typed values: their bytes go through `write_bytes`.
        let elem = layout.dtype.size_in_bytes().unwrap_or(1);
        if !accepts::<T>(layout.dtype) {
            return Err(Error::WrongElementType {
                tensor: self.name().to_owned(),
                expected: layout.dtype,
                given: short_type_name::<T>(),
            });
        }
        let expected = self.size() / elem;
        if len != expected {
            return Err(Error::WrongLength {
                tensor: self.name().to_owned(),
                expected,
                given: len,
            });
        }
        Ok(())
    }
}
