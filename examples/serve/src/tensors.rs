//! JSON values <-> tensor contents, checked against the model's descriptions.
//!
//! Inputs arrive as flat (row-major) JSON number arrays, one per model input; outputs go
//! back the same way. Element types: f32, i32, i64, u8 (others: 400 Bad Request).

use neuron_rt::{DType, ExecUnit, Tensor, TensorInfo};
use serde_json::{Number, Value};

/// Tensors up to this size are copied synchronously on the request's task (a copy of a
/// few KiB costs less than a scheduled transfer's two wake-ups); larger ones go through
/// the core's TENSOR_OP unit and are awaited, so no executor thread waits for a long
/// copy.
pub const SYNC_COPY_MAX: usize = 64 << 10;

/// One input's values in the model's element type.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

/// Does `f` with the vector inside `data`, whatever its element type.
macro_rules! with_vec {
    ($data:expr, $v:ident => $e:expr) => {
        match $data {
            HostData::F32($v) => $e,
            HostData::I32($v) => $e,
            HostData::I64($v) => $e,
            HostData::U8($v) => $e,
        }
    };
}

/// Parses `value` (a flat array of numbers) for the model input `info`.
pub fn parse(info: &TensorInfo, value: &Value) -> Result<HostData, String> {
    let name = &info.name;
    let Value::Array(items) = value else {
        return Err(format!("input `{name}`: expected a flat array of numbers"));
    };
    let expected = info.element_count().unwrap_or(usize::MAX);
    if items.len() != expected {
        return Err(format!(
            "input `{name}`: {} values given, the model takes {expected} (shape {:?})",
            items.len(),
            info.shape
        ));
    }
    let number = |i: usize, v: &Value| -> Result<Number, String> {
        match v {
            Value::Number(n) => Ok(n.clone()),
            other => Err(format!("input `{name}`[{i}]: {other} is not a number")),
        }
    };
    let int = |i: usize, v: &Value| -> Result<i64, String> {
        number(i, v)?
            .as_i64()
            .ok_or_else(|| format!("input `{name}`[{i}]: {v} is not an integer"))
    };
    let enumerate = || items.iter().enumerate();
    Ok(match info.dtype {
        DType::F32 => HostData::F32(
            enumerate()
                .map(|(i, v)| Ok(number(i, v)?.as_f64().unwrap_or(f64::NAN) as f32))
                .collect::<Result<_, String>>()?,
        ),
        DType::I32 => HostData::I32(
            enumerate()
                .map(|(i, v)| {
                    i32::try_from(int(i, v)?)
                        .map_err(|_| format!("input `{name}`[{i}]: {v} out of i32 range"))
                })
                .collect::<Result<_, String>>()?,
        ),
        DType::I64 => HostData::I64(
            enumerate()
                .map(|(i, v)| int(i, v))
                .collect::<Result<_, String>>()?,
        ),
        DType::U8 => HostData::U8(
            enumerate()
                .map(|(i, v)| {
                    u8::try_from(int(i, v)?)
                        .map_err(|_| format!("input `{name}`[{i}]: {v} out of u8 range"))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => {
            return Err(format!(
                "input `{name}`: element type {other:?} is not served over JSON"
            ));
        }
    })
}

/// Whether outputs of this element type can be sent back (checked at start-up).
pub fn supported(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::I32 | DType::I64 | DType::U8)
}

/// Writes `data` into `tensor`: synchronously when small, else through `copy_unit`.
pub async fn write(
    copy_unit: &ExecUnit,
    tensor: &Tensor,
    data: &HostData,
) -> neuron_rt::Result<()> {
    if tensor.size() <= SYNC_COPY_MAX {
        return with_vec!(data, v => tensor.write(v));
    }
    with_vec!(data.clone(), v => copy_unit.write(tensor, 0, v)?.await.map(drop))
}

/// The contents of `tensor` (an output described by `info`) as a JSON array.
pub async fn read(
    copy_unit: &ExecUnit,
    tensor: &Tensor,
    info: &TensorInfo,
) -> neuron_rt::Result<Value> {
    let count = info.element_count().unwrap_or(0);
    let empty = match info.dtype {
        DType::I32 => HostData::I32(vec![0; count]),
        DType::I64 => HostData::I64(vec![0; count]),
        DType::U8 => HostData::U8(vec![0; count]),
        // Checked at start-up: only supported types are served.
        _ => HostData::F32(vec![0.0; count]),
    };
    let filled = if tensor.size() <= SYNC_COPY_MAX {
        let mut data = empty;
        with_vec!(&mut data, v => tensor.read(v))?;
        data
    } else {
        match empty {
            HostData::F32(v) => HostData::F32(copy_unit.read(tensor, 0, v)?.await?),
            HostData::I32(v) => HostData::I32(copy_unit.read(tensor, 0, v)?.await?),
            HostData::I64(v) => HostData::I64(copy_unit.read(tensor, 0, v)?.await?),
            HostData::U8(v) => HostData::U8(copy_unit.read(tensor, 0, v)?.await?),
        }
    };
    Ok(match filled {
        // NaN and infinities have no JSON number: they become null.
        HostData::F32(v) => v
            .into_iter()
            .map(|x| Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number))
            .collect(),
        HostData::I32(v) => v.into_iter().map(Value::from).collect(),
        HostData::I64(v) => v.into_iter().map(Value::from).collect(),
        HostData::U8(v) => v.into_iter().map(Value::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuron_rt::TensorUsage;
    use serde_json::json;

    fn info(dtype: DType, n: u32) -> TensorInfo {
        TensorInfo {
            name: "x".into(),
            usage: TensorUsage::Input,
            size: n as usize * 4,
            dtype,
            shape: vec![n],
        }
    }

    #[test]
    fn parses_and_refuses_with_a_reason() {
        let f = info(DType::F32, 2);
        assert_eq!(
            parse(&f, &json!([1, 2.5])),
            Ok(HostData::F32(vec![1.0, 2.5]))
        );
        assert!(
            parse(&f, &json!([1]))
                .unwrap_err()
                .contains("1 values given")
        );
        assert!(
            parse(&f, &json!([1, "a"]))
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse(&f, &json!({"a": 1}))
                .unwrap_err()
                .contains("flat array")
        );
        let i = info(DType::I32, 1);
        assert!(
            parse(&i, &json!([1.5]))
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(
            parse(&i, &json!([1u64 << 40]))
                .unwrap_err()
                .contains("range")
        );
        assert!(parse(&info(DType::F16, 1), &json!([1])).is_err());
    }
}
