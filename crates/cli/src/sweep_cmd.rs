//! `flowvae sweep` and `flowvae sweep-summary`: a grid of runs, locally or as a Slurm array.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// `flowvae sweep …`.
#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// The sweep file (name, base, grid, seeds).
    #[arg(required_unless_present = "resume")]
    sweep: Option<PathBuf>,
    /// Continue an unfinished sweep folder (results/<name>/<sweep-id>): finished points are
    /// kept, started ones resume from their checkpoints, the rest start.
    #[arg(long, value_name = "SWEEP_DIR", conflicts_with_all = ["sweep", "slurm"])]
    resume: Option<PathBuf>,
    /// Parallel worker processes.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Write sweep.sbatch, compare.sbatch and submit.sh instead of running.
    #[arg(long)]
    slurm: bool,
    /// Cores per Slurm array task (its FLOWVAE_THREADS follows).
    #[arg(long, default_value_t = 2, requires = "slurm")]
    cpus_per_task: usize,
    /// Wall-time limit per Slurm task, e.g. 02:00:00 or 1-00:00:00.
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// Memory per Slurm task, e.g. 8G.
    #[arg(long, requires = "slurm")]
    mem: Option<String>,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Folder that holds the sweep folders.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

/// `flowvae sweep-summary …`.
#[derive(Debug, Args)]
pub(crate) struct SweepSummaryArgs {
    /// The sweep folder.
    dir: PathBuf,
}

pub(crate) fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the flowvae executable")?;
    let threads = worker_threads(args.jobs)?;
    if let Some(dir) = &args.resume {
        let (dir, table) = flowvae_runner::resume_local(dir, args.jobs, &exe, threads)
            .with_context(|| format!("resume of sweep {} failed", dir.display()))?;
        println!("{table}\nsweep folder: {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let sweep = args.sweep.context("a sweep file is needed")?;
    if args.slurm {
        let resources = flowvae_runner::SlurmResources {
            cpus_per_task: args.cpus_per_task,
            time: args.time,
            mem: args.mem,
            partition: args.partition,
        };
        let dir = flowvae_runner::write_slurm(&sweep, &args.results, &exe, &resources)
            .with_context(|| format!("cannot write the Slurm scripts of {}", sweep.display()))?;
        println!(
            "wrote {0}/sweep.sbatch, {0}/compare.sbatch; submit with {0}/submit.sh",
            dir.display()
        );
    } else {
        let (dir, table) =
            flowvae_runner::run_local(&sweep, &args.results, args.jobs, &exe, threads)
                .with_context(|| format!("sweep {} failed", sweep.display()))?;
        println!("{table}\nsweep folder: {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn summary(args: SweepSummaryArgs) -> anyhow::Result<ExitCode> {
    let table = flowvae_runner::summarize(&args.dir)
        .with_context(|| format!("cannot summarise {}", args.dir.display()))?;
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// Threads per worker: `FLOWVAE_THREADS` when set, else this machine's cores shared out among
/// the jobs.
fn worker_threads(jobs: usize) -> anyhow::Result<usize> {
    Ok(match flowvae_flows::Runtime::current().threads {
        Some(n) => n,
        None => flowvae_runner::threads_per_job(flowvae_runner::workers(), jobs),
    })
}
