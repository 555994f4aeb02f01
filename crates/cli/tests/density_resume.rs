//! A density run killed mid-way (SIGKILL) and resumed ends exactly as an uninterrupted run:
//! the same metrics, best weights and test log-likelihood, with ActNorm's data-dependent
//! start, BatchNorm's running averages and a class condition in the state carried over.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::flowvae as exe;

const EXPERIMENT: &str = "name: dresume\nseed: 3\ndata:\n  source: digits\n  condition: labels\n\
density:\n  base: diagonal\nflow:\n  - act_norm: {}\n  - maf: {k: 2, hidden: [64]}\n  - batch_norm: {}\n\
optimizer:\n  lr: 0.001\ntrain:\n  epochs: 12\n  batch_size: 50\n";

fn rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

fn start(root: &Path, exp: &Path, id: &str) -> std::process::Child {
    exe()
        .args(["run", exp.to_str().unwrap(), "--results"])
        .arg(root)
        .args(["--run-id", id])
        .spawn()
        .unwrap()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn test_log_likelihood(dir: &Path) -> f64 {
    summary(dir)["test"]["log_likelihood"].as_f64().unwrap()
}

#[test]
fn a_killed_and_resumed_density_run_matches_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("dresume.yaml");
    std::fs::write(&exp, EXPERIMENT).unwrap();
    assert!(start(dir.path(), &exp, "full").wait().unwrap().success());
    let full: PathBuf = dir.path().join("dresume/full");

    let killed = dir.path().join("dresume/killed");
    let mut kills = 0;
    let mut child = start(dir.path(), &exp, "killed");
    for target in [3, 6, 9] {
        let started = Instant::now();
        while rows(&killed.join("metrics.csv")) < target
            && started.elapsed() < Duration::from_secs(120)
        {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            kills += 1;
        }
        child.wait().unwrap();
        child = exe()
            .args(["run", "--resume", killed.to_str().unwrap()])
            .spawn()
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert!(
        kills >= 2,
        "the run finished before it could be killed ({kills} kills)"
    );
    assert_eq!(
        common::metrics_without_time(&full),
        common::metrics_without_time(&killed),
        "metrics differ after {kills} kills"
    );
    let best = |d: &Path| std::fs::read(d.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(best(&full), best(&killed), "best checkpoints differ");
    assert_eq!(test_log_likelihood(&full), test_log_likelihood(&killed));
    // CPU time adds up across the interruptions. The last process alone (3 of 12 epochs and
    // the evaluation) is about 40 % of it; a kill can lose the CPU of an epoch not yet
    // checkpointed, up to about 20 % over three kills.
    let cpu = |d: &Path| summary(d)["cpu_seconds"].as_f64().unwrap();
    assert!(
        cpu(&killed) > 0.6 * cpu(&full),
        "CPU seconds: {} resumed against {} uninterrupted",
        cpu(&killed),
        cpu(&full)
    );
}
