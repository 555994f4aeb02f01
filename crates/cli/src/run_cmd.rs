//! `flowvae run` and `flowvae show-config`: train an experiment, or print its resolved config.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flowvae_runner::RunOptions;

use crate::shared::{device, parse_overrides};

/// `flowvae run …`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The experiment file, e.g. experiments/quickstart.yaml (not with --resume/--sweep).
    #[arg(required_unless_present_any = ["resume", "sweep"])]
    experiment: Option<PathBuf>,
    /// Folder that holds the run folders.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Name of the run folder (default: a UTC timestamp): one plain name, no path. An
    /// existing one is refused.
    #[arg(long)]
    run_id: Option<std::ffi::OsString>,
    /// Replace the run folder given by --run-id if it exists (its files are deleted).
    #[arg(long, requires = "run_id")]
    force: bool,
    /// Override a config value, type-checked like the file: train.epochs=50,
    /// flow.0.planar.k=8, 'flow=[{planar: {k: 4}}]'. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue an interrupted run from its last checkpoint; ends exactly as an
    /// uninterrupted run would.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["experiment", "sweep", "set"])]
    resume: Option<PathBuf>,
    /// Run one point of a sweep (what `flowvae sweep` workers and Slurm tasks call).
    #[arg(long, value_name = "SWEEP_YAML", requires_all = ["index", "sweep_dir"], conflicts_with = "experiment")]
    sweep: Option<PathBuf>,
    /// Index of the sweep point.
    #[arg(long)]
    index: Option<usize>,
    /// The sweep's folder.
    #[arg(long)]
    sweep_dir: Option<PathBuf>,
}

/// `flowvae show-config …`.
#[derive(Debug, Args)]
pub(crate) struct ShowConfigArgs {
    experiment: PathBuf,
    /// Override a config value (repeatable), as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub(crate) fn run(args: RunArgs, choice: flowvae_runner::DeviceChoice) -> anyhow::Result<ExitCode> {
    let device = device(choice)?;
    let dir = if let Some(dir) = args.resume {
        flowvae_runner::resume_run(&dir, &device)
            .with_context(|| format!("resume of {} failed", dir.display()))?
    } else if let (Some(sweep), Some(index), Some(sweep_dir)) =
        (args.sweep, args.index, args.sweep_dir)
    {
        flowvae_runner::run_point(&sweep, index, &sweep_dir, &device)
            .with_context(|| format!("sweep point {index} of {} failed", sweep.display()))?
    } else {
        let experiment = args.experiment.context("an experiment file is needed")?;
        let run_id = match args.run_id {
            Some(id) => Some(id.into_string().map_err(|id| {
                anyhow::anyhow!(
                    "--run-id: {id:?} is not valid UTF-8; expected one plain folder name"
                )
            })?),
            None => None,
        };
        let options = RunOptions {
            results_root: args.results,
            run_id,
            force: args.force,
            overrides: parse_overrides(&args.set)?,
        };
        flowvae_runner::run_experiment(&experiment, &options, &device)
            .with_context(|| format!("run of {} failed", experiment.display()))?
    };
    println!("{}", flowvae_runner::summary_line(&dir));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn show_config(args: ShowConfigArgs) -> anyhow::Result<ExitCode> {
    let overrides = parse_overrides(&args.set)?;
    let exp = flowvae_runner::Experiment::load_with(&args.experiment, &overrides)
        .with_context(|| format!("cannot resolve {}", args.experiment.display()))?;
    print!("{}", exp.to_yaml());
    Ok(ExitCode::SUCCESS)
}
