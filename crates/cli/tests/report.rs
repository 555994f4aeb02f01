//! `flowvae report` end to end on a tiny study (three models, two seeds, real runs of a few
//! seconds): the page's structure, the page in headless Chromium when it is installed, and
//! each kind of bad input the README lists.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{fails_with, output as flowvae, succeeds, vae_yaml, write};

const MODELS: [&str; 3] = ["vae", "planar_k2", "radial_k2"];
const CHROMIUM: &str = "/usr/bin/chromium";

/// The study, trained once for every test of this file: `study/t/s1` and `study/t/s2`, each
/// with one folder per model.
fn study() -> &'static Path {
    static STUDY: OnceLock<PathBuf> = OnceLock::new();
    STUDY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let variants = "variants:\n  - {name: vae, flow: []}\n  - name: planar_k2\n    flow: [{planar: {k: 2}}]\n  - name: radial_k2\n    flow: [{radial: {k: 2}}]\n";
        let exp = write(&dir, "t.yaml", vae_yaml("digits", variants).as_bytes());
        let results = dir.join("study");
        for seed in ["1", "2"] {
            let run_id = format!("s{seed}");
            let set = format!("seed={seed}");
            let args = ["run", exp.to_str().unwrap(), "--results", results.to_str().unwrap()];
            succeeds(flowvae_command(&args).args(["--run-id", &run_id, "--set", &set]));
        }
        results.join("t")
    })
}

fn flowvae_command(args: &[&str]) -> Command {
    let mut command = common::flowvae();
    command.args(args);
    command
}

/// A copy of the study to spoil, in a fresh folder.
fn copy_of_study() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("t");
    let status = Command::new("cp")
        .args(["-r", study().to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    (dir, copy)
}

fn report(paths: &[&Path], html: &Path) -> std::process::Output {
    let mut args = vec!["report".to_string()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    args.extend(["--output".into(), html.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    flowvae(&args, &[])
}

/// The rows of the comparison table's body.
fn table_rows(html: &str) -> Vec<&str> {
    let table = html
        .split("id=\"comparison\"")
        .nth(1)
        .expect("a comparison table");
    let body = table
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap();
    body.split("<tr").skip(1).collect()
}

#[test]
fn the_report_has_one_row_per_model_inline_plots_and_no_network() {
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    let out = report(&[study()], &html_path);
    let stdout = common::assert_succeeded(&out);
    assert!(stdout.contains("3 models, 6 runs"), "{stdout}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    let rows = table_rows(&html);
    assert_eq!(rows.len(), MODELS.len(), "{rows:?}");
    for model in MODELS {
        assert_eq!(
            rows.iter()
                .filter(|r| r.contains(&format!(">{model}<")))
                .count(),
            1
        );
    }
    assert!(
        rows[0].contains("baseline"),
        "the VAE is the default baseline"
    );
    assert_eq!(html.matches("<svg").count(), 2, "the Δ plot and the curves");
    assert!(html.contains("data:image/png;base64,"));
    // Nothing is fetched: no remote source, link or import (the SVG namespace URI is a name).
    for remote in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(remote), "{remote}");
    }
    assert_eq!(html.matches("<pre>").count(), 6, "one config per run");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "no temporary file left"
    );
    check_in_chromium(&html_path, MODELS.len());
}

/// Renders the page in headless Chromium: no console errors, the script ran, the table has
/// `rows` rows, the plots have content, and a screenshot is written. Skipped (with the
/// reason printed) when Chromium is not installed.
fn check_in_chromium(page: &Path, rows: usize) {
    if !Path::new(CHROMIUM).exists() {
        println!("skipped the browser check: {CHROMIUM} not found (apt-get install chromium)");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let chromium = |extra: &[&str]| {
        let mut c = Command::new(CHROMIUM);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2000",
        ])
        .args(extra)
        .arg(&url);
        c.output().expect("chromium starts")
    };
    let dom = chromium(&["--dump-dom"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&dom.stdout),
        String::from_utf8_lossy(&dom.stderr),
    );
    assert!(dom.status.success(), "{stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        stdout.contains("data-sortable=\"ready\""),
        "the script did not run: {stderr}"
    );
    assert_eq!(table_rows(&stdout).len(), rows);
    for svg in stdout.split("<svg").skip(1) {
        let svg = svg.split("</svg>").next().unwrap();
        let marks = svg.matches("<circle").count()
            + svg.matches("<polyline").count()
            + svg.matches("<path").count();
        assert!(
            marks > 5,
            "a plot with almost nothing drawn: {}",
            &svg[..svg.len().min(300)]
        );
    }
    let shot = page.with_file_name("screenshot.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let out = chromium(&[&screenshot, "--hide-scrollbars"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // A blank 1200×2000 page compresses to a few kilobytes.
    assert!(
        bytes.len() > 40_000,
        "screenshot of {} bytes looks blank",
        bytes.len()
    );
}

#[test]
fn an_empty_folder_or_a_missing_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = report(&[dir.path()], &html);
    fails_with(&out, &["no finished run found"]);
    let out = report(&[&dir.path().join("nope")], &html);
    fails_with(&out, &["nope", "no such folder"]);
    assert!(!html.exists());
}

#[test]
fn runs_on_different_data_sets_are_not_paired() {
    let (_dir, copy) = copy_of_study();
    let summary = copy.join("s2/radial_k2/summary.json");
    let text = std::fs::read_to_string(&summary).unwrap();
    let data = text
        .lines()
        .find(|l| l.contains("\"data\""))
        .unwrap()
        .to_string();
    std::fs::write(
        &summary,
        text.replace(&data, "  \"data\": \"Fashion-MNIST\","),
    )
    .unwrap();
    let html = copy.join("report.html");
    let line = fails_with(
        &report(&[&copy], &html),
        &["different data sets", "Fashion-MNIST"],
    );
    assert!(line.contains("radial_k2"), "names a run: {line}");
    assert!(!html.exists());
}

#[test]
fn unfinished_older_and_unreadable_runs_are_marked_not_fatal() {
    let (_dir, copy) = copy_of_study();
    // Still training: no summary yet.
    std::fs::remove_file(copy.join("s2/radial_k2/summary.json")).unwrap();
    // Written by an older flowvae: no CPU time, no versions.
    let old = copy.join("s2/planar_k2/summary.json");
    let text = std::fs::read_to_string(&old).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("cpu_seconds"))
        .collect();
    let text = kept.join("\n");
    let cut = text.find("\"versions\"").unwrap();
    let text = format!("{}\"x\": 0\n}}", &text[..cut]);
    std::fs::write(&old, text).unwrap();
    // Not a summary at all.
    std::fs::write(copy.join("s1/radial_k2/summary.json"), "{broken").unwrap();
    let html_path = copy.join("report.html");
    let stdout = common::assert_succeeded(&report(&[&copy], &html_path));
    assert!(
        stdout.contains("1 unfinished marked") && stdout.contains("1 unreadable marked"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    let rows = table_rows(&html);
    assert_eq!(
        rows.len(),
        3,
        "radial_k2 has only unfinished runs: {rows:?}"
    );
    assert!(rows[2].contains("radial_k2") && rows[2].contains("in progress"));
    assert!(rows[1].contains("older summary") && rows[1].contains("planar_k2"));
    assert!(html.contains("unreadable") && html.contains("not valid JSON"));
}
