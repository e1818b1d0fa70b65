//! Host IO for every element type the simulator's models have: typed writes and reads
//! (checked against the dtype), the byte path (length checked, dtype not), `Model::run`
//! with inputs of mixed element types and outputs with their dtype and shape, and the
//! `ndarray` feature.

mod support;

use half::{bf16, f16};
use neuron_rt::sim::{DType as SimDType, ModelBuilder, Op};
use neuron_rt::{DType, Element, Error, GivenInput, Input, Model, Runtime, inputs};
use support::{lock, runtime};

/// `y = x` for one dtype and shape [2, 3].
fn identity(rt: &Runtime, dtype: SimDType) -> Model {
    let neff = ModelBuilder::new(format!("id_{dtype:?}"))
        .input("x", dtype, &[2, 3])
        .output("y", dtype, &[2, 3])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .build()
        .unwrap();
    rt.load_model(&neff).unwrap()
}

/// Six distinct values of `T`, from `make(i)` for i = 1..=6.
fn six<T>(make: impl Fn(u8) -> T) -> Vec<T> {
    (1..=6).map(make).collect()
}

/// Typed write + typed read, byte write + byte read, `run` typed and by bytes: each
/// returns exactly what went in.
fn round_trips<T: Element + PartialEq + std::fmt::Debug>(
    rt: &Runtime,
    sim: SimDType,
    dtype: DType,
    values: &[T],
) {
    let model = identity(rt, sim);
    assert_eq!(model.inputs()[0].dtype, dtype, "{sim:?}");
    let inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    let x = inputs.get("x").unwrap();
    x.write(values).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    let y = outputs.get("y").unwrap().clone();
    assert_eq!(y.to_vec::<T>().unwrap(), values, "{dtype} typed");
    let bytes = y.to_bytes().unwrap();
    assert_eq!(bytes.len(), size_of_val(values), "{dtype}");

    // The byte path: the same bytes back, whatever the dtype.
    let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
    x.write_bytes(&reversed).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();
    let mut back = vec![0u8; reversed.len()];
    y.read_bytes(&mut back).unwrap();
    assert_eq!(back, reversed, "{dtype} bytes");

    // Model::run: typed, and by bytes.
    let out = model.run(&inputs!["x" => values]).unwrap();
    assert_eq!(out["y"].as_slice::<T>().unwrap(), values, "{dtype} run");
    assert_eq!((out["y"].dtype(), out["y"].shape()), (dtype, &[2, 3][..]));
    let out = model.run(&[("x", Input::bytes(&reversed))]).unwrap();
    assert_eq!(out["y"].bytes(), reversed, "{dtype} run bytes");
}

#[test]
fn every_dtype_writes_and_reads_typed_and_by_bytes() {
    let _g = lock();
    let rt = runtime();
    round_trips(&rt, SimDType::U8, DType::U8, &six(|i| 249 + i));
    round_trips(&rt, SimDType::I8, DType::I8, &six(|i| -(i as i8)));
    round_trips(
        &rt,
        SimDType::U16,
        DType::U16,
        &six(|i| 60_000 + u16::from(i)),
    );
    round_trips(
        &rt,
        SimDType::I16,
        DType::I16,
        &six(|i| -300 * i16::from(i)),
    );
    round_trips(
        &rt,
        SimDType::U32,
        DType::U32,
        &six(|i| 4_000_000_000 + u32::from(i)),
    );
    round_trips(
        &rt,
        SimDType::I32,
        DType::I32,
        &six(|i| -70_000 * i32::from(i)),
    );
    round_trips(
        &rt,
        SimDType::U64,
        DType::U64,
        &six(|i| u64::MAX - u64::from(i)),
    );
    round_trips(
        &rt,
        SimDType::I64,
        DType::I64,
        &six(|i| i64::MIN + i64::from(i)),
    );
    round_trips(
        &rt,
        SimDType::F32,
        DType::F32,
        &six(|i| f32::from(i) * -0.5),
    );
    round_trips(
        &rt,
        SimDType::BF16,
        DType::BF16,
        &six(|i| bf16::from_f32(f32::from(i) / 4.0)),
    );
    round_trips(
        &rt,
        SimDType::F16,
        DType::F16,
        &six(|i| f16::from_f32(f32::from(i) / 8.0)),
    );
}

#[test]
fn typed_access_of_another_type_and_bytes_of_another_size_are_refused() {
    let _g = lock();
    let rt = runtime();
    let model = identity(&rt, SimDType::BF16);
    let inputs = model.allocate_inputs().unwrap();
    let x = inputs.get("x").unwrap();
    // bf16 is not u16, although both are 2 bytes: no silent reinterpretation.
    let err = x.write(&[0u16; 6]).unwrap_err();
    assert_eq!(err.to_string(), "tensor `x` holds bf16 elements, got u16");
    let err = x.write_bytes(&[0; 11]).unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { tensor, expected: 12, actual: 11, .. } if tensor == "x"),
        "{err}"
    );
    let err = x.read_bytes(&mut [0; 13]).unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { actual: 13, .. }),
        "{err}"
    );
    let err = model.run(&[("x", Input::bytes(&[0; 10]))]).unwrap_err();
    assert!(
        matches!(&err, Error::InputMismatch(m) if m.size == 12 && m.given == GivenInput::Bytes(10)),
        "{err}"
    );
    let out = model.run(&inputs!["x" => &[bf16::ONE; 6]]).unwrap();
    let err = out["y"].as_slice::<f32>().unwrap_err();
    assert_eq!(err.to_string(), "tensor `y` holds bf16 elements, got f32");
}

/// ids (i64, [1, 4]) and a mask (f32, [1, 4]) in; ids + 1 (i64), mask * mask (f32) and
/// a bf16 output of another shape out: what a language model's signature looks like.
fn mixed_model(rt: &Runtime) -> Model {
    let neff = ModelBuilder::new("mixed")
        .input("ids", SimDType::I64, &[1, 4])
        .input("ones", SimDType::I64, &[1, 4])
        .input("mask", SimDType::F32, &[1, 4])
        .input("h", SimDType::BF16, &[2, 2])
        .output("next_ids", SimDType::I64, &[1, 4])
        .output("mask2", SimDType::F32, &[1, 4])
        .output("h_out", SimDType::BF16, &[2, 2])
        .op(Op::Add {
            a: "ids".into(),
            b: "ones".into(),
            out: "next_ids".into(),
        })
        .op(Op::Mul {
            a: "mask".into(),
            b: "mask".into(),
            out: "mask2".into(),
        })
        .op(Op::Relu {
            input: "h".into(),
            out: "h_out".into(),
        })
        .build()
        .unwrap();
    rt.load_model(&neff).unwrap()
}

#[test]
fn run_takes_inputs_of_mixed_types_and_returns_typed_shaped_outputs() {
    let _g = lock();
    let rt = runtime();
    let model = mixed_model(&rt);
    let ids = [101i64, 7592, 2088, 102];
    let h = [
        bf16::from_f32(-1.5),
        bf16::ONE,
        bf16::from_f32(2.5),
        bf16::ZERO,
    ];
    let out = model
        .run(&inputs![
            "ids" => &ids,
            "ones" => &[1i64; 4],
            "mask" => &[1.0f32, 1.0, 0.5, 0.0],
            "h" => &h,
        ])
        .unwrap();
    assert_eq!(out.len(), 3);
    let names: Vec<&str> = out.iter().map(|o| o.name()).collect();
    assert_eq!(names, ["next_ids", "mask2", "h_out"]);
    let next = &out["next_ids"];
    assert_eq!((next.dtype(), next.shape()), (DType::I64, &[1, 4][..]));
    assert_eq!(next.as_slice::<i64>().unwrap(), [102, 7593, 2089, 103]);
    assert_eq!(out["mask2"].to_vec::<f32>().unwrap(), [1.0, 1.0, 0.25, 0.0]);
    assert_eq!(
        out["h_out"].as_slice::<bf16>().unwrap(),
        [bf16::ZERO, bf16::ONE, bf16::from_f32(2.5), bf16::ZERO]
    );
    assert_eq!(out["h_out"].shape(), [2, 2]);
    assert_eq!(
        out["h_out"].to_string(),
        "h_out [2, 2] bf16 = [0.0, 1.0, 2.5, 0.0]"
    );
    // The wrong element type for one input names that input, its dtype and the type.
    let err = model
        .run(&inputs![
            "ids" => &[1i32; 4],
            "ones" => &[1i64; 4],
            "mask" => &[1.0f32; 4],
            "h" => &h,
        ])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `mixed`: input `ids` expects i64 [1, 4] (4 elements), got i32 values"
    );
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_inputs_are_shape_checked_and_outputs_come_back_as_arrays() {
    use ndarray::{Array2, ArrayD, array};

    let _g = lock();
    let rt = runtime();
    let model = mixed_model(&rt);
    let ids = array![[101i64, 7592, 2088, 102]];
    let ones = Array2::<i64>::ones((1, 4));
    let mask = array![[1.0f32, 1.0, 0.5, 0.0]];
    let h = array![[bf16::ONE, bf16::ZERO], [bf16::ONE, bf16::ONE]];
    // A transposed view is not contiguous in row-major order: copied in logical order.
    let h_t = h.t();
    let out = model
        .run(&inputs!["ids" => &ids, "ones" => &ones, "mask" => &mask, "h" => &h_t])
        .unwrap();
    let next: ArrayD<i64> = out["next_ids"].to_array().unwrap();
    assert_eq!(next, array![[102i64, 7593, 2089, 103]].into_dyn());
    assert_eq!(out["mask2"].view::<f32>().unwrap().shape(), [1, 4]);
    let h_out = out["h_out"].view::<bf16>().unwrap();
    assert_eq!(h_out, h_t.into_dyn());
    // A [4] array for a [1, 4] input: the shape is checked, not only the length.
    let flat = ndarray::arr1(&[1i64, 2, 3, 4]);
    let err = model
        .run(&inputs!["ids" => &flat, "ones" => &ones, "mask" => &mask, "h" => &h])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `mixed`: input `ids` expects i64 [1, 4] (4 elements), got values of shape [4]"
    );
    assert!(out["mask2"].view::<i64>().is_err());
}
