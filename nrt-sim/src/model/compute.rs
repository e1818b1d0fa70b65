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
pub(super) struct Bf16(pub(super) u16);

impl Bf16 {
    pub(super) fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
    pub(super) fn from_f32(x: f32) -> Bf16 {
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
            // check_spec refuses every dtype the simulator does not model.
            _ => unreachable!("a dtype the simulator does not model is refused when a model is built"),
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

/// `[m,k] x [k,n]`; a left operand `[..., k]` is `m` rows of `k` (its batch
/// dimensions flattened).
pub(super) fn matmul(dtype: DType, a: &[u8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<u8> {
    if dtype == DType::F32 {
        return matmul_f32(a, b, m, k, n);
    }
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

/// [`matmul`] of f32, the same arithmetic in a cache-friendly order: row `i` of the
/// result accumulates `a[i][x] * b[x][..]` for x = 0, 1, ..., so every element is still
/// `((0 + a0 b0) + a1 b1) + ...` with one rounding per multiply and per add (no fused
/// multiply-add: Rust never contracts them), bit for bit the generic loop's result,
/// about ten times faster (the small decoder's prefill no longer outlasts its modelled
/// device time).
fn matmul_f32(a: &[u8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<u8> {
    let (a, b) = (f32_view(a), f32_view(b));
    let (a, b) = (a.as_ref(), b.as_ref());
    let mut out = vec![0f32; m * n];
    for (i, row) in out.chunks_exact_mut(n.max(1)).enumerate().take(m) {
        for x in 0..k {
            let ax = a[i * k + x];
            for (o, &bx) in row.iter_mut().zip(&b[x * n..(x + 1) * n]) {
                *o += ax * bx;
            }
        }
    }
    store_all(out.into_iter(), m * n)
}

/// Little-endian f32 bytes as f32 values: borrowed when aligned (the weights are most of
/// a matmul's bytes), else copied.
fn f32_view(bytes: &[u8]) -> std::borrow::Cow<'_, [f32]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid f32, and `align_to` only hands out the
        // part of `bytes` that is aligned for f32; on a little-endian target those are
        // the little-endian values the bytes encode.
        let (head, body, tail) = unsafe { bytes.align_to::<f32>() };
        if head.is_empty() && tail.is_empty() {
            return std::borrow::Cow::Borrowed(body);
        }
    }
    std::borrow::Cow::Owned(load_all::<f32>(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_matmul_is_bit_for_bit_the_generic_loop() {
        let (m, k, n) = (5, 37, 11);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 333.0 - 1.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 997) as f32 / 97.0 - 5.0)
            .collect();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        fn generic(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
            (0..m * n)
                .map(|e| (0..k).fold(0f32, |acc, x| acc + a[(e / n) * k + x] * b[x * n + e % n]))
                .collect()
        }
        let fast = matmul(DType::F32, &bytes(&a), &bytes(&b), m, k, n);
        assert_eq!(fast, bytes(&generic(&a, &b, m, k, n)));
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(Bf16::from_f32(1.0).0, 0x3f80);
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0).
        assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).0, 0x3f80);
        assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).0, 0x3f82);
        assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
    }
}
