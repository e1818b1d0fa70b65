//! Input mistakes through `run` / `infer`: [`InputMismatch`] (with [`GivenInput`], what
//! was given) and [`MissingInput`], carried by [`Error::InputMismatch`](super::Error::InputMismatch)
//! and [`Error::MissingInput`](super::Error::MissingInput).

use std::fmt;

use crate::dtype::DType;

/// What was given for a model input, in an [`Error::InputMismatch`](super::Error::InputMismatch)
/// (the part that does not fit the input).
///
/// `Display` gives `got ...`: `got 127 elements`, `got i64 values`, `got values of shape
/// [3, 2]`, `got 20 bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GivenInput {
    /// Elements of a fitting type, but another number of them.
    Elements(usize),
    /// Elements of a Rust type that the input's dtype does not hold (its name, e.g.
    /// `"i64"`), or typed values for an input of unknown dtype (give bytes then).
    ElementType(&'static str),
    /// Values with another shape than the input's.
    Shape(Vec<usize>),
    /// Raw bytes ([`Input::bytes`](crate::Input::bytes)) of another length than the
    /// input's size.
    Bytes(usize),
}

impl fmt::Display for GivenInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GivenInput::Elements(1) => f.write_str("got 1 element"),
            GivenInput::Elements(n) => write!(f, "got {n} elements"),
            GivenInput::ElementType(name) => write!(f, "got {name} values"),
            GivenInput::Shape(shape) => write!(f, "got values of shape {shape:?}"),
            GivenInput::Bytes(n) => write!(f, "got {n} bytes"),
        }
    }
}

/// A value given for a model input that does not fit it (in
/// [`Error::InputMismatch`](super::Error::InputMismatch)).
///
/// Display: `model `bert`: input `input_ids` expects i32 [1, 128] (128 elements), got 127
/// elements` (bytes: `expects f32 [2, 3] (24 bytes), got 20 bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputMismatch {
    /// The model (its load label).
    pub model: String,
    /// The model input's name.
    pub input: String,
    /// The input's element type.
    pub dtype: DType,
    /// The input's shape.
    pub shape: Vec<u32>,
    /// The input's size, in bytes.
    pub size: usize,
    /// What was given that does not fit.
    pub given: GivenInput,
}

impl fmt::Display for InputMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "model `{}`: input `{}` expects {}, {}",
            self.model,
            self.input,
            expectation(self.dtype, &self.shape, self.size, &self.given),
            self.given
        )
    }
}

/// A model input left out of the inputs given (in
/// [`Error::MissingInput`](super::Error::MissingInput)).
///
/// Display: `model `add`: input `b` (f32 [2, 3]) is not given (given: a)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingInput {
    /// The model (its load label).
    pub model: String,
    /// The input left out.
    pub input: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u32>,
    /// The names that were given, in their order.
    pub given: Vec<String>,
}

impl fmt::Display for MissingInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "model `{}`: input `{}` ({} {:?}) is not given (given: {})",
            self.model,
            self.input,
            self.dtype,
            self.shape,
            names(&self.given)
        )
    }
}

/// What a model input expects, e.g. `i32 [1, 128] (128 elements)`: its dtype, shape
/// and its number of elements, or its size in bytes when `given` is bytes or the dtype
/// has no element size.
fn expectation(dtype: DType, shape: &[u32], size: usize, given: &GivenInput) -> String {
    match dtype.size_in_bytes() {
        Some(elem) if elem > 0 && !matches!(given, GivenInput::Bytes(_)) => {
            let n = size / elem;
            let plural = if n == 1 { "" } else { "s" };
            format!("{dtype} {shape:?} ({n} element{plural})")
        }
        _ => format!("{dtype} {shape:?} ({size} bytes)"),
    }
}

/// The names given, for a message: `a, b`, or `none` for no name.
fn names(given: &[String]) -> String {
    if given.is_empty() {
        "none".to_owned()
    } else {
        given.join(", ")
    }
}
