//! `ndarray` arrays in and out (feature `ndarray`).

use std::borrow::Cow;

use ndarray::{ArrayBase, ArrayD, ArrayViewD, Data, Dimension, IxDyn};

use super::{Input, Kind, Output};
use crate::dtype::Element;
use crate::error::{Error, Result};

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<'a, T: Element, S: Data<Elem = T>, D: Dimension> From<&'a ArrayBase<S, D>> for Input<'a> {
    /// The array's elements in logical (row-major) order, with its shape (checked
    /// against the model input's): borrowed when the array is contiguous in that
    /// order, copied otherwise.
    fn from(array: &'a ArrayBase<S, D>) -> Input<'a> {
        let bytes = match array.as_slice() {
            Some(values) => Cow::Borrowed(crate::dtype::bytes_of(values)),
            None => Cow::Owned(
                crate::dtype::bytes_of(&array.iter().copied().collect::<Vec<T>>()).to_vec(),
            ),
        };
        Input {
            bytes,
            kind: Kind::typed::<T>(),
            shape: Some(array.shape().to_vec()),
        }
    }
}

impl Output {
    fn dims(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }

    /// The output as an array view of its shape, without a copy (feature `ndarray`).
    ///
    /// # Errors
    ///
    /// As [`Output::as_slice`]; [`Error::UnexpectedResult`] if the shape's element
    /// count does not match the output's size.
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        let values = self.as_slice::<T>()?;
        ArrayViewD::from_shape(IxDyn(&self.dims()), values).map_err(|e| self.bad_shape(e))
    }

    /// The output as an owned array of its shape.
    ///
    /// # Errors
    ///
    /// As [`Output::view`].
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>> {
        self.view().map(|v| v.to_owned())
    }

    fn bad_shape(&self, e: ndarray::ShapeError) -> Error {
        Error::UnexpectedResult {
            function: "nrt_get_model_tensor_info",
            reason: format!(
                "output `{}` has shape {:?} but {} bytes of {}: {e}",
                self.name, self.shape, self.len, self.dtype
            ),
        }
    }
}
