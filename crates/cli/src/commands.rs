//! Handlers of the smaller subcommands, kept out of `main.rs`'s argument definitions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) fn parse_overrides(
    set: &[String],
) -> anyhow::Result<Vec<flowvae_runner::overrides::Override>> {
    set.iter()
        .map(|s| flowvae_runner::overrides::Override::parse(s).map_err(anyhow::Error::from))
        .collect()
}

pub(crate) fn eval(run: PathBuf, samples: Option<usize>) -> anyhow::Result<ExitCode> {
    let device = candle_core_device()?;
    let (nll, s) = flowvae_runner::vae_eval::eval_run(&run, samples, &device)
        .with_context(|| format!("evaluation of {} failed", run.display()))?;
    println!(
        "{}: test NLL {nll:.3} nats (S = {s}), recorded in summary.json",
        run.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn sample(
    run: PathBuf,
    n: usize,
    seed: u64,
    out: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let out = out.unwrap_or_else(|| run.join(format!("plots/samples_{n}_seed{seed}.png")));
    if out.exists() && !force {
        anyhow::bail!(
            "{} exists already; pass --force to replace it or --out to choose another file",
            out.display()
        );
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let device = candle_core_device()?;
    flowvae_runner::vae_eval::sample_run(&run, n, seed, &out, &device)
        .with_context(|| format!("sampling from {} failed", run.display()))?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn compare(
    runs: Vec<PathBuf>,
    baseline: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut records = Vec::new();
    for path in &runs {
        let found = flowvae_runner::compare::find_runs(path);
        if found.is_empty() {
            anyhow::bail!(
                "{}: no finished run (a folder with summary.json) found",
                path.display()
            );
        }
        for dir in found {
            records.push(flowvae_runner::compare::load_record(&dir)?);
        }
    }
    let out = out.unwrap_or_else(|| {
        PathBuf::from("results/comparisons").join(flowvae_runner::run_dir::timestamp_id())
    });
    if out.join("comparison.md").exists() {
        anyhow::bail!(
            "{} holds a comparison already; choose another --out",
            out.display()
        );
    }
    let table = flowvae_runner::compare::compare(&records, &out, baseline.as_deref())
        .with_context(|| format!("cannot write the comparison to {}", out.display()))?;
    println!("{table}\nwritten to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn candle_core_device() -> anyhow::Result<flowvae_runner::Device> {
    flowvae_runner::default_device().context("cannot select a device")
}

pub(crate) fn gaps(
    run: PathBuf,
    split: &str,
    options: &flowvae_runner::inference_gap::GapOptions,
    out: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(out) = out.as_ref().filter(|o| o.exists() && !force) {
        anyhow::bail!(
            "{} exists already; pass --force to replace it",
            out.display()
        );
    }
    let device = candle_core_device()?;
    let report = flowvae_runner::inference_gap::inference_gaps(&run, split, options, &device)
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
    if let Some(out) = out {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
