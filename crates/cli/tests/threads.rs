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
