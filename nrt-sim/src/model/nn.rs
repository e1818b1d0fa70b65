//! Kernels of the decoder ops (`cast`, `gather`, `rms_norm`, `silu`, `rope`,
//! `cache_write`, `attention`, `last_token`, `argmax`) over little-endian byte buffers.
//! The arithmetic is the one MODEL_FORMAT.md documents, step for step: `f32` values,
//! sums in increasing index order starting from `0.0`, one rounding per operation.
//! Index checks return the reason as text; the caller fails the execution with it.

use super::compute::Bf16;
use super::types::DType;

/// Padding position: no cache write, the token is ignored, its output row is zero.
pub(super) const PAD: i128 = -1;

pub(super) fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub(super) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The elements of an integer tensor, widened without loss.
pub(super) fn ints(dtype: DType, bytes: &[u8]) -> Vec<i128> {
    bytes
        .chunks_exact(dtype.size())
        .map(|c| match dtype {
            DType::U8 => c[0] as i128,
            DType::I8 => c[0] as i8 as i128,
            DType::U16 => u16::from_le_bytes(c.try_into().unwrap()) as i128,
            DType::I16 => i16::from_le_bytes(c.try_into().unwrap()) as i128,
            DType::U32 => u32::from_le_bytes(c.try_into().unwrap()) as i128,
            DType::I32 => i32::from_le_bytes(c.try_into().unwrap()) as i128,
            DType::U64 => u64::from_le_bytes(c.try_into().unwrap()) as i128,
            DType::I64 => i64::from_le_bytes(c.try_into().unwrap()) as i128,
            // Program::new admits only integer dtypes here.
            _ => unreachable!("checked at build time"),
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Scalar {
    Int(i128),
    Float(f32),
}

fn load(dtype: DType, c: &[u8]) -> Scalar {
    match dtype {
        DType::F32 => Scalar::Float(f32::from_le_bytes(c.try_into().unwrap())),
        DType::BF16 => Scalar::Float(Bf16(u16::from_le_bytes(c.try_into().unwrap())).to_f32()),
        _ => Scalar::Int(ints(dtype, c)[0]),
    }
}

fn store(dtype: DType, v: Scalar, out: &mut Vec<u8>) {
    // `as` from i128 wraps; from f32 rounds toward zero and saturates (NaN -> 0).
    macro_rules! int {
        ($t:ty) => {
            match v {
                Scalar::Int(i) => i as $t,
                Scalar::Float(f) => f as $t,
            }
            .to_le_bytes()
        };
    }
    let as_f32 = || match v {
        Scalar::Int(i) => i as f32,
        Scalar::Float(f) => f,
    };
    match dtype {
        DType::U8 => out.extend_from_slice(&int!(u8)),
        DType::I8 => out.extend_from_slice(&int!(i8)),
        DType::U16 => out.extend_from_slice(&int!(u16)),
        DType::I16 => out.extend_from_slice(&int!(i16)),
        DType::U32 => out.extend_from_slice(&int!(u32)),
        DType::I32 => out.extend_from_slice(&int!(i32)),
        DType::U64 => out.extend_from_slice(&int!(u64)),
        DType::I64 => out.extend_from_slice(&int!(i64)),
        DType::F32 => out.extend_from_slice(&as_f32().to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&Bf16::from_f32(as_f32()).0.to_le_bytes()),
        // f16 casts and dtypes the simulator does not model are refused at build time.
        _ => unreachable!("f16 casts are rejected at build time"),
    }
}

pub(super) fn cast(from: DType, to: DType, x: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / from.size() * to.size());
    for c in x.chunks_exact(from.size()) {
        store(to, load(from, c), &mut out);
    }
    out
}

/// Rows of `table` (`rows` rows of `row_bytes`) picked by `ids`.
pub(super) fn gather(
    table: &[u8],
    rows: usize,
    row_bytes: usize,
    ids: &[i128],
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(ids.len() * row_bytes);
    for (i, &id) in ids.iter().enumerate() {
        if id < 0 || id >= rows as i128 {
            return Err(format!(
                "id {id} at flat index {i} is outside the table's rows 0..{rows}"
            ));
        }
        let at = id as usize * row_bytes;
        out.extend_from_slice(&table[at..at + row_bytes]);
    }
    Ok(out)
}

pub(super) fn rms_norm(x: &[u8], w: &[u8], d: usize, eps: f64) -> Vec<u8> {
    let (x, w) = (f32s(x), f32s(w));
    let eps = eps as f32;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(d) {
        let ss = row.iter().fold(0.0f32, |acc, &v| acc + v * v);
        let s = (ss / d as f32 + eps).sqrt();
        out.extend(row.iter().zip(&w).map(|(&v, &g)| (v / s) * g));
    }
    f32_bytes(&out)
}

pub(super) fn silu(x: &[u8]) -> Vec<u8> {
    let x = f32s(x);
    let out: Vec<f32> = x.iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    f32_bytes(&out)
}

/// Checks every position: -1 (padding) or `0..limit` (`None`: no upper limit).
fn check_positions(pos: &[i128], limit: Option<usize>) -> Result<(), String> {
    for (i, &p) in pos.iter().enumerate() {
        let bad = p < PAD || limit.is_some_and(|c| p >= c as i128);
        if bad {
            let range = match limit {
                Some(c) => format!("0..{c}"),
                None => "0 or more".to_string(),
            };
            return Err(format!(
                "position {p} at flat index {i} is neither -1 (padding) nor in {range}"
            ));
        }
    }
    Ok(())
}

/// `x` `[b, t, h, d]`, `pos` `[b * t]`.
pub(super) fn rope(
    x: &[u8],
    h: usize,
    d: usize,
    pos: &[i128],
    theta: f64,
) -> Result<Vec<u8>, String> {
    check_positions(pos, None)?;
    let x = f32s(x);
    let half = d / 2;
    let mut out = vec![0.0f32; x.len()];
    for (token, &p) in pos.iter().enumerate() {
        if p == PAD {
            continue;
        }
        for j in 0..half {
            let inv_freq = theta.powf(-((2 * j) as f64) / d as f64);
            let angle = p as f64 * inv_freq;
            let (c, s) = (angle.cos() as f32, angle.sin() as f32);
            for head in 0..h {
                let base = (token * h + head) * d;
                let (a, b) = (x[base + j], x[base + j + half]);
                out[base + j] = a * c - b * s;
                out[base + j + half] = b * c + a * s;
            }
        }
    }
    Ok(f32_bytes(&out))
}

/// Geometry of a cache `[slots, heads, ctx, head_dim]` and of the tokens `[b, t]`.
#[derive(Clone, Copy)]
pub(super) struct CacheDims {
    pub(super) slots: usize,
    pub(super) heads: usize,
    pub(super) ctx: usize,
    pub(super) head_dim: usize,
    pub(super) batch: usize,
    pub(super) tokens: usize,
}

impl CacheDims {
    /// Checks positions and the slot of every row with a non-padding token.
    fn check(&self, seq: &[i128], pos: &[i128]) -> Result<(), String> {
        check_positions(pos, Some(self.ctx))?;
        for (b, &s) in seq.iter().enumerate() {
            let active = pos[b * self.tokens..(b + 1) * self.tokens]
                .iter()
                .any(|&p| p != PAD);
            if active && (s < 0 || s >= self.slots as i128) {
                return Err(format!(
                    "seq_id {s} of row {b} is outside the cache's slots 0..{}",
                    self.slots
                ));
            }
        }
        Ok(())
    }

    /// Element offset of `(slot, head, position)` in the cache.
    fn at(&self, slot: usize, head: usize, p: usize) -> usize {
        ((slot * self.heads + head) * self.ctx + p) * self.head_dim
    }
}

/// The cache with the new rows written (elements of `elem` bytes).
pub(super) fn cache_write(
    cache: &[u8],
    new: &[u8],
    elem: usize,
    g: CacheDims,
    seq: &[i128],
    pos: &[i128],
) -> Result<Vec<u8>, String> {
    g.check(seq, pos)?;
    let mut out = cache.to_vec();
    let row = g.head_dim * elem;
    for b in 0..g.batch {
        for t in 0..g.tokens {
            let p = pos[b * g.tokens + t];
            if p == PAD {
                continue;
            }
            for head in 0..g.heads {
                let src = ((b * g.tokens + t) * g.heads + head) * row;
                let dst = g.at(seq[b] as usize, head, p as usize) * elem;
                out[dst..dst + row].copy_from_slice(&new[src..src + row]);
            }
        }
    }
    Ok(out)
}

pub(super) fn attention(
    q: &[u8],
    k: &[u8],
    v: &[u8],
    g: CacheDims,
    seq: &[i128],
    pos: &[i128],
) -> Result<Vec<u8>, String> {
    g.check(seq, pos)?;
    let (q, k, v) = (f32s(q), f32s(k), f32s(v));
    let d = g.head_dim;
    let scale = (1.0 / (d as f64).sqrt()) as f32;
    let mut out = vec![0.0f32; q.len()];
    let mut scores = Vec::with_capacity(g.ctx);
    for b in 0..g.batch {
        for t in 0..g.tokens {
            let p = pos[b * g.tokens + t];
            if p == PAD {
                continue;
            }
            let slot = seq[b] as usize;
            for head in 0..g.heads {
                let qo = ((b * g.tokens + t) * g.heads + head) * d;
                let qv = &q[qo..qo + d];
                scores.clear();
                for j in 0..=p as usize {
                    let kv = &k[g.at(slot, head, j)..][..d];
                    let dot = qv.iter().zip(kv).fold(0.0f32, |acc, (a, b)| acc + a * b);
                    scores.push(dot * scale);
                }
                let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                scores.iter_mut().for_each(|s| *s = (*s - m).exp());
                let z = scores.iter().fold(0.0f32, |acc, &e| acc + e);
                for c in 0..d {
                    let num = scores
                        .iter()
                        .enumerate()
                        .fold(0.0f32, |acc, (j, &e)| acc + e * v[g.at(slot, head, j) + c]);
                    out[qo + c] = num / z;
                }
            }
        }
    }
    Ok(f32_bytes(&out))
}

/// `x` `[b, t, r...]` (`row` bytes per token), `pos` `[b * t]`.
pub(super) fn last_token(
    x: &[u8],
    batch: usize,
    tokens: usize,
    row: usize,
    pos: &[i128],
) -> Vec<u8> {
    let mut out = vec![0u8; batch * row];
    for b in 0..batch {
        if let Some(t) = (0..tokens).rev().find(|&t| pos[b * tokens + t] != PAD) {
            let src = (b * tokens + t) * row;
            out[b * row..(b + 1) * row].copy_from_slice(&x[src..src + row]);
        }
    }
    out
}

/// Argmax over rows of `n` (`from` is `f32` or `bf16`), as `to` (an integer dtype).
pub(super) fn argmax(from: DType, x: &[u8], n: usize, to: DType) -> Vec<u8> {
    let values: Vec<f32> = match from {
        DType::BF16 => x
            .chunks_exact(2)
            .map(|c| Bf16(u16::from_le_bytes(c.try_into().unwrap())).to_f32())
            .collect(),
        _ => f32s(x),
    };
    let mut out = Vec::new();
    for row in values.chunks_exact(n) {
        let mut best = 0;
        for (i, &v) in row.iter().enumerate().skip(1) {
            if v > row[best] {
                best = i;
            }
        }
        store(to, Scalar::Int(best as i128), &mut out);
    }
    out
}
