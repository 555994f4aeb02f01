//! Training a Flow-VAE: epochs of the chosen bound with KL warm-up, validation −ELBO, early
//! stopping, best and last checkpoints, `metrics.csv`, then the test evaluation and plots.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::{Batcher, Dataset, Splits};
use flowvae_flows::ParamStore;
use flowvae_nn::backward_with_sink;
use flowvae_nn::{seeded, standard_normal};
use flowvae_vae::{bound_terms, warmup_beta, Bound, FlowVae};

use crate::error::{Result, RunnerError};
use crate::vae_config::ExperimentVae;
use crate::vae_data::{load_splits, BatchMaker};
use flowvae_train::MetricsWriter;
use flowvae_train::Progress;
use flowvae_train::{load_checkpoint, save_checkpoint, LoopState};
use flowvae_train::{non_finite_parameter, non_finite_term, NanGuard, Reaction};
use flowvae_train::{write_atomic, RunDir};
use flowvae_train::{Optimizer, TrainError};

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
    stream: flowvae_nn::Stream,
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

/// Where a run starts: fresh, or from the last checkpoint of an interrupted run.
struct Start {
    store: ParamStore,
    model: FlowVae,
    optimizer: Option<Optimizer>,
    state: LoopState,
    /// The metrics rows recorded up to `state` (empty for a fresh start).
    metrics: String,
}

fn fresh_start(exp: &ExperimentVae, input_dim: usize, device: &Device) -> Result<Start> {
    let store = ParamStore::new(exp.seed);
    let model = build_model(exp, &store, input_dim, device)?;
    let state = LoopState {
        epochs_done: 0,
        optimizer_steps: 0,
        best_val: f64::INFINITY,
        best_epoch: 0,
        elapsed: 0.0,
        lr_scale: 1.0,
    };
    Ok(Start {
        store,
        model,
        optimizer: None,
        state,
        metrics: String::new(),
    })
}

fn resumed_start(
    exp: &ExperimentVae,
    path: &Path,
    input_dim: usize,
    device: &Device,
) -> Result<Start> {
    let ck = load_checkpoint(path, device)?;
    let store = ParamStore::from_tensors(ck.params.clone(), DType::F32)?;
    let model = build_model(exp, &store, input_dim, device)?;
    store.check_complete(&path.display().to_string())?;
    let mut optimizer = NanGuard::new(&exp.train.nan_policy, ck.state.lr_scale)
        .optimizer(store.vars(), &exp.optimizer)?;
    ck.restore_optimizer(&mut optimizer, &store, path)?;
    tracing::info!(
        "resuming {} after epoch {}",
        path.display(),
        ck.state.epochs_done
    );
    Ok(Start {
        store,
        model,
        optimizer: Some(optimizer),
        state: ck.state,
        metrics: ck.metrics,
    })
}

/// A resume without `last.safetensors` may start from epoch 0 only when no epoch was recorded;
/// otherwise the recorded epochs would silently be trained again.
fn refuse_lost_checkpoint(metrics_path: &Path, last_path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics_path).unwrap_or_default();
    let recorded = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    if recorded == 0 {
        return Ok(());
    }
    Err(RunnerError::Config {
        file: last_path.to_path_buf(),
        location: None,
        message: format!(
            "is missing, but metrics.csv records {recorded} epochs: the run cannot continue \
             where it stopped; start it again with `flowvae run` (this folder is kept)"
        ),
    })
}

/// Trains `exp` into `run` (metrics and checkpoints) and leaves the best parameters loaded.
/// With `resume`, continues from `checkpoints/last.safetensors` when it exists, and ends with
/// the same metrics and parameters as an uninterrupted run.
pub fn train(exp: &ExperimentVae, run: &RunDir, device: &Device, resume: bool) -> Result<Trained> {
    // On flowvae's worker pool, so the dense layers' products split over the workers.
    flowvae_nn::with_worker_pool(|| train_here(exp, run, device, resume))
}

fn train_here(exp: &ExperimentVae, run: &RunDir, device: &Device, resume: bool) -> Result<Trained> {
    let started = Instant::now();
    let splits = load_splits(&exp.data)?;
    let train_set = &splits.train;
    let best_path = run.file("checkpoints/best.safetensors")?;
    let last_path = run.file("checkpoints/last.safetensors")?;
    let metrics_path = run.file("metrics.csv")?;
    let resumed = resume && last_path.is_file();
    if resume && !resumed {
        refuse_lost_checkpoint(&metrics_path, &last_path)?;
    }
    let Start {
        store,
        model,
        mut optimizer,
        state,
        metrics: recorded,
    } = if resumed {
        resumed_start(exp, &last_path, train_set.dim, device)?
    } else {
        fresh_start(exp, train_set.dim, device)?
    };
    let mut metrics = if resumed {
        let (writer, repaired) = MetricsWriter::resume(&metrics_path, &METRICS, &recorded)?;
        if repaired {
            let note = format!(
                "metrics.csv did not hold the {} epochs of the checkpoint; rewritten from it",
                writer.len()
            );
            tracing::warn!("{}: {note}", run.path().display());
            run.log(&note);
        }
        writer
    } else {
        MetricsWriter::create(&metrics_path, &METRICS)?
    };
    let batch = exp.train.batch_size.get();
    let samples = exp.objective.samples.get();
    let batcher = Batcher::new(train_set.n, batch, exp.seed);
    let mut best = (state.best_val, state.best_epoch);
    let epochs = exp.train.epochs.get();
    let patience_over = |epochs_done: usize, best_epoch: usize| {
        exp.train
            .patience
            .is_some_and(|p| epochs_done > best_epoch + p.get())
    };
    let mut progress = Progress::new("epochs", epochs as u64);
    let mut epochs_run = state.epochs_done;
    let mut guard = NanGuard::new(&exp.train.nan_policy, state.lr_scale);
    let clock = |since: &Instant| state.elapsed + since.elapsed().as_secs_f64();
    let mut epoch = state.epochs_done;
    while epoch < epochs {
        if patience_over(epoch, best.1) {
            break;
        }
        let beta = warmup_beta(epoch, exp.objective.warmup_epochs, exp.objective.beta_start);
        let mut maker = BatchMaker::for_training(exp.data.binarization, exp.seed, epoch);
        let mut noise = seeded(exp.seed, flowvae_nn::Stream::EpochNoise(epoch));
        let mut totals = Averages::default();
        let mut rollback = false;
        for (step, idx) in batcher.epoch(epoch as u64).enumerate() {
            let x = maker.batch(train_set, &idx, device)?;
            let eps = standard_normal(
                &mut noise,
                (idx.len() * samples, model.latent()),
                DType::F32,
                device,
            )?;
            let mut terms = bound_terms(&model, &x, &eps, exp.objective.bound, samples, beta)?;
            if flowvae_train::fault_nan_at(epoch, step) {
                terms.reconstruction = (&terms.reconstruction * f64::NAN)?;
                terms.objective = (&terms.objective + &terms.reconstruction)?;
            }
            let loss = terms.objective.mean_all()?.neg()?;
            let loss_value: f64 = loss.to_dtype(DType::F64)?.to_scalar()?;
            let fault = if loss_value.is_finite() {
                None
            } else {
                Some(format!("loss ({})", non_finite_term(&terms)?))
            };
            // Created after the first forward so data-dependent initialisations exist.
            let opt = match optimizer.as_mut() {
                Some(o) => o,
                None => optimizer.insert(guard.optimizer(store.vars(), &exp.optimizer)?),
            };
            let fault = match fault {
                Some(f) => Some(f),
                None => {
                    let grads = backward_with_sink(&loss)?;
                    match opt.step(&grads) {
                        Ok(()) => None,
                        Err(TrainError::NonFinite { .. }) => Some(format!(
                            "gradient of {}",
                            non_finite_parameter(&store, &grads)?
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            if let Some(what) = fault {
                let at = format!("{what} at epoch {epoch}, batch {step}");
                match guard.react(&at, run)? {
                    Reaction::Skip => continue,
                    Reaction::Rollback => {
                        rollback = true;
                        break;
                    }
                }
            }
            totals.neg_elbo += sum_f64(&terms.neg_elbo)?;
            totals.recon += sum_f64(&terms.reconstruction)?;
            totals.kl += sum_f64(&terms.kl)?;
        }
        if rollback {
            let ck = load_checkpoint(&last_path, device)?;
            for (name, var) in store.named_vars() {
                var.set(&ck.params[&name])?;
            }
            let mut opt = guard.optimizer(store.vars(), &exp.optimizer)?;
            ck.restore_optimizer(&mut opt, &store, &last_path)?;
            optimizer = Some(opt);
            epoch = ck.state.epochs_done;
            best = (ck.state.best_val, ck.state.best_epoch);
            continue;
        }
        let seen = batcher.items_per_epoch().max(1) as f64;
        let val = evaluate_elbo(
            &model,
            &splits.val,
            500,
            exp.seed,
            flowvae_nn::Stream::Validation,
            device,
        )?;
        metrics.row(&[
            epoch as f64,
            beta,
            totals.neg_elbo / seen,
            totals.recon / seen,
            totals.kl / seen,
            val.neg_elbo,
            val.recon,
            val.kl,
            clock(&started),
        ])?;
        // Validation is always at β = 1, so epochs of the warm-up compare with the rest.
        if val.neg_elbo < best.0 {
            best = (val.neg_elbo, epoch);
            write_atomic(&best_path, &store.to_safetensors_bytes()?)?;
        }
        let loop_state = LoopState {
            epochs_done: epoch + 1,
            optimizer_steps: optimizer.as_ref().map_or(0, |o| o.steps_taken()),
            best_val: best.0,
            best_epoch: best.1,
            elapsed: clock(&started),
            lr_scale: guard.lr_scale,
        };
        save_checkpoint(
            &last_path,
            &store,
            optimizer.as_ref(),
            &loop_state,
            &metrics.rows_text(),
        )?;
        epochs_run = epoch + 1;
        progress.set(epochs_run as u64, &format!("val -ELBO {:.3}", val.neg_elbo));
        run.log(&format!(
            "epoch {epoch}: beta {beta:.3}, train -ELBO {:.4}, val -ELBO {:.4}",
            totals.neg_elbo / seen,
            val.neg_elbo
        ));
        epoch += 1;
    }
    progress.finish();
    if patience_over(epochs_run, best.1) {
        run.log(&format!(
            "early stop after epoch {}: best val -ELBO at epoch {}",
            epochs_run - 1,
            best.1
        ));
    }
    store.load_into(&best_path)?;
    Ok(Trained {
        store,
        model,
        splits,
        best_epoch: best.1,
        epochs_run,
        train_seconds: clock(&started),
    })
}
