//! A run's summary names the revision the binary was built from, wherever it is started.

mod common;

use std::process::Command;

#[test]
fn a_run_started_outside_the_checkout_records_the_binarys_revision() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let Some(head) = head.ok().filter(|o| o.status.success()) else {
        return; // built outside a git checkout: nothing to compare with
    };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dir = tempfile::tempdir().unwrap(); // not a git checkout
    let exp = dir.path().join("tiny.yaml");
    std::fs::write(
        &exp,
        "name: tiny\nseed: 1\ndata: {source: digits}\nmodel: {latent: 2, encoder: {hidden: [8]}, decoder: {hidden: [8]}}\ntrain: {epochs: 1}\neval: {nll_samples: 4}\n",
    )
    .unwrap();
    common::succeeds(
        common::flowvae()
            .args(["run", "tiny.yaml", "--results", "out", "--run-id", "r"])
            .current_dir(dir.path()),
    );
    let text = std::fs::read_to_string(dir.path().join("out/tiny/r/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let recorded = summary["versions"]["git"].as_str().unwrap_or("<none>");
    assert_eq!(recorded.trim_end_matches("+dirty"), head, "{text}");
}
