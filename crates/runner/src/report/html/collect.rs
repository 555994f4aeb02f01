//! What a report covers: the finished runs under the folders given, the runs still in
//! progress, sweep points not started, run folders that could not be read, gap reports and
//! the baseline. Everything a user can get wrong ends here as a clear error or as a marked
//! entry of the report.

use std::path::{Path, PathBuf};

use super::gaps::{find_gap_reports, FoundGaps};
use crate::error::{Result, RunnerError};
use crate::experiment::yaml;
use crate::report::compare::check_comparable;
use crate::report::records::{find_runs, find_unfinished, load_record, RunRecord};
use crate::sweep::SweepConfig;

/// A run that has started but has no summary yet.
#[derive(Debug)]
pub(crate) struct Unfinished {
    pub dir: PathBuf,
    /// The model's name: the run folder's name.
    pub label: String,
    /// Epochs written to `metrics.csv` so far.
    pub epochs: usize,
}

/// Everything found for one report.
#[derive(Debug)]
pub(crate) struct Study {
    pub roots: Vec<PathBuf>,
    pub records: Vec<RunRecord>,
    pub unfinished: Vec<Unfinished>,
    /// Sweep points without a run folder yet: (folder, label).
    pub pending: Vec<(String, String)>,
    /// Run folders whose summary or metrics could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    pub gaps: Vec<FoundGaps>,
    pub baseline: Option<String>,
}

/// Finds and reads the runs under `paths`. Fails when a path does not exist, when no
/// finished run is found, when the runs cannot share one table (kinds or data sets differ),
/// or when the baseline named is none of the models.
pub(crate) fn collect(paths: &[PathBuf], baseline: Option<&str>) -> Result<Study> {
    let mut study = Study {
        roots: paths.to_vec(),
        records: Vec::new(),
        unfinished: Vec::new(),
        pending: Vec::new(),
        unreadable: Vec::new(),
        gaps: Vec::new(),
        baseline: None,
    };
    for path in paths {
        if !path.is_dir() {
            return Err(refuse(path, "no such folder".into()));
        }
        for dir in find_runs(path) {
            match load_record(&dir) {
                Ok(record) => study.records.push(record),
                Err(e) => study.unreadable.push((dir, e.to_string())),
            }
        }
        study
            .unfinished
            .extend(find_unfinished(path).into_iter().map(unfinished));
        study.pending.extend(pending_points(path));
    }
    if study.records.is_empty() {
        return Err(refuse(&paths[0], nothing_finished(&study)));
    }
    check_comparable(&study.records, &paths[0])?;
    study.baseline = choose_baseline(&study, baseline)?;
    let mut folders: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    folders.extend(study.records.iter().map(|r| r.dir.as_path()));
    study.gaps = find_gap_reports(&folders);
    Ok(study)
}

fn refuse(path: &Path, message: String) -> RunnerError {
    RunnerError::Config {
        file: path.to_path_buf(),
        location: None,
        message,
    }
}

/// Why there is nothing to report, with what was found instead.
fn nothing_finished(study: &Study) -> String {
    let mut message =
        "no finished run found (a run folder holds summary.json and metrics.csv; searched \
         three levels deep)"
            .to_string();
    if !study.unfinished.is_empty() {
        message.push_str(&format!(
            "; {} run(s) still in progress, e.g. {}",
            study.unfinished.len(),
            study.unfinished[0].dir.display()
        ));
    }
    if let Some((dir, why)) = study.unreadable.first() {
        message.push_str(&format!(
            "; {} run(s) could not be read, e.g. {}: {why}",
            study.unreadable.len(),
            dir.display()
        ));
    }
    message
}

fn unfinished(dir: PathBuf) -> Unfinished {
    let rows = std::fs::read_to_string(dir.join("metrics.csv"))
        .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    Unfinished {
        label: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir,
        epochs: rows,
    }
}

/// Points listed in the `points.csv` of `dir` or of a sweep folder in it whose folder holds
/// no run yet.
fn pending_points(dir: &Path) -> Vec<(String, String)> {
    let mut sweeps: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    sweeps.sort();
    sweeps.insert(0, dir.to_path_buf());
    let named = |s: &PathBuf, folder: String| {
        let sweep = s.strip_prefix(dir).unwrap_or(s);
        sweep.join(folder).display().to_string()
    };
    sweeps
        .iter()
        .flat_map(|s| {
            pending_in(s)
                .into_iter()
                .map(move |(f, l)| (named(s, f), l))
        })
        .collect()
}

fn pending_in(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("points.csv")) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.splitn(3, ',');
            let (_, folder, label) = (parts.next()?, parts.next()?, parts.next()?);
            let started = dir.join(folder).join("config.yaml").is_file();
            (!started).then(|| (folder.to_string(), label.trim_matches('"').to_string()))
        })
        .collect()
}

/// The model every other is compared with: the one asked for, else a sweep's `baseline`,
/// else a model named `vae`, else none.
fn choose_baseline(study: &Study, asked: Option<&str>) -> Result<Option<String>> {
    let has = |label: &str| study.records.iter().any(|r| r.label == label);
    if let Some(asked) = asked {
        if !has(asked) {
            let mut labels: Vec<&str> = study.records.iter().map(|r| r.label.as_str()).collect();
            labels.sort_unstable();
            labels.dedup();
            let message = format!(
                "baseline `{asked}` is none of the models found: {}",
                labels.join(", ")
            );
            return Err(refuse(&study.roots[0], message));
        }
        return Ok(Some(asked.to_string()));
    }
    for root in &study.roots {
        let file = root.join("sweep.yaml");
        if file.is_file() {
            let sweep: SweepConfig = yaml::load(&file)?;
            if let Some(b) = sweep.baseline.filter(|b| has(b)) {
                return Ok(Some(b));
            }
        }
    }
    Ok(has("vae").then(|| "vae".to_string()))
}
