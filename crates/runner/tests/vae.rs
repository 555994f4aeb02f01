//! Flow-VAE runs on the embedded digits, end to end and small enough for CI.

use std::path::{Path, PathBuf};

use flowvae_runner::{compare, find_runs, load_record};
use flowvae_runner::{eval_run, sample_run};
use flowvae_runner::{run_experiment, Device, RunOptions};
use flowvae_train::read_metrics;

fn experiment(dir: &Path, name: &str, flow: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name: {name}\nseed: 5\ndata:\n  source: digits\n  binarization: dynamic\nmodel:\n  latent: 4\n  encoder: {{hidden: [32]}}\n  decoder: {{hidden: [32]}}\nflow: {flow}\ntrain:\n  epochs: 2\n  batch_size: 100\neval:\n  nll_samples: 40\n  nll_chunk: 20\n  nll_batch: 50\n{extra}"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(path: &Path, root: &Path, id: &str) -> PathBuf {
    let options = RunOptions {
        overrides: Vec::new(),
        results_root: root.to_path_buf(),
        run_id: Some(id.into()),
        force: false,
    };
    run_experiment(path, &options, &Device::Cpu).unwrap()
}

/// Metrics without the wall-time column, as bits, for exact comparison.
fn metrics_bits(dir: &Path) -> Vec<Vec<u64>> {
    let (header, rows) = read_metrics(&dir.join("metrics.csv")).unwrap();
    let time = header.iter().position(|h| h == "time_s").unwrap();
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .filter(|(i, _)| *i != time)
                .map(|(_, v)| v.to_bits())
                .collect()
        })
        .collect()
}

#[test]
fn a_two_epoch_run_lowers_the_elbo_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "smoke", "[{planar: {k: 2}}]", "");
    let a = run(&exp, dir.path(), "a");
    let (header, rows) = read_metrics(&a.join("metrics.csv")).unwrap();
    let val = header.iter().position(|h| h == "val_neg_elbo").unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[1][val] < rows[0][val],
        "val -ELBO {} -> {}",
        rows[0][val],
        rows[1][val]
    );
    for file in [
        "config.yaml",
        "summary.json",
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
        "plots/learning_curves.png",
        "plots/learning_curves.svg",
        "plots/samples.png",
        "plots/reconstructions.png",
    ] {
        assert!(a.join(file).is_file(), "missing {file}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let nll = summary["test"]["nll"].as_f64().unwrap();
    let neg_elbo = summary["test"]["neg_elbo"].as_f64().unwrap();
    assert_eq!(summary["test"]["nll_samples"], 40);
    assert!(summary["data"].as_str().unwrap().contains("dynamic"));
    // The importance-sampled NLL is a tighter bound than the single-sample ELBO.
    assert!(
        nll.is_finite() && nll < neg_elbo + 0.5,
        "NLL {nll}, -ELBO {neg_elbo}"
    );
    let b = run(&exp, dir.path(), "b");
    assert_eq!(
        metrics_bits(&a),
        metrics_bits(&b),
        "same seed, different metrics.csv"
    );

    let (nll_again, s) = eval_run(&a, Some(40), &Device::Cpu).unwrap();
    assert_eq!(s, 40);
    assert!(
        (nll_again - nll).abs() < 1e-9,
        "eval reproduces the NLL: {nll_again} vs {nll}"
    );
    let codes = dir.path().join("codes.csv");
    let rows = flowvae_runner::transform(
        &a,
        flowvae_runner::TransformInput::Split("val"),
        &codes,
        false,
        0,
        &Device::Cpu,
    )
    .unwrap();
    let text = std::fs::read_to_string(&codes).unwrap();
    assert_eq!(rows, 200);
    assert!(
        text.starts_with("z0_0,z0_1,z0_2,z0_3,zK_0"),
        "{}",
        &text[..40]
    );
    assert_eq!(text.lines().count(), 201);
    let png = dir.path().join("grid.png");
    sample_run(&a, (9, 1.0, 1), None, &png, &Device::Cpu).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 100);
}

#[test]
fn variants_train_side_by_side_and_end_in_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let variants = "variants:\n  - name: vae\n    flow: []\n  - name: mixed\n    flow:\n      - planar: {k: 2}\n      - affine_coupling: {k: 2, hidden: [16]}\n  - name: iw5\n    flow: []\n    objective: {bound: importance_weighted, samples: 5}\n";
    let exp = experiment(dir.path(), "cmp", "[]", variants);
    let root = run(&exp, dir.path(), "r");
    let table = std::fs::read_to_string(root.join("comparison.md")).unwrap();
    for name in ["| vae |", "| mixed |", "| iw5 |", "S = 40"] {
        assert!(table.contains(name), "{name} missing from\n{table}");
    }
    assert!(
        root.join("plots/compare_curves.png").is_file() && root.join("comparison.csv").is_file()
    );
    let runs = find_runs(&root);
    assert_eq!(runs.len(), 3);
    // Comparing again elsewhere groups nothing (three distinct models) and keeps the baseline.
    let records: Vec<_> = runs.iter().map(|r| load_record(r).unwrap()).collect();
    let md = compare(&records, &dir.path().join("again"), Some("vae")).unwrap();
    // Same seed for all: the differences are paired; the baseline's own cell is empty.
    let vae_row = md.lines().find(|l| l.starts_with("| vae |")).unwrap();
    assert!(
        md.contains("Δ NLL vs baseline") && md.contains("(paired)") && vae_row.contains("|  |"),
        "{md}"
    );
}

#[test]
fn seeds_of_one_model_are_averaged() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    for seed in [1, 2] {
        let exp = experiment(dir.path(), "seeds", "[]", "");
        let text = std::fs::read_to_string(&exp)
            .unwrap()
            .replace("seed: 5", &format!("seed: {seed}"));
        std::fs::write(&exp, text).unwrap();
        let r = run(&exp, dir.path(), &format!("s{seed}"));
        records.push(load_record(&r).unwrap());
    }
    let md = compare(&records, &dir.path().join("cmp"), None).unwrap();
    assert!(md.contains(" ± ") && md.contains("| 2 |"), "{md}");
}

#[test]
fn optimising_q_per_image_measures_the_amortization_gap() {
    use flowvae_runner::{inference_gaps, GapOptions};
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "gaps", "[{planar: {k: 2}}]", "");
    let a = run(&exp, dir.path(), "a");
    let options = GapOptions {
        images: 20,
        steps: 150,
        samples_per_step: 8,
        eval_samples: 200,
        lr: 0.02,
        seed: 1,
    };
    let report = inference_gaps(&a, "test", &options, &Device::Cpu).unwrap();
    // A 2-epoch encoder is not each image's best q: optimising must find better ones.
    assert!(report.amortization_gap > 0.1, "{report:?}");
    let (first, last) = (report.trajectory[0].1, report.trajectory.last().unwrap().1);
    assert!(last > first + 0.1, "{report:?}");
    let unoptimised = GapOptions {
        steps: 0,
        ..options.clone()
    };
    let none = inference_gaps(&a, "test", &unoptimised, &Device::Cpu).unwrap();
    assert_eq!(none.amortization_gap, 0.0, "{none:?}");
    // Same samples: the importance-sampled log p̂ is never below their mean (Jensen).
    assert!(report.approximation_gap >= 0.0, "{report:?}");
    let err = inference_gaps(&a, "tset", &options, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("expected train, val or test"),
        "{err}"
    );
}
