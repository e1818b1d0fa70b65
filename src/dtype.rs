//! [`DType`]: the element types libnrt knows, and [`Element`]: Rust types that tensors can be
//! read into and written from.

/// The element type of a tensor: libnrt's `nrt_dtype_t`, a NEFF's dtype strings, the
/// simulator's model dtypes. One type for the whole workspace, defined by `neuron-neff`:
/// `neuron_rt::DType`, `neuron_rt::neff::DType` and `neuron_rt::sim::DType` are all
/// this one, so a dtype read from a loaded model compares with the one its NEFF or
/// simulated model was written with.
///
/// ```
/// use neuron_rt::{DType, Runtime};
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// let model = runtime.load_model(&neff)?;
/// assert_eq!(model.inputs()[0].dtype, neuron_rt::sim::DType::F32);
/// assert_eq!(model.inputs()[0].dtype, neuron_rt::neff::DType::F32);
/// assert_eq!(DType::from_raw(nrt_sys::NRT_DTYPE_BFLOAT16), DType::BF16);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub use neuron_neff::DType;

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

/// `len` zeroed elements, or `None` when the memory cannot be allocated (or its size
/// exceeds `isize::MAX` bytes). The pages come from the allocator's zeroed path, so a
/// large output that libnrt then refuses is never touched.
pub(crate) fn zeroed_vec<E: Element>(len: usize) -> Option<Vec<E>> {
    let layout = std::alloc::Layout::array::<E>(len).ok()?;
    if layout.size() == 0 {
        return Some(vec![E::default(); len]);
    }
    // SAFETY: the layout has a non-zero size (checked above).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<E>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `len` elements
    // of `E` (so capacity `len`); all its bytes are zero, and every bit pattern is a
    // valid `E` (the `Element` contract), so all `len` elements are initialised.
    Some(unsafe { Vec::from_raw_parts(ptr, len, len) })
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
    fn dtype_values_are_libnrts() {
        use nrt_sys as sys;
        let table = [
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
        for (dtype, raw) in table {
            assert_eq!(DType::from_raw(raw), dtype);
            assert_eq!(dtype.as_raw(), raw);
        }
        assert_eq!(DType::from_raw(0x10), DType::Other(0x10));
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
