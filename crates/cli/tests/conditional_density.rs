//! Conditional densities `p(x | c)` and the anomaly study as a user meets them: a class-
//! conditional digits model sampled and scored per class, a CSV conditioned on one of its
//! columns, classes left out of training scored by AUROC, and bad conditions refused before
//! any run folder exists.

mod common;

use std::path::{Path, PathBuf};

use common::{flowvae, succeeds};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const TINY_MAF: &str = "flow=[{maf: {k: 1, hidden: [32]}}, {batch_norm: {}}]";

/// Runs `experiment` as run `id` into `results` with `sets`; returns the run folder.
fn run(results: &Path, experiment: &str, id: &str, sets: &[&str]) -> PathBuf {
    let mut command = flowvae();
    command
        .current_dir(REPO)
        .args(["run", experiment, "--run-id", id, "--results"])
        .arg(results);
    for set in sets {
        command.args(["--set", set]);
    }
    succeeds(&mut command);
    let name = Path::new(experiment).file_stem().unwrap();
    results.join(name).join(id)
}

/// `flowvae <args>` in the repository; its stderr when it failed, `None` when it succeeded.
fn fails(args: &[&str]) -> Option<String> {
    let out = flowvae().current_dir(REPO).args(args).output().unwrap();
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn mean_score(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let values: Vec<f64> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    values.iter().sum::<f64>() / values.len() as f64
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_class_conditional_density_samples_and_scores_each_class() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [TINY_MAF, "train.epochs=10"];
    let experiment = "experiments/density_digits_conditional.yaml";
    let run = run(&dir.path().join("results"), experiment, "c", &sets);
    let condition = &summary(&run)["density"]["condition"];
    assert_eq!(condition, "class labels (one-hot, 10 classes)");
    assert!(run.join("plots/samples.png").is_file());
    let run_arg = run.to_str().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let threes = out("threes.png");
    assert_eq!(
        fails(&[
            "sample",
            run_arg,
            "-n",
            "4",
            "--context",
            "3",
            "--out",
            &threes
        ]),
        None
    );
    assert!(Path::new(&threes).is_file());
    let err = fails(&["sample", run_arg, "--context", "12", "--out", &out("x.png")]).unwrap();
    assert!(
        err.contains("`12` is not a class the run was trained on (0 to 9)"),
        "{err}"
    );
    // Each test image given its own class against all given class 0: its own class must
    // explain the images better.
    let (own, zero) = (out("own.csv"), out("zero.csv"));
    assert_eq!(fails(&["logprob", run_arg, "--output", &own]), None);
    assert_eq!(
        fails(&["logprob", run_arg, "--output", &zero, "--context", "0"]),
        None
    );
    let (own_mean, zero_mean) = (mean_score(Path::new(&own)), mean_score(Path::new(&zero)));
    assert!(
        own_mean > zero_mean + 5.0,
        "own class {own_mean}, class 0 {zero_mean}"
    );
    assert_exported_rows_score_as_the_split(dir.path(), run_arg, &own);
}

/// `rows` exports the exact test split: its threes, scored as a file given class 3, get the
/// scores the split's own rows got (`own`, from `logprob` on the run), and so does the whole
/// export with its label column; a class the run never saw names the row.
fn assert_exported_rows_score_as_the_split(dir: &Path, run_arg: &str, own: &str) {
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let exported = out("test_rows.csv");
    assert_eq!(
        fails(&["rows", run_arg, "--split", "test", "--output", &exported]),
        None
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",x63,label"));
    let threes: Vec<(usize, &str)> = text
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(_, l)| l.ends_with(",3"))
        .map(|(i, l)| (i, l.rsplit_once(',').unwrap().0))
        .collect();
    let threes_csv = dir.join("threes.csv");
    let body: Vec<&str> = threes.iter().map(|(_, l)| *l).collect();
    std::fs::write(&threes_csv, body.join("\n")).unwrap();
    let scored = out("threes_scores.csv");
    let threes_arg = threes_csv.to_str().unwrap();
    let args = [
        "logprob",
        run_arg,
        "--input",
        threes_arg,
        "--context",
        "3",
        "--output",
        &scored,
    ];
    assert_eq!(fails(&args), None);
    let own_scores = std::fs::read_to_string(own).unwrap();
    let own_scores: Vec<&str> = own_scores.lines().skip(1).collect();
    let file_scores = std::fs::read_to_string(&scored).unwrap();
    let file_scores: Vec<&str> = file_scores.lines().skip(1).collect();
    assert!(threes.len() > 5, "{} threes", threes.len());
    for ((i, _), score) in threes.iter().zip(&file_scores) {
        assert_eq!(own_scores[*i], *score, "test row {i}");
    }
    // A file whose rows end with their class scores as the split did; a class the run never
    // saw names the row.
    let with_labels = out("with_labels.csv");
    let args = [
        "logprob",
        run_arg,
        "--input",
        &exported,
        "--output",
        &with_labels,
    ];
    assert_eq!(fails(&args), None);
    let file_scores = std::fs::read_to_string(&with_labels).unwrap();
    let file_scores: Vec<&str> = file_scores.lines().skip(1).collect();
    assert_eq!(file_scores, own_scores);
    let bad_row = dir.join("bad_row.csv");
    std::fs::write(&bad_row, format!("{},12\n", vec!["0.5"; 64].join(","))).unwrap();
    let args = [
        "logprob",
        run_arg,
        "--input",
        bad_row.to_str().unwrap(),
        "--output",
        &out("b.csv"),
    ];
    let err = fails(&args).unwrap();
    assert!(
        err.contains("data row 1: `12` is not a class the run was trained on"),
        "{err}"
    );
}

/// A CSV whose column `c` shifts the other two: `a ~ N(3c, 1)`, `b ~ N(−c, 0.5)`.
fn shifted_table(dir: &Path) -> PathBuf {
    let mut text = String::from("a,b,c\n");
    let mut state = 7u64;
    let mut uniform = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for _ in 0..600 {
        let c = 2.0 * uniform() - 1.0;
        let g = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        let h = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
        text.push_str(&format!("{},{},{c}\n", 3.0 * c + g, -c + 0.5 * h));
    }
    let path = dir.join("shifted.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_csv_column_conditions_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let csv = shifted_table(dir.path());
    let source = format!("data.source.csv.path={}", csv.display());
    let sets = [
        source.as_str(),
        "data.condition={columns: [c]}",
        "flow=[{affine_coupling: {k: 2, hidden: [16]}}]",
        "density.base=diagonal",
        "train.epochs=60",
    ];
    let run = run(
        &dir.path().join("results"),
        "experiments/density_csv.yaml",
        "t",
        &sets,
    );
    let record = std::fs::read_to_string(run.join("preprocess.json")).unwrap();
    assert!(
        record.contains("\"names\": [\n      \"c\"\n    ]"),
        "{record}"
    );
    let test = &summary(&run)["test"];
    // Given c, (a, b) is a Gaussian with log-density −2.36 per row on average (the entropy of
    // N(0, 1) × N(0, 0.25)); without c it is far wider.
    let ll = test["log_likelihood"].as_f64().unwrap();
    assert!(ll > -2.8, "conditional test log-likelihood {ll}");
    let run_arg = run.to_str().unwrap();
    let out = dir.path().join("s.csv");
    let out_arg = out.to_str().unwrap();
    assert_eq!(
        fails(&[
            "sample",
            run_arg,
            "-n",
            "5",
            "--context",
            "0.5",
            "--out",
            out_arg
        ]),
        None
    );
    let err = fails(&[
        "sample",
        run_arg,
        "--context",
        "1,2",
        "--out",
        out_arg,
        "--force",
    ]);
    assert!(err
        .unwrap()
        .contains("expected 1 finite numbers separated by commas, the values of c"));
    // `rows` writes the condition column after the data; scored as a file, the rows get the
    // scores the split's own rows get, and the run's samples carry the conditions they were
    // drawn at: the first test rows'.
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (test_rows, own, file) = (path("test.csv"), path("own.csv"), path("file.csv"));
    assert_eq!(
        fails(&["rows", run_arg, "--split", "test", "--output", &test_rows]),
        None
    );
    assert_eq!(fails(&["logprob", run_arg, "--output", &own]), None);
    assert_eq!(
        fails(&["logprob", run_arg, "--input", &test_rows, "--output", &file]),
        None
    );
    for (a, b) in numbers(&own).iter().zip(numbers(&file)) {
        assert!((a[0] - b[0]).abs() < 1e-3, "{a:?} vs {b:?}");
    }
    assert_transform_and_samples_carry_conditions(dir.path(), &run, &test_rows);
}

/// `transform` writes each row's condition with its features, `--inverse` maps that file
/// straight back under the same conditions, and the run's samples carry the conditions they
/// were drawn at: the first test rows' (`test_rows`, from `rows`).
fn assert_transform_and_samples_carry_conditions(dir: &Path, run: &Path, test_rows: &str) {
    let run_arg = run.to_str().unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (z, back) = (path("z.csv"), path("back.csv"));
    let to_base = ["transform", run_arg, "--input", test_rows, "--output", &z];
    assert_eq!(fails(&to_base), None);
    assert!(std::fs::read_to_string(&z)
        .unwrap()
        .starts_with("z0,z1,c,log_likelihood\n"));
    let to_data = [
        "transform",
        run_arg,
        "--input",
        &z,
        "--inverse",
        "--output",
        &back,
    ];
    assert_eq!(fails(&to_data), None);
    for (x, t) in numbers(&back).iter().zip(numbers(test_rows)) {
        let worst = (0..2).map(|j| (x[j] - t[j]).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-3, "{x:?} vs {t:?}");
    }
    let header = std::fs::read_to_string(test_rows).unwrap();
    assert!(header.starts_with("x0,x1,c\n"), "{}", &header[..20]);
    let samples = std::fs::read_to_string(run.join("samples.csv")).unwrap();
    assert!(samples.starts_with("x0,x1,c\n"), "{}", &samples[..20]);
    let drawn = numbers(run.join("samples.csv").to_str().unwrap());
    let tested = numbers(test_rows);
    assert_eq!(drawn.len(), tested.len().min(64));
    for (d, t) in drawn.iter().zip(&tested) {
        assert!((d[2] - t[2]).abs() < 1e-4, "{d:?} vs {t:?}");
    }
}

/// The numeric rows of a CSV with a header.
fn numbers(p: &str) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(p).unwrap();
    let rows = text.lines().skip(1);
    rows.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn classes_left_out_of_training_are_scored_by_auroc() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [TINY_MAF, "train.epochs=10", "data.exclude_classes=[0]"];
    let run = run(
        &dir.path().join("results"),
        "experiments/density_digits_maf.yaml",
        "a",
        &sets,
    );
    let summary = summary(&run);
    let auroc = summary["test"]["anomaly_auroc"].as_f64().unwrap();
    assert!(auroc > 0.6 && auroc <= 1.0, "AUROC {auroc}");
    assert_eq!(
        summary["density"]["excluded_classes"],
        serde_json::json!([0])
    );
}

#[test]
fn bad_conditions_are_refused_before_any_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let results_arg = results.to_str().unwrap();
    let csv = "experiments/density_csv.yaml";
    let digits = "experiments/density_digits_maf.yaml";
    for (experiment, set, expected) in [
        (
            csv,
            "data.condition=labels",
            "conditions on an image set's classes",
        ),
        (
            digits,
            "data.condition={columns: [a]}",
            "names columns of a CSV source",
        ),
        (
            csv,
            "data.condition={columns: [zz]}",
            "`zz` is not a column of",
        ),
        (
            csv,
            "data.condition={columns: [x0]}",
            "nothing reads the condition",
        ),
        (
            digits,
            "data.exclude_classes=[11]",
            "class 11 does not occur",
        ),
        (
            digits,
            "data.exclude_classes=[0,1,2,3,4,5,6,7,8,9]",
            "no training or validation rows",
        ),
    ] {
        let mut args = vec!["run", experiment, "--results", results_arg, "--set", set];
        if set.contains("x0") {
            args.extend(["--set", "flow=[{lu_linear: {}}]"]);
        }
        let err = fails(&args).unwrap_or_else(|| panic!("{set} was accepted"));
        assert!(err.contains(expected), "{set}: {err}");
    }
    let mismatch = "flow=[{maf: {k: 1, context: 3}}]";
    let args = [
        "run",
        digits,
        "--results",
        results_arg,
        "--set",
        "data.condition=labels",
        "--set",
        mismatch,
    ];
    let err = fails(&args).unwrap();
    assert!(err.contains("flow[0].maf.context: 3 given"), "{err}");
    assert!(!results.exists(), "a refused run left a folder");
}
