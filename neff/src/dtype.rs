//! [`DType`]: the element types of a NEFF's tensors, by their dtype strings.

use std::fmt;

/// Element type of a NEFF tensor, as named in `neff.json` (TVM's dtype strings).
///
/// `float16` is seen in compiler-made NEFFs; the others follow the same convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `float16`: IEEE half precision.
    F16,
    /// `bfloat16`.
    BF16,
    /// `float32`: IEEE single precision.
    F32,
    /// `int8`.
    I8,
    /// `uint8`.
    U8,
    /// `int16`.
    I16,
    /// `uint16`.
    U16,
    /// `int32`.
    I32,
    /// `uint32`.
    U32,
    /// `int64`.
    I64,
    /// `uint64`.
    U64,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 11] = [
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
    ];

    /// The string `neff.json` uses (`"float16"`, `"int64"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
        }
    }

    /// The dtype a `neff.json` string names, if known.
    ///
    /// ```
    /// use neuron_neff::DType;
    /// assert_eq!(DType::parse("bfloat16"), Some(DType::BF16));
    /// assert_eq!(DType::parse("complex64"), None);
    /// ```
    pub fn parse(s: &str) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I64 | DType::U64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
