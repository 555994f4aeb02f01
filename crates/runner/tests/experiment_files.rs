//! Every file shipped in `experiments/` parses and validates, so a renamed field or a typo in
//! a study file fails here rather than an hour into someone's run.

use std::path::{Path, PathBuf};

use flowvae_runner::read_stacks;
use flowvae_runner::Experiment;
use flowvae_runner::SweepConfig;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

#[test]
fn every_experiment_file_loads() {
    let files = yaml_files(&experiments_dir());
    assert!(files.len() >= 10, "found only {files:?}");
    for file in files {
        if let Err(e) = Experiment::load(&file) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_sweep_and_stack_file_loads() {
    let sweeps = yaml_files(&experiments_dir().join("sweeps"));
    let stacks = yaml_files(&experiments_dir().join("stacks"));
    assert!(!sweeps.is_empty() && !stacks.is_empty());
    for file in sweeps {
        if let Err(e) = SweepConfig::load(&file) {
            panic!("{e}");
        }
    }
    for file in stacks {
        if let Err(e) = read_stacks(&file) {
            panic!("{e}");
        }
    }
}
