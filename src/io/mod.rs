//! Host data for a model's inputs and outputs of any element type: [`Input`] (host values
//! for one model input, typed or raw bytes, borrowed or owned) and [`Output`] /
//! [`Outputs`] (what an execution produced, with its dtype and shape, read as the element
//! type the caller asks for).
//!
//! Real models mix element types (`i64` token ids, an `f32` or `bf16` mask, `bf16`
//! outputs): [`Model::run`](crate::Model::run) takes one [`Input`] per model input, each
//! of its own type, checked against the model's dtype, length and (when given) shape.
//!
//! Beside them: `batch` ([`ReadBatch`] / [`WriteBatch`]: many tensor ranges moved in one
//! libnrt call) and `run` ([`Model::run`](crate::Model::run) with host data and
//! [`BenchmarkStats`]).

pub(crate) mod batch;
mod format;
pub(crate) mod run;

use std::borrow::Cow;
use std::fmt;

use crate::dtype::{DType, Element};
use crate::dtype::{short_type_name, stores};
use crate::error::{Error, GivenInput, InputMismatch, Result};
use crate::objects::{Tensor, TensorInfo};

/// Host values for one model input: typed elements (checked against the input's dtype)
/// or raw bytes (only their length is checked).
///
/// Made from a slice, array, `Vec` or (feature `ndarray`) array of any [`Element`]
/// type with `From`, or with [`Input::bytes`] for element types that have no Rust type
/// (fp8, dtypes the library reports as unknown) and for callers that hold encoded bytes.
/// The [`inputs!`](crate::inputs) macro builds the `(name, Input)` list
/// [`Model::run`](crate::Model::run) takes.
///
/// ```
/// use neuron_rt::{DType, Input};
///
/// let ids = [101i64, 2023, 102];
/// let mask = vec![1.0f32; 3];
/// assert_eq!(Input::from(&ids).dtype(), Some(DType::I64));
/// assert_eq!(Input::from(&mask).len_bytes(), 12);
/// let fp8 = Input::bytes(&[0x38, 0x40, 0x44]); // e.g. an fp8 tensor, already encoded
/// assert_eq!(fp8.dtype(), None);
/// ```
#[derive(Clone)]
pub struct Input<'a> {
    bytes: Cow<'a, [u8]>,
    kind: Kind,
    shape: Option<Vec<usize>>,
}

/// What an [`Input`]'s bytes are.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Elements of a Rust type: its dtype (`None` for types libnrt has none for, `f64`)
    /// and its name for errors.
    Typed {
        dtype: Option<DType>,
        type_name: &'static str,
        elem_size: usize,
    },
    /// Bytes the caller vouches for.
    Bytes,
}

impl<'a> Input<'a> {
    /// Raw bytes for an input of any dtype: only their length is checked against the
    /// model input's size, never their element type.
    ///
    /// For fp8 tensors (which libnrt may report as `int8`), dtypes the library reports as
    /// unknown, and data that is already encoded (e.g. `bf16` from a file).
    pub fn bytes(bytes: &'a [u8]) -> Input<'a> {
        Input {
            bytes: Cow::Borrowed(bytes),
            kind: Kind::Bytes,
            shape: None,
        }
    }

    /// Owned raw bytes, as [`Input::bytes`].
    pub fn from_bytes(bytes: Vec<u8>) -> Input<'static> {
        Input {
            bytes: Cow::Owned(bytes),
            kind: Kind::Bytes,
            shape: None,
        }
    }

    /// Elements of `T` (copied into an owned buffer), as `From<&[T]>` but `'static`.
    pub fn from_vec<T: Element>(values: Vec<T>) -> Input<'static> {
        Input {
            bytes: Cow::Owned(crate::dtype::bytes_of(&values).to_vec()),
            kind: Kind::typed::<T>(),
            shape: None,
        }
    }

    /// The same values with a shape that [`Model::run`](crate::Model::run) checks against
    /// the model input's shape ([`Error::WrongShape`] when they differ). Without one, only
    /// the element count is checked. Inputs made from `ndarray` arrays carry theirs.
    #[must_use]
    pub fn with_shape(mut self, shape: &[usize]) -> Input<'a> {
        self.shape = Some(shape.to_vec());
        self
    }

    /// The dtype of the elements, `None` for raw bytes ([`Input::bytes`]) and for Rust
    /// types libnrt has no dtype for.
    pub fn dtype(&self) -> Option<DType> {
        match self.kind {
            Kind::Typed { dtype, .. } => dtype,
            Kind::Bytes => None,
        }
    }

    /// The shape given with [`Input::with_shape`] (or an `ndarray` array's), if any.
    pub fn shape(&self) -> Option<&[usize]> {
        self.shape.as_deref()
    }

    /// The values' size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The values as bytes, as they will be written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks these values against the model input `info`: element type (typed values
    /// only), shape (when given) and size.
    ///
    /// # Errors
    ///
    /// [`Error::WrongElementType`] for typed values of another element type than the
    /// input's (or any typed values for an input of unknown dtype: use
    /// [`Input::bytes`]); [`Error::WrongShape`] for a shape other than the input's;
    /// [`Error::WrongLength`] (typed) or [`Error::SizeMismatch`] (bytes) for another
    /// size.
    pub fn check(&self, info: &TensorInfo) -> Result<()> {
        let Some(given) = self.mismatch(info) else {
            return Ok(());
        };
        Err(match given {
            GivenInput::ElementType(given) => Error::WrongElementType {
                tensor: info.name.clone(),
                expected: info.dtype,
                given,
            },
            GivenInput::Shape(given) => Error::WrongShape {
                tensor: info.name.clone(),
                expected: info.shape.clone(),
                given,
            },
            GivenInput::Elements(given) => Error::WrongLength {
                tensor: info.name.clone(),
                expected: info.size / self.elem_size(),
                given,
            },
            GivenInput::Bytes(actual) => Error::SizeMismatch {
                tensor: info.name.clone(),
                what: "model input",
                expected: info.size,
                actual,
            },
        })
    }

    /// [`Input::check`] for an input of model `model`: an [`Error::InputMismatch`]
    /// naming the model, the input, its dtype, shape and size, and what was given.
    pub(crate) fn check_for(&self, model: &str, info: &TensorInfo) -> Result<()> {
        match self.mismatch(info) {
            None => Ok(()),
            Some(given) => Err(Error::InputMismatch(Box::new(InputMismatch {
                model: model.to_owned(),
                input: info.name.clone(),
                dtype: info.dtype,
                shape: info.shape.clone(),
                size: info.size,
                given,
            }))),
        }
    }

    /// What does not fit the model input `info` (element type, then shape, then size),
    /// `None` when the values fit.
    fn mismatch(&self, info: &TensorInfo) -> Option<GivenInput> {
        if let Kind::Typed {
            dtype, type_name, ..
        } = self.kind
            && !dtype.is_some_and(|given| stores(given, info.dtype))
        {
            return Some(GivenInput::ElementType(type_name));
        }
        if let Some(shape) = &self.shape
            && !same_shape(shape, &info.shape)
        {
            return Some(GivenInput::Shape(shape.clone()));
        }
        if self.bytes.len() != info.size {
            return Some(match self.kind {
                Kind::Typed { .. } => GivenInput::Elements(self.bytes.len() / self.elem_size()),
                Kind::Bytes => GivenInput::Bytes(self.bytes.len()),
            });
        }
        None
    }

    /// The size of one element: the Rust type's for typed values, 1 for bytes.
    fn elem_size(&self) -> usize {
        match self.kind {
            Kind::Typed { elem_size, .. } => elem_size.max(1),
            Kind::Bytes => 1,
        }
    }

    /// Writes the values to the start of `tensor` (after [`Input::check`] against its
    /// model tensor).
    pub(crate) fn write_to(&self, tensor: &Tensor) -> Result<()> {
        tensor.write_at(0, &self.bytes[..])
    }
}

impl Kind {
    fn typed<T: Element>() -> Kind {
        Kind::Typed {
            dtype: T::DTYPE,
            type_name: short_type_name::<T>(),
            elem_size: size_of::<T>(),
        }
    }
}

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Input");
        match self.kind {
            Kind::Typed { type_name, .. } => d.field("type", &type_name),
            Kind::Bytes => d.field("type", &"bytes"),
        };
        d.field("len_bytes", &self.bytes.len())
            .field("shape", &self.shape)
            .finish()
    }
}

impl<'a, T: Element> From<&'a [T]> for Input<'a> {
    fn from(values: &'a [T]) -> Input<'a> {
        Input {
            bytes: Cow::Borrowed(crate::dtype::bytes_of(values)),
            kind: Kind::typed::<T>(),
            shape: None,
        }
    }
}

impl<'a, T: Element> From<&'a Vec<T>> for Input<'a> {
    fn from(values: &'a Vec<T>) -> Input<'a> {
        Input::from(values.as_slice())
    }
}

impl<'a, T: Element, const N: usize> From<&'a [T; N]> for Input<'a> {
    fn from(values: &'a [T; N]) -> Input<'a> {
        Input::from(values.as_slice())
    }
}

impl<T: Element> From<Vec<T>> for Input<'static> {
    fn from(values: Vec<T>) -> Input<'static> {
        Input::from_vec(values)
    }
}

fn same_shape(given: &[usize], model: &[u32]) -> bool {
    given.len() == model.len()
        && given
            .iter()
            .zip(model)
            .all(|(&g, &m)| u32::try_from(g) == Ok(m))
}

/// One output of an execution: its name, dtype and shape as the model declares them, and
/// its bytes, readable as the element type the caller asks for.
///
/// ```
/// use neuron_rt::{DType, Runtime, inputs};
/// use neuron_rt::sim::ModelBuilder;
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let model = runtime.load_model(&ModelBuilder::add_example(&[2, 3]).build().unwrap())?;
/// let outputs = model.run(&inputs!["a" => &[1.0f32; 6], "b" => &[2.0f32; 6]])?;
/// let out = &outputs["out"];
/// assert_eq!((out.dtype(), out.shape()), (DType::F32, &[2, 3][..]));
/// assert_eq!(out.as_slice::<f32>()?, [3.0; 6]);
/// assert!(out.as_slice::<i32>().is_err()); // stored as f32: asked i32
/// println!("{out}"); // out [2, 3] f32 = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Output {
    name: String,
    dtype: DType,
    shape: Vec<u32>,
    /// The bytes, in 8-byte words so that a view as any element type is aligned.
    words: Vec<u64>,
    len: usize,
}

impl Output {
    /// Reads the whole of `tensor`, bound as the model output `info`.
    pub(crate) fn read_from(tensor: &Tensor, info: &TensorInfo) -> Result<Output> {
        let mut output = Output::zeroed(info);
        tensor.read_at(0, output.bytes_mut())?;
        Ok(output)
    }

    /// An output for `info` with every byte zero, to be filled.
    pub(crate) fn zeroed(info: &TensorInfo) -> Output {
        Output {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            words: vec![0; info.size.div_ceil(8)],
            len: info.size,
        }
    }

    /// An output for `info` holding `words`, which the device filled (at least
    /// `info.size` bytes; an async read into 8-byte words needs no copy).
    pub(crate) fn from_words(info: &TensorInfo, words: Vec<u64>) -> Output {
        debug_assert!(words.len() * 8 >= info.size);
        Output {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            len: info.size.min(words.len() * 8),
            words,
        }
    }

    /// The model's name for this output.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element type the model declares (may be [`DType::Unknown`]: read such an
    /// output with [`Output::bytes`]).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions the model declares.
    pub fn shape(&self) -> &[u32] {
        &self.shape
    }

    /// The output's bytes, as the device wrote them (little-endian elements).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes (`div_ceil(len, 8)`
        // words); u8 has no alignment or validity requirement; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; every byte pattern is a valid u64, and the slice borrows
        // `self` mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// The elements as `T`, without a copy.
    ///
    /// # Errors
    ///
    /// [`Error::WrongElementType`] (naming the output, its dtype and `T`) unless `T` is
    /// the output's element type (`f32` also reads [`DType::Fp32R`], `u8` the fp8 types);
    /// an output of unknown dtype is only readable by [`Output::bytes`].
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        if !T::DTYPE.is_some_and(|given| stores(given, self.dtype))
            || !self.len.is_multiple_of(size_of::<T>())
        {
            return Err(Error::WrongElementType {
                tensor: self.name.clone(),
                expected: self.dtype,
                given: short_type_name::<T>(),
            });
        }
        let (data, len) = (self.words.as_ptr().cast::<T>(), self.len / size_of::<T>());
        // SAFETY: `words` is 8-byte aligned, which satisfies every `Element` type's
        // alignment (at most 8); it holds `len` initialised bytes, a whole number of
        // `T`s (checked); every bit pattern is a valid `T` (the `Element` contract). The
        // slice borrows `self`.
        let values = unsafe { std::slice::from_raw_parts(data, len) };
        Ok(values)
    }

    /// The elements as a `Vec<T>` (a copy of [`Output::as_slice`]).
    ///
    /// # Errors
    ///
    /// As [`Output::as_slice`].
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.as_slice().map(<[T]>::to_vec)
    }

    /// The output's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes().to_vec()
    }

    /// The number of elements, `None` when the dtype's size is unknown.
    pub fn element_count(&self) -> Option<usize> {
        Some(self.len / self.dtype.size_in_bytes()?)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("len_bytes", &self.len)
            .finish()
    }
}

/// Most elements [`Output`]'s `Display` shows before `...`.
const SHOWN: usize = 16;

impl fmt::Display for Output {
    /// `name [shape] dtype = [first 16 values, ...]`: values decoded by dtype (`bf16` /
    /// `f16` with feature `half`), bytes in hex where there is no decoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {} = ", self.name, self.shape, self.dtype)?;
        let values = format::first_values(self.dtype, self.bytes(), SHOWN);
        let total = self.element_count().unwrap_or(self.len);
        write!(f, "[{}", values.join(", "))?;
        if total > values.len() {
            write!(f, ", ... ({total} in all)")?;
        }
        f.write_str("]")
    }
}

/// The outputs of one execution, in the model's output order, by name.
///
/// `outputs["name"]` panics when the model has no output of that name (like a map);
/// [`Outputs::get`] does not.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    items: Vec<Output>,
}

impl Outputs {
    /// Outputs in the model's order.
    pub(crate) fn new(items: Vec<Output>) -> Outputs {
        Outputs { items }
    }

    /// The output named `name`.
    pub fn get(&self, name: &str) -> Option<&Output> {
        self.items.iter().find(|o| o.name == name)
    }

    /// Takes the output named `name` out.
    pub fn remove(&mut self, name: &str) -> Option<Output> {
        let i = self.items.iter().position(|o| o.name == name)?;
        Some(self.items.remove(i))
    }

    /// The outputs in the model's order.
    pub fn iter(&self) -> std::slice::Iter<'_, Output> {
        self.items.iter()
    }

    /// How many outputs there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl std::ops::Index<&str> for Outputs {
    type Output = Output;

    fn index(&self, name: &str) -> &Output {
        match self.get(name) {
            Some(output) => output,
            None => panic!(
                "no output `{name}` (outputs: {})",
                self.items
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl IntoIterator for Outputs {
    type Item = Output;
    type IntoIter = std::vec::IntoIter<Output>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a Outputs {
    type Item = &'a Output;
    type IntoIter = std::slice::Iter<'a, Output>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// `(name, Input)` pairs for [`Model::run`](crate::Model::run), each value converted with
/// `Input::from`: slices, arrays, `Vec`s (and `ndarray` arrays) of any element type,
/// or an [`Input`] itself.
///
/// ```
/// use neuron_rt::{Runtime, inputs};
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // ids (i64) and a mask (f32): two element types in one call.
/// let neff = ModelBuilder::new("mixed")
///     .input("ids", DType::I64, &[4])
///     .input("mask", DType::F32, &[4])
///     .output("ids_out", DType::I64, &[4])
///     .output("mask_out", DType::F32, &[4])
///     .op(Op::Identity { input: "ids".into(), out: "ids_out".into() })
///     .op(Op::Identity { input: "mask".into(), out: "mask_out".into() })
///     .build()
///     .unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let model = runtime.load_model(&neff)?;
/// let ids = vec![101i64, 7, 8, 102];
/// let out = model.run(&inputs!["ids" => &ids, "mask" => &[1.0f32, 1.0, 1.0, 0.0]])?;
/// assert_eq!(out["ids_out"].as_slice::<i64>()?, ids);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[macro_export]
macro_rules! inputs {
    ($($name:expr => $value:expr),* $(,)?) => {
        [$(($name, $crate::Input::from($value))),*]
    };
}

#[cfg(feature = "ndarray")]
mod arrays;
#[cfg(test)]
mod tests;
