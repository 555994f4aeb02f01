//! `flowvae check` (a flow stack against the brute-force Jacobian) and `flowvae transform`
//! (data through a trained model's flow).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flowvae_runner::{CheckOptions, MAX_CHECK_DIM};

use crate::shared::{device, refuse_existing};

/// `flowvae check …`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// A stack file (a YAML list such as `- planar: {k: 4}`) or an experiment file.
    yaml: PathBuf,
    /// Dimension to build the stack on, 1 to 1024 (default: the experiment's, or 4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_CHECK_DIM as u64))]
    dim: Option<u64>,
    /// Random points to check at, 1 to 1024.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    batch: u64,
    /// Seed of the random parameters and points.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Build planar, radial and Sylvester layers with per-sample (amortized) parameters.
    #[arg(long)]
    amortized: bool,
    /// Largest acceptable error.
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
}

/// `flowvae transform …`.
#[derive(Debug, Args)]
pub(crate) struct TransformArgs {
    /// A finished run folder.
    run: PathBuf,
    #[command(flatten)]
    rows: Rows,
    /// Draw z0 from q0 (seeded) instead of taking its mean.
    #[arg(long)]
    sample: bool,
    /// Density runs: map base-space rows (--input) back to data space.
    #[arg(long, requires = "input")]
    inverse: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    force: bool,
}

/// Exit code 1 (not an error) when a layer's error exceeds the tolerance.
pub(crate) fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let options = CheckOptions {
        dim: args.dim.map(|d| d as usize),
        batch: args.batch as usize,
        seed: args.seed,
        amortized: args.amortized,
        tolerance: args.tolerance,
    };
    let outcomes = flowvae_runner::check_file(&args.yaml, &options)
        .with_context(|| format!("check of {} failed", args.yaml.display()))?;
    let mut all_passed = true;
    for outcome in &outcomes {
        if outcomes.len() > 1 {
            println!("== {} ==", outcome.stack);
        }
        print!("{}", outcome.table());
        all_passed &= outcome.passed();
    }
    let verdict = if all_passed { "PASS" } else { "FAIL" };
    let dim = outcomes.first().map_or(0, |o| o.dim);
    println!(
        "{verdict}: {} stack(s), dimension {dim}, tolerance {:e} (f64, {} points)",
        outcomes.len(),
        args.tolerance,
        args.batch
    );
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn transform(
    args: TransformArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    let output = &args.rows.output;
    refuse_existing(output, args.force, "")?;
    let (source, run) = (args.rows.source(), &args.run);
    let device = device(choice)?;
    let context = args.rows.context.as_deref();
    let rows = if args.inverse {
        flowvae_runner::density_transform(run, (source, context), output, true, &device)
            .with_context(|| format!("inverse transform with {} failed", run.display()))?
    } else if flowvae_runner::is_density_run(run) {
        flowvae_runner::density_transform(run, (source, context), output, false, &device)
            .with_context(|| format!("transform with {} failed", run.display()))?
    } else {
        if context.is_some() {
            anyhow::bail!(
                "--context: {} is a Flow-VAE run; a condition is for conditional density runs",
                run.display()
            );
        }
        flowvae_runner::transform(run, source, output, args.sample, args.seed, &device)
            .with_context(|| format!("transform with {} failed", run.display()))?
    };
    println!("{rows} rows written to {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// `flowvae logprob …`: writes one log-likelihood per row.
#[derive(Debug, Args)]
pub(crate) struct LogprobArgs {
    /// A finished density run folder.
    run: PathBuf,
    #[command(flatten)]
    rows: Rows,
    #[arg(long)]
    force: bool,
}

/// The rows a command reads (a CSV or a split of the run's data) and the CSV it writes.
#[derive(Debug, Args)]
pub(crate) struct Rows {
    /// CSV of data rows, one per line (the trained run's columns: 784 for MNIST, 2 for 2-D;
    /// pixel values in [0, 1] for images).
    #[arg(long, conflicts_with = "split")]
    input: Option<PathBuf>,
    /// Use a split of the run's own data instead: train, val or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Output CSV (refused if it exists, unless --force).
    #[arg(long)]
    output: PathBuf,
    /// Conditional density runs: the condition of every row, a class (`3`) or the condition
    /// columns' values (`0.5,1.2`); a split's rows default to their own.
    #[arg(long)]
    context: Option<String>,
}

impl Rows {
    fn source(&self) -> flowvae_runner::TransformInput<'_> {
        match &self.input {
            Some(path) => flowvae_runner::TransformInput::Csv(path),
            None => flowvae_runner::TransformInput::Split(&self.split),
        }
    }
}

pub(crate) fn logprob(
    args: LogprobArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    let output = &args.rows.output;
    refuse_existing(output, args.force, "")?;
    let device = device(choice)?;
    let context = args.rows.context.as_deref();
    let rows =
        flowvae_runner::density_logprob(&args.run, args.rows.source(), context, output, &device)
            .with_context(|| format!("logprob with {} failed", args.run.display()))?;
    println!("{rows} rows written to {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// `flowvae rows …`.
#[derive(Debug, Args)]
pub(crate) struct RowsArgs {
    /// A density run folder.
    run: PathBuf,
    /// train, val or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Output CSV (refused if it exists, unless --force).
    #[arg(long)]
    output: PathBuf,
    #[arg(long)]
    force: bool,
}

pub(crate) fn rows(args: RowsArgs) -> anyhow::Result<ExitCode> {
    refuse_existing(&args.output, args.force, "")?;
    let rows = flowvae_runner::export_split(&args.run, &args.split, &args.output)
        .with_context(|| format!("rows of {} failed", args.run.display()))?;
    println!("{rows} rows written to {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
