//! The monotone rational-quadratic spline of [`RqSpline`] (forward or inverse) as one candle
//! custom op with its own backward (CPU).
//!
//! Per element `(row, coordinate)` with its `3K − 1` unconstrained parameters, the op builds
//! the knots (softmax with a minimum size, cumulative sum, ends forced to `±B`; inner
//! derivatives `min_d + softplus(raw + shift)`, boundary ones 1), finds the bin by the same
//! comparisons, and evaluates the same formulas as the unfused composition in
//! [`crate::layers::spline`]: identity tails with log-det 0 outside `[−B, B]`, `ξ` moved into
//! `[0, 1]` where rounding put it outside, the inverse's root in the form that does not cancel
//! for the sign of `b`. Arithmetic is in f64 whatever the dtype.
//!
//! One deliberate difference, in the gradient only: where rounding puts the inverse's root just
//! outside `[0, 1]` (typically at `y = B` exactly), the composition's select cuts the root's
//! gradient, so it depends on the last bit of the knots; here the root's derivative is kept
//! (implicit differentiation at the moved `ξ`), as it is wherever the root rounds inside.
//!
//! Unfused, the spline is ~80 small tensor ops with as many gradient buffers; here it is one
//! pass over the elements forwards and one backwards (`spline_grad.rs`), which recomputes the
//! knots and differentiates analytically (the bin's formulas are in `spline_bin.rs`). The composition stays the path on other devices and
//! with `FLOWVAE_UNFUSED=spline`; `spline_tests.rs` compares the two in value and gradient.

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

use super::spline_bin::{into_unit_interval, Bin};
use super::spline_grad::SplineGrad;
use crate::layers::spline::RqSpline;
use flowvae_nn::kernels::{enabled, for_rows, run_f32_or_f64, Kernel};

/// Which way the spline is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `x → y = g(x)`, log-det `log g'(x)`.
    Forward,
    /// `y → x = g⁻¹(y)`, log-det `−log g'(x)`.
    Inverse,
}

/// Whether the fused op may run for `x` `(N, D)` and `raw` `(R, D, 3K−1)`, `R` = 1 or `N`
/// (CPU, f32 or f64, one dtype). Anything else takes the unfused path, which also reports
/// shapes that do not fit.
pub fn applicable(spline: &RqSpline, x: &Tensor, raw: &Tensor) -> bool {
    let shapes_fit = match (x.dims2(), raw.dims3()) {
        (Ok((n, d)), Ok((r, rd, p))) => {
            (r == 1 || r == n) && rd == d && p == spline.params_per_dim()
        }
        _ => false,
    };
    enabled(flowvae_nn::FusedOp::Spline)
        && x.device().is_cpu()
        && raw.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.dtype() == raw.dtype()
        && shapes_fit
}

/// `v` `(N, D)` and `raw` `(R, D, 3K−1)`, `R` = 1 or `N` → the spline applied in `direction`
/// and its per-element log-det, both `(N, D)`.
pub fn rq_spline(
    spline: &RqSpline,
    v: &Tensor,
    raw: &Tensor,
    direction: Direction,
) -> Result<(Tensor, Tensor)> {
    let (n, d) = v.dims2()?;
    let p = spline.params_per_dim();
    if !matches!(raw.dims3()?, (r, rd, rp) if (r == 1 || r == n) && rd == d && rp == p) {
        bail!(
            "fused spline: v {:?} and raw {:?} disagree",
            v.dims(),
            raw.dims()
        );
    }
    // One parameter row per element row: broadcast's backward sums the gradient back for R = 1
    // (and is skipped for R = N, where its empty sum would still cost a pass).
    let raw = if raw.dim(0)? == n {
        raw.contiguous()?
    } else {
        raw.broadcast_as((n, d, p))?.contiguous()?
    };
    let op = SplineOp {
        spline: *spline,
        direction,
        d,
    };
    let out = v.contiguous()?.apply_op2(&raw, op)?;
    // Contiguous halves, as the composition returns (some ops downstream need them).
    let half = |start: usize| out.narrow(1, start, d)?.contiguous();
    Ok((half(0)?, half(d)?))
}

/// Forward op on `v` `(N, D)` and `raw` `(N, D, 3K−1)`: output `(N, 2D)`, the mapped values
/// then the log-dets.
#[derive(Debug, Clone, Copy)]
pub(super) struct SplineOp {
    pub spline: RqSpline,
    pub direction: Direction,
    /// Coordinates per row.
    pub d: usize,
}

impl SplineOp {
    /// Whether the element `v` (of dtype `T`) is in `[−B, B]`, with `B` rounded to `T` as the
    /// unfused comparison rounds it.
    pub fn inside<T: WithDType>(&self, v: f64) -> bool {
        let bound = T::from_f64(self.spline.bound).to_f64();
        v >= -bound && v <= bound
    }
}

/// One element's spline: its parameters, the softmax fractions of the widths and heights and
/// the knots; the buffers are reused from element to element of a row.
#[derive(Debug)]
pub(super) struct Knots {
    pub spline: RqSpline,
    /// `3K − 1` unconstrained parameters.
    theta: Vec<f64>,
    /// Softmax fractions (before the minimum size) of the widths and heights, `K` each.
    pub pw: Vec<f64>,
    pub ph: Vec<f64>,
    /// Knot positions, `K + 1` each, from `−B` to `B`.
    pub xs: Vec<f64>,
    pub ys: Vec<f64>,
    /// `ln(expm1(1 − min_d))`: zero raw derivatives give slope 1.
    shift: f64,
}

impl Knots {
    pub fn new(spline: RqSpline) -> Self {
        let k = spline.bins;
        Self {
            spline,
            theta: vec![0.0; 3 * k - 1],
            pw: vec![0.0; k],
            ph: vec![0.0; k],
            xs: vec![0.0; k + 1],
            ys: vec![0.0; k + 1],
            shift: (1.0 - spline.min_derivative).exp_m1().ln(),
        }
    }

    /// Builds the knots of the parameters `theta` (`3K − 1`, any float type).
    #[inline(always)]
    pub fn fill<T: WithDType>(&mut self, theta: &[T]) {
        for (t, v) in self.theta.iter_mut().zip(theta) {
            *t = v.to_f64();
        }
        let (k, s) = (self.spline.bins, self.spline);
        positions(
            &self.theta[..k],
            s.min_bin_width,
            s.bound,
            &mut self.pw,
            &mut self.xs,
        );
        positions(
            &self.theta[k..2 * k],
            s.min_bin_height,
            s.bound,
            &mut self.ph,
            &mut self.ys,
        );
    }

    /// The derivative at knot `i`, `min_d + softplus(raw + shift)` inside and 1 at the ends,
    /// and its derivative with respect to the raw parameter (`sigmoid(raw + shift)`, or 0).
    #[inline(always)]
    fn derivative(&self, i: usize) -> (f64, f64) {
        let k = self.spline.bins;
        if i == 0 || i == k {
            return (1.0, 0.0);
        }
        let z = self.theta[2 * k + i - 1] + self.shift;
        // softplus and sigmoid from one `e^(−|z|)`, finite for any z.
        let e = (-z.abs()).exp();
        let sigmoid = if z >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        (self.spline.min_derivative + z.max(0.0) + e.ln_1p(), sigmoid)
    }

    /// The bin of `v` among the x knots (forward) or the y knots (inverse): the number of
    /// inner knots at or below `v`, as the unfused comparisons count them.
    #[inline(always)]
    pub fn bin(&self, v: f64, direction: Direction) -> Bin {
        let k = self.spline.bins;
        let edges = match direction {
            Direction::Forward => &self.xs,
            Direction::Inverse => &self.ys,
        };
        let i = edges[1..k].iter().filter(|&&e| v >= e).count();
        let ((d0, dd0), (d1, dd1)) = (self.derivative(i), self.derivative(i + 1));
        Bin {
            k: i,
            x0: self.xs[i],
            y0: self.ys[i],
            w: self.xs[i + 1] - self.xs[i],
            h: self.ys[i + 1] - self.ys[i],
            d0,
            d1,
            dd0,
            dd1,
        }
    }
}

/// `K + 1` knots from `K` unconstrained sizes: `p` receives their softmax, `knots` `−B`, the
/// cumulative sums of `p·(1 − K·min) + min` scaled onto `[−B, B]`, and `B` (exactly).
#[inline(always)]
fn positions(raw: &[f64], min: f64, bound: f64, p: &mut [f64], knots: &mut [f64]) {
    let k = raw.len();
    let top = raw.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    // libm's exp (not a faster polynomial) and the composition's order of operations: in f64
    // the knots then match the composition's to the bit in the tests (its cumsum, a product
    // with a triangular matrix, adds in this order), so an input exactly at a knot falls in the
    // same bin on both paths.
    for (p, &r) in p.iter_mut().zip(raw) {
        *p = (r - top).exp();
    }
    let sum: f64 = p.iter().sum();
    let mut cumulative = 0.0;
    knots[0] = -bound;
    for i in 0..k {
        p[i] /= sum;
        if i + 1 < k {
            cumulative += p[i] * (1.0 - min * k as f64) + min;
            knots[i + 1] = cumulative * (2.0 * bound) - bound;
        }
    }
    knots[k] = bound;
}

/// The map and log-det of one in-range element `v` with knots `knots`.
#[inline(always)]
fn element(knots: &Knots, v: f64, direction: Direction) -> (f64, f64) {
    let bin = knots.bin(v, direction);
    let xi = into_unit_interval(bin.raw_xi(v, direction));
    let local = bin.local(xi);
    match direction {
        Direction::Forward => (bin.y0 + bin.h * local.q, local.log_det),
        Direction::Inverse => (xi * bin.w + bin.x0, -local.log_det),
    }
}

impl Kernel for SplineOp {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        let (v, raw, d) = (inputs[0], inputs[1], self.d);
        let p = self.spline.params_per_dim();
        let rows = v.len().checked_div(d).unwrap_or(0);
        for_rows(
            rows,
            2 * d,
            #[inline(always)]
            |r, out| {
                let mut knots = Knots::new(self.spline);
                for j in 0..d {
                    let e = r * d + j;
                    let x = v[e].to_f64();
                    // Outside [−B, B]: the identity, with log-det 0.
                    let (y, log_det) = if self.inside::<T>(x) {
                        knots.fill(&raw[e * p..(e + 1) * p]);
                        element(&knots, x, self.direction)
                    } else {
                        (x, 0.0)
                    };
                    out[j] = T::from_f64(y);
                    out[d + j] = T::from_f64(log_det);
                }
            },
        )
    }
}

impl CustomOp2 for SplineOp {
    fn name(&self) -> &'static str {
        "fused-rq-spline"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2)], self)?;
        Ok((out, Shape::from((l1.shape().dims()[0], 2 * self.d))))
    }

    fn bwd(
        &self,
        v: &Tensor,
        raw: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = v.apply_op3_no_bwd(raw, &grad, &SplineGrad { op: *self })?;
        let (d, p) = (self.d, self.spline.params_per_dim());
        let g_raw = both.narrow(1, d, d * p)?.reshape(raw.shape())?;
        Ok((Some(both.narrow(1, 0, d)?), Some(g_raw)))
    }
}
