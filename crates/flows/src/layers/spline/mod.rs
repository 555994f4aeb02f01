//! Monotone rational-quadratic splines (Durkan et al., 2019, "Neural Spline Flows"), the
//! element-wise transform of the `rq_*` flows, and the layers built on them (`layers.rs`).
//!
//! Upstream implementations are where users report NaNs at the tail bound and infinite
//! samples. Here every intermediate stays finite by construction: inputs outside `[−B, B]`
//! are replaced by an in-range placeholder before the spline formulas run (and the identity
//! tail is selected afterwards, so no `0 · ∞` reaches a gradient), the bin is found by
//! comparisons that carry no gradient, and softmax/softplus are the max-shifted and
//! `|x|`-split forms that stay finite for unconstrained parameters of any size.

use candle_core::{DType, Tensor, D};

use crate::error::{FlowError, Result};
use crate::fused::spline::{self as fused, Direction};
use flowvae_nn::softplus;

pub(crate) mod layers;

/// The most bins a spline may ask for.
pub const MAX_BINS: usize = 512;

/// Shape of a monotone rational-quadratic spline on `[−bound, bound]` with identity (linear,
/// slope 1) tails outside: `bins` bins whose widths, heights and inner-knot derivatives come
/// from `3·bins − 1` unconstrained numbers per coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RqSpline {
    /// Number of bins `K` (≥ 2).
    pub bins: usize,
    /// Half-width `B` of the interval the spline acts on.
    pub bound: f64,
    /// Smallest bin width, as a fraction of `2B` (`bins · min < 1`).
    pub min_bin_width: f64,
    /// Smallest bin height, as a fraction of `2B` (`bins · min < 1`).
    pub min_bin_height: f64,
    /// Smallest derivative at an inner knot (> 0).
    pub min_derivative: f64,
}

/// The knots of one spline per `(row, coordinate)`: positions `(R, D, K+1)` and derivatives.
struct Knots {
    xs: Tensor,
    ys: Tensor,
    derivatives: Tensor,
}

/// The quantities of the bin each element falls in, all `(N, D)`.
struct Bin {
    x_left: Tensor,
    y_left: Tensor,
    width: Tensor,
    height: Tensor,
    d_left: Tensor,
    d_right: Tensor,
}

impl Bin {
    fn slope(&self) -> Result<Tensor> {
        Ok((&self.height / &self.width)?)
    }

    /// `log y'(ξ)` at relative positions `ξ` in the bin.
    fn log_derivative(&self, xi: &Tensor) -> Result<Tensor> {
        let s = self.slope()?;
        let one_minus = xi.affine(-1.0, 1.0)?;
        let xi_term = (xi * &one_minus)?;
        let numerator = ((&self.d_right * xi.sqr()?)?
            + ((&s * &xi_term)? * 2.0)?
            + (&self.d_left * one_minus.sqr()?)?)?;
        let numerator = (s.sqr()? * numerator)?;
        Ok((numerator.log()? - (self.denominator(&s, &xi_term)?.log()? * 2.0)?)?)
    }

    /// `s + (δ_{k+1} + δ_k − 2s) ξ(1 − ξ)`, ≥ s/2 > 0.
    fn denominator(&self, s: &Tensor, xi_term: &Tensor) -> Result<Tensor> {
        Ok((s + (self.curvature(s)? * xi_term)?)?)
    }

    /// `δ_{k+1} + δ_k − 2s`.
    fn curvature(&self, s: &Tensor) -> Result<Tensor> {
        Ok(((&self.d_right + &self.d_left)? - (s * 2.0)?)?)
    }
}

impl RqSpline {
    /// Unconstrained numbers per coordinate: `K` widths, `K` heights, `K − 1` derivatives.
    pub fn params_per_dim(&self) -> usize {
        3 * self.bins - 1
    }

    /// Checks the settings; `field` is the YAML path for messages.
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |leaf: &str, message: String| {
            Err(FlowError::InvalidConfig {
                field: format!("{field}.{leaf}"),
                message,
            })
        };
        let fraction_ok = |m: f64| m > 0.0 && m * self.bins as f64 <= 0.5;
        if self.bins < 2 || self.bins > MAX_BINS {
            bad(
                "bins",
                format!("must be between 2 and {MAX_BINS}, got {}", self.bins),
            )
        } else if !(self.bound > 0.0 && self.bound.is_finite()) {
            bad("bound", format!("must be positive, got {}", self.bound))
        } else if !fraction_ok(self.min_bin_width) {
            let message = format!(
                "must be positive and at most 0.5 / bins = {}, got {}",
                0.5 / self.bins as f64,
                self.min_bin_width
            );
            bad("min_bin_width", message)
        } else if !fraction_ok(self.min_bin_height) {
            let message = format!(
                "must be positive and at most 0.5 / bins = {}, got {}",
                0.5 / self.bins as f64,
                self.min_bin_height
            );
            bad("min_bin_height", message)
        } else if !(self.min_derivative > 0.0 && self.min_derivative < 1.0) {
            let message = format!("must be in (0, 1), got {}", self.min_derivative);
            bad("min_derivative", message)
        } else {
            Ok(())
        }
    }

    /// Sampling direction, element-wise: `x` `(N, D)` and unconstrained parameters
    /// `(R, D, 3K−1)` (`R` = 1 or `N`) → `(y (N, D), log y'(x) (N, D))`. On the CPU in f32/f64
    /// this is one fused op ([`crate::fused::spline`]); the composition below is the reference
    /// and the path elsewhere.
    pub fn forward(&self, x: &Tensor, raw: &Tensor) -> Result<(Tensor, Tensor)> {
        if fused::applicable(self, x, raw) {
            return Ok(fused::rq_spline(self, x, raw, Direction::Forward)?);
        }
        self.composed_forward(x, raw)
    }

    /// [`RqSpline::forward`] as a composition of candle ops, on any device.
    pub(crate) fn composed_forward(&self, x: &Tensor, raw: &Tensor) -> Result<(Tensor, Tensor)> {
        let knots = self.knots(raw)?;
        let (inside, v) = self.inside(x)?;
        let bin = self.bin_of(&v, &knots.xs, &knots)?;
        let xi = into_unit_interval(&((&v - &bin.x_left)? / &bin.width)?)?;
        let s = bin.slope()?;
        let xi_term = (&xi * xi.affine(-1.0, 1.0)?)?;
        let numerator = (&bin.height * ((&s * xi.sqr()?)? + (&bin.d_left * &xi_term)?)?)?;
        let y = (&bin.y_left + (numerator / bin.denominator(&s, &xi_term)?)?)?;
        let log_det = bin.log_derivative(&xi)?;
        Ok((
            inside.where_cond(&y, x)?,
            inside.where_cond(&log_det, &x.zeros_like()?)?,
        ))
    }

    /// Density direction, closed form (the root of a quadratic in each bin): `y` `(N, D)` →
    /// `(x (N, D), log x'(y) (N, D))`, with the same parameters as [`RqSpline::forward`].
    pub fn inverse(&self, y: &Tensor, raw: &Tensor) -> Result<(Tensor, Tensor)> {
        if fused::applicable(self, y, raw) {
            return Ok(fused::rq_spline(self, y, raw, Direction::Inverse)?);
        }
        self.composed_inverse(y, raw)
    }

    /// [`RqSpline::inverse`] as a composition of candle ops, on any device.
    pub(crate) fn composed_inverse(&self, y: &Tensor, raw: &Tensor) -> Result<(Tensor, Tensor)> {
        let knots = self.knots(raw)?;
        let (inside, v) = self.inside(y)?;
        let bin = self.bin_of(&v, &knots.ys, &knots)?;
        let s = bin.slope()?;
        let rise = (&v - &bin.y_left)?;
        let curvature = bin.curvature(&s)?;
        let a = ((&bin.height * (&s - &bin.d_left)?)? + (&rise * &curvature)?)?;
        let b = ((&bin.height * &bin.d_left)? - (&rise * &curvature)?)?;
        let c = (s.neg()? * &rise)?;
        let xi = into_unit_interval(&quadratic_root(&a, &b, &c)?)?;
        let x = ((&xi * &bin.width)? + &bin.x_left)?;
        let log_det = bin.log_derivative(&xi)?.neg()?;
        Ok((
            inside.where_cond(&x, y)?,
            inside.where_cond(&log_det, &y.zeros_like()?)?,
        ))
    }

    /// The mask of elements in `[−B, B]` and the input with every other element replaced by
    /// 0, so that the spline formulas only ever see in-range values.
    fn inside(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let bound = self.bound;
        let inside = (x.ge(-bound)? * x.le(bound)?)?;
        let v = inside.where_cond(x, &x.zeros_like()?)?;
        Ok((inside, v))
    }

    fn knots(&self, raw: &Tensor) -> Result<Knots> {
        let k = self.bins;
        let (rows, dim, width) = raw.dims3()?;
        if width != self.params_per_dim() {
            return Err(FlowError::InvalidConfig {
                field: "spline parameters".into(),
                message: format!("expected {} per coordinate, got {width}", 3 * k - 1),
            });
        }
        let xs = self.positions(&raw.narrow(2, 0, k)?, self.min_bin_width)?;
        let ys = self.positions(&raw.narrow(2, k, k)?, self.min_bin_height)?;
        // Zero raw derivatives give slope 1 (with equal bins: the identity map).
        let shift = (1.0 - self.min_derivative).exp_m1().ln();
        let inner =
            (softplus(&raw.narrow(2, 2 * k, k - 1)?.affine(1.0, shift)?)? + self.min_derivative)?;
        let ones = Tensor::ones((rows, dim, 1), raw.dtype(), raw.device())?;
        let derivatives = Tensor::cat(&[&ones, &inner, &ones], 2)?;
        Ok(Knots {
            xs,
            ys,
            derivatives,
        })
    }

    /// `K + 1` increasing knot positions from `−B` to `B` (exactly) from `K` unconstrained
    /// sizes `(R, D, K)`, each bin at least `min · 2B` wide.
    fn positions(&self, raw: &Tensor, min: f64) -> Result<Tensor> {
        let k = self.bins;
        let shifted = raw.broadcast_sub(&raw.max_keepdim(D::Minus1)?)?.exp()?;
        let fractions = shifted.broadcast_div(&shifted.sum_keepdim(D::Minus1)?)?;
        let fractions = fractions.affine(1.0 - min * k as f64, min)?;
        let cumulative = fractions.narrow(2, 0, k - 1)?.cumsum(2)?;
        let inner = cumulative.affine(2.0 * self.bound, -self.bound)?;
        let (rows, dim, _) = raw.dims3()?;
        let edge = |value: f64| Tensor::full(value, (rows, dim, 1), raw.device());
        let (low, high) = (edge(-self.bound)?, edge(self.bound)?);
        Ok(Tensor::cat(
            &[
                &low.to_dtype(raw.dtype())?,
                &inner,
                &high.to_dtype(raw.dtype())?,
            ],
            2,
        )?)
    }

    /// The bin of each element of `v` `(N, D)` among `edges` `(R, D, K+1)` (the x or y knots).
    fn bin_of(&self, v: &Tensor, edges: &Tensor, knots: &Knots) -> Result<Bin> {
        let k = self.bins;
        let dtype = v.dtype();
        let inner = edges.narrow(2, 1, k - 1)?;
        let index = v
            .unsqueeze(2)?
            .broadcast_ge(&inner)?
            .to_dtype(DType::F32)?
            .sum_keepdim(2)?;
        let bins = Tensor::arange(0u32, k as u32, v.device())?
            .to_dtype(DType::F32)?
            .reshape((1, 1, k))?;
        let one_hot = index.broadcast_eq(&bins)?.to_dtype(dtype)?;
        let pick = |t: &Tensor| -> Result<Tensor> { Ok(one_hot.broadcast_mul(t)?.sum(2)?) };
        let left = |t: &Tensor| t.narrow(2, 0, k);
        let right = |t: &Tensor| t.narrow(2, 1, k);
        let widths = (right(&knots.xs)? - left(&knots.xs)?)?;
        let heights = (right(&knots.ys)? - left(&knots.ys)?)?;
        Ok(Bin {
            x_left: pick(&left(&knots.xs)?)?,
            y_left: pick(&left(&knots.ys)?)?,
            width: pick(&widths)?,
            height: pick(&heights)?,
            d_left: pick(&left(&knots.derivatives)?)?,
            d_right: pick(&right(&knots.derivatives)?)?,
        })
    }
}

/// The root in `[0, 1]` of `a ξ² + b ξ + c` (all `(N, D)`), in the form that does not
/// cancel for the sign of `b`: `2c / (−b − √Δ)` when `b ≥ 0`, `(−b + √Δ) / 2a` when `b < 0`
/// (then `a > hs > 0`). Each branch's denominator is made harmless where it is not selected,
/// so that its gradient (zero there) never meets a division by zero, and `Δ` is kept off 0
/// so that `√Δ` has a finite derivative.
fn quadratic_root(a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    let discriminant = (b.sqr()? - ((a * c)? * 4.0)?)?.maximum(1e-30)?;
    let root = discriminant.sqrt()?;
    let b_positive = b.ge(0.0)?;
    let below = b_positive.where_cond(&(b.neg()? - &root)?, &b.ones_like()?.neg()?)?;
    let from_c = ((c * 2.0)? / below)?;
    let above = b_positive.where_cond(&b.ones_like()?, &(a * 2.0)?)?;
    let from_a = ((b.neg()? + &root)? / above)?;
    Ok(b_positive.where_cond(&from_c, &from_a)?)
}

/// `ξ` moved into `[0, 1]` where rounding put it outside (in f32 with steep knots the
/// quadratic's root can miss by ~1e-6, enough to turn `log y'(ξ)` negative-argument). A
/// select rather than `clamp`, so that `ξ` exactly at 0 or 1 keeps its whole gradient.
fn into_unit_interval(xi: &Tensor) -> Result<Tensor> {
    let xi = xi.lt(0.0)?.where_cond(&xi.zeros_like()?, xi)?;
    Ok(xi.gt(1.0)?.where_cond(&xi.ones_like()?, &xi)?)
}

/// `(N, P·D)` network output whose block `j` holds parameter `j` of every coordinate (MADE's
/// layout) → `(N, D, P)`.
pub(crate) fn per_coordinate(out: &Tensor, dim: usize) -> Result<Tensor> {
    let (rows, width) = out.dims2()?;
    Ok(out.reshape((rows, width / dim, dim))?.transpose(1, 2)?)
}

#[cfg(test)]
mod tests;
