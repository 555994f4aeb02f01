//! Sweeps: a base experiment, a grid over config keys, and seeds. Run locally in N processes
//! (`flowvae sweep x.yaml --jobs N`) or as a Slurm job array (`--slurm`, [`crate::sweep::slurm`]);
//! every grid point is an ordinary run folder, and the sweep ends with a comparison (mean ± std
//! over seeds).

mod local;
pub(crate) mod slurm;

pub use local::{resume_local, run_local, threads_per_job};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::experiment::overrides::Override;
use crate::experiment::yaml;
use crate::experiment::Experiment;
use crate::report::records::{find_runs, load_record};
use crate::Device;
use flowvae_train::{timestamp_id, write_atomic, RunDir};

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Name of the sweep; its folder is `results/<name>/<sweep-id>/`.
    pub name: String,
    /// The base experiment, relative to the sweep file.
    pub base: PathBuf,
    /// Config keys (as for `--set`) and the values to try; every combination is a point.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<serde_yaml::Value>>,
    /// Each point runs once per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// A model of the comparison (e.g. `vae`) that every other model is compared with, seed
    /// by seed (the Δ column); absent: no Δ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// One run of a sweep.
#[derive(Debug, Clone)]
pub struct SweepPoint {
    pub index: usize,
    /// Folder name, e.g. `p01-seed2`.
    pub folder: String,
    /// The model's label in comparisons (the grid values, without the seed).
    pub label: String,
    pub overrides: Vec<Override>,
}

impl SweepConfig {
    /// Reads and validates a sweep file (the base experiment is checked too).
    pub fn load(path: &Path) -> Result<Self> {
        let config: SweepConfig = yaml::load(path)?;
        if let Some(problem) = flowvae_train::plain_name_problem(&config.name) {
            return Err(RunnerError::Config {
                file: path.into(),
                location: None,
                message: format!("name: {problem}"),
            });
        }
        if config.seeds.is_empty() {
            return Err(RunnerError::Config {
                file: path.into(),
                location: None,
                message: "seeds: list at least one seed".into(),
            });
        }
        for point in config.points()? {
            Experiment::load_with(&config.base_path(path), &point.overrides)?;
        }
        Ok(config)
    }

    /// The base experiment's path.
    pub fn base_path(&self, sweep_file: &Path) -> PathBuf {
        sweep_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.base)
    }

    /// Every grid combination × seed, grid keys in sorted order, seeds innermost.
    pub fn points(&self) -> Result<Vec<SweepPoint>> {
        let mut combos: Vec<Vec<(String, serde_yaml::Value)>> = vec![Vec::new()];
        for (key, values) in &self.grid {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut next = c.clone();
                        next.push((key.clone(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        let mut points = Vec::new();
        for (g, combo) in combos.iter().enumerate() {
            // Keys with a single value are settings of the whole sweep, not part of a label.
            let varying: Vec<String> = combo
                .iter()
                .filter(|(k, _)| self.grid.get(k).is_some_and(|v| v.len() > 1))
                .map(|(k, v)| format!("{k}={}", compact(v)))
                .collect();
            let label = if varying.is_empty() {
                "base".to_string()
            } else {
                varying.join(", ")
            };
            for &seed in &self.seeds {
                let mut overrides = Vec::new();
                for (k, v) in combo
                    .iter()
                    .cloned()
                    .chain([("seed".to_string(), serde_yaml::Value::from(seed))])
                {
                    let text = format!("{k}={}", compact(&v));
                    overrides.push(Override {
                        path: k.split('.').map(str::to_string).collect(),
                        value: v,
                        text,
                    });
                }
                points.push(SweepPoint {
                    index: points.len(),
                    folder: format!("p{g:02}-seed{seed}"),
                    label: label.clone(),
                    overrides,
                });
            }
        }
        Ok(points)
    }
}

/// A one-line YAML rendering of a value (flow-style).
fn compact(v: &serde_yaml::Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('"', "")
}

/// Runs point `index` of the sweep in `sweep_dir/<folder>` (what each process or array task
/// does); a folder that exists already is resumed from its checkpoints, a finished one kept.
pub fn run_point(
    sweep_file: &Path,
    index: usize,
    sweep_dir: &Path,
    device: &Device,
) -> Result<PathBuf> {
    let config = SweepConfig::load(sweep_file)?;
    let points = config.points()?;
    let point = points.get(index).ok_or_else(|| RunnerError::Config {
        file: sweep_file.into(),
        location: None,
        message: format!(
            "--index {index} is out of range: the sweep has {} points",
            points.len()
        ),
    })?;
    let experiment = Experiment::load_with(&config.base_path(sweep_file), &point.overrides)?;
    let folder = sweep_dir.join(&point.folder);
    // A folder an earlier worker started is continued from its checkpoints.
    let resume = folder.is_dir();
    let run = if resume {
        let run = RunDir::open(&folder)?;
        if folder.join("summary.json").is_file() {
            return Ok(folder);
        }
        run.log("resume");
        run
    } else {
        if let Experiment::Vae(exp) = &experiment {
            let splits = flowvae_data::load_splits(&exp.data)?;
            crate::run::memory::check_vae(exp, &splits.train, device)?;
        }
        let run = RunDir::create_at(&folder)?;
        write_atomic(&run.file("config.yaml")?, experiment.to_yaml().as_bytes())?;
        run
    };
    let result = match &experiment {
        Experiment::Vae(exp) if exp.variants.is_empty() => {
            crate::run::eval::run_vae(exp, &point.label, &run, device, resume).map(|_| ())
        }
        other => crate::run::run_in(other, &run, device, resume),
    };
    run.log_failure(result)?;
    Ok(run.path().to_path_buf())
}

/// Creates the sweep folder with a copy of the sweep file and the list of points.
pub fn prepare(
    sweep_file: &Path,
    results_root: &Path,
) -> Result<(SweepConfig, Vec<SweepPoint>, PathBuf)> {
    let config = SweepConfig::load(sweep_file)?;
    let points = config.points()?;
    let parent = results_root.join(&config.name);
    std::fs::create_dir_all(&parent).map_err(|e| RunnerError::io(&parent, "cannot create", e))?;
    let mut dir = parent.join(timestamp_id());
    let mut n = 2;
    while dir.exists() {
        dir = parent.join(format!("{}-{n}", timestamp_id()));
        n += 1;
    }
    std::fs::create_dir(&dir)
        .map_err(|e| RunnerError::io(&dir, "cannot create the sweep folder", e))?;
    // Workers read these copies, so editing the originals while jobs wait changes nothing.
    let base = config.base_path(sweep_file);
    let base_text =
        std::fs::read_to_string(&base).map_err(|e| RunnerError::io(&base, "cannot read", e))?;
    write_atomic(&dir.join("base.yaml"), base_text.as_bytes())?;
    let mut copy = config.clone();
    copy.base = PathBuf::from("base.yaml");
    write_atomic(&dir.join("sweep.yaml"), yaml::to_string(&copy).as_bytes())?;
    let mut list = String::from("index,folder,label\n");
    for p in &points {
        list.push_str(&format!("{},{},\"{}\"\n", p.index, p.folder, p.label));
    }
    write_atomic(&dir.join("points.csv"), list.as_bytes())?;
    Ok((config, points, dir))
}

/// Compares every finished point of a sweep folder, against the sweep file's `baseline` when
/// it names one (an error lists the models when it names none of them), and writes the
/// folder's `report.html`.
pub fn summarize(dir: &Path) -> Result<String> {
    let sweep_file = dir.join("sweep.yaml");
    let config: SweepConfig = yaml::load(&sweep_file)?;
    let records = find_runs(dir)
        .iter()
        .map(|r| load_record(r))
        .collect::<Result<Vec<_>>>()?;
    if let Some(baseline) = &config.baseline {
        if !records.iter().any(|r| &r.label == baseline) {
            let mut labels: Vec<&str> = records.iter().map(|r| r.label.as_str()).collect();
            labels.sort_unstable();
            labels.dedup();
            return Err(RunnerError::Config {
                file: sweep_file,
                location: None,
                message: format!(
                    "baseline: `{baseline}` is none of the models compared: {}",
                    labels.join(", ")
                ),
            });
        }
    }
    crate::report::compare_into(&records, dir, config.baseline.as_deref())
}
