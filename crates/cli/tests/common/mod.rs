//! What the CLI test files share: the binary under test, and asserting that it succeeded.
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `flowvae` binary of this build, with warnings-only logging and no stdin.
pub fn flowvae() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowvae"));
    command.env("RUST_LOG", "warn").stdin(Stdio::null());
    command
}

/// Runs `command`, asserts that it succeeded (showing its stdout and stderr otherwise) and
/// returns its stdout.
pub fn succeeds(command: &mut Command) -> String {
    let out = command.output().expect("the flowvae binary starts");
    assert_succeeded(&out)
}

/// Asserts that `out` is a success (showing its stdout and stderr otherwise); returns stdout.
pub fn assert_succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flowvae failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the binary with `args` and extra environment, error-level logging; its output.
pub fn output(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowvae"));
    c.args(args).env("RUST_LOG", "error");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Asserts a failure with exactly one error line containing every `needle`.
pub fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected a failure, got success: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` missing from: {}", lines[0]);
    }
    lines[0].to_string()
}

/// A tiny Flow-VAE experiment on `source` (3 epochs, latent 2), `extra` appended.
pub fn vae_yaml(source: &str, extra: &str) -> String {
    format!("name: t\nseed: 1\ndata:\n  source: {source}\nmodel:\n  latent: 2\n  encoder: {{hidden: [16]}}\n  decoder: {{hidden: [16]}}\ntrain:\n  epochs: 3\n  batch_size: 200\neval:\n  nll_samples: 10\n  nll_chunk: 10\n  nll_batch: 200\n{extra}")
}

/// Writes `bytes` to `dir/name`, creating folders.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `run EXP --results RESULTS --run-id r`.
pub fn run_args<'a>(exp: &'a Path, results: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        exp.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--run-id",
        "r",
    ]
}

/// An IDX u8 images file of `n` images of `side`×`side`.
pub fn idx_images(n: u32, side: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        v.extend(d.to_be_bytes());
    }
    v.extend(std::iter::repeat_n(7u8, (n * side * side) as usize));
    v
}

/// A finished run of [`vae_yaml`] on the digits in `dir/t/r`.
pub fn finished_run(dir: &Path) -> PathBuf {
    let exp = write(dir, "ok.yaml", vae_yaml("digits", "").as_bytes());
    let out = output(&run_args(&exp, dir), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("t/r")
}

/// Data rows of a CSV with a header (0 when it does not exist yet).
pub fn csv_rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Kills `child` (SIGKILL: no chance to clean up) once `run/metrics.csv` holds each of
/// `targets` rows, resuming the run with `flowvae run --resume` after each kill. Returns
/// whether the last process succeeded and how many kills landed before the run finished.
pub fn kill_and_resume(
    mut child: std::process::Child,
    run: &Path,
    targets: &[usize],
) -> (bool, usize) {
    use std::time::{Duration, Instant};
    let mut kills = 0;
    for &target in targets {
        let started = Instant::now();
        while csv_rows(&run.join("metrics.csv")) < target
            && started.elapsed() < Duration::from_secs(120)
        {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        child = flowvae()
            .args(["run", "--resume", run.to_str().unwrap()])
            .spawn()
            .unwrap();
    }
    (child.wait().unwrap().success(), kills)
}

/// A run's `metrics.csv` rows without their last column, the wall time (which differs between
/// runs that are otherwise bit-identical).
pub fn metrics_without_time(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}
