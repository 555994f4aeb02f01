//! Radial flow (Rezende & Mohamed, 2015): `f(z) = z + β h(α, r)(z − z₀)`, `h = 1/(α + r)`.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use crate::param_source::{split_columns, Block, ParamSource};
use flowvae_nn::softplus;

/// One radial layer on dimension `D`, global or amortized (`P = D + 2`: z₀, α', β').
///
/// `α = softplus(α') > 0` and `β = −α + softplus(β') ≥ −α` keep the map invertible; the
/// inverse is closed-form (a quadratic in the radius).
#[derive(Debug)]
pub struct Radial {
    dim: usize,
    source: ParamSource,
}

struct RadialParams {
    center: Tensor,
    alpha: Tensor,
    beta: Tensor,
}

/// ‖v‖ per row, `(B, 1)`; the tiny offset keeps the gradient finite at the centre.
fn row_norm(v: &Tensor) -> Result<Tensor> {
    Ok(v.sqr()?.sum_keepdim(1)?.affine(1.0, 1e-30)?.sqrt()?)
}

impl Radial {
    /// A radial layer; the global centre is drawn N(0, 1), α' and β' N(0, 0.01²).
    pub fn new(vb: VarBuilder, dim: usize, amortized: bool) -> Result<Self> {
        let blocks = [
            Block::normal("z0", dim, 1.0),
            Block::normal("alpha", 1, 0.01),
            Block::normal("beta", 1, 0.01),
        ];
        let source = ParamSource::new(&vb, amortized, &blocks)?;
        Ok(Self { dim, source })
    }

    fn params(&self, cond: &Conditioning<'_>, rows: usize) -> Result<RadialParams> {
        let raw = self.source.resolve(cond, "radial", rows)?;
        let [center, alpha_raw, beta_raw]: [Tensor; 3] = split_columns(&raw, &[self.dim, 1, 1])?
            .try_into()
            .expect("three blocks");
        let alpha = softplus(&alpha_raw)?;
        let beta = (softplus(&beta_raw)? - &alpha)?;
        Ok(RadialParams {
            center,
            alpha,
            beta,
        })
    }
}

impl Flow for Radial {
    fn name(&self) -> String {
        "radial".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.source.amortized_width()
    }

    fn forward(&self, z: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let p = self.params(&cond, z.dim(0)?)?;
        let diff = z.broadcast_sub(&p.center)?;
        let r = row_norm(&diff)?;
        let alpha_plus_r = r.broadcast_add(&p.alpha)?;
        let beta_h = p.beta.broadcast_div(&alpha_plus_r)?;
        let y = (z + diff.broadcast_mul(&beta_h)?)?;
        // det = (1 + βh)^(D−1) (1 + βh + βh'(r) r), with h'(r) = −1/(α + r)².
        let one_plus_beta_h = beta_h.affine(1.0, 1.0)?;
        let radial_term = (&one_plus_beta_h - (&beta_h * (&r / &alpha_plus_r)?)?)?;
        let log_det = ((one_plus_beta_h.abs()?.log()? * (self.dim as f64 - 1.0))?
            + radial_term.abs()?.log()?)?;
        Ok((y, log_det.squeeze(D::Minus1)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let p = self.params(&cond, y.dim(0)?)?;
        let diff_y = y.broadcast_sub(&p.center)?;
        // ‖y − z₀‖ = r (1 + β/(α + r))  ⇔  r² + (α + β − ρ) r − ρα = 0, take the root ≥ 0.
        let rho = row_norm(&diff_y)?;
        let c = rho.broadcast_sub(&(&p.alpha + &p.beta)?)?.neg()?;
        let disc = (c.sqr()? + rho.broadcast_mul(&p.alpha)?.affine(4.0, 0.0)?)?;
        let r = ((disc.sqrt()? - c)? * 0.5)?;
        let scale = p
            .beta
            .broadcast_div(&r.broadcast_add(&p.alpha)?)?
            .affine(1.0, 1.0)?;
        let z = p.center.broadcast_add(&diff_y.broadcast_div(&scale)?)?;
        let (_, forward_log_det) = self.forward(&z, cond)?;
        Ok((z, forward_log_det.neg()?))
    }
}
