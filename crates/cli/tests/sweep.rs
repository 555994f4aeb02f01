//! A local sweep: 2 flow stacks × 2 seeds in 2 processes, ending in mean ± std; and the
//! Slurm scripts it would submit.

mod common;

use common::{assert_succeeded, flowvae, succeeds};

const BASE: &str = "name: base\nseed: 0\ndata:\n  source: digits\nmodel:\n  latent: 4\n  encoder: {hidden: [32]}\n  decoder: {hidden: [32]}\ntrain:\n  epochs: 2\n  batch_size: 100\neval:\n  nll_samples: 20\n  nll_chunk: 20\n  nll_batch: 100\n";
const SWEEP: &str = "name: tiny_sweep\nbase: base.yaml\ngrid:\n  flow:\n    - []\n    - [{planar: {k: 2}}]\nseeds: [0, 1]\n";

/// A temp folder with the base experiment and the sweep file; the results folder inside it.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
    let sweep = dir.path().join("sweep.yaml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let results = dir.path().join("results");
    (dir, sweep, results)
}

#[test]
fn a_local_sweep_runs_every_point_and_reports_mean_and_std() {
    let (_dir, sweep, results) = setup();
    let out = flowvae()
        .args([
            "sweep",
            sweep.to_str().unwrap(),
            "--jobs",
            "2",
            "--results",
            results.to_str().unwrap(),
        ])
        .env_remove("FLOWVAE_THREADS")
        .output()
        .unwrap();
    let stdout = assert_succeeded(&out);
    assert!(
        stdout.contains("flow=[]") && stdout.contains("flow=[{planar:{k:2}}]"),
        "{stdout}"
    );
    assert!(stdout.matches(" ± ").count() >= 4, "{stdout}");
    assert!(stdout.contains("| 2 |"), "two seeds per row: {stdout}");
    let sweep_dir = std::fs::read_dir(results.join("tiny_sweep"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for point in ["p00-seed0", "p00-seed1", "p01-seed0", "p01-seed1"] {
        assert!(
            sweep_dir.join(point).join("summary.json").is_file(),
            "{point} did not finish"
        );
        assert!(sweep_dir.join(format!("{point}.log")).is_file());
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(sweep_dir.join(point).join("summary.json")).unwrap(),
        )
        .unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            summary["threads"].as_u64(),
            Some(flowvae_runner::threads_per_job(cores, 2) as u64),
            "2 workers share the {cores} cores"
        );
    }
    assert!(sweep_dir.join("comparison.md").is_file());
    let report = std::fs::read_to_string(sweep_dir.join("report.html")).unwrap();
    assert!(
        report.contains("id=\"comparison\""),
        "the sweep's report has its table"
    );

    assert_an_interrupted_sweep_resumes(&sweep_dir);
}

/// An interrupted sweep: one point never started, one started but unfinished, one whose
/// comparison is gone. `--resume` finishes them and keeps the finished point as it was.
fn assert_an_interrupted_sweep_resumes(sweep_dir: &std::path::Path) {
    let kept = std::fs::read(sweep_dir.join("p01-seed1/summary.json")).unwrap();
    let nll = |point: &str| -> f64 {
        let text = std::fs::read_to_string(sweep_dir.join(point).join("summary.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["test"]["nll"]
            .as_f64()
            .unwrap()
    };
    let started_nll = nll("p00-seed1");
    std::fs::remove_dir_all(sweep_dir.join("p00-seed0")).unwrap();
    std::fs::remove_file(sweep_dir.join("p00-seed1/summary.json")).unwrap();
    std::fs::remove_file(sweep_dir.join("comparison.md")).unwrap();
    let out = flowvae()
        .args([
            "sweep",
            "--resume",
            sweep_dir.to_str().unwrap(),
            "--jobs",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = assert_succeeded(&out);
    assert!(
        stdout.contains("| 2 |"),
        "two seeds per row again: {stdout}"
    );
    assert!(sweep_dir.join("p00-seed0/summary.json").is_file());
    assert_eq!(
        nll("p00-seed1"),
        started_nll,
        "the resumed point ends as it was"
    );
    assert_eq!(
        std::fs::read(sweep_dir.join("p01-seed1/summary.json")).unwrap(),
        kept
    );
    assert!(sweep_dir.join("comparison.md").is_file());
}

#[test]
fn the_slurm_mode_writes_an_array_and_a_dependent_comparison() {
    let (_dir, sweep, results) = setup();
    succeeds(flowvae().args([
        "sweep",
        sweep.to_str().unwrap(),
        "--slurm",
        "--cpus-per-task",
        "4",
        "--time",
        "02:00:00",
        "--mem",
        "8G",
        "--results",
        results.to_str().unwrap(),
    ]));
    let sweep_dir = std::fs::read_dir(results.join("tiny_sweep"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let array = std::fs::read_to_string(sweep_dir.join("sweep.sbatch")).unwrap();
    assert!(
        array.contains("#SBATCH --array=0-3") && array.contains("--index \"$SLURM_ARRAY_TASK_ID\""),
        "{array}"
    );
    for line in [
        "#SBATCH --cpus-per-task=4\n",
        "#SBATCH --time=02:00:00\n",
        "#SBATCH --mem=8G\n",
        "export FLOWVAE_THREADS=\"${SLURM_CPUS_PER_TASK:-4}\"\n",
    ] {
        assert!(array.contains(line), "missing {line:?} in {array}");
    }
    let submit = std::fs::read_to_string(sweep_dir.join("submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterok:"), "{submit}");
    let compare = std::fs::read_to_string(sweep_dir.join("compare.sbatch")).unwrap();
    assert!(compare.contains("sweep-summary"), "{compare}");
    // What one array task runs works here too.
    succeeds(flowvae().args([
        "run",
        "--sweep",
        sweep.to_str().unwrap(),
        "--index",
        "3",
        "--sweep-dir",
        sweep_dir.to_str().unwrap(),
    ]));
    assert!(sweep_dir.join("p01-seed1/summary.json").is_file());
    let bad = flowvae()
        .args([
            "run",
            "--sweep",
            sweep.to_str().unwrap(),
            "--index",
            "9",
            "--sweep-dir",
            sweep_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("out of range"));
}

#[test]
fn bad_slurm_resources_are_refused_before_any_folder_exists() {
    let (_dir, sweep, results) = setup();
    let out = flowvae()
        .args(["sweep", sweep.to_str().unwrap(), "--slurm", "--mem", "lots"])
        .args(["--results", results.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--mem: `lots`"),
        "{stderr}"
    );
    assert!(!results.exists(), "no sweep folder for a refused sweep");
    let without_slurm = flowvae()
        .args(["sweep", sweep.to_str().unwrap(), "--time", "02:00:00"])
        .output()
        .unwrap();
    assert!(!without_slurm.status.success(), "--time needs --slurm");
}

/// A sweep over `variants` (how the studies in `experiments/sweeps/` are written) with a
/// `baseline`: the table pairs each model with the baseline seed by seed.
#[test]
fn a_variants_sweep_with_a_baseline_reports_the_paired_difference() {
    let (dir, _sweep, results) = setup();
    let sweep_with = |baseline: &str| {
        let text = format!(
            "name: variants_sweep\nbase: base.yaml\nbaseline: {baseline}\ngrid:\n  variants:\n    - [{{name: vae, flow: []}}]\n    - [{{name: planar_k2, flow: [{{planar: {{k: 2}}}}]}}]\nseeds: [0, 1]\n"
        );
        let path = dir.path().join(format!("sweep_{baseline}.yaml"));
        std::fs::write(&path, text).unwrap();
        flowvae()
            .args(["sweep", path.to_str().unwrap(), "--jobs", "2"])
            .args(["--results", results.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let stdout = assert_succeeded(&sweep_with("vae"));
    let planar = stdout
        .lines()
        .find(|l| l.starts_with("| planar_k2 |"))
        .unwrap();
    assert!(planar.contains("(paired)"), "{stdout}");
    let bad = sweep_with("vea");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{stderr}");
    assert!(
        stderr.contains("baseline: `vea` is none of the models compared: planar_k2, vae"),
        "{stderr}"
    );
}
