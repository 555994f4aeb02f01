//! `objective.free_bits` from the command line: it reaches training (a floor the KL never
//! reaches leaves the KL term without gradient, so the run trains differently), the run's
//! config records it, and a bad value is refused before any run folder exists.

mod common;

use common::{flowvae, succeeds};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The quickstart's VAE for 3 epochs with the extra `--set`s; its metrics.csv text.
fn train(results: &std::path::Path, id: &str, extra: &[&str]) -> String {
    let mut sets = vec![
        "variants=[{name: vae, flow: []}]",
        "train.epochs=3",
        "objective.warmup_epochs=0",
        "eval.nll_samples=8",
    ];
    sets.extend_from_slice(extra);
    let mut command = flowvae();
    command
        .current_dir(REPO)
        .args([
            "run",
            "experiments/quickstart.yaml",
            "--run-id",
            id,
            "--results",
        ])
        .arg(results);
    for set in sets {
        command.args(["--set", set]);
    }
    succeeds(&mut command);
    let run = results.join("quickstart").join(id).join("vae");
    std::fs::read_to_string(run.join("metrics.csv")).unwrap()
}

#[test]
fn free_bits_change_training_and_bad_values_are_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let plain = train(&results, "plain", &[]);
    let floored = train(&results, "floored", &["objective.free_bits={nats: 1000}"]);
    // A floor above every KL leaves the KL term without gradient. (Even a floor of 0 can
    // bind: a batch's Monte Carlo KL can be negative. `crates/vae/tests/free_bits.rs` checks
    // the objective itself on both sides of the floor.)
    assert_ne!(columns(&plain), columns(&floored));
    let config =
        std::fs::read_to_string(results.join("quickstart/floored/vae/config.yaml")).unwrap();
    assert!(config.contains("free_bits"), "{config}");

    let fresh = dir.path().join("fresh");
    for (sets, expected) in [
        (
            vec!["objective.free_bits={nats: -1}"],
            "objective.free_bits.nats: must be a finite number ≥ 0",
        ),
        (
            vec![
                "objective.free_bits={nats: 1}",
                "objective.bound=importance_weighted",
            ],
            "objective.free_bits: applies to the ELBO",
        ),
        (
            vec!["objective.free_bits={bits: 1}"],
            "unknown field `bits`",
        ),
    ] {
        let mut command = flowvae();
        command
            .current_dir(REPO)
            .args(["run", "experiments/quickstart.yaml", "--results"])
            .arg(&fresh);
        for set in &sets {
            command.args(["--set", set]);
        }
        let output = command.output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && err.contains(expected),
            "{sets:?}: {err}"
        );
    }
    assert!(!fresh.exists(), "a refused run left a folder");
}

/// metrics.csv without its wall-clock column.
fn columns(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_string())
        .collect()
}
