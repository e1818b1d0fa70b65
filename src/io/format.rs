//! Text for tensor values of any dtype (for [`Output`](crate::Output)'s `Display`):
//! little-endian elements decoded by dtype, hex bytes where there is no decoding.

use crate::dtype::DType;

/// The first `n` elements of `bytes` (little-endian elements of `dtype`) as text.
pub(crate) fn first_values(dtype: DType, bytes: &[u8], n: usize) -> Vec<String> {
    let Some(size) = decodable_size(dtype) else {
        return bytes.iter().take(n).map(|b| format!("{b:02x}")).collect();
    };
    bytes
        .chunks_exact(size)
        .take(n)
        .map(|chunk| element_text(dtype, chunk))
        .collect()
}

/// The element size of a dtype this module decodes, `None` for the others (shown as bytes).
fn decodable_size(dtype: DType) -> Option<usize> {
    match dtype {
        DType::Unknown | DType::Other(_) | DType::Fp8E3 | DType::Fp8E4 | DType::Fp8E5 => None,
        #[cfg(not(feature = "half"))]
        DType::BF16 | DType::F16 => None,
        known => known.size_in_bytes(),
    }
}

/// One element (`chunk` has its exact size) as text.
fn element_text(dtype: DType, chunk: &[u8]) -> String {
    let mut b = [0u8; 8];
    b[..chunk.len()].copy_from_slice(chunk);
    let word = u64::from_le_bytes(b);
    // Truncating casts below take exactly the element's low bytes.
    match dtype {
        DType::U8 => (word as u8).to_string(),
        DType::I8 => (word as u8 as i8).to_string(),
        DType::U16 => (word as u16).to_string(),
        DType::I16 => (word as u16 as i16).to_string(),
        DType::U32 => (word as u32).to_string(),
        DType::I32 => (word as u32 as i32).to_string(),
        DType::U64 => word.to_string(),
        DType::I64 => (word as i64).to_string(),
        DType::F32 | DType::Fp32R => format!("{:?}", f32::from_bits(word as u32)),
        #[cfg(feature = "half")]
        DType::BF16 => format!("{:?}", half::bf16::from_bits(word as u16)),
        #[cfg(feature = "half")]
        DType::F16 => format!("{:?}", half::f16::from_bits(word as u16)),
        _ => chunk.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_decoded_by_dtype() {
        assert_eq!(first_values(DType::I8, &[0xff, 1], 8), ["-1", "1"]);
        assert_eq!(first_values(DType::U16, &[1, 1, 2, 0], 8), ["257", "2"]);
        assert_eq!(first_values(DType::I64, &(-5i64).to_le_bytes(), 8), ["-5"]);
        assert_eq!(first_values(DType::F32, &1.5f32.to_le_bytes(), 8), ["1.5"]);
        assert_eq!(first_values(DType::Fp8E4, &[0x38, 0x40], 1), ["38"]);
        assert_eq!(
            first_values(DType::U32, &[1, 0, 0, 0, 2, 0, 0, 0], 1),
            ["1"]
        );
    }

    #[cfg(feature = "half")]
    #[test]
    fn half_types_are_decoded_with_feature_half() {
        // 1.0 is 0x3f80 in bf16 and 0x3c00 in f16.
        assert_eq!(first_values(DType::BF16, &[0x80, 0x3f], 4), ["1.0"]);
        assert_eq!(first_values(DType::F16, &[0x00, 0x3c], 4), ["1.0"]);
    }
}
