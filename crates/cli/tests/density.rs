//! Density runs as a user meets them: a CSV of their own to a test log-likelihood, samples,
//! Gaussianized features and anomaly scores; images to bits per dimension; and bad input
//! refused in one line before any run folder exists.

mod common;

use std::path::{Path, PathBuf};

use common::{flowvae, succeeds};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A CSV of `rows` seeded rows of a correlated, skewed 3-D density, with a header.
fn table(dir: &Path, rows: usize) -> PathBuf {
    let mut text = String::from("a,b,c\n");
    let mut state = 12345u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for _ in 0..rows {
        let (u, v, w) = (uniform(), uniform(), uniform());
        let g = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        text.push_str(&format!("{},{},{}\n", g, g * g + w, 3.0 * w - g));
    }
    let path = dir.join("table.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `experiment` into `results` as run `id` with `--set` overrides; must succeed.
fn run(results: &Path, experiment: &str, id: &str, sets: &[String]) {
    let mut command = flowvae();
    command
        .current_dir(REPO)
        .args(["run", experiment, "--run-id", id, "--results"]);
    command.arg(results);
    for set in sets {
        command.args(["--set", set]);
    }
    succeeds(&mut command);
}

fn run_table(dir: &Path, csv: &Path) -> PathBuf {
    let results = dir.join("results");
    let flow = "flow=[{rq_coupling: {k: 2, hidden: [16], bins: 4}}, {lu_linear: {}}, \
                {affine_coupling: {k: 2, hidden: [16]}}]";
    let sets = [
        format!("data.source.csv.path={}", csv.display()),
        flow.to_string(),
        "train.epochs=3".to_string(),
    ];
    run(&results, "experiments/density_csv.yaml", "t", &sets);
    results.join("density_csv/t")
}

fn read_rows(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn a_users_csv_gives_a_log_likelihood_samples_features_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table(dir.path(), 400);
    let run = run_table(dir.path(), &csv);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let test = &summary["test"];
    let ll = test["log_likelihood"].as_f64().unwrap();
    assert!(
        ll.is_finite() && test["log_likelihood_se"].as_f64().unwrap() > 0.0,
        "{test}"
    );
    assert_eq!(test["examples"], 40);
    assert!(
        test.get("bits_per_dim").is_none(),
        "a table has no bits per dimension"
    );
    assert_eq!(summary["density"]["dim"], 3);

    // Anomaly scores of the user's rows, and the Gaussianized features there and back.
    let scores = dir.path().join("scores.csv");
    let input = csv.to_str().unwrap();
    let run_s = run.to_str().unwrap();
    succeeds(flowvae().args([
        "logprob",
        run_s,
        "--input",
        input,
        "--output",
        scores.to_str().unwrap(),
    ]));
    assert_eq!(read_rows(&scores).len(), 400);
    let z = dir.path().join("z.csv");
    succeeds(flowvae().args([
        "transform",
        run_s,
        "--input",
        input,
        "--output",
        z.to_str().unwrap(),
    ]));
    let features = read_rows(&z);
    assert_round_trips(dir.path(), run_s, &z, &features, &csv);
    // The scores are the log-likelihoods the features carry.
    let from_scores = read_rows(&scores)[0][0];
    assert!((from_scores - features[0][3]).abs() < 1e-4);

    let samples = dir.path().join("samples.csv");
    succeeds(flowvae().args([
        "sample",
        run_s,
        "-n",
        "7",
        "--temperature",
        "0.7",
        "--out",
        samples.to_str().unwrap(),
    ]));
    assert_eq!(read_rows(&samples).len(), 7);
    assert_bad_flags_are_named(dir.path(), run_s, &scores);
}

#[test]
fn digits_give_bits_per_dimension_and_a_sample_grid() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let sets = [
        "train.epochs=2",
        "flow=[{maf: {k: 1, hidden: [32]}}, {batch_norm: {}}]",
    ];
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    run(&results, "experiments/density_digits_maf.yaml", "d", &sets);
    let run = results.join("density_digits_maf/d");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let bits = summary["test"]["bits_per_dim"].as_f64().unwrap();
    // 17 grey levels: a uniform model is log2(17) = 4.09 bits per dimension.
    assert!(bits > 0.5 && bits < 4.09, "{bits}");
    assert!(run.join("plots/samples.png").is_file() && run.join("plots/curve.png").is_file());
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with("epoch,train_nll,val_log_likelihood"),
        "{metrics}"
    );
    // `rows` exports the test split with a `label` column; `logprob` scores that file by its
    // x0…x63 columns, as it scores the split itself.
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (rows, own, file) = (path("rows.csv"), path("own.csv"), path("file.csv"));
    let run_arg = run.to_str().unwrap();
    succeeds(flowvae().args(["rows", run_arg, "--split", "test", "--output", &rows]));
    let header = std::fs::read_to_string(&rows).unwrap();
    assert!(header.lines().next().unwrap().ends_with(",x63,label"));
    succeeds(flowvae().args(["logprob", run_arg, "--split", "test", "--output", &own]));
    succeeds(flowvae().args(["logprob", run_arg, "--input", &rows, "--output", &file]));
    let (own, file) = (read_rows(Path::new(&own)), read_rows(Path::new(&file)));
    assert_eq!(own.len(), file.len());
    for (a, b) in own.iter().zip(&file) {
        assert!((a[0] - b[0]).abs() < 1e-3, "{a:?} vs {b:?}");
    }
    // Read by name, the pixels are still checked: a grey level of 2 is refused, named.
    let mut lines: Vec<String> = header.lines().map(str::to_string).collect();
    lines[3] = lines[3].replacen("0", "2", 1);
    std::fs::write(&rows, lines.join("\n")).unwrap();
    let out = flowvae()
        .args([
            "logprob",
            run_arg,
            "--input",
            &rows,
            "--output",
            &path("bad.csv"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("of data row 3 is outside [0, 1]"),
        "{err}"
    );
}

#[test]
fn bad_tables_and_settings_are_refused_before_any_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "cell.csv",
            "a,b\n1,2\n3,x\n4,5\n".into(),
            "line 3, value 2: `x` is not a number, expected a number in column `b`",
        ),
        (
            "ragged.csv",
            "a,b\n1,2\n3\n".into(),
            "line 3: got 1 columns",
        ),
        (
            "nan.csv",
            "a,b\n1,2\nNaN,3\n".into(),
            "non-finite value NaN on line 3, value 1",
        ),
        (
            "constant.csv",
            "a,b\n1,2\n1,3\n1,4\n".into(),
            "column 1 is constant",
        ),
        ("empty.csv", "a,b\n".into(), "empty file"),
        ("short.csv", "a,b\n1,2\n3,4\n".into(), "at least 3 rows"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = refused(
            &results,
            &format!("data.source.csv.path={}", path.display()),
        );
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
    for (set, expected) in [
        (
            "density.preprocess={logit: {lambda: 0.01}}",
            "a table takes `standardize` or `none`",
        ),
        (
            "flow=[{sylvester_orthogonal: {k: 1}}]",
            "needs an invertible stack",
        ),
        (
            "density.base={mixture: {components: 0}}",
            "components: must be at least 1",
        ),
    ] {
        let err = refused(&results, set);
        assert!(err.contains(expected), "{set}: {err}");
    }
    assert!(!results.exists(), "a refused run left a folder");
}

/// Runs the density CSV experiment with `set` into `results`; asserts that it failed and
/// returns its stderr.
fn refused(results: &Path, set: &str) -> String {
    let out = flowvae()
        .current_dir(REPO)
        .args(["run", "experiments/density_csv.yaml", "--results"])
        .arg(results)
        .args(["--set", set])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{set} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn density_runs_compare_by_seed_and_refuse_a_mix_with_flow_vaes() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for (flow, name) in [
        ("[{affine: {}}]", "gauss"),
        ("[{maf: {k: 1, hidden: [16]}}]", "maf"),
    ] {
        for seed in ["0", "1"] {
            let sets = [
                "train.epochs=2".to_string(),
                format!("seed={seed}"),
                format!("flow={flow}"),
                format!("name={name}"),
            ];
            let id = format!("{name}{seed}");
            run(&results, "experiments/density_digits_maf.yaml", &id, &sets);
        }
    }
    let out = dir.path().join("cmp");
    let table = succeeds(flowvae().args([
        "compare",
        results.to_str().unwrap(),
        "--baseline",
        "gauss",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        table.contains("test log-likelihood") && table.contains("bits/dim"),
        "{table}"
    );
    let maf_row = table.lines().find(|l| l.starts_with("| maf ")).unwrap();
    assert!(
        maf_row.contains("(paired)") && maf_row.contains("| 2 |"),
        "{maf_row}"
    );
    // Every row has the header's cells, the last being the CPU time (summed over resumes).
    let header = table.lines().find(|l| l.starts_with("| model ")).unwrap();
    assert!(header.ends_with("| CPU time (s) |"), "{header}");
    let cells = |l: &str| l.matches('|').count();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        assert_eq!(cells(line), cells(header), "{line}");
    }
    let csv = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    let cpu_column = csv
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "cpu_seconds_mean");
    let maf_csv = csv.lines().find(|l| l.starts_with("maf,")).unwrap();
    let maf_cpu: f64 = maf_csv.rsplit(',').next().unwrap().parse().unwrap();
    assert!(cpu_column.is_some() && maf_cpu > 0.0, "{csv}");
    assert!(out.join("plots/compare_curves.png").is_file());
    assert!(out.join("plots/compare_delta.png").is_file());
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("test log-likelihood") && report.contains("Δ vs gauss"));
    let vae = std::path::Path::new(REPO).join("results/quickstart/reference");
    let mixed = flowvae()
        .args([
            "compare",
            results.to_str().unwrap(),
            vae.to_str().unwrap(),
            "--out",
        ])
        .arg(dir.path().join("mixed"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        !mixed.status.success() && err.contains("compare each kind on its own"),
        "{err}"
    );
}

/// Back to data through `--inverse` from `transform`'s own output `z` (its log_likelihood
/// column skipped by name) and from a headerless file of the base-space columns alone: both
/// give back the rows of `csv`.
fn assert_round_trips(dir: &Path, run_s: &str, z: &Path, features: &[Vec<f64>], csv: &Path) {
    let z_only: String = features
        .iter()
        .map(|r| format!("{},{},{}", r[0], r[1], r[2]))
        .collect::<Vec<_>>()
        .join("\n");
    let z_file = dir.join("z_only.csv");
    std::fs::write(&z_file, z_only).unwrap();
    let original = read_rows(csv);
    for (i, input) in [z, &z_file].into_iter().enumerate() {
        let back = dir.join(format!("back{i}.csv"));
        succeeds(flowvae().args([
            "transform",
            run_s,
            "--input",
            input.to_str().unwrap(),
            "--inverse",
            "--output",
            back.to_str().unwrap(),
        ]));
        let worst = read_rows(&back)
            .iter()
            .zip(&original)
            .flat_map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            })
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "round trip through the base space: {worst}");
    }
}

/// A zero temperature and a CSV with the wrong number of columns are refused by name.
fn assert_bad_flags_are_named(dir: &Path, run_s: &str, scores: &Path) {
    for (args, expected) in [
        (
            vec!["sample", run_s, "--temperature", "0"],
            "--temperature: must be a positive number",
        ),
        (
            vec![
                "logprob",
                run_s,
                "--input",
                scores.to_str().unwrap(),
                "--output",
                "x.csv",
            ],
            "1 values, expected 3",
        ),
    ] {
        let out = flowvae().current_dir(dir).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{args:?}: {err}"
        );
    }
}
