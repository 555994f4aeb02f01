//! What a Flow-VAE is trained from, how its model is built, and the −ELBO over a data set.

use candle_core::{DType, Device, Tensor};
use flowvae_data::{BatchMaker, DataConfig, Dataset};
use flowvae_flows::{FlowSpec, ParamStore};
use flowvae_nn::{seeded, standard_normal, Stream};
use flowvae_vae::{bound_terms, Bound, FlowVae, ModelConfig};

use crate::config::{ObjectiveConfig, TrainVae};
use crate::error::Result;
use crate::optim::OptimizerConfig;

/// The sections of an experiment file a Flow-VAE is trained from; nothing else reaches the
/// training loop.
#[derive(Debug, Clone, Copy)]
pub struct VaeSections<'a> {
    /// `data:` — source, binarization, split seed, subsets.
    pub data: &'a DataConfig,
    /// `model:` — encoder, decoder, latent size.
    pub model: &'a ModelConfig,
    /// `flow:` — the posterior's stack.
    pub flow: &'a [FlowSpec],
    /// `objective:` — bound, samples, warm-up.
    pub objective: &'a ObjectiveConfig,
    /// `optimizer:`.
    pub optimizer: &'a OptimizerConfig,
    /// `train:` — epochs, batch size, patience, NaN policy.
    pub train: &'a TrainVae,
    /// The run's seed (weights, data order, noise).
    pub seed: u64,
}

/// Columns of a Flow-VAE's `metrics.csv`; all but `time_s` repeat exactly for a seed.
pub const METRICS: [&str; 9] = [
    "epoch",
    "beta",
    "train_neg_elbo",
    "train_recon",
    "train_kl",
    "val_neg_elbo",
    "val_recon",
    "val_kl",
    "time_s",
];

/// Averages of the bound's terms over a data set, nats per image.
#[derive(Debug, Clone, Copy, Default)]
pub struct Averages {
    /// −ELBO.
    pub neg_elbo: f64,
    /// Reconstruction term `−log p(x|z)`.
    pub recon: f64,
    /// KL term.
    pub kl: f64,
}

pub(crate) fn sum_f64(t: &Tensor) -> Result<f64> {
    Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar()?)
}

/// The f32 model of `sections` on a fresh or pre-filled store, for `(B, input_dim)` images.
pub fn build_model(
    sections: &VaeSections<'_>,
    store: &ParamStore,
    input_dim: usize,
    device: &Device,
) -> Result<FlowVae> {
    Ok(FlowVae::new(
        store,
        sections.model,
        sections.flow,
        input_dim,
        sections.seed,
        DType::F32,
        device,
    )?)
}

/// The single-sample −ELBO (β = 1) over a whole data set in batches of `batch`, noise from
/// `stream` of `seed`.
pub fn evaluate_elbo(
    model: &FlowVae,
    data: &Dataset,
    batch: usize,
    seed: u64,
    stream: Stream,
    device: &Device,
) -> Result<Averages> {
    let mut rng = seeded(seed, stream);
    let mut maker = BatchMaker::plain();
    let mut totals = Averages::default();
    let indices: Vec<usize> = (0..data.n).collect();
    for idx in indices.chunks(batch.max(1)) {
        let x = maker.batch(data, idx, device)?;
        let eps = standard_normal(&mut rng, (idx.len(), model.latent()), DType::F32, device)?;
        let terms = bound_terms(model, &x, &eps, Bound::Elbo, 1, 1.0)?;
        totals.neg_elbo += sum_f64(&terms.neg_elbo)?;
        totals.recon += sum_f64(&terms.reconstruction)?;
        totals.kl += sum_f64(&terms.kl)?;
    }
    let n = data.n.max(1) as f64;
    Ok(Averages {
        neg_elbo: totals.neg_elbo / n,
        recon: totals.recon / n,
        kl: totals.kl / n,
    })
}
