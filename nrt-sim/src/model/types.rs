//! The vocabulary of model files: element types, ops, tensor specs, limits, and the
//! error a bad model gives.

use std::fmt;

/// The magic first line of a payload.
pub(super) const MAGIC: &str = "nrt-sim-model 1";
/// Largest tensor accepted, in bytes (keeps size arithmetic far from overflow).
pub(super) const MAX_TENSOR_BYTES: u64 = 1 << 40;
/// Largest rank accepted.
pub(super) const MAX_RANK: usize = 8;
/// Longest tensor or model name, in bytes (the C structs hold 256 with the NUL).
pub(super) const MAX_NAME: usize = 255;

/// The element type of a model tensor: the workspace's one dtype type (defined by
/// `neuron-neff`, re-exported as `nrt_sim::DType`, `neuron_rt::DType`,
/// `neuron_rt::sim::DType` and `neuron_rt::neff::DType`). The simulator models the
/// dtypes of [`DType::ALL`] (the integers, `f32`, `bf16`, and `f16` for identity only); a
/// model with another one is refused when it is built or loaded.
pub use neuron_neff::DType;

/// What the simulator knows about a dtype beyond its shared definition.
pub(crate) trait Modeled: Copy {
    /// Whether the simulator models it (one of [`DType::ALL`]).
    fn is_modeled(self) -> bool;
    /// Whether ops compute with it (every modeled dtype but `f16`, which only
    /// identity copies).
    fn is_arithmetic(self) -> bool;
    /// Whether it is a modeled integer dtype.
    fn is_integer(self) -> bool;
}

impl Modeled for DType {
    fn is_modeled(self) -> bool {
        DType::ALL.contains(&self)
    }

    fn is_arithmetic(self) -> bool {
        self.is_modeled() && self != DType::F16
    }

    fn is_integer(self) -> bool {
        self.is_modeled() && !matches!(self, DType::F32 | DType::BF16 | DType::F16)
    }
}

/// The modeled dtype of a short name (`f32`, `bf16`, ...; see [`DType::name`]).
pub(crate) fn modeled_dtype(name: &str) -> Option<DType> {
    DType::from_name(name).filter(|d| d.is_modeled())
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
    /// Element type conversion (`cast IN DTYPE OUT`), same shape: integer to integer
    /// wraps (two's complement truncation or extension, as Rust's `as`); float to
    /// integer rounds toward zero and saturates, NaN gives 0; integer to `f32` rounds
    /// to nearest-even; `bf16` to `f32` is exact; to `bf16` goes through `f32` (one
    /// rounding to `f32`, then round-to-nearest-even to `bf16`). Not for `f16`.
    Cast {
        /// Source value.
        input: String,
        /// Element type of `out`.
        dtype: DType,
        /// Written value.
        out: String,
    },
    /// Same bytes, another shape with the same element count (`reshape IN [dims] OUT`).
    Reshape {
        /// Source value.
        input: String,
        /// Shape of `out`.
        shape: Vec<u32>,
        /// Written value.
        out: String,
    },
    /// Embedding lookup (`gather TABLE IDS OUT`): `table` `[v, r...]` (any dtype), `ids`
    /// of an integer dtype and shape `s`; `out[s..] = table[ids[s..]]`, shape `s ++ r`.
    /// An id outside `0..v` fails the execution with `NRT_EXEC_OOB`.
    Gather {
        /// Rows to pick from, `[v, r...]`.
        table: String,
        /// Row indices (integer dtype).
        ids: String,
        /// Written value.
        out: String,
    },
    /// RMS normalisation over the last dimension (`rms_norm X W EPS OUT`, `f32`):
    /// `out = (x / sqrt(sum(x*x) / d + eps)) * w` (arithmetic in MODEL_FORMAT.md).
    RmsNorm {
        /// Rows to normalise, `[..., d]`.
        input: String,
        /// Gain, `[d]`.
        weight: String,
        /// Added to the mean square (rounded to `f32`).
        eps: f64,
        /// Written value.
        out: String,
    },
    /// Element-wise `out = x / (1 + exp(-x))` (`silu IN OUT`, `f32`).
    Silu {
        /// Source value.
        input: String,
        /// Written value.
        out: String,
    },
    /// Rotary position embedding, rotate-half form (`rope X POS THETA OUT`, `f32`): `x`
    /// `[b, t, h, d]` (`d` even), `positions` `[b, t]` (integer); each head's pairs
    /// `(j, j + d/2)` turn by `p * theta^(-2j/d)`. Position -1 (padding) gives zeros.
    Rope {
        /// Queries or keys, `[b, t, h, d]`.
        input: String,
        /// Position of each token, `[b, t]`; -1 = padding.
        positions: String,
        /// Base of the frequencies.
        theta: f64,
        /// Written value.
        out: String,
    },
    /// Cache update (`cache_write CACHE NEW SEQ POS OUT`): `out` = `cache` `[s, h, c, d]`
    /// with `out[seq[b], :, pos[b, t], :] = new[b, t, :, :]` for every token whose
    /// position is not -1 (`new` `[b, t, h, d]`, `seq` `[b]`, `pos` `[b, t]`), in `(b, t)`
    /// order. A slot outside `0..s` (of a row with a non-padding token) or a position
    /// outside `-1..c` fails the execution with `NRT_EXEC_OOB`.
    CacheWrite {
        /// The cache, `[slots, heads, ctx, head_dim]`.
        cache: String,
        /// Rows to write, `[b, t, heads, head_dim]`.
        new: String,
        /// Cache slot of each row, `[b]` (integer).
        seq_ids: String,
        /// Position of each token, `[b, t]` (integer); -1 = padding, no write.
        positions: String,
        /// Written value: the updated cache.
        out: String,
    },
    /// Causal attention over a cache (`attention Q K V SEQ POS OUT`, `f32`): for each
    /// token at position `p` of row `b` and head `h`, softmax of `q . k[seq[b], h, j]
    /// / sqrt(d)` over `j` in `0..=p`, weighting `v[seq[b], h, j]`. Shapes as
    /// [`Op::CacheWrite`]; padding tokens give zeros; bad slots or positions fail the
    /// execution with `NRT_EXEC_OOB`.
    Attention {
        /// Queries, `[b, t, heads, head_dim]`.
        q: String,
        /// Key cache, `[slots, heads, ctx, head_dim]`.
        k: String,
        /// Value cache, same shape as `k`.
        v: String,
        /// Cache slot of each row, `[b]`.
        seq_ids: String,
        /// Position of each token, `[b, t]`; -1 = padding.
        positions: String,
        /// Written value, `[b, t, heads, head_dim]`.
        out: String,
    },
    /// Each row's last non-padding token (`last_token X POS OUT`): `x` `[b, t, r...]`,
    /// `positions` `[b, t]`; `out[b] = x[b, t*]` with `t*` the greatest `t` whose
    /// position is not -1; zeros for a row of padding only. Shape `[b, r...]`.
    LastToken {
        /// Source value, `[b, t, r...]` (any dtype).
        input: String,
        /// Position of each token, `[b, t]`.
        positions: String,
        /// Written value.
        out: String,
    },
    /// Index of the maximum over the last dimension (`argmax X DTYPE OUT`, `f32` or
    /// `bf16` in, an integer `dtype` out): `[..., n]` -> `[..., 1]`; ties go to the lowest
    /// index (a later element replaces the best only when strictly greater).
    ArgMax {
        /// Source value, `[..., n]`.
        input: String,
        /// Integer element type of `out`.
        dtype: DType,
        /// Written value.
        out: String,
    },
    /// Collective: `out` = the element-wise sum of `input` over every rank of the group,
    /// added in rank order (rank 0 + rank 1 + ...), so every rank gets the same bits.
    /// Same dtype and shape as `input`. On a model loaded alone (`nrt_load`) it copies.
    AllReduce {
        /// This rank's contribution.
        input: String,
        /// Written value: the sum.
        out: String,
    },
    /// Collective: `out` = every rank's `input` concatenated along the first dimension,
    /// in rank order: shape `[ranks * d0, d1, ...]`. The model only loads as one rank of
    /// a world of `ranks`.
    AllGather {
        /// This rank's contribution (at least one dimension).
        input: String,
        /// World size the model is compiled for.
        ranks: u32,
        /// Written value: the concatenation.
        out: String,
    },
    /// Collective: the element-wise sum over every rank (in rank order, as
    /// [`Op::AllReduce`]), split into `ranks` equal blocks along the first dimension;
    /// rank `r` gets block `r`: shape `[d0 / ranks, d1, ...]` (`d0` must divide). The
    /// model only loads as one rank of a world of `ranks`.
    ReduceScatter {
        /// This rank's contribution (at least one dimension).
        input: String,
        /// World size the model is compiled for.
        ranks: u32,
        /// Written value: this rank's block of the sum.
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
            Op::AllReduce { .. } => "all_reduce",
            Op::AllGather { .. } => "all_gather",
            Op::ReduceScatter { .. } => "reduce_scatter",
            Op::Cast { .. } => "cast",
            Op::Reshape { .. } => "reshape",
            Op::Gather { .. } => "gather",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Silu { .. } => "silu",
            Op::Rope { .. } => "rope",
            Op::CacheWrite { .. } => "cache_write",
            Op::Attention { .. } => "attention",
            Op::LastToken { .. } => "last_token",
            Op::ArgMax { .. } => "argmax",
        }
    }

    pub(super) fn sources(&self) -> Vec<&str> {
        match self {
            Op::Identity { input, .. }
            | Op::ScaleBias { input, .. }
            | Op::Relu { input, .. }
            | Op::AllReduce { input, .. }
            | Op::AllGather { input, .. }
            | Op::ReduceScatter { input, .. }
            | Op::Cast { input, .. }
            | Op::Reshape { input, .. }
            | Op::Silu { input, .. }
            | Op::ArgMax { input, .. } => vec![input],
            Op::Add { a, b, .. } | Op::Mul { a, b, .. } | Op::MatMul { a, b, .. } => vec![a, b],
            Op::Gather { table, ids, .. } => vec![table, ids],
            Op::RmsNorm { input, weight, .. } => vec![input, weight],
            Op::Rope {
                input, positions, ..
            }
            | Op::LastToken {
                input, positions, ..
            } => vec![input, positions],
            Op::CacheWrite {
                cache,
                new,
                seq_ids,
                positions,
                ..
            } => vec![cache, new, seq_ids, positions],
            Op::Attention {
                q,
                k,
                v,
                seq_ids,
                positions,
                ..
            } => vec![q, k, v, seq_ids, positions],
        }
    }

    pub(super) fn out(&self) -> &str {
        match self {
            Op::Identity { out, .. }
            | Op::Add { out, .. }
            | Op::Mul { out, .. }
            | Op::ScaleBias { out, .. }
            | Op::MatMul { out, .. }
            | Op::Relu { out, .. }
            | Op::AllReduce { out, .. }
            | Op::AllGather { out, .. }
            | Op::ReduceScatter { out, .. }
            | Op::Cast { out, .. }
            | Op::Reshape { out, .. }
            | Op::Gather { out, .. }
            | Op::RmsNorm { out, .. }
            | Op::Silu { out, .. }
            | Op::Rope { out, .. }
            | Op::CacheWrite { out, .. }
            | Op::Attention { out, .. }
            | Op::LastToken { out, .. }
            | Op::ArgMax { out, .. } => out,
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
            Op::AllReduce { input, out } => format!("op all_reduce {input} {out}"),
            Op::AllGather { input, ranks, out } => format!("op all_gather {input} {ranks} {out}"),
            Op::ReduceScatter { input, ranks, out } => {
                format!("op reduce_scatter {input} {ranks} {out}")
            }
            Op::Cast { input, dtype, out } => format!("op cast {input} {dtype} {out}"),
            Op::Reshape { input, shape, out } => {
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                format!("op reshape {input} [{}] {out}", dims.join(","))
            }
            Op::Gather { table, ids, out } => format!("op gather {table} {ids} {out}"),
            Op::RmsNorm {
                input,
                weight,
                eps,
                out,
            } => format!("op rms_norm {input} {weight} {eps:?} {out}"),
            Op::Silu { input, out } => format!("op silu {input} {out}"),
            Op::Rope {
                input,
                positions,
                theta,
                out,
            } => format!("op rope {input} {positions} {theta:?} {out}"),
            Op::CacheWrite {
                cache,
                new,
                seq_ids,
                positions,
                out,
            } => format!("op cache_write {cache} {new} {seq_ids} {positions} {out}"),
            Op::Attention {
                q,
                k,
                v,
                seq_ids,
                positions,
                out,
            } => format!("op attention {q} {k} {v} {seq_ids} {positions} {out}"),
            Op::LastToken {
                input,
                positions,
                out,
            } => format!("op last_token {input} {positions} {out}"),
            Op::ArgMax { input, dtype, out } => format!("op argmax {input} {dtype} {out}"),
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
