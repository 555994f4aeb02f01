//! The rational quadratic of one bin of the fused spline ([`super::spline`]): its value and
//! log-derivative at a relative position `ξ`, their partial derivatives (for the backward), and
//! the inverse's root, with the formulas and edge handling of [`crate::layers::spline`].

use super::spline::Direction;

/// The quantities of one element's bin, in f64.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bin {
    /// The bin's index, `0..K`.
    pub k: usize,
    pub x0: f64,
    pub y0: f64,
    pub w: f64,
    pub h: f64,
    /// Derivatives at the left and right knots.
    pub d0: f64,
    pub d1: f64,
    /// Their derivatives with respect to their raw parameters (0 at the ends, which are fixed).
    pub dd0: f64,
    pub dd1: f64,
}

/// The bin's rational quadratic at `ξ`: `y = y0 + h·q`, `log y'`, and their partial
/// derivatives with respect to `ξ`, the slope `s = h/w` and the knot derivatives `δ0`, `δ1`
/// (with `h` fixed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Local {
    pub q: f64,
    pub log_det: f64,
    pub q_xi: f64,
    pub q_s: f64,
    pub q_d0: f64,
    pub q_d1: f64,
    pub ld_xi: f64,
    pub ld_s: f64,
    pub ld_d0: f64,
    pub ld_d1: f64,
}

impl Bin {
    #[inline(always)]
    pub fn slope(&self) -> f64 {
        self.h / self.w
    }

    /// `q = (sξ² + δ0 t)/(s + c t)` and `log y' = log(s² m) − 2 log(s + c t)` with
    /// `t = ξ(1 − ξ)`, `c = δ0 + δ1 − 2s`, `m = δ1 ξ² + 2st + δ0 (1 − ξ)²`, as the unfused code.
    #[inline(always)]
    pub fn local(&self, xi: f64) -> Local {
        let (s, d0, d1) = (self.slope(), self.d0, self.d1);
        let one_minus = 1.0 - xi;
        let t = xi * one_minus;
        let u = 1.0 - 2.0 * xi;
        let c = d1 + d0 - 2.0 * s;
        let den = s + c * t;
        let num = s * xi * xi + d0 * t;
        let m = d1 * xi * xi + 2.0 * s * t + d0 * one_minus * one_minus;
        let den2 = den * den;
        Local {
            q: num / den,
            log_det: (s * s * m / den2).ln(),
            // = (num' den − num den') / den², in the form that stays positive.
            q_xi: s * m / den2,
            q_s: (xi * xi * den - num * (1.0 - 2.0 * t)) / den2,
            q_d0: t * (den - num) / den2,
            q_d1: -num * t / den2,
            ld_xi: (2.0 * d1 * xi + 2.0 * s * u - 2.0 * d0 * one_minus) / m - 2.0 * c * u / den,
            ld_s: 2.0 / s + 2.0 * t / m - 2.0 * (1.0 - 2.0 * t) / den,
            ld_d0: one_minus * one_minus / m - 2.0 * t / den,
            ld_d1: xi * xi / m - 2.0 * t / den,
        }
    }

    /// `ξ` of an in-range input `v` in `direction`, before [`into_unit_interval`]: the relative
    /// position (forward) or the root of the bin's quadratic (inverse).
    #[inline(always)]
    pub fn raw_xi(&self, v: f64, direction: Direction) -> f64 {
        match direction {
            Direction::Forward => (v - self.x0) / self.w,
            Direction::Inverse => self.root(v),
        }
    }

    /// The root in `[0, 1]` of `a ξ² + b ξ + c` for `y0 + h q(ξ) = v`, in the form that does not
    /// cancel for the sign of `b` (the unfused `quadratic_root`).
    #[inline(always)]
    fn root(&self, v: f64) -> f64 {
        let s = self.slope();
        let rise = v - self.y0;
        let curvature = self.d1 + self.d0 - 2.0 * s;
        let a = self.h * (s - self.d0) + rise * curvature;
        let b = self.h * self.d0 - rise * curvature;
        let c = -s * rise;
        let root = (b * b - a * c * 4.0).max(1e-30).sqrt();
        if b >= 0.0 {
            (c * 2.0) / (-b - root)
        } else {
            (-b + root) / (a * 2.0)
        }
    }
}

/// `ξ` moved into `[0, 1]` where rounding put it outside (the exact `ξ` is inside: the move
/// only undoes rounding, so the backward differentiates the exact `ξ` at the moved point).
pub(super) fn into_unit_interval(xi: f64) -> f64 {
    xi.clamp(0.0, 1.0)
}
