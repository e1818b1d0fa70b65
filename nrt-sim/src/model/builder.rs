//! Writing model files: [`ModelBuilder`], [`build_model_from_text`], and checking one as
//! `nrt_load` would ([`describe_model`]).

use super::program::Program;
use super::types::{BuildError, DType, Op, TensorSpec};
use crate::container;
use std::time::Duration;

/// Writes simulator model files.
///
/// ```
/// use nrt_sim::{DType, ModelBuilder, Op};
/// let bytes: Vec<u8> = ModelBuilder::new("add")
///     .input("a", DType::F32, &[2, 3])
///     .input("b", DType::F32, &[2, 3])
///     .output("out", DType::F32, &[2, 3])
///     .op(Op::Add { a: "a".into(), b: "b".into(), out: "out".into() })
///     .device_time(std::time::Duration::from_micros(500))
///     .build()?;
/// assert_eq!(bytes.len() > 1024, true);
/// # Ok::<(), nrt_sim::BuildError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    name: String,
    device_time: Duration,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    ops: Vec<Op>,
}

impl ModelBuilder {
    /// `out = a + b` on f32 tensors of `shape`, named "add": the small model of this
    /// project's examples, tests and benchmarks. Add `.device_time(..)` to make it take
    /// time, then `.build()`.
    ///
    /// ```
    /// let neff = nrt_sim::ModelBuilder::add_example(&[2, 3]).build()?;
    /// assert!(nrt_sim::describe_model(&neff)?.contains("op add a b out"));
    /// # Ok::<(), nrt_sim::BuildError>(())
    /// ```
    pub fn add_example(shape: &[u32]) -> Self {
        ModelBuilder::new("add")
            .input("a", DType::F32, shape)
            .input("b", DType::F32, shape)
            .output("out", DType::F32, shape)
            .op(Op::Add {
                a: "a".into(),
                b: "b".into(),
                out: "out".into(),
            })
    }

    /// Starts a model called `name`, with no tensors, no ops and zero device time.
    pub fn new(name: impl Into<String>) -> Self {
        ModelBuilder {
            name: name.into(),
            device_time: Duration::ZERO,
            inputs: Vec::new(),
            outputs: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Declares an input tensor (`shape` empty for a scalar).
    pub fn input(mut self, name: impl Into<String>, dtype: DType, shape: &[u32]) -> Self {
        self.inputs.push(TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        });
        self
    }

    /// Declares an output tensor (`shape` empty for a scalar).
    pub fn output(mut self, name: impl Into<String>, dtype: DType, shape: &[u32]) -> Self {
        self.outputs.push(TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        });
        self
    }

    /// Appends a computation step.
    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Simulated device time of one execution (nanosecond resolution).
    pub fn device_time(mut self, time: Duration) -> Self {
        self.device_time = time;
        self
    }

    /// Checks the model and writes the model file: container header plus payload.
    ///
    /// # Errors
    ///
    /// [`BuildError`] naming the problem: a bad or duplicate name, a zero or too large
    /// shape, an op reading an unknown value or writing one twice, operands whose dtype
    /// or shape disagree, an output no op writes.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let program = Program::new(
            self.name.clone(),
            self.device_time,
            self.inputs.clone(),
            self.outputs.clone(),
            self.ops.clone(),
        )
        .map_err(BuildError::new)?;
        Ok(container::wrap(
            &program.name,
            program.to_payload().as_bytes(),
        ))
    }
}

/// Builds a model file from a payload written by hand in the text format above (the
/// magic line first), checked like [`ModelBuilder::build`].
///
/// ```
/// let file = nrt_sim::build_model_from_text(
///     "nrt-sim-model 1\nname twice\ninput x f32 [4]\noutput y f32 [4]\nop scale_bias x 2 0 y\n",
/// )?;
/// assert!(nrt_sim::describe_model(&file)?.contains("op scale_bias x 2.0 0.0 y"));
/// # Ok::<(), nrt_sim::BuildError>(())
/// ```
///
/// # Errors
///
/// [`BuildError`] naming the line and what is wrong with it.
pub fn build_model_from_text(text: &str) -> Result<Vec<u8>, BuildError> {
    let program = Program::parse(text.as_bytes()).map_err(BuildError::new)?;
    Ok(container::wrap(
        &program.name,
        program.to_payload().as_bytes(),
    ))
}

/// Checks a whole model file (container and payload) as `nrt_load` would (with
/// `NEURON_RT_VALIDATE_HASH=true`), and returns its payload text in canonical form (what
/// the `nrt-sim-model --print` command shows). For a real NEFF (loaded in
/// signature-only mode) the text is comment lines (`# ...`) naming its cores and tensors.
///
/// # Errors
///
/// [`BuildError`] with the reason `nrt_load` would log.
pub fn describe_model(bytes: &[u8]) -> Result<String, BuildError> {
    let program = super::file::load(bytes, true).map_err(|(_, m)| BuildError::new(m))?;
    Ok(if program.synthetic {
        super::real::describe(&program)
    } else {
        program.to_payload()
    })
}
