//! 2-D toy data sets for density estimation, as defined in FFJORD's `toy_data.py`.
//!
//! - `two_moons`: scikit-learn's `make_moons` (noise 0.1), scaled by 2 and shifted by
//!   `(-1, -0.2)`;
//! - `eight_gaussians`: N(c, 0.5²I) around 8 centres at radius 4 (angles kπ/4), all divided
//!   by √2 (FFJORD: 1.414), so centres at radius ≈ 2.83 and std ≈ 0.354;
//! - `rings`: 4 concentric circles of radius 3, 2.25, 1.5, 0.75 plus N(0, 0.08²I) noise;
//! - `checkerboard`: uniform on the 8 dark squares of a 4×4 board of side-2 squares on
//!   `[-4, 4]²`.
//!
//! Samples are i.i.d. (mixture components drawn at random, not in fixed proportions) and
//! reproducible from the RNG.

use std::f64::consts::{PI, SQRT_2};
use std::fmt;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// A rectangle of the plane, for plotting a density or samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// `[min, max]` along the first coordinate.
    pub x: [f64; 2],
    /// `[min, max]` along the second coordinate.
    pub y: [f64; 2],
}

impl Extent {
    /// The square `[-half, half]²`.
    pub const fn square(half: f64) -> Self {
        Self {
            x: [-half, half],
            y: [-half, half],
        }
    }
}

/// A 2-D toy data distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toy2d {
    /// Two interleaving half circles.
    TwoMoons,
    /// A mixture of 8 Gaussians on a circle.
    EightGaussians,
    /// Four noisy concentric circles.
    Rings,
    /// Uniform on the dark squares of a checkerboard.
    Checkerboard,
}

impl Toy2d {
    /// All toy distributions.
    pub const ALL: [Toy2d; 4] = [
        Self::TwoMoons,
        Self::EightGaussians,
        Self::Rings,
        Self::Checkerboard,
    ];

    /// The snake_case name (as in YAML configs).
    pub fn name(self) -> &'static str {
        match self {
            Self::TwoMoons => "two_moons",
            Self::EightGaussians => "eight_gaussians",
            Self::Rings => "rings",
            Self::Checkerboard => "checkerboard",
        }
    }

    /// The plotting window: `[-4, 4]²` for all (FFJORD's convention), which holds
    /// essentially all of the mass.
    pub fn extent(self) -> Extent {
        Extent::square(4.0)
    }

    /// `n` i.i.d. samples, shape `(n, 2)`.
    pub fn sample<R: Rng + ?Sized>(self, n: usize, rng: &mut R) -> Vec<[f64; 2]> {
        (0..n).map(|_| self.sample_one(rng)).collect()
    }

    fn sample_one<R: Rng + ?Sized>(self, rng: &mut R) -> [f64; 2] {
        let mut normal = || -> f64 { rng.sample(StandardNormal) };
        let (e1, e2) = (normal(), normal());
        match self {
            Self::TwoMoons => {
                let t = PI * rng.random::<f64>();
                let (x, y) = if rng.random::<bool>() {
                    (t.cos(), t.sin())
                } else {
                    (1.0 - t.cos(), 0.5 - t.sin())
                };
                [2.0 * (x + 0.1 * e1) - 1.0, 2.0 * (y + 0.1 * e2) - 0.2]
            }
            Self::EightGaussians => {
                let angle = PI / 4.0 * rng.random_range(0..8u32) as f64;
                [
                    (4.0 * angle.cos() + 0.5 * e1) / SQRT_2,
                    (4.0 * angle.sin() + 0.5 * e2) / SQRT_2,
                ]
            }
            Self::Rings => {
                let radius = 0.75 * f64::from(rng.random_range(1..=4u32));
                let angle = 2.0 * PI * rng.random::<f64>();
                [
                    radius * angle.cos() + 0.08 * e1,
                    radius * angle.sin() + 0.08 * e2,
                ]
            }
            Self::Checkerboard => {
                let x1 = 4.0 * rng.random::<f64>() - 2.0;
                let x2 = rng.random::<f64>() - 2.0 * f64::from(rng.random_range(0..2u32))
                    + x1.floor().rem_euclid(2.0);
                [2.0 * x1, 2.0 * x2]
            }
        }
    }
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `n` i.i.d. samples of `kind`, shape `(n, 2)`; same as [`Toy2d::sample`].
pub fn sample_toy2d<R: Rng + ?Sized>(kind: Toy2d, n: usize, rng: &mut R) -> Vec<[f64; 2]> {
    kind.sample(n, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;

    const N: usize = 20_000;

    fn mean(s: &[[f64; 2]]) -> [f64; 2] {
        let k = s.len() as f64;
        [
            s.iter().map(|p| p[0]).sum::<f64>() / k,
            s.iter().map(|p| p[1]).sum::<f64>() / k,
        ]
    }

    #[test]
    fn samples_are_reproducible_from_the_seed() {
        for kind in Toy2d::ALL {
            let a = kind.sample(100, &mut seeded_rng(1));
            assert_eq!(a, sample_toy2d(kind, 100, &mut seeded_rng(1)), "{kind}");
            assert_ne!(a, kind.sample(100, &mut seeded_rng(2)), "{kind}");
            assert!(a.iter().flatten().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn eight_gaussians_sit_on_a_circle_of_radius_4_over_sqrt2() {
        let s = Toy2d::EightGaussians.sample(N, &mut seeded_rng(0));
        let m = mean(&s);
        assert!(m[0].abs() < 0.05 && m[1].abs() < 0.05, "{m:?}");
        let mut counts = [0usize; 8];
        let mut sq = 0.0;
        for p in &s {
            let k = (p[1].atan2(p[0]) / (PI / 4.0)).round().rem_euclid(8.0) as usize;
            let angle = k as f64 * PI / 4.0;
            let (cx, cy) = (4.0 / SQRT_2 * angle.cos(), 4.0 / SQRT_2 * angle.sin());
            sq += (p[0] - cx).powi(2) + (p[1] - cy).powi(2);
            counts[k] += 1;
        }
        let std = (sq / (2.0 * N as f64)).sqrt();
        assert!(
            (std - 0.5 / SQRT_2).abs() < 0.01,
            "per-coordinate std {std}"
        );
        assert!(
            counts.iter().all(|&c| (2_300..2_700).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn two_moons_rings_and_checkerboard_statistics() {
        let moons = Toy2d::TwoMoons.sample(N, &mut seeded_rng(0));
        let m = mean(&moons);
        assert!(m[0].abs() < 0.05 && (m[1] - 0.3).abs() < 0.05, "{m:?}");

        let rings = Toy2d::Rings.sample(N, &mut seeded_rng(0));
        // Radial distance to the nearest ring has the noise's std 0.08.
        let mut sq = 0.0;
        for p in &rings {
            let r = p[0].hypot(p[1]);
            assert!((r / 0.75).round() >= 1.0 && r < 3.5, "radius {r}");
            sq += (r - 0.75 * (r / 0.75).round()).powi(2);
        }
        let rms = (sq / N as f64).sqrt();
        assert!((rms - 0.08).abs() < 0.005, "radial noise {rms}");
        let mean_r = rings.iter().map(|p| p[0].hypot(p[1])).sum::<f64>() / N as f64;
        assert!((mean_r - 1.875).abs() < 0.03, "mean radius {mean_r}");

        for p in Toy2d::Checkerboard.sample(N, &mut seeded_rng(0)) {
            assert!(p.iter().all(|v| (-4.0..4.0).contains(v)), "{p:?}");
            let parity = ((p[0] / 2.0).floor() + (p[1] / 2.0).floor()).rem_euclid(2.0);
            assert_eq!(parity, 0.0, "{p:?} on a light square");
        }
    }

    #[test]
    fn serde_names_are_snake_case() {
        let json = serde_json::to_string(&Toy2d::TwoMoons).unwrap();
        assert_eq!(json, "\"two_moons\"");
        let k: Toy2d = serde_json::from_str("\"eight_gaussians\"").unwrap();
        assert_eq!(k, Toy2d::EightGaussians);
        for kind in Toy2d::ALL {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(kind.extent(), Extent::square(4.0));
        }
    }
}
