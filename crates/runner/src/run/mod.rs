//! One run from its experiment file to its summary: the run folder, training and evaluation
//! of each model (`train.rs`, `eval.rs`), 2-D runs, resuming, and comparisons of variants.

pub(crate) mod density;
pub(crate) mod device;
pub(crate) mod eval;
pub(crate) mod inference_gap;
pub(crate) mod memory;
pub(crate) mod summary;
pub(crate) mod threads;
pub(crate) mod train;
pub(crate) mod two_d;
mod two_d_report;

use std::path::{Path, PathBuf};

use candle_core::Device;
use flowvae_train::{write_atomic, RunDir};

use crate::error::{Result, RunnerError};
use crate::experiment::overrides;
use crate::experiment::Experiment;
use crate::report::records::load_record;
use summary::{ComparisonSummary, RunSummary, Versions};

/// Where and how a run is written.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder holding `<experiment>/<run-id>/`, normally `results`.
    pub results_root: PathBuf,
    /// Run id; default a UTC timestamp.
    pub run_id: Option<String>,
    /// Replace an existing run folder of the same id.
    pub force: bool,
    /// `--set` overrides applied to the experiment file.
    pub overrides: Vec<overrides::Override>,
}

/// Runs the experiment in `path`: validates it, creates the run folder, trains, reports.
/// Returns the run folder.
pub fn run_experiment(path: &Path, options: &RunOptions, device: &Device) -> Result<PathBuf> {
    let experiment = Experiment::load_with(path, &options.overrides)?;
    // Bad data files and sizes that cannot fit are reported before any run folder exists.
    match &experiment {
        Experiment::Vae(exp) => {
            let splits = flowvae_data::load_splits(&exp.data)?;
            memory::check_vae(exp, &splits.train, device)?;
        }
        Experiment::TwoD(exp) => two_d::check_size(exp, device)?,
        Experiment::Density(exp) => {
            let data = density::condition::load(&exp.data)?;
            let width = data.contexts.as_ref().map_or(0, |c| c.fitted.width());
            let store = flowvae_nn::ParamStore::new(exp.seed);
            density::DensityModel::build(exp, (data.splits.train.dim, width), store, device)?;
        }
    }
    let run = RunDir::create(
        &options.results_root,
        experiment.name(),
        options.run_id.as_deref(),
        options.force,
    )?;
    write_atomic(&run.file("config.yaml")?, experiment.to_yaml().as_bytes())?;
    tracing::info!("run folder {}", run.path().display());
    run.log_failure(run_in(&experiment, &run, device, false))?;
    Ok(run.path().to_path_buf())
}

/// Runs (or resumes) a parsed experiment in an open run folder.
pub fn run_in(experiment: &Experiment, run: &RunDir, device: &Device, resume: bool) -> Result<()> {
    match experiment {
        Experiment::TwoD(exp) => {
            two_d::run_2d(exp, run, device)?;
        }
        Experiment::Density(exp) => {
            density::run_density(exp, run, device, resume)?;
        }
        Experiment::Vae(exp) if exp.variants.is_empty() => {
            eval::run_vae(exp, &exp.name, run, device, resume)?;
        }
        Experiment::Vae(exp) => run_variants(exp, run, device, resume)?,
    }
    Ok(())
}

/// `flowvae run --resume <run-dir>`: continues an interrupted run from its last checkpoint
/// (per model of a comparison); finished models are left as they are.
pub fn resume_run(dir: &Path, device: &Device) -> Result<PathBuf> {
    let experiment = Experiment::load(&dir.join("config.yaml"))?;
    let unresumable = match experiment {
        Experiment::TwoD(_) => Some("2-D runs take minutes and are not checkpointed"),
        Experiment::Density(_) => None,
        Experiment::Vae(_) => None,
    };
    if let Some(why) = unresumable {
        return Err(RunnerError::Config {
            file: dir.join("config.yaml"),
            location: None,
            message: format!("{why}: start a new run"),
        });
    }
    let run = RunDir::open(dir)?;
    if run.path().join("summary.json").is_file() {
        tracing::info!("{} is finished; nothing to resume", dir.display());
        return Ok(dir.to_path_buf());
    }
    run.log("resume");
    run.log_failure(run_in(&experiment, &run, device, true))?;
    Ok(dir.to_path_buf())
}

/// Trains every variant of a comparison in its own sub-folder, then writes the comparison.
fn run_variants(
    exp: &crate::experiment::vae::ExperimentVae,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<()> {
    let mut records = Vec::new();
    for (name, single) in exp.expand() {
        let existing = run.path().join(&name);
        if resume && existing.join("summary.json").is_file() {
            records.push(load_record(&existing)?);
            continue;
        }
        tracing::info!("model {name}: flow {}", eval::flow_label(&single));
        let child = if resume && existing.is_dir() {
            RunDir::open(&existing)?
        } else {
            run.child(&name)?
        };
        let text = Experiment::Vae(single.clone()).to_yaml();
        write_atomic(&child.file("config.yaml")?, text.as_bytes())?;
        child.log_failure(eval::run_vae(&single, &name, &child, device, resume))?;
        records.push(load_record(child.path())?);
    }
    let baseline = exp.variants.first().map(|v| v.name.as_str());
    let table = crate::report::compare_into(&records, run.path(), baseline)?;
    println!("{table}");
    RunSummary::Comparison(ComparisonSummary {
        comparison: "comparison.md".into(),
        experiment: exp.name.clone(),
        models: exp.variants.iter().map(|v| v.name.clone()).collect(),
        versions: Some(Versions::current()),
    })
    .write(run.path())?;
    Ok(())
}

/// One line that sums up a finished run, read from its `summary.json`.
pub fn summary_line(run: &Path) -> String {
    let shown = run.display();
    match RunSummary::read(run) {
        Ok(RunSummary::Vae(s)) => {
            let test = &s.test;
            let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
            let seconds = or_nan(s.train_seconds) + s.eval_seconds.unwrap_or(0.0);
            format!(
                "done: {shown}: test NLL {:.3} nats (S = {}, {}), test -ELBO {:.3}, KL {:.3}, {} epochs in {seconds:.0}s",
                test.nll,
                test.nll_samples,
                s.data,
                or_nan(test.neg_elbo),
                or_nan(test.kl),
                s.epochs.map_or("?".into(), |e| e.to_string()),
            )
        }
        Ok(RunSummary::Comparison(_)) => {
            format!("done: {shown}: comparison in {shown}/comparison.md")
        }
        Ok(RunSummary::TwoD(s)) => format!(
            "done: {shown} in {:.1}s; final {}",
            s.wall_seconds,
            serde_json::to_string(&s.final_metrics).unwrap_or_default()
        ),
        Ok(RunSummary::Density(s)) => {
            let bits = s
                .test
                .bits_per_dim
                .map_or(String::new(), |b| format!(", {b:.3} bits/dim"));
            format!(
                "done: {shown}: test log-likelihood {:.3} ± {:.3} nats{bits}, best epoch {} of {} in {:.0}s",
                s.test.log_likelihood, s.test.log_likelihood_se, s.best_epoch, s.epochs, s.train_seconds
            )
        }
        Err(_) => format!("done: {shown}"),
    }
}

#[cfg(test)]
mod version_tests {
    /// The embedded revision is this checkout's HEAD (when the tests are built from one).
    #[test]
    fn summaries_name_the_revision_the_binary_was_built_from() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
        let Some(head) = head.ok().filter(|o| o.status.success()) else {
            return; // built outside a git checkout: nothing to compare with
        };
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        let recorded = super::Versions::current().git.unwrap_or_default();
        assert_eq!(recorded.trim_end_matches("+dirty"), head);
    }
}
