//! User-given names that become folders (run ids, experiment, variant and sweep names), and
//! how a run folder is recognised before `--force` may empty it.

use std::fs;
use std::path::Path;

use crate::error::{Result, TrainError};

/// The longest name that becomes a folder (run ids, experiment, variant and sweep names).
pub const MAX_NAME_BYTES: usize = 200;

/// Why `name` cannot be a folder name of ours, or `None` when it can: one plain name, no path.
/// Empty names, `.`/`..` and hidden names, separators, control characters and names over
/// [`MAX_NAME_BYTES`] are refused, so that no user-given name can point outside its folder.
pub fn plain_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty; expected one plain folder name".into());
    }
    if name.starts_with('.') {
        return Some(format!(
            "`{name}` starts with a dot; expected one plain folder name (not `.`, `..` or hidden)"
        ));
    }
    if name.contains(['/', '\\']) {
        return Some(format!(
            "`{name}` contains a path separator; expected one plain folder name"
        ));
    }
    if name.chars().any(char::is_control) {
        return Some("contains a control character; expected one plain folder name".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        ));
    }
    None
}

/// [`plain_name_problem`] as an error about `what` (e.g. `--run-id`).
pub fn check_plain_name(what: &str, name: &str) -> Result<()> {
    match plain_name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(TrainError::File {
            file: what.into(),
            message: problem,
        }),
    }
}

/// Whether `path` is a run folder flowvae wrote: a real folder (not a link) holding the
/// `config.yaml` every run writes first. `--force` empties nothing else.
pub fn is_run_folder(path: &Path) -> bool {
    let real_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let config = fs::symlink_metadata(path.join("config.yaml")).is_ok_and(|m| m.is_file());
    real_dir && config
}
