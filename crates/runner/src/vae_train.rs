//! Training a Flow-VAE: epochs of the chosen bound with KL warm-up, validation −ELBO, early
//! stopping, best and last checkpoints, `metrics.csv`, then the test evaluation and plots.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::{Batcher, Dataset, Splits};
use flowvae_flows::rng::{seeded, standard_normal};
use flowvae_flows::ParamStore;
use flowvae_vae::{bound_terms, warmup_beta, Bound, FlowVae};

use crate::error::{Result, RunnerError};
use crate::metrics::MetricsWriter;
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::run_dir::{write_atomic, RunDir};
use crate::vae_config::ExperimentVae;
use crate::vae_data::{load_splits, BatchMaker};

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

/// Averages of the bound's terms over a data set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Averages {
    pub neg_elbo: f64,
    pub recon: f64,
    pub kl: f64,
}

fn sum_f64(t: &Tensor) -> Result<f64> {
    Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar()?)
}

/// Builds the model of an experiment on a fresh or pre-filled store.
pub fn build_model(
    exp: &ExperimentVae,
    store: &ParamStore,
    input_dim: usize,
    device: &Device,
) -> Result<FlowVae> {
    Ok(FlowVae::new(
        store,
        &exp.model,
        &exp.flow,
        input_dim,
        exp.seed,
        DType::F32,
        device,
    )?)
}

/// The single-sample −ELBO (β = 1) over a whole data set, noise from `stream`.
pub fn evaluate_elbo(
    model: &FlowVae,
    data: &Dataset,
    batch: usize,
    seed: u64,
    stream: &str,
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

/// What training produced.
#[derive(Debug)]
pub struct Trained {
    pub store: ParamStore,
    pub model: FlowVae,
    pub splits: Splits,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
}

/// Trains `exp` into `run` (metrics and checkpoints) and leaves the best parameters loaded.
pub fn train(exp: &ExperimentVae, run: &RunDir, device: &Device) -> Result<Trained> {
    let started = Instant::now();
    let splits = load_splits(&exp.data, exp.seed)?;
    let train_set = &splits.train;
    let store = ParamStore::new(exp.seed);
    let model = build_model(exp, &store, train_set.dim, device)?;
    let batch = exp.train.batch_size.get();
    let samples = exp.objective.samples.get();
    let batcher = Batcher::new(train_set.n, batch, exp.seed);
    let mut metrics = MetricsWriter::create(&run.file("metrics.csv")?, &METRICS)?;
    let mut optimizer: Option<Optimizer> = None;
    let (best_path, last_path) = (
        run.file("checkpoints/best.safetensors")?,
        run.file("checkpoints/last.safetensors")?,
    );
    let mut best = (f64::INFINITY, 0usize);
    let epochs = exp.train.epochs.get();
    let mut progress = Progress::new("epochs", epochs as u64);
    let mut epochs_run = 0;
    for epoch in 0..epochs {
        let beta = warmup_beta(epoch, exp.objective.warmup_epochs, exp.objective.beta_start);
        let mut maker = BatchMaker::for_training(exp.data.binarization, exp.seed, epoch);
        let mut noise = seeded(exp.seed, &format!("noise-{epoch}"));
        let mut totals = Averages::default();
        for (step, idx) in batcher.epoch(epoch as u64).enumerate() {
            let x = maker.batch(train_set, &idx, device)?;
            let eps = standard_normal(
                &mut noise,
                (idx.len() * samples, model.latent()),
                DType::F32,
                device,
            )?;
            let terms = bound_terms(&model, &x, &eps, exp.objective.bound, samples, beta)?;
            let loss = terms.objective.mean_all()?.neg()?;
            let loss_value: f64 = loss.to_dtype(DType::F64)?.to_scalar()?;
            if !loss_value.is_finite() {
                return Err(RunnerError::NonFinite {
                    what: format!("loss (epoch {epoch}, batch {step})"),
                    step,
                });
            }
            let opt = match optimizer.as_mut() {
                Some(o) => o,
                None => optimizer.insert(Optimizer::new(store.vars(), exp.optimizer.clone())?),
            };
            opt.step(&loss.backward()?)?;
            totals.neg_elbo += sum_f64(&terms.neg_elbo)?;
            totals.recon += sum_f64(&terms.reconstruction)?;
            totals.kl += sum_f64(&terms.kl)?;
        }
        let seen = batcher.items_per_epoch().max(1) as f64;
        let val = evaluate_elbo(&model, &splits.val, 500, exp.seed, "val", device)?;
        metrics.row(&[
            epoch as f64,
            beta,
            totals.neg_elbo / seen,
            totals.recon / seen,
            totals.kl / seen,
            val.neg_elbo,
            val.recon,
            val.kl,
            started.elapsed().as_secs_f64(),
        ])?;
        let bytes = store.to_safetensors_bytes()?;
        write_atomic(&last_path, &bytes)?;
        // Validation is always at β = 1, so epochs of the warm-up compare with the rest.
        if val.neg_elbo < best.0 {
            best = (val.neg_elbo, epoch);
            write_atomic(&best_path, &bytes)?;
        }
        epochs_run = epoch + 1;
        progress.set(epochs_run as u64, &format!("val -ELBO {:.3}", val.neg_elbo));
        if let Some(patience) = exp.train.patience {
            if epoch >= best.1 + patience.get() {
                tracing::info!(
                    "early stop at epoch {epoch}: no better val -ELBO since epoch {}",
                    best.1
                );
                break;
            }
        }
    }
    progress.finish();
    store.load_into(&best_path)?;
    Ok(Trained {
        store,
        model,
        splits,
        best_epoch: best.1,
        epochs_run,
        train_seconds: started.elapsed().as_secs_f64(),
    })
}
