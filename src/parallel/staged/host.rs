//! [`HostInputs`] / [`HostOutputs`]: the host buffers of one job of a staged pipeline,
//! one per model input or output, reused from job to job.

use crate::dtype::Element;
use crate::dtype::bytes_of;
use crate::dtype::short_type_name;
use crate::error::{Error, Result};
use crate::objects::TensorInfo;
use crate::objects::typed::accepts;

/// The host buffers a job's inputs are written from, one per model input (in the
/// model's order), each exactly the input's size. Filled by the `write` closure of
/// [`StagedPipeline::run`](crate::StagedPipeline::run) (or [`Replicas`](crate::Replicas)),
/// then moved to the device on TENSOR_OP queue 0.
///
/// The buffers belong to the pipeline's slot and are reused by later jobs: they hold
/// whatever an earlier job left in them until written.
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// let mut pipeline = StagedPipeline::new(&model)?;
/// let sums = pipeline.run(
///     [2.0f32],
///     |x, inputs| {
///         assert_eq!(inputs.len(), 2); // a and b, in the model's order
///         inputs.write("a", &[*x; 6])?; // typed, exactly the input's size
///         inputs.bytes_mut("b")?.copy_from_slice(&[0u8; 24]); // or the raw bytes
///         Ok(())
///     },
///     |_, outputs| Ok(outputs.to_vec::<f32>("out")?),
/// );
/// assert_eq!(sums.collect::<neuron_rt::Result<Vec<_>>>()?, [vec![2.0f32; 6]]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct HostInputs<'a> {
    pub(crate) infos: &'a [TensorInfo],
    pub(crate) buffers: &'a mut [Vec<u8>],
}

/// The host buffers a job's outputs were read into, one per model output (in the
/// model's order), each exactly the output's size. Handed to the `read` closure of
/// [`StagedPipeline::run`](crate::StagedPipeline::run) (or [`Replicas`](crate::Replicas)).
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// let mut pipeline = StagedPipeline::new(&model)?;
/// let mut out = [0f32; 6]; // reused by every job: no allocation per job
/// let firsts = pipeline.run(
///     0..3,
///     |job, inputs| {
///         inputs.write("a", &[*job as f32; 6])?;
///         inputs.write("b", &[10f32; 6])
///     },
///     |_, outputs| {
///         outputs.read("out", &mut out)?;
///         assert_eq!(outputs.bytes("out")?.len(), 24);
///         Ok(out[0])
///     },
/// );
/// assert_eq!(firsts.collect::<neuron_rt::Result<Vec<_>>>()?, [10.0, 11.0, 12.0]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct HostOutputs<'a> {
    pub(crate) infos: &'a [TensorInfo],
    pub(crate) buffers: &'a [Vec<u8>],
}

/// The position of `name` among `infos`, or an error naming the choices.
fn position(infos: &[TensorInfo], role: &str, name: &str) -> Result<usize> {
    infos.iter().position(|i| i.name == name).ok_or_else(|| {
        let known: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        Error::invalid(
            "name",
            format!("the model has no {role} `{name}` (its {role}s: {known:?})"),
        )
    })
}

/// Whether `E` is the element type of `info` (any type for a dtype of unknown size).
fn type_check<E: Element>(info: &TensorInfo) -> Result<()> {
    if info.dtype.size_in_bytes().is_none() || accepts::<E>(info.dtype) {
        Ok(())
    } else {
        Err(Error::WrongElementType {
            tensor: info.name.clone(),
            expected: info.dtype,
            given: short_type_name::<E>(),
        })
    }
}

fn size_check(info: &TensorInfo, what: &'static str, actual: usize) -> Result<()> {
    if actual == info.size {
        Ok(())
    } else {
        Err(Error::SizeMismatch {
            tensor: info.name.clone(),
            what,
            expected: info.size,
            actual,
        })
    }
}

impl HostInputs<'_> {
    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Whether the model has no inputs.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// The model's description of the inputs, in buffer order.
    pub fn infos(&self) -> &[TensorInfo] {
        self.infos
    }

    /// Copies `data` into the buffer of input `name`; `data` must be of the input's
    /// element type and have its size exactly ([`bytes_mut`](HostInputs::bytes_mut)
    /// gives the raw bytes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the model has no input `name`;
    /// [`Error::WrongElementType`] if `E` is not the input's element type;
    /// [`Error::SizeMismatch`] if `data` has another size than the input.
    pub fn write<E: Element>(&mut self, name: &str, data: &[E]) -> Result<()> {
        let index = position(self.infos, "input", name)?;
        type_check::<E>(&self.infos[index])?;
        let bytes = bytes_of(data);
        size_check(&self.infos[index], "staged input", bytes.len())?;
        self.buffers[index].copy_from_slice(bytes);
        Ok(())
    }

    /// The bytes of input `name`, to fill in place.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the model has no input `name`.
    pub fn bytes_mut(&mut self, name: &str) -> Result<&mut [u8]> {
        let index = position(self.infos, "input", name)?;
        Ok(&mut self.buffers[index])
    }
}

impl HostOutputs<'_> {
    /// The number of outputs.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Whether the model has no outputs.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// The model's description of the outputs, in buffer order.
    pub fn infos(&self) -> &[TensorInfo] {
        self.infos
    }

    /// The bytes read from output `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the model has no output `name`.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let index = position(self.infos, "output", name)?;
        Ok(&self.buffers[index])
    }

    /// Copies output `name` into `out`, which must be of the output's element type and
    /// have its size exactly ([`bytes`](HostOutputs::bytes) gives the raw bytes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the model has no output `name`;
    /// [`Error::WrongElementType`] if `E` is not the output's element type;
    /// [`Error::SizeMismatch`] if `out` has another size than the output.
    pub fn read<E: Element>(&self, name: &str, out: &mut [E]) -> Result<()> {
        let index = position(self.infos, "output", name)?;
        let src = &self.buffers[index];
        type_check::<E>(&self.infos[index])?;
        size_check(&self.infos[index], "staged output", size_of_val(out))?;
        // SAFETY: `out` spans exactly `src.len()` bytes (checked just above); the two do
        // not overlap (`out` is exclusively borrowed); every byte pattern is a valid
        // `Element` value (its contract), so the copied bytes form valid elements.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr().cast::<u8>(), src.len())
        };
        Ok(())
    }

    /// Output `name` as a new vector of `E` (allocates; [`read`](HostOutputs::read)
    /// into a reused slice does not).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the model has no output `name`, or its size is not
    /// a multiple of `E`'s size; [`Error::WrongElementType`] as for
    /// [`read`](HostOutputs::read).
    pub fn to_vec<E: Element>(&self, name: &str) -> Result<Vec<E>> {
        let index = position(self.infos, "output", name)?;
        let size = self.infos[index].size;
        let width = size_of::<E>();
        if !size.is_multiple_of(width) {
            return Err(Error::invalid(
                "E",
                format!("output `{name}` has {size} bytes, not a multiple of {width}"),
            ));
        }
        let mut out = vec![E::default(); size / width];
        self.read(name, &mut out)?;
        Ok(out)
    }
}
