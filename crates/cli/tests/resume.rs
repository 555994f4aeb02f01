//! A run killed mid-way (SIGKILL) and resumed ends exactly as an uninterrupted run.

use std::path::{Path, PathBuf};

const EXPERIMENT: &str = "name: resume\nseed: 4\ndata:\n  source: digits\nmodel:\n  latent: 8\n  encoder: {hidden: [128, 128]}\n  decoder: {hidden: [128, 128]}\nflow:\n  - planar: {k: 4}\n  - affine_coupling: {k: 2, hidden: [32]}\nobjective:\n  warmup_epochs: 3\ntrain:\n  epochs: 14\n  batch_size: 20\neval:\n  nll_samples: 30\n  nll_chunk: 15\n  nll_batch: 100\n";

mod common;

use common::flowvae as exe;

fn run(root: &Path, exp: &Path, id: &str) -> PathBuf {
    let status = exe()
        .args([
            "run",
            exp.to_str().unwrap(),
            "--results",
            root.to_str().unwrap(),
            "--run-id",
            id,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    root.join("resume").join(id)
}

#[test]
fn a_killed_and_resumed_run_matches_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("resume.yaml");
    std::fs::write(&exp, EXPERIMENT).unwrap();
    let full = run(dir.path(), &exp, "full");

    let killed = dir.path().join("resume/killed");
    let child = exe()
        .args([
            "run",
            exp.to_str().unwrap(),
            "--results",
            dir.path().to_str().unwrap(),
            "--run-id",
            "killed",
        ])
        .spawn()
        .unwrap();
    // Kill at three different points of training, resuming in between.
    let (succeeded, kills) = common::kill_and_resume(child, &killed, &[3, 6, 9]);
    assert!(succeeded);
    assert!(
        kills >= 2,
        "the run finished before it could be killed ({kills} kills)"
    );
    assert!(!killed.join(".lock").exists());
    assert_eq!(
        common::metrics_without_time(&full),
        common::metrics_without_time(&killed),
        "metrics differ after {kills} kills"
    );
    let best = |d: &Path| std::fs::read(d.join("checkpoints/best.safetensors")).unwrap();
    assert_eq!(best(&full), best(&killed), "best checkpoints differ");
    let nll = |d: &Path| -> f64 {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        s["test"]["nll"].as_f64().unwrap()
    };
    assert_eq!(nll(&full), nll(&killed));
    // CPU time adds up across the interruptions (the last part alone is about 60 %; a kill
    // can lose the CPU of an epoch not yet checkpointed, up to about 20 % over three kills).
    let cpu = |d: &Path| -> f64 {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        s["cpu_seconds"].as_f64().unwrap()
    };
    assert!(
        cpu(&killed) > 0.7 * cpu(&full),
        "CPU seconds: {} resumed against {} uninterrupted",
        cpu(&killed),
        cpu(&full)
    );
    // A finished run resumes to nothing and stays as it is.
    let again = exe()
        .args(["run", "--resume", full.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(
        common::metrics_without_time(&full),
        common::metrics_without_time(&killed)
    );
}
