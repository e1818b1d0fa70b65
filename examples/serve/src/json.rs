//! JSON numbers <-> model inputs and outputs of every numeric dtype. Inputs are flat
//! (row-major) arrays; a value the input's dtype cannot hold (`1e300` for f32, `300` for
//! u8, `1.5` for i64) is refused with the input's name, never rounded or saturated. The
//! pool checks the number of values (its error names the input too).

use std::collections::HashMap;

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

/// The model's inputs from a request's values, each input by name exactly once.
pub fn inputs(
    infos: &[TensorInfo],
    mut given: HashMap<String, Value>,
) -> Result<Vec<(&str, Input<'static>)>, String> {
    let inputs = infos
        .iter()
        .map(|TensorInfo { name, dtype, .. }| match given.remove(name) {
            Some(value) => Ok((name.as_str(), parse(name, *dtype, &value)?)),
            None => Err(format!("input `{name}` is missing")),
        });
    let inputs = inputs.collect::<Result<Vec<_>, _>>()?;
    match given.into_keys().next() {
        Some(name) => Err(format!("the model has no input `{name}`")),
        None => Ok(inputs),
    }
}

/// The values of `value` (a flat array of numbers) for the input `name` of type `dtype`.
pub fn parse(name: &str, dtype: DType, value: &Value) -> Result<Input<'static>, String> {
    /// The values, or the index of the first that does not fit `T`.
    fn values<T: Json>(items: &[Value]) -> Result<Input<'static>, usize> {
        let one = |(i, v): (usize, &Value)| T::parse(v).ok_or(i);
        let values: Result<Vec<T>, usize> = items.iter().enumerate().map(one).collect();
        values.map(Input::from_vec)
    }
    let Value::Array(items) = value else {
        return Err(format!("input `{name}`: expected a flat array of numbers"));
    };
    let other = || format!("input `{name}`: element type {dtype} is not served over JSON");
    let parsed = with_type!(dtype, values(items), return Err(other()));
    parsed.map_err(|i| format!("input `{name}`[{i}]: {} is not a {dtype}", items[i]))
}

/// An output as a flat JSON array (dtypes without a JSON form: their bytes).
pub fn output(out: &Output) -> Value {
    fn values<T: Json>(out: &Output) -> Option<Value> {
        let values = out.to_vec::<T>().ok()?;
        Some(values.into_iter().map(T::to_json).collect())
    }
    let bytes = || out.bytes().iter().map(|&b| Value::from(b)).collect();
    with_type!(out.dtype(), values(out), None).unwrap_or_else(bytes)
}
