//! The binary as a user meets it: help texts, exit codes, one-line errors.

use std::process::Command;

fn flowvae(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowvae"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_command() {
    let (code, out, _) = flowvae(&["--help"]);
    assert_eq!(code, 0);
    for word in ["run", "check"] {
        assert!(out.contains(word), "{out}");
    }
    for sub in ["run", "check"] {
        let (code, out, _) = flowvae(&[sub, "--help"]);
        assert_eq!(code, 0, "{sub}");
        assert!(out.len() > 200, "{sub} help is too thin: {out}");
    }
}

#[test]
fn check_exits_zero_on_a_good_stack_and_one_above_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack.yaml");
    std::fs::write(
        &stack,
        "- planar: {k: 2}\n- affine_coupling: {k: 1, hidden: [8]}\n",
    )
    .unwrap();
    let s = stack.to_str().unwrap();
    let (code, out, _) = flowvae(&["check", s, "--dim", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PASS") && out.contains("planar"), "{out}");
    let (code, out, _) = flowvae(&["check", s, "--tolerance", "0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"));
}

#[test]
fn a_bad_file_gives_one_clear_error_line_and_a_failure_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\ntarget:\n  energy: u1\nflow:\n  - planar: {k: -3}\n",
    )
    .unwrap();
    let (code, _, err) = flowvae(&[
        "run",
        bad.to_str().unwrap(),
        "--results",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("bad.yaml:5:") && lines[0].contains("flow[0].planar.k"),
        "{err}"
    );
    let (code, _, err) = flowvae(&["run", "--force", bad.to_str().unwrap()]);
    assert_ne!(code, 0, "--force without --run-id must be refused: {err}");
}

/// Piped to a file, the log is plain text: no colour escapes, and every progress line says
/// what it counts (no `test NLL 20/200: ` with nothing after the colon).
#[test]
fn piped_logs_are_plain_text_with_complete_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("logs.yaml");
    let yaml = "name: logs\nseed: 0\ndata: {source: digits}\nmodel: {latent: 2, encoder: {hidden: [8]}, decoder: {hidden: [8]}}\ntrain: {epochs: 2, batch_size: 200}\neval: {nll_samples: 4}\n";
    std::fs::write(&exp, yaml).unwrap();
    let results = dir.path().join("results");
    let out = Command::new(env!("CARGO_BIN_EXE_flowvae"))
        .args([
            "run",
            exp.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a piped log: {log:?}"
    );
    assert!(log.contains("test NLL 200/200 images"), "{log}");
    assert!(log.lines().all(|l| !l.trim_end().ends_with(':')), "{log}");
}
