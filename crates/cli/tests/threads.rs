//! The number of worker threads changes the speed, never the numbers.

mod common;

/// `final_neg_elbo` of a short benchmark run (the benchmark model: 784-512-256 MLPs, planar
/// K = 4, big enough for the parallel products, Adam chunks and planar rows) on synthetic data.
fn final_neg_elbo(workers: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let line = common::succeeds(
        common::flowvae()
            .args([
                "bench", "train", "--k", "4", "--steps", "6", "--warmup", "1", "--json",
            ])
            .arg("--data")
            .arg(dir.path().join("no-such-data"))
            .env("FLOWVAE_THREADS", workers.to_string())
            .env_remove("RAYON_NUM_THREADS"),
    );
    let json: serde_json::Value =
        serde_json::from_str(line.trim().lines().last().unwrap()).unwrap();
    assert_eq!(json["threads"], workers);
    json["final_neg_elbo"].as_f64().unwrap()
}

#[test]
fn one_two_and_three_workers_train_to_the_same_bits() {
    let one = final_neg_elbo(1);
    assert!(one.is_finite());
    assert_eq!(one.to_bits(), final_neg_elbo(2).to_bits());
    assert_eq!(one.to_bits(), final_neg_elbo(3).to_bits());
}

/// Environment switches are typed at the front end: an unknown value is refused, naming the
/// variable and what it accepts, before anything runs.
#[test]
fn unknown_runtime_switches_are_refused_with_the_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack.yaml");
    std::fs::write(&stack, "- planar: {k: 2}\n").unwrap();
    for (var, value, needles) in [
        (
            "FLOWVAE_UNFUSED",
            "planar,plannar",
            &["FLOWVAE_UNFUSED", "`plannar`", "sylvester"][..],
        ),
        (
            "FLOWVAE_THREADS",
            "two",
            &["FLOWVAE_THREADS", "positive whole number"][..],
        ),
        (
            "FLOWVAE_FAULT",
            "segv@now",
            &["FLOWVAE_FAULT", "enospc@"][..],
        ),
    ] {
        let out = common::flowvae()
            .args(["check", stack.to_str().unwrap()])
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {err}");
        for n in needles {
            assert!(err.contains(n), "{var}={value}: `{n}` missing from {err}");
        }
    }
    // Known values run, and the fused and unfused kernels agree within the check's tolerance.
    let out = common::flowvae()
        .args(["check", stack.to_str().unwrap()])
        .env("FLOWVAE_UNFUSED", "all")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
