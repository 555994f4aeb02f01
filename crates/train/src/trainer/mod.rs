//! Training a Flow-VAE: epochs of the chosen bound with KL warm-up, validation −ELBO, early
//! stopping, best and last checkpoints and `metrics.csv`; resumable at any epoch boundary.

mod epoch;
mod evaluate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use flowvae_data::{load_splits, Batcher, Splits};
use flowvae_flows::ParamStore;
use flowvae_vae::FlowVae;

pub use evaluate::{build_model, evaluate_elbo, Averages, VaeSections, METRICS};

use crate::checkpoint::{load as load_checkpoint, LoopState};
use crate::cpu_time::process_cpu_seconds;
use crate::error::{Result, TrainError};
use crate::metrics::MetricsWriter;
use crate::nan_guard::NanGuard;
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::run_dir::RunDir;

/// What training produced: the best parameters, loaded.
#[derive(Debug)]
pub struct Trained {
    /// The parameters (the best epoch's).
    pub store: ParamStore,
    /// The model on those parameters.
    pub model: FlowVae,
    /// The data it was trained and validated on, with its test split.
    pub splits: Splits,
    /// Epoch of the best validation −ELBO.
    pub best_epoch: usize,
    /// Epochs trained in all (a resumed run counts the epochs before the interruption).
    pub epochs_run: usize,
    /// Training wall time, seconds (across interruptions).
    pub train_seconds: f64,
    /// The training CPU time recorded before this process, seconds: 0 for a fresh run, the
    /// checkpoint's for a resumed one, `None` when that checkpoint predates the record.
    pub cpu_seconds_before: Option<f64>,
}

/// The training loop of one Flow-VAE in one run folder.
///
/// [`Trainer::start`] sets it up fresh or from `checkpoints/last.safetensors`;
/// [`Trainer::fit`] runs the epochs (each: batches, then validation, metrics and checkpoints)
/// and returns the best model. A resumed run ends with the same metrics and parameters as an
/// uninterrupted one.
#[derive(Debug)]
pub struct Trainer<'a> {
    sections: VaeSections<'a>,
    run: &'a RunDir,
    device: &'a Device,
    splits: Splits,
    store: ParamStore,
    model: FlowVae,
    /// Created after the first forward pass, so that data-dependent initialisations exist.
    optimizer: Option<Optimizer>,
    guard: NanGuard,
    metrics: MetricsWriter,
    batcher: Batcher,
    /// Best validation −ELBO and its epoch.
    best: (f64, usize),
    /// The next epoch to train.
    epoch: usize,
    epochs_run: usize,
    started: Instant,
    /// Training time before this process (resumed runs).
    elapsed_before: f64,
    /// Training CPU time before this process, and this process's CPU time at the start.
    cpu_before: Option<f64>,
    cpu_at_start: Option<f64>,
    best_path: PathBuf,
    last_path: PathBuf,
    progress: Progress,
}

impl<'a> Trainer<'a> {
    /// Loads the data and sets up the loop in `run`: from scratch, or with `resume` from the
    /// last checkpoint when there is one (a resume that lost it after recorded epochs is
    /// refused rather than silently trained again).
    pub fn start(
        sections: VaeSections<'a>,
        run: &'a RunDir,
        device: &'a Device,
        resume: bool,
    ) -> Result<Self> {
        let (started, cpu_at_start) = (Instant::now(), process_cpu_seconds());
        let splits = load_splits(sections.data)?;
        let best_path = run.file("checkpoints/best.safetensors")?;
        let last_path = run.file("checkpoints/last.safetensors")?;
        let metrics_path = run.file("metrics.csv")?;
        let resumed = resume && last_path.is_file();
        if resume && !resumed {
            refuse_lost_checkpoint(&metrics_path, &last_path)?;
        }
        let dim = splits.train.dim;
        let start = if resumed {
            resumed_start(&sections, &last_path, dim, device)?
        } else {
            fresh_start(&sections, dim, device)?
        };
        let metrics = if resumed {
            resumed_metrics(run, &metrics_path, &start.metrics)?
        } else {
            MetricsWriter::create(&metrics_path, &METRICS)?
        };
        let batch = sections.train.batch_size.get();
        let state = start.state;
        Ok(Self {
            batcher: Batcher::new(splits.train.n, batch, sections.seed),
            best: (state.best_val, state.best_epoch),
            progress: Progress::new("train", sections.train.epochs.get() as u64, "epochs"),
            epochs_run: state.epochs_done,
            guard: NanGuard::new(&sections.train.nan_policy, state.lr_scale),
            epoch: state.epochs_done,
            elapsed_before: state.elapsed,
            cpu_before: state.cpu_seconds,
            cpu_at_start,
            sections,
            run,
            device,
            splits,
            store: start.store,
            model: start.model,
            optimizer: start.optimizer,
            metrics,
            started,
            best_path,
            last_path,
        })
    }

    /// Trains until the last epoch or early stopping, then loads the best parameters.
    pub fn fit(mut self) -> Result<Trained> {
        while self.epoch < self.sections.train.epochs.get() {
            if self.patience_over(self.epoch) {
                break;
            }
            if !self.train_epoch()? {
                self.rollback()?;
            }
        }
        self.progress.finish();
        if self.patience_over(self.epochs_run) {
            self.run.log(&format!(
                "early stop after epoch {}: best val -ELBO at epoch {}",
                self.epochs_run - 1,
                self.best.1
            ));
        }
        self.store.load_into(&self.best_path)?;
        Ok(Trained {
            train_seconds: self.clock(),
            cpu_seconds_before: self.cpu_before,
            store: self.store,
            model: self.model,
            splits: self.splits,
            best_epoch: self.best.1,
            epochs_run: self.epochs_run,
        })
    }

    /// Whether `epochs_done` epochs are past the patience after the best one.
    fn patience_over(&self, epochs_done: usize) -> bool {
        let patience = self.sections.train.patience;
        patience.is_some_and(|p| epochs_done > self.best.1 + p.get())
    }

    /// Training seconds so far, across interruptions.
    fn clock(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Training CPU seconds so far, across interruptions (`None` if any part is unknown).
    fn cpu_clock(&self) -> Option<f64> {
        let spent = process_cpu_seconds()
            .zip(self.cpu_at_start)
            .map(|(now, at)| now - at);
        self.cpu_before
            .zip(spent)
            .map(|(before, spent)| before + spent)
    }
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

fn fresh_start(sections: &VaeSections<'_>, input_dim: usize, device: &Device) -> Result<Start> {
    let store = ParamStore::new(sections.seed);
    let model = build_model(sections, &store, input_dim, device)?;
    let state = LoopState::start();
    Ok(Start {
        store,
        model,
        optimizer: None,
        state,
        metrics: String::new(),
    })
}

fn resumed_start(
    sections: &VaeSections<'_>,
    path: &Path,
    input_dim: usize,
    device: &Device,
) -> Result<Start> {
    let ck = load_checkpoint(path, device)?;
    let store = ParamStore::from_tensors(ck.params.clone(), DType::F32)?;
    let model = build_model(sections, &store, input_dim, device)?;
    store.check_complete(&path.display().to_string())?;
    let mut optimizer = NanGuard::new(&sections.train.nan_policy, ck.state.lr_scale)
        .optimizer(store.vars(), sections.optimizer)?;
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

/// The metrics writer of a resumed run, rewritten from the checkpoint's rows when the file
/// lost some of them.
fn resumed_metrics(run: &RunDir, path: &Path, recorded: &str) -> Result<MetricsWriter> {
    let (writer, repaired) = MetricsWriter::resume(path, &METRICS, recorded)?;
    if repaired {
        let note = format!(
            "metrics.csv did not hold the {} epochs of the checkpoint; rewritten from it",
            writer.len()
        );
        tracing::warn!("{}: {note}", run.path().display());
        run.log(&note);
    }
    Ok(writer)
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
    Err(TrainError::File {
        file: last_path.to_path_buf(),
        message: format!(
            "is missing, but metrics.csv records {recorded} epochs: the run cannot continue \
             where it stopped; start it again with `flowvae run` (this folder is kept)"
        ),
    })
}
