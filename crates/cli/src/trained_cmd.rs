//! Subcommands on finished runs: `eval` (test NLL), `sample` (prior draws), `gaps`
//! (amortization and approximation gaps) and `compare` (tables and plots across runs).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use flowvae_runner::GapOptions;

use crate::shared::{device, refuse_existing};

/// `flowvae eval …`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// A Flow-VAE run folder (results/<experiment>/<run-id>[/<model>]).
    run: PathBuf,
    /// Importance samples per test image, 1 to 1000000 (default: the run's
    /// eval.nll_samples, 5000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    samples: Option<u64>,
}

/// `flowvae sample …`.
#[derive(Debug, Args)]
pub(crate) struct SampleArgs {
    /// A Flow-VAE or density run folder.
    run: PathBuf,
    /// Number of samples, 1 to 10000 (a PNG grid of images, or CSV rows for a density run).
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    n: u64,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file, .png or (density runs) .csv (default: <run>/plots/samples_<n>_seed<seed>.png,
    /// or <run>/samples_<n>_seed<seed>.csv for a density run on a table).
    #[arg(long, alias = "output")]
    out: Option<PathBuf>,
    /// Density runs: scale of the base's spread (T < 1 for typical samples), > 0.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Conditional density runs: the condition of every sample, a class (`3`) or the
    /// condition columns' values (`0.5,1.2`).
    #[arg(long)]
    context: Option<String>,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

/// `flowvae gaps …`.
#[derive(Debug, Args)]
pub(crate) struct GapsArgs {
    /// A finished run folder.
    run: PathBuf,
    /// train, val or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// The first N images of the split.
    #[arg(long, default_value_t = 100)]
    images: usize,
    /// Adam steps of the per-image optimisation.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Adam's learning rate for the per-image variables.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Posterior samples per image per step.
    #[arg(long, default_value_t = 16)]
    samples: usize,
    /// Samples per image for the final ELBO and log p(x) estimates.
    #[arg(long, default_value_t = 1000)]
    eval_samples: usize,
    /// Seed of the posterior noise (the same for both estimates).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON here (refused if it exists, unless --force).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// `flowvae compare …`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Run folders, or experiment / comparison folders holding them.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Model name to show differences against (e.g. vae).
    #[arg(long)]
    baseline: Option<String>,
    /// Folder for comparison.md, comparison.csv, report.html and plots/ (default:
    /// results/comparisons/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn eval(
    args: EvalArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    let device = device(choice)?;
    let samples = args.samples.map(|s| s as usize);
    let (nll, s) = flowvae_runner::eval_run(&args.run, samples, &device)
        .with_context(|| format!("evaluation of {} failed", args.run.display()))?;
    println!(
        "{}: test NLL {nll:.3} nats (S = {s}), recorded in summary.json",
        args.run.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn sample(
    args: SampleArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    let SampleArgs {
        run,
        n,
        seed,
        out,
        temperature,
        context,
        force,
    } = args;
    let n = n as usize;
    if !(temperature > 0.0 && temperature.is_finite()) {
        anyhow::bail!("--temperature: must be a positive number, got {temperature}");
    }
    let table = flowvae_runner::is_density_run(&run)
        && std::fs::read_to_string(run.join("preprocess.json"))
            .is_ok_and(|t| !t.contains("\"logit\""));
    let out = out.unwrap_or_else(|| match table {
        true => run.join(format!("samples_{n}_seed{seed}.csv")),
        false => run.join(format!("plots/samples_{n}_seed{seed}.png")),
    });
    refuse_existing(&out, force, " or --out to choose another file")?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let device = device(choice)?;
    let draws = (n, temperature, seed);
    flowvae_runner::sample_run(&run, draws, context.as_deref(), &out, &device)
        .with_context(|| format!("sampling from {} failed", run.display()))?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn gaps(
    args: GapsArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.out {
        refuse_existing(out, args.force, "")?;
    }
    let options = GapOptions {
        images: args.images,
        steps: args.steps,
        samples_per_step: args.samples,
        eval_samples: args.eval_samples,
        lr: args.lr,
        seed: args.seed,
    };
    let device = device(choice)?;
    let run = &args.run;
    let report = flowvae_runner::inference_gaps(run, &args.split, &options, &device)
        .with_context(|| format!("gap measurement of {} failed", run.display()))?;
    println!(
        "{}: {} {} images, nats per image\n  log p(x) {:.2}\n  ELBO, encoder's q {:.2}\n  \
         ELBO, optimised q {:.2}\n  amortization gap {:.2}\n  approximation gap {:.2}",
        run.display(),
        report.images,
        report.split,
        report.log_px,
        report.elbo_amortized,
        report.elbo_optimized,
        report.amortization_gap,
        report.approximation_gap
    );
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let mut records = Vec::new();
    for path in &args.runs {
        let found = flowvae_runner::find_runs(path);
        if found.is_empty() {
            anyhow::bail!(
                "{}: no finished run (a folder with summary.json) found",
                path.display()
            );
        }
        for dir in found {
            records.push(flowvae_runner::load_record(&dir)?);
        }
    }
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("results/comparisons").join(flowvae_train::timestamp_id())
    });
    if out.join("comparison.md").exists() {
        anyhow::bail!(
            "{} holds a comparison already; choose another --out",
            out.display()
        );
    }
    let table = flowvae_runner::compare(&records, &out, args.baseline.as_deref())
        .with_context(|| format!("cannot write the comparison to {}", out.display()))?;
    let mut options = flowvae_runner::ReportOptions::new(out.join("report.html"));
    options.baseline = args.baseline;
    let outcome = crate::report_cmd::write(&args.runs, &options)?;
    println!(
        "{table}\nwritten to {}\n{}",
        out.display(),
        crate::report_cmd::describe(&outcome)
    );
    Ok(ExitCode::SUCCESS)
}
