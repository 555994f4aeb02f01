//! `flowvae`: the command-line front end. Everything it does lives in `flowvae-runner`; each
//! subcommand's arguments and handler live in one `*_cmd.rs` file.
// Doc comments here are clap's help texts, where `<run-id>` and the like are literal
// placeholders, not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod allocator;
mod bench_cmd;
mod check_cmd;
mod environment;
mod report_cmd;
mod run_cmd;
mod shared;
mod sweep_cmd;
mod trained_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Normalizing flows and Flow-VAEs: run experiments from YAML, verify flow stacks, evaluate,
/// sample and compare trained models.
#[derive(Debug, Parser)]
#[command(name = "flowvae", version, about, long_about = None)]
struct Cli {
    /// Where to compute: cpu (always available), cuda or cuda:N (a build with the `cuda`
    /// feature on a machine with a GPU).
    #[arg(long, global = true, default_value = "cpu")]
    device: flowvae_runner::DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Speed of the benchmark Flow-VAE (MLP 784-512-256, z = 40): training samples/s and NLL
    /// importance samples/s through the library's real paths.
    Bench(bench_cmd::BenchArgs),
    /// Train an experiment described by a YAML file and write its run folder
    /// (results/<experiment>/<run-id>/: config.yaml, metrics.csv, summary.json, run.log,
    /// plots/, checkpoints/). `--resume <run-dir>` continues an interrupted run.
    Run(run_cmd::RunArgs),
    /// Print the resolved configuration of an experiment (every default filled in, with
    /// --set overrides applied), as it would be written to the run's config.yaml.
    ShowConfig(run_cmd::ShowConfigArgs),
    /// Run a sweep: a base experiment, a grid over config keys and seeds. Locally in
    /// --jobs processes, or --slurm writes a job-array script and a dependent comparison job.
    Sweep(sweep_cmd::SweepArgs),
    /// Push data through a trained model and write the codes to CSV: z0 and zK of a
    /// Flow-VAE's posterior (its mean path, or a draw with --sample), or, for a 2-D density
    /// run, the base-space point z = f^-1(x) and the round trip f(z); for a density run the
    /// Gaussianized features z = f^-1(x) with each row's log-likelihood (--inverse: back).
    Transform(check_cmd::TransformArgs),
    /// Compare the finished points of a sweep folder (what the Slurm comparison job runs).
    SweepSummary(sweep_cmd::SweepSummaryArgs),
    /// Verify a flow stack: build it with random parameters (f64) and compare each layer's
    /// log|det J| with the brute-force Jacobian, and inverse round trips. Exits 1 when an
    /// error exceeds the tolerance.
    Check(check_cmd::CheckArgs),
    /// Estimate the test log-likelihood of a trained Flow-VAE run by importance sampling
    /// (encoder once per image, S samples in chunks, f64 accumulation) and record it in the
    /// run's summary.json.
    Eval(trained_cmd::EvalArgs),
    /// Draw images from the prior of a trained Flow-VAE (a PNG grid), or samples of a
    /// density run at a temperature (a PNG grid of images, or CSV rows).
    Sample(trained_cmd::SampleArgs),
    /// Per-row log-likelihood of data under a trained density run (the anomaly score), as
    /// CSV.
    Logprob(check_cmd::LogprobArgs),
    /// Write the rows of a split of a density run's data as the run reads them (grey levels
    /// in [0, 1] for images, with a label column when the data have classes): the exact
    /// split, to train another library on.
    Rows(check_cmd::RowsArgs),
    /// Split a Flow-VAE's inference gap log p(x) - ELBO into the amortization gap (a better
    /// encoder) and the approximation gap (a richer posterior): the encoder's outputs are
    /// optimised per image, decoder fixed (Cremer et al., 2018).
    Gaps(trained_cmd::GapsArgs),
    /// Compare finished runs: a Markdown and CSV table (test NLL with S, -ELBO, KL, epochs,
    /// time; mean ± std over seeds of the same model), the validation curves aggregated per
    /// model, the differences to the baseline, and report.html. Accepts run folders or
    /// folders containing them.
    Compare(trained_cmd::CompareArgs),
    /// Write one self-contained HTML page (no network needed to view it) for runs, a sweep or
    /// a study: the sortable comparison table, the differences to the baseline, learning
    /// curves per model, sample grids, gap reports, and each run's config and provenance.
    Report(report_cmd::ReportArgs),
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    // Before any thread exists: the environment becomes the runtime once.
    if let Err(err) = environment::configure() {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(environment::log_colours())
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            // One line: candle may append a backtrace to its messages (RUST_BACKTRACE).
            let message = format!("{err:#}");
            eprintln!(
                "error: {}",
                message.lines().next().unwrap_or("unknown error")
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let device = cli.device;
    match cli.command {
        Command::Bench(args) => bench_cmd::run(args, device),
        Command::Run(args) => run_cmd::run(args, device),
        Command::ShowConfig(args) => run_cmd::show_config(args),
        Command::Sweep(args) => sweep_cmd::sweep(args),
        Command::SweepSummary(args) => sweep_cmd::summary(args),
        Command::Transform(args) => check_cmd::transform(args, device),
        Command::Check(args) => check_cmd::check(args),
        Command::Eval(args) => trained_cmd::eval(args, device),
        Command::Sample(args) => trained_cmd::sample(args, device),
        Command::Logprob(args) => check_cmd::logprob(args, device),
        Command::Rows(args) => check_cmd::rows(args),
        Command::Gaps(args) => trained_cmd::gaps(args, device),
        Command::Compare(args) => trained_cmd::compare(args),
        Command::Report(args) => report_cmd::report(args),
    }
}
