//! Fault injection for reliability tests, read once from the environment variable
//! `FLOWVAE_FAULT` (comma-separated):
//! - `nan@E:B` poisons the reconstruction term at epoch `E`, batch `B`, once per process (so
//!   that a rolled-back epoch can succeed);
//! - `enospc@NAME` makes atomic writes of files named `NAME` fail as on a full disk.
//!
//! Unset, nothing changes; the hooks cost one lookup in a parsed list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Default)]
struct Faults {
    nan: Vec<(usize, usize)>,
    full_disk: Vec<String>,
}

fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let mut f = Faults::default();
        for item in std::env::var("FLOWVAE_FAULT")
            .unwrap_or_default()
            .split(',')
        {
            if let Some(at) = item.strip_prefix("nan@") {
                if let Some((e, b)) = at.split_once(':') {
                    if let (Ok(e), Ok(b)) = (e.parse(), b.parse()) {
                        f.nan.push((e, b));
                    }
                }
            } else if let Some(name) = item.strip_prefix("enospc@") {
                f.full_disk.push(name.to_string());
            }
        }
        f
    })
}

/// Whether the loss of `batch` in `epoch` is to be poisoned (true at most once).
pub fn nan_at(epoch: usize, batch: usize) -> bool {
    static FIRED: AtomicBool = AtomicBool::new(false);
    faults().nan.contains(&(epoch, batch)) && !FIRED.swap(true, Ordering::AcqRel)
}

/// A simulated "no space left on device" for writes of `file_name`.
pub fn write_fault(file_name: &str) -> Option<std::io::Error> {
    faults()
        .full_disk
        .iter()
        .any(|n| n == file_name)
        .then(|| std::io::Error::from_raw_os_error(28))
}
