//! A sweep as a Slurm job array: `sweep.sbatch` (one task per point), `compare.sbatch` (runs
//! once every task has succeeded) and `submit.sh`, with the resources each task asks for.

use std::path::{Path, PathBuf};

use crate::error::{Result, RunnerError};
use crate::sweep::prepare;
use flowvae_train::write_atomic;

/// What each array task asks Slurm for. The task's `FLOWVAE_THREADS` follows
/// `--cpus-per-task`, so a task uses the cores it was given and no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmResources {
    /// Cores per array task (`--cpus-per-task`).
    pub cpus_per_task: usize,
    /// Wall-time limit in a Slurm format (`MM`, `HH:MM:SS`, `D-HH:MM`, …); absent: the
    /// partition's default.
    pub time: Option<String>,
    /// Memory per node (`8G`, `16000M`, …); absent: the partition's default.
    pub mem: Option<String>,
    /// Partition (`--partition`); absent: the cluster's default.
    pub partition: Option<String>,
}

impl Default for SlurmResources {
    fn default() -> Self {
        Self {
            cpus_per_task: 2,
            time: None,
            mem: None,
            partition: None,
        }
    }
}

impl SlurmResources {
    /// Refuses values Slurm would reject only after the job waited in the queue, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let refuse = |flag: &str, message: String| RunnerError::Config {
            file: flag.into(),
            location: None,
            message,
        };
        if self.cpus_per_task == 0 {
            return Err(refuse("--cpus-per-task", "must be at least 1".into()));
        }
        if let Some(time) = &self.time {
            let fields_ok = time
                .split(['-', ':'])
                .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()));
            if !fields_ok || time.matches(':').count() > 2 || time.matches('-').count() > 1 {
                return Err(refuse(
                    "--time",
                    format!("`{time}`: expected MM, HH:MM:SS, D-HH or D-HH:MM:SS"),
                ));
            }
        }
        if let Some(mem) = &self.mem {
            let digits = mem.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || mem.len() > digits.len() + 1
            {
                return Err(refuse(
                    "--mem",
                    format!("`{mem}`: expected a number with an optional K, M, G or T suffix"),
                ));
            }
        }
        if let Some(partition) = &self.partition {
            let ok = !partition.is_empty()
                && partition
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.,".contains(c));
            if !ok {
                return Err(refuse(
                    "--partition",
                    format!("`{partition}`: expected a partition name (letters, digits, _ - . ,)"),
                ));
            }
        }
        Ok(())
    }

    /// The `#SBATCH` lines for the resources that were given.
    fn directives(&self) -> String {
        let mut lines = format!("#SBATCH --cpus-per-task={}\n", self.cpus_per_task);
        for (key, value) in [
            ("time", &self.time),
            ("mem", &self.mem),
            ("partition", &self.partition),
        ] {
            if let Some(value) = value {
                lines.push_str(&format!("#SBATCH --{key}={value}\n"));
            }
        }
        lines
    }
}

/// Writes `sweep.sbatch`, `compare.sbatch` and `submit.sh` into a new sweep folder; `exe` is
/// the flowvae binary the tasks run. Returns the folder.
pub fn write_slurm(
    sweep_file: &Path,
    results_root: &Path,
    exe: &Path,
    resources: &SlurmResources,
) -> Result<PathBuf> {
    resources.validate()?;
    let (config, points, dir) = prepare(sweep_file, results_root)?;
    let absolute = std::fs::canonicalize(dir.join("sweep.yaml"))
        .map_err(|e| RunnerError::io(sweep_file, "cannot resolve", e))?;
    let dir_abs =
        std::fs::canonicalize(&dir).map_err(|e| RunnerError::io(&dir, "cannot resolve", e))?;
    let exe = exe.display();
    let array = format!(
        "#!/usr/bin/env bash\n#SBATCH --job-name={name}\n#SBATCH --array=0-{last}\n{resources}#SBATCH --output={dir}/slurm-%A_%a.log\nset -euo pipefail\nexport FLOWVAE_THREADS=\"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"\nexec '{exe}' run --sweep '{sweep}' --index \"$SLURM_ARRAY_TASK_ID\" --sweep-dir '{dir}'\n",
        name = config.name,
        last = points.len().saturating_sub(1),
        resources = resources.directives(),
        cpus = resources.cpus_per_task,
        dir = dir_abs.display(),
        sweep = absolute.display(),
    );
    // The comparison only reads JSON: one core, the partition's other defaults.
    let compare_resources = SlurmResources {
        cpus_per_task: 1,
        ..resources.clone()
    };
    let summary = format!(
        "#!/usr/bin/env bash\n#SBATCH --job-name={name}-compare\n#SBATCH --kill-on-invalid-dep=yes\n{resources}#SBATCH --output={dir}/slurm-compare-%j.log\nset -euo pipefail\nexec '{exe}' sweep-summary '{dir}'\n",
        name = config.name,
        resources = compare_resources.directives(),
        dir = dir_abs.display(),
    );
    let submit = format!(
        "#!/usr/bin/env bash\n# Submits the job array, then the comparison once every array task has succeeded.\nset -euo pipefail\ncd '{dir}'\narray=$(sbatch --parsable sweep.sbatch)\nsbatch --dependency=afterok:\"${{array%%;*}}\" compare.sbatch\necho \"submitted array $array ({n} tasks) and its comparison\"\n",
        dir = dir_abs.display(),
        n = points.len(),
    );
    for (name, text) in [
        ("sweep.sbatch", array),
        ("compare.sbatch", summary),
        ("submit.sh", submit),
    ] {
        let path = dir.join(name);
        write_atomic(&path, text.as_bytes())?;
        set_executable(&path)?;
    }
    Ok(dir)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| RunnerError::io(path, "cannot make executable", e))
}

#[cfg(test)]
mod tests {
    use super::SlurmResources;

    fn with(f: impl FnOnce(&mut SlurmResources)) -> SlurmResources {
        let mut r = SlurmResources::default();
        f(&mut r);
        r
    }

    #[test]
    fn good_resources_pass_and_become_directives() {
        let r = with(|r| {
            r.cpus_per_task = 4;
            r.time = Some("1-02:00:00".into());
            r.mem = Some("8G".into());
            r.partition = Some("gpu_short".into());
        });
        r.validate().unwrap();
        assert_eq!(
            r.directives(),
            "#SBATCH --cpus-per-task=4\n#SBATCH --time=1-02:00:00\n#SBATCH --mem=8G\n#SBATCH --partition=gpu_short\n"
        );
        for time in ["30", "02:00:00", "2-12"] {
            with(|r| r.time = Some(time.into())).validate().unwrap();
        }
        assert_eq!(
            SlurmResources::default().directives(),
            "#SBATCH --cpus-per-task=2\n"
        );
    }

    #[test]
    fn bad_resources_name_the_flag() {
        let cases = [
            (with(|r| r.cpus_per_task = 0), "--cpus-per-task"),
            (with(|r| r.time = Some("2h".into())), "--time: `2h`"),
            (with(|r| r.time = Some("1:2:3:4".into())), "--time"),
            (with(|r| r.mem = Some("lots".into())), "--mem: `lots`"),
            (with(|r| r.mem = Some("8GG".into())), "--mem"),
            (with(|r| r.partition = Some("a b".into())), "--partition"),
        ];
        for (resources, expected) in cases {
            let err = resources.validate().unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }
}
