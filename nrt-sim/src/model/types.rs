//! The vocabulary of model files: element types, ops, tensor specs, limits, and the
//! error a bad model gives.

use nrt_sys::*;
use std::fmt;

/// The magic first line of a payload.
pub(super) const MAGIC: &str = "nrt-sim-model 1";
/// Largest tensor accepted, in bytes (keeps size arithmetic far from overflow).
pub(super) const MAX_TENSOR_BYTES: u64 = 1 << 40;
/// Largest rank accepted.
pub(super) const MAX_RANK: usize = 8;
/// Longest tensor or model name, in bytes (the C structs hold 256 with the NUL).
pub(super) const MAX_NAME: usize = 255;

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
    pub(super) const ALL: [DType; 11] = [
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

    pub(super) fn is_arithmetic(self) -> bool {
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
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Op::Identity { .. } => "identity",
            Op::Add { .. } => "add",
            Op::Mul { .. } => "mul",
            Op::ScaleBias { .. } => "scale_bias",
            Op::MatMul { .. } => "matmul",
            Op::Relu { .. } => "relu",
        }
    }

    pub(super) fn sources(&self) -> Vec<&str> {
        match self {
            Op::Identity { input, .. } | Op::ScaleBias { input, .. } | Op::Relu { input, .. } => {
                vec![input]
            }
            Op::Add { a, b, .. } | Op::Mul { a, b, .. } | Op::MatMul { a, b, .. } => vec![a, b],
        }
    }

    pub(super) fn out(&self) -> &str {
        match self {
            Op::Identity { out, .. }
            | Op::Add { out, .. }
            | Op::Mul { out, .. }
            | Op::ScaleBias { out, .. }
            | Op::MatMul { out, .. }
            | Op::Relu { out, .. } => out,
        }
    }

    pub(super) fn to_line(&self) -> String {
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
    pub(super) fn new(message: impl Into<String>) -> Self {
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

    pub(super) fn line(&self, kind: &str) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{kind} {} {} [{}]", self.name, self.dtype, dims.join(","))
    }
}
