//! `flowvae gaps`: splits a trained Flow-VAE's inference gap `log p(x) − ELBO` into the
//! amortization gap and the approximation gap (Cremer, Li & Duvenaud, 2018).
//!
//! On a few images, the encoder's outputs (`μ`, `log σ²`, the flow's per-image parameters and
//! context) become free variables and are optimised per image for the ELBO, decoder fixed.
//! Then, per image:
//! - amortization gap = ELBO(optimised q) − ELBO(encoder's q): what a better encoder could win;
//! - approximation gap = log p̂(x) − ELBO(optimised q): what a richer posterior family could win,
//!   the part a flow is meant to close.
//!
//! `log p̂(x)` is the larger of the two importance-sampled estimates (with the encoder's and
//! with the optimised q as proposal); both are stochastic lower bounds of `log p(x)`.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use flowvae_flows::DiagGaussian;
use flowvae_nn::{seeded, standard_normal, SeededRng};
use flowvae_vae::FlowVae;
use flowvae_vae::LogSumExp;
use flowvae_vae::{repeat_rows, EncoderOutput};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::run::eval::load_run;
use flowvae_data::{load_splits, split_by_name, BatchMaker};
use flowvae_train::Positive;
use flowvae_train::{Optimizer, OptimizerConfig};

/// How the gaps are measured.
#[derive(Debug, Clone)]
pub struct GapOptions {
    /// The first `images` images of the split.
    pub images: usize,
    /// Adam steps of the per-image optimisation.
    pub steps: usize,
    /// Posterior samples per image per step.
    pub samples_per_step: usize,
    /// Samples per image for the final ELBO and importance-sampled estimates.
    pub eval_samples: usize,
    /// Learning rate of the per-image optimisation.
    pub lr: f64,
    /// Seed of its noise.
    pub seed: u64,
}

/// Means over the images, in nats (higher ELBO is better; the gaps are ≥ 0 up to noise).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GapReport {
    pub split: String,
    pub images: usize,
    pub steps: usize,
    pub eval_samples: usize,
    pub log_px: f64,
    pub elbo_amortized: f64,
    pub elbo_optimized: f64,
    pub amortization_gap: f64,
    pub approximation_gap: f64,
    /// Mean ELBO of the optimised q during optimisation, `(step, elbo)`, a convergence check.
    pub trajectory: Vec<(usize, f64)>,
}

/// Per-image `(ELBO, log p̂)` of `q` = `enc` with `samples` samples, in chunks.
fn bounds(
    model: &FlowVae,
    x: &Tensor,
    enc: &EncoderOutput,
    samples: usize,
    rng: &mut SeededRng,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = x.dim(0)?;
    let (mut elbo, mut lse) = (vec![0.0; n], vec![LogSumExp::default(); n]);
    let mut done = 0;
    while done < samples {
        let k = 100.min(samples - done);
        let eps = standard_normal(rng, (n * k, model.latent()), x.dtype(), x.device())?;
        let log_w = model
            .terms(&repeat_rows(x, k)?, &enc.repeat_rows(k)?, &eps)?
            .log_weight()?;
        let rows: Vec<Vec<f64>> = log_w.to_dtype(DType::F64)?.reshape((n, k))?.to_vec2()?;
        for (i, row) in rows.iter().enumerate() {
            elbo[i] += row.iter().sum::<f64>() / samples as f64;
            row.iter().for_each(|&v| lse[i].push(v));
        }
        done += k;
    }
    let log_s = (samples as f64).ln();
    Ok((elbo, lse.iter().map(|s| s.value() - log_s).collect()))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Adam with the default settings at learning rate `lr` (the `--lr` flag) over `vars`.
fn adam_at(vars: Vec<Var>, lr: f64) -> Result<Optimizer> {
    let lr = Positive::try_from(lr).map_err(|message| RunnerError::Config {
        file: "--lr".into(),
        location: None,
        message,
    })?;
    let config = OptimizerConfig {
        lr,
        ..OptimizerConfig::default()
    };
    Ok(Optimizer::new(vars, config)?)
}

/// Measures the gaps of the run in `dir` on `split` (`train`, `val` or `test`).
pub fn inference_gaps(
    dir: &Path,
    split: &str,
    options: &GapOptions,
    device: &Device,
) -> Result<GapReport> {
    let loaded = load_run(dir, device)?;
    let data = split_by_name(load_splits(&loaded.exp.data)?, split)?;
    let n = options.images.min(data.n);
    let idx: Vec<usize> = (0..n).collect();
    let x = BatchMaker::plain().batch(&data, &idx, device)?;
    let model = &loaded.model;
    let amortized = model.encode(&x)?;
    let free = |t: &Tensor| Var::from_tensor(&t.detach());
    let mu = free(&amortized.q0.mu)?;
    let log_var = free(&amortized.q0.log_var)?;
    let params = amortized.flow_params.as_ref().map(free).transpose()?;
    let context = amortized.context.as_ref().map(free).transpose()?;
    let current = || EncoderOutput {
        q0: DiagGaussian::new(mu.as_tensor().clone(), log_var.as_tensor().clone()),
        flow_params: params.as_ref().map(|v| v.as_tensor().clone()),
        context: context.as_ref().map(|v| v.as_tensor().clone()),
    };
    let vars: Vec<Var> = [
        Some(mu.clone()),
        Some(log_var.clone()),
        params.clone(),
        context.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut optimizer = adam_at(vars, options.lr)?;
    let mut rng = seeded(options.seed, flowvae_nn::Stream::InferenceGap);
    let k = options.samples_per_step.max(1);
    let mut trajectory = Vec::new();
    for step in 0..options.steps {
        let eps = standard_normal(&mut rng, (n * k, model.latent()), x.dtype(), device)?;
        let enc = current().repeat_rows(k)?;
        let elbo = model
            .terms(&repeat_rows(&x, k)?, &enc, &eps)?
            .log_weight()?
            .mean_all()?;
        if step % 50 == 0 || step + 1 == options.steps {
            trajectory.push((step, elbo.to_dtype(DType::F64)?.to_scalar::<f64>()?));
        }
        optimizer.step(&elbo.neg()?.backward()?)?;
    }
    // The same noise for both q (common random numbers): the difference has less variance,
    // and is exactly 0 when nothing was optimised.
    let eval_rng = || seeded(options.seed, flowvae_nn::Stream::InferenceGapEval);
    let s = options.eval_samples;
    let (elbo_a, log_p_a) = bounds(model, &x, &amortized, s, &mut eval_rng())?;
    let (elbo_o, log_p_o) = bounds(model, &x, &current(), s, &mut eval_rng())?;
    let log_p: Vec<f64> = log_p_a
        .iter()
        .zip(&log_p_o)
        .map(|(a, b)| a.max(*b))
        .collect();
    let (log_px, elbo_amortized, elbo_optimized) = (mean(&log_p), mean(&elbo_a), mean(&elbo_o));
    Ok(GapReport {
        split: split.to_string(),
        images: n,
        steps: options.steps,
        eval_samples: options.eval_samples,
        log_px,
        elbo_amortized,
        elbo_optimized,
        amortization_gap: elbo_optimized - elbo_amortized,
        approximation_gap: log_px - elbo_optimized,
        trajectory,
    })
}
