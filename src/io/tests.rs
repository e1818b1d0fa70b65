use super::*;
use crate::objects::TensorUsage;

fn info(name: &str, dtype: DType, shape: &[u32]) -> TensorInfo {
    let n: usize = shape.iter().map(|&d| d as usize).product();
    TensorInfo {
        name: name.into(),
        usage: TensorUsage::Input,
        size: n * dtype.size_in_bytes().unwrap_or(1),
        dtype,
        shape: shape.to_vec(),
    }
}

#[test]
fn typed_inputs_must_match_the_dtype_and_length() {
    let ids = info("ids", DType::I64, &[4]);
    assert!(Input::from(&[1i64, 2, 3, 4]).check(&ids).is_ok());
    let e = Input::from(&[1i32, 2, 3, 4]).check(&ids).unwrap_err();
    assert!(
        matches!(&e, Error::WrongElementType { tensor, expected: DType::I64, given: "i32" } if tensor == "ids"),
        "{e}"
    );
    let e = Input::from(&[1i64, 2, 3]).check(&ids).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongLength {
                expected: 4,
                given: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = Input::from(&[1.0f64; 4]).check(&ids).unwrap_err();
    assert!(
        matches!(e, Error::WrongElementType { given: "f64", .. }),
        "{e}"
    );
}

#[test]
fn bytes_are_checked_by_length_only_and_unknown_dtypes_take_only_bytes() {
    let fp8 = info("w", DType::Fp8E4, &[3]);
    assert!(Input::bytes(&[1, 2, 3]).check(&fp8).is_ok());
    assert!(Input::from(&[1u8, 2, 3]).check(&fp8).is_ok());
    let e = Input::bytes(&[1, 2]).check(&fp8).unwrap_err();
    assert!(
        matches!(
            e,
            Error::SizeMismatch {
                expected: 3,
                actual: 2,
                ..
            }
        ),
        "{e}"
    );
    let unknown = TensorInfo {
        size: 8,
        ..info("u", DType::Unknown, &[2])
    };
    assert!(Input::bytes(&[0; 8]).check(&unknown).is_ok());
    assert!(matches!(
        Input::from(&[0f32; 2]).check(&unknown),
        Err(Error::WrongElementType {
            expected: DType::Unknown,
            ..
        })
    ));
}

#[test]
fn a_given_shape_must_be_the_models() {
    let x = info("x", DType::F32, &[2, 3]);
    assert!(
        Input::from(&[0f32; 6])
            .with_shape(&[2, 3])
            .check(&x)
            .is_ok()
    );
    let e = Input::from(&[0f32; 6])
        .with_shape(&[3, 2])
        .check(&x)
        .unwrap_err();
    assert!(
        matches!(&e, Error::WrongShape { expected, given, .. } if expected == &[2, 3] && given == &[3, 2]),
        "{e}"
    );
    assert!(e.to_string().contains("[2, 3]"), "{e}");
}

#[test]
fn outputs_read_as_their_type_only_and_display_their_values() {
    let mut out = Output::zeroed(&info("y", DType::I16, &[3]));
    out.bytes_mut().copy_from_slice(&[1, 0, 0xfe, 0xff, 7, 0]);
    assert_eq!(out.as_slice::<i16>().unwrap(), [1, -2, 7]);
    assert_eq!(out.element_count(), Some(3));
    let e = out.as_slice::<u16>().unwrap_err();
    assert_eq!(e.to_string(), "tensor `y` holds i16 elements, got u16");
    assert_eq!(out.to_string(), "y [3] i16 = [1, -2, 7]");
    let unknown = Output::zeroed(&TensorInfo {
        size: 3,
        ..info("z", DType::Unknown, &[3])
    });
    assert!(unknown.as_slice::<u8>().is_err());
    assert_eq!(unknown.bytes(), [0, 0, 0]);
    assert_eq!(unknown.to_string(), "z [3] unknown = [00, 00, 00]");
}

#[test]
fn outputs_index_by_name_in_model_order() {
    let outs = Outputs::new(vec![
        Output::zeroed(&info("b", DType::U8, &[1])),
        Output::zeroed(&info("a", DType::U8, &[2])),
    ]);
    assert_eq!(outs["a"].bytes().len(), 2);
    assert!(outs.get("c").is_none());
    let names: Vec<&str> = outs.iter().map(Output::name).collect();
    assert_eq!(names, ["b", "a"]);
}
