//! `flowvae`: the command-line front end. Everything it does lives in `flowvae-runner`.

mod bench_cmd;
mod commands;

use commands::{candle_core_device, compare, eval, gaps, parse_overrides, sample};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flowvae_runner::check::CheckOptions;
use flowvae_runner::RunOptions;

/// Normalizing flows and Flow-VAEs: run experiments from YAML, verify flow stacks, evaluate,
/// sample and compare trained models.
#[derive(Debug, Parser)]
#[command(name = "flowvae", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Speed of the benchmark Flow-VAE (DESIGN §9): training samples/s and NLL importance
    /// samples/s through the library's real paths.
    Bench(bench_cmd::BenchArgs),
    /// Train an experiment described by a YAML file and write its run folder
    /// (results/<experiment>/<run-id>/: config.yaml, metrics.csv, summary.json, run.log,
    /// plots/, checkpoints/). `--resume <run-dir>` continues an interrupted run.
    Run {
        /// The experiment file, e.g. experiments/quickstart.yaml (not with --resume/--sweep).
        #[arg(required_unless_present_any = ["resume", "sweep"])]
        experiment: Option<PathBuf>,
        /// Folder that holds the run folders.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Name of the run folder (default: a UTC timestamp). An existing one is refused.
        #[arg(long)]
        run_id: Option<String>,
        /// Replace the run folder given by --run-id if it exists (its files are deleted).
        #[arg(long, requires = "run_id")]
        force: bool,
        /// Override a config value, type-checked like the file: train.epochs=50,
        /// flow.0.planar.k=8, 'flow=[{planar: {k: 4}}]'. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Continue an interrupted run from its last checkpoint; ends exactly as an
        /// uninterrupted run would.
        #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["experiment", "sweep", "set"])]
        resume: Option<PathBuf>,
        /// Run one point of a sweep (what `flowvae sweep` workers and Slurm tasks call).
        #[arg(long, value_name = "SWEEP_YAML", requires_all = ["index", "sweep_dir"], conflicts_with = "experiment")]
        sweep: Option<PathBuf>,
        /// Index of the sweep point.
        #[arg(long)]
        index: Option<usize>,
        /// The sweep's folder.
        #[arg(long)]
        sweep_dir: Option<PathBuf>,
    },
    /// Print the resolved configuration of an experiment (every default filled in, with
    /// --set overrides applied), as it would be written to the run's config.yaml.
    ShowConfig {
        experiment: PathBuf,
        /// Override a config value (repeatable), as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Run a sweep: a base experiment, a grid over config keys and seeds. Locally in
    /// --jobs processes, or --slurm writes a job-array script and a dependent comparison job.
    Sweep {
        /// The sweep file (name, base, grid, seeds).
        sweep: PathBuf,
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
    },
    /// Push data through a trained model and write the codes to CSV: z0 and zK of a
    /// Flow-VAE's posterior (its mean path, or a draw with --sample), or, for a 2-D density
    /// run, the base-space point z = f^-1(x) and the round trip f(z).
    Transform {
        /// A finished run folder.
        run: PathBuf,
        /// CSV of data points, one per row (784 columns for MNIST, 2 for 2-D).
        #[arg(long, conflicts_with = "split")]
        input: Option<PathBuf>,
        /// Use a split of the run's own data instead: train, val or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Output CSV (refused if it exists, unless --force).
        #[arg(long)]
        output: PathBuf,
        /// Draw z0 from q0 (seeded) instead of taking its mean.
        #[arg(long)]
        sample: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        force: bool,
    },
    /// Compare the finished points of a sweep folder (what the Slurm comparison job runs).
    SweepSummary {
        /// The sweep folder.
        dir: PathBuf,
    },
    /// Verify a flow stack: build it with random parameters (f64) and compare each layer's
    /// log|det J| with the brute-force Jacobian, and inverse round trips. Exits 1 when an
    /// error exceeds the tolerance.
    Check {
        /// A stack file (a YAML list such as `- planar: {k: 4}`) or an experiment file.
        yaml: PathBuf,
        /// Dimension to build the stack on (default: the experiment's, or 4).
        #[arg(long)]
        dim: Option<usize>,
        /// Random points to check at.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Seed of the random parameters and points.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Build planar, radial and Sylvester layers with per-sample (amortized) parameters.
        #[arg(long)]
        amortized: bool,
        /// Largest acceptable error.
        #[arg(long, default_value_t = 1e-6)]
        tolerance: f64,
    },
    /// Estimate the test log-likelihood of a trained Flow-VAE run by importance sampling
    /// (encoder once per image, S samples in chunks, f64 accumulation) and record it in the
    /// run's summary.json.
    Eval {
        /// A Flow-VAE run folder (results/<experiment>/<run-id>[/<model>]).
        run: PathBuf,
        /// Importance samples per test image (default: the run's eval.nll_samples, 5000).
        #[arg(long)]
        samples: Option<usize>,
    },
    /// Draw images from the prior of a trained Flow-VAE and write them as a PNG grid.
    Sample {
        /// A Flow-VAE run folder.
        run: PathBuf,
        /// Number of images.
        #[arg(short, long, default_value_t = 64)]
        n: usize,
        /// Seed of the prior draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG (default: <run>/plots/samples_<n>_seed<seed>.png).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Split a Flow-VAE's inference gap log p(x) - ELBO into the amortization gap (a better
    /// encoder) and the approximation gap (a richer posterior): the encoder's outputs are
    /// optimised per image, decoder fixed (Cremer et al., 2018).
    Gaps {
        /// A finished run folder.
        run: PathBuf,
        /// train, val or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// The first N images of the split.
        #[arg(long, default_value_t = 100)]
        images: usize,
        /// Adam steps of the per-image optimisation.
        #[arg(long, default_value_t = 500)]
        steps: usize,
        /// Adam's learning rate for the per-image variables.
        #[arg(long, default_value_t = 1e-2)]
        lr: f64,
        /// Posterior samples per image per step.
        #[arg(long, default_value_t = 16)]
        samples: usize,
        /// Samples per image for the final ELBO and log p(x) estimates.
        #[arg(long, default_value_t = 1000)]
        eval_samples: usize,
        /// Seed of the posterior noise (the same for both estimates).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write the report as JSON here (refused if it exists, unless --force).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace --out if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Compare finished runs: a Markdown and CSV table (test NLL with S, -ELBO, KL, epochs,
    /// time; mean ± std over seeds of the same model), overlaid validation curves and an NLL
    /// bar chart. Accepts run folders or folders containing them.
    Compare {
        /// Run folders, or experiment / comparison folders holding them.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Model name to show differences against (e.g. vae).
        #[arg(long)]
        baseline: Option<String>,
        /// Folder for comparison.md, comparison.csv and plots/ (default:
        /// results/comparisons/<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before any thread exists: fixes candle's thread count once (it re-reads /proc/cpuinfo on
    // every matmul otherwise).
    flowvae_runner::threads::configure();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            // One line: candle may append a backtrace to its messages (RUST_BACKTRACE).
            let message = format!("{err:#}");
            eprintln!(
                "error: {}",
                message.lines().next().unwrap_or("unknown error")
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench(args) => bench_cmd::run(args),
        Command::Run {
            experiment,
            results,
            run_id,
            force,
            set,
            resume,
            sweep,
            index,
            sweep_dir,
        } => {
            let device = candle_core_device()?;
            let dir = if let Some(dir) = resume {
                flowvae_runner::resume_run(&dir, &device)
                    .with_context(|| format!("resume of {} failed", dir.display()))?
            } else if let (Some(sweep), Some(index), Some(sweep_dir)) = (sweep, index, sweep_dir) {
                flowvae_runner::sweep::run_point(&sweep, index, &sweep_dir, &device)
                    .with_context(|| format!("sweep point {index} of {} failed", sweep.display()))?
            } else {
                let experiment = experiment.context("an experiment file is needed")?;
                let options = RunOptions {
                    results_root: results,
                    run_id,
                    force,
                    overrides: parse_overrides(&set)?,
                };
                flowvae_runner::run_experiment(&experiment, &options, &device)
                    .with_context(|| format!("run of {} failed", experiment.display()))?
            };
            println!("{}", flowvae_runner::summary_line(&dir));
            Ok(ExitCode::SUCCESS)
        }
        Command::ShowConfig { experiment, set } => {
            let overrides = parse_overrides(&set)?;
            let exp = flowvae_runner::Experiment::load_with(&experiment, &overrides)
                .with_context(|| format!("cannot resolve {}", experiment.display()))?;
            print!("{}", exp.to_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep {
            sweep,
            jobs,
            slurm,
            cpus_per_task,
            time,
            mem,
            partition,
            results,
        } => {
            let exe = std::env::current_exe().context("cannot find the flowvae executable")?;
            if slurm {
                let resources = flowvae_runner::slurm::SlurmResources {
                    cpus_per_task,
                    time,
                    mem,
                    partition,
                };
                let dir = flowvae_runner::slurm::write_slurm(&sweep, &results, &exe, &resources)
                    .with_context(|| {
                        format!("cannot write the Slurm scripts of {}", sweep.display())
                    })?;
                println!(
                    "wrote {0}/sweep.sbatch, {0}/compare.sbatch; submit with {0}/submit.sh",
                    dir.display()
                );
            } else {
                let (dir, table) = flowvae_runner::sweep::run_local(&sweep, &results, jobs, &exe)
                    .with_context(|| format!("sweep {} failed", sweep.display()))?;
                println!("{table}\nsweep folder: {}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Transform {
            run,
            input,
            split,
            output,
            sample,
            seed,
            force,
        } => {
            if output.exists() && !force {
                anyhow::bail!(
                    "{} exists already; pass --force to replace it",
                    output.display()
                );
            }
            let source = match &input {
                Some(path) => flowvae_runner::transform::Input::Csv(path),
                None => flowvae_runner::transform::Input::Split(&split),
            };
            let device = candle_core_device()?;
            let rows =
                flowvae_runner::transform::transform(&run, source, &output, sample, seed, &device)
                    .with_context(|| format!("transform with {} failed", run.display()))?;
            println!("{rows} rows written to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::SweepSummary { dir } => {
            let table = flowvae_runner::sweep::summarize(&dir)
                .with_context(|| format!("cannot summarise {}", dir.display()))?;
            println!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            yaml,
            dim,
            batch,
            seed,
            amortized,
            tolerance,
        } => {
            let options = CheckOptions {
                dim,
                batch,
                seed,
                amortized,
                tolerance,
            };
            let outcomes = flowvae_runner::check::check_file(&yaml, &options)
                .with_context(|| format!("check of {} failed", yaml.display()))?;
            let mut all_passed = true;
            for outcome in &outcomes {
                if outcomes.len() > 1 {
                    println!("== {} ==", outcome.stack);
                }
                print!("{}", outcome.table());
                all_passed &= outcome.passed();
            }
            let verdict = if all_passed { "PASS" } else { "FAIL" };
            let dim = outcomes.first().map_or(0, |o| o.dim);
            println!(
                "{verdict}: {} stack(s), dimension {dim}, tolerance {tolerance:e} (f64, {batch} points)",
                outcomes.len()
            );
            Ok(if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval { run, samples } => eval(run, samples),
        Command::Sample {
            run,
            n,
            seed,
            out,
            force,
        } => sample(run, n, seed, out, force),
        Command::Gaps {
            run,
            split,
            images,
            steps,
            lr,
            samples,
            eval_samples,
            seed,
            out,
            force,
        } => {
            let options = flowvae_runner::inference_gap::GapOptions {
                images,
                steps,
                samples_per_step: samples,
                eval_samples,
                lr,
                seed,
            };
            gaps(run, &split, &options, out, force)
        }
        Command::Compare {
            runs,
            baseline,
            out,
        } => compare(runs, baseline, out),
    }
}
