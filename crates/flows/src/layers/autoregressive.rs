//! Autoregressive affine flows: IAF (Kingma et al., 2016) and, run backwards, MAF
//! (Papamakarios et al., 2017).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::flow::{context_of, zero_log_det, Conditioning, Flow};
use crate::layers::made::Made;
use flowvae_nn::{soft_clamp, Activation};

/// `y_i = x_i exp(s_i(x_<i)) + μ_i(x_<i)` with `(μ, s)` from a [`Made`] on the *input*.
///
/// Its forward is one network pass (fast); the inverse needs `D` passes. As a posterior flow
/// in the sampling direction this is IAF; [`crate::Inverted`] of it is MAF, whose density
/// direction is the fast one. The log-scale is soft-clamped to `(−scale_bound, scale_bound)`.
#[derive(Debug)]
pub struct AutoregressiveAffine {
    made: Made,
    context_dim: usize,
    scale_bound: f64,
}

impl AutoregressiveAffine {
    /// A layer autoregressive in the natural coordinate order.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        scale_bound: f64,
        context_dim: usize,
    ) -> Result<Self> {
        let made = Made::new(vb.pp("made"), dim, hidden, 2, context_dim, activation)?;
        Ok(Self {
            made,
            context_dim,
            scale_bound,
        })
    }

    /// `(μ, s)` at `x`, each `(B, D)`.
    fn shift_scale(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let context = context_of(cond, "iaf", self.context_dim, x.dim(0)?)?;
        let out = self.made.forward(x, context.as_ref())?;
        let d = self.made.dim();
        let mu = out.narrow(1, 0, d)?;
        let s = soft_clamp(&out.narrow(1, d, d)?, self.scale_bound)?;
        Ok((mu, s))
    }
}

impl Flow for AutoregressiveAffine {
    fn name(&self) -> String {
        "iaf".into()
    }
    fn dim(&self) -> usize {
        self.made.dim()
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }

    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (mu, s) = self.shift_scale(x, &cond)?;
        let y = ((x * s.exp()?)? + mu)?;
        Ok((y, s.sum(1)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        invert_by_passes(self.dim(), y, |x| {
            let (mu, s) = self.shift_scale(x, &cond)?;
            let x = ((y - mu)? * s.neg()?.exp()?)?;
            Ok((x, s.sum(1)?.neg()?))
        })
    }
}

/// Inverts an autoregressive map of `y` `(B, D)` by `dim` passes of `pass`, which takes an
/// estimate of `x` to the next one and the inverse log-det `(B,)` at it. After pass `i` the
/// first `i + 1` coordinates are exact; the last pass sees `x_<D` exactly, so its log-det is
/// the one of the returned point.
pub(crate) fn invert_by_passes(
    dim: usize,
    y: &Tensor,
    mut pass: impl FnMut(&Tensor) -> Result<(Tensor, Tensor)>,
) -> Result<(Tensor, Tensor)> {
    let mut x = y.zeros_like()?;
    let mut log_det = zero_log_det(y)?;
    for _ in 0..dim {
        (x, log_det) = pass(&x)?;
    }
    Ok((x, log_det))
}
