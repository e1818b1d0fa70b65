//! Tensors made for model tensors carry the model's element type and shape; whole-tensor
//! `write` / `read` / `to_vec` check them, ranged and untyped access stay byte-level.

mod support;

use neuron_rt::{DType, Error, Placement};
use support::{add_model, lock, runtime};

#[test]
fn model_tensors_know_their_dtype_and_shape() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let a = inputs.get("a").unwrap();
    assert_eq!(a.dtype(), Some(DType::F32));
    assert_eq!(a.shape(), Some(&[2, 3][..]));
    let b = rt
        .allocate_for(&model.inputs()[1], Placement::Host, None)
        .unwrap();
    assert_eq!((b.name(), b.dtype(), b.size()), ("b", Some(DType::F32), 24));
    let untyped = rt
        .allocate_tensor(Placement::Device, Some(0), 24, "raw")
        .unwrap();
    assert_eq!((untyped.dtype(), untyped.shape()), (None, None));
}

#[test]
fn whole_tensor_access_checks_element_type_and_length() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let outputs = model.allocate_outputs().unwrap();
    let a = inputs.get("a").unwrap();

    let err = a.write(&[1.0f32; 5]).unwrap_err();
    assert!(
        matches!(&err, Error::WrongLength { tensor, expected: 6, given: 5 } if tensor == "a"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "tensor `a` holds 6 elements, got 5 (write_at / read_at access part of it)"
    );
    let err = a.write(&[1i32; 6]).unwrap_err();
    assert!(
        matches!(&err, Error::WrongElementType { tensor, expected: DType::F32, given: "i32" } if tensor == "a"),
        "{err}"
    );
    assert_eq!(err.to_string(), "tensor `a` holds f32 elements, got i32");
    let out = outputs.get("out").unwrap();
    let err = out.to_vec::<f64>().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::WrongElementType {
                expected: DType::F32,
                given: "f64",
                ..
            }
        ),
        "{err}"
    );
    let mut seven = [0.0f32; 7];
    assert!(matches!(
        a.read(&mut seven).unwrap_err(),
        Error::WrongLength {
            expected: 6,
            given: 7,
            ..
        }
    ));

    // The right type and length work; ranged access keeps byte-level freedom.
    a.write(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    a.write_at(4, &[9u8, 9, 9, 9]).unwrap();
    let mut two = [0.0f32; 2];
    a.read_at(8, &mut two).unwrap();
    assert_eq!(two, [3.0, 4.0]);
    assert_eq!(a.to_vec::<f32>().unwrap()[0], 1.0);

    // Untyped tensors accept any element type.
    let raw = rt
        .allocate_tensor(Placement::Device, Some(0), 24, "raw")
        .unwrap();
    raw.write(&[7u8; 5]).unwrap();
    raw.write(&[1i32; 6]).unwrap();
    assert_eq!(raw.to_vec::<u8>().unwrap().len(), 24);
}

#[cfg(feature = "half")]
#[test]
fn f16_tensors_refuse_bf16() {
    use half::{bf16, f16};
    use nrt_sim::{DType as SimDType, ModelBuilder, Op};

    let _g = lock();
    let rt = runtime();
    let neff = ModelBuilder::new("half")
        .input("x", SimDType::F16, &[4])
        .output("y", SimDType::F16, &[4])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .build()
        .unwrap();
    let model = rt.load_model(&neff).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let x = inputs.get("x").unwrap();
    x.write(&[f16::from_f32(1.5); 4]).unwrap();
    let err = x.to_vec::<bf16>().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::WrongElementType {
                expected: DType::F16,
                given: "bf16",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(x.to_vec::<f16>().unwrap(), [f16::from_f32(1.5); 4]);
}
