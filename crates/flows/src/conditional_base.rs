//! A base density conditioned on a context `c` `(B, C)`, for conditional densities `p(x | c)`:
//! the diagonal base's mean and log-scale, or the mixture's logits and means, each plus a
//! linear map of `c`. The maps start at zero, so training starts from the unconditional base;
//! the standard normal has nothing to move and ignores the context.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::bases::{diagonal_log_prob, draw_index, Base};
use crate::error::{FlowError, Result};
use crate::flow::expand_rows;
use flowvae_nn::{logsumexp, standard_normal, SeededRng};

/// A [`Base`] and, when conditional, the `(C, P)` map from the context to shifts of its `P`
/// parameters per row.
#[derive(Debug)]
pub struct ConditionalBase {
    base: Base,
    /// `(C, P)`; `None` for an unconditional base or one without parameters.
    weight: Option<Tensor>,
    context_dim: usize,
}

impl ConditionalBase {
    /// `base` as it is, ignoring any context.
    pub fn unconditional(base: Base) -> Self {
        Self {
            base,
            weight: None,
            context_dim: 0,
        }
    }

    /// `base` conditioned on a context of width `context_dim`; the map lives under `vb`
    /// (`context_weight`, zero at start). With `context_dim = 0` the base is unconditional.
    pub fn new(base: Base, vb: VarBuilder, context_dim: usize) -> Result<Self> {
        let width = match &base {
            Base::Standard(_) => 0,
            Base::Diagonal { mean, .. } => 2 * mean.dim(1)?,
            Base::Mixture { means, .. } => {
                let (k, d) = means.dims2()?;
                k + k * d
            }
        };
        let weight = match context_dim > 0 && width > 0 {
            true => {
                Some(vb.get_with_hints((context_dim, width), "context_weight", Init::Const(0.0))?)
            }
            false => None,
        };
        Ok(Self {
            base,
            weight,
            context_dim,
        })
    }

    /// The unconditional part.
    pub fn base(&self) -> &Base {
        &self.base
    }

    /// Width `C` of the context this base reads (0: none, also for the standard normal,
    /// which has no parameters to move).
    pub fn context_dim(&self) -> usize {
        match self.weight {
            Some(_) => self.context_dim,
            None => 0,
        }
    }

    /// Per-row parameter shifts `(rows, P)` from `context`, or `None` when unconditional.
    fn shifts(&self, context: Option<&Tensor>, rows: usize) -> Result<Option<Tensor>> {
        let Some(weight) = &self.weight else {
            return Ok(None);
        };
        let error = |message: String| FlowError::Conditioning {
            flow: "base".into(),
            message,
        };
        let context = context.ok_or_else(|| {
            error(format!(
                "needs a context of width {}, got none",
                self.context_dim
            ))
        })?;
        let (got_rows, width) = context.dims2()?;
        if width != self.context_dim || got_rows == 0 || !rows.is_multiple_of(got_rows) {
            return Err(error(format!(
                "expects a context of width {} whose rows divide {rows}, got ({got_rows}, {width})",
                self.context_dim
            )));
        }
        let context = expand_rows(&context.to_dtype(weight.dtype())?, rows)?;
        Ok(Some(context.matmul(weight)?))
    }

    /// `log p(z | c)` for `z` `(B, D)` and the context `(B, C)` (or rows dividing `B`): `(B,)`.
    pub fn log_prob(&self, z: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let rows = z.dim(0)?;
        let Some(shift) = self.shifts(context, rows)? else {
            return self.base.log_prob(z);
        };
        match &self.base {
            Base::Standard(_) => self.base.log_prob(z),
            Base::Diagonal { mean, log_std } => {
                let (mean, log_std) = diagonal_params(&shift, mean, log_std)?;
                diagonal_log_prob(z, &mean, &log_std)
            }
            Base::Mixture {
                logits,
                means,
                log_stds,
            } => {
                let (logits, means) = mixture_params(&shift, logits, means)?;
                let (k, d) = (means.dim(1)?, means.dim(2)?);
                let repeated = z.unsqueeze(1)?.broadcast_as((rows, k, d))?;
                let per_component = diagonal_log_prob(&repeated, &means, &log_stds.unsqueeze(0)?)?;
                let log_weights = logits.broadcast_sub(&logsumexp(&logits, 1)?.unsqueeze(1)?)?;
                Ok(logsumexp(&(per_component + log_weights)?, 1)?)
            }
        }
    }

    /// `n` draws `(n, D)` at `temperature` given the context `(n, C)` (or rows dividing `n`);
    /// noise from `rng`.
    pub fn sample(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut SeededRng,
        (dtype, device): (DType, &Device),
        context: Option<&Tensor>,
    ) -> Result<Tensor> {
        let Some(shift) = self.shifts(context, n)? else {
            return self.base.sample(n, temperature, rng, dtype, device);
        };
        match &self.base {
            Base::Standard(_) => self.base.sample(n, temperature, rng, dtype, device),
            Base::Diagonal { mean, log_std } => {
                let (mean, log_std) = diagonal_params(&shift, mean, log_std)?;
                let eps = standard_normal(rng, mean.shape(), dtype, device)?;
                Ok(((eps * log_std.exp()?)?.affine(temperature, 0.0)? + mean)?)
            }
            Base::Mixture {
                logits,
                means,
                log_stds,
            } => {
                let (logits, means) = mixture_params(&shift, logits, means)?;
                let (k, d) = (means.dim(1)?, means.dim(2)?);
                let chosen = draw_per_row(&logits, rng, device)?;
                let rows: Vec<u32> = (0..n as u32).map(|i| i * k as u32).collect();
                let flat = (Tensor::from_vec(rows, n, device)? + &chosen)?;
                let mean = means.reshape((n * k, d))?.index_select(&flat, 0)?;
                let std = log_stds.index_select(&chosen, 0)?.exp()?;
                let eps = standard_normal(rng, (n, d), dtype, device)?;
                Ok((mean + (eps * std)?.affine(temperature, 0.0)?)?)
            }
        }
    }
}

/// Per-row mean and log-scale `(B, D)` of a diagonal base shifted by `shift` `(B, 2D)`.
fn diagonal_params(shift: &Tensor, mean: &Tensor, log_std: &Tensor) -> Result<(Tensor, Tensor)> {
    let d = mean.dim(1)?;
    Ok((
        shift.narrow(1, 0, d)?.broadcast_add(mean)?,
        shift.narrow(1, d, d)?.broadcast_add(log_std)?,
    ))
}

/// Per-row logits `(B, K)` and means `(B, K, D)` of a mixture shifted by `(B, K + K·D)`.
fn mixture_params(shift: &Tensor, logits: &Tensor, means: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, (k, d)) = (shift.dim(0)?, means.dims2()?);
    let logits = shift.narrow(1, 0, k)?.broadcast_add(logits)?;
    let means = shift
        .narrow(1, k, k * d)?
        .reshape((rows, k, d))?
        .broadcast_add(&means.unsqueeze(0)?)?;
    Ok((logits, means))
}

/// One component index per row of `logits` `(B, K)`, drawn from the row's softmax: `(B,)` u32.
fn draw_per_row(logits: &Tensor, rng: &mut SeededRng, device: &Device) -> Result<Tensor> {
    let logits: Vec<Vec<f64>> = logits.to_dtype(DType::F64)?.to_vec2()?;
    let chosen: Vec<u32> = logits.iter().map(|row| draw_index(row, rng)).collect();
    Ok(Tensor::from_vec(chosen, logits.len(), device)?)
}

#[cfg(test)]
#[path = "conditional_base_tests.rs"]
mod tests;
