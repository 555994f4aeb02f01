//! The training epochs of a density run, checkpointed after every epoch so that an
//! interrupted run continues bit for bit (`flowvae run --resume`): the parameters, Adam's
//! moments and the loop state go to `checkpoints/last.safetensors`; the batch order and the
//! dequantization noise are functions of the seed and the epoch.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::Batcher;
use flowvae_flows::{Conditioning, ParamStore, Stream};
use flowvae_nn::{backward_with_sink, seeded};
use flowvae_train::{
    checkpoint_bytes, load_checkpoint, BackgroundWriter, Checkpoint, LoopState, MetricsWriter,
    Optimizer, Progress,
};

use super::preprocess::{self, Prepared};
use super::{log_likelihoods, mean, Job};
use crate::error::{Result, RunnerError};
use crate::experiment::density::ExperimentDensity;

const COLUMNS: [&str; 4] = ["epoch", "train_nll", "val_log_likelihood", "time_s"];
const LAST: &str = "checkpoints/last.safetensors";

/// The parameter store a run starts from: fresh from the seed, or (resuming) the last
/// checkpoint's parameters with the checkpoint for [`fit`].
pub(super) fn start(
    exp: &ExperimentDensity,
    run: &Path,
    resume: bool,
    device: &Device,
) -> Result<(ParamStore, Option<Checkpoint>)> {
    let last = run.join(LAST);
    if !(resume && last.is_file()) {
        return Ok((ParamStore::new(exp.seed), None));
    }
    let checkpoint = load_checkpoint(&last, device)?;
    let store = ParamStore::from_tensors(checkpoint.params.clone(), DType::F32)?;
    tracing::info!(
        "resuming {} after epoch {}",
        run.display(),
        checkpoint.state.epochs_done
    );
    Ok((store, Some(checkpoint)))
}

impl Job<'_> {
    /// The contexts `(B, C)` of rows `idx` of `split`, for a conditional density.
    fn context(&self, split: &str, idx: &[usize]) -> Result<Option<Tensor>> {
        self.contexts
            .map(|c| c.rows(split, idx, self.device))
            .transpose()
    }

    /// Whether early stopping ends training after `epoch`.
    fn stops_after(&self, epoch: usize, best_epoch: usize) -> bool {
        let patience = self.exp.train.patience;
        patience.is_some_and(|p| epoch - best_epoch >= p.get())
    }

    /// One epoch of maximum-likelihood steps; returns the mean training NLL.
    fn train_epoch(&self, epoch: usize, optimizer: &mut Option<Optimizer>) -> Result<f64> {
        let (exp, model, train, device) = (self.exp, self.model, &self.splits.train, self.device);
        let batcher = Batcher::new(train.n, exp.train.batch_size.get(), exp.seed);
        let mut noise_rng = seeded(exp.seed, Stream::EpochNoise(epoch));
        let mut losses = Vec::new();
        for batch in batcher.epoch(epoch as u64) {
            let x = train.batch_tensor(&batch, device)?;
            let noise =
                preprocess::noise(&mut noise_rng, batch.len(), train.dim, DType::F32, device)?;
            let (z, _) = self.prepared.to_flow(&x, Some(&noise))?;
            let context = self.context("train", &batch)?;
            model.dist.flow().set_training(true);
            let nll = model
                .dist
                .log_prob(&z, Conditioning::context(context.as_ref()))?
                .mean_all()?
                .neg()?;
            let value = nll.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(RunnerError::NonFinite {
                    what: format!("training NLL in epoch {epoch}"),
                    step: epoch,
                });
            }
            // Created after the first forward so data-dependent initialisations exist.
            let opt = match optimizer.as_mut() {
                Some(o) => o,
                None => {
                    optimizer.insert(Optimizer::new(model.store.vars(), exp.optimizer.clone())?)
                }
            };
            opt.step(&backward_with_sink(&nll)?)?;
            losses.push(value);
        }
        Ok(mean(&losses))
    }

    /// The validation log-likelihood on the scale the summary reports: logit space for
    /// images, data units for tables.
    fn validate(&self, epoch: usize) -> Result<f64> {
        let held_out = (self.exp.data.split_seed, Stream::Validation);
        let batch = self.exp.eval_batch.get();
        let rows = (&self.splits.val, self.contexts.map(|c| (c, "val")));
        let (ll, prep) = log_likelihoods(
            self.model,
            self.prepared,
            rows,
            held_out,
            batch,
            self.device,
        )?;
        let val = match self.prepared {
            Prepared::Logit { .. } => mean(&ll),
            _ => mean(&ll) + mean(&prep),
        };
        if !val.is_finite() {
            return Err(RunnerError::NonFinite {
                what: format!("validation log-likelihood in epoch {epoch}"),
                step: epoch,
            });
        }
        Ok(val)
    }
}

/// The epochs, from the start or from `resumed`: returns the epochs trained, the best epoch
/// (whose weights are in `checkpoints/best.safetensors`) and the training seconds over all
/// sessions.
pub(super) fn fit(job: &Job<'_>, resumed: Option<Checkpoint>) -> Result<Fitted> {
    let (exp, model, run) = (job.exp, job.model, job.run);
    let (last, metrics_path) = (run.file(LAST)?, run.path().join("metrics.csv"));
    let (mut metrics, mut optimizer, mut state) = match resumed {
        Some(ck) => {
            let (writer, _) = MetricsWriter::resume(&metrics_path, &COLUMNS, &ck.metrics)?;
            let mut opt = Optimizer::new(model.store.vars(), exp.optimizer.clone())?;
            ck.restore_optimizer(&mut opt, &model.store, &last)?;
            (writer, Some(opt), ck.state)
        }
        None => (
            MetricsWriter::create(&metrics_path, &COLUMNS)?,
            None,
            LoopState::start(),
        ),
    };
    // The checkpoint keeps the loss convention: the best negative log-likelihood.
    let mut best = -state.best_val;
    let epochs = exp.train.epochs.get();
    let mut progress = Progress::new("train", epochs as u64, "epochs");
    // The checkpoints are written while the next epoch trains (in order, each atomically).
    let mut writer = BackgroundWriter::new();
    let (started, before) = (Instant::now(), state.elapsed);
    let (cpu_at_start, cpu_before) = (flowvae_train::process_cpu_seconds(), state.cpu_seconds);
    let first = state.epochs_done + 1;
    let already_stopped = first > 1 && job.stops_after(state.epochs_done, state.best_epoch);
    for epoch in (first..=epochs).take_while(|_| !already_stopped) {
        let train_nll = job.train_epoch(epoch, &mut optimizer)?;
        let val = job.validate(epoch)?;
        let elapsed = before + started.elapsed().as_secs_f64();
        metrics.row(&[epoch as f64, train_nll, val, elapsed])?;
        progress.set(epoch as u64, &format!("val log-likelihood {val:.3}"));
        if val > best {
            (best, state.best_epoch) = (val, epoch);
            let bytes = model.store.to_safetensors_bytes()?;
            writer.write(&run.file("checkpoints/best.safetensors")?, bytes)?;
        }
        state = LoopState {
            epochs_done: epoch,
            optimizer_steps: optimizer.as_ref().map_or(0, Optimizer::steps_taken),
            best_val: -best,
            elapsed,
            cpu_seconds: flowvae_train::process_cpu_seconds()
                .zip(cpu_at_start)
                .zip(cpu_before)
                .map(|((now, start), before)| before + now - start),
            ..state
        };
        let rows = metrics.rows_text();
        let bytes = checkpoint_bytes(&last, &model.store, optimizer.as_ref(), &state, &rows)?;
        writer.write(&last, bytes)?;
        if job.stops_after(epoch, state.best_epoch) {
            let best_epoch = state.best_epoch;
            tracing::info!("early stop at epoch {epoch}: best {best:.3} at epoch {best_epoch}");
            break;
        }
    }
    writer.wait()?;
    progress.finish();
    Ok(Fitted {
        epochs: state.epochs_done,
        best_epoch: state.best_epoch,
        train_seconds: state.elapsed,
        cpu_before,
    })
}

/// How training went: what the summary reports of it.
pub(super) struct Fitted {
    /// Epochs trained (all sessions).
    pub epochs: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Wall-clock seconds of training over all sessions.
    pub train_seconds: f64,
    /// CPU seconds recorded by earlier processes (0 for a fresh run, `None` when the
    /// checkpoint predates the record).
    pub cpu_before: Option<f64>,
}
