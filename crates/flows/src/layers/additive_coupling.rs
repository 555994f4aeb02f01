//! Additive coupling (NICE, Dinh et al., 2015): half the coordinates shift the rest.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::conditioner::MaskedConditioner;
use crate::error::Result;
use crate::flow::{zero_log_det, Conditioning, Flow};
use flowvae_nn::Activation;

/// `y = m ⊙ x + (1 − m) ⊙ (x + t)` with `t = net(x_c [, context])`, `x_c`
/// the coordinates where `m = 1`: volume preserving,
/// `log|det J| = 0`, exact inverse in one pass. NICE ends its stack with a learned diagonal
/// scaling (`additive_coupling: {scale: true}` appends an `affine` layer).
#[derive(Debug)]
pub struct AdditiveCoupling {
    conditioner: MaskedConditioner,
}

impl AdditiveCoupling {
    /// A coupling layer; `parity` 0 keeps even coordinates fixed, 1 keeps odd ones.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        parity: usize,
        context_dim: usize,
    ) -> Result<Self> {
        let conditioner = MaskedConditioner::new(
            vb,
            "additive_coupling",
            dim,
            hidden,
            activation,
            parity,
            context_dim,
            1,
        )?;
        Ok(Self { conditioner })
    }

    /// `x` `(B, D)` → `y`: the moving half shifted by `sign · t`.
    fn shift(&self, x: &Tensor, cond: &Conditioning<'_>, sign: f64) -> Result<Tensor> {
        let split = self.conditioner.split(x, cond)?;
        let moved = (&split.moving + (split.params * sign)?)?;
        self.conditioner.merge(&split.conditioning, &moved)
    }
}

impl Flow for AdditiveCoupling {
    fn name(&self) -> String {
        "additive_coupling".into()
    }
    fn dim(&self) -> usize {
        self.conditioner.dim()
    }
    fn context_dim(&self) -> usize {
        self.conditioner.context_dim()
    }

    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let y = self.shift(x, &cond, 1.0)?;
        Ok((y, zero_log_det(x)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let x = self.shift(y, &cond, -1.0)?;
        Ok((x, zero_log_det(y)?))
    }
}
