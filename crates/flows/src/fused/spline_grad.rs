//! The backward of the fused spline ([`super::spline`]): analytic gradients with respect to
//! the input and the unconstrained parameters, per element, from recomputed knots.
//!
//! Per element the gradient first reaches the selected bin's quantities `(x0, y0, w, h, δ0,
//! δ1)`, then the knots (`w = x_{k+1} − x_k`), the fractions (each inner knot is a prefix sum,
//! so a fraction receives the gradients of the knots after it), the raw sizes (softmax's
//! Jacobian-vector product) and the raw derivatives (softplus' sigmoid). Elements in the tails
//! pass the gradient 1 to the input and none to the parameters.
//!
//! The inverse is differentiated implicitly: `x = x0 + ξ w` with `Φ(ξ, θ) = y0 + h q(ξ) − v = 0`
//! gives `dξ = −Φ_θ dθ / Φ_ξ`, which equals the derivative of the closed-form root wherever the
//! root is simple (always inside a bin: `Φ_ξ = w g'(x) > 0`).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, WithDType};

use super::spline::{Direction, Knots, SplineOp};
use super::spline_bin::{into_unit_interval, Bin};
use flowvae_nn::kernels::{for_rows, run_f32_or_f64, Kernel};

/// Backward op: inputs `v` `(N, D)`, `raw` `(N, D, P)` and the gradient of the forward output
/// `(N, 2D)`; output `(N, D + D·P)`, the gradient of `v` then of `raw`, row by row.
#[derive(Debug, Clone, Copy)]
pub(super) struct SplineGrad {
    pub op: SplineOp,
}

/// Gradients of the selected bin's quantities and of the input.
#[derive(Debug, Clone, Copy)]
struct BinGrad {
    v: f64,
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    d0: f64,
    d1: f64,
}

/// Forward direction: `y = y0 + h q(ξ, s, δ0, δ1)`, `ξ = (v − x0)/w`, `s = h/w`, log-det
/// `ℓ(ξ, s, δ0, δ1)`; `gy`, `gl` are the gradients of `y` and the log-det.
#[inline(always)]
fn forward_grad(bin: &Bin, v: f64, gy: f64, gl: f64) -> BinGrad {
    let xi = into_unit_interval(bin.raw_xi(v, Direction::Forward));
    let l = bin.local(xi);
    let g_xi = gy * bin.h * l.q_xi + gl * l.ld_xi;
    let g_s = gy * bin.h * l.q_s + gl * l.ld_s;
    BinGrad {
        v: g_xi / bin.w,
        x0: -g_xi / bin.w,
        y0: gy,
        w: -(g_xi * xi + g_s * bin.slope()) / bin.w,
        h: gy * l.q + g_s / bin.w,
        d0: gy * bin.h * l.q_d0 + gl * l.ld_d0,
        d1: gy * bin.h * l.q_d1 + gl * l.ld_d1,
    }
}

/// Inverse direction: `x = x0 + ξ w` with `ξ` the root of `y0 + h q(ξ) = v`, log-det `−ℓ(ξ, …)`;
/// `gx`, `gl` are the gradients of `x` and the log-det. The total gradient of `ξ` reaches the
/// parameters through `λ = g_ξ / Φ_ξ`.
#[inline(always)]
fn inverse_grad(bin: &Bin, v: f64, gx: f64, gl: f64) -> BinGrad {
    let xi = into_unit_interval(bin.raw_xi(v, Direction::Inverse));
    let l = bin.local(xi);
    let lambda = (gx * bin.w - gl * l.ld_xi) / (bin.h * l.q_xi);
    let g_s = -gl * l.ld_s - lambda * bin.h * l.q_s;
    BinGrad {
        v: lambda,
        x0: gx,
        y0: -lambda,
        w: gx * xi - g_s * bin.slope() / bin.w,
        h: -lambda * l.q + g_s / bin.w,
        d0: -gl * l.ld_d0 - lambda * bin.h * l.q_d0,
        d1: -gl * l.ld_d1 - lambda * bin.h * l.q_d1,
    }
}

/// Writes into `out` (`K`) the gradient of the raw sizes behind knots with softmax fractions `p`,
/// given the gradients `g_left`, `g_right` of knots `i` and `i + 1` (all others 0). Knot
/// `j ∈ 1..K` is `−B + 2B Σ_{l<j} (p_l (1 − K·min) + min)`; the ends are constants.
#[inline(always)]
fn sizes_grad(p: &[f64], scale: f64, i: usize, g_left: f64, g_right: f64, out: &mut [f64]) {
    let k = p.len();
    let inner = |j: usize| j > 0 && j < k;
    let g_fraction = |l: usize| {
        let left = if inner(i) && l < i { g_left } else { 0.0 };
        let right = if inner(i + 1) && l < i + 1 {
            g_right
        } else {
            0.0
        };
        scale * (left + right)
    };
    let mean: f64 = p.iter().enumerate().map(|(l, p)| p * g_fraction(l)).sum();
    for (l, (o, p)) in out.iter_mut().zip(p).enumerate() {
        *o = p * (g_fraction(l) - mean);
    }
}

/// Writes the gradient of one element's `3K − 1` parameters from that of its bin.
#[inline(always)]
fn parameters_grad(knots: &Knots, bin: &Bin, g: &BinGrad, out: &mut [f64]) {
    let s = knots.spline;
    let k = s.bins;
    let size_scale = |min: f64| 2.0 * s.bound * (1.0 - min * k as f64);
    let (widths, rest) = out.split_at_mut(k);
    let (heights, derivatives) = rest.split_at_mut(k);
    let scale = size_scale(s.min_bin_width);
    sizes_grad(&knots.pw, scale, bin.k, g.x0 - g.w, g.w, widths);
    let scale = size_scale(s.min_bin_height);
    sizes_grad(&knots.ph, scale, bin.k, g.y0 - g.h, g.h, heights);
    derivatives.fill(0.0);
    for (i, g) in [(bin.k, g.d0 * bin.dd0), (bin.k + 1, g.d1 * bin.dd1)] {
        if i > 0 && i < k {
            derivatives[i - 1] = g;
        }
    }
}

impl Kernel for SplineGrad {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        let (v, raw, grad) = (inputs[0], inputs[1], inputs[2]);
        let (d, p, direction) = (
            self.op.d,
            self.op.spline.params_per_dim(),
            self.op.direction,
        );
        let rows = v.len().checked_div(d).unwrap_or(0);
        for_rows(
            rows,
            d + d * p,
            #[inline(always)]
            |r, out| {
                let mut knots = Knots::new(self.op.spline);
                let mut g_theta = vec![0.0; p];
                let (g_out, g_log_det) = grad[r * 2 * d..(r + 1) * 2 * d].split_at(d);
                let (g_v, g_raw) = out.split_at_mut(d);
                for j in 0..d {
                    let e = r * d + j;
                    let (x, g_out, g_ld) =
                        (v[e].to_f64(), g_out[j].to_f64(), g_log_det[j].to_f64());
                    if !self.op.inside::<T>(x) {
                        // The identity tail; the parameters' gradient stays 0.
                        g_v[j] = T::from_f64(g_out);
                        continue;
                    }
                    knots.fill(&raw[e * p..(e + 1) * p]);
                    let bin = knots.bin(x, direction);
                    let g = match direction {
                        Direction::Forward => forward_grad(&bin, x, g_out, g_ld),
                        Direction::Inverse => inverse_grad(&bin, x, g_out, g_ld),
                    };
                    parameters_grad(&knots, &bin, &g, &mut g_theta);
                    g_v[j] = T::from_f64(g.v);
                    for (o, &g) in g_raw[j * p..(j + 1) * p].iter_mut().zip(&g_theta) {
                        *o = T::from_f64(g);
                    }
                }
            },
        )
    }
}

impl CustomOp3 for SplineGrad {
    fn name(&self) -> &'static str {
        "fused-rq-spline-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, d) = (l1.shape().dims()[0], self.op.d);
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2), (s3, l3)], self)?;
        Ok((
            out,
            Shape::from((rows, d + d * self.op.spline.params_per_dim())),
        ))
    }
}
