//! [`DType`]: the element types libnrt knows, and [`Element`]: Rust types that tensors can be
//! read into and written from.

use std::fmt;

use nrt_sys as sys;

/// The element type of a model tensor (`nrt_dtype_t`).
///
/// Values this crate does not know are kept as [`DType::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// Unknown or invalid (`NRT_DTYPE_UNKNOWN`, 0).
    Unknown,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// bfloat16.
    BF16,
    /// IEEE 754 half precision.
    F16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE 754 single precision.
    F32,
    /// Single precision with reduced-precision arithmetic on the device (stored as 32 bits).
    Fp32R,
    /// Signed 64-bit integer.
    I64,
    /// 8-bit float, 3-bit exponent.
    Fp8E3,
    /// 8-bit float, 4-bit exponent.
    Fp8E4,
    /// 8-bit float, 5-bit exponent.
    Fp8E5,
    /// A value this crate does not know.
    Other(u32),
}

const TABLE: [(DType, sys::nrt_dtype_t); 16] = [
    (DType::Unknown, sys::NRT_DTYPE_UNKNOWN),
    (DType::U64, sys::NRT_DTYPE_UINT64),
    (DType::I8, sys::NRT_DTYPE_INT8),
    (DType::U8, sys::NRT_DTYPE_UINT8),
    (DType::I16, sys::NRT_DTYPE_INT16),
    (DType::U16, sys::NRT_DTYPE_UINT16),
    (DType::BF16, sys::NRT_DTYPE_BFLOAT16),
    (DType::F16, sys::NRT_DTYPE_FLOAT16),
    (DType::I32, sys::NRT_DTYPE_INT32),
    (DType::U32, sys::NRT_DTYPE_UINT32),
    (DType::F32, sys::NRT_DTYPE_FLOAT32),
    (DType::Fp32R, sys::NRT_DTYPE_FP32R),
    (DType::I64, sys::NRT_DTYPE_INT64),
    (DType::Fp8E3, sys::NRT_DTYPE_FP8_E3),
    (DType::Fp8E4, sys::NRT_DTYPE_FP8_E4),
    (DType::Fp8E5, sys::NRT_DTYPE_FP8_E5),
];

impl DType {
    /// The dtype for a raw `nrt_dtype_t` value; unknown values become [`DType::Other`].
    pub fn from_raw(raw: sys::nrt_dtype_t) -> DType {
        TABLE
            .iter()
            .find(|(_, value)| *value == raw)
            .map_or(DType::Other(raw), |(dtype, _)| *dtype)
    }

    /// The raw `nrt_dtype_t` value.
    pub fn as_raw(self) -> sys::nrt_dtype_t {
        match self {
            DType::Other(raw) => raw,
            known => TABLE
                .iter()
                .find(|(dtype, _)| *dtype == known)
                .map(|(_, value)| *value)
                // Every variant except `Other` is in TABLE (checked by a unit test).
                .unwrap_or(sys::NRT_DTYPE_UNKNOWN),
        }
    }

    /// Size of one element in bytes, or `None` for [`DType::Unknown`] and unknown values.
    pub fn size_in_bytes(self) -> Option<usize> {
        match self {
            DType::I8 | DType::U8 | DType::Fp8E3 | DType::Fp8E4 | DType::Fp8E5 => Some(1),
            DType::I16 | DType::U16 | DType::BF16 | DType::F16 => Some(2),
            DType::I32 | DType::U32 | DType::F32 | DType::Fp32R => Some(4),
            DType::I64 | DType::U64 => Some(8),
            DType::Unknown | DType::Other(_) => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::Unknown => f.write_str("unknown"),
            DType::U64 => f.write_str("u64"),
            DType::I8 => f.write_str("i8"),
            DType::U8 => f.write_str("u8"),
            DType::I16 => f.write_str("i16"),
            DType::U16 => f.write_str("u16"),
            DType::BF16 => f.write_str("bf16"),
            DType::F16 => f.write_str("f16"),
            DType::I32 => f.write_str("i32"),
            DType::U32 => f.write_str("u32"),
            DType::F32 => f.write_str("f32"),
            DType::Fp32R => f.write_str("fp32r"),
            DType::I64 => f.write_str("i64"),
            DType::Fp8E3 => f.write_str("fp8e3"),
            DType::Fp8E4 => f.write_str("fp8e4"),
            DType::Fp8E5 => f.write_str("fp8e5"),
            DType::Other(raw) => write!(f, "dtype({raw})"),
        }
    }
}

/// Whether elements of dtype `given` may be stored in a tensor of dtype `stored`: the
/// same dtype; `f32` for [`DType::Fp32R`] (stored as 32-bit floats); `u8` for the 8-bit
/// float types, which have no Rust type. Nothing is stored in a tensor of unknown dtype
/// as typed values (only as bytes).
pub(crate) fn stores(given: DType, stored: DType) -> bool {
    given == stored
        || matches!(
            (given, stored),
            (DType::F32, DType::Fp32R) | (DType::U8, DType::Fp8E3 | DType::Fp8E4 | DType::Fp8E5)
        )
}

/// The name of `T` without its path (`f16`, not `half::binary16::f16`).
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type whose values can be copied to and from tensor storage byte for byte.
///
/// Implemented for `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64`
/// and, with feature `half`, `half::f16` and `half::bf16`. The trait is sealed: every
/// implementor is plain data without padding for which every bit pattern is a valid
/// value, which is what lets [`Tensor::read`](crate::Tensor::read) let libnrt fill a
/// `&mut [T]` with whatever bytes the tensor holds.
pub trait Element: sealed::Sealed + Copy + Default + Send + Sync + 'static {
    /// The libnrt dtype with this layout; `None` for types libnrt has no dtype for (`f64`).
    const DTYPE: Option<DType>;
}

/// `data` as bytes.
pub(crate) fn bytes_of<E: Element>(data: &[E]) -> &[u8] {
    // SAFETY: `Element` types are plain data without padding (its contract), so every
    // byte of the slice is initialised; the byte slice covers exactly the same memory
    // and borrows `data` for its lifetime.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), size_of_val(data)) }
}

/// `data` as bytes to write.
pub(crate) fn bytes_of_mut<E: Element>(data: &mut [E]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; and every bit pattern is a valid `E` (the `Element`
    // contract), so any bytes written through the result leave valid values. The
    // result borrows `data` mutably for its lifetime.
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), size_of_val(data)) }
}

macro_rules! element {
    ($($(#[$attr:meta])* $t:ty => $d:expr),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        $(#[$attr])*
        impl Element for $t {
            const DTYPE: Option<DType> = $d;
        }
    )*};
}

element! {
    u8 => Some(DType::U8),
    i8 => Some(DType::I8),
    u16 => Some(DType::U16),
    i16 => Some(DType::I16),
    u32 => Some(DType::U32),
    i32 => Some(DType::I32),
    u64 => Some(DType::U64),
    i64 => Some(DType::I64),
    f32 => Some(DType::F32),
    f64 => None,
}

#[cfg(feature = "half")]
element! {
    #[cfg_attr(docsrs, doc(cfg(feature = "half")))]
    half::f16 => Some(DType::F16),
    #[cfg_attr(docsrs, doc(cfg(feature = "half")))]
    half::bf16 => Some(DType::BF16),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_values_round_trip_and_unknown_values_are_kept() {
        for (dtype, raw) in TABLE {
            assert_eq!(DType::from_raw(raw), dtype);
            assert_eq!(dtype.as_raw(), raw);
        }
        assert_eq!(DType::from_raw(0x10), DType::Other(0x10));
        assert_eq!(DType::Other(0x10).as_raw(), 0x10);
        assert_eq!(DType::from_raw(0xA), DType::F32);
    }

    #[test]
    fn element_sizes_match_their_dtype() {
        fn check<T: Element>() {
            if let Some(d) = T::DTYPE {
                assert_eq!(d.size_in_bytes(), Some(std::mem::size_of::<T>()), "{d}");
            }
        }
        check::<u8>();
        check::<i8>();
        check::<u16>();
        check::<i16>();
        check::<u32>();
        check::<i32>();
        check::<u64>();
        check::<i64>();
        check::<f32>();
        assert_eq!(f64::DTYPE, None);
        #[cfg(feature = "half")]
        {
            check::<half::f16>();
            check::<half::bf16>();
        }
        assert_eq!(DType::Other(99).size_in_bytes(), None);
        assert_eq!(DType::F32.to_string(), "f32");
    }
}
