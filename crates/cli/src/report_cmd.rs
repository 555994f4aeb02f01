//! `flowvae report`: one self-contained HTML page for runs, a sweep or a study.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// `flowvae report …`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Run folders, sweep folders, or folders holding runs (searched three levels deep).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The HTML file to write (default: report.html in the first folder). An existing report
    /// is replaced.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Model to show differences against (default: a sweep's baseline, else `vae` when
    /// present).
    #[arg(long)]
    baseline: Option<String>,
    /// Kilobytes of images to embed at most; later images are linked instead.
    #[arg(long, value_name = "KB")]
    image_budget_kb: Option<usize>,
}

pub(crate) fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let output = args
        .output
        .unwrap_or_else(|| args.paths[0].join("report.html"));
    let mut options = flowvae_runner::ReportOptions::new(output);
    options.baseline = args.baseline;
    if let Some(kb) = args.image_budget_kb {
        options.image_budget = kb * 1000;
    }
    let outcome = write(&args.paths, &options)?;
    println!("{}", describe(&outcome));
    Ok(ExitCode::SUCCESS)
}

/// Writes the report, with the error naming the file.
pub(crate) fn write(
    paths: &[PathBuf],
    options: &flowvae_runner::ReportOptions,
) -> anyhow::Result<flowvae_runner::ReportOutcome> {
    flowvae_runner::report(paths, options)
        .with_context(|| format!("cannot write the report {}", options.output.display()))
}

/// One line saying what the report holds.
pub(crate) fn describe(outcome: &flowvae_runner::ReportOutcome) -> String {
    let mut line = format!(
        "wrote {} ({} models, {} runs, {} KB",
        outcome.path.display(),
        outcome.models,
        outcome.runs,
        outcome.bytes.div_ceil(1000)
    );
    if outcome.unfinished > 0 {
        line.push_str(&format!("; {} unfinished marked", outcome.unfinished));
    }
    if outcome.unreadable > 0 {
        line.push_str(&format!("; {} unreadable marked", outcome.unreadable));
    }
    if outcome.images.1 > 0 {
        line.push_str(&format!(
            "; {} images linked, not embedded (--image-budget-kb)",
            outcome.images.1
        ));
    }
    line.push(')');
    line
}
