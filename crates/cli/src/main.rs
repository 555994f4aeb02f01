//! `flowvae`: the command-line front end. Everything it does lives in `flowvae-runner`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flowvae_runner::check::CheckOptions;
use flowvae_runner::RunOptions;

/// Normalizing flows and Flow-VAEs: run experiments from YAML, verify flow stacks.
#[derive(Debug, Parser)]
#[command(name = "flowvae", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train an experiment described by a YAML file and write its run folder
    /// (results/<experiment>/<run-id>/: config.yaml, metrics.csv, summary.json, plots/,
    /// checkpoints/).
    Run {
        /// The experiment file, e.g. experiments/u1_planar_k32.yaml.
        experiment: PathBuf,
        /// Folder that holds the run folders.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Name of the run folder (default: a UTC timestamp). An existing one is refused.
        #[arg(long)]
        run_id: Option<String>,
        /// Replace the run folder given by --run-id if it exists (its files are deleted).
        #[arg(long, requires = "run_id")]
        force: bool,
    },
    /// Verify a flow stack: build it with random parameters (f64) and compare each layer's
    /// log|det J| with the brute-force Jacobian, and inverse round trips. Exits 1 when an
    /// error exceeds the tolerance.
    Check {
        /// A stack file (a YAML list such as `- planar: {k: 4}`) or an experiment file.
        yaml: PathBuf,
        /// Dimension to build the stack on (default: the experiment's, or 4).
        #[arg(long)]
        dim: Option<usize>,
        /// Random points to check at.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Seed of the random parameters and points.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Build planar, radial and Sylvester layers with per-sample (amortized) parameters.
        #[arg(long)]
        amortized: bool,
        /// Largest acceptable error.
        #[arg(long, default_value_t = 1e-6)]
        tolerance: f64,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            experiment,
            results,
            run_id,
            force,
        } => {
            let options = RunOptions {
                results_root: results,
                run_id,
                force,
            };
            let device = candle_core_device()?;
            let dir = flowvae_runner::run_experiment(&experiment, &options, &device)
                .with_context(|| format!("run of {} failed", experiment.display()))?;
            println!("{}", flowvae_runner::summary_line(&dir));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            yaml,
            dim,
            batch,
            seed,
            amortized,
            tolerance,
        } => {
            let options = CheckOptions {
                dim,
                batch,
                seed,
                amortized,
                tolerance,
            };
            let outcome = flowvae_runner::check::check(&yaml, &options)
                .with_context(|| format!("check of {} failed", yaml.display()))?;
            print!("{}", outcome.table());
            let verdict = if outcome.passed() { "PASS" } else { "FAIL" };
            println!(
                "{verdict}: dimension {}, tolerance {:e} (f64, {} points)",
                outcome.dim, tolerance, batch
            );
            Ok(if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn candle_core_device() -> anyhow::Result<flowvae_runner::Device> {
    flowvae_runner::default_device().context("cannot select a device")
}
