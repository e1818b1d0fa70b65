//! Simulator model files: the builder, the payload format, and the computation.
//!
//! The file format is documented in the crate docs and `nrt-sim/MODEL_FORMAT.md`.

use crate::container;
use nrt_sys::*;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The magic first line of a payload.
const MAGIC: &str = "nrt-sim-model 1";
/// Largest tensor accepted, in bytes (keeps size arithmetic far from overflow).
const MAX_TENSOR_BYTES: u64 = 1 << 40;
/// Largest rank accepted.
const MAX_RANK: usize = 8;
/// Longest tensor or model name, in bytes (the C structs hold 256 with the NUL).
const MAX_NAME: usize = 255;

/// Element type of a model tensor; each maps to an `nrt_dtype_t` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `uint8_t` (`NRT_DTYPE_UINT8`).
    U8,
    /// `int8_t` (`NRT_DTYPE_INT8`).
    I8,
    /// `uint16_t` (`NRT_DTYPE_UINT16`).
    U16,
    /// `int16_t` (`NRT_DTYPE_INT16`).
    I16,
    /// `uint32_t` (`NRT_DTYPE_UINT32`).
    U32,
    /// `int32_t` (`NRT_DTYPE_INT32`).
    I32,
    /// `uint64_t` (`NRT_DTYPE_UINT64`).
    U64,
    /// `int64_t` (`NRT_DTYPE_INT64`).
    I64,
    /// IEEE single precision (`NRT_DTYPE_FLOAT32`).
    F32,
    /// bfloat16 (`NRT_DTYPE_BFLOAT16`).
    BF16,
    /// IEEE half precision (`NRT_DTYPE_FLOAT16`); identity only.
    F16,
}

impl DType {
    const ALL: [DType; 11] = [
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F32,
        DType::BF16,
        DType::F16,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::BF16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 => 8,
        }
    }

    /// The `nrt_dtype_t` value reported by `nrt_get_model_tensor_info`.
    pub fn to_nrt(self) -> nrt_dtype_t {
        match self {
            DType::U8 => NRT_DTYPE_UINT8,
            DType::I8 => NRT_DTYPE_INT8,
            DType::U16 => NRT_DTYPE_UINT16,
            DType::I16 => NRT_DTYPE_INT16,
            DType::U32 => NRT_DTYPE_UINT32,
            DType::I32 => NRT_DTYPE_INT32,
            DType::U64 => NRT_DTYPE_UINT64,
            DType::I64 => NRT_DTYPE_INT64,
            DType::F32 => NRT_DTYPE_FLOAT32,
            DType::BF16 => NRT_DTYPE_BFLOAT16,
            DType::F16 => NRT_DTYPE_FLOAT16,
        }
    }

    /// The dtype for an `nrt_dtype_t` value, if the simulator models it.
    pub fn from_nrt(value: nrt_dtype_t) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.to_nrt() == value)
    }

    /// The name used in model payloads and by the command-line tool (`f32`, `i32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::U16 => "u16",
            DType::I16 => "i16",
            DType::U32 => "u32",
            DType::I32 => "i32",
            DType::U64 => "u64",
            DType::I64 => "i64",
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }

    /// Parses a name as written by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    fn is_arithmetic(self) -> bool {
        self != DType::F16
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a model's computation. Ops run in order; each reads model inputs or values
/// written by earlier ops and writes one new value (a declared output or a temporary).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `out = input` (any dtype).
    Identity {
        /// Source value.
        input: String,
        /// Written value.
        out: String,
    },
    /// Element-wise `out = a + b` (same dtype and shape).
    Add {
        /// Left operand.
        a: String,
        /// Right operand.
        b: String,
        /// Written value.
        out: String,
    },
    /// Element-wise `out = a * b` (same dtype and shape).
    Mul {
        /// Left operand.
        a: String,
        /// Right operand.
        b: String,
        /// Written value.
        out: String,
    },
    /// Element-wise `out = input * scale + bias`, computed in `f64`, rounded once.
    ScaleBias {
        /// Source value.
        input: String,
        /// Factor.
        scale: f64,
        /// Addend.
        bias: f64,
        /// Written value.
        out: String,
    },
    /// Matrix product `[m,k] x [k,n] -> [m,n]`.
    MatMul {
        /// Left matrix `[m,k]`.
        a: String,
        /// Right matrix `[k,n]`.
        b: String,
        /// Written matrix `[m,n]`.
        out: String,
    },
    /// Element-wise `out = if input < 0 { 0 } else { input }`.
    Relu {
        /// Source value.
        input: String,
        /// Written value.
        out: String,
    },
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Identity { .. } => "identity",
            Op::Add { .. } => "add",
            Op::Mul { .. } => "mul",
            Op::ScaleBias { .. } => "scale_bias",
            Op::MatMul { .. } => "matmul",
            Op::Relu { .. } => "relu",
        }
    }

    fn sources(&self) -> Vec<&str> {
        match self {
            Op::Identity { input, .. } | Op::ScaleBias { input, .. } | Op::Relu { input, .. } => {
                vec![input]
            }
            Op::Add { a, b, .. } | Op::Mul { a, b, .. } | Op::MatMul { a, b, .. } => vec![a, b],
        }
    }

    fn out(&self) -> &str {
        match self {
            Op::Identity { out, .. }
            | Op::Add { out, .. }
            | Op::Mul { out, .. }
            | Op::ScaleBias { out, .. }
            | Op::MatMul { out, .. }
            | Op::Relu { out, .. } => out,
        }
    }

    fn to_line(&self) -> String {
        match self {
            Op::Identity { input, out } => format!("op identity {input} {out}"),
            Op::Add { a, b, out } => format!("op add {a} {b} {out}"),
            Op::Mul { a, b, out } => format!("op mul {a} {b} {out}"),
            Op::ScaleBias {
                input,
                scale,
                bias,
                out,
            } => format!("op scale_bias {input} {scale:?} {bias:?} {out}"),
            Op::MatMul { a, b, out } => format!("op matmul {a} {b} {out}"),
            Op::Relu { input, out } => format!("op relu {input} {out}"),
        }
    }
}

/// A model file could not be built: names what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    message: String,
}

impl BuildError {
    fn new(message: impl Into<String>) -> Self {
        BuildError {
            message: message.into(),
        }
    }

    /// What was wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid nrt-sim model: {}", self.message)
    }
}

impl std::error::Error for BuildError {}

/// A named tensor of a model: dtype and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorSpec {
    pub(crate) name: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<u32>,
}

impl TensorSpec {
    pub(crate) fn elements(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    pub(crate) fn byte_size(&self) -> usize {
        self.elements() * self.dtype.size()
    }

    fn line(&self, kind: &str) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{kind} {} {} [{}]", self.name, self.dtype, dims.join(","))
    }
}

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

/// Checks a whole model file (container and payload) as `nrt_load` would, and returns its
/// payload text in canonical form (what the `nrt-sim-model --print` command shows).
///
/// # Errors
///
/// [`BuildError`] with the reason `nrt_load` would log.
pub fn describe_model(bytes: &[u8]) -> Result<String, BuildError> {
    let program = Program::from_file(bytes).map_err(|(_, m)| BuildError::new(m))?;
    Ok(program.to_payload())
}

mod compute;
mod program;

pub(crate) use program::Program;

#[cfg(test)]
mod tests;
