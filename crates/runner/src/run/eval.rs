//! Evaluating a trained Flow-VAE: test NLL by importance sampling, test ELBO, plots, and the
//! `eval` and `sample` commands on a finished run folder.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::Dataset;
use flowvae_flows::ParamStore;
use flowvae_nn::seeded;
use flowvae_vae::{log_likelihood, FlowVae};

use crate::error::{Result, RunnerError};
use crate::experiment::vae::ExperimentVae;
use crate::experiment::Experiment;
use crate::run::summary::{RunSummary, TestMetrics, VaeSummary, Versions};
use crate::run::train::train;
use flowvae_data::{describe, load_splits, BatchMaker};
use flowvae_plot::{image_grid, line_chart, Series};
use flowvae_train::process_cpu_seconds;
use flowvae_train::read_metrics;
use flowvae_train::Progress;
use flowvae_train::RunDir;
use flowvae_train::{build_model, evaluate_elbo, latent_diagnostics};
use flowvae_vae::PriorSpec;

/// Mean test NLL `−log p(x)` in nats with `S` importance samples per image.
pub fn test_nll(
    model: &FlowVae,
    data: &Dataset,
    exp: &ExperimentVae,
    samples: usize,
    device: &Device,
) -> Result<f64> {
    flowvae_nn::with_worker_pool(|| test_nll_here(model, data, exp, samples, device))
}

fn test_nll_here(
    model: &FlowVae,
    data: &Dataset,
    exp: &ExperimentVae,
    samples: usize,
    device: &Device,
) -> Result<f64> {
    let mut rng = seeded(exp.seed, flowvae_nn::Stream::Nll);
    let mut maker = BatchMaker::plain();
    let indices: Vec<usize> = (0..data.n).collect();
    let per_batch = exp.eval.nll_batch.get();
    let mut progress = Progress::new("test NLL", data.n as u64, "images");
    let mut total = 0.0;
    for (i, idx) in indices.chunks(per_batch).enumerate() {
        let x = maker.batch(data, idx, device)?;
        let log_p = log_likelihood(model, &x, samples, exp.eval.nll_chunk.get(), &mut rng)?;
        total -= log_p.iter().sum::<f64>();
        progress.set(((i + 1) * per_batch).min(data.n) as u64, "");
    }
    progress.finish();
    Ok(total / data.n.max(1) as f64)
}

/// Trains, evaluates and plots one Flow-VAE into `run`; `model` names it in comparisons.
/// Returns the summary written.
pub fn run_vae(
    exp: &ExperimentVae,
    model: &str,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<VaeSummary> {
    run.log(&format!("start {model}: flow {}", flow_label(exp)));
    let cpu_at_start = process_cpu_seconds();
    let trained = train(exp, run, device, resume)?;
    let eval_started = Instant::now();
    let test = evaluate_elbo(
        &trained.model,
        &trained.splits.test,
        500,
        exp.seed,
        flowvae_nn::Stream::Test,
        device,
    )?;
    let diagnostics = latent_diagnostics(&trained.model, &trained.splits.test, 500, device)?;
    let samples = exp.eval.nll_samples.get();
    let nll = test_nll(&trained.model, &trained.splits.test, exp, samples, device)?;
    let eval_seconds = eval_started.elapsed().as_secs_f64();
    plot_run(exp, &trained.model, &trained.splits.test, run, device)?;
    let summary = VaeSummary {
        device: Some(crate::run::device::describe_device(device)),
        best_epoch: Some(trained.best_epoch),
        // Across interruptions: the checkpoint's record plus this process's training and
        // evaluation (unknown for a run resumed from a checkpoint that predates the record).
        cpu_seconds: cpu_at_start
            .zip(process_cpu_seconds())
            .zip(trained.cpu_seconds_before)
            .map(|((start, now), before)| before + now - start),
        data: describe(&exp.data),
        epochs: Some(trained.epochs_run),
        eval_seconds: Some(eval_seconds),
        experiment: exp.name.clone(),
        flow: flow_label(exp),
        model: model.to_string(),
        objective: format!("{:?}, K = {}", exp.objective.bound, exp.objective.samples),
        parameters: Some(trained.store.num_scalars()),
        seed: exp.seed,
        test: TestMetrics {
            active_units: Some(diagnostics.active_units),
            kl_per_dim: Some(diagnostics.kl_per_dim),
            images: Some(trained.splits.test.n),
            kl: Some(test.kl),
            neg_elbo: Some(test.neg_elbo),
            nll,
            nll_samples: samples,
            recon: Some(test.recon),
            other: Default::default(),
        },
        threads: Some(crate::run::threads::workers()),
        train_seconds: Some(trained.train_seconds),
        versions: Some(Versions::current()),
        other: Default::default(),
    };
    RunSummary::Vae(summary.clone()).write(run.path())?;
    run.log(&format!(
        "done {model}: test NLL {nll:.4} (S = {samples}), test -ELBO {:.4}",
        test.neg_elbo
    ));
    Ok(summary)
}

/// `planar(k=8) + affine_coupling(k=4)`, or `none` for a plain VAE.
/// The posterior's label, with the prior when it is not the standard normal, e.g.
/// `planar(k=16); prior: mixture(10)`.
pub fn flow_label(exp: &ExperimentVae) -> String {
    use crate::report::labels::{posterior_label, stack_label};
    let posterior = posterior_label(&exp.flow);
    match &exp.model.prior {
        PriorSpec::StandardNormal => posterior,
        PriorSpec::Mixture { components } => format!("{posterior}; prior: mixture({components})"),
        PriorSpec::Vamp { pseudo_inputs } => format!("{posterior}; prior: vamp({pseudo_inputs})"),
        PriorSpec::Flow(stack) => format!("{posterior}; prior: flow {}", stack_label(stack)),
    }
}

fn to_images(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2()?)
}

/// Learning curves (PNG and SVG), prior samples and reconstructions.
pub fn plot_run(
    exp: &ExperimentVae,
    model: &FlowVae,
    test: &Dataset,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    let (header, rows) = read_metrics(&run.path().join("metrics.csv"))?;
    let column = |name: &str| header.iter().position(|h| h == name);
    let mut series = Vec::new();
    for (name, label) in [("train_neg_elbo", "train"), ("val_neg_elbo", "validation")] {
        if let (Some(e), Some(c)) = (column("epoch"), column(name)) {
            let points = rows.iter().map(|r| (r[e], r[c])).collect();
            series.push(Series {
                name: label.into(),
                points,
            });
        }
    }
    for ext in ["png", "svg"] {
        let path = run.file(&format!("plots/learning_curves.{ext}"))?;
        line_chart(&path, &exp.name, "epoch", "-ELBO (nats)", &series)?;
    }
    let (h, w) = (test.height, test.width);
    let prior = sample_prior(model, 64, exp.seed, device)?;
    image_grid(
        &run.file("plots/samples.png")?,
        &to_images(&prior)?,
        (h, w),
        8,
        scale_for(w),
        &format!("{}: decoder means of 64 prior draws", exp.name),
    )?;
    let shown: Vec<usize> = (0..test.n.min(32)).collect();
    let x = BatchMaker::plain().batch(test, &shown, device)?;
    let recon = model.reconstruct(&x)?;
    let mut images = Vec::new();
    for row in 0..shown.len().div_ceil(8) {
        let range = row * 8..((row + 1) * 8).min(shown.len());
        images.extend(to_images(&x)?[range.clone()].to_vec());
        images.extend(to_images(&recon)?[range].to_vec());
    }
    image_grid(
        &run.file("plots/reconstructions.png")?,
        &images,
        (h, w),
        8,
        scale_for(w),
        "test images (odd rows) and their reconstructions (even rows)",
    )?;
    Ok(())
}

fn scale_for(width: usize) -> usize {
    (112 / width.max(1)).max(1)
}

/// Decoder means of `n` draws from the prior, `(n, D_x)`.
pub fn sample_prior(model: &FlowVae, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
    let mut rng = seeded(seed, flowvae_nn::Stream::PriorSamples);
    let z = model.sample_prior(n, &mut rng, device)?;
    Ok(model.decoder.mean(&z)?)
}

/// A finished run folder's experiment and best parameters, rebuilt.
#[derive(Debug)]
pub struct LoadedRun {
    pub exp: ExperimentVae,
    pub model: FlowVae,
}

/// Rebuilds the model of a run folder from its `config.yaml` and best checkpoint.
pub fn load_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    let config = dir.join("config.yaml");
    let exp = match Experiment::load(&config)? {
        Experiment::Vae(e) => e,
        Experiment::TwoD(_) | Experiment::Density(_) => {
            return Err(RunnerError::Config {
                file: config,
                location: None,
                message: "this is not a Flow-VAE run; eval and gaps work on Flow-VAE runs".into(),
            })
        }
    };
    let checkpoint = dir.join("checkpoints/best.safetensors");
    let store = ParamStore::from_safetensors(&checkpoint, DType::F32, device)?;
    let splits = load_splits(&exp.data)?;
    let model = build_model(&exp.sections(), &store, splits.test.dim, device).map_err(|e| {
        RunnerError::Config {
            file: checkpoint.clone(),
            location: None,
            message: format!("does not fit the model of config.yaml: {e}"),
        }
    })?;
    store.check_complete(&checkpoint.display().to_string())?;
    Ok(LoadedRun { exp, model })
}

/// `flowvae eval`: recomputes the test NLL with `samples` importance samples and records it
/// in `summary.json` (other entries are kept).
pub fn eval_run(dir: &Path, samples: Option<usize>, device: &Device) -> Result<(f64, usize)> {
    let run = RunDir::open(dir)?;
    let loaded = load_run(dir, device)?;
    let splits = load_splits(&loaded.exp.data)?;
    let s = samples.unwrap_or(loaded.exp.eval.nll_samples.get());
    if s == 0 {
        return Err(RunnerError::Config {
            file: "--samples".into(),
            location: None,
            message: "0 importance samples; the estimate needs at least 1".into(),
        });
    }
    let nll = test_nll(&loaded.model, &splits.test, &loaded.exp, s, device)?;
    if !nll.is_finite() {
        return Err(RunnerError::NonFinite {
            what: format!("test NLL ({nll}) with S = {s}; summary.json is left as it was"),
            step: 0,
        });
    }
    let RunSummary::Vae(mut summary) = RunSummary::read(run.path())? else {
        return Err(RunnerError::Config {
            file: run.path().join("summary.json"),
            location: None,
            message: "not the summary of a trained Flow-VAE".into(),
        });
    };
    summary.test.nll = nll;
    summary.test.nll_samples = s;
    summary.data = describe(&loaded.exp.data);
    RunSummary::Vae(summary).write(run.path())?;
    Ok((nll, s))
}

/// `flowvae sample`: a PNG grid of `n` decoder means from the prior.
///
/// A density run is sampled at `temperature` (given `context` when conditional) into a PNG
/// grid or a CSV (by `out`'s extension); a Flow-VAE's prior takes neither.
pub fn sample_run(
    dir: &Path,
    (n, temperature, seed): (usize, f64, u64),
    context: Option<&str>,
    out: &Path,
    device: &Device,
) -> Result<()> {
    if crate::tools::density::is_density_run(dir) {
        let draws = (n, temperature, seed);
        return crate::tools::density::sample_to_file(dir, draws, context, out, device);
    }
    if context.is_some() {
        return Err(RunnerError::Config {
            file: "--context".into(),
            location: None,
            message: "a Flow-VAE's prior takes no condition; --context is for conditional \
                      density runs"
                .into(),
        });
    }
    if temperature != 1.0 {
        return Err(RunnerError::Config {
            file: "--temperature".into(),
            location: None,
            message: "a Flow-VAE's prior samples take no temperature; it is for density runs"
                .into(),
        });
    }
    let loaded = load_run(dir, device)?;
    let splits = load_splits(&loaded.exp.data)?;
    let images = to_images(&sample_prior(&loaded.model, n, seed, device)?)?;
    let (h, w) = (splits.test.height, splits.test.width);
    let cols = (n as f64).sqrt().ceil() as usize;
    let caption = format!("{n} prior samples (seed {seed})");
    image_grid(out, &images, (h, w), cols.max(1), scale_for(w), &caption)?;
    Ok(())
}
