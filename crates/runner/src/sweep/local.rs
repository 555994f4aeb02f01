//! Sweeps run locally: the points shared out over `--jobs` worker processes of this binary,
//! each logging to `<folder>.log`, then the comparison.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{prepare, summarize, SweepConfig, SweepPoint};
use crate::error::{Result, RunnerError};

/// `FLOWVAE_THREADS` for each of `jobs` workers on `cores` cores: the cores shared out, at
/// least one each, so that `--jobs 2` on 2 cores runs 2 threads, not 4 fighting over them.
pub fn threads_per_job(cores: usize, jobs: usize) -> usize {
    (cores / jobs.max(1)).max(1)
}

/// Runs every point in up to `jobs` processes of `exe`, each logging to `<folder>.log`, then
/// compares. Returns the sweep folder and the Markdown table. Each worker runs on
/// `threads` threads (`FLOWVAE_THREADS`; results do not depend on it).
pub fn run_local(
    sweep_file: &Path,
    results_root: &Path,
    jobs: usize,
    exe: &Path,
    threads: usize,
) -> Result<(PathBuf, String)> {
    let (_, points, dir) = prepare(sweep_file, results_root)?;
    run_workers(&dir, &points, jobs, exe, threads)
}

/// Continues a sweep folder that an earlier `flowvae sweep` left unfinished (stopped, killed,
/// or a session that ended): finished points are kept, started ones resume from their last
/// checkpoint (`flowvae run --resume`), the others start; then the comparison is written.
pub fn resume_local(
    sweep_dir: &Path,
    jobs: usize,
    exe: &Path,
    threads: usize,
) -> Result<(PathBuf, String)> {
    let config = SweepConfig::load(&sweep_dir.join("sweep.yaml"))?;
    let points = config.points()?;
    run_workers(sweep_dir, &points, jobs, exe, threads)
}

/// A worker's arguments for a point (which starts it, or resumes a folder an earlier worker
/// left, see [`super::run_point`]); `None` when the point is finished.
fn worker_args(
    dir: &Path,
    sweep_yaml: &Path,
    point: &SweepPoint,
) -> Option<Vec<std::ffi::OsString>> {
    if dir.join(&point.folder).join("summary.json").is_file() {
        return None;
    }
    Some(vec![
        "run".into(),
        "--sweep".into(),
        sweep_yaml.into(),
        "--index".into(),
        point.index.to_string().into(),
        "--sweep-dir".into(),
        dir.into(),
    ])
}

fn run_workers(
    dir: &Path,
    points: &[SweepPoint],
    jobs: usize,
    exe: &Path,
    threads: usize,
) -> Result<(PathBuf, String)> {
    let absolute = std::fs::canonicalize(dir.join("sweep.yaml"))
        .map_err(|e| RunnerError::io(dir.join("sweep.yaml"), "cannot resolve", e))?;
    let todo: Vec<(&SweepPoint, Vec<std::ffi::OsString>)> = points
        .iter()
        .filter_map(|p| worker_args(dir, &absolute, p).map(|args| (p, args)))
        .collect();
    let mut running: Vec<(&SweepPoint, Child)> = Vec::new();
    let mut failed = Vec::new();
    let mut queue = todo.into_iter();
    loop {
        while running.len() < jobs.max(1) {
            let Some((point, args)) = queue.next() else {
                break;
            };
            let log_path = dir.join(format!("{}.log", point.folder));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| RunnerError::io(&log_path, "cannot open", e))?;
            let err = log
                .try_clone()
                .map_err(|e| RunnerError::io(&log_path, "cannot open", e))?;
            let child = Command::new(exe)
                .args(&args)
                .env("FLOWVAE_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| RunnerError::io(exe, "cannot start a sweep worker", e))?;
            running.push((point, child));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut still = Vec::new();
        for (point, mut child) in running {
            match child.try_wait() {
                Ok(Some(status)) if !status.success() => failed.push(point.folder.clone()),
                Ok(Some(_)) => {}
                _ => still.push((point, child)),
            }
        }
        running = still;
    }
    if !failed.is_empty() {
        return Err(RunnerError::Config {
            file: dir.to_path_buf(),
            location: None,
            message: format!(
                "sweep points failed: {} (see their .log files; `flowvae sweep --resume {}` \
                 continues the rest)",
                failed.join(", "),
                dir.display()
            ),
        });
    }
    let table = summarize(dir)?;
    Ok((dir.to_path_buf(), table))
}

#[cfg(test)]
mod tests {
    use super::threads_per_job;

    #[test]
    fn workers_share_the_cores_and_get_at_least_one() {
        assert_eq!(threads_per_job(2, 2), 1);
        assert_eq!(threads_per_job(16, 3), 5);
        assert_eq!(threads_per_job(1, 4), 1);
        assert_eq!(threads_per_job(8, 0), 8);
    }
}
