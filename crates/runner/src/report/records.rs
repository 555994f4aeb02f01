//! Reading run folders back: finding the finished (and the unfinished) runs under a folder,
//! and loading a finished run's summary, validation curve and seed-free config.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::run::summary::RunSummary;
use flowvae_train::read_metrics;

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

/// Finds run folders under `path`: the folder itself when it holds `summary.json` and
/// `metrics.csv`, else every folder below it (three levels deep) that does.
pub fn find_runs(path: &Path) -> Vec<PathBuf> {
    walk(path, &|p| {
        p.join("summary.json").is_file() && p.join("metrics.csv").is_file()
    })
}

/// Runs under `path` (searched as [`find_runs`] does) that have started, writing
/// `metrics.csv`, but have no `summary.json` yet: still training, or stopped.
pub fn find_unfinished(path: &Path) -> Vec<PathBuf> {
    walk(path, &|p| {
        p.join("metrics.csv").is_file() && !p.join("summary.json").is_file()
    })
}

/// How many folder levels below the one given runs are looked for: a study folder holding
/// a sweep folder holding points holding one folder per model.
const DEPTH: usize = 3;

/// `path` itself when `is_run` holds for it, else the folders below it (up to [`DEPTH`]
/// levels) for which it does, in name order; the search does not go below a run.
fn walk(path: &Path, is_run: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk_into(path, is_run, DEPTH, &mut found);
    found
}

fn walk_into(path: &Path, is_run: &dyn Fn(&Path) -> bool, depth: usize, found: &mut Vec<PathBuf>) {
    if is_run(path) {
        found.push(path.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    children.sort();
    for child in children {
        walk_into(&child, is_run, depth - 1, found);
    }
}
