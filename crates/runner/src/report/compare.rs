//! Comparing runs: a Markdown and a CSV table, the validation curves aggregated per model
//! and the differences to the baseline as points with error bars. Runs that differ only in
//! their seed are grouped and shown as mean ± std.

use std::path::Path;

use super::groups::{delta_points, group_runs, ModelGroup};
use super::records::RunRecord;
use super::stats::{cell, mean_std};
use crate::error::{Result, RunnerError};
use crate::run::summary::{RunSummary, VaeSummary};
use flowvae_plot::{Band, BandChart, DeltaChart};
use flowvae_train::write_atomic;

fn nll(s: &VaeSummary) -> Option<f64> {
    Some(s.test.nll)
}

fn parameters(s: &VaeSummary) -> String {
    s.parameters.map(|p| p.to_string()).unwrap_or_default()
}

impl ModelGroup<'_> {
    /// `value` of each Flow-VAE run that has it.
    fn values(&self, value: impl Fn(&VaeSummary) -> Option<f64>) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.summary.vae().and_then(&value))
            .collect()
    }
    /// `text` of the first run, empty when it is not a Flow-VAE run.
    fn text(&self, text: impl Fn(&VaeSummary) -> String) -> String {
        self.runs[0].summary.vae().map(text).unwrap_or_default()
    }
}

/// Writes `comparison.md`, `comparison.csv` and plots into `out`; returns the Markdown.
///
/// Density runs get their own table (log-likelihoods, higher is better); a mix of density
/// and Flow-VAE runs, or of runs on different data sets, is refused.
pub fn compare(runs: &[RunRecord], out: &Path, baseline: Option<&str>) -> Result<String> {
    check_comparable(runs, out)?;
    if runs
        .iter()
        .any(|r| matches!(r.summary, RunSummary::Density(_)))
    {
        return super::density_compare::compare_density(runs, out, baseline);
    }
    let groups = group_runs(runs, baseline);
    let first = runs.first().and_then(|r| r.summary.vae());
    let samples = first.map_or(0, |s| s.test.nll_samples);
    let data = first.map(|s| s.data.clone()).unwrap_or_default();
    let base_group = groups
        .first()
        .filter(|g| baseline == Some(g.label.as_str()));
    let mut md = table_header(samples, &data, base_group.is_some());
    let mut csv = String::from(CSV_HEADER);
    for group in &groups {
        md.push_str(&markdown_row(group, base_group));
        csv.push_str(&csv_row(group, samples));
    }
    std::fs::create_dir_all(out.join("plots"))
        .map_err(|e| RunnerError::io(out, "cannot create plots/", e))?;
    write_atomic(&out.join("comparison.md"), md.as_bytes())?;
    write_atomic(&out.join("comparison.csv"), csv.as_bytes())?;
    let titles = PlotTitles {
        curves: "validation −ELBO",
        y_label: "nats",
        delta: format!("test NLL (S = {samples})"),
        better: "lower is better",
    };
    write_plots(&groups, out, &titles)?;
    Ok(md)
}

/// Refuses runs that cannot share one table: density runs with Flow-VAE runs (they report
/// different quantities) and runs on different data sets (their numbers do not pair).
pub(crate) fn check_comparable(runs: &[RunRecord], out: &Path) -> Result<()> {
    let refuse = |message: String| RunnerError::Config {
        file: out.to_path_buf(),
        location: None,
        message,
    };
    let is_density = |r: &RunRecord| matches!(r.summary, RunSummary::Density(_));
    if runs.iter().any(is_density) && !runs.iter().all(is_density) {
        return Err(refuse(
            "density runs and Flow-VAE runs report different quantities; \
             compare each kind on its own"
                .into(),
        ));
    }
    let mut seen: Vec<(String, &RunRecord)> = Vec::new();
    for run in runs {
        if let Some(data) = data_set(run).filter(|d| !seen.iter().any(|(s, _)| s == d)) {
            seen.push((data, run));
        }
    }
    if let [(a, first), (b, second), ..] = seen.as_slice() {
        return Err(refuse(format!(
            "runs on different data sets cannot be paired: `{a}` ({}) and `{b}` ({}); \
             compare each data set on its own",
            first.dir.display(),
            second.dir.display()
        )));
    }
    Ok(())
}

/// The data set a run was trained on, in words, when its summary says.
pub(crate) fn data_set(run: &RunRecord) -> Option<String> {
    match &run.summary {
        RunSummary::Vae(s) => Some(s.data.clone()).filter(|d| !d.is_empty()),
        RunSummary::Density(s) => s.density.get("data")?.as_str().map(str::to_string),
        _ => None,
    }
}

const CSV_HEADER: &str = "model,flow,parameters,seeds,test_nll_mean,test_nll_std,nll_samples,test_neg_elbo_mean,test_kl_mean,epochs_mean,train_seconds_mean,cpu_seconds_mean\n";

/// The sentence above the table and the table's header (with a Δ column when there is a
/// baseline).
fn table_header(samples: usize, data: &str, with_delta: bool) -> String {
    let mut md = format!(
        "Test NLL by importance sampling with S = {samples}; data: {data}. Lower is better.\n\n"
    );
    md.push_str("| model | flow | params | seeds | test NLL (nats) |");
    if with_delta {
        md.push_str(" Δ NLL vs baseline |");
    }
    md.push_str(
        " test −ELBO | KL | epochs | train time (s) | CPU time (s) |\n|---|---|---|---|---|",
    );
    if with_delta {
        md.push_str("---|");
    }
    md.push_str("---|---|---|---|---|\n");
    md
}

/// One model's row of `comparison.md`: mean ± std over its seeds.
fn markdown_row(group: &ModelGroup, base_group: Option<&ModelGroup>) -> String {
    let mut row = format!(
        "| {} | {} | {} | {} | {} |",
        group.label,
        group.text(|s| s.flow.clone()),
        group.text(parameters),
        group.runs.len(),
        cell(&group.values(nll), 2)
    );
    match base_group {
        Some(base) if std::ptr::eq(base, group) => row.push_str("  |"),
        Some(base) => {
            let delta = group.delta(base).map(|d| d.markdown());
            row.push_str(&format!(" {} |", delta.unwrap_or_else(|| "–".into())));
        }
        None => {}
    }
    row.push_str(&format!(
        " {} | {} | {} | {} | {} |\n",
        cell(&group.values(|s| s.test.neg_elbo), 2),
        cell(&group.values(|s| s.test.kl), 2),
        cell(&group.values(|s| s.epochs.map(|e| e as f64)), 0),
        cell(&group.values(|s| s.train_seconds), 0),
        cell(&group.values(|s| s.cpu_seconds), 0)
    ));
    row
}

/// One model's row of `comparison.csv`: means (and the NLL's std) over its seeds.
fn csv_row(group: &ModelGroup, samples: usize) -> String {
    let (nll_mean, nll_std) = mean_std(&group.values(nll));
    format!(
        "{},\"{}\",{},{},{nll_mean},{},{samples},{},{},{},{},{}\n",
        group.label,
        group.text(|s| s.flow.clone()),
        group.text(parameters),
        group.runs.len(),
        nll_std.unwrap_or(0.0),
        mean_std(&group.values(|s| s.test.neg_elbo)).0,
        mean_std(&group.values(|s| s.test.kl)).0,
        mean_std(&group.values(|s| s.epochs.map(|e| e as f64))).0,
        mean_std(&group.values(|s| s.train_seconds)).0,
        mean_std(&group.values(|s| s.cpu_seconds)).0,
    )
}

/// What the comparison plots are titled.
pub(crate) struct PlotTitles<'a> {
    /// Of the curves.
    pub curves: &'a str,
    /// The curves' y axis.
    pub y_label: &'a str,
    /// What differs, e.g. `test NLL (S = 5000)`.
    pub delta: String,
    /// Which sign of the difference is better.
    pub better: &'a str,
}

/// The validation curves aggregated per model and the differences to the first model (the
/// baseline, when there is one), as PNG and SVG.
pub(crate) fn write_plots(groups: &[ModelGroup], out: &Path, titles: &PlotTitles) -> Result<()> {
    let bands: Vec<Band> = groups.iter().map(ModelGroup::band).collect();
    let points = delta_points(groups);
    let delta_title = match groups.first() {
        Some(base) => format!("Δ {} vs {}", titles.delta, base.label),
        None => String::new(),
    };
    for ext in ["png", "svg"] {
        if bands.iter().any(|b| !b.points.is_empty()) {
            let chart = BandChart {
                title: titles.curves,
                x_label: "epoch",
                y_label: titles.y_label,
                bands: &bands,
            };
            chart.write(&out.join(format!("plots/compare_curves.{ext}")))?;
        }
        if !points.is_empty() {
            let chart = DeltaChart {
                title: &delta_title,
                x_label: &format!("nats, {}; bars: ± 2 standard errors", titles.better),
                points: &points,
            };
            chart.write(&out.join(format!("plots/compare_delta.{ext}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn record(label: &str, seed: u64, nll: f64) -> RunRecord {
        RunRecord {
            dir: PathBuf::from(format!("{label}-{seed}")),
            label: label.into(),
            summary: RunSummary::parse(
                Path::new("summary.json"),
                &format!(r#"{{"experiment": "e", "model": "{label}", "seed": {seed}, "test": {{"nll": {nll}, "nll_samples": 10}}}}"#),
            )
            .unwrap(),
            val_curve: vec![(1.0, nll)],
            group_key: label.into(),
        }
    }

    #[test]
    fn differences_are_paired_by_seed_when_every_seed_has_a_baseline() {
        let runs = vec![
            record("vae", 0, 100.0),
            record("vae", 1, 102.0),
            record("vae", 2, 101.0),
            record("flow", 0, 99.0),
            record("flow", 1, 101.5),
            record("flow", 2, 100.2),
            record("other", 7, 100.0),
            record("single", 1, 101.0),
        ];
        let dir = tempfile::tempdir().unwrap();
        let md = compare(&runs, dir.path(), Some("vae")).unwrap();
        // Differences −1.0, −0.5, −0.8: mean −0.77, std 0.25; unpaired stds would be 1.0.
        assert!(md.contains("| -0.77 ± 0.25 (paired) |"), "{md}");
        // Seed 7 has no baseline run: the difference of means.
        assert!(md.contains("| 100.00 | -1.00 |"), "{md}");
        assert!(md.contains("| 101.00 | -1.00 (paired) |"), "{md}");
        assert!(md.lines().nth(4).unwrap().starts_with("| vae |"), "{md}");
    }
}
