//! Reliability regressions: user-given names never reach outside their folder, every file we
//! read back is verified, sizes are refused before anything is allocated, and a resumed run
//! repairs or refuses an inconsistent folder instead of leaving a silent gap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

use common::{fails_with, finished_run, output as flowvae, vae_yaml, write};

/// Every file and folder under `root` with its bytes (folders as empty), to compare.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut seen = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path.clone());
                seen.insert(path, Vec::new());
            } else if kind.is_symlink() {
                seen.insert(
                    path.clone(),
                    std::fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                seen.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    seen
}

/// A folder that looks like a finished flowvae run, made by hand (no training needed).
fn fake_run(dir: &Path) {
    write(dir, "config.yaml", b"name: t\n");
    write(dir, "metrics.csv", b"epoch\n0\n");
}

#[test]
fn run_ids_and_names_never_touch_anything_outside_their_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let results = root.join("results");
    fake_run(&results.join("t/earlier"));
    write(&results, "keep.txt", b"results");
    let outside = root.join("outside");
    write(&outside, "keep.txt", b"outside");
    write(&results.join("t/notarun"), "data.txt", b"not a run");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, results.join("t/link")).unwrap();
    let exp = write(root, "exp.yaml", vae_yaml("digits", "").as_bytes());
    let before = snapshot(root);

    let long = "x".repeat(300);
    let absolute = outside.display().to_string();
    let bad_ids = [
        "", ".", "..", "../x", "../../x", "a/b", "/", &absolute, "a\\b", ".hidden", &long, "x\u{7}",
    ];
    for id in bad_ids {
        for force in [false, true] {
            let mut args = vec!["run", exp.to_str().unwrap(), "--results"];
            args.extend([results.to_str().unwrap(), "--run-id", id]);
            if force {
                args.push("--force");
            }
            let out = flowvae(&args, &[]);
            fails_with(&out, &["--run-id"]);
            assert_eq!(
                snapshot(root),
                before,
                "--run-id {id:?} (force {force}) changed files"
            );
        }
    }
    // --force replaces only a real run folder: not a folder without config.yaml, not a link.
    for id in ["notarun", "link"] {
        let mut args = vec!["run", exp.to_str().unwrap(), "--results"];
        args.extend([results.to_str().unwrap(), "--run-id", id, "--force"]);
        fails_with(&flowvae(&args, &[]), &[id, "not a flowvae run folder"]);
        assert_eq!(snapshot(root), before, "--force on {id} changed files");
    }
    // Names in YAML that become folders: the experiment's and a sweep's.
    let named = write(
        root,
        "named.yaml",
        vae_yaml("digits", "")
            .replace("name: t", "name: ../escape")
            .as_bytes(),
    );
    let mut args = vec![
        "run",
        named.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ];
    fails_with(&flowvae(&args, &[]), &["named.yaml", "name"]);
    let sweep = write(
        root,
        "sweep.yaml",
        b"name: ../../escape\nbase: exp.yaml\nseeds: [0]\n",
    );
    args = vec![
        "sweep",
        sweep.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ];
    fails_with(&flowvae(&args, &[]), &["sweep.yaml", "name"]);
    // Files written by the two refused commands above: none.
    let mut after = snapshot(root);
    after.retain(|p, _| !p.ends_with("named.yaml") && !p.ends_with("sweep.yaml"));
    assert_eq!(after, before);
}

#[cfg(unix)]
#[test]
fn a_run_id_that_is_not_utf8_is_refused_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "exp.yaml", vae_yaml("digits", "").as_bytes());
    let before = snapshot(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowvae"))
        .arg("run")
        .arg(&exp)
        .arg("--results")
        .arg(dir.path())
        .arg("--run-id")
        .arg(std::ffi::OsStr::from_bytes(b"r\xff\xfe"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--run-id") && err.contains("UTF-8"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn eval_needs_a_sample_and_never_records_a_non_finite_nll() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    let summary = std::fs::read(run.join("summary.json")).unwrap();
    let out = flowvae(&["eval", run.to_str().unwrap(), "--samples", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--samples"));
    assert_eq!(std::fs::read(run.join("summary.json")).unwrap(), summary);
}

#[test]
fn absurd_sizes_are_refused_before_any_run_folder_or_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let rows = [
        (
            "k.yaml",
            vae_yaml("digits", "flow: [{planar: {k: 1000000000}}]\n"),
            "k",
        ),
        (
            "latent.yaml",
            vae_yaml("digits", "").replace("latent: 2", "latent: 100000000"),
            "latent",
        ),
        (
            "hidden.yaml",
            vae_yaml("digits", "").replacen("[16]", "[4000000000]", 1),
            "hidden",
        ),
        (
            "iw.yaml",
            vae_yaml(
                "digits",
                "objective: {bound: importance_weighted, samples: 1000000}\n",
            ),
            "objective.samples",
        ),
        (
            "nll.yaml",
            vae_yaml("digits", "").replace(
                "nll_samples: 10\n  nll_chunk: 10",
                "nll_samples: 1000000\n  nll_chunk: 1000000",
            ),
            "eval.nll_chunk",
        ),
    ];
    for (name, text, field) in rows {
        let exp = write(dir.path(), name, text.as_bytes());
        let args = [
            "run",
            exp.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ];
        fails_with(&flowvae(&args, &[]), &[field]);
        assert!(!results.exists(), "{name} created a run folder");
    }
    let stack = write(dir.path(), "stack.yaml", b"- planar: {k: 2}\n");
    for (args, flag) in [
        (
            vec!["check", stack.to_str().unwrap(), "--dim", "100000"],
            "--dim",
        ),
        (
            vec!["check", stack.to_str().unwrap(), "--dim", "0"],
            "--dim",
        ),
        (
            vec!["check", stack.to_str().unwrap(), "--batch", "0"],
            "--batch",
        ),
        (vec!["sample", "somewhere", "-n", "100000000"], "-n"),
    ] {
        let out = flowvae(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{args:?}"
        );
    }
}

fn idx_file(magic: u8, dims: &[u32], fill: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, magic];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(std::iter::repeat_n(
        fill,
        dims.iter().product::<u32>() as usize,
    ));
    v
}

#[test]
fn idx_splits_of_different_image_sizes_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("idx");
    write(
        &data,
        "train-images-idx3-ubyte",
        &idx_file(3, &[20, 27, 28], 9),
    );
    write(&data, "train-labels-idx1-ubyte", &idx_file(1, &[20], 1));
    write(
        &data,
        "t10k-images-idx3-ubyte",
        &idx_file(3, &[5, 28, 28], 9),
    );
    write(&data, "t10k-labels-idx1-ubyte", &idx_file(1, &[5], 1));
    let source = format!("\n    idx: {{dir: {}}}", data.display());
    let exp = write(dir.path(), "idx.yaml", vae_yaml(&source, "").as_bytes());
    let results = dir.path().join("results");
    let args = [
        "run",
        exp.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ];
    fails_with(
        &flowvae(&args, &[]),
        &["train-images-idx3-ubyte", "27×28", "t10k-images-idx3-ubyte"],
    );
    assert!(!results.exists());
}

/// A pid no process has: a child that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn resume_cleans_leftovers_repairs_metrics_and_refuses_a_lost_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    let r = run.to_str().unwrap();
    let full = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let truncated: Vec<&str> = full.lines().take(2).collect();
    std::fs::write(run.join("metrics.csv"), truncated.join("\n") + "\n").unwrap();
    let pid = dead_pid();
    let leftovers = [
        run.join(format!("checkpoints/.last.safetensors.{pid}.tmp")),
        run.join(format!(".summary.json.{pid}.tmp")),
    ];
    for f in &leftovers {
        std::fs::write(f, b"half a file").unwrap();
    }
    let out = flowvae(&["run", "--resume", r], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        full
    );
    assert!(std::fs::read_to_string(run.join("run.log"))
        .unwrap()
        .contains("rewritten from it"));
    for f in &leftovers {
        assert!(!f.exists(), "{} is left", f.display());
    }

    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::remove_file(run.join("checkpoints/last.safetensors")).unwrap();
    let kept = snapshot(&run);
    fails_with(
        &flowvae(&["run", "--resume", r], &[]),
        &["last.safetensors", "records 3 epochs"],
    );
    let mut after = snapshot(&run);
    after.remove(&run.join("run.log"));
    let mut kept = kept;
    kept.remove(&run.join("run.log"));
    assert_eq!(after, kept, "a refused resume changed the run");
}

#[test]
fn small_things_a_user_meets() {
    let dir = tempfile::tempdir().unwrap();
    // A byte-order mark is not YAML content.
    let bom = write(
        dir.path(),
        "bom.yaml",
        format!("\u{feff}{}", vae_yaml("digits", "")).as_bytes(),
    );
    let out = flowvae(&["show-config", bom.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A lock whose holder has not written its pid yet.
    let run = finished_run(dir.path());
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::write(run.join(".lock"), b"").unwrap();
    let line = fails_with(
        &flowvae(&["run", "--resume", run.to_str().unwrap()], &[]),
        &["locked", "just starting"],
    );
    assert!(!line.contains("(pid )"), "{line}");
    std::fs::remove_file(run.join(".lock")).unwrap();

    // Pixels outside [0, 1] are refused with line and column.
    let mut row = vec!["0.5"; 64];
    row[2] = "1.5";
    let input = write(
        dir.path(),
        "in.csv",
        format!("{}\n{}\n", vec!["0"; 64].join(","), row.join(",")).as_bytes(),
    );
    let output = dir.path().join("z.csv");
    let args = [
        "transform",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    fails_with(&flowvae(&args, &[]), &["in.csv:2:3", "1.5", "[0, 1]"]);
    assert!(!output.exists());
}
