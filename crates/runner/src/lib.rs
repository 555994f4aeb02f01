//! # flowvae-runner
//!
//! Reproducible experiments from YAML: parse and validate an experiment file, train, evaluate,
//! and write a run folder `results/<experiment>/<run-id>/` with the resolved `config.yaml`,
//! `metrics.csv`, `summary.json`, safetensors checkpoints and plots. The `flowvae` binary is a
//! thin front end over [`run_experiment`] and [`check_file`].
//!
//! Key design decision: a run folder is the unit of everything. A run is described completely
//! by the resolved `config.yaml` written into it before training starts, its results by a typed
//! [`RunSummary`]; resuming, evaluating again, comparing and sweeping all start from folders,
//! never from state held in a process.
//!
//! ## Where things are
//! - `experiment/`: the YAML schema ([`Experiment`]), `--set` overrides, YAML error locations.
//! - `run/`: one run from start to summary: data, training, evaluation, 2-D runs, the memory
//!   check, the inference-gap split, density runs (`run/density/`) and [`RunSummary`].
//! - `report/`: comparison tables and plots, the self-contained HTML report, labels of flows.
//! - `sweep/`: grids of runs, locally or as a Slurm job array.
//! - `tools/`: `flowvae bench` (with `bench agree`, the CPU-vs-GPU check), `check`,
//!   `transform`, and the density commands (`logprob`,
//!   `transform --inverse`, `sample --temperature`).
#![warn(missing_docs)]

mod error;
mod experiment;
mod report;
mod run;
mod sweep;
mod tools;

pub use candle_core::Device;
pub use error::{Result, RunnerError};
pub use experiment::overrides::Override;
pub use experiment::Experiment;
pub use flowvae_data::Dataset;
pub use flowvae_train::RunDir;
pub use report::compare::compare;
pub use report::html::{report, ReportOptions, ReportOutcome};
pub use report::records::{find_runs, find_unfinished, load_record, RunRecord};
pub use run::density::{DensitySummary, DensityTest};
pub use run::device::{describe_device, select_device, DeviceChoice};
pub use run::eval::{eval_run, sample_run};
pub use run::inference_gap::{inference_gaps, GapOptions};
pub use run::summary::{
    ComparisonSummary, RunSummary, TestMetrics, TwoDSummary, VaeSummary, Versions,
};
pub use run::threads::workers;
pub use run::{resume_run, run_experiment, run_in, summary_line, RunOptions};
pub use sweep::slurm::{write_slurm, SlurmResources};
pub use sweep::{resume_local, run_local, run_point, summarize, threads_per_job, SweepConfig};
pub use tools::agreement::{device_agreement, Agreement, AGREEMENT_STACKS};
pub use tools::bench::{
    bench_data, bench_nll, bench_train, NllBenchOptions, NllBenchResult, TrainBenchOptions,
    TrainBenchResult,
};
pub use tools::check::{check_file, read_stacks, CheckOptions, MAX_CHECK_DIM};
pub use tools::density::{
    export_split, is_density_run, logprob as density_logprob, transform as density_transform,
};
pub use tools::transform::{transform, Input as TransformInput};
