//! What the CLI test files share: the binary under test, and asserting that it succeeded.
#![allow(dead_code)] // each test file uses a part

use std::process::{Command, Output, Stdio};

/// The `flowvae` binary of this build, with warnings-only logging and no stdin.
pub fn flowvae() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowvae"));
    command.env("RUST_LOG", "warn").stdin(Stdio::null());
    command
}

/// Runs `command`, asserts that it succeeded (showing its stdout and stderr otherwise) and
/// returns its stdout.
pub fn succeeds(command: &mut Command) -> String {
    let out = command.output().expect("the flowvae binary starts");
    assert_succeeded(&out)
}

/// Asserts that `out` is a success (showing its stdout and stderr otherwise); returns stdout.
pub fn assert_succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flowvae failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
