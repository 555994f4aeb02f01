//! `model.prior` from the command line: a flow prior trains, evaluates and is named in the
//! summary; a bad prior is refused before any run folder exists.

mod common;

use common::{flowvae, succeeds};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[test]
fn a_flow_prior_runs_end_to_end_and_bad_priors_are_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let sets = [
        "model.prior={flow: [{maf: {k: 2, hidden: [16]}}]}",
        "variants=[{name: planar, flow: [{planar: {k: 2}}]}, \
         {name: mog, flow: [], prior: {mixture: {components: 3}}}]",
        "train.epochs=1",
        "eval.nll_samples=8",
    ];
    let mut command = flowvae();
    command
        .current_dir(REPO)
        .args([
            "run",
            "experiments/quickstart.yaml",
            "--run-id",
            "p",
            "--results",
        ])
        .arg(&results);
    for set in sets {
        command.args(["--set", set]);
    }
    succeeds(&mut command);
    let summary =
        std::fs::read_to_string(results.join("quickstart/p/planar/summary.json")).unwrap();
    assert!(
        summary.contains("planar(k=2); prior: flow maf(hidden=[16], k=2)"),
        "{summary}"
    );
    // A comparison run writes its HTML report beside its table.
    let page = std::fs::read_to_string(results.join("quickstart/p/report.html")).unwrap();
    assert!(
        page.contains("mog") && page.contains("planar"),
        "report lacks a model"
    );
    // A variant's own prior replaces the experiment's.
    let mog = std::fs::read_to_string(results.join("quickstart/p/mog/summary.json")).unwrap();
    assert!(mog.contains("none (VAE); prior: mixture(3)"), "{mog}");
    let out = dir.path().join("s.png");
    succeeds(
        flowvae()
            .args(["sample"])
            .arg(results.join("quickstart/p/planar"))
            .args(["-n", "4", "--out"])
            .arg(&out),
    );
    assert!(out.is_file());

    let fresh = dir.path().join("fresh");
    for (prior, expected) in [
        (
            "{vamp: {pseudo_inputs: 0}}",
            "model.prior.vamp.pseudo_inputs: must be between 1",
        ),
        (
            "{mixture: {components: 0}}",
            "model.prior.mixture.components: must be between 1",
        ),
        (
            "{flow: [{iaf: {k: 1, context: 8}}]}",
            "reads an encoder context",
        ),
    ] {
        let output = flowvae()
            .current_dir(REPO)
            .args(["run", "experiments/quickstart.yaml", "--results"])
            .arg(&fresh)
            .args(["--set", &format!("model.prior={prior}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && err.contains(expected),
            "{prior}: {err}"
        );
    }
    assert!(!fresh.exists(), "a refused run left a folder");
}
