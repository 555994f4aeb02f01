//! Embeds the git revision the binary is built from, so that a run's summary names the code
//! that produced it rather than whatever checkout the run happens to start in.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).map(|rev| {
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{rev}+dirty")
        } else {
            rev
        }
    });
    println!(
        "cargo:rustc-env=FLOWVAE_BUILD_REVISION={}",
        revision.as_deref().unwrap_or("")
    );
    // Rebuilt when a commit or checkout moves HEAD, the index changes, or any crate's source
    // does (which can make the tree dirty).
    for what in ["HEAD", "index", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", what]) {
            let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=..");
}
