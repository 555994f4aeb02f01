//! The importance-sampled test log-likelihood: `log p(x) ≈ logsumexp_s log w_s − log S`.
//!
//! The encoder runs once per image; flow and decoder run over the `S` samples in chunks; the
//! log-sum-exp over all `S` is accumulated in f64.

use crate::error::Result;
use candle_core::{DType, Tensor};
use flowvae_nn::{standard_normal, SeededRng};

use crate::encoder::{repeat_rows, EncoderOutput};
use crate::model::FlowVae;

/// A running `log Σ exp(v)` in f64.
#[derive(Debug, Clone, Copy)]
pub struct LogSumExp {
    max: f64,
    sum: f64,
}

impl Default for LogSumExp {
    fn default() -> Self {
        Self {
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }
}

impl LogSumExp {
    /// Adds `v` to the sum.
    pub fn push(&mut self, v: f64) {
        if v == f64::NEG_INFINITY {
            return;
        }
        if v > self.max {
            self.sum = self.sum * (self.max - v).exp() + 1.0;
            self.max = v;
        } else {
            self.sum += (v - self.max).exp();
        }
    }

    /// `log Σ exp(v)` of everything pushed.
    pub fn value(&self) -> f64 {
        self.max + self.sum.ln()
    }
}

/// `log p(x)` estimates for a batch `x` `(B, D_x)` with `samples` importance samples each,
/// processed `chunk` samples at a time per image. Returns `B` values.
pub fn log_likelihood(
    model: &FlowVae,
    x: &Tensor,
    samples: usize,
    chunk: usize,
    rng: &mut SeededRng,
) -> Result<Vec<f64>> {
    let enc = model.encode(x)?;
    estimate(model, x, samples, chunk, rng, |x_rep, k| {
        enc.repeat_rows(k).map(|e| (x_rep, e))
    })
}

/// The same estimate by replicating every image `S` times through the whole model, encoder
/// included: the naive approach, kept for benchmarks and as a cross-check.
pub fn log_likelihood_replicated(
    model: &FlowVae,
    x: &Tensor,
    samples: usize,
    chunk: usize,
    rng: &mut SeededRng,
) -> Result<Vec<f64>> {
    estimate(model, x, samples, chunk, rng, |x_rep, _| {
        let enc = model.encoder.forward(&x_rep)?;
        Ok((x_rep, enc))
    })
}

/// The chunked importance-sampling loop; `encode(x_rep, k)` gives the encoder output for the
/// `(B·k, D_x)` replicated images.
fn estimate(
    model: &FlowVae,
    x: &Tensor,
    samples: usize,
    chunk: usize,
    rng: &mut SeededRng,
    encode: impl Fn(Tensor, usize) -> Result<(Tensor, EncoderOutput)>,
) -> Result<Vec<f64>> {
    let b = x.dim(0)?;
    let mut sums = vec![LogSumExp::default(); b];
    let mut done = 0;
    while done < samples {
        let k = chunk.max(1).min(samples - done);
        let (x_rep, enc) = encode(repeat_rows(x, k)?, k)?;
        let eps = standard_normal(rng, (b * k, model.latent()), x.dtype(), x.device())?;
        let log_w = model.terms(&x_rep, &enc, &eps)?.log_weight()?;
        let rows: Vec<Vec<f64>> = log_w.to_dtype(DType::F64)?.reshape((b, k))?.to_vec2()?;
        for (sum, row) in sums.iter_mut().zip(&rows) {
            row.iter().for_each(|&v| sum.push(v));
        }
        done += k;
    }
    let log_s = (samples as f64).ln();
    Ok(sums.iter().map(|s| s.value() - log_s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_logsumexp_matches_direct_formula() {
        let values = [-1000.0, 3.0, 2.5, -7.0, 1000.0, 999.0];
        let mut acc = LogSumExp::default();
        values.iter().for_each(|&v| acc.push(v));
        let m = 1000.0f64;
        let want = m + values.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        assert!((acc.value() - want).abs() < 1e-12);
    }
}
