//! 2-D experiments end to end: bad input is refused with file, line and field; small runs
//! write their whole run folder and repeat exactly for the same seed.

use std::path::{Path, PathBuf};

use flowvae_runner::{check_file, CheckOptions};
use flowvae_runner::{run_experiment, Device, RunOptions, RunnerError};
use flowvae_train::{read_metrics, TrainError};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEAD: &str = "name: tiny\nseed: 3\ntarget:\n  energy: u1\n";

fn options(root: &Path, run_id: &str) -> RunOptions {
    RunOptions {
        results_root: root.to_path_buf(),
        run_id: Some(run_id.into()),
        force: false,
        overrides: Vec::new(),
    }
}

#[test]
fn bad_experiment_files_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown_key.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: 3, kk: 2}}\n"),
            "6:",
            "flow[0].planar.kk",
            "unknown field",
        ),
        (
            "wrong_type.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: 2}}\ntrain:\n  steps: many\n"),
            "8:",
            "train.steps",
            "invalid type",
        ),
        (
            "negative_k.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: -3}}\n"),
            "6:",
            "flow[0].planar.k",
            "-3",
        ),
        (
            "zero_k.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: 0}}\n"),
            "6:",
            "flow[0].planar.k",
            "at least 1",
        ),
        (
            "unknown_flow.yaml",
            format!("{HEAD}flow:\n  - plnar: {{k: 3}}\n"),
            "6:",
            "plnar",
            "expected one of `planar`",
        ),
        (
            "bad_lr.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: 2}}\noptimizer:\n  lr: -1\n"),
            "8:",
            "optimizer.lr",
            "> 0",
        ),
        (
            "top_level.yaml",
            format!("{HEAD}flow:\n  - planar: {{k: 2}}\nlearning: 3\n"),
            "7:",
            "learning",
            "expected one of",
        ),
        (
            "empty_stack.yaml",
            format!("{HEAD}flow: []\n"),
            "5:",
            "flow",
            "empty",
        ),
    ];
    for (name, text, line, field, what) in cases {
        let path = write(dir.path(), name, &text);
        let err = run_experiment(&path, &options(dir.path(), "r"), &Device::Cpu).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RunnerError::Config { .. }), "{name}: {msg}");
        assert!(
            msg.contains(&format!("{name}:{line}")),
            "{name}: no line in `{msg}`"
        );
        assert!(msg.contains(field) && msg.contains(what), "{name}: `{msg}`");
        assert!(
            !dir.path().join("tiny").exists(),
            "{name}: a run folder was created"
        );
    }
    let missing = run_experiment(
        &dir.path().join("nope.yaml"),
        &options(dir.path(), "r"),
        &Device::Cpu,
    );
    assert!(missing.unwrap_err().to_string().contains("nope.yaml"));
}

fn tiny_energy(dir: &Path) -> PathBuf {
    let text = format!("{HEAD}flow:\n  - planar: {{k: 2}}\n  - radial: {{k: 1}}\ntrain:\n  steps: 30\n  batch_size: 32\n  beta_warmup_steps: 10\n  log_every: 5\nplot:\n  grid: 24\n  samples: 300\n");
    write(dir, "tiny_energy.yaml", &text)
}

#[test]
fn an_energy_run_writes_its_folder_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny_energy(dir.path());
    let a = run_experiment(&exp, &options(dir.path(), "a"), &Device::Cpu).unwrap();
    for file in [
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "checkpoints/final.safetensors",
        "plots/density.png",
        "plots/samples.png",
        "plots/loss.png",
    ] {
        assert!(a.join(file).is_file(), "missing {file}");
    }
    assert!(!a.join(".lock").exists(), "the lock outlived the run");
    // The resolved config is itself a valid experiment with every default filled in.
    let resolved = std::fs::read_to_string(a.join("config.yaml")).unwrap();
    assert!(
        resolved.contains("lr:") && resolved.contains("planar"),
        "{resolved}"
    );
    let b = run_experiment(
        &a.join("config.yaml"),
        &options(dir.path(), "b"),
        &Device::Cpu,
    )
    .unwrap();
    let (header, rows_a) = read_metrics(&a.join("metrics.csv")).unwrap();
    let (_, rows_b) = read_metrics(&b.join("metrics.csv")).unwrap();
    let time = header.iter().position(|h| h == "time_s").unwrap();
    let strip = |rows: Vec<Vec<f64>>| -> Vec<Vec<u64>> {
        rows.into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != time)
                    .map(|(_, v)| v.to_bits())
                    .collect()
            })
            .collect()
    };
    assert_eq!(rows_a.len(), 6);
    assert_eq!(strip(rows_a), strip(rows_b), "same seed, different metrics");
    // A run id that exists is refused and its files are kept.
    let again = run_experiment(&exp, &options(dir.path(), "a"), &Device::Cpu).unwrap_err();
    assert!(
        matches!(again, RunnerError::Train(TrainError::RunExists(_))),
        "{again}"
    );
    assert!(a.join("metrics.csv").is_file());
}

#[test]
fn density_estimation_lowers_the_test_nll() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: moons\nseed: 1\ntarget:\n  samples: two_moons\nflow:\n  - act_norm: {}\n  - affine_coupling: {k: 4, hidden: [32, 32]}\noptimizer:\n  lr: 0.005\ntrain:\n  steps: 150\n  batch_size: 128\n  log_every: 10\n  test_samples: 500\nplot:\n  grid: 24\n  samples: 300\n";
    let exp = write(dir.path(), "moons.yaml", text);
    let run = run_experiment(&exp, &options(dir.path(), "r"), &Device::Cpu).unwrap();
    let (header, rows) = read_metrics(&run.join("metrics.csv")).unwrap();
    let col = header.iter().position(|h| h == "test_nll").unwrap();
    // The test NLL of a 2-D flow moves by ±0.1 from log to log (500 test points, batch 128):
    // the best of the last five logs, not the very last, says whether training got somewhere.
    let first = rows[0][col];
    let late = rows[rows.len() - 5..].iter().map(|r| r[col]);
    let best_late = late.fold(f64::INFINITY, f64::min);
    assert!(
        best_late < first - 0.2,
        "test NLL went from {first} to at best {best_late} in the last five logs"
    );
}

#[test]
fn density_estimation_refuses_a_stack_without_inverse() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: s\ntarget:\n  samples: rings\nflow:\n  - sylvester_orthogonal: {k: 1}\n";
    let exp = write(dir.path(), "s.yaml", text);
    let err = run_experiment(&exp, &options(dir.path(), "r"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("invertible"), "{err}");
}

#[test]
fn check_passes_a_mixed_stack_file_and_reports_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let stack = "- planar: {k: 2}\n- affine_coupling: {k: 2, hidden: [8]}\n- sylvester_orthogonal: {k: 1, m: 2}\n- act_norm: {}\n";
    let path = write(dir.path(), "stack.yaml", stack);
    let outcome = check_file(
        &path,
        &CheckOptions {
            dim: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    let outcome = &outcome[0];
    assert!(outcome.passed(), "{}", outcome.table());
    assert_eq!(outcome.reports.len(), 2 + 2 + 1 + 1 + 1);
    let amortized = check_file(
        &path,
        &CheckOptions {
            amortized: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(amortized[0].passed(), "{}", amortized[0].table());
    let strict = check_file(
        &path,
        &CheckOptions {
            tolerance: 0.0,
            dim: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        !strict[0].passed(),
        "a zero tolerance cannot pass rounding errors"
    );
}

/// A learned base (diagonal or mixture) trains with the flow and is kept in the resolved
/// config; the default standard normal is left out of it.
#[test]
fn a_learned_base_trains_and_is_recorded_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let body = "target:\n  samples: two_moons\nflow:\n  - affine_coupling: {k: 2, hidden: [8]}\ntrain:\n  steps: 20\n  batch_size: 32\n  log_every: 10\n";
    for (name, base, kept) in [
        ("mog", "base: {mixture: {components: 3}}\n", Some("mixture")),
        ("diag", "base: diagonal\n", Some("diagonal")),
        ("plain", "", None),
    ] {
        let text = format!("name: {name}\nseed: 1\n{base}{body}");
        let exp = write(dir.path(), &format!("{name}.yaml"), &text);
        let run = run_experiment(&exp, &options(dir.path(), "r"), &Device::Cpu).unwrap();
        let config = std::fs::read_to_string(run.join("config.yaml")).unwrap();
        assert_eq!(config.contains("base:"), kept.is_some(), "{config}");
        if let Some(kind) = kept {
            assert!(config.contains(kind), "{config}");
        }
    }
    let bad = write(
        dir.path(),
        "bad.yaml",
        &format!("name: bad\nbase: {{mixture: {{components: 0}}}}\n{body}"),
    );
    let err = run_experiment(&bad, &options(dir.path(), "r"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("base.mixture.components"), "{err}");
}
