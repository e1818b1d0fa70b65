//! Each bundle member as a simulator model (ops) and as its `metaneff.pb` description.

use super::metaneff::{DataType, MetaNeff, MetaTensor, TensorType};
use super::weights::{all_keys, layer_keys};
use super::{DecoderConfig, Member, MemberKind, Sampling};
use crate::model::{DType, ModelBuilder, Op};

/// Inputs and outputs of a member in the NEFF's order, with their roles.
struct Signature {
    /// `(name, dtype, shape, role)`; role `UserInput`, `InputState` or `InputWeight`.
    inputs: Vec<(String, DType, Vec<u32>, TensorType)>,
    outputs: Vec<(String, DType, Vec<u32>)>,
}

/// Ops of one member, with fresh temporary names.
struct Ops {
    ops: Vec<Op>,
    /// Ranks of the tensor-parallel world (1: no collectives).
    world: u32,
}

impl Ops {
    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }
    fn reshape(&mut self, input: &str, shape: &[u32], out: &str) {
        self.push(Op::Reshape {
            input: input.into(),
            shape: shape.to_vec(),
            out: out.into(),
        });
    }
    fn matmul(&mut self, a: &str, b: &str, out: &str) {
        self.push(Op::MatMul {
            a: a.into(),
            b: b.into(),
            out: out.into(),
        });
    }
    /// `out = a @ b` summed over the ranks (a row-split projection's partial products;
    /// a plain matmul in a world of 1).
    fn reduced_matmul(&mut self, a: &str, b: &str, out: &str) {
        if self.world == 1 {
            return self.matmul(a, b, out);
        }
        let part = format!("{out}.part");
        self.matmul(a, b, &part);
        self.push(Op::AllReduce {
            input: part,
            out: out.into(),
        });
    }
    fn norm(&mut self, c: &DecoderConfig, x: &str, w: &str, out: &str) {
        self.push(Op::RmsNorm {
            input: x.into(),
            weight: w.into(),
            eps: c.rms_norm_eps,
            out: out.into(),
        });
    }

    /// Layer `i` on `x` `[b*t, hidden]` -> `out` `[b*t, hidden]`, writing the layer's
    /// cache outputs `k_l{i}.out` / `v_l{i}.out`.
    fn layer(&mut self, c: &DecoderConfig, i: u32, b: u32, t: u32, x: &str, out: &str) {
        let w = |s: &str| format!("layers.{i}.{s}");
        let v = |s: &str| format!("l{i}.{s}");
        let heads = [b, t, c.heads / self.world, c.head_dim];
        self.norm(c, x, &w("input_layernorm.weight"), &v("n1"));
        for p in ["q", "k", "v"] {
            self.matmul(&v("n1"), &w(&format!("self_attn.{p}_proj.weight")), &v(p));
            self.reshape(&v(p), &heads, &v(&format!("{p}4")));
        }
        for p in ["q", "k"] {
            self.push(Op::Rope {
                input: v(&format!("{p}4")),
                positions: "position_ids".into(),
                theta: c.rope_theta,
                out: v(&format!("{p}r")),
            });
        }
        for (cache, new) in [("k", v("kr")), ("v", v("v4"))] {
            self.push(Op::CacheWrite {
                cache: format!("{cache}_l{i}"),
                new,
                seq_ids: "seq_ids".into(),
                positions: "position_ids".into(),
                out: format!("{cache}_l{i}.out"),
            });
        }
        self.push(Op::Attention {
            q: v("qr"),
            k: format!("k_l{i}.out"),
            v: format!("v_l{i}.out"),
            seq_ids: "seq_ids".into(),
            positions: "position_ids".into(),
            out: v("att4"),
        });
        self.reshape(&v("att4"), &[b * t, c.hidden / self.world], &v("att"));
        self.reduced_matmul(&v("att"), &w("self_attn.o_proj.weight"), &v("o"));
        self.push(Op::Add {
            a: x.into(),
            b: v("o"),
            out: v("h"),
        });
        self.norm(c, &v("h"), &w("post_attention_layernorm.weight"), &v("n2"));
        self.matmul(&v("n2"), &w("mlp.gate_proj.weight"), &v("gate"));
        self.matmul(&v("n2"), &w("mlp.up_proj.weight"), &v("up"));
        self.push(Op::Silu {
            input: v("gate"),
            out: v("act"),
        });
        self.push(Op::Mul {
            a: v("act"),
            b: v("up"),
            out: v("gu"),
        });
        self.reduced_matmul(&v("gu"), &w("mlp.down_proj.weight"), &v("down"));
        self.push(Op::Add {
            a: v("h"),
            b: v("down"),
            out: out.into(),
        });
    }

    /// `x` `[b, hidden]` -> `logits` `[b, vocab]` (and `next_ids` `[b, 1]` for `Ids`).
    fn head(&mut self, c: &DecoderConfig, x: &str, sampling: Sampling, logits: &str) {
        self.norm(c, x, "norm.weight", "final_norm");
        self.matmul("final_norm", "lm_head.weight", logits);
        if sampling == Sampling::Ids {
            self.push(Op::ArgMax {
                input: logits.into(),
                dtype: DType::I32,
                out: "next_ids".into(),
            });
        }
    }
}

fn user(name: &str, shape: &[u32]) -> (String, DType, Vec<u32>, TensorType) {
    (
        name.into(),
        DType::I32,
        shape.to_vec(),
        TensorType::UserInput,
    )
}

fn f32_input(name: &str, shape: &[u32], role: TensorType) -> (String, DType, Vec<u32>, TensorType) {
    (name.into(), DType::F32, shape.to_vec(), role)
}

fn weights_of(keys: Vec<(String, Vec<u32>)>) -> Vec<(String, DType, Vec<u32>, TensorType)> {
    keys.into_iter()
        .map(|(k, s)| (k, DType::F32, s, TensorType::InputWeight))
        .collect()
}

/// The member's simulator model and its metaneff, as one rank of a tensor-parallel
/// world of `world` (1: the whole model).
pub(super) fn build(c: &DecoderConfig, m: &Member, world: u32) -> (ModelBuilder, MetaNeff) {
    let (b, t) = (m.batch, m.seq_len);
    let cache = c.rank_cache_shape(world);
    let hidden3 = [b, t, c.hidden];
    let mut ops = Ops {
        ops: Vec::new(),
        world,
    };
    let tokens = [
        user("input_ids", &[b, t]),
        user("position_ids", &[b, t]),
        user("seq_ids", &[b]),
    ];
    let state = |layers: &[u32]| {
        layers
            .iter()
            .flat_map(|i| {
                [
                    f32_input(&format!("k_l{i}"), &cache, TensorType::InputState),
                    f32_input(&format!("v_l{i}"), &cache, TensorType::InputState),
                ]
            })
            .collect::<Vec<_>>()
    };
    let state_outputs = |layers: &[u32]| {
        layers
            .iter()
            .flat_map(|i| {
                [
                    (format!("k_l{i}.out"), DType::F32, cache.clone()),
                    (format!("v_l{i}.out"), DType::F32, cache.clone()),
                ]
            })
            .collect::<Vec<_>>()
    };
    let result = |sampling: Sampling| match sampling {
        Sampling::Logits => ("logits".to_string(), DType::F32, vec![b, c.vocab]),
        Sampling::Ids => ("next_ids".to_string(), DType::I32, vec![b, 1]),
    };
    let all_layers: Vec<u32> = (0..c.layers).collect();
    let sig = match m.kind {
        MemberKind::Prefill | MemberKind::Decode => {
            ops.push(Op::Gather {
                table: "embed_tokens.weight".into(),
                ids: "input_ids".into(),
                out: "embedded".into(),
            });
            ops.reshape("embedded", &[b * t, c.hidden], "x0");
            for i in 0..c.layers {
                ops.layer(c, i, b, t, &format!("x{i}"), &format!("x{}", i + 1));
            }
            ops.reshape(&format!("x{}", c.layers), &hidden3, "final");
            ops.push(Op::LastToken {
                input: "final".into(),
                positions: "position_ids".into(),
                out: "last".into(),
            });
            let logits = if m.sampling == Sampling::Logits {
                "logits"
            } else {
                "logits_tmp"
            };
            ops.head(c, "last", m.sampling, logits);
            let mut inputs: Vec<_> = tokens.to_vec();
            inputs.extend(state(&all_layers));
            inputs.extend(weights_of(all_keys(c, world)));
            let mut outputs = vec![result(m.sampling)];
            outputs.extend(state_outputs(&all_layers));
            Signature { inputs, outputs }
        }
        MemberKind::ChainEmbed => {
            ops.push(Op::Gather {
                table: "embed_tokens.weight".into(),
                ids: "input_ids".into(),
                out: "hidden".into(),
            });
            let mut inputs = vec![tokens[0].clone()];
            inputs.extend(weights_of(vec![all_keys(c, world).remove(0)]));
            Signature {
                inputs,
                outputs: vec![("hidden".into(), DType::F32, hidden3.to_vec())],
            }
        }
        MemberKind::ChainLayer(i) => {
            ops.reshape("hidden", &[b * t, c.hidden], "x");
            ops.layer(c, i, b, t, "x", "y");
            ops.reshape("y", &hidden3, "y3");
            // A padding token's row is zero, as in the fused members.
            ops.push(Op::LastToken {
                input: "y3".into(),
                positions: "position_ids".into(),
                out: "last".into(),
            });
            ops.reshape("last", &hidden3, "hidden_out");
            let mut inputs = vec![f32_input("hidden", &hidden3, TensorType::UserInput)];
            inputs.extend(tokens[1..].iter().cloned());
            inputs.extend(state(&[i]));
            inputs.extend(weights_of(layer_keys(c, i, world)));
            let mut outputs = vec![("hidden_out".into(), DType::F32, hidden3.to_vec())];
            outputs.extend(state_outputs(&[i]));
            Signature { inputs, outputs }
        }
        MemberKind::ChainHead => {
            ops.reshape("hidden", &[b * t, c.hidden], "last");
            ops.head(c, "last", Sampling::Ids, "logits_tmp");
            let mut inputs = vec![f32_input("hidden", &hidden3, TensorType::UserInput)];
            let keys = all_keys(c, world);
            inputs.extend(weights_of(keys[keys.len() - 2..].to_vec()));
            Signature {
                inputs,
                outputs: vec![result(Sampling::Ids)],
            }
        }
    };
    let mut model = ModelBuilder::new(m.name.clone()).device_time(m.device_time);
    for (name, dtype, shape, _) in &sig.inputs {
        model = model.input(name.clone(), *dtype, shape);
    }
    for (name, dtype, shape) in &sig.outputs {
        model = model.output(name.clone(), *dtype, shape);
    }
    for op in ops.ops {
        model = model.op(op);
    }
    (model, metaneff(m, &sig))
}

fn data_type(d: DType) -> DataType {
    match d {
        DType::F32 => DataType::Float,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::BF16 => DataType::Bfloat16,
        DType::F16 => DataType::Float16,
        DType::U8 => DataType::Uint8,
        DType::I8 => DataType::Int8,
        DType::U16 => DataType::Uint16,
        DType::I16 => DataType::Int16,
        _ => DataType::Undefined,
    }
}

fn metaneff(m: &Member, sig: &Signature) -> MetaNeff {
    let tensor = |name: &str, dtype: DType, shape: &[u32]| MetaTensor {
        name: name.as_bytes().to_vec(),
        shape: shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type(dtype) as i32,
        ..Default::default()
    };
    let inputs: Vec<MetaTensor> = sig
        .inputs
        .iter()
        .map(|(name, dtype, shape, role)| MetaTensor {
            r#type: *role as i32,
            checkpoint_key: (*role != TensorType::UserInput).then(|| name.as_bytes().to_vec()),
            ..tensor(name, *dtype, shape)
        })
        .collect();
    let outputs: Vec<MetaTensor> = sig
        .outputs
        .iter()
        .map(|(name, dtype, shape)| tensor(name, *dtype, shape))
        .collect();
    // `k_l0.out` updates input `k_l0` in place.
    let output_aliases_to = sig
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(o, (name, ..))| {
            let state = name.strip_suffix(".out")?;
            let i = sig.inputs.iter().position(|(n, ..)| n == state)?;
            Some((o as i64, i as i64))
        })
        .collect();
    let count = |role: TensorType| sig.inputs.iter().filter(|x| x.3 == role).count() as i64;
    MetaNeff {
        num_user_inputs: count(TensorType::UserInput),
        num_states: count(TensorType::InputState),
        num_weights: count(TensorType::InputWeight),
        input_tensors: inputs,
        output_tensors: outputs,
        name: m.name.as_bytes().to_vec(),
        output_aliases_to,
        ..Default::default()
    }
}
