//! A plain-Rust f32 reference of the small decoder of the generation spec (Llama-shaped:
//! RMSNorm, rotary positions, causal attention, SiLU-gated MLP), written from the spec
//! and independent of nrt-sim's op code: its own `.safetensors` reader, no cache (every
//! call recomputes the whole sequence).

use std::collections::HashMap;
use std::path::Path;

/// Sizes of the small decoder (GENERATION_SPEC.md).
pub const VOCAB: usize = 256;
pub const HIDDEN: usize = 64;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const HEAD_DIM: usize = 16;
pub const INTERMEDIATE: usize = 128;
const EPS: f32 = 1e-5;
const THETA: f64 = 10000.0;

/// The weights of a `.safetensors` file: name -> (shape, f32 values).
pub struct Checkpoint {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Checkpoint {
    /// Reads an all-F32 `.safetensors` file: 8-byte little-endian header length, a JSON
    /// header `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the data.
    pub fn read(path: &Path) -> Checkpoint {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors header is JSON");
        let data = &bytes[8 + n..];
        let mut tensors = HashMap::new();
        for (name, info) in header.as_object().expect("header is an object") {
            if name == "__metadata__" {
                continue;
            }
            assert_eq!(info["dtype"], "F32", "{name}");
            let shape: Vec<usize> = info["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let off = info["data_offsets"].as_array().unwrap();
            let (a, b) = (
                off[0].as_u64().unwrap() as usize,
                off[1].as_u64().unwrap() as usize,
            );
            let values: Vec<f32> = data[a..b]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
            tensors.insert(name.clone(), (shape, values));
        }
        Checkpoint { tensors }
    }

    pub fn get(&self, name: &str) -> &[f32] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("checkpoint has no {name}"))
            .1
    }
}

/// `x [n, k] * w [k, m]`.
fn matmul(x: &[f32], w: &[f32], k: usize, m: usize) -> Vec<f32> {
    let n = x.len() / k;
    let mut out = vec![0.0f32; n * m];
    for r in 0..n {
        for c in 0..m {
            let mut acc = 0.0f32;
            for i in 0..k {
                acc += x[r * k + i] * w[i * m + c];
            }
            out[r * m + c] = acc;
        }
    }
    out
}

fn rms_norm(x: &[f32], w: &[f32]) -> Vec<f32> {
    let d = w.len();
    x.chunks(d)
        .flat_map(|row| {
            let mean = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let inv = 1.0 / (mean + EPS).sqrt();
            row.iter()
                .zip(w)
                .map(move |(v, g)| v * inv * g)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Rotates each head of each row of `x [n, HIDDEN]`, row `r` at position `r`.
fn rope(x: &mut [f32]) {
    let half = HEAD_DIM / 2;
    for (pos, row) in x.chunks_mut(HIDDEN).enumerate() {
        for head in row.chunks_mut(HEAD_DIM) {
            for j in 0..half {
                let angle = pos as f64 / THETA.powf(2.0 * j as f64 / HEAD_DIM as f64);
                let (s, c) = (angle.sin() as f32, angle.cos() as f32);
                let (a, b) = (head[j], head[j + half]);
                head[j] = a * c - b * s;
                head[j + half] = a * s + b * c;
            }
        }
    }
}

/// The decoder over a checkpoint.
pub struct Reference {
    pub ckpt: Checkpoint,
}

impl Reference {
    pub fn load(path: &Path) -> Reference {
        Reference {
            ckpt: Checkpoint::read(path),
        }
    }

    /// Logits `[ids.len()][VOCAB]` of the sequence `ids` (token `i` at position `i`),
    /// recomputed from scratch.
    pub fn forward(&self, ids: &[u32]) -> Vec<Vec<f32>> {
        let n = ids.len();
        let w = |s: &str| self.ckpt.get(s);
        let embed = w("embed_tokens.weight");
        let mut x: Vec<f32> = ids
            .iter()
            .flat_map(|&id| embed[id as usize * HIDDEN..][..HIDDEN].to_vec())
            .collect();
        for l in 0..LAYERS {
            let lw = |s: &str| self.ckpt.get(&format!("layers.{l}.{s}"));
            let h1 = rms_norm(&x, lw("input_layernorm.weight"));
            let mut q = matmul(&h1, lw("self_attn.q_proj.weight"), HIDDEN, HIDDEN);
            let mut k = matmul(&h1, lw("self_attn.k_proj.weight"), HIDDEN, HIDDEN);
            let v = matmul(&h1, lw("self_attn.v_proj.weight"), HIDDEN, HIDDEN);
            rope(&mut q);
            rope(&mut k);
            let mut att = vec![0.0f32; n * HIDDEN];
            let scale = 1.0 / (HEAD_DIM as f32).sqrt();
            for i in 0..n {
                for h in 0..HEADS {
                    let o = h * HEAD_DIM;
                    let qi = &q[i * HIDDEN + o..][..HEAD_DIM];
                    let scores: Vec<f32> = (0..=i)
                        .map(|j| {
                            let kj = &k[j * HIDDEN + o..][..HEAD_DIM];
                            qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f32::MIN, f32::max);
                    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f32 = exps.iter().sum();
                    for c in 0..HEAD_DIM {
                        let mut acc = 0.0f32;
                        for (j, e) in exps.iter().enumerate() {
                            acc += e * v[j * HIDDEN + o + c];
                        }
                        att[i * HIDDEN + o + c] = acc / total;
                    }
                }
            }
            let o = matmul(&att, lw("self_attn.o_proj.weight"), HIDDEN, HIDDEN);
            let h: Vec<f32> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
            let h2 = rms_norm(&h, lw("post_attention_layernorm.weight"));
            let gate = matmul(&h2, lw("mlp.gate_proj.weight"), HIDDEN, INTERMEDIATE);
            let up = matmul(&h2, lw("mlp.up_proj.weight"), HIDDEN, INTERMEDIATE);
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = matmul(&act, lw("mlp.down_proj.weight"), INTERMEDIATE, HIDDEN);
            x = h.iter().zip(&down).map(|(a, b)| a + b).collect();
        }
        let y = rms_norm(&x, w("norm.weight"));
        matmul(&y, w("lm_head.weight"), HIDDEN, VOCAB)
            .chunks(VOCAB)
            .map(<[f32]>::to_vec)
            .collect()
    }
}

/// The index of the largest value; ties go to the lowest index.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// `max_i |a_i - b_i| / max_i |b_i|`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0f32, f32::max);
    diff / scale
}
