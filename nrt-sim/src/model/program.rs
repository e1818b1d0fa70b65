//! [`Program`]: a validated model (tensors, ops, device time), read from and written
//! to the payload text, and run on byte buffers.

use super::collective::{self, Exchange};
use super::compute;
use super::nn_ops;
use super::types::{
    DType, MAGIC, MAX_NAME, MAX_RANK, MAX_TENSOR_BYTES, Modeled, Op, TensorSpec, modeled_dtype,
};
use crate::error::Res;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

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
    /// The world size the collective ops name (`all_gather`, `reduce_scatter`), if any.
    world: Option<u32>,
    /// NeuronCores the model needs (1 for the simulator's own models).
    pub(crate) cores: u32,
    /// A real NEFF loaded for its signature: no ops, executions write synthetic outputs.
    pub(crate) synthetic: bool,
}

pub(super) fn check_name(what: &str, name: &str) -> Result<(), String> {
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

pub(super) fn check_spec(kind: &str, spec: &TensorSpec) -> Result<(), String> {
    check_name(kind, &spec.name)?;
    if !spec.dtype.is_modeled() {
        return Err(format!(
            "{kind} {:?} has dtype {}, which the simulator does not model (it models {})",
            spec.name,
            spec.dtype,
            DType::ALL.map(DType::name).join(", ")
        ));
    }
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
    pub(super) fn new(
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
        let mut world: Option<(usize, u32)> = None;
        for (index, op) in ops.iter().enumerate() {
            let here = || format!("op {index} ({})", op.kind());
            if let Some(r) = collective::op_ranks(op) {
                match world {
                    Some((first, w)) if w != r => {
                        return Err(format!(
                            "{}: names {r} ranks, but op {first} names {w}; all collectives of a model run over one group",
                            here()
                        ));
                    }
                    None => world = Some((index, r)),
                    _ => {}
                }
            }
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
                Op::AllReduce { input, .. }
                | Op::AllGather { input, .. }
                | Op::ReduceScatter { input, .. } => collective::result_spec(op, &get(input)?)
                    .map_err(|e| format!("{}: {e}", here()))?,
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
                        if sa.shape.len() < 2
                            || sb.shape.len() != 2
                            || sa.shape.last() != Some(&sb.shape[0])
                        {
                            return Err(format!(
                                "{}: shapes {:?} x {:?} are not [m,k] x [k,n] (or [...,k] x [k,n])",
                                here(),
                                sa.shape,
                                sb.shape
                            ));
                        }
                        let mut shape = sa.shape.clone();
                        *shape.last_mut().unwrap() = sb.shape[1];
                        (sa.dtype, shape)
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
                other => {
                    nn_ops::result_spec(other, &get).map_err(|e| format!("{}: {e}", here()))?
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
            world: world.map(|(_, w)| w),
            cores: 1,
            synthetic: false,
        })
    }

    /// A real NEFF's signature (signature-only mode): no ops; executions write
    /// synthetic outputs (`model::real`).
    pub(super) fn signature_only(
        name: String,
        device_time: Duration,
        inputs: Vec<TensorSpec>,
        outputs: Vec<TensorSpec>,
        cores: u32,
    ) -> Program {
        Program {
            name,
            device_time,
            inputs,
            outputs,
            ops: Vec::new(),
            op_specs: Vec::new(),
            world: None,
            cores,
            synthetic: true,
        }
    }

    /// The model as log lines name it: `'name'`, and for a real NEFF loaded for its
    /// signature, that its outputs are synthetic.
    pub(crate) fn label(&self) -> String {
        if self.synthetic {
            format!(
                "'{}' (real NEFF, signature-only mode: outputs are synthetic, not results)",
                self.name
            )
        } else {
            format!("'{}'", self.name)
        }
    }

    /// The world size the model's `all_gather` / `reduce_scatter` ops name, if any: it
    /// only loads as a rank of a group of that size.
    pub(crate) fn world(&self) -> Option<u32> {
        self.world
    }

    /// Link time of the model's collectives for one execution in a group of `world`
    /// ranks at `gbps` GB/s (0: free).
    pub(crate) fn link_time(&self, world: u32, gbps: f64) -> Duration {
        let specs: HashMap<&str, &TensorSpec> = self
            .inputs
            .iter()
            .chain(&self.op_specs)
            .map(|s| (s.name.as_str(), s))
            .collect();
        self.ops
            .iter()
            .zip(&self.op_specs)
            .filter(|(op, _)| collective::is_collective(op))
            .map(|(op, out)| {
                let input = specs[op.sources()[0]].byte_size() as u64;
                collective::link_time(op, input, out.byte_size() as u64, world, gbps)
            })
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// The payload text.
    pub(super) fn to_payload(&self) -> String {
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

    pub(super) fn parse(payload: &[u8]) -> Result<Program, String> {
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
                    let dtype = modeled_dtype(dtype)
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

    /// Runs the ops alone (a world of one).
    #[cfg(test)]
    pub(crate) fn run(&self, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
        self.run_ranked(inputs, &mut collective::Solo)
            .expect("a world of one never fails")
    }

    /// Runs the ops; collectives go through `ex`. `inputs[i]` holds the bytes of
    /// `self.inputs[i]`; returns the bytes of each declared output, in order, or the
    /// exchange's failure.
    pub(crate) fn run_ranked(
        &self,
        inputs: &[Vec<u8>],
        ex: &mut dyn Exchange,
    ) -> Res<Vec<Vec<u8>>> {
        let mut step = 0;
        // Inputs are borrowed (weights and caches are most of the bytes), op results owned.
        let mut values: HashMap<&str, (&TensorSpec, Cow<'_, [u8]>)> = HashMap::new();
        for (spec, bytes) in self.inputs.iter().zip(inputs) {
            values.insert(&spec.name, (spec, Cow::Borrowed(bytes.as_slice())));
        }
        for (index, (op, spec)) in self.ops.iter().zip(&self.op_specs).enumerate() {
            let get = |n: &str| &values[n];
            let result = match op {
                Op::Identity { input, .. } => get(input).1.to_vec(),
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
                    let k = sb.shape[0] as usize;
                    let (m, n) = (sa.elements() / k, sb.shape[1] as usize);
                    compute::matmul(sa.dtype, va, vb, m, k, n)
                }
                Op::AllReduce { input, .. }
                | Op::AllGather { input, .. }
                | Op::ReduceScatter { input, .. } => {
                    let (s, v) = get(input);
                    let dtype = s.dtype;
                    let parts = ex.exchange(step, v.to_vec())?;
                    step += 1;
                    collective::combine(op, dtype, ex.rank(), parts)
                }
                other => {
                    let value = |n: &str| {
                        let (s, v) = &values[n];
                        (*s, v.as_ref())
                    };
                    nn_ops::run(other, &value)
                        .or_else(|reason| nn_ops::index_failure(&self.name, index, other, reason))?
                }
            };
            values.insert(op.out(), (spec, Cow::Owned(result)));
        }
        Ok(self
            .outputs
            .iter()
            .map(|spec| values.remove(spec.name.as_str()).unwrap().1.into_owned())
            .collect())
    }
}

pub(super) fn parse_dims(text: &str) -> Option<Vec<u32>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|d| d.parse::<u32>().ok().filter(|&d| d > 0))
        .collect()
}

pub(super) fn parse_op(args: &[&str]) -> Result<Op, String> {
    let s = |x: &str| x.to_string();
    let float = |x: &str| {
        x.parse::<f64>()
            .map_err(|_| format!("{x:?} is not a number"))
    };
    let count = |x: &str| {
        x.parse::<u32>()
            .ok()
            .filter(|&r| r >= 1)
            .ok_or_else(|| format!("{x:?} is not a rank count (1 or more)"))
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
        ["all_reduce", input, out] => Op::AllReduce {
            input: s(input),
            out: s(out),
        },
        ["all_gather", input, ranks, out] => Op::AllGather {
            input: s(input),
            ranks: count(ranks)?,
            out: s(out),
        },
        ["reduce_scatter", input, ranks, out] => Op::ReduceScatter {
            input: s(input),
            ranks: count(ranks)?,
            out: s(out),
        },
        [kind, ..] => {
            if let Some(op) = nn_ops::parse(args) {
                return op;
            }
            return Err(format!(
                "op {kind:?} with {} arguments is not one of: identity IN OUT, add A B OUT, mul A B OUT, scale_bias IN SCALE BIAS OUT, matmul A B OUT, relu IN OUT, all_reduce IN OUT, all_gather IN RANKS OUT, reduce_scatter IN RANKS OUT, {}",
                args.len() - 1,
                nn_ops::SYNTAX
            ));
        }
        [] => return Err("op line without an op".into()),
    })
}
