//! Affine coupling (RealNVP, Dinh et al., 2017): half the coordinates scale-and-shift the rest.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::conditioner::MaskedConditioner;
use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use flowvae_nn::{soft_clamp, Activation};

/// `y = m ⊙ x + (1 − m) ⊙ (x ⊙ exp(s) + t)` with `(s, t) = net(x_c [, context])`,
/// `x_c` the coordinates where `m = 1` (the network reads only those and predicts `s, t` only
/// for the others).
///
/// The mask `m` alternates coordinates (`parity` picks which half conditions); the log-scale
/// is soft-clamped to `(−scale_bound, scale_bound)` for stability. Exact inverse, one pass.
#[derive(Debug)]
pub struct AffineCoupling {
    conditioner: MaskedConditioner,
    scale_bound: f64,
}

impl AffineCoupling {
    /// A coupling layer; `parity` 0 keeps even coordinates fixed, 1 keeps odd ones.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        parity: usize,
        scale_bound: f64,
        context_dim: usize,
    ) -> Result<Self> {
        let conditioner = MaskedConditioner::new(
            vb,
            "affine_coupling",
            dim,
            hidden,
            activation,
            parity,
            context_dim,
            2,
        )?;
        Ok(Self {
            conditioner,
            scale_bound,
        })
    }

    /// `x` `(B, D)` → `(y, log|det J|)`, `(B, D)` and `(B)`: the moving half scaled by
    /// `exp(±s)` and shifted by `t` (`sign` +1 forward, −1 inverse), the rest unchanged.
    fn transform(
        &self,
        x: &Tensor,
        cond: &Conditioning<'_>,
        sign: f64,
    ) -> Result<(Tensor, Tensor)> {
        let split = self.conditioner.split(x, cond)?;
        let moving_dim = self.conditioner.moving_dim();
        let s = soft_clamp(&split.params.narrow(1, 0, moving_dim)?, self.scale_bound)?;
        let t = split.params.narrow(1, moving_dim, moving_dim)?;
        let moved = if sign > 0.0 {
            ((&split.moving * s.exp()?)? + t)?
        } else {
            ((&split.moving - t)? * s.neg()?.exp()?)?
        };
        let y = self.conditioner.merge(&split.conditioning, &moved)?;
        Ok((y, (s.sum(1)? * sign)?))
    }
}

impl Flow for AffineCoupling {
    fn name(&self) -> String {
        "affine_coupling".into()
    }
    fn dim(&self) -> usize {
        self.conditioner.dim()
    }
    fn context_dim(&self) -> usize {
        self.conditioner.context_dim()
    }

    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.transform(x, &cond, 1.0)
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.transform(y, &cond, -1.0)
    }
}
