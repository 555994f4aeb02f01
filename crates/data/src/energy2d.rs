//! The 2-D target energies U1–U4 of Rezende & Mohamed (2015), Fig. 3.
//!
//! The unnormalised target density is `p(z) ∝ exp(−U(z))`. With
//! `w1 = sin(2π z1 / 4)`, `w2 = 3 exp(−½((z1 − 1)/0.6)²)`, `w3 = 3 σ((z1 − 1)/0.3)`:
//!
//! - `U1 = ½((‖z‖ − 2)/0.4)² − ln(e^{−½((z1−2)/0.6)²} + e^{−½((z1+2)/0.6)²})`
//! - `U2 = ½((z2 − w1)/0.4)²`
//! - `U3 = −ln(e^{−½((z2−w1)/0.35)²} + e^{−½((z2−w1+w2)/0.35)²})`
//! - `U4 = −ln(e^{−½((z2−w1)/0.4)²} + e^{−½((z2−w1+w3)/0.35)²})`
//!
//! Every `−ln(e^a + e^b)` is computed as `−logaddexp(a, b)` with the max trick, so the
//! energies stay finite far from the mass (|z| = 50 and beyond), in f64 and in tensors.

use std::f64::consts::FRAC_PI_2;
use std::fmt;

use candle_core::{bail, Tensor};
use serde::{Deserialize, Serialize};

use crate::toy2d::Extent;

/// Floor on ‖z‖² in the tensor version of U1: keeps the gradient of ‖z‖ finite (zero, a
/// valid subgradient) at the origin; changes U1 there by about 1e-14.
const NORM_SQ_FLOOR: f64 = 1e-30;

/// One of the four 2-D target energies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Energy2d {
    /// A ring of radius 2 split into two arcs.
    U1,
    /// A sine-shaped ridge.
    U2,
    /// A sine ridge and a bump-shifted copy.
    U3,
    /// A sine ridge and a step-shifted copy.
    U4,
}

impl Energy2d {
    /// All four energies.
    pub const ALL: [Energy2d; 4] = [Self::U1, Self::U2, Self::U3, Self::U4];

    /// The snake_case name (as in YAML configs): `u1` … `u4`.
    pub fn name(self) -> &'static str {
        match self {
            Self::U1 => "u1",
            Self::U2 => "u2",
            Self::U3 => "u3",
            Self::U4 => "u4",
        }
    }

    /// The plotting window, `[-4, 4]²` as in the paper's figure. U2–U4 are periodic-ish in
    /// z1 and not normalisable over the whole plane; densities are shown on this window.
    pub fn extent(self) -> Extent {
        Extent::square(4.0)
    }

    /// `U(z1, z2)` in f64; same as [`energy_f64`].
    pub fn energy_f64(self, z1: f64, z2: f64) -> f64 {
        energy_f64(self, z1, z2)
    }

    /// `U(z)` of a batch `z` of shape `(B, 2)`, shape `(B,)`; same as [`energy`].
    pub fn energy(self, z: &Tensor) -> candle_core::Result<Tensor> {
        energy(self, z)
    }
}

impl fmt::Display for Energy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `ln(e^a + e^b)` without overflow or underflow.
fn logaddexp_f64(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// Logistic sigmoid, stable for either sign.
fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `−½((x − c)/s)²`, the log of an unnormalised Gaussian bump.
fn log_bump_f64(x: f64, c: f64, s: f64) -> f64 {
    -0.5 * ((x - c) / s).powi(2)
}

/// The closed form `U(z1, z2)` in f64 (finite for all finite inputs).
pub fn energy_f64(kind: Energy2d, z1: f64, z2: f64) -> f64 {
    let w1 = (FRAC_PI_2 * z1).sin();
    match kind {
        Energy2d::U1 => {
            let ring = -log_bump_f64(z1.hypot(z2), 2.0, 0.4);
            ring - logaddexp_f64(log_bump_f64(z1, 2.0, 0.6), log_bump_f64(z1, -2.0, 0.6))
        }
        Energy2d::U2 => -log_bump_f64(z2 - w1, 0.0, 0.4),
        Energy2d::U3 => {
            let w2 = 3.0 * log_bump_f64(z1, 1.0, 0.6).exp();
            -logaddexp_f64(
                log_bump_f64(z2 - w1, 0.0, 0.35),
                log_bump_f64(z2 - w1 + w2, 0.0, 0.35),
            )
        }
        Energy2d::U4 => {
            let w3 = 3.0 * sigmoid_f64((z1 - 1.0) / 0.3);
            -logaddexp_f64(
                log_bump_f64(z2 - w1, 0.0, 0.4),
                log_bump_f64(z2 - w1 + w3, 0.0, 0.35),
            )
        }
    }
}

/// Elementwise `ln(e^a + e^b) = max + ln(1 + e^{min − max})`; differentiable, with the
/// gradient split evenly at ties (candle's max/min backward does so).
fn logaddexp(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let hi = a.maximum(b)?;
    let lo = a.minimum(b)?;
    &hi + (lo - &hi)?.exp()?.affine(1.0, 1.0)?.log()?
}

/// Elementwise `−½((x − c)/s)²`.
fn log_bump(x: &Tensor, c: f64, s: f64) -> candle_core::Result<Tensor> {
    x.affine(1.0 / s, -c / s)?.sqr()?.affine(-0.5, 0.0)
}

/// `U(z)` for a batch `z` of shape `(B, 2)` (any float dtype), shape `(B,)`, built from
/// differentiable candle ops so that gradients flow to `z`. Finite for all finite `z`.
pub fn energy(kind: Energy2d, z: &Tensor) -> candle_core::Result<Tensor> {
    let (_, d) = z.dims2()?;
    if d != 2 {
        bail!(
            "energy {kind}: expected z of shape (B, 2), got {:?}",
            z.shape()
        );
    }
    let z1 = z.narrow(1, 0, 1)?.squeeze(1)?;
    let z2 = z.narrow(1, 1, 1)?.squeeze(1)?;
    let w1 = z1.affine(FRAC_PI_2, 0.0)?.sin()?;
    let r = (z1.sqr()? + z2.sqr()?)?.maximum(NORM_SQ_FLOOR)?.sqrt()?;
    let d = (&z2 - &w1)?;
    match kind {
        Energy2d::U1 => {
            let ring = log_bump(&r, 2.0, 0.4)?.neg()?;
            ring - logaddexp(&log_bump(&z1, 2.0, 0.6)?, &log_bump(&z1, -2.0, 0.6)?)?
        }
        Energy2d::U2 => log_bump(&d, 0.0, 0.4)?.neg(),
        Energy2d::U3 => {
            let w2 = log_bump(&z1, 1.0, 0.6)?.exp()?.affine(3.0, 0.0)?;
            logaddexp(
                &log_bump(&d, 0.0, 0.35)?,
                &log_bump(&(&d + w2)?, 0.0, 0.35)?,
            )?
            .neg()
        }
        Energy2d::U4 => {
            // 3σ(x) = 1.5 (1 + tanh(x / 2)) with x = (z1 − 1)/0.3.
            let w3 = z1.affine(1.0 / 0.6, -1.0 / 0.6)?.tanh()?.affine(1.5, 1.5)?;
            logaddexp(&log_bump(&d, 0.0, 0.4)?, &log_bump(&(&d + w3)?, 0.0, 0.35)?)?.neg()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// A grid over [-6, 6]² (including the origin and the U1 tie line z1 = 0) plus points at
    /// radius 50 in 16 directions and on the axes far out.
    fn points() -> Vec<[f64; 2]> {
        let mut p = Vec::new();
        for i in 0..=24 {
            for j in 0..=24 {
                p.push([-6.0 + 0.5 * i as f64, -6.0 + 0.5 * j as f64]);
            }
        }
        for k in 0..16 {
            let a = k as f64 * std::f64::consts::PI / 8.0 + 0.1;
            p.push([50.0 * a.cos(), 50.0 * a.sin()]);
        }
        p.extend([
            [50.0, 0.0],
            [-50.0, 0.0],
            [0.0, 50.0],
            [0.0, -50.0],
            [300.0, -300.0],
        ]);
        p
    }

    fn tensor(p: &[[f64; 2]]) -> Tensor {
        let flat: Vec<f64> = p.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (p.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn tensor_energy_matches_closed_form_in_f64() {
        let p = points();
        let z = tensor(&p);
        for kind in Energy2d::ALL {
            let u = energy(kind, &z).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(u.len(), p.len());
            for (q, &t) in p.iter().zip(&u) {
                let c = energy_f64(kind, q[0], q[1]);
                assert!(
                    t.is_finite() && c.is_finite(),
                    "{kind} at {q:?}: {t} vs {c}"
                );
                let tol = 1e-10 * (1.0 + c.abs());
                assert!((t - c).abs() <= tol, "{kind} at {q:?}: tensor {t}, f64 {c}");
            }
        }
    }

    #[test]
    fn closed_forms_match_the_naive_formulas_where_those_are_accurate() {
        let g = |x: f64, c: f64, s: f64| (-0.5 * ((x - c) / s).powi(2)).exp();
        for &[z1, z2] in &[[0.3, -0.7], [1.5, 1.0], [-2.0, 0.4], [0.9, -2.2]] {
            let w1 = (2.0 * std::f64::consts::PI * z1 / 4.0).sin();
            let w2 = 3.0 * g(z1, 1.0, 0.6);
            let w3 = 3.0 / (1.0 + (-(z1 - 1.0) / 0.3).exp());
            let r = (z1 * z1 + z2 * z2).sqrt();
            let naive = [
                0.5 * ((r - 2.0) / 0.4).powi(2) - (g(z1, 2.0, 0.6) + g(z1, -2.0, 0.6)).ln(),
                0.5 * ((z2 - w1) / 0.4).powi(2),
                -(g(z2 - w1, 0.0, 0.35) + g(z2 - w1 + w2, 0.0, 0.35)).ln(),
                -(g(z2 - w1, 0.0, 0.4) + g(z2 - w1 + w3, 0.0, 0.35)).ln(),
            ];
            for (kind, n) in Energy2d::ALL.into_iter().zip(naive) {
                let c = energy_f64(kind, z1, z2);
                assert!(
                    (c - n).abs() < 1e-12 * (1.0 + n.abs()),
                    "{kind}: {c} vs {n}"
                );
            }
        }
    }

    #[test]
    fn gradients_flow_and_match_finite_differences() {
        let mut p = vec![[0.0, 0.0], [0.0, 1.3], [1.1, -0.4], [-2.5, 2.0], [0.7, 0.2]];
        p.extend([[50.0, -1.0], [-35.0, 35.0]]);
        let z = Var::from_tensor(&tensor(&p)).unwrap();
        let h = 1e-6;
        for kind in Energy2d::ALL {
            let grads = energy(kind, z.as_tensor()).unwrap().sum_all().unwrap();
            let grads = grads.backward().unwrap();
            let g = grads.get(z.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
            for (q, gq) in p.iter().zip(&g) {
                for d in 0..2 {
                    let (mut a, mut b) = (*q, *q);
                    a[d] += h;
                    b[d] -= h;
                    let fd =
                        (energy_f64(kind, a[0], a[1]) - energy_f64(kind, b[0], b[1])) / (2.0 * h);
                    // At the origin (U1's cone tip) both the central difference and the
                    // tensor's subgradient are 0.
                    let want = fd;
                    let tol = 1e-5 * (1.0 + want.abs());
                    assert!(
                        gq[d].is_finite() && (gq[d] - want).abs() < tol,
                        "{kind} dU/dz{} at {q:?}: autograd {}, finite difference {want}",
                        d + 1,
                        gq[d]
                    );
                }
            }
        }
    }

    #[test]
    fn f32_far_out_is_finite_and_shapes_are_checked() {
        let z = tensor(&points()).to_dtype(DType::F32).unwrap();
        for kind in Energy2d::ALL {
            let u = kind.energy(&z).unwrap().to_vec1::<f32>().unwrap();
            assert!(u.iter().all(|v| v.is_finite()), "{kind}");
        }
        let bad = Tensor::zeros((4, 3), DType::F64, &Device::Cpu).unwrap();
        assert!(energy(Energy2d::U1, &bad).is_err());
    }

    #[test]
    fn serde_names_and_extents() {
        assert_eq!(serde_json::to_string(&Energy2d::U3).unwrap(), "\"u3\"");
        let k: Energy2d = serde_json::from_str("\"u1\"").unwrap();
        assert_eq!(k, Energy2d::U1);
        for kind in Energy2d::ALL {
            assert_eq!(kind.extent(), Extent::square(4.0));
            assert_eq!(kind.energy_f64(0.5, 0.5), energy_f64(kind, 0.5, 0.5));
        }
    }
}
