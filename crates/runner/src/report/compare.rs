//! Comparing runs: a Markdown and a CSV table, overlaid validation curves and an NLL bar
//! chart. Runs that differ only in their seed are grouped and shown as mean ± std.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, RunnerError};
use crate::run::summary::{RunSummary, VaeSummary};
use flowvae_plot::{bar_chart, line_chart, Series};
use flowvae_train::read_metrics;
use flowvae_train::write_atomic;

/// What one finished Flow-VAE run folder reports.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run folder.
    pub dir: PathBuf,
    /// The model's name: the variant folder, or the experiment name.
    pub label: String,
    /// The run's `summary.json`.
    pub summary: RunSummary,
    /// `(epoch, val −ELBO)`.
    pub val_curve: Vec<(f64, f64)>,
    /// The resolved config without its seed: runs with equal keys are seeds of one model.
    pub(crate) group_key: String,
}

/// Reads `summary.json`, `metrics.csv` and `config.yaml` of a run folder.
pub fn load_record(dir: &Path) -> Result<RunRecord> {
    let summary = RunSummary::read(dir)?;
    let (header, rows) = read_metrics(&dir.join("metrics.csv"))?;
    let col = |n: &str| header.iter().position(|h| h == n);
    let validation = col("val_neg_elbo").or(col("val_log_likelihood"));
    let val_curve = match (col("epoch"), validation) {
        (Some(e), Some(v)) => rows.iter().map(|r| (r[e], r[v])).collect(),
        _ => Vec::new(),
    };
    let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap_or_default();
    let group_key: String = config
        .lines()
        .filter(|l| !l.starts_with("seed:"))
        .collect::<Vec<_>>()
        .join("\n");
    let label = match &summary {
        RunSummary::Vae(s) => s.model.clone(),
        other => other.experiment().to_string(),
    };
    Ok(RunRecord {
        dir: dir.to_path_buf(),
        label,
        summary,
        val_curve,
        group_key,
    })
}

/// Finds run folders under `path`: the folder itself when it holds `summary.json`, else
/// every folder below it (two levels deep) that does.
pub fn find_runs(path: &Path) -> Vec<PathBuf> {
    let is_run = |p: &Path| p.join("summary.json").is_file() && p.join("metrics.csv").is_file();
    if is_run(path) {
        return vec![path.to_path_buf()];
    }
    let mut found = Vec::new();
    let children = |p: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for child in children(path) {
        if is_run(&child) {
            found.push(child);
        } else {
            found.extend(children(&child).into_iter().filter(|g| is_run(g)));
        }
    }
    found
}

pub(crate) fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

pub(crate) fn cell(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    match mean_std(values) {
        (m, Some(s)) => format!("{m:.digits$} ± {s:.digits$}"),
        (m, None) => format!("{m:.digits$}"),
    }
}

fn nll(s: &VaeSummary) -> Option<f64> {
    Some(s.test.nll)
}

fn parameters(s: &VaeSummary) -> String {
    s.parameters.map(|p| p.to_string()).unwrap_or_default()
}

/// One row of the comparison: a model and its seeds.
struct Group<'a> {
    runs: Vec<&'a RunRecord>,
}

impl Group<'_> {
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

/// The test NLL of each run by seed.
fn nll_by_seed(group: &Group) -> BTreeMap<u64, f64> {
    group
        .runs
        .iter()
        .filter_map(|r| {
            let s = r.summary.vae()?;
            Some((s.seed, s.test.nll))
        })
        .collect()
}

/// Δ NLL against the baseline. When every run has a baseline run of the same seed, the mean
/// (± std from two seeds on) of those per-seed differences (paired: seed effects common to both cancel);
/// otherwise the difference of the means.
fn delta_cell(group: &Group, base: &Group) -> String {
    let (mine, theirs) = (nll_by_seed(group), nll_by_seed(base));
    let paired: Vec<f64> = mine
        .iter()
        .filter_map(|(seed, v)| theirs.get(seed).map(|b| v - b))
        .collect();
    if !paired.is_empty() && paired.len() == group.runs.len() {
        return match mean_std(&paired) {
            (m, Some(s)) => format!("{m:+.2} ± {s:.2} (paired)"),
            (m, None) => format!("{m:+.2} (paired)"),
        };
    }
    let mean = |g: &Group| mean_std(&g.values(nll)).0;
    format!("{:+.2}", mean(group) - mean(base))
}

/// Writes `comparison.md`, `comparison.csv` and plots into `out`; returns the Markdown.
///
/// Density runs get their own table (log-likelihoods, higher is better); a mix of density
/// and Flow-VAE runs is refused.
pub fn compare(runs: &[RunRecord], out: &Path, baseline: Option<&str>) -> Result<String> {
    let is_density = |r: &RunRecord| matches!(r.summary, RunSummary::Density(_));
    if runs.iter().any(is_density) {
        if !runs.iter().all(is_density) {
            return Err(RunnerError::Config {
                file: out.to_path_buf(),
                location: None,
                message: "density runs and Flow-VAE runs report different quantities; \
                          compare each kind on its own"
                    .into(),
            });
        }
        return super::density_compare::compare_density(runs, out, baseline);
    }
    let mut groups: BTreeMap<(usize, String), Group> = BTreeMap::new();
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    // The baseline's row first, the others in the order their runs were found.
    let is_baseline = |r: &&RunRecord| baseline.is_some_and(|b| r.label == b);
    let ordered = runs
        .iter()
        .filter(is_baseline)
        .chain(runs.iter().filter(|r| !is_baseline(r)));
    for run in ordered {
        let next = order.len();
        let index = *order.entry(run.group_key.clone()).or_insert(next);
        groups
            .entry((index, run.label.clone()))
            .or_insert(Group { runs: Vec::new() })
            .runs
            .push(run);
    }
    let samples = runs
        .first()
        .and_then(|r| r.summary.vae())
        .map_or(0, |s| s.test.nll_samples);
    let data = runs
        .first()
        .and_then(|r| r.summary.vae())
        .map(|s| s.data.clone())
        .unwrap_or_default();
    let base_group = baseline
        .and_then(|b| groups.iter().find(|((_, l), _)| l == b))
        .map(|(_, g)| g);
    let mut md = table_header(samples, &data, base_group.is_some());
    let mut csv = String::from(CSV_HEADER);
    let mut bars = Vec::new();
    for ((_, label), group) in &groups {
        md.push_str(&markdown_row(label, group, base_group));
        csv.push_str(&csv_row(label, group, samples));
        let (nll_mean, nll_std) = mean_std(&group.values(nll));
        bars.push((label.clone(), nll_mean, nll_std));
    }
    std::fs::create_dir_all(out.join("plots"))
        .map_err(|e| RunnerError::io(out, "cannot create plots/", e))?;
    write_atomic(&out.join("comparison.md"), md.as_bytes())?;
    write_atomic(&out.join("comparison.csv"), csv.as_bytes())?;
    write_plots(runs, out, samples, &bars)?;
    Ok(md)
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
fn markdown_row(label: &str, group: &Group, base_group: Option<&Group>) -> String {
    let mut row = format!(
        "| {label} | {} | {} | {} | {} |",
        group.text(|s| s.flow.clone()),
        group.text(parameters),
        group.runs.len(),
        cell(&group.values(nll), 2)
    );
    match base_group {
        Some(base) if std::ptr::eq(base, group) => row.push_str("  |"),
        Some(base) => row.push_str(&format!(" {} |", delta_cell(group, base))),
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
fn csv_row(label: &str, group: &Group, samples: usize) -> String {
    let (nll_mean, nll_std) = mean_std(&group.values(nll));
    format!(
        "{label},\"{}\",{},{},{nll_mean},{},{samples},{},{},{},{},{}\n",
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

/// Overlaid validation curves (one per run) and the NLL bars, as PNG and SVG.
fn write_plots(
    runs: &[RunRecord],
    out: &Path,
    samples: usize,
    bars: &[(String, f64, Option<f64>)],
) -> Result<()> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| Series {
            name: format!(
                "{} (seed {})",
                r.label,
                r.summary.seed().map_or("?".into(), |s| s.to_string())
            ),
            points: r.val_curve.clone(),
        })
        .collect();
    for ext in ["png", "svg"] {
        line_chart(
            &out.join(format!("plots/compare_curves.{ext}")),
            "validation -ELBO",
            "epoch",
            "-ELBO (nats)",
            &series,
        )?;
        bar_chart(
            &out.join(format!("plots/compare_nll.{ext}")),
            &format!("test NLL (S = {samples})"),
            "nats",
            bars,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
