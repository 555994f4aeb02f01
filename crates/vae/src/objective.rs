//! Training objectives: the ELBO with a flow posterior (with β warm-up) and the K-sample
//! importance-weighted bound.

use crate::error::Result;
use candle_core::Tensor;
use flowvae_nn::logsumexp;
use serde::{Deserialize, Serialize};

use crate::encoder::repeat_rows;
use crate::model::FlowVae;

/// Which bound is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// `E_q[log p(x|z_K)] − β E_q[log q_K(z_K|x) − log p(z_K)]`, one sample.
    #[default]
    Elbo,
    /// `E[log (1/K) Σ_k w_k]`, `w_k = p(x, z_k)/q(z_k|x)` (Burda et al., 2016).
    ImportanceWeighted,
}

/// The per-data-point pieces of a training step, each `(B,)` and differentiable.
#[derive(Debug, Clone)]
pub struct BoundTerms {
    /// The (β-weighted) bound to maximise.
    pub objective: Tensor,
    /// `−ELBO` at β = 1 (the number reported), averaged over the samples.
    pub neg_elbo: Tensor,
    /// `−E log p(x|z)`.
    pub reconstruction: Tensor,
    /// `E[log q_K − log p(z_K)]`.
    pub kl: Tensor,
}

/// Computes the bound on `x` `(B, D_x)` with noise `eps` `(B·K, z)`: `K` samples per point,
/// rows `b·K .. b·K+K` belonging to `x_b`.
pub fn bound_terms(
    model: &FlowVae,
    x: &Tensor,
    eps: &Tensor,
    bound: Bound,
    samples: usize,
    beta: f64,
) -> Result<BoundTerms> {
    let b = x.dim(0)?;
    let k = samples.max(1);
    let enc = model.encode(x)?.repeat_rows(k)?;
    let x_rep = repeat_rows(x, k)?;
    let terms = model.terms(&x_rep, &enc, eps)?;
    let per_point = |t: &Tensor| -> Result<Tensor> { Ok(t.reshape((b, k))?.mean(1)?) };
    let reconstruction = per_point(&terms.log_px_z.neg()?)?;
    let kl = per_point(&terms.kl()?)?;
    let neg_elbo = (&reconstruction + &kl)?;
    let objective = match bound {
        Bound::Elbo => (reconstruction.neg()? - (&kl * beta)?)?,
        Bound::ImportanceWeighted => {
            let log_w = (&terms.log_px_z - (terms.kl()? * beta)?)?.reshape((b, k))?;
            logsumexp(&log_w, 1)?.affine(1.0, -(k as f64).ln())?
        }
    };
    Ok(BoundTerms {
        objective,
        neg_elbo,
        reconstruction,
        kl,
    })
}

/// The ELBO objective `(B,)` with free bits: `−recon − β max(λ, KL̄)`, `KL̄` the batch mean of
/// `terms.kl`. Above `nats` it is `terms`' own ELBO objective; below, the KL term is the constant
/// `λ` and passes no gradient. The batch mean of the result is the objective to maximise.
pub fn with_free_bits(terms: &BoundTerms, nats: f64, beta: f64) -> Result<Tensor> {
    let mean_kl: f64 = terms
        .kl
        .mean_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar()?;
    let kl = if mean_kl >= nats {
        terms.kl.clone()
    } else {
        terms.kl.zeros_like()?.affine(0.0, nats)?
    };
    Ok((terms.reconstruction.neg()? - (kl * beta)?)?)
}

/// KL warm-up: β rises linearly from `start` to 1 over `epochs` epochs (0: always 1), as
/// `min(1, start + epoch / epochs)` with epochs counted from 0.
pub fn warmup_beta(epoch: usize, epochs: usize, start: f64) -> f64 {
    if epochs == 0 {
        1.0
    } else {
        (start + epoch as f64 / epochs as f64).min(1.0)
    }
}
