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

/// A checked model: what `nrt_load` keeps.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) name: String,
    pub(crate) device_time: Duration,
    pub(crate) inputs: Vec<TensorSpec>,
    pub(crate) outputs: Vec<TensorSpec>,
    ops: Vec<Op>,
    /// dtype and shape of every value an op writes, by op index.
    op_specs: Vec<TensorSpec>,
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "{what} name {name:?} must be 1 to {MAX_NAME} bytes long (it is {})",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{what} name {name:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}

fn check_spec(kind: &str, spec: &TensorSpec) -> Result<(), String> {
    check_name(kind, &spec.name)?;
    if spec.shape.len() > MAX_RANK {
        return Err(format!(
            "{kind} {:?} has rank {}, more than the {MAX_RANK} supported",
            spec.name,
            spec.shape.len()
        ));
    }
    if let Some(pos) = spec.shape.iter().position(|&d| d == 0) {
        return Err(format!(
            "{kind} {:?} has a zero dimension (dimension {pos} of {:?})",
            spec.name, spec.shape
        ));
    }
    let bytes = spec
        .shape
        .iter()
        .try_fold(spec.dtype.size() as u64, |acc, &d| {
            acc.checked_mul(d as u64)
        })
        .filter(|&b| b <= MAX_TENSOR_BYTES);
    if bytes.is_none() {
        return Err(format!(
            "{kind} {:?} with shape {:?} of {} is larger than {MAX_TENSOR_BYTES} bytes",
            spec.name, spec.shape, spec.dtype
        ));
    }
    Ok(())
}

impl Program {
    fn new(
        name: String,
        device_time: Duration,
        inputs: Vec<TensorSpec>,
        outputs: Vec<TensorSpec>,
        ops: Vec<Op>,
    ) -> Result<Program, String> {
        if name.is_empty()
            || name.len() > MAX_NAME
            || name.chars().any(|c| c.is_control())
            || name.trim() != name
        {
            return Err(format!(
                "model name {name:?} must be 1 to {MAX_NAME} bytes, without control characters or surrounding spaces"
            ));
        }
        if outputs.is_empty() {
            return Err("the model declares no output".into());
        }
        // Every value readable so far (inputs, then op outputs), with its dtype and shape.
        let mut known: HashMap<String, TensorSpec> = HashMap::new();
        for spec in &inputs {
            check_spec("input", spec)?;
            if known.insert(spec.name.clone(), spec.clone()).is_some() {
                return Err(format!("input name {:?} is used twice", spec.name));
            }
        }
        let mut declared_outputs: HashMap<&str, &TensorSpec> = HashMap::new();
        for spec in &outputs {
            check_spec("output", spec)?;
            if known.contains_key(spec.name.as_str())
                || declared_outputs.insert(&spec.name, spec).is_some()
            {
                return Err(format!(
                    "output name {:?} is already used by another input or output",
                    spec.name
                ));
            }
        }
        let mut op_specs: Vec<TensorSpec> = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let here = || format!("op {index} ({})", op.kind());
            for src in op.sources() {
                check_name("value", src).map_err(|e| format!("{}: {e}", here()))?;
            }
            check_name("value", op.out()).map_err(|e| format!("{}: {e}", here()))?;
            let get = |n: &str| -> Result<TensorSpec, String> {
                known.get(n).cloned().ok_or_else(|| {
                    format!(
                        "{}: reads {n:?}, which is neither a model input nor written by an earlier op",
                        here()
                    )
                })
            };
            let (dtype, shape) = match op {
                Op::Identity { input, .. } => {
                    let s = get(input)?;
                    (s.dtype, s.shape)
                }
                Op::Relu { input, .. } | Op::ScaleBias { input, .. } => {
                    let s = get(input)?;
                    if !s.dtype.is_arithmetic() {
                        return Err(format!(
                            "{}: dtype {} of {input:?} is only supported by identity",
                            here(),
                            s.dtype
                        ));
                    }
                    (s.dtype, s.shape)
                }
                Op::Add { a, b, .. } | Op::Mul { a, b, .. } | Op::MatMul { a, b, .. } => {
                    let sa = get(a)?;
                    let sb = get(b)?;
                    if sa.dtype != sb.dtype {
                        return Err(format!(
                            "{}: {a:?} is {} but {b:?} is {}",
                            here(),
                            sa.dtype,
                            sb.dtype
                        ));
                    }
                    if !sa.dtype.is_arithmetic() {
                        return Err(format!(
                            "{}: dtype {} is only supported by identity",
                            here(),
                            sa.dtype
                        ));
                    }
                    if let Op::MatMul { .. } = op {
                        if sa.shape.len() != 2 || sb.shape.len() != 2 || sa.shape[1] != sb.shape[0]
                        {
                            return Err(format!(
                                "{}: shapes {:?} x {:?} are not [m,k] x [k,n]",
                                here(),
                                sa.shape,
                                sb.shape
                            ));
                        }
                        (sa.dtype, vec![sa.shape[0], sb.shape[1]])
                    } else {
                        if sa.shape != sb.shape {
                            return Err(format!(
                                "{}: shape {:?} of {a:?} differs from shape {:?} of {b:?}",
                                here(),
                                sa.shape,
                                sb.shape
                            ));
                        }
                        (sa.dtype, sa.shape)
                    }
                }
            };
            let out = op.out();
            if known.contains_key(out) {
                return Err(format!(
                    "{}: writes {out:?}, which is a model input or was already written",
                    here()
                ));
            }
            let spec = TensorSpec {
                name: out.to_string(),
                dtype,
                shape,
            };
            if let Some(declared) = declared_outputs.get(out)
                && (declared.dtype != spec.dtype || declared.shape != spec.shape)
            {
                return Err(format!(
                    "{}: computes {out:?} as {} {:?}, but the output is declared {} {:?}",
                    here(),
                    spec.dtype,
                    spec.shape,
                    declared.dtype,
                    declared.shape
                ));
            }
            check_spec("value", &spec).map_err(|e| format!("{}: {e}", here()))?;
            known.insert(spec.name.clone(), spec.clone());
            op_specs.push(spec);
        }
        for spec in &outputs {
            if !ops.iter().any(|op| op.out() == spec.name) {
                return Err(format!("output {:?} is not written by any op", spec.name));
            }
        }
        Ok(Program {
            name,
            device_time,
            inputs,
            outputs,
            ops,
            op_specs,
        })
    }

    /// The payload text.
    fn to_payload(&self) -> String {
        let mut text = format!(
            "{MAGIC}\nname {}\ndevice_time_ns {}\n",
            self.name,
            self.device_time.as_nanos()
        );
        for spec in &self.inputs {
            text.push_str(&spec.line("input"));
            text.push('\n');
        }
        for spec in &self.outputs {
            text.push_str(&spec.line("output"));
            text.push('\n');
        }
        for op in &self.ops {
            text.push_str(&op.to_line());
            text.push('\n');
        }
        text
    }

    /// Parses a whole model file (container and payload).
    pub(crate) fn from_file(bytes: &[u8]) -> Result<Program, (NRT_STATUS, String)> {
        let payload = container::unwrap(bytes)?;
        if payload.starts_with(&[0x1f, 0x8b]) {
            return Err((
                NRT_INVALID,
                "not an nrt-sim model: the payload is gzip data, as in a NEFF compiled for real Neuron hardware; the simulator only runs models written by nrt_sim::ModelBuilder or nrt-sim-model".into(),
            ));
        }
        Self::parse(payload).map_err(|e| (NRT_INVALID, e))
    }

    fn parse(payload: &[u8]) -> Result<Program, String> {
        let text = std::str::from_utf8(payload)
            .map_err(|_| "not an nrt-sim model: the payload is not UTF-8 text".to_string())?;
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((_, l)) if l.starts_with("nrt-sim-model ") => {
                return Err(format!(
                    "nrt-sim model payload version line {l:?} is not supported (expected {MAGIC:?})"
                ));
            }
            _ => {
                return Err(format!(
                    "not an nrt-sim model: the payload does not start with {MAGIC:?}"
                ));
            }
        }
        let mut name = None;
        let mut device_time = None;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut ops = Vec::new();
        for (no, line) in lines {
            let err = |m: &str| format!("model payload line {no} ({line:?}): {m}");
            let mut fields = line.split_whitespace();
            let keyword = fields.next().unwrap_or_default();
            let args: Vec<&str> = fields.collect();
            match keyword {
                "name" => {
                    let rest = line["name".len()..].trim();
                    if name.replace(rest.to_string()).is_some() {
                        return Err(err("second name line"));
                    }
                }
                "device_time_ns" => {
                    let [v] = args[..] else {
                        return Err(err("expected one number"));
                    };
                    let ns: u64 = v.parse().map_err(|_| err("not a number of nanoseconds"))?;
                    if device_time.replace(Duration::from_nanos(ns)).is_some() {
                        return Err(err("second device_time_ns line"));
                    }
                }
                "input" | "output" => {
                    let [tname, dtype, dims] = args[..] else {
                        return Err(err("expected <name> <dtype> [<dims>]"));
                    };
                    let dtype = DType::from_name(dtype)
                        .ok_or_else(|| err(&format!("unknown dtype {dtype:?}")))?;
                    let shape = parse_dims(dims).ok_or_else(|| {
                        err("dims must look like [2,3] (positive integers) or []")
                    })?;
                    let spec = TensorSpec {
                        name: tname.to_string(),
                        dtype,
                        shape,
                    };
                    if keyword == "input" {
                        inputs.push(spec);
                    } else {
                        outputs.push(spec);
                    }
                }
                "op" => ops.push(parse_op(&args).map_err(|m| err(&m))?),
                other => return Err(err(&format!("unknown statement {other:?}"))),
            }
        }
        let name = name.ok_or("model payload has no name line")?;
        Program::new(
            name,
            device_time.unwrap_or(Duration::ZERO),
            inputs,
            outputs,
            ops,
        )
    }

    /// Runs the ops. `inputs[i]` holds the bytes of `self.inputs[i]`; returns the bytes
    /// of each declared output, in order.
    pub(crate) fn run(&self, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut values: HashMap<&str, (&TensorSpec, Vec<u8>)> = HashMap::new();
        for (spec, bytes) in self.inputs.iter().zip(inputs) {
            values.insert(&spec.name, (spec, bytes.clone()));
        }
        for (op, spec) in self.ops.iter().zip(&self.op_specs) {
            let get = |n: &str| &values[n];
            let result = match op {
                Op::Identity { input, .. } => get(input).1.clone(),
                Op::Add { a, b, .. } => {
                    let (sa, va) = get(a);
                    compute::binary(sa.dtype, va, &get(b).1, compute::BinOp::Add)
                }
                Op::Mul { a, b, .. } => {
                    let (sa, va) = get(a);
                    compute::binary(sa.dtype, va, &get(b).1, compute::BinOp::Mul)
                }
                Op::ScaleBias {
                    input, scale, bias, ..
                } => {
                    let (s, v) = get(input);
                    compute::scale_bias(s.dtype, v, *scale, *bias)
                }
                Op::Relu { input, .. } => {
                    let (s, v) = get(input);
                    compute::relu(s.dtype, v)
                }
                Op::MatMul { a, b, .. } => {
                    let (sa, va) = get(a);
                    let (sb, vb) = get(b);
                    let (m, k, n) = (
                        sa.shape[0] as usize,
                        sa.shape[1] as usize,
                        sb.shape[1] as usize,
                    );
                    compute::matmul(sa.dtype, va, vb, m, k, n)
                }
            };
            values.insert(op.out(), (spec, result));
        }
        self.outputs
            .iter()
            .map(|spec| values.remove(spec.name.as_str()).unwrap().1)
            .collect()
    }
}

fn parse_dims(text: &str) -> Option<Vec<u32>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|d| d.parse::<u32>().ok().filter(|&d| d > 0))
        .collect()
}

fn parse_op(args: &[&str]) -> Result<Op, String> {
    let s = |x: &str| x.to_string();
    let float = |x: &str| {
        x.parse::<f64>()
            .map_err(|_| format!("{x:?} is not a number"))
    };
    Ok(match args {
        ["identity", input, out] => Op::Identity {
            input: s(input),
            out: s(out),
        },
        ["add", a, b, out] => Op::Add {
            a: s(a),
            b: s(b),
            out: s(out),
        },
        ["mul", a, b, out] => Op::Mul {
            a: s(a),
            b: s(b),
            out: s(out),
        },
        ["scale_bias", input, scale, bias, out] => Op::ScaleBias {
            input: s(input),
            scale: float(scale)?,
            bias: float(bias)?,
            out: s(out),
        },
        ["matmul", a, b, out] => Op::MatMul {
            a: s(a),
            b: s(b),
            out: s(out),
        },
        ["relu", input, out] => Op::Relu {
            input: s(input),
            out: s(out),
        },
        [kind, ..] => {
            return Err(format!(
                "op {kind:?} with {} arguments is not one of: identity IN OUT, add A B OUT, mul A B OUT, scale_bias IN SCALE BIAS OUT, matmul A B OUT, relu IN OUT",
                args.len() - 1
            ));
        }
        [] => return Err("op line without an op".into()),
    })
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

mod compute {
    //! Element-wise and matrix arithmetic over little-endian byte buffers.

    use super::DType;

    #[derive(Clone, Copy)]
    pub(super) enum BinOp {
        Add,
        Mul,
    }

    trait Elem: Copy {
        const SIZE: usize;
        fn load(bytes: &[u8]) -> Self;
        fn store(self, out: &mut Vec<u8>);
        fn zero() -> Self;
        fn add(self, other: Self) -> Self;
        fn mul(self, other: Self) -> Self;
        fn relu(self) -> Self;
        fn scale_bias(self, scale: f64, bias: f64) -> Self;
    }

    macro_rules! int_elem {
        ($($t:ty),*) => {$(
            impl Elem for $t {
                const SIZE: usize = std::mem::size_of::<$t>();
                fn load(bytes: &[u8]) -> Self {
                    <$t>::from_le_bytes(bytes.try_into().unwrap())
                }
                fn store(self, out: &mut Vec<u8>) {
                    out.extend_from_slice(&self.to_le_bytes());
                }
                fn zero() -> Self {
                    0
                }
                fn add(self, other: Self) -> Self {
                    self.wrapping_add(other)
                }
                fn mul(self, other: Self) -> Self {
                    self.wrapping_mul(other)
                }
                #[allow(unused_comparisons)]
                fn relu(self) -> Self {
                    if self < 0 { 0 } else { self }
                }
                fn scale_bias(self, scale: f64, bias: f64) -> Self {
                    // `as` from f64 saturates (NaN -> 0).
                    (self as f64 * scale + bias).round() as $t
                }
            }
        )*};
    }
    int_elem!(u8, i8, u16, i16, u32, i32, u64, i64);

    impl Elem for f32 {
        const SIZE: usize = 4;
        fn load(bytes: &[u8]) -> Self {
            f32::from_le_bytes(bytes.try_into().unwrap())
        }
        fn store(self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
        fn zero() -> Self {
            0.0
        }
        fn add(self, other: Self) -> Self {
            self + other
        }
        fn mul(self, other: Self) -> Self {
            self * other
        }
        fn relu(self) -> Self {
            if self < 0.0 { 0.0 } else { self }
        }
        fn scale_bias(self, scale: f64, bias: f64) -> Self {
            (self as f64 * scale + bias) as f32
        }
    }

    /// bfloat16: the top 16 bits of an f32.
    #[derive(Clone, Copy)]
    struct Bf16(u16);

    impl Bf16 {
        fn to_f32(self) -> f32 {
            f32::from_bits((self.0 as u32) << 16)
        }
        fn from_f32(x: f32) -> Bf16 {
            if x.is_nan() {
                return Bf16(((x.to_bits() >> 16) as u16) | 0x40);
            }
            let bits = x.to_bits();
            let round = 0x7fff + ((bits >> 16) & 1);
            Bf16((bits.wrapping_add(round) >> 16) as u16)
        }
    }

    impl Elem for Bf16 {
        const SIZE: usize = 2;
        fn load(bytes: &[u8]) -> Self {
            Bf16(u16::from_le_bytes(bytes.try_into().unwrap()))
        }
        fn store(self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_le_bytes());
        }
        fn zero() -> Self {
            Bf16(0)
        }
        fn add(self, other: Self) -> Self {
            Bf16::from_f32(self.to_f32() + other.to_f32())
        }
        fn mul(self, other: Self) -> Self {
            Bf16::from_f32(self.to_f32() * other.to_f32())
        }
        fn relu(self) -> Self {
            if self.to_f32() < 0.0 { Bf16(0) } else { self }
        }
        fn scale_bias(self, scale: f64, bias: f64) -> Self {
            // Rounded to f32, then to bf16 (as documented for bf16 scale_bias).
            Bf16::from_f32((self.to_f32() as f64 * scale + bias) as f32)
        }
    }

    fn load_all<T: Elem>(bytes: &[u8]) -> Vec<T> {
        bytes.chunks_exact(T::SIZE).map(T::load).collect()
    }

    fn store_all<T: Elem>(values: impl Iterator<Item = T>, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len * T::SIZE);
        values.for_each(|v| v.store(&mut out));
        out
    }

    macro_rules! dispatch {
        ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
            match $dtype {
                DType::U8 => $f::<u8>($($arg),*),
                DType::I8 => $f::<i8>($($arg),*),
                DType::U16 => $f::<u16>($($arg),*),
                DType::I16 => $f::<i16>($($arg),*),
                DType::U32 => $f::<u32>($($arg),*),
                DType::I32 => $f::<i32>($($arg),*),
                DType::U64 => $f::<u64>($($arg),*),
                DType::I64 => $f::<i64>($($arg),*),
                DType::F32 => $f::<f32>($($arg),*),
                DType::BF16 => $f::<Bf16>($($arg),*),
                // Program::new allows F16 only in identity, which never gets here.
                DType::F16 => unreachable!("f16 arithmetic is rejected when a model is built"),
            }
        };
    }

    pub(super) fn binary(dtype: DType, a: &[u8], b: &[u8], op: BinOp) -> Vec<u8> {
        fn go<T: Elem>(a: &[u8], b: &[u8], op: BinOp) -> Vec<u8> {
            let (a, b) = (load_all::<T>(a), load_all::<T>(b));
            let n = a.len();
            store_all(
                a.into_iter().zip(b).map(|(x, y)| match op {
                    BinOp::Add => x.add(y),
                    BinOp::Mul => x.mul(y),
                }),
                n,
            )
        }
        dispatch!(dtype, go(a, b, op))
    }

    pub(super) fn relu(dtype: DType, a: &[u8]) -> Vec<u8> {
        fn go<T: Elem>(a: &[u8]) -> Vec<u8> {
            let a = load_all::<T>(a);
            let n = a.len();
            store_all(a.into_iter().map(T::relu), n)
        }
        dispatch!(dtype, go(a))
    }

    pub(super) fn scale_bias(dtype: DType, a: &[u8], scale: f64, bias: f64) -> Vec<u8> {
        fn go<T: Elem>(a: &[u8], scale: f64, bias: f64) -> Vec<u8> {
            let a = load_all::<T>(a);
            let n = a.len();
            store_all(a.into_iter().map(|x| x.scale_bias(scale, bias)), n)
        }
        dispatch!(dtype, go(a, scale, bias))
    }

    pub(super) fn matmul(
        dtype: DType,
        a: &[u8],
        b: &[u8],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<u8> {
        fn go<T: Elem>(a: &[u8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<u8> {
            let (a, b) = (load_all::<T>(a), load_all::<T>(b));
            let values = (0..m).flat_map(|i| {
                let (a, b) = (&a, &b);
                (0..n).map(move |j| {
                    (0..k).fold(T::zero(), |acc, x| acc.add(a[i * k + x].mul(b[x * n + j])))
                })
            });
            store_all(values, m * n)
        }
        dispatch!(dtype, go(a, b, m, k, n))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bf16_rounds_to_nearest_even() {
            assert_eq!(Bf16::from_f32(1.0).0, 0x3f80);
            // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0).
            assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).0, 0x3f80);
            assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).0, 0x3f82);
            assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn f32_values(b: &[u8]) -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn program(builder: &ModelBuilder) -> Program {
        Program::from_file(&builder.build().unwrap()).unwrap()
    }

    #[test]
    fn add_model_round_trips_and_computes() {
        let b = ModelBuilder::new("add")
            .input("a", DType::F32, &[2, 3])
            .input("b", DType::F32, &[2, 3])
            .output("out", DType::F32, &[2, 3])
            .op(Op::Add {
                a: "a".into(),
                b: "b".into(),
                out: "out".into(),
            })
            .device_time(Duration::from_micros(500));
        let p = program(&b);
        assert_eq!(p.name, "add");
        assert_eq!(p.device_time, Duration::from_micros(500));
        assert_eq!(p.inputs.len(), 2);
        assert_eq!(p.outputs[0].byte_size(), 24);
        let out = p.run(&[
            f32_bytes(&[1., 2., 3., 4., 5., 6.]),
            f32_bytes(&[0.5, 0.25, -3., 10., 0., 1e-3]),
        ]);
        assert_eq!(
            f32_values(&out[0]),
            vec![1.5, 2.25, 0., 14., 5., 6.0f32 + 1e-3]
        );
    }

    #[test]
    fn chained_ops_with_temporaries() {
        // out = relu(x @ w * 2 - 1), through temporaries.
        let b = ModelBuilder::new("mlp")
            .input("x", DType::F32, &[1, 2])
            .input("w", DType::F32, &[2, 2])
            .output("y", DType::F32, &[1, 2])
            .op(Op::MatMul {
                a: "x".into(),
                b: "w".into(),
                out: "h".into(),
            })
            .op(Op::ScaleBias {
                input: "h".into(),
                scale: 2.0,
                bias: -1.0,
                out: "s".into(),
            })
            .op(Op::Relu {
                input: "s".into(),
                out: "y".into(),
            });
        let p = program(&b);
        let out = p.run(&[f32_bytes(&[1., 2.]), f32_bytes(&[1., -1., 0.5, -2.])]);
        // x@w = [1*1+2*0.5, 1*-1+2*-2] = [2, -5]; *2-1 = [3, -11]; relu = [3, 0]
        assert_eq!(f32_values(&out[0]), vec![3., 0.]);
    }

    #[test]
    fn integer_ops_wrap_and_saturate() {
        let b = ModelBuilder::new("ints")
            .input("a", DType::U8, &[3])
            .input("b", DType::U8, &[3])
            .output("sum", DType::U8, &[3])
            .output("sb", DType::I32, &[2])
            .input("c", DType::I32, &[2])
            .op(Op::Add {
                a: "a".into(),
                b: "b".into(),
                out: "sum".into(),
            })
            .op(Op::ScaleBias {
                input: "c".into(),
                scale: 1e10,
                bias: 0.5,
                out: "sb".into(),
            });
        let p = program(&b);
        let c: Vec<u8> = [3i32, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
        let out = p.run(&[vec![250, 1, 2], vec![10, 1, 2], c]);
        assert_eq!(out[0], vec![4, 2, 4]);
        let sb: Vec<i32> = out[1]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(sb, vec![i32::MAX, i32::MIN]);
    }

    #[test]
    fn f16_identity_is_allowed_but_arithmetic_is_not() {
        let ok = ModelBuilder::new("h")
            .input("a", DType::F16, &[4])
            .output("b", DType::F16, &[4])
            .op(Op::Identity {
                input: "a".into(),
                out: "b".into(),
            });
        assert_eq!(
            program(&ok).run(&[vec![1, 2, 3, 4, 5, 6, 7, 8]])[0].len(),
            8
        );
        let bad = ModelBuilder::new("h")
            .input("a", DType::F16, &[4])
            .output("b", DType::F16, &[4])
            .op(Op::Relu {
                input: "a".into(),
                out: "b".into(),
            });
        assert!(
            bad.build()
                .unwrap_err()
                .message()
                .contains("only supported by identity")
        );
    }

    #[test]
    fn builder_errors_name_the_problem() {
        let base = || {
            ModelBuilder::new("m")
                .input("a", DType::F32, &[2])
                .output("o", DType::F32, &[2])
        };
        let cases: Vec<(ModelBuilder, &str)> = vec![
            (base(), "\"o\" is not written by any op"),
            (
                base().op(Op::Identity {
                    input: "zz".into(),
                    out: "o".into(),
                }),
                "reads \"zz\"",
            ),
            (
                base().input("b", DType::I32, &[2]).op(Op::Add {
                    a: "a".into(),
                    b: "b".into(),
                    out: "o".into(),
                }),
                "\"a\" is f32 but \"b\" is i32",
            ),
            (
                base().input("b", DType::F32, &[3]).op(Op::Mul {
                    a: "a".into(),
                    b: "b".into(),
                    out: "o".into(),
                }),
                "shape [2] of \"a\" differs from shape [3] of \"b\"",
            ),
            (
                base().op(Op::MatMul {
                    a: "a".into(),
                    b: "a".into(),
                    out: "o".into(),
                }),
                "not [m,k] x [k,n]",
            ),
            (
                base().op(Op::Identity {
                    input: "a".into(),
                    out: "a".into(),
                }),
                "writes \"a\"",
            ),
            (
                base().input("a", DType::F32, &[2]),
                "input name \"a\" is used twice",
            ),
            (
                ModelBuilder::new("m")
                    .input("a", DType::F32, &[2, 0])
                    .output("o", DType::F32, &[2]),
                "zero dimension",
            ),
            (
                ModelBuilder::new("m")
                    .input("a b", DType::F32, &[2])
                    .output("o", DType::F32, &[2]),
                "whitespace",
            ),
            (
                ModelBuilder::new("m")
                    .input("a", DType::F32, &[u32::MAX, u32::MAX, 2])
                    .output("o", DType::F32, &[2]),
                "larger than",
            ),
            (
                base()
                    .op(Op::Relu {
                        input: "a".into(),
                        out: "o".into(),
                    })
                    .op(Op::Relu {
                        input: "a".into(),
                        out: "o".into(),
                    }),
                "already written",
            ),
            (
                ModelBuilder::new("m")
                    .input("a", DType::F32, &[2])
                    .output("o", DType::F32, &[3])
                    .op(Op::Identity {
                        input: "a".into(),
                        out: "o".into(),
                    }),
                "declared f32 [3]",
            ),
            (
                ModelBuilder::new("").output("o", DType::F32, &[1]),
                "model name",
            ),
            (
                ModelBuilder::new("m").input("a", DType::F32, &[1]),
                "no output",
            ),
        ];
        for (builder, needle) in cases {
            let err = builder.build().unwrap_err();
            assert!(err.message().contains(needle), "{err} lacks {needle:?}");
        }
    }

    #[test]
    fn payload_parse_errors_name_the_line() {
        let bad = [
            ("hello", "does not start with"),
            ("nrt-sim-model 2\nname x", "version line"),
            ("nrt-sim-model 1\nname x\ninput a f99 [1]", "line 3"),
            (
                "nrt-sim-model 1\nname x\ninput a f32 [0]",
                "dims must look like",
            ),
            ("nrt-sim-model 1\nname x\nop frob a b", "\"frob\""),
            ("nrt-sim-model 1\nname x\nbogus", "unknown statement"),
            ("nrt-sim-model 1\ninput a f32 [1]", "no name line"),
            ("nrt-sim-model 1\nname x\ndevice_time_ns -4", "nanoseconds"),
        ];
        for (payload, needle) in bad {
            let file = container::wrap("x", payload.as_bytes());
            let (status, msg) = Program::from_file(&file).unwrap_err();
            assert_eq!(status, NRT_INVALID);
            assert!(msg.contains(needle), "{msg} lacks {needle:?}");
        }
    }

    #[test]
    fn gzip_payload_is_reported_as_a_real_neff() {
        let file = container::wrap("real", &[0x1f, 0x8b, 8, 0, 0, 0]);
        let (status, msg) = Program::from_file(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.starts_with("not an nrt-sim model"), "{msg}");
    }

    #[test]
    fn hand_written_payload_with_comments_parses() {
        let text = "# comment\n\nnrt-sim-model 1\nname my model\ninput x i32 []\noutput y i32 []\nop scale_bias x 3 1 y\n";
        let p = Program::from_file(&container::wrap("x", text.as_bytes())).unwrap();
        assert_eq!(p.name, "my model");
        let y = p.run(&[5i32.to_le_bytes().to_vec()]);
        assert_eq!(y[0], 16i32.to_le_bytes().to_vec());
        assert_eq!(
            describe_model(&container::wrap("x", text.as_bytes()))
                .unwrap()
                .lines()
                .count(),
            6
        );
    }

    #[test]
    fn dtype_maps_to_nrt_values() {
        assert_eq!(DType::F32.to_nrt(), NRT_DTYPE_FLOAT32);
        assert_eq!(DType::from_nrt(NRT_DTYPE_INT32), Some(DType::I32));
        assert_eq!(DType::from_nrt(NRT_DTYPE_FP8_E4), None);
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
    }
}
