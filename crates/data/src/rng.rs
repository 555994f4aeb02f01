//! Seeded randomness owned by the data crate.
//!
//! candle's CPU RNG cannot be seeded, so every random choice here (shuffles, binarization
//! noise, toy samples) is drawn from a [`ChaCha8Rng`]. Shuffles and Bernoulli draws use the
//! RNG's raw output through the small, fixed algorithms below rather than `rand`'s helpers,
//! so the numbers do not change when `rand` changes its sampling algorithms.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Independent purposes of derived random streams, so that e.g. the shuffle of epoch 3 and
/// the binarization noise of epoch 3 never share numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Stream {
    /// Order of the items in an epoch ([`crate::Batcher`]).
    Shuffle = 1,
    /// Dynamic binarization noise of an epoch.
    Binarize = 2,
    /// One-off permutations for train/validation/test splits.
    Split = 3,
    /// One-off (static) binarization noise of a data set.
    StaticBinarize = 4,
}

/// A [`ChaCha8Rng`] seeded from `seed`.
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The RNG for item `index` (usually the epoch) of purpose `stream` under `seed`.
///
/// It depends only on `(seed, stream, index)`, so a run resumed at epoch `e` draws the same
/// numbers as an uninterrupted one. The key comes from `seed`; the ChaCha stream (nonce) is
/// `stream` in the top 16 bits and `index` in the low 48 bits.
///
/// # Panics
/// If `index >= 2^48`.
pub fn derived_rng(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    assert!(index < 1 << 48, "derived_rng: index {index} >= 2^48");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | index);
    rng
}

/// A uniform integer in `0..bound` (Lemire's multiply-shift with rejection, unbiased).
///
/// # Panics
/// If `bound == 0`.
pub fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, bound: u64) -> u64 {
    assert!(bound > 0, "uniform_below: bound must be positive");
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(bound);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// A uniform `f32` in `[0, 1)` with 24 random bits.
pub fn uniform_f32<R: RngCore + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Shuffles `items` in place (Fisher–Yates from the back).
pub fn shuffle<T, R: RngCore + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A uniformly random permutation of `0..n`.
pub fn permutation<R: RngCore + ?Sized>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, rng);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_streams_differ_and_repeat() {
        let a = derived_rng(7, Stream::Shuffle, 3).next_u64();
        assert_eq!(a, derived_rng(7, Stream::Shuffle, 3).next_u64());
        assert_ne!(a, derived_rng(7, Stream::Shuffle, 4).next_u64());
        assert_ne!(a, derived_rng(7, Stream::Binarize, 3).next_u64());
        assert_ne!(a, derived_rng(8, Stream::Shuffle, 3).next_u64());
    }

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let p = permutation(1000, &mut seeded_rng(1));
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, &mut seeded_rng(1)));
        assert_ne!(p, permutation(1000, &mut seeded_rng(2)));
        assert_ne!(p, s, "a shuffle of 1000 items left them sorted");
    }

    #[test]
    fn uniform_below_covers_range_evenly() {
        let mut rng = seeded_rng(0);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[uniform_below(&mut rng, 5) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        let u: f32 = (0..10_000).map(|_| uniform_f32(&mut rng)).sum::<f32>() / 10_000.0;
        assert!((u - 0.5).abs() < 0.02, "mean of U[0,1) draws {u}");
    }
}
