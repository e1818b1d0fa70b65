//! The decoder ops of the payload format (`cast`, `reshape`, `gather`, `rms_norm`,
//! `silu`, `rope`, `cache_write`, `attention`, `last_token`, `argmax`): their text
//! form, their dtype and shape rules, and their run (kernels in `nn`).

use super::nn::{self, CacheDims};
use super::types::{DType, Modeled, Op, TensorSpec, modeled_dtype};
use crate::error::{Res, fail};
use nrt_sys::NRT_EXEC_OOB;

/// One-line syntax of every op here, for the parser's error message.
pub(super) const SYNTAX: &str = "cast IN DTYPE OUT, reshape IN [DIMS] OUT, gather TABLE IDS OUT, rms_norm X W EPS OUT, silu IN OUT, rope X POS THETA OUT, cache_write CACHE NEW SEQ POS OUT, attention Q K V SEQ POS OUT, last_token X POS OUT, argmax X DTYPE OUT";

/// Parses one of these ops; `None` when `args` names another kind.
pub(super) fn parse(args: &[&str]) -> Option<Result<Op, String>> {
    let s = |x: &str| x.to_string();
    let float = |x: &str| {
        x.parse::<f64>()
            .map_err(|_| format!("{x:?} is not a number"))
    };
    let dtype = |x: &str| modeled_dtype(x).ok_or_else(|| format!("unknown dtype {x:?}"));
    Some(match args {
        ["cast", input, d, out] => dtype(d).map(|dtype| Op::Cast {
            input: s(input),
            dtype,
            out: s(out),
        }),
        ["reshape", input, dims, out] => super::program::parse_dims(dims)
            .map(|shape| Op::Reshape {
                input: s(input),
                shape,
                out: s(out),
            })
            .ok_or_else(|| {
                format!("reshape dims {dims:?} must look like [2,3] (positive integers) or []")
            }),
        ["gather", table, ids, out] => Ok(Op::Gather {
            table: s(table),
            ids: s(ids),
            out: s(out),
        }),
        ["rms_norm", input, weight, eps, out] => float(eps).map(|eps| Op::RmsNorm {
            input: s(input),
            weight: s(weight),
            eps,
            out: s(out),
        }),
        ["silu", input, out] => Ok(Op::Silu {
            input: s(input),
            out: s(out),
        }),
        ["rope", input, positions, theta, out] => float(theta).map(|theta| Op::Rope {
            input: s(input),
            positions: s(positions),
            theta,
            out: s(out),
        }),
        ["cache_write", cache, new, seq, pos, out] => Ok(Op::CacheWrite {
            cache: s(cache),
            new: s(new),
            seq_ids: s(seq),
            positions: s(pos),
            out: s(out),
        }),
        ["attention", q, k, v, seq, pos, out] => Ok(Op::Attention {
            q: s(q),
            k: s(k),
            v: s(v),
            seq_ids: s(seq),
            positions: s(pos),
            out: s(out),
        }),
        ["last_token", input, positions, out] => Ok(Op::LastToken {
            input: s(input),
            positions: s(positions),
            out: s(out),
        }),
        ["argmax", input, d, out] => dtype(d).map(|dtype| Op::ArgMax {
            input: s(input),
            dtype,
            out: s(out),
        }),
        _ => return None,
    })
}

type Get<'a> = &'a dyn Fn(&str) -> Result<TensorSpec, String>;

fn need(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn f32_of(s: &TensorSpec) -> Result<(), String> {
    need(s.dtype == DType::F32, || {
        format!(
            "{:?} is {}, but this op computes in f32 only",
            s.name, s.dtype
        )
    })
}

fn integer(s: &TensorSpec) -> Result<(), String> {
    need(s.dtype.is_integer(), || {
        format!(
            "{:?} is {}, but must have an integer dtype",
            s.name, s.dtype
        )
    })
}

fn rank(s: &TensorSpec, r: usize, form: &str) -> Result<(), String> {
    need(s.shape.len() == r, || {
        format!("{:?} has shape {:?}, but must be {form}", s.name, s.shape)
    })
}

/// Checks the tokens' `seq` `[b]` and `pos` `[b, t]` against `b`, `t`.
fn tokens(seq: Option<&TensorSpec>, pos: &TensorSpec, b: u32, t: u32) -> Result<(), String> {
    integer(pos)?;
    need(pos.shape == [b, t], || {
        format!(
            "positions {:?} have shape {:?}, but must be [{b},{t}] ([batch, tokens])",
            pos.name, pos.shape
        )
    })?;
    if let Some(seq) = seq {
        integer(seq)?;
        need(seq.shape == [b], || {
            format!(
                "seq_ids {:?} have shape {:?}, but must be [{b}] ([batch])",
                seq.name, seq.shape
            )
        })?;
    }
    Ok(())
}

/// Checks a cache `c` `[slots, heads, ctx, head_dim]` against the rows `n` `[batch,
/// tokens, heads, head_dim]` that write or query it, and their `seq` / `pos`.
fn cache_rows(
    c: &TensorSpec,
    n: &TensorSpec,
    seq: &TensorSpec,
    pos: &TensorSpec,
) -> Result<(), String> {
    rank(c, 4, "[slots, heads, ctx, head_dim]")?;
    rank(n, 4, "[batch, tokens, heads, head_dim]")?;
    need(n.shape[2] == c.shape[1] && n.shape[3] == c.shape[3], || {
        format!(
            "{:?} {:?} does not match cache {:?} {:?} in heads and head_dim",
            n.name, n.shape, c.name, c.shape
        )
    })?;
    tokens(Some(seq), pos, n.shape[0], n.shape[1])
}

/// dtype and shape of the value `op` writes (`op` is one of this file's ops).
pub(super) fn result_spec(op: &Op, get: Get) -> Result<(DType, Vec<u32>), String> {
    Ok(match op {
        Op::Cast { input, dtype, .. } => {
            let s = get(input)?;
            need(s.dtype != DType::F16 && *dtype != DType::F16, || {
                format!("cast from {} to {dtype}: f16 is not supported", s.dtype)
            })?;
            (*dtype, s.shape)
        }
        Op::Reshape { input, shape, .. } => {
            let s = get(input)?;
            let count = |d: &[u32]| d.iter().map(|&x| x as u64).product::<u64>();
            need(count(&s.shape) == count(shape), || {
                format!(
                    "cannot reshape {:?} of shape {:?} to {shape:?}: element counts differ",
                    s.name, s.shape
                )
            })?;
            (s.dtype, shape.clone())
        }
        Op::Gather { table, ids, .. } => {
            let (t, i) = (get(table)?, get(ids)?);
            integer(&i)?;
            need(!t.shape.is_empty(), || {
                format!("table {:?} is a scalar", t.name)
            })?;
            let mut shape = i.shape.clone();
            shape.extend_from_slice(&t.shape[1..]);
            (t.dtype, shape)
        }
        Op::RmsNorm { input, weight, .. } => {
            let (x, w) = (get(input)?, get(weight)?);
            f32_of(&x)?;
            f32_of(&w)?;
            need(
                !x.shape.is_empty() && w.shape == [*x.shape.last().unwrap()],
                || {
                    format!(
                        "weight {:?} has shape {:?}, but must be [d] for input {:?} [..., d]",
                        w.name, w.shape, x.shape
                    )
                },
            )?;
            (x.dtype, x.shape)
        }
        Op::Silu { input, .. } => {
            let x = get(input)?;
            f32_of(&x)?;
            (x.dtype, x.shape)
        }
        Op::Rope {
            input, positions, ..
        } => {
            let (x, p) = (get(input)?, get(positions)?);
            f32_of(&x)?;
            rank(&x, 4, "[batch, tokens, heads, head_dim]")?;
            need(x.shape[3] % 2 == 0, || {
                format!("head_dim {} of {:?} is odd", x.shape[3], x.name)
            })?;
            tokens(None, &p, x.shape[0], x.shape[1])?;
            (x.dtype, x.shape)
        }
        Op::CacheWrite {
            cache,
            new,
            seq_ids,
            positions,
            ..
        } => {
            let (c, n) = (get(cache)?, get(new)?);
            need(c.dtype == n.dtype, || {
                format!(
                    "cache {:?} is {} but {:?} is {}",
                    c.name, c.dtype, n.name, n.dtype
                )
            })?;
            cache_rows(&c, &n, &get(seq_ids)?, &get(positions)?)?;
            (c.dtype, c.shape)
        }
        Op::Attention {
            q,
            k,
            v,
            seq_ids,
            positions,
            ..
        } => {
            let (q, k, v) = (get(q)?, get(k)?, get(v)?);
            for s in [&q, &k, &v] {
                f32_of(s)?;
            }
            need(k.shape == v.shape, || {
                format!(
                    "caches {:?} {:?} and {:?} {:?} differ",
                    k.name, k.shape, v.name, v.shape
                )
            })?;
            cache_rows(&k, &q, &get(seq_ids)?, &get(positions)?)?;
            (q.dtype, q.shape)
        }
        Op::LastToken {
            input, positions, ..
        } => {
            let x = get(input)?;
            need(x.shape.len() >= 2, || {
                format!(
                    "{:?} has shape {:?}, but must be [batch, tokens, ...]",
                    x.name, x.shape
                )
            })?;
            tokens(None, &get(positions)?, x.shape[0], x.shape[1])?;
            let mut shape = vec![x.shape[0]];
            shape.extend_from_slice(&x.shape[2..]);
            (x.dtype, shape)
        }
        Op::ArgMax { input, dtype, .. } => {
            let x = get(input)?;
            need(matches!(x.dtype, DType::F32 | DType::BF16), || {
                format!("argmax of {:?}: {} is not f32 or bf16", x.name, x.dtype)
            })?;
            need(dtype.is_integer(), || {
                format!("argmax into {dtype}: not an integer dtype")
            })?;
            need(!x.shape.is_empty(), || {
                format!("argmax of scalar {:?}", x.name)
            })?;
            let mut shape = x.shape.clone();
            *shape.last_mut().unwrap() = 1;
            (*dtype, shape)
        }
        other => unreachable!("{} is not a decoder op", other.kind()),
    })
}

type Value<'a> = &'a dyn Fn(&str) -> (&'a TensorSpec, &'a [u8]);

fn dims(c: &TensorSpec, n: &TensorSpec) -> CacheDims {
    let d = |s: &TensorSpec, i: usize| s.shape[i] as usize;
    CacheDims {
        slots: d(c, 0),
        heads: d(c, 1),
        ctx: d(c, 2),
        head_dim: d(c, 3),
        batch: d(n, 0),
        tokens: d(n, 1),
    }
}

/// The failure of op `index` of model `model` that refused an index: what a real NEFF's
/// bad indirect index gives (`NRT_EXEC_OOB`); the execution writes no output.
pub(super) fn index_failure<T>(model: &str, index: usize, op: &Op, reason: String) -> Res<T> {
    fail(
        NRT_EXEC_OOB,
        format!(
            "model '{model}': op {index} ({}) refused an index: {reason}",
            op.kind()
        ),
    )
}

/// Runs a checked op; `Err` is the reason an index was refused ([`index_failure`]).
pub(super) fn run(op: &Op, get: Value) -> Result<Vec<u8>, String> {
    let idx = |name: &str| {
        let (s, v) = get(name);
        nn::ints(s.dtype, v)
    };
    Ok(match op {
        Op::Cast { input, dtype, .. } => {
            let (s, v) = get(input);
            nn::cast(s.dtype, *dtype, v)
        }
        Op::Reshape { input, .. } => get(input).1.to_vec(),
        Op::Gather { table, ids, .. } => {
            let (t, tv) = get(table);
            let rows = t.shape[0] as usize;
            let row_bytes = t.byte_size() / rows;
            nn::gather(tv, rows, row_bytes, &idx(ids)).map_err(|e| format!("{ids:?}: {e}"))?
        }
        Op::RmsNorm {
            input, weight, eps, ..
        } => {
            let (s, x) = get(input);
            nn::rms_norm(x, get(weight).1, *s.shape.last().unwrap() as usize, *eps)
        }
        Op::Silu { input, .. } => nn::silu(get(input).1),
        Op::Rope {
            input,
            positions,
            theta,
            ..
        } => {
            let (s, x) = get(input);
            let (h, d) = (s.shape[2] as usize, s.shape[3] as usize);
            nn::rope(x, h, d, &idx(positions), *theta).map_err(|e| format!("{positions:?}: {e}"))?
        }
        Op::CacheWrite {
            cache,
            new,
            seq_ids,
            positions,
            ..
        } => {
            let ((c, cv), (n, nv)) = (get(cache), get(new));
            nn::cache_write(
                cv,
                nv,
                c.dtype.size(),
                dims(c, n),
                &idx(seq_ids),
                &idx(positions),
            )
            .map_err(|e| format!("{seq_ids:?} / {positions:?}: {e}"))?
        }
        Op::Attention {
            q,
            k,
            v,
            seq_ids,
            positions,
            ..
        } => {
            let ((qs, qv), (ks, kv)) = (get(q), get(k));
            nn::attention(
                qv,
                kv,
                get(v).1,
                dims(ks, qs),
                &idx(seq_ids),
                &idx(positions),
            )
            .map_err(|e| format!("{seq_ids:?} / {positions:?}: {e}"))?
        }
        Op::LastToken {
            input, positions, ..
        } => {
            let (s, x) = get(input);
            let (b, t) = (s.shape[0] as usize, s.shape[1] as usize);
            nn::last_token(x, b, t, s.byte_size() / (b * t), &idx(positions))
        }
        Op::ArgMax { input, dtype, .. } => {
            let (s, x) = get(input);
            nn::argmax(s.dtype, x, *s.shape.last().unwrap() as usize, *dtype)
        }
        other => unreachable!("{} is not a decoder op", other.kind()),
    })
}
