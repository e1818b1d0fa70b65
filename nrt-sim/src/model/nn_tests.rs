//! The decoder ops: exact values of casts, gather, argmax ties, last_token, cache
//! writes; a newcomer's first model (i64 ids in, bf16 logits out); shape errors at
//! build time and index errors at run time.

use super::builder::ModelBuilder;
use super::collective::Solo;
use super::compute::Bf16;
use super::program::Program;
use super::types::{DType, Op};
use nrt_sys::*;

fn program(b: &ModelBuilder) -> Program {
    super::file::load(&b.build().unwrap(), true).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ints<const N: usize>(b: &[u8]) -> Vec<i128> {
    b.chunks_exact(N)
        .map(|c| {
            let mut w = [0u8; 16];
            w[..N].copy_from_slice(c);
            // Sign-extend from N bytes.
            let v = i128::from_le_bytes(w);
            let shift = 128 - 8 * N as u32;
            (v << shift) >> shift
        })
        .collect()
}

fn cast_model(from: DType, to: DType, n: u32) -> Program {
    program(
        &ModelBuilder::new("cast")
            .input("x", from, &[n])
            .output("y", to, &[n])
            .op(Op::Cast {
                input: "x".into(),
                dtype: to,
                out: "y".into(),
            }),
    )
}

#[test]
fn casts_wrap_truncate_saturate_and_round_to_nearest_even() {
    let i64s: Vec<u8> = [5i64, -1, 1 << 32, (1 << 31) + 7]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let y = cast_model(DType::I64, DType::I32, 4).run(&[i64s])[0].clone();
    assert_eq!(ints::<4>(&y), [5, -1, 0, -(1i128 << 31) + 7]);

    let y = cast_model(DType::F32, DType::I32, 4).run(&[f32_bytes(&[2.9, -2.9, 1e20, f32::NAN])])
        [0]
    .clone();
    assert_eq!(ints::<4>(&y), [2, -2, i32::MAX as i128, 0]);

    // 1 + 2^-8 is halfway: ties to even (1.0); 1 + 3*2^-8 goes up to 1 + 2^-6.
    let y = cast_model(DType::F32, DType::BF16, 3).run(&[f32_bytes(&[
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        -0.0,
    ])])[0]
        .clone();
    let bits: Vec<u16> = y
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(bits, [0x3f80, 0x3f82, 0x8000]);

    let y = cast_model(DType::BF16, DType::F32, 2).run(&[y[..4].to_vec()])[0].clone();
    assert_eq!(y, f32_bytes(&[1.0, 1.0 + 1.0 / 64.0]));

    let y = cast_model(DType::I32, DType::F32, 2).run(&[i32_bytes(&[16_777_217, -3])])[0].clone();
    assert_eq!(y, f32_bytes(&[16_777_216.0, -3.0]));
}

/// A newcomer's first model: i64 ids -> embedding -> logits -> bf16.
fn newcomer() -> Program {
    program(
        &ModelBuilder::new("newcomer")
            .input("ids", DType::I64, &[1, 3])
            .input("embed", DType::F32, &[4, 2])
            .input("head", DType::F32, &[2, 3])
            .output("logits", DType::BF16, &[1, 3, 3])
            .op(Op::Gather {
                table: "embed".into(),
                ids: "ids".into(),
                out: "x".into(),
            })
            .op(Op::MatMul {
                a: "x".into(),
                b: "head".into(),
                out: "y".into(),
            })
            .op(Op::Cast {
                input: "y".into(),
                dtype: DType::BF16,
                out: "logits".into(),
            }),
    )
}

#[test]
fn a_newcomer_model_with_i64_ids_and_bf16_logits_computes_real_values() {
    let p = newcomer();
    let ids: Vec<u8> = [3i64, 0, 1].iter().flat_map(|x| x.to_le_bytes()).collect();
    let embed = [0.5f32, 1.0, -1.0, 2.0, 0.25, 0.125, 3.0, -0.5];
    let head = [1.0f32, 0.0, 0.3, 0.0, 1.0, 0.7];
    let out = p.run(&[ids, f32_bytes(&embed), f32_bytes(&head)]);
    let got: Vec<f32> = out[0]
        .chunks_exact(2)
        .map(|c| Bf16(u16::from_le_bytes(c.try_into().unwrap())).to_f32())
        .collect();
    let mut want = Vec::new();
    for id in [3usize, 0, 1] {
        let (a, b) = (embed[id * 2], embed[id * 2 + 1]);
        for c in 0..3 {
            let y = 0.0f32 + a * head[c] + b * head[3 + c];
            want.push(Bf16::from_f32(y).to_f32());
        }
    }
    assert_eq!(got, want);
    assert_eq!(got[..2], [3.0, -0.5]);
    // An id past the table fails the execution, naming it.
    let bad: Vec<u8> = [3i64, 4, 0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let err = p
        .run_ranked(&[bad, f32_bytes(&embed), f32_bytes(&head)], &mut Solo)
        .unwrap_err();
    assert_eq!(err.status, NRT_EXEC_OOB);
    assert!(
        err.message.contains("id 4 at flat index 1"),
        "{}",
        err.message
    );
}

#[test]
fn argmax_breaks_ties_to_the_lowest_index_and_last_token_skips_padding() {
    let p = program(
        &ModelBuilder::new("pick")
            .input("x", DType::F32, &[2, 3, 2])
            .input("pos", DType::I32, &[2, 3])
            .output("last", DType::F32, &[2, 2])
            .output("best", DType::I32, &[2, 1])
            .op(Op::LastToken {
                input: "x".into(),
                positions: "pos".into(),
                out: "last".into(),
            })
            .op(Op::ArgMax {
                input: "last".into(),
                dtype: DType::I32,
                out: "best".into(),
            }),
    );
    let x = [
        1.0f32, 2.0, 7.0, 7.0, 9.0, 9.0, 4.0, 5.0, 6.0, 6.0, 3.0, 8.0,
    ];
    // Row 0: token 2 is padding, the last real token is 1 (7, 7: tie -> 0); row 1: all
    // padding -> zeros, argmax 0.
    let out = p.run(&[f32_bytes(&x), i32_bytes(&[0, 1, -1, -1, -1, -1])]);
    assert_eq!(out[0], f32_bytes(&[7.0, 7.0, 0.0, 0.0]));
    assert_eq!(out[1], i32_bytes(&[0, 0]));
    let out = p.run(&[f32_bytes(&x), i32_bytes(&[5, 6, 7, 0, -1, 1])]);
    assert_eq!(out[0], f32_bytes(&[9.0, 9.0, 3.0, 8.0]));
    assert_eq!(out[1], i32_bytes(&[0, 1]));
}

fn cache_model() -> Program {
    program(
        &ModelBuilder::new("cache")
            .input("cache", DType::F32, &[2, 1, 3, 2])
            .input("new", DType::F32, &[2, 2, 1, 2])
            .input("seq", DType::I32, &[2])
            .input("pos", DType::I32, &[2, 2])
            .output("cache.out", DType::F32, &[2, 1, 3, 2])
            .op(Op::CacheWrite {
                cache: "cache".into(),
                new: "new".into(),
                seq_ids: "seq".into(),
                positions: "pos".into(),
                out: "cache.out".into(),
            }),
    )
}

#[test]
fn cache_write_writes_non_padding_rows_at_slot_and_position() {
    let p = cache_model();
    let cache: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let new = [10.0f32, 11.0, 20.0, 21.0, 30.0, 31.0, 40.0, 41.0];
    // Row 0 -> slot 1 positions 2 and (padding); row 1 is inactive with slot 9.
    let out = p.run(&[
        f32_bytes(&cache),
        f32_bytes(&new),
        i32_bytes(&[1, 9]),
        i32_bytes(&[2, -1, -1, -1]),
    ]);
    let mut want = cache.clone();
    want[(3 + 2) * 2] = 10.0;
    want[(3 + 2) * 2 + 1] = 11.0;
    assert_eq!(out[0], f32_bytes(&want));
    for (seq, pos, what) in [
        ([2, 0], [0, 1, 0, 0], "seq_id 2 of row 0"),
        ([0, 0], [3, 0, 0, 0], "position 3 at flat index 0"),
        ([0, 0], [0, 0, -2, 0], "position -2 at flat index 2"),
    ] {
        let err = p
            .run_ranked(
                &[
                    f32_bytes(&cache),
                    f32_bytes(&new),
                    i32_bytes(&seq),
                    i32_bytes(&pos),
                ],
                &mut Solo,
            )
            .unwrap_err();
        assert_eq!(err.status, NRT_EXEC_OOB);
        assert!(err.message.contains(what), "{what}: {}", err.message);
    }
}

#[test]
fn decoder_ops_check_dtypes_and_shapes_when_built() {
    let base = || ModelBuilder::new("bad").input("x", DType::F32, &[2, 4]);
    let cases = [
        (
            base().op(Op::Reshape {
                input: "x".into(),
                shape: vec![3, 3],
                out: "y".into(),
            }),
            "element counts differ",
        ),
        (
            base().input("w", DType::F32, &[3]).op(Op::RmsNorm {
                input: "x".into(),
                weight: "w".into(),
                eps: 1e-5,
                out: "y".into(),
            }),
            "must be [d]",
        ),
        (
            base().op(Op::Gather {
                table: "x".into(),
                ids: "x".into(),
                out: "y".into(),
            }),
            "must have an integer dtype",
        ),
        (
            base().op(Op::Cast {
                input: "x".into(),
                dtype: DType::F16,
                out: "y".into(),
            }),
            "f16 is not supported",
        ),
        (
            base().input("p", DType::I32, &[2, 4]).op(Op::Rope {
                input: "x".into(),
                positions: "p".into(),
                theta: 1e4,
                out: "y".into(),
            }),
            "must be [batch, tokens, heads, head_dim]",
        ),
    ];
    for (b, want) in cases {
        let b = b.output("y", DType::F32, &[1]);
        let err = b.build().unwrap_err();
        assert!(err.message().contains(want), "{want}: {err}");
    }
}

#[test]
fn decoder_ops_round_trip_through_the_text_format() {
    let options = crate::decoder::DecoderBundleOptions::default();
    for m in options.members() {
        let (neff, _) = crate::decoder::member_files(&options.config, &m).unwrap();
        let text = super::describe_model(&neff).unwrap();
        let again = super::build_model_from_text(&text).unwrap();
        assert_eq!(super::describe_model(&again).unwrap(), text, "{}", m.name);
    }
}
