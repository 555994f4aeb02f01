//! Run folders `results/<experiment>/<run-id>/`: unique, locked while in use, written
//! atomically, never overwritten unless asked.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};
use crate::names::{check_plain_name, is_run_folder};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file in the same folder, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        if let Some(err) = crate::faults::write_fault(&name) {
            return Err(err);
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            // Not all filesystems allow syncing a folder; the rename is done either way.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        TrainError::io(path, "cannot write the file", e)
    })
}

/// `YYYYmmdd-HHMMSS` in UTC, the default run id.
pub fn timestamp_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An open run folder; holds `.lock` until dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    lock: PathBuf,
}

/// Whether `pid` is a running process. A zombie (killed or crashed, not yet reaped by a
/// parent that has not called `wait`) holds nothing and counts as gone, so its lock is taken
/// over; where `/proc` has no state line the process counts as alive.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

impl RunDir {
    /// Creates `root/<experiment>/<run_id>`. Without a run id, a timestamp (with `-2`, `-3`, …
    /// if taken). An explicit run id that exists is refused unless `force`, which empties it,
    /// and only when it is a run folder ([`is_run_folder`]). Both names must be plain names.
    pub fn create(
        root: &Path,
        experiment: &str,
        run_id: Option<&str>,
        force: bool,
    ) -> Result<Self> {
        check_plain_name("experiment name", experiment)?;
        if let Some(id) = run_id {
            check_plain_name("--run-id", id)?;
        }
        let parent = root.join(experiment);
        fs::create_dir_all(&parent)
            .map_err(|e| TrainError::io(&parent, "cannot create the results folder", e))?;
        let path = match run_id {
            Some(id) => {
                let path = parent.join(id);
                if fs::symlink_metadata(&path).is_ok() {
                    if !force {
                        return Err(TrainError::RunExists(path));
                    }
                    if !is_run_folder(&path) {
                        return Err(TrainError::NotARun(path));
                    }
                    Self::acquire(&path)?.remove_contents()?;
                }
                path
            }
            None => {
                let base = timestamp_id();
                let mut candidate = parent.join(&base);
                let mut n = 2;
                while candidate.exists() {
                    candidate = parent.join(format!("{base}-{n}"));
                    n += 1;
                }
                candidate
            }
        };
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && force => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(TrainError::RunExists(path))
            }
            Err(e) => return Err(TrainError::io(&path, "cannot create the run folder", e)),
        }
        Self::acquire(&path)
    }

    /// Opens an existing run folder for writing (resume, eval), taking its lock, and removes
    /// the temporary files of writes that a killed process left behind.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(TrainError::File {
                file: path.to_path_buf(),
                message: "no such run folder".into(),
            });
        }
        let run = Self::acquire(path)?;
        run.remove_stale_temp_files();
        Ok(run)
    }

    /// Removes `.<name>.<pid>.tmp` files (from [`write_atomic`]) of this process or of
    /// processes that are gone, in the run folder and its `checkpoints/` and `plots/`.
    pub fn remove_stale_temp_files(&self) {
        let own = std::process::id();
        for dir in [
            self.path.clone(),
            self.path.join("checkpoints"),
            self.path.join("plots"),
        ] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pid = name
                    .strip_suffix(".tmp")
                    .filter(|_| name.starts_with('.'))
                    .and_then(|stem| stem.rsplit_once('.'))
                    .and_then(|(_, pid)| pid.parse::<u32>().ok());
                if pid.is_some_and(|pid| pid == own || !process_alive(pid)) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Writes a failure to `run.log` too, so that the folder explains why it stopped.
    pub fn log_failure<T, E: std::error::Error>(
        &self,
        result: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if let Err(err) = &result {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            self.log(&format!("error: {text}"));
        }
        result
    }

    fn acquire(path: &Path) -> Result<Self> {
        let lock = path.join(".lock");
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Self {
                        path: path.to_path_buf(),
                        lock,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&lock).unwrap_or_default();
                    let pid = holder.trim().parse::<u32>().ok();
                    match pid {
                        Some(pid) if !process_alive(pid) => {
                            // A crashed run left its lock: take over.
                            let _ = fs::remove_file(&lock);
                        }
                        Some(pid) => {
                            return Err(TrainError::Locked {
                                path: path.to_path_buf(),
                                holder: format!("pid {pid}"),
                            })
                        }
                        None => {
                            // The holder has created the lock but not yet written its pid.
                            return Err(TrainError::Locked {
                                path: path.to_path_buf(),
                                holder:
                                    "a process that is just starting; its pid is not written yet"
                                        .into(),
                            });
                        }
                    }
                }
                Err(e) => return Err(TrainError::io(&lock, "cannot create the lock file", e)),
            }
        }
        Err(TrainError::Locked {
            path: path.to_path_buf(),
            holder: "a process that took it over just now".into(),
        })
    }

    fn remove_contents(&self) -> Result<()> {
        let entries =
            fs::read_dir(&self.path).map_err(|e| TrainError::io(&self.path, "cannot list", e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p == self.lock {
                continue;
            }
            // The entry's own type: a link is removed, never followed.
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            removed.map_err(|e| TrainError::io(&p, "cannot remove (--force)", e))?;
        }
        Ok(())
    }

    /// A new sub-run folder `path/<name>` (one model of a comparison), with its own lock.
    pub fn child(&self, name: &str) -> Result<RunDir> {
        check_plain_name("model name", name)?;
        Self::create_at(&self.path.join(name))
    }

    /// A new run folder at exactly `path` (its parent must exist); refused if it exists.
    pub fn create_at(path: &Path) -> Result<RunDir> {
        let path = path.to_path_buf();
        match fs::create_dir(&path) {
            Ok(()) => Self::acquire(&path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(TrainError::RunExists(path))
            }
            Err(e) => Err(TrainError::io(&path, "cannot create the run folder", e)),
        }
    }

    /// Appends a timestamped line to the run's `run.log` (best effort: logging never fails a run).
    pub fn log(&self, line: &str) {
        use std::io::Write as _;
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("run.log"))
        {
            let _ = writeln!(f, "{} {line}", timestamp_id());
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/<name>`, creating the sub-folder `name`'s parent if needed.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| TrainError::io(parent, "cannot create the folder", e))?;
        }
        Ok(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        self.remove_stale_temp_files();
        let _ = fs::remove_file(&self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_get_unique_folders_and_are_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "exp", None, false).unwrap();
        let b = RunDir::create(root.path(), "exp", None, false).unwrap();
        assert_ne!(a.path(), b.path());
        fs::write(a.path().join("metrics.csv"), "x").unwrap();
        let path = a.path().to_path_buf();
        let id = path.file_name().unwrap().to_str().unwrap().to_string();
        drop(a);
        let err = RunDir::create(root.path(), "exp", Some(&id), false).unwrap_err();
        assert!(matches!(err, TrainError::RunExists(_)), "{err}");
        assert_eq!(fs::read_to_string(path.join("metrics.csv")).unwrap(), "x");
        // Without the config.yaml every run writes first, it is not a run: --force keeps it.
        let err = RunDir::create(root.path(), "exp", Some(&id), true).unwrap_err();
        assert!(matches!(err, TrainError::NotARun(_)), "{err}");
        assert_eq!(fs::read_to_string(path.join("metrics.csv")).unwrap(), "x");
        fs::write(path.join("config.yaml"), "name: exp").unwrap();
        let forced = RunDir::create(root.path(), "exp", Some(&id), true).unwrap();
        assert!(!forced.path().join("metrics.csv").exists());
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "exp", Some("r"), false).unwrap();
        let err = RunDir::open(a.path()).unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
        let path = a.path().to_path_buf();
        drop(a);
        RunDir::open(&path).unwrap();
    }

    #[test]
    fn a_lock_held_by_a_dead_or_zombie_process_is_taken_over() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), "exp", Some("r"), false).unwrap();
        let path = run.path().to_path_buf();
        // As a crash would: the lock stays.
        std::mem::forget(run);
        // A child that has exited but is not reaped (no `wait`) is a zombie: /proc has it.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        while fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        fs::write(path.join(".lock"), format!("{pid}\n")).unwrap();
        let taken = RunDir::open(&path);
        child.wait().unwrap();
        taken.unwrap();
        // A live holder (this process) is refused.
        fs::write(path.join(".lock"), format!("{}\n", std::process::id())).unwrap();
        assert!(RunDir::open(&path).is_err());
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/f.txt"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing/f.txt"), "{err}");
    }

    #[test]
    fn timestamp_has_the_expected_shape() {
        let id = timestamp_id();
        assert_eq!(id.len(), 15);
        assert!(id.starts_with("20"));
    }
}
