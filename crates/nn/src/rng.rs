//! Seeded randomness owned by flowvae.
//!
//! candle's CPU generator cannot be seeded, so every random number (weight init, ε of the
//! reparameterisation, permutations) comes from a [`SeededRng`]: same seed, same bits.

use candle_core::{DType, Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// The generator used everywhere: ChaCha8 is portable, fast and its state is serialisable.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// What a random stream is for. Each purpose draws from its own sequence, so that adding a
/// consumer never shifts the numbers of another; the sequence depends on the seed and on
/// [`Stream::name`] only, so renaming a variant keeps every result as long as its name stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Initial values of trainable parameters.
    ParamInit,
    /// Random permutations of coordinates (flow layers).
    Permutation,
    /// Noise added to parameters by the check API.
    Perturb,
    /// Inputs of `flowvae check`.
    Check,
    /// Data generated or shuffled for a run (2-D toy samples, training order).
    Data,
    /// Held-out samples (2-D test points) and the test-set −ELBO's noise.
    Test,
    /// The validation −ELBO's noise.
    Validation,
    /// Base-distribution noise of a 2-D run.
    Noise,
    /// Reparameterisation noise ε of one training epoch.
    EpochNoise(usize),
    /// Importance samples of the test NLL.
    Nll,
    /// Samples drawn for plots.
    Plot,
    /// Samples from the prior (`flowvae sample`).
    PriorSamples,
    /// Noise of `flowvae transform`.
    Transform,
    /// Optimisation of per-image posteriors for the inference-gap split.
    InferenceGap,
    /// Evaluation of the inference-gap split.
    InferenceGapEval,
    /// Synthetic data of the benchmark.
    BenchData,
    /// Training noise of the benchmark.
    BenchNoise,
    /// NLL samples of the benchmark.
    BenchNll,
    /// A stream of a test, an example or a doctest, named there (never in library code).
    Scratch(&'static str),
}

impl Stream {
    /// The name the stream is derived from (fixed: changing one changes results).
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        let fixed = match self {
            Self::ParamInit => "param-init",
            Self::Permutation => "permutation",
            Self::Perturb => "perturb",
            Self::Check => "check",
            Self::Data => "data",
            Self::Test => "test",
            Self::Validation => "val",
            Self::Noise => "noise",
            Self::EpochNoise(epoch) => return format!("noise-{epoch}").into(),
            Self::Nll => "nll",
            Self::Plot => "plot",
            Self::PriorSamples => "prior-samples",
            Self::Transform => "transform",
            Self::InferenceGap => "inference-gap",
            Self::InferenceGapEval => "inference-gap-eval",
            Self::BenchData => "bench-data",
            Self::BenchNoise => "bench-noise",
            Self::BenchNll => "bench-nll",
            Self::Scratch(name) => name,
        };
        fixed.into()
    }
}

/// The generator of `stream` under `seed`: independent consumers (weights, noise, shuffling)
/// never share a sequence, and adding one does not shift the others.
pub fn seeded(seed: u64, stream: Stream) -> SeededRng {
    // FNV-1a of the stream name, mixed into the seed.
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in stream.name().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SeededRng::seed_from_u64(seed ^ hash.rotate_left(17))
}

/// A tensor of i.i.d. N(0, 1) draws of the given shape, drawn in f64 then cast.
pub fn standard_normal<S: Into<Shape>>(
    rng: &mut SeededRng,
    shape: S,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let values: Vec<f64> = (0..shape.elem_count())
        .map(|_| rng.sample(StandardNormal))
        .collect();
    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
}

/// A tensor of i.i.d. U(lo, hi) draws of the given shape.
pub fn uniform<S: Into<Shape>>(
    rng: &mut SeededRng,
    shape: S,
    lo: f64,
    hi: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let values: Vec<f64> = (0..shape.elem_count())
        .map(|_| rng.random_range(lo..hi))
        .collect();
    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
}

/// A uniformly random permutation of `0..n` (Fisher–Yates).
pub fn permutation(rng: &mut SeededRng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bits_other_stream_other_bits() {
        let dev = Device::Cpu;
        let a = standard_normal(
            &mut seeded(7, Stream::Scratch("eps")),
            (3, 4),
            DType::F32,
            &dev,
        )
        .unwrap();
        let b = standard_normal(
            &mut seeded(7, Stream::Scratch("eps")),
            (3, 4),
            DType::F32,
            &dev,
        )
        .unwrap();
        let c = standard_normal(
            &mut seeded(7, Stream::Scratch("init")),
            (3, 4),
            DType::F32,
            &dev,
        )
        .unwrap();
        let (a, b, c): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
            c.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&mut seeded(1, Stream::Scratch("perm")), 50);
        assert_ne!(p, (0..50).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn normal_draws_have_unit_moments() {
        let x = standard_normal(
            &mut seeded(3, Stream::Scratch("m")),
            20_000,
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        let v: Vec<f64> = x.to_vec1().unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
