//! Host sampling of one row of logits: greedy, or seeded temperature / top-k / top-p.

use crate::error::{Error, Result};

/// How the host picks the next token from a row of logits.
///
/// `temperature == 0` (the [`Default`]) is greedy: the argmax, ties to the lowest id
/// (what a device-sampling member computes). Otherwise ids are drawn with probability
/// `softmax(logits / temperature)`, restricted first to the `top_k` largest (0: no
/// limit) and then to the smallest set of the largest whose probability mass reaches
/// `top_p` (1: no limit), from a stream seeded by `seed` (SplitMix64, the same draws on
/// every platform).
///
/// ```
/// use neuron_rt::generate::{Sampler, SamplingParams};
///
/// let mut greedy = Sampler::new(SamplingParams::greedy())?;
/// assert_eq!(greedy.sample(&[0.5, 2.0, 2.0, -1.0]), 1); // ties: the lowest id
///
/// let params = SamplingParams { temperature: 0.8, top_k: 40, top_p: 0.95, seed: 7 };
/// let draws = |p| { let mut s = Sampler::new(p).unwrap(); (0..8).map(|_| s.sample(&[1.0, 1.1, 0.9])).collect::<Vec<_>>() };
/// assert_eq!(draws(params), draws(params)); // same seed, same tokens
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 for greedy. Finite, not negative.
    pub temperature: f32,
    /// Keep only the `top_k` most likely ids; 0 keeps all.
    pub top_k: u32,
    /// Keep the most likely ids up to this probability mass, in `(0, 1]`.
    pub top_p: f32,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams::greedy()
    }
}

impl SamplingParams {
    /// Greedy: always the argmax.
    pub const fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    /// Temperature sampling with `seed`, no top-k or top-p limit.
    pub const fn temperature(temperature: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k: 0,
            top_p: 1.0,
            seed,
        }
    }

    /// Whether these parameters always pick the argmax (temperature 0 or top-k 1): what
    /// a device-sampling member computes.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Checks the values.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the parameter and its value: a temperature
    /// negative or not finite, a top-p outside `(0, 1]`.
    pub fn check(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::invalid(
                "temperature",
                format!(
                    "temperature must be finite and >= 0 (0: greedy), got {}",
                    self.temperature
                ),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::invalid(
                "top_p",
                format!("top_p must be in (0, 1], got {}", self.top_p),
            ));
        }
        Ok(())
    }
}

/// The sampler of one sequence: its parameters and its random stream.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
    /// Reused per call: ids by decreasing logit, and their weights.
    order: Vec<u32>,
    weights: Vec<f64>,
}

impl Sampler {
    /// A sampler with `params`, its stream at the start of `params.seed`.
    ///
    /// # Errors
    ///
    /// As [`SamplingParams::check`].
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.check()?;
        Ok(Sampler {
            params,
            rng: SplitMix64(params.seed),
            order: Vec::new(),
            weights: Vec::new(),
        })
    }

    /// Its parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next id from one row of `logits` (an empty row gives 0). NaN logits are
    /// never picked unless every logit is NaN.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.is_greedy() || logits.len() < 2 {
            return argmax(logits);
        }
        let p = self.params;
        let order = &mut self.order;
        order.clear();
        order.extend((0..logits.len() as u32).filter(|&i| !logits[i as usize].is_nan()));
        if order.is_empty() {
            return 0;
        }
        // Highest first; a stable sort keeps equal logits in id order.
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        if p.top_k > 0 {
            order.truncate(p.top_k as usize);
        }
        let top = f64::from(logits[order[0] as usize]);
        let t = f64::from(p.temperature);
        let weights = &mut self.weights;
        weights.clear();
        weights.extend(
            order
                .iter()
                .map(|&i| ((f64::from(logits[i as usize]) - top) / t).exp()),
        );
        if p.top_p < 1.0 {
            let total: f64 = weights.iter().sum();
            let (mut kept, mut mass) = (0, 0.0);
            for w in weights.iter() {
                kept += 1;
                mass += w / total;
                if mass >= f64::from(p.top_p) {
                    break;
                }
            }
            order.truncate(kept);
            weights.truncate(kept);
        }
        let total: f64 = weights.iter().sum();
        let mut u = self.rng.next_f64() * total;
        for (&id, &w) in order.iter().zip(weights.iter()) {
            if u < w {
                return id;
            }
            u -= w;
        }
        order[order.len() - 1]
    }
}

/// The index of the greatest value; ties go to the lowest index, as the device's argmax
/// does; NaN is never the greatest (an all-NaN or empty row gives 0).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best: Option<usize> = None;
    for (i, &x) in logits.iter().enumerate() {
        if !x.is_nan() && best.is_none_or(|b| x > logits[b]) {
            best = Some(i);
        }
    }
    best.unwrap_or(0) as u32
}

/// SplitMix64 (Steele, Lea and Flood, 2014): small, seedable, the same stream on every
/// platform; not for secrets.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: u32, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_lowest_of_equal_maxima_and_skips_nan() {
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn splitmix64_gives_the_published_stream() {
        // First outputs for seed 1234567 from the reference C implementation.
        let mut r = SplitMix64(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy_and_seeds_repeat() {
        let logits: Vec<f32> = (0..256).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let best = argmax(&logits);
        for p in [params(1.0, 1, 1.0, 7), params(1.0, 0, 1e-6, 7)] {
            let mut s = Sampler::new(p).unwrap();
            assert!((0..50).all(|_| s.sample(&logits) == best));
        }
        let draw = |seed| {
            let mut s = Sampler::new(params(1.5, 0, 0.9, seed)).unwrap();
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        assert!(draw(3).iter().any(|&i| i != best));
    }

    #[test]
    fn top_k_limits_the_draws_to_the_k_largest() {
        let logits: Vec<f32> = (0..16).map(|i| i as f32 * 0.1).collect();
        let mut s = Sampler::new(params(5.0, 3, 1.0, 11)).unwrap();
        let draws: Vec<u32> = (0..500).map(|_| s.sample(&logits)).collect();
        assert!(draws.iter().all(|&i| (13..16).contains(&i)), "{draws:?}");
        for id in 13..16 {
            assert!(draws.contains(&id), "id {id} never drawn");
        }
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        // Two ids, logits 0 and ln 3 at temperature 1: probabilities 1/4 and 3/4.
        let logits = [0.0f32, 3f32.ln()];
        let mut s = Sampler::new(params(1.0, 0, 1.0, 99)).unwrap();
        let n = 20_000;
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "share of id 1: {share}");
    }

    #[test]
    fn bad_parameters_are_refused_with_their_values() {
        for (p, name, value) in [
            (params(-1.0, 0, 1.0, 0), "temperature", "-1"),
            (params(f32::NAN, 0, 1.0, 0), "temperature", "NaN"),
            (params(1.0, 0, 0.0, 0), "top_p", "0"),
            (params(1.0, 0, 1.5, 0), "top_p", "1.5"),
        ] {
            let e = Sampler::new(p).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(value), "{e}");
        }
    }
}
