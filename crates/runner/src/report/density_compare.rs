//! Comparing density runs: test log-likelihood (higher is better) as mean ± std over seeds,
//! the Δ against a baseline paired by seed, bits per dimension for images, and the overlaid
//! validation curves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use flowvae_plot::{line_chart, Series};
use flowvae_train::write_atomic;

use super::compare::{cell, mean_std, RunRecord};
use crate::error::{Result, RunnerError};
use crate::run::density::DensitySummary;
use crate::run::summary::RunSummary;

fn density(record: &RunRecord) -> Option<&DensitySummary> {
    match &record.summary {
        RunSummary::Density(s) => Some(s),
        _ => None,
    }
}

/// Per-seed test log-likelihoods of a model's runs.
fn by_seed(runs: &[&RunRecord]) -> BTreeMap<u64, f64> {
    runs.iter()
        .filter_map(|r| density(r).map(|s| (s.seed, s.test.log_likelihood)))
        .collect()
}

/// Δ log-likelihood against the baseline, paired by seed when every run has a partner.
fn delta(mine: &[&RunRecord], base: &[&RunRecord]) -> String {
    let (mine, theirs) = (by_seed(mine), by_seed(base));
    let paired: Vec<f64> = mine
        .iter()
        .filter_map(|(seed, v)| theirs.get(seed).map(|b| v - b))
        .collect();
    if !paired.is_empty() && paired.len() == mine.len() {
        return match mean_std(&paired) {
            (m, Some(s)) => format!("{m:+.2} ± {s:.2} (paired)"),
            (m, None) => format!("{m:+.2} (paired)"),
        };
    }
    let mean = |m: &BTreeMap<u64, f64>| mean_std(&m.values().copied().collect::<Vec<_>>()).0;
    format!("{:+.2}", mean(&mine) - mean(&theirs))
}

/// Writes `comparison.md`, `comparison.csv` and `plots/compare_curves.png` for density runs;
/// returns the Markdown.
pub(crate) fn compare_density(
    runs: &[RunRecord],
    out: &Path,
    baseline: Option<&str>,
) -> Result<String> {
    let mut groups: Vec<(String, Vec<&RunRecord>)> = Vec::new();
    let first_baseline = runs.iter().filter(|r| Some(r.label.as_str()) == baseline);
    for run in first_baseline.chain(runs.iter().filter(|r| Some(r.label.as_str()) != baseline)) {
        match groups.iter_mut().find(|(key, _)| *key == run.group_key) {
            Some((_, members)) => members.push(run),
            None => groups.push((run.group_key.clone(), vec![run])),
        }
    }
    let base = baseline.and_then(|b| groups.iter().find(|(_, g)| g[0].label == b));
    let mut md = String::from(
        "Test log-likelihood per example (nats; logit space for images, data units for \
         tables). Higher is better.\n\n| model | flow | params | seeds | test log-likelihood |",
    );
    md.push_str(if base.is_some() {
        " Δ vs baseline |"
    } else {
        ""
    });
    md.push_str(" bits/dim | best epoch | train time (s) |\n|---|---|---|---|---|");
    md.push_str(if base.is_some() { "---|" } else { "" });
    md.push_str("---|---|---|\n");
    let mut csv = String::from("model,flow,parameters,seeds,log_likelihood_mean,log_likelihood_std,bits_per_dim_mean,best_epoch_mean,train_seconds_mean\n");
    for (_, members) in &groups {
        let summaries: Vec<&DensitySummary> = members.iter().filter_map(|r| density(r)).collect();
        let values = |f: &dyn Fn(&DensitySummary) -> Option<f64>| -> Vec<f64> {
            summaries.iter().filter_map(|s| f(s)).collect()
        };
        let ll = values(&|s| Some(s.test.log_likelihood));
        let bits = values(&|s| s.test.bits_per_dim);
        let best = values(&|s| Some(s.best_epoch as f64));
        let seconds = values(&|s| Some(s.train_seconds));
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
            Some((_, b)) if std::ptr::eq(b[0], members[0]) => md.push_str("  |"),
            Some((_, b)) => {
                let _ = write!(md, " {} |", delta(members, b));
            }
            None => {}
        }
        let _ = writeln!(
            md,
            " {} | {} | {} |",
            cell(&bits, 3),
            cell(&best, 0),
            cell(&seconds, 0)
        );
        let (mean, std) = mean_std(&ll);
        let _ = writeln!(
            csv,
            "{label},\"{}\",{},{},{mean},{},{},{},{}",
            first.flow,
            first.parameters,
            members.len(),
            std.unwrap_or(0.0),
            mean_std(&bits).0,
            mean_std(&best).0,
            mean_std(&seconds).0
        );
    }
    std::fs::create_dir_all(out.join("plots"))
        .map_err(|e| RunnerError::io(out, "cannot create plots/", e))?;
    write_atomic(&out.join("comparison.md"), md.as_bytes())?;
    write_atomic(&out.join("comparison.csv"), csv.as_bytes())?;
    let series: Vec<Series> = runs
        .iter()
        .map(|r| Series {
            name: format!("{} (seed {})", r.label, r.summary.seed().unwrap_or(0)),
            points: r.val_curve.clone(),
        })
        .collect();
    let path = out.join("plots/compare_curves.png");
    line_chart(
        &path,
        "validation log-likelihood",
        "epoch",
        "nats per example",
        &series,
    )?;
    Ok(md)
}
