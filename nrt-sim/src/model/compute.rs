//! Element-wise and matrix arithmetic over little-endian byte buffers.

use super::types::DType;

#[derive(Clone, Copy)]
pub(super) enum BinOp {
    Add,
    Mul,
}

trait Elem: Copy {
    const SIZE: usize;
    fn load(bytes: &[u8]) -> Self;
    fn store(self, out: &mut Vec<u8>);
    fn zero() -> Self;
    fn add(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn relu(self) -> Self;
    fn scale_bias(self, scale: f64, bias: f64) -> Self;
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap())
            }
            fn store(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn zero() -> Self {
                0
            }
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn mul(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
            #[allow(unused_comparisons)]
            fn relu(self) -> Self {
                if self < 0 { 0 } else { self }
            }
            fn scale_bias(self, scale: f64, bias: f64) -> Self {
                // `as` from f64 saturates (NaN -> 0).
                (self as f64 * scale + bias).round() as $t
            }
        }
    )*};
}
int_elem!(u8, i8, u16, i16, u32, i32, u64, i64);

impl Elem for f32 {
    const SIZE: usize = 4;
    fn load(bytes: &[u8]) -> Self {
        f32::from_le_bytes(bytes.try_into().unwrap())
    }
    fn store(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn zero() -> Self {
        0.0
    }
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn mul(self, other: Self) -> Self {
        self * other
    }
    fn relu(self) -> Self {
        if self < 0.0 { 0.0 } else { self }
    }
    fn scale_bias(self, scale: f64, bias: f64) -> Self {
        (self as f64 * scale + bias) as f32
    }
}

/// bfloat16: the top 16 bits of an f32.
#[derive(Clone, Copy)]
struct Bf16(u16);

impl Bf16 {
    fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
    fn from_f32(x: f32) -> Bf16 {
        if x.is_nan() {
            return Bf16(((x.to_bits() >> 16) as u16) | 0x40);
        }
        let bits = x.to_bits();
        let round = 0x7fff + ((bits >> 16) & 1);
        Bf16((bits.wrapping_add(round) >> 16) as u16)
    }
}

impl Elem for Bf16 {
    const SIZE: usize = 2;
    fn load(bytes: &[u8]) -> Self {
        Bf16(u16::from_le_bytes(bytes.try_into().unwrap()))
    }
    fn store(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn zero() -> Self {
        Bf16(0)
    }
    fn add(self, other: Self) -> Self {
        Bf16::from_f32(self.to_f32() + other.to_f32())
    }
    fn mul(self, other: Self) -> Self {
        Bf16::from_f32(self.to_f32() * other.to_f32())
    }
    fn relu(self) -> Self {
        if self.to_f32() < 0.0 { Bf16(0) } else { self }
    }
    fn scale_bias(self, scale: f64, bias: f64) -> Self {
        // Rounded to f32, then to bf16 (as documented for bf16 scale_bias).
        Bf16::from_f32((self.to_f32() as f64 * scale + bias) as f32)
    }
}

fn load_all<T: Elem>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(T::SIZE).map(T::load).collect()
}

fn store_all<T: Elem>(values: impl Iterator<Item = T>, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len * T::SIZE);
    values.for_each(|v| v.store(&mut out));
    out
}

macro_rules! dispatch {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::U8 => $f::<u8>($($arg),*),
            DType::I8 => $f::<i8>($($arg),*),
            DType::U16 => $f::<u16>($($arg),*),
            DType::I16 => $f::<i16>($($arg),*),
            DType::U32 => $f::<u32>($($arg),*),
            DType::I32 => $f::<i32>($($arg),*),
            DType::U64 => $f::<u64>($($arg),*),
            DType::I64 => $f::<i64>($($arg),*),
            DType::F32 => $f::<f32>($($arg),*),
            DType::BF16 => $f::<Bf16>($($arg),*),
            // Program::new allows F16 only in identity, which never gets here.
            DType::F16 => unreachable!("f16 arithmetic is rejected when a model is built"),
        }
    };
}

pub(super) fn binary(dtype: DType, a: &[u8], b: &[u8], op: BinOp) -> Vec<u8> {
    fn go<T: Elem>(a: &[u8], b: &[u8], op: BinOp) -> Vec<u8> {
        let (a, b) = (load_all::<T>(a), load_all::<T>(b));
        let n = a.len();
        store_all(
            a.into_iter().zip(b).map(|(x, y)| match op {
                BinOp::Add => x.add(y),
                BinOp::Mul => x.mul(y),
            }),
            n,
        )
    }
    dispatch!(dtype, go(a, b, op))
}

pub(super) fn relu(dtype: DType, a: &[u8]) -> Vec<u8> {
    fn go<T: Elem>(a: &[u8]) -> Vec<u8> {
        let a = load_all::<T>(a);
        let n = a.len();
        store_all(a.into_iter().map(T::relu), n)
    }
    dispatch!(dtype, go(a))
}

pub(super) fn scale_bias(dtype: DType, a: &[u8], scale: f64, bias: f64) -> Vec<u8> {
    fn go<T: Elem>(a: &[u8], scale: f64, bias: f64) -> Vec<u8> {
        let a = load_all::<T>(a);
        let n = a.len();
        store_all(a.into_iter().map(|x| x.scale_bias(scale, bias)), n)
    }
    dispatch!(dtype, go(a, scale, bias))
}

pub(super) fn matmul(dtype: DType, a: &[u8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<u8> {
    fn go<T: Elem>(a: &[u8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<u8> {
        let (a, b) = (load_all::<T>(a), load_all::<T>(b));
        let values = (0..m).flat_map(|i| {
            let (a, b) = (&a, &b);
            (0..n).map(move |j| {
                (0..k).fold(T::zero(), |acc, x| acc.add(a[i * k + x].mul(b[x * n + j])))
            })
        });
        store_all(values, m * n)
    }
    dispatch!(dtype, go(a, b, m, k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(Bf16::from_f32(1.0).0, 0x3f80);
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0).
        assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).0, 0x3f80);
        assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).0, 0x3f82);
        assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
    }
}
