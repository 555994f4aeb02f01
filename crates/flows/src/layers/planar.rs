//! Planar flow (Rezende & Mohamed, 2015): `f(z) = z + û tanh(wᵀz + b)`.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use crate::param_source::{split_columns, Block, ParamSource};
use flowvae_nn::softplus;

/// One planar layer on dimension `D`, global or amortized (`P = 2D + 1`: u, w, b).
///
/// Invertibility needs `wᵀû ≥ −1`, enforced by `û = u + (m(wᵀu) − wᵀu) w / ‖w‖²` with
/// `m(a) = −1 + softplus(a)` (note ‖w‖ *squared*). The inverse has no closed form: it is
/// found by bisection on the scalar `wᵀz` and is not differentiable in the parameters.
#[derive(Debug)]
pub struct Planar {
    dim: usize,
    source: ParamSource,
}

/// The quantities both directions share, each broadcastable over the batch.
struct PlanarParams {
    u_hat: Tensor,
    w: Tensor,
    b: Tensor,
    /// `wᵀû`, `(rows, 1)`, always > −1.
    w_dot_u_hat: Tensor,
}

impl Planar {
    /// A planar layer; global parameters are drawn N(0, 0.01²) except `b = 0`.
    pub fn new(vb: VarBuilder, dim: usize, amortized: bool) -> Result<Self> {
        let blocks = [
            Block::normal("u", dim, 0.01),
            Block::normal("w", dim, 0.01),
            Block::constant("b", 1, 0.0),
        ];
        let source = ParamSource::new(&vb, amortized, &blocks)?;
        Ok(Self { dim, source })
    }

    fn params(&self, cond: &Conditioning<'_>, rows: usize) -> Result<PlanarParams> {
        let raw = self.source.resolve(cond, "planar", rows)?;
        let [u, w, b]: [Tensor; 3] = split_columns(&raw, &[self.dim, self.dim, 1])?
            .try_into()
            .expect("three blocks");
        let w_dot_u = (&w * &u)?.sum_keepdim(1)?;
        let m = softplus(&w_dot_u)?.affine(1.0, -1.0)?;
        let w_norm_sq = w.sqr()?.sum_keepdim(1)?;
        let correction = ((&m - &w_dot_u)? / w_norm_sq)?;
        let u_hat = (u + w.broadcast_mul(&correction)?)?;
        Ok(PlanarParams {
            u_hat,
            w,
            b,
            w_dot_u_hat: m,
        })
    }
}

impl Flow for Planar {
    fn name(&self) -> String {
        "planar".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.source.amortized_width()
    }

    fn forward(&self, z: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let p = self.params(&cond, z.dim(0)?)?;
        let pre = z.broadcast_mul(&p.w)?.sum_keepdim(1)?.broadcast_add(&p.b)?;
        let h = pre.tanh()?;
        let y = (z + p.u_hat.broadcast_mul(&h)?)?;
        // ψᵀû = h'(·) wᵀû with h' = 1 − tanh²; 1 + ψᵀû > 0 since wᵀû > −1.
        let psi_u = h.sqr()?.affine(-1.0, 1.0)?.broadcast_mul(&p.w_dot_u_hat)?;
        let log_det = psi_u.affine(1.0, 1.0)?.abs()?.log()?.squeeze(D::Minus1)?;
        Ok((y, log_det))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let p = self.params(&cond, y.dim(0)?)?.detached()?;
        // wᵀy = a + wᵀû tanh(a + b) with a = wᵀz: monotone in a since wᵀû > −1, and the
        // root lies within |wᵀû| of wᵀy. Bisection halves that bracket 60 times.
        let target = y.broadcast_mul(&p.w)?.sum_keepdim(1)?.detach();
        let radius = p.w_dot_u_hat.abs()?.affine(1.0, 1e-12)?;
        let mut lo = target.broadcast_sub(&radius)?;
        let mut hi = target.broadcast_add(&radius)?;
        for _ in 0..60 {
            let mid = ((&lo + &hi)? * 0.5)?;
            let value = (&mid
                + p.w_dot_u_hat
                    .broadcast_mul(&mid.broadcast_add(&p.b)?.tanh()?)?)?;
            let too_high = value.ge(&target)?;
            hi = too_high.where_cond(&mid, &hi)?;
            lo = too_high.where_cond(&lo, &mid)?;
        }
        let a = ((lo + hi)? * 0.5)?;
        let z = (y - p.u_hat.broadcast_mul(&a.broadcast_add(&p.b)?.tanh()?)?)?;
        let (_, forward_log_det) = self.forward(&z, cond)?;
        Ok((z, forward_log_det.neg()?))
    }
}

impl PlanarParams {
    fn detached(self) -> Result<Self> {
        Ok(Self {
            u_hat: self.u_hat.detach(),
            w: self.w.detach(),
            b: self.b.detach(),
            w_dot_u_hat: self.w_dot_u_hat.detach(),
        })
    }
}
