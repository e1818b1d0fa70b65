//! State tensors: one tensor bound as a model input and as the output that updates it in
//! place ([`bind_state`]), and which outputs alias which inputs ([`Aliases`]: from a
//! [`MetaNeff`], from the `.must_alias_input` name suffix, or from the caller).
//!
//! libnrt has no notion of aliases: every framework that runs a stateful NEFF puts the
//! same device tensor into the input set and the output set, and the device updates it
//! in place (the project's ABI notes, section 9). This module does the same, checked.

use super::error::BundleError;
use super::metaneff::{MUST_ALIAS_SUFFIX, MetaNeff};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::objects::{Model, Placement, Tensor, TensorInfo, TensorSet};

/// One output that updates one input in place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Alias {
    /// The input's name.
    pub input: String,
    /// The output's name.
    pub output: String,
}

/// Which outputs of a model update which inputs in place.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::Aliases;
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // state.out = state + x: the state is updated in place.
/// let neff = ModelBuilder::new("acc")
///     .input("state", DType::F32, &[4])
///     .input("x", DType::F32, &[4])
///     .output("state.out", DType::F32, &[4])
///     .op(Op::Add { a: "state".into(), b: "x".into(), out: "state.out".into() })
///     .build()
///     .unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let model = runtime.load_model(&neff)?;
/// let aliases = Aliases::new().with("state", "state.out");
/// aliases.check(&model)?;
/// assert_eq!(aliases.output_of("state"), Some("state.out"));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aliases {
    list: Vec<Alias>,
}

impl Aliases {
    /// No aliases.
    pub fn new() -> Aliases {
        Aliases::default()
    }

    /// These aliases and output `output` updating input `input` (replacing an alias of
    /// the same input or the same output).
    #[must_use]
    pub fn with(mut self, input: &str, output: &str) -> Aliases {
        self.add(input, output);
        self
    }

    /// Adds output `output` updating input `input` (replacing an alias of the same
    /// input or the same output).
    pub fn add(&mut self, input: &str, output: &str) {
        self.list.retain(|a| a.input != input && a.output != output);
        self.list.push(Alias {
            input: input.to_owned(),
            output: output.to_owned(),
        });
    }

    /// The aliases the `.must_alias_input` name suffix marks in `model`: input
    /// `X.must_alias_input` is updated by output `X` (when the model has that output).
    pub fn from_suffix(model: &Model) -> Aliases {
        let mut aliases = Aliases::new();
        for input in model.inputs() {
            if let Some(base) = input.name.strip_suffix(MUST_ALIAS_SUFFIX)
                && model.outputs().iter().any(|o| o.name == base)
            {
                aliases.add(&input.name, base);
            }
        }
        aliases
    }

    /// The aliases `meta` records (`output_aliases_to`), by the names `model` has.
    ///
    /// # Errors
    ///
    /// [`BundleError::Metaneff`] if an aliased tensor's name is not an input (or output)
    /// of `model`.
    pub fn from_metaneff(model: &Model, meta: &MetaNeff) -> Result<Aliases> {
        let mut aliases = Aliases::new();
        for (input, output) in meta.alias_names() {
            for (name, role, infos) in [
                (input, "input", model.inputs()),
                (output, "output", model.outputs()),
            ] {
                if !infos.iter().any(|i| i.name == name) {
                    return Err(BundleError::Metaneff {
                        file: meta_label(meta),
                        reason: format!(
                            "it aliases {role} `{name}`, which model `{}` does not have",
                            model.label()
                        ),
                    }
                    .into());
                }
            }
            aliases.add(input, output);
        }
        Ok(aliases)
    }

    /// All of `other`'s aliases added to these (`other` wins where both name an input
    /// or an output).
    #[must_use]
    pub fn merged(mut self, other: &Aliases) -> Aliases {
        for a in &other.list {
            self.add(&a.input, &a.output);
        }
        self
    }

    /// Checks every alias against `model`: the input and the output exist, have the
    /// same size, and the same element type where libnrt reports both.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTensor`] for a name the model lacks; [`BundleError::AliasMismatch`]
    /// naming both tensors and their sizes or element types.
    pub fn check(&self, model: &Model) -> Result<()> {
        self.check_as(model, model.label())
    }

    /// [`check`](Aliases::check), naming the model `label` in errors.
    pub(crate) fn check_as(&self, model: &Model, label: &str) -> Result<()> {
        for a in &self.list {
            model_pair(model, label, &a.input, &a.output)?;
        }
        Ok(())
    }

    /// The output that updates input `input`.
    pub fn output_of(&self, input: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|a| a.input == input)
            .map(|a| a.output.as_str())
    }

    /// The input that output `output` updates.
    pub fn input_of(&self, output: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|a| a.output == output)
            .map(|a| a.input.as_str())
    }

    /// Every alias, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Alias> {
        self.list.iter()
    }

    /// The number of aliases.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

fn meta_label(meta: &MetaNeff) -> String {
    if meta.name.is_empty() {
        "<metaneff>".into()
    } else {
        format!("of `{}`", meta.name)
    }
}

fn unknown(model: &Model, role: &'static str, name: &str) -> Error {
    let infos = if role == "input" {
        model.inputs()
    } else {
        model.outputs()
    };
    Error::UnknownTensor {
        model: model.label().to_owned(),
        role,
        tensor: name.to_owned(),
        known: infos.iter().map(|i| i.name.clone()).collect(),
    }
}

/// Whether libnrt reported an element type (not unknown).
fn known(d: DType) -> bool {
    !matches!(d, DType::Unknown | DType::Other(_))
}

/// The input and output infos of an alias of `model`, checked to fit each other.
pub(crate) fn model_pair<'m>(
    model: &'m Model,
    label: &str,
    input: &str,
    output: &str,
) -> Result<(&'m TensorInfo, &'m TensorInfo)> {
    let i = model
        .inputs()
        .iter()
        .find(|t| t.name == input)
        .ok_or_else(|| unknown(model, "input", input))?;
    let o = model
        .outputs()
        .iter()
        .find(|t| t.name == output)
        .ok_or_else(|| unknown(model, "output", output))?;
    check_pair(label, i, o)?;
    Ok((i, o))
}

/// [`BundleError::AliasMismatch`] unless `i` and `o` have the same size and, where
/// both are known, the same element type.
pub(crate) fn check_pair(label: &str, i: &TensorInfo, o: &TensorInfo) -> Result<()> {
    let mismatch = |reason: String| -> Error {
        BundleError::AliasMismatch {
            model: label.to_owned(),
            input: i.name.clone(),
            output: o.name.clone(),
            reason,
        }
        .into()
    };
    if i.size != o.size {
        return Err(mismatch(format!(
            "the input has {} bytes, the output {}",
            i.size, o.size
        )));
    }
    if known(i.dtype) && known(o.dtype) && i.dtype != o.dtype {
        return Err(mismatch(format!(
            "the input is {}, the output {}",
            i.dtype, o.dtype
        )));
    }
    Ok(())
}

/// Checks that `model` has input `input` and output `output` and that they fit each
/// other (for [`Lease::bind_state`](crate::Lease::bind_state)).
pub(crate) fn check_alias(model: &Model, input: &str, output: &str) -> Result<()> {
    model_pair(model, model.label(), input, output).map(|_| ())
}

/// Checks that `tensor` fits the model tensor `info` of `model` (size; element type
/// when both are known; core for device memory).
pub(crate) fn check_fits(model: &Model, info: &TensorInfo, tensor: &Tensor) -> Result<()> {
    if tensor.size() != info.size {
        return Err(Error::SizeMismatch {
            tensor: info.name.clone(),
            what: "model tensor it is bound to",
            expected: info.size,
            actual: tensor.size(),
        });
    }
    if let Some(d) = tensor.dtype()
        && known(d)
        && known(info.dtype)
        && d != info.dtype
    {
        return Err(BundleError::TensorDType {
            tensor: tensor.name().to_owned(),
            bound_as: info.name.clone(),
            expected: info.dtype,
            found: d,
        }
        .into());
    }
    if let (Placement::Device, Some(tensor_core), Some(model_core)) =
        (tensor.placement(), tensor.core(), model.core())
        && tensor_core != model_core
    {
        return Err(Error::WrongCore {
            tensor: tensor.name().to_owned(),
            tensor_core,
            what: format!("model `{}`", model.label()),
            expected_core: model_core,
        });
    }
    Ok(())
}

/// Binds `tensor` as input `input` and as output `output` of `model`: the model reads
/// it and writes its update into it, in place (a KV cache, an accumulator).
///
/// Checked first: `model` has both; they have the same size, and the same element
/// type where libnrt reports both; `tensor` has that size (and that element type if it
/// is typed) and, in device memory, is on the model's core. A tensor in host memory may
/// be bound both ways: every execution path locks its storage once, for writing.
///
/// ```
/// use neuron_rt::{Placement, Runtime};
/// use neuron_rt::generate::bind_state;
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// let neff = ModelBuilder::new("acc")
///     .input("state", DType::F32, &[4])
///     .input("x", DType::F32, &[4])
///     .output("state.out", DType::F32, &[4])
///     .op(Op::Add { a: "state".into(), b: "x".into(), out: "state.out".into() })
///     .build()
///     .unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let model = runtime.load_model(&neff)?;
/// let mut inputs = model.allocate_inputs()?;
/// let mut outputs = runtime.tensor_set()?;
/// let state = runtime.allocate_for(&model.inputs()[0], Placement::Device, model.core())?;
/// bind_state(&model, &mut inputs, &mut outputs, "state", "state.out", &state)?;
/// inputs.get("x").unwrap().write(&[1.0f32; 4])?;
/// for _ in 0..3 {
///     model.execute(&inputs, &mut outputs)?;
/// }
/// assert_eq!(state.to_vec::<f32>()?, [3.0; 4]); // updated in place, never copied out
/// # Ok::<(), neuron_rt::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::UnknownTensor`] for a name `model` lacks; [`BundleError::AliasMismatch`]
/// when the input and output differ; [`Error::SizeMismatch`],
/// [`BundleError::TensorDType`] or [`Error::WrongCore`] when `tensor` does not fit;
/// otherwise as [`TensorSet::insert`]. On a check's error both sets are unchanged; if
/// libnrt refuses the second insertion, `outputs` already holds the tensor.
pub fn bind_state(
    model: &Model,
    inputs: &mut TensorSet,
    outputs: &mut TensorSet,
    input: &str,
    output: &str,
    tensor: &Tensor,
) -> Result<()> {
    let (info, _) = model_pair(model, model.label(), input, output)?;
    check_fits(model, info, tensor)?;
    outputs.insert(output, tensor)?;
    inputs.insert(input, tensor)?;
    Ok(())
}
