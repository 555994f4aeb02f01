//! Fault injection for reliability tests, in debug builds only (a release build has no way to
//! turn it on, and its hooks compile to nothing). The test binary's front end parses a
//! [`Faults`] value (the `flowvae` binary from `FLOWVAE_FAULT`) and [`install`]s it:
//! - `nan@E:B` poisons the reconstruction term at epoch `E`, batch `B`, once per process (so
//!   that a rolled-back epoch can succeed);
//! - `enospc@NAME` makes atomic writes of files named `NAME` fail as on a full disk.

/// Which faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    nan: Vec<(usize, usize)>,
    full_disk: Vec<String>,
}

impl Faults {
    /// Parses a comma-separated list of `nan@E:B` and `enospc@NAME`; anything else is an
    /// error that says what is expected.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(at) = item.strip_prefix("nan@") {
                let parsed = at
                    .split_once(':')
                    .and_then(|(e, b)| Some((e.parse().ok()?, b.parse().ok()?)));
                let Some(at) = parsed else {
                    return Err(format!("`{item}`: expected nan@EPOCH:BATCH"));
                };
                faults.nan.push(at);
            } else if let Some(name) = item.strip_prefix("enospc@").filter(|n| !n.is_empty()) {
                faults.full_disk.push(name.to_string());
            } else {
                return Err(format!(
                    "`{item}`: expected nan@EPOCH:BATCH or enospc@FILE_NAME"
                ));
            }
        }
        Ok(faults)
    }
}

#[cfg(debug_assertions)]
mod active {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;

    use super::Faults;

    static INSTALLED: OnceLock<Faults> = OnceLock::new();

    pub fn install(faults: Faults) -> Result<(), String> {
        INSTALLED
            .set(faults)
            .map_err(|_| "faults are installed already".to_string())
    }

    fn faults() -> &'static Faults {
        INSTALLED.get_or_init(Faults::default)
    }

    pub fn nan_at(epoch: usize, batch: usize) -> bool {
        static FIRED: AtomicBool = AtomicBool::new(false);
        faults().nan.contains(&(epoch, batch)) && !FIRED.swap(true, Ordering::AcqRel)
    }

    pub fn write_fault(file_name: &str) -> Option<std::io::Error> {
        faults()
            .full_disk
            .iter()
            .any(|n| n == file_name)
            .then(|| std::io::Error::from_raw_os_error(28))
    }
}

/// Makes `faults` the process's faults (debug builds; once).
#[cfg(debug_assertions)]
pub fn install(faults: Faults) -> Result<(), String> {
    active::install(faults)
}

/// Release builds inject no faults: asking for any is an error.
#[cfg(not(debug_assertions))]
pub fn install(faults: Faults) -> Result<(), String> {
    if faults == Faults::default() {
        Ok(())
    } else {
        Err("fault injection exists only in debug builds (the tests' binary)".into())
    }
}

/// Whether the loss of `batch` in `epoch` is to be poisoned (true at most once).
pub fn nan_at(epoch: usize, batch: usize) -> bool {
    #[cfg(debug_assertions)]
    {
        active::nan_at(epoch, batch)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = (epoch, batch);
        false
    }
}

/// A simulated "no space left on device" for writes of `file_name`.
pub fn write_fault(file_name: &str) -> Option<std::io::Error> {
    #[cfg(debug_assertions)]
    {
        active::write_fault(file_name)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = file_name;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Faults;

    #[test]
    fn fault_lists_parse_or_say_what_is_expected() {
        let f = Faults::parse("nan@1:2, enospc@last.safetensors").unwrap();
        assert_eq!(f.nan, vec![(1, 2)]);
        assert_eq!(f.full_disk, vec!["last.safetensors".to_string()]);
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let err = Faults::parse("nan@x").unwrap_err();
        assert!(err.contains("nan@EPOCH:BATCH"), "{err}");
        assert!(Faults::parse("segv@now").is_err());
    }
}
