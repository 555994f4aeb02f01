//! Additive coupling (NICE, Dinh et al., 2015): half the coordinates shift the rest.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::coupling::alternating_mask;
use crate::error::{FlowError, Result};
use crate::flow::{context_of, Conditioning, Flow};
use flowvae_nn::{Activation, Mlp};

/// `y = m ⊙ x + (1 − m) ⊙ (x + t)` with `t = net(m ⊙ x [, context])`: volume preserving,
/// `log|det J| = 0`, exact inverse in one pass. NICE ends its stack with a learned diagonal
/// scaling (`additive_coupling: {scale: true}` appends an `affine` layer).
#[derive(Debug)]
pub struct AdditiveCoupling {
    dim: usize,
    context_dim: usize,
    /// `(1, D)`: 1 on the coordinates that pass through unchanged and condition the rest.
    mask: Tensor,
    net: Mlp,
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
        if dim < 2 {
            return Err(FlowError::InvalidConfig {
                field: "additive_coupling".into(),
                message: format!("needs dimension ≥ 2 (a side would be empty), got {dim}"),
            });
        }
        let mask = alternating_mask(dim, parity, vb.dtype(), vb.device())?;
        let net = Mlp::new(vb.pp("net"), dim + context_dim, hidden, dim, activation)?;
        Ok(Self {
            dim,
            context_dim,
            mask,
            net,
        })
    }

    /// The shift `t`, `(B, D)`, zero on the conditioning coordinates.
    fn shift(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<Tensor> {
        let kept = x.broadcast_mul(&self.mask)?;
        let input = match context_of(cond, "additive_coupling", self.context_dim, x.dim(0)?)? {
            Some(context) => Tensor::cat(&[&kept, &context], 1)?,
            None => kept,
        };
        let free = self.mask.affine(-1.0, 1.0)?;
        Ok(self.net.forward(&input)?.broadcast_mul(&free)?)
    }

    fn zero_log_det(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?)
    }
}

impl Flow for AdditiveCoupling {
    fn name(&self) -> String {
        "additive_coupling".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }

    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let y = (x + self.shift(x, &cond)?)?;
        Ok((y, self.zero_log_det(x)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let x = (y - self.shift(y, &cond)?)?;
        Ok((x, self.zero_log_det(y)?))
    }
}
