//! JSON numbers <-> model inputs and outputs of every numeric dtype. Inputs are flat
//! (row-major) arrays; a value the input's dtype cannot hold (`1e300` for f32, `300` for
//! u8, `1.5` for i64) is refused with the input's name, never rounded or saturated.

use half::{bf16, f16};
use neuron_rt::{DType, Element, Input, Output, TensorInfo};
use serde_json::{Number, Value};

/// An element type with a JSON form.
trait Json: Element + Sized {
    /// The value as `Self`, if it fits (integers: exactly; floats: finite, in range).
    fn parse(v: &Value) -> Option<Self>;
    fn to_json(self) -> Value;
}

macro_rules! ints {
    ($($t:ty),*) => {$(impl Json for $t {
        fn parse(v: &Value) -> Option<$t> {
            let signed = v.as_i64().and_then(|n| <$t>::try_from(n).ok());
            signed.or_else(|| v.as_u64().and_then(|n| <$t>::try_from(n).ok()))
        }
        fn to_json(self) -> Value {
            self.into()
        }
    })*};
}
ints!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! floats {
    ($($t:ty: $from:expr),*) => {$(impl Json for $t {
        fn parse(v: &Value) -> Option<$t> {
            let fits = |x: &f64| x.is_finite() && x.abs() <= f64::from(<$t>::MAX);
            v.as_f64().filter(fits).map($from)
        }
        fn to_json(self) -> Value {
            // NaN and infinities have no JSON number: null.
            Number::from_f64(self.into()).map_or(Value::Null, Value::Number)
        }
    })*};
}
floats!(f32: |x| x as f32, f16: f16::from_f64, bf16: bf16::from_f64);

/// Runs `$f::<T>($args)` with `T` the element type of `$dtype`, or evaluates `$other`.
macro_rules! with_type {
    ($dtype:expr, $f:ident($($arg:expr),*), $other:expr) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F16 => $f::<f16>($($arg),*),
            DType::BF16 => $f::<bf16>($($arg),*),
            DType::I8 => $f::<i8>($($arg),*),
            DType::I16 => $f::<i16>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::U8 => $f::<u8>($($arg),*),
            DType::U16 => $f::<u16>($($arg),*),
            DType::U32 => $f::<u32>($($arg),*),
            DType::U64 => $f::<u64>($($arg),*),
            _ => $other,
        }
    };
}

/// The values of `value` (a flat array of numbers) for the model input `info`.
pub fn parse(info: &TensorInfo, value: &Value) -> Result<Input<'static>, String> {
    let name = &info.name;
    let Value::Array(items) = value else {
        return Err(format!("input `{name}`: expected a flat array of numbers"));
    };
    let expected = info.element_count().unwrap_or(usize::MAX);
    if items.len() != expected {
        let (given, shape) = (items.len(), &info.shape);
        return Err(format!(
            "input `{name}`: {given} values given, the model takes {expected} (shape {shape:?})"
        ));
    }
    fn values<T: Json>(info: &TensorInfo, items: &[Value]) -> Result<Input<'static>, String> {
        let one = |(i, v): (usize, &Value)| {
            T::parse(v)
                .ok_or_else(|| format!("input `{}`[{i}]: {v} is not a {}", info.name, info.dtype))
        };
        items
            .iter()
            .enumerate()
            .map(one)
            .collect::<Result<Vec<T>, _>>()
            .map(Input::from_vec)
    }
    let other = Err(format!(
        "input `{name}`: element type {} is not served over JSON",
        info.dtype
    ));
    with_type!(info.dtype, values(info, items), other)
}

/// An output as a flat JSON array (dtypes without a JSON form: their bytes).
pub fn output(out: &Output) -> Value {
    fn values<T: Json>(out: &Output) -> Option<Value> {
        Some(
            out.as_slice::<T>()
                .ok()?
                .iter()
                .map(|&v| v.to_json())
                .collect(),
        )
    }
    let bytes = || out.bytes().iter().map(|&b| Value::from(b)).collect();
    with_type!(out.dtype(), values(out), None).unwrap_or_else(bytes)
}
