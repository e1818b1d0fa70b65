use super::builder::{ModelBuilder, describe_model};
use super::program::Program;
use super::types::{DType, Op};
use crate::container;
use nrt_sys::*;
use std::time::Duration;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn program(builder: &ModelBuilder) -> Program {
    super::file::load(&builder.build().unwrap(), true).unwrap()
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
        let (status, msg) = super::file::load(&file, true).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains(needle), "{msg} lacks {needle:?}");
    }
}

#[test]
fn gzip_payload_is_read_as_a_real_neff() {
    // A damaged gzip'd tar: the real-NEFF reader's error, as NRT_INVALID.
    let file = container::wrap("real", &[0x1f, 0x8b, 8, 0, 0, 0]);
    let (status, msg) = super::file::load(&file, false).unwrap_err();
    assert_eq!(status, NRT_INVALID);
    assert!(msg.starts_with("real NEFF: "), "{msg}");
    // A real one: its signature, no ops, synthetic outputs, its core count.
    let neff = crate::neff::NeffWriter::new("r.neff")
        .input("x", DType::BF16, &[2, 2])
        .output("y", DType::I64, &[3])
        .cores(2)
        .build()
        .unwrap();
    let p = super::file::load(&neff, true).unwrap();
    assert!(p.synthetic);
    assert_eq!((p.name.as_str(), p.cores), ("r.neff", 2));
    assert_eq!(p.inputs[0].byte_size(), 8);
    assert_eq!(
        (p.outputs[0].dtype, p.outputs[0].byte_size()),
        (DType::I64, 24)
    );
    assert!(p.label().contains("outputs are synthetic"), "{}", p.label());
    let text = describe_model(&neff).unwrap();
    assert!(text.lines().all(|l| l.starts_with("# ")), "{text}");
    assert!(text.contains("# output y i64 [3]"), "{text}");
}

#[test]
fn hand_written_payload_with_comments_parses() {
    let text = "# comment\n\nnrt-sim-model 1\nname my model\ninput x i32 []\noutput y i32 []\nop scale_bias x 3 1 y\n";
    let p = super::file::load(&container::wrap("x", text.as_bytes()), true).unwrap();
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
fn dtype_maps_to_nrt_values_and_only_modeled_dtypes_build() {
    use super::types::{Modeled, modeled_dtype};
    assert_eq!(DType::F32.as_raw(), NRT_DTYPE_FLOAT32);
    assert_eq!(DType::from_raw(NRT_DTYPE_INT32), DType::I32);
    assert!(!DType::from_raw(NRT_DTYPE_FP8_E4).is_modeled());
    for d in DType::ALL {
        assert_eq!(modeled_dtype(d.name()), Some(d));
    }
    assert_eq!(modeled_dtype("fp8e4"), None);
    let err = super::ModelBuilder::new("fp8")
        .input("x", DType::Fp8E4, &[4])
        .output("y", DType::Fp8E4, &[4])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("input \"x\" has dtype fp8e4, which the simulator does not model"),
        "{err}"
    );
    let text = b"nrt-sim-model 1\nname p\ninput x fp8e4 [4]\noutput y fp8e4 [4]\nop identity x y\n";
    let err = Program::parse(text).unwrap_err();
    assert!(err.contains("unknown dtype \"fp8e4\""), "{err}");
}

#[test]
fn collective_link_time_follows_the_ring_formulas() {
    let p = Program::parse(
        b"nrt-sim-model 1\nname cc\ninput x f32 [1000]\noutput s f32 [1000]\noutput g f32 [2000]\n\
         op all_reduce x s\nop all_gather x 2 g\n",
    )
    .unwrap();
    // all_reduce: 2 (W-1)/W x 4000 bytes = 4000; all_gather: (W-1)/W x 8000 = 4000.
    assert_eq!(p.link_time(2, 1.0), Duration::from_nanos(8000));
    assert_eq!(p.link_time(2, 0.0), Duration::ZERO);
    assert_eq!(p.link_time(1, 1.0), Duration::ZERO);
}
