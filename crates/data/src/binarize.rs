//! Turning grey-level pixels in `[0, 1]` into binary ones.
//!
//! - static: each pixel drawn once from Bernoulli(p) with a fixed seed (the data set is then
//!   fixed, as in Larochelle's binarized MNIST);
//! - dynamic: fresh Bernoulli draws every epoch ([`binarize_dynamic`] on each batch, with the
//!   epoch's RNG from [`dynamic_rng`]), as in the IWAE paper;
//! - threshold: `1` where `p > 0.5`.
//!
//! All noise comes from seeded [`ChaCha8Rng`]s, never from candle or the thread RNG.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Splits};
use crate::rng::{derived_rng, uniform_f32, Stream};

/// Threshold of [`threshold_binarize`]: pixels strictly above it become 1.
pub const THRESHOLD: f32 = 0.5;

/// How an experiment binarizes its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binarization {
    /// Keep grey levels (e.g. data that is already binary).
    #[default]
    None,
    /// Bernoulli draws once, seeded.
    Static,
    /// Fresh Bernoulli draws every epoch.
    Dynamic,
    /// `1` where the pixel is above 0.5.
    Threshold,
}

impl Binarization {
    /// Whether batches must be binarized afresh each epoch ([`binarize_dynamic`]).
    pub fn is_dynamic(self) -> bool {
        self == Self::Dynamic
    }

    /// Applies the one-off binarizations (static, threshold) to every split; the train, val
    /// and test sets get independent noise. `None` and `Dynamic` return the splits unchanged.
    pub fn prepare(self, splits: Splits, seed: u64) -> Splits {
        match self {
            Self::None | Self::Dynamic => splits,
            Self::Static => Splits {
                train: static_binarize_with(&splits.train, seed, 0),
                val: static_binarize_with(&splits.val, seed, 1),
                test: static_binarize_with(&splits.test, seed, 2),
            },
            Self::Threshold => Splits {
                train: threshold_binarize(&splits.train),
                val: threshold_binarize(&splits.val),
                test: threshold_binarize(&splits.test),
            },
        }
    }
}

/// Writes Bernoulli(`probs[i]`) draws (0.0 or 1.0) to `out[i]`.
///
/// # Panics
/// If `probs` and `out` differ in length.
pub fn bernoulli_into<R: RngCore + ?Sized>(probs: &[f32], rng: &mut R, out: &mut [f32]) {
    assert_eq!(probs.len(), out.len(), "bernoulli_into: length mismatch");
    for (o, &p) in out.iter_mut().zip(probs) {
        *o = if uniform_f32(rng) < p { 1.0 } else { 0.0 };
    }
}

/// Bernoulli(`probs[i]`) draws (0.0 or 1.0), same shape as `probs`.
pub fn bernoulli<R: RngCore + ?Sized>(probs: &[f32], rng: &mut R) -> Vec<f32> {
    let mut out = vec![0.0; probs.len()];
    bernoulli_into(probs, rng, &mut out);
    out
}

/// Replaces each pixel of a gathered batch by a Bernoulli draw with that probability
/// (dynamic binarization; call with the epoch's [`dynamic_rng`], batches in order).
pub fn binarize_dynamic<R: RngCore + ?Sized>(pixels: &mut [f32], rng: &mut R) {
    for p in pixels {
        *p = if uniform_f32(rng) < *p { 1.0 } else { 0.0 };
    }
}

/// The RNG for dynamic binarization in `epoch`; depends only on `(seed, epoch)`, so resumed
/// runs draw the same noise.
pub fn dynamic_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    derived_rng(seed, Stream::Binarize, epoch)
}

/// `ds` with every pixel replaced once by a Bernoulli draw, reproducible from `seed`.
pub fn static_binarize(ds: &Dataset, seed: u64) -> Dataset {
    static_binarize_with(ds, seed, 0)
}

fn static_binarize_with(ds: &Dataset, seed: u64, part: u64) -> Dataset {
    let mut rng = derived_rng(seed, Stream::StaticBinarize, part);
    Dataset {
        images: bernoulli(&ds.images, &mut rng),
        ..ds.clone()
    }
}

/// `ds` with pixels above [`THRESHOLD`] set to 1 and the others to 0.
pub fn threshold_binarize(ds: &Dataset) -> Dataset {
    Dataset {
        images: ds
            .images
            .iter()
            .map(|&p| if p > THRESHOLD { 1.0 } else { 0.0 })
            .collect(),
        ..ds.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::load_digits;

    fn mean(v: &[f32]) -> f64 {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn static_binarization_is_seeded_binary_and_keeps_the_mean() {
        let d = load_digits().unwrap();
        let a = static_binarize(&d, 3);
        assert_eq!(a, static_binarize(&d, 3));
        assert_ne!(a.images, static_binarize(&d, 4).images);
        assert!(a.images.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!((a.n, &a.labels), (d.n, &d.labels));
        // 115k pixels: the std of the binary mean is below 0.0015.
        let (m, g) = (mean(&a.images), d.mean_pixel());
        assert!((m - g).abs() < 0.005, "binary mean {m} vs grey mean {g}");
        // Pixels that are 0 stay 0 and pixels that are 1 stay 1.
        for (&b, &p) in a.images.iter().zip(&d.images) {
            assert!((p != 0.0 || b == 0.0) && (p != 1.0 || b == 1.0));
        }
    }

    #[test]
    fn dynamic_binarization_differs_per_epoch_and_repeats_per_epoch() {
        let probs = vec![0.3f32; 10_000];
        let draw = |epoch| {
            let mut x = probs.clone();
            binarize_dynamic(&mut x, &mut dynamic_rng(9, epoch));
            x
        };
        assert_eq!(draw(2), draw(2));
        assert_ne!(draw(2), draw(3));
        assert!((mean(&draw(2)) - 0.3).abs() < 0.02);
        assert_eq!(bernoulli(&probs, &mut dynamic_rng(9, 2)), draw(2));
    }

    #[test]
    fn threshold_and_prepare() {
        let d = Dataset::new("t", vec![0.0, 0.5, 0.51, 1.0], vec![], 2, 2).unwrap();
        assert_eq!(threshold_binarize(&d).images, vec![0.0, 0.0, 1.0, 1.0]);
        let s = Splits {
            train: d.clone(),
            val: d.clone(),
            test: d.clone(),
        };
        assert_eq!(
            Binarization::Threshold.prepare(s.clone(), 0).val.images[2],
            1.0
        );
        assert_eq!(Binarization::Dynamic.prepare(s.clone(), 0), s);
        let big = load_digits().unwrap();
        let st = Binarization::Static.prepare(
            Splits {
                train: big.clone(),
                val: big.clone(),
                test: big,
            },
            1,
        );
        assert_ne!(
            st.train.images, st.val.images,
            "splits share binarization noise"
        );
        assert!(Binarization::Dynamic.is_dynamic() && !Binarization::Static.is_dynamic());
    }
}
