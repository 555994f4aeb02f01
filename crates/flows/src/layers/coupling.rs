//! Affine coupling (RealNVP, Dinh et al., 2017): half the coordinates scale-and-shift the rest.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{FlowError, Result};
use crate::flow::{context_of, Conditioning, Flow};
use flowvae_nn::{soft_clamp, Activation, Mlp};

/// The network half of a coupling layer: the conditioning coordinates (mask `m`) and an
/// optional context in, `outputs_per_dim · D` values out, shared by the affine and additive
/// couplings.
#[derive(Debug)]
pub(crate) struct MaskedConditioner {
    name: &'static str,
    dim: usize,
    context_dim: usize,
    /// `(1, D)`: 1 on the coordinates that pass through unchanged and condition the rest.
    mask: Tensor,
    net: Mlp,
}

impl MaskedConditioner {
    /// `parity` 0 keeps even coordinates fixed, 1 keeps odd ones; `name` is the YAML kind,
    /// for messages.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        vb: VarBuilder,
        name: &'static str,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        parity: usize,
        context_dim: usize,
        outputs_per_dim: usize,
    ) -> Result<Self> {
        if dim < 2 {
            return Err(FlowError::InvalidConfig {
                field: name.into(),
                message: format!("needs dimension ≥ 2 (a side would be empty), got {dim}"),
            });
        }
        let mask = alternating_mask(dim, parity, vb.dtype(), vb.device())?;
        let outputs = outputs_per_dim * dim;
        let net = Mlp::new(vb.pp("net"), dim + context_dim, hidden, outputs, activation)?;
        Ok(Self {
            name,
            dim,
            context_dim,
            mask,
            net,
        })
    }

    /// The network's output `(B, outputs_per_dim · D)` for `x` `(B, D)`, and `1 − m` `(1, D)`.
    pub(crate) fn outputs(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let kept = x.broadcast_mul(&self.mask)?;
        let input = match context_of(cond, self.name, self.context_dim, x.dim(0)?)? {
            Some(context) => Tensor::cat(&[&kept, &context], 1)?,
            None => kept,
        };
        let out = self.net.forward(&input)?;
        Ok((out, self.mask.affine(-1.0, 1.0)?))
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn context_dim(&self) -> usize {
        self.context_dim
    }
}

/// `y = m ⊙ x + (1 − m) ⊙ (x ⊙ exp(s) + t)` with `(s, t) = net(m ⊙ x [, context])`.
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

    /// `(s, t)`, each `(B, D)` and zero on the conditioning coordinates.
    fn scale_shift(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (out, free) = self.conditioner.outputs(x, cond)?;
        let dim = self.conditioner.dim();
        let s = soft_clamp(&out.narrow(1, 0, dim)?, self.scale_bound)?.broadcast_mul(&free)?;
        let t = out.narrow(1, dim, dim)?.broadcast_mul(&free)?;
        Ok((s, t))
    }
}

/// `(1, D)` mask with ones where `(i + parity)` is even.
pub(crate) fn alternating_mask(
    d: usize,
    parity: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let values: Vec<f64> = (0..d)
        .map(|i| {
            if (i + parity).is_multiple_of(2) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, (1, d), dev)?.to_dtype(dtype)?)
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
        let (s, t) = self.scale_shift(x, &cond)?;
        let y = ((x * s.exp()?)? + t)?;
        Ok((y, s.sum(1)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (s, t) = self.scale_shift(y, &cond)?;
        let x = ((y - t)? * s.neg()?.exp()?)?;
        Ok((x, s.sum(1)?.neg()?))
    }
}
