//! Collective ops of a model: their result shapes, their link cost, and how every rank's
//! contribution combines into this rank's result. The exchange itself (who meets whom)
//! is the caller's: an [`Exchange`] gives a program the contributions of every rank.

use super::compute::{self, BinOp};
use super::types::{DType, Modeled, Op, TensorSpec};
use crate::error::Res;
use std::time::Duration;

/// What a running program needs from its group: its place, and every rank's
/// contribution to one collective step.
pub(crate) trait Exchange {
    /// This execution's rank (0 for a model loaded alone).
    fn rank(&self) -> u32;

    /// Contributes this rank's `bytes` to collective number `step` (0, 1, ... in program
    /// order) of the current execution and returns every rank's contribution, in rank
    /// order (this rank's included).
    fn exchange(&mut self, step: usize, bytes: Vec<u8>) -> Res<Vec<Vec<u8>>>;
}

/// The exchange of a model loaded alone (`nrt_load`): a world of one.
pub(crate) struct Solo;

impl Exchange for Solo {
    fn rank(&self) -> u32 {
        0
    }

    fn exchange(&mut self, _step: usize, bytes: Vec<u8>) -> Res<Vec<Vec<u8>>> {
        Ok(vec![bytes])
    }
}

/// The world size an op is compiled for, if it names one.
pub(super) fn op_ranks(op: &Op) -> Option<u32> {
    match op {
        Op::AllGather { ranks, .. } | Op::ReduceScatter { ranks, .. } => Some(*ranks),
        _ => None,
    }
}

/// Whether `op` is a collective.
pub(super) fn is_collective(op: &Op) -> bool {
    matches!(
        op,
        Op::AllReduce { .. } | Op::AllGather { .. } | Op::ReduceScatter { .. }
    )
}

/// The dtype and shape a collective writes, given its input's; `Err` says why not.
pub(super) fn result_spec(op: &Op, input: &TensorSpec) -> Result<(DType, Vec<u32>), String> {
    let needs_arith = !matches!(op, Op::AllGather { .. });
    if needs_arith && !input.dtype.is_arithmetic() {
        return Err(format!(
            "dtype {} of {:?} is only supported by identity and all_gather",
            input.dtype, input.name
        ));
    }
    let ranks = op_ranks(op);
    if ranks == Some(0) {
        return Err("ranks must be at least 1".into());
    }
    let mut shape = input.shape.clone();
    match (op, ranks) {
        (Op::AllGather { .. }, Some(r)) | (Op::ReduceScatter { .. }, Some(r)) => {
            let Some(&d0) = shape.first() else {
                return Err(format!(
                    "{:?} is a scalar; {} needs a first dimension to split or join",
                    input.name,
                    op.kind()
                ));
            };
            shape[0] = if let Op::AllGather { .. } = op {
                d0.checked_mul(r).ok_or_else(|| {
                    format!("{r} ranks x first dimension {d0} overflows a dimension")
                })?
            } else if d0 % r == 0 {
                d0 / r
            } else {
                return Err(format!(
                    "first dimension {d0} of {:?} does not split into {r} equal blocks",
                    input.name
                ));
            };
        }
        _ => {}
    }
    Ok((input.dtype, shape))
}

/// Link time of one collective over a ring of `world` ranks at `gbps` GB/s (0: free):
/// all-reduce moves 2 (W-1)/W of its bytes, all-gather (W-1)/W of its output,
/// reduce-scatter (W-1)/W of its input.
pub(super) fn link_time(op: &Op, in_bytes: u64, out_bytes: u64, world: u32, gbps: f64) -> Duration {
    if world <= 1 || gbps <= 0.0 {
        return Duration::ZERO;
    }
    let share = (world - 1) as f64 / world as f64;
    let bytes = match op {
        Op::AllReduce { .. } => 2.0 * share * in_bytes as f64,
        Op::AllGather { .. } => share * out_bytes as f64,
        _ => share * in_bytes as f64,
    };
    crate::dma::seconds(bytes / (gbps * 1e9))
}

/// This rank's result of collective `op` from every rank's contribution (rank order).
pub(super) fn combine(op: &Op, dtype: DType, rank: u32, parts: Vec<Vec<u8>>) -> Vec<u8> {
    let sum = |parts: Vec<Vec<u8>>| {
        let mut it = parts.into_iter();
        let first = it.next().unwrap_or_default();
        it.fold(first, |acc, p| compute::binary(dtype, &acc, &p, BinOp::Add))
    };
    match op {
        Op::AllGather { .. } => parts.concat(),
        Op::ReduceScatter { ranks, .. } => {
            let total = sum(parts);
            let block = total.len() / (*ranks).max(1) as usize;
            let start = block * rank as usize;
            total[start..start + block].to_vec()
        }
        _ => sum(parts),
    }
}
