//! Comparing density runs: test log-likelihood (higher is better) as mean ± std over seeds,
//! the Δ against a baseline paired by seed, bits per dimension for images, the validation
//! curves aggregated per model and the differences as points with error bars.

use std::fmt::Write as _;
use std::path::Path;

use flowvae_train::write_atomic;

use super::compare::{write_plots, PlotTitles};
use super::groups::group_runs;
use super::records::RunRecord;
use super::stats::{cell, mean_std};
use crate::error::{Result, RunnerError};
use crate::run::density::DensitySummary;
use crate::run::summary::RunSummary;

fn density(record: &RunRecord) -> Option<&DensitySummary> {
    match &record.summary {
        RunSummary::Density(s) => Some(s),
        _ => None,
    }
}

/// Writes `comparison.md`, `comparison.csv` and the plots (`plots/compare_*.{png,svg}`) for
/// density runs; returns the Markdown.
pub(crate) fn compare_density(
    runs: &[RunRecord],
    out: &Path,
    baseline: Option<&str>,
) -> Result<String> {
    let groups = group_runs(runs, baseline);
    let base = groups
        .first()
        .filter(|g| baseline == Some(g.label.as_str()));
    let mut md = markdown_header(base.is_some());
    let mut csv = String::from("model,flow,parameters,seeds,log_likelihood_mean,log_likelihood_std,bits_per_dim_mean,best_epoch_mean,train_seconds_mean,cpu_seconds_mean\n");
    for group in &groups {
        let members = &group.runs;
        let summaries: Vec<&DensitySummary> = members.iter().filter_map(|r| density(r)).collect();
        let values = |f: &dyn Fn(&DensitySummary) -> Option<f64>| -> Vec<f64> {
            summaries.iter().filter_map(|s| f(s)).collect()
        };
        let ll = values(&|s| Some(s.test.log_likelihood));
        let bits = values(&|s| s.test.bits_per_dim);
        let best = values(&|s| Some(s.best_epoch as f64));
        let seconds = values(&|s| Some(s.train_seconds));
        let cpu = values(&|s| s.cpu_seconds);
        let (label, first) = (&members[0].label, summaries[0]);
        let _ = write!(
            md,
            "| {label} | {} | {} | {} | {} |",
            first.flow,
            first.parameters,
            members.len(),
            cell(&ll, 2)
        );
        match base {
            Some(b) if std::ptr::eq(b, group) => md.push_str("  |"),
            Some(b) => {
                let delta = group.delta(b).map(|d| d.markdown());
                let _ = write!(md, " {} |", delta.unwrap_or_else(|| "–".into()));
            }
            None => {}
        }
        let _ = writeln!(
            md,
            " {} | {} | {} | {} |",
            cell(&bits, 3),
            cell(&best, 0),
            cell(&seconds, 0),
            cell(&cpu, 0)
        );
        let (mean, std) = mean_std(&ll);
        let _ = writeln!(
            csv,
            "{label},\"{}\",{},{},{mean},{},{},{},{},{}",
            first.flow,
            first.parameters,
            members.len(),
            std.unwrap_or(0.0),
            mean_std(&bits).0,
            mean_std(&best).0,
            mean_std(&seconds).0,
            mean_std(&cpu).0
        );
    }
    std::fs::create_dir_all(out.join("plots"))
        .map_err(|e| RunnerError::io(out, "cannot create plots/", e))?;
    write_atomic(&out.join("comparison.md"), md.as_bytes())?;
    write_atomic(&out.join("comparison.csv"), csv.as_bytes())?;
    let titles = PlotTitles {
        curves: "validation log-likelihood",
        y_label: "nats per example",
        delta: "test log-likelihood".into(),
        better: "higher is better",
    };
    write_plots(&groups, out, &titles)?;
    Ok(md)
}

/// The Markdown table's caption and header, with a Δ column when there is a baseline.
fn markdown_header(with_delta: bool) -> String {
    let mut md = String::from(
        "Test log-likelihood per example (nats; logit space for images, data units for \
         tables). Higher is better.\n\n| model | flow | params | seeds | test log-likelihood |",
    );
    md.push_str(if with_delta { " Δ vs baseline |" } else { "" });
    md.push_str(" bits/dim | best epoch | train time (s) | CPU time (s) |\n|---|---|---|---|---|");
    md.push_str(if with_delta { "---|" } else { "" });
    md.push_str("---|---|---|---|\n");
    md
}
