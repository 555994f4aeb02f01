//! Posterior diagnostics reviewers ask for when a flow "does not help": which latent units the
//! model uses (Burda et al., 2016: unit `u` is active when `Cov_x(E_q[z_u]) > 0.01`) and the KL
//! per latent dimension of the encoder's Gaussian `q₀(z|x)` against `N(0, 1)`.
//!
//! Both read the encoder's `q₀`, before any flow: a flow's `z_K` has no per-dimension KL (its
//! log-density does not factorise), and `E_q[z_u]` is the encoder's mean `μ_u(x)`. With the
//! standard-normal prior and no flow, the KL per dimension sums to the KL term of the ELBO.

use candle_core::{DType, Device, Tensor};
use flowvae_data::Dataset;
use flowvae_vae::FlowVae;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Burda et al.'s threshold on the variance of a unit's posterior mean across the data.
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

/// The diagnostics of one model on one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentDiagnostics {
    /// Units with `Cov_x(μ_u(x)) > 0.01`.
    pub active_units: usize,
    /// `Cov_x(μ_u(x))` per latent unit.
    pub unit_activity: Vec<f64>,
    /// `E_x KL(q₀(z_u|x) ‖ N(0, 1))` per latent unit, nats.
    pub kl_per_dim: Vec<f64>,
}

/// The diagnostics of `model` on `data`, `batch` images at a time (deterministic: the encoder
/// only).
pub fn latent_diagnostics(
    model: &FlowVae,
    data: &Dataset,
    batch: usize,
    device: &Device,
) -> Result<LatentDiagnostics> {
    let latent = model.latent();
    let (mut sum, mut square, mut kl) = (vec![0.0; latent], vec![0.0; latent], vec![0.0; latent]);
    let indices: Vec<usize> = (0..data.n).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let q0 = model.encode(&data.batch_tensor(chunk, device)?)?.q0;
        let mu = q0.mu.to_dtype(DType::F64)?;
        let log_var = q0.log_var.to_dtype(DType::F64)?;
        // KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²), per unit.
        let unit_kl = ((mu.sqr()? + log_var.exp()?)? - log_var)?.affine(0.5, -0.5)?;
        add_columns(&mut sum, &mu)?;
        add_columns(&mut square, &mu.sqr()?)?;
        add_columns(&mut kl, &unit_kl)?;
    }
    let n = data.n.max(1) as f64;
    let unit_activity: Vec<f64> = (0..latent)
        .map(|u| (square[u] / n - (sum[u] / n).powi(2)).max(0.0))
        .collect();
    Ok(LatentDiagnostics {
        active_units: unit_activity
            .iter()
            .filter(|&&a| a > ACTIVE_UNIT_THRESHOLD)
            .count(),
        unit_activity,
        kl_per_dim: kl.iter().map(|k| k / n).collect(),
    })
}

/// Adds the column sums of `t` `(B, z)` to `totals`.
fn add_columns(totals: &mut [f64], t: &Tensor) -> Result<()> {
    let columns: Vec<f64> = t.sum(0)?.to_vec1()?;
    for (total, c) in totals.iter_mut().zip(columns) {
        *total += c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowvae_flows::{perturb_parameters, ParamStore};
    use flowvae_vae::{DecoderConfig, EncoderConfig, ModelConfig};

    /// A 4-unit VAE on 6 pixels with perturbed weights, and 9 images.
    fn setup() -> (ParamStore, FlowVae, Dataset) {
        let store = ParamStore::new(1);
        let config = ModelConfig {
            latent: 4,
            encoder: EncoderConfig {
                hidden: vec![8],
                ..Default::default()
            },
            decoder: DecoderConfig {
                hidden: vec![8],
                ..Default::default()
            },
            ..Default::default()
        };
        let model = FlowVae::new(&store, &config, &[], 6, 1, DType::F32, &Device::Cpu).unwrap();
        perturb_parameters(&store, 2, 0.8).unwrap();
        let images: Vec<f32> = (0..54).map(|i| ((i * 7) % 5) as f32 / 4.0).collect();
        let data = Dataset::new("toy", images, Vec::new(), 2, 3).unwrap();
        (store, model, data)
    }

    #[test]
    fn diagnostics_match_the_direct_formulas_at_any_batch() {
        let (_store, model, data) = setup();
        let got = latent_diagnostics(&model, &data, 4, &Device::Cpu).unwrap();
        let q0 = model
            .encode(&data.to_tensor(&Device::Cpu).unwrap())
            .unwrap()
            .q0;
        let mu: Vec<Vec<f32>> = q0.mu.to_vec2().unwrap();
        let log_var: Vec<Vec<f32>> = q0.log_var.to_vec2().unwrap();
        for u in 0..4 {
            let column: Vec<f64> = mu.iter().map(|r| r[u] as f64).collect();
            let mean = column.iter().sum::<f64>() / 9.0;
            let variance = column.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / 9.0;
            let kl = (0..9)
                .map(|i| {
                    let (m, v) = (mu[i][u] as f64, log_var[i][u] as f64);
                    0.5 * (m * m + v.exp() - 1.0 - v)
                })
                .sum::<f64>()
                / 9.0;
            assert!((got.unit_activity[u] - variance).abs() < 1e-6, "unit {u}");
            assert!((got.kl_per_dim[u] - kl).abs() < 1e-6, "unit {u}");
        }
        let one_at_a_time = latent_diagnostics(&model, &data, 1, &Device::Cpu).unwrap();
        assert_eq!(one_at_a_time.active_units, got.active_units);
        let expected = got.unit_activity.iter().filter(|&&a| a > 0.01).count();
        assert_eq!(got.active_units, expected);
        assert!(expected > 0, "{:?}", got.unit_activity);
    }
}
