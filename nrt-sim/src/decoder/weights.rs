//! The decoder's seeded random weights and their `.safetensors` file.

use super::DecoderConfig;
use std::path::Path;

/// One weight tensor: its checkpoint key, shape and `f32` values (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Checkpoint key (also the input name of every member that takes it).
    pub name: String,
    /// Shape; projections are `[in, out]`.
    pub shape: Vec<u32>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// What a weight is, for its generator.
#[derive(Clone, Copy)]
enum Init {
    /// Uniform in `[-a, a)`, `a = 1/sqrt(fan_in)`.
    Uniform { fan_in: u32 },
    /// Uniform in `[-1, 1)` (the embedding table).
    Unit,
    /// `1 + u`, `u` uniform in `[-0.1, 0.1)` (norm gains).
    Gain,
}

/// How a weight is split over the ranks of a tensor-parallel world.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Every rank holds all of it (embeddings, norms, LM head).
    Replicated,
    /// Column-split (`[in, out]` -> `[in, out / W]`): q, k, v, gate and up projections.
    Columns,
    /// Row-split (`[in, out]` -> `[in / W, out]`): o and down projections.
    Rows,
}

fn split_of(name: &str) -> Split {
    const COLUMNS: [&str; 5] = [
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
    ];
    const ROWS: [&str; 2] = ["self_attn.o_proj.weight", "mlp.down_proj.weight"];
    if !name.starts_with("layers.") {
        Split::Replicated
    } else if COLUMNS.iter().any(|s| name.ends_with(s)) {
        Split::Columns
    } else if ROWS.iter().any(|s| name.ends_with(s)) {
        Split::Rows
    } else {
        Split::Replicated
    }
}

/// The shape of one rank's shard of `name` (full shape `shape`) in a world of `world`.
fn shard_shape(name: &str, shape: &[u32], world: u32) -> Vec<u32> {
    let mut s = shape.to_vec();
    match split_of(name) {
        Split::Replicated => {}
        Split::Columns => s[1] /= world,
        Split::Rows => s[0] /= world,
    }
    s
}

/// Checkpoint keys of layer `i`'s weights in input order, with one rank's shapes in a
/// world of `world` (1: the full shapes).
pub(super) fn layer_keys(c: &DecoderConfig, i: u32, world: u32) -> Vec<(String, Vec<u32>)> {
    let (h, m) = (c.hidden, c.intermediate);
    let p = |s: &str| format!("layers.{i}.{s}");
    vec![
        (p("input_layernorm.weight"), vec![h]),
        (p("self_attn.q_proj.weight"), vec![h, h]),
        (p("self_attn.k_proj.weight"), vec![h, h]),
        (p("self_attn.v_proj.weight"), vec![h, h]),
        (p("self_attn.o_proj.weight"), vec![h, h]),
        (p("post_attention_layernorm.weight"), vec![h]),
        (p("mlp.gate_proj.weight"), vec![h, m]),
        (p("mlp.up_proj.weight"), vec![h, m]),
        (p("mlp.down_proj.weight"), vec![m, h]),
    ]
    .into_iter()
    .map(|(name, shape)| {
        let shape = shard_shape(&name, &shape, world);
        (name, shape)
    })
    .collect()
}

/// Every weight key with one rank's shape in a world of `world` (1: the full shapes),
/// in the checkpoint's order.
pub(super) fn all_keys(c: &DecoderConfig, world: u32) -> Vec<(String, Vec<u32>)> {
    let mut keys = vec![("embed_tokens.weight".to_string(), vec![c.vocab, c.hidden])];
    for i in 0..c.layers {
        keys.extend(layer_keys(c, i, world));
    }
    keys.push(("norm.weight".into(), vec![c.hidden]));
    keys.push(("lm_head.weight".into(), vec![c.hidden, c.vocab]));
    keys
}

/// FNV-1a 64 of `bytes`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The decoder's weights for `seed`: for each tensor a SplitMix64 stream seeded with
/// `seed ^ FNV-1a-64(key)`, one draw per element in row-major order, `u = (z >> 40) *
/// 2^-24` (uniform in `[0, 1)`, exact in `f32`), then (in `f32`) `(2u - 1) * a` with `a =
/// (1 / sqrt(fan_in))` rounded to `f32` for projections (`fan_in` = rows), `2u - 1` for
/// `embed_tokens`, `1 + (2u - 1) * 0.1` for norm gains.
pub fn weights(config: &DecoderConfig, seed: u64) -> Vec<Weight> {
    all_keys(config, 1)
        .into_iter()
        .map(|(name, shape)| {
            let init = if shape.len() == 1 {
                Init::Gain
            } else if name == "embed_tokens.weight" {
                Init::Unit
            } else {
                Init::Uniform { fan_in: shape[0] }
            };
            let count: usize = shape.iter().map(|&d| d as usize).product();
            let mut state = seed ^ fnv1a(name.as_bytes());
            let values = (0..count)
                .map(|_| {
                    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    let u = (z >> 40) as f32 * (1.0 / (1u32 << 24) as f32);
                    let x = 2.0 * u - 1.0;
                    match init {
                        Init::Uniform { fan_in } => x * (1.0 / (fan_in as f64).sqrt()) as f32,
                        Init::Unit => x,
                        Init::Gain => 1.0 + x * 0.1,
                    }
                })
                .collect();
            Weight {
                name,
                shape,
                values,
            }
        })
        .collect()
}

/// Rank `rank`'s shard of the full `weights` in a tensor-parallel world of `world`:
/// the q, k, v, gate and up projections column-split (the rank's `out / world` columns,
/// for q, k and v its `heads / world` heads), the o and down projections row-split (its
/// `in / world` rows), everything else whole. `world` must divide the split dimensions
/// (as [`DecoderBundleOptions::world`](super::DecoderBundleOptions::world) does) and
/// `rank` be below it.
pub fn shard(weights: &[Weight], world: u32, rank: u32) -> Vec<Weight> {
    let (world, rank) = (world.max(1) as usize, rank as usize);
    weights
        .iter()
        .map(|w| {
            let shape = shard_shape(&w.name, &w.shape, world as u32);
            let values = match split_of(&w.name) {
                Split::Replicated => w.values.clone(),
                Split::Columns => {
                    let cols = w.shape[1] as usize;
                    let part = cols / world;
                    w.values
                        .chunks_exact(cols)
                        .flat_map(|row| &row[rank * part..(rank + 1) * part])
                        .copied()
                        .collect()
                }
                Split::Rows => {
                    let cols = w.shape[1] as usize;
                    let part = w.shape[0] as usize / world * cols;
                    w.values[rank * part..(rank + 1) * part].to_vec()
                }
            };
            Weight {
                name: w.name.clone(),
                shape,
                values,
            }
        })
        .collect()
}

/// Writes `weights` as a `.safetensors` file (F32 tensors, keys as names).
pub(super) fn write_safetensors(weights: &[Weight], path: &Path) -> Result<(), String> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = weights
        .iter()
        .map(|w| {
            let data = w.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let shape = w.shape.iter().map(|&d| d as usize).collect();
            (w.name.clone(), shape, data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("weight tensor: {e}"))?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
