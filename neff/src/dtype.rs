//! [`DType`]: the element type of a tensor, one type for every crate of the workspace:
//! libnrt's `nrt_dtype_t` values, the strings of `neff.json`, and short names.
//!
//! `neuron_rt::DType`, `neuron_rt::neff::DType` and `neuron_rt::sim::DType` are this
//! type (re-exported), so a dtype read from a loaded model compares with the one a NEFF
//! or a simulated model was written with.

use std::fmt;

/// The element type of a tensor: a model tensor's `nrt_dtype_t` ([`DType::from_raw`]), a
/// NEFF tensor's `neff.json` dtype string ([`DType::parse`]).
///
/// Values this crate does not know are kept as [`DType::Other`]. `Display` gives the
/// short name ([`DType::name`]: `f32`, `bf16`, `i64`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// Unknown or invalid (`NRT_DTYPE_UNKNOWN`, 0).
    Unknown,
    /// Unsigned 64-bit integer (`uint64`).
    U64,
    /// Signed 8-bit integer (`int8`).
    I8,
    /// Unsigned 8-bit integer (`uint8`).
    U8,
    /// Signed 16-bit integer (`int16`).
    I16,
    /// Unsigned 16-bit integer (`uint16`).
    U16,
    /// bfloat16 (`bfloat16`).
    BF16,
    /// IEEE 754 half precision (`float16`).
    F16,
    /// Signed 32-bit integer (`int32`).
    I32,
    /// Unsigned 32-bit integer (`uint32`).
    U32,
    /// IEEE 754 single precision (`float32`).
    F32,
    /// Single precision with reduced-precision arithmetic on the device (stored as 32 bits).
    Fp32R,
    /// Signed 64-bit integer (`int64`).
    I64,
    /// 8-bit float, 3-bit exponent.
    Fp8E3,
    /// 8-bit float, 4-bit exponent.
    Fp8E4,
    /// 8-bit float, 5-bit exponent.
    Fp8E5,
    /// An `nrt_dtype_t` value this crate does not know.
    Other(u32),
}

/// Every named variant with its `nrt_dtype_t` value (libnrt's `NRT_DTYPE_*`), in one
/// place so the two directions of the conversion cannot disagree.
const RAW: [(DType, u32); 16] = [
    (DType::Unknown, 0),
    (DType::U64, 1),
    (DType::I8, 2),
    (DType::U8, 3),
    (DType::I16, 4),
    (DType::U16, 5),
    (DType::BF16, 6),
    (DType::F16, 7),
    (DType::I32, 8),
    (DType::U32, 9),
    (DType::F32, 10),
    (DType::Fp32R, 11),
    (DType::I64, 12),
    (DType::Fp8E3, 13),
    (DType::Fp8E4, 14),
    (DType::Fp8E5, 15),
];

impl DType {
    /// The dtypes a NEFF's `neff.json` names (those [`DType::parse`] reads and the NEFF
    /// writer writes), in declaration order of the NEFF reader.
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

    /// The dtype for a raw `nrt_dtype_t` value; unknown values become [`DType::Other`].
    ///
    /// ```
    /// use neuron_neff::DType;
    /// assert_eq!(DType::from_raw(10), DType::F32);
    /// assert_eq!(DType::from_raw(99), DType::Other(99));
    /// assert_eq!(DType::BF16.as_raw(), 6);
    /// ```
    pub fn from_raw(raw: u32) -> DType {
        RAW.iter()
            .find(|(_, value)| *value == raw)
            .map_or(DType::Other(raw), |(dtype, _)| *dtype)
    }

    /// The raw `nrt_dtype_t` value.
    pub fn as_raw(self) -> u32 {
        match self {
            DType::Other(raw) => raw,
            known => RAW
                .iter()
                .find(|(dtype, _)| *dtype == known)
                .map(|(_, value)| *value)
                // Every variant except `Other` is in RAW (checked by a unit test).
                .unwrap_or(0),
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

    /// Bytes per element, 0 for [`DType::Unknown`] and unknown values (see
    /// [`DType::size_in_bytes`]).
    pub fn size(self) -> usize {
        self.size_in_bytes().unwrap_or(0)
    }

    /// The string `neff.json` uses (`"float16"`, `"int64"`, ...) for the dtypes of
    /// [`DType::ALL`]; for the others a descriptive name that no NEFF reader parses
    /// (`"float32r"`, `"float8_e4"`, `"unknown"`).
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
            DType::Fp32R => "float32r",
            DType::Fp8E3 => "float8_e3",
            DType::Fp8E4 => "float8_e4",
            DType::Fp8E5 => "float8_e5",
            DType::Unknown | DType::Other(_) => "unknown",
        }
    }

    /// The dtype a `neff.json` string names, if it is one of [`DType::ALL`].
    ///
    /// ```
    /// use neuron_neff::DType;
    /// assert_eq!(DType::parse("bfloat16"), Some(DType::BF16));
    /// assert_eq!(DType::parse("complex64"), None);
    /// ```
    pub fn parse(s: &str) -> Option<DType> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The short name (`"f32"`, `"bf16"`, `"i64"`, `"fp8e4"`, `"fp32r"`, `"unknown"`;
    /// `"other"` for [`DType::Other`]), as `Display` prints it (which adds the value of
    /// an `Other`: `dtype(99)`) and as simulated model files and tools write it.
    pub fn name(self) -> &'static str {
        match self {
            DType::Unknown => "unknown",
            DType::U64 => "u64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::F32 => "f32",
            DType::Fp32R => "fp32r",
            DType::I64 => "i64",
            DType::Fp8E3 => "fp8e3",
            DType::Fp8E4 => "fp8e4",
            DType::Fp8E5 => "fp8e5",
            DType::Other(_) => "other",
        }
    }

    /// The dtype of a short name written by [`DType::name`] (any named dtype but
    /// [`DType::Unknown`]).
    ///
    /// ```
    /// use neuron_neff::DType;
    /// assert_eq!(DType::from_name("bf16"), Some(DType::BF16));
    /// assert_eq!(DType::from_name("unknown"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<DType> {
        RAW.iter()
            .map(|(d, _)| *d)
            .find(|d| *d != DType::Unknown && d.name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::Other(raw) => write!(f, "dtype({raw})"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_round_trip_and_unknown_values_are_kept() {
        for (dtype, raw) in RAW {
            assert_eq!(DType::from_raw(raw), dtype);
            assert_eq!(dtype.as_raw(), raw);
        }
        assert_eq!(DType::from_raw(0x10), DType::Other(0x10));
        assert_eq!(DType::Other(0x10).as_raw(), 0x10);
        assert_eq!(DType::Other(0x10).to_string(), "dtype(16)");
    }

    #[test]
    fn neff_names_and_short_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.as_str()), Some(d));
            assert!(d.size() > 0, "{d}");
        }
        for (d, _) in RAW {
            if d != DType::Unknown {
                assert_eq!(DType::from_name(d.name()), Some(d));
                assert_eq!(d.to_string(), d.name());
            }
        }
        assert_eq!(DType::parse("float8_e4"), None);
        assert_eq!(DType::Unknown.size(), 0);
    }
}
