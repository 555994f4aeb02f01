//! # flowvae-runner
//!
//! Reproducible experiments from YAML: parse and validate an experiment file, train, evaluate,
//! and write a run folder `results/<experiment>/<run-id>/` with the resolved `config.yaml`,
//! `metrics.csv`, `summary.json`, safetensors checkpoints and plots. The `flowvae` binary is a
//! thin front end over [`run_experiment`] and [`check`].

pub mod check;
pub mod compare;
pub mod error;
pub mod experiment;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod run_dir;
pub mod two_d;
pub mod vae_config;
pub mod vae_data;
pub mod vae_eval;
pub mod vae_train;
pub mod values;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use error::{Result, RunnerError};
pub use experiment::Experiment;
pub use run_dir::RunDir;

/// Crate versions recorded in every summary.
pub fn versions() -> serde_json::Value {
    serde_json::json!({
        "flowvae": env!("CARGO_PKG_VERSION"),
        "candle": "0.11",
    })
}

/// Where and how a run is written.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder holding `<experiment>/<run-id>/`, normally `results`.
    pub results_root: PathBuf,
    /// Run id; default a UTC timestamp.
    pub run_id: Option<String>,
    /// Replace an existing run folder of the same id.
    pub force: bool,
}

/// Runs the experiment in `path`: validates it, creates the run folder, trains, reports.
/// Returns the run folder.
pub fn run_experiment(path: &Path, options: &RunOptions, device: &Device) -> Result<PathBuf> {
    let experiment = Experiment::load(path)?;
    let run = RunDir::create(
        &options.results_root,
        experiment.name(),
        options.run_id.as_deref(),
        options.force,
    )?;
    run_dir::write_atomic(&run.file("config.yaml")?, experiment.to_yaml().as_bytes())?;
    tracing::info!("run folder {}", run.path().display());
    match &experiment {
        Experiment::TwoD(exp) => {
            two_d::run_2d(exp, &run, device)?;
        }
        Experiment::Vae(exp) if exp.variants.is_empty() => {
            vae_eval::run_vae(exp, &exp.name, &run, device)?;
        }
        Experiment::Vae(exp) => run_variants(exp, &run, device)?,
    }
    Ok(run.path().to_path_buf())
}

/// Trains every variant of a comparison in its own sub-folder, then writes the comparison.
fn run_variants(exp: &vae_config::ExperimentVae, run: &RunDir, device: &Device) -> Result<()> {
    let mut records = Vec::new();
    for (name, single) in exp.expand() {
        tracing::info!("model {name}: flow {}", vae_eval::flow_label(&single));
        let child = run.child(&name)?;
        let text = Experiment::Vae(single.clone()).to_yaml();
        run_dir::write_atomic(&child.file("config.yaml")?, text.as_bytes())?;
        vae_eval::run_vae(&single, &name, &child, device)?;
        records.push(compare::load_record(child.path())?);
    }
    let baseline = exp.variants.first().map(|v| v.name.as_str());
    let table = compare::compare(&records, run.path(), baseline)?;
    println!("{table}");
    Ok(())
}

pub use candle_core::Device;

/// The device runs use: the GPU when built with `cuda` and one is present, else the CPU.
pub fn default_device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        if candle_core::utils::cuda_is_available() {
            return Ok(Device::new_cuda(0)?);
        }
    }
    Ok(Device::Cpu)
}

/// One line that sums up a finished run, read from its `summary.json`.
pub fn summary_line(run: &Path) -> String {
    let summary = std::fs::read_to_string(run.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    match summary {
        Some(s) => format!(
            "done: {} in {:.1}s; final {}",
            run.display(),
            s["wall_seconds"].as_f64().unwrap_or(f64::NAN),
            s["final"]
        ),
        None => format!("done: {}", run.display()),
    }
}
