//! 2-D flow experiments: fit a flow to an energy by reverse KL, or to samples by maximum
//! likelihood, then plot target and learned densities side by side.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use flowvae_data::Energy2d;
use flowvae_flows::{
    build_stack, standard_normal_log_prob, Base, Composed, Conditioning, Flow, FlowDistribution,
    ParamStore, StackOptions,
};
use flowvae_nn::backward_with_sink;
use flowvae_nn::{seeded, SeededRng};

use super::two_d_report::{plot_curve, report_2d};
use crate::error::{Result, RunnerError};
use crate::experiment::{Experiment2d, Target2d};
use crate::run::summary::{RunSummary, TwoDSummary, Versions};
use flowvae_train::MetricsWriter;
use flowvae_train::Optimizer;
use flowvae_train::Progress;
use flowvae_train::{write_atomic, RunDir};

/// Points evaluated per chunk when a density is drawn on a grid.
pub(super) const GRID_CHUNK: usize = 8192;

pub(super) fn points_tensor(points: &[[f64; 2]], device: &Device) -> Result<Tensor> {
    let flat: Vec<f32> = points
        .iter()
        .flat_map(|p| [p[0] as f32, p[1] as f32])
        .collect();
    Ok(Tensor::from_vec(flat, (points.len(), 2), device)?)
}

pub(super) fn tensor_points(t: &Tensor) -> Result<Vec<[f64; 2]>> {
    let rows: Vec<Vec<f32>> = t.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|r| [f64::from(r[0]), f64::from(r[1])])
        .collect())
}

pub(super) fn mean_f64(t: &Tensor) -> Result<f64> {
    Ok(t.mean_all()?.to_dtype(DType::F64)?.to_scalar()?)
}

/// β of the annealed reverse-KL objective at a step: `min(1, 0.01 + step / warmup)`.
pub fn beta_at(step: usize, warmup: usize) -> f64 {
    if warmup == 0 {
        1.0
    } else {
        (0.01 + step as f64 / warmup as f64).min(1.0)
    }
}

/// A 2-D flow distribution and the store of its parameters.
pub(super) struct Model {
    pub(super) store: ParamStore,
    pub(super) dist: FlowDistribution,
}

impl Model {
    pub(super) fn stack(&self) -> &dyn Flow {
        self.dist.flow()
    }
}

fn build_model(exp: &Experiment2d, device: &Device) -> Result<Model> {
    let store = crate::run::memory::limited_store(exp.seed);
    build_model_on(exp, store.clone(), device)
        .map_err(|err| crate::run::memory::explain_refusal(&store, err, "flow"))
}

/// Refuses a 2-D experiment whose stack would not fit in memory, before any run folder exists.
pub fn check_size(exp: &Experiment2d, device: &Device) -> Result<()> {
    build_model(exp, device).map(|_| ())
}

/// The flow distribution of a finished 2-D run, from its `final.safetensors`.
pub fn load_distribution(
    exp: &Experiment2d,
    checkpoint: &std::path::Path,
    device: &Device,
) -> Result<FlowDistribution> {
    let store = ParamStore::from_safetensors(checkpoint, DType::F32, device)?;
    let model = build_model_on(exp, store, device)?;
    model
        .store
        .check_complete(&checkpoint.display().to_string())?;
    Ok(model.dist)
}

fn build_model_on(exp: &Experiment2d, store: ParamStore, device: &Device) -> Result<Model> {
    let vb = store.var_builder(DType::F32, device).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: exp.seed,
    };
    let stack: Composed = build_stack(&exp.flow, 2, &store, vb, options)?;
    if stack.num_amortized_params() > 0 || stack.context_dim() > 0 {
        return Err(RunnerError::Config {
            file: "flow".into(),
            location: None,
            message: "a 2-D experiment has no encoder: use `amortized: false` and no context"
                .into(),
        });
    }
    let base_vb = store.var_builder(DType::F32, device).pp("base");
    let base = Base::new(&exp.base, base_vb, 2)?;
    Ok(Model {
        store,
        dist: FlowDistribution::with_base(Box::new(stack), base),
    })
}

/// One optimisation step's loss and the quantity logged next to it.
struct StepLoss {
    loss: Tensor,
    /// Energies: the β = 1 objective `E[log q + U]`; density: the same as the loss.
    monitor: f64,
}

/// The energy trained against: `U(z)` plus the confining wall, `(B,)`.
pub(super) fn walled_energy(target: Energy2d, z: &Tensor, wall: Option<f64>) -> Result<Tensor> {
    let energy = flowvae_data::energy(target, z)?;
    match wall {
        Some(a) => {
            let outside = z.abs()?.affine(1.0, -a)?.relu()?.affine(4.0, 0.0)?;
            Ok((energy + outside.sqr()?.sum(1)?.affine(0.5, 0.0)?)?)
        }
        None => Ok(energy),
    }
}

/// `U(x, y)` plus the wall, in f64, for the target plot and its normaliser.
pub(super) fn walled_energy_f64(target: Energy2d, x: f64, y: f64, wall: Option<f64>) -> f64 {
    let penalty = |v: f64| wall.map_or(0.0, |a| 0.5 * ((v.abs() - a).max(0.0) * 4.0).powi(2));
    target.energy_f64(x, y) + penalty(x) + penalty(y)
}

fn energy_loss(
    model: &Model,
    target: Energy2d,
    eps: &Tensor,
    beta: f64,
    wall: Option<f64>,
) -> Result<StepLoss> {
    let (z, log_det) = model.stack().forward(eps, Conditioning::none())?;
    let log_q = (standard_normal_log_prob(eps)? - log_det)?;
    let energy = walled_energy(target, &z, wall)?;
    let loss = (&log_q + (&energy * beta)?)?.mean_all()?;
    let monitor = mean_f64(&(log_q + energy)?)?;
    Ok(StepLoss { loss, monitor })
}

fn density_loss(model: &Model, x: &Tensor) -> Result<StepLoss> {
    let nll = model
        .dist
        .log_prob(x, Conditioning::none())?
        .mean_all()?
        .neg()?;
    let monitor = mean_f64(&nll)?;
    Ok(StepLoss { loss: nll, monitor })
}

/// Trains and reports a 2-D experiment into `run`; returns the summary written.
pub fn run_2d(exp: &Experiment2d, run: &RunDir, device: &Device) -> Result<TwoDSummary> {
    let started = Instant::now();
    let model = build_model(exp, device)?;
    if matches!(exp.target, Target2d::Samples(_)) && !model.stack().is_invertible() {
        return Err(RunnerError::Config {
            file: "flow".into(),
            location: None,
            message: format!(
                "density estimation needs an invertible stack, but {} has no inverse",
                model.stack().name()
            ),
        });
    }
    let mut noise = seeded(exp.seed, flowvae_nn::Stream::Noise);
    let mut data_rng = seeded(exp.seed, flowvae_nn::Stream::Data);
    let test_set = match exp.target {
        Target2d::Samples(toy) => {
            let points = toy.sample(
                exp.train.test_samples.get(),
                &mut seeded(exp.seed, flowvae_nn::Stream::Test),
            );
            Some(points_tensor(&points, device)?)
        }
        Target2d::Energy(_) => None,
    };
    let steps = exp.train.steps.get();
    let rngs = (&mut noise, &mut data_rng);
    let curve = fit_2d(exp, &model, run, device, rngs, test_set.as_ref(), &started)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let checkpoint = run.file("checkpoints/final.safetensors")?;
    write_atomic(&checkpoint, &model.store.to_safetensors_bytes()?)?;
    let report = report_2d(exp, &model, run, device, &mut noise, test_set.as_ref())?;
    plot_curve(exp, run, curve)?;
    let summary = TwoDSummary {
        experiment: exp.name.clone(),
        final_metrics: report
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        flow: model.stack().name(),
        parameters: model.store.num_scalars(),
        seed: exp.seed,
        steps,
        threads: Some(crate::run::threads::workers()),
        train_seconds,
        versions: Some(Versions::current()),
        wall_seconds: started.elapsed().as_secs_f64(),
        other: Default::default(),
    };
    RunSummary::TwoD(summary.clone()).write(run.path())?;
    Ok(summary)
}

/// The training steps of a 2-D run, with `metrics.csv` every `log_every` steps; returns the
/// monitored curve `(step, value)` for the loss plot.
fn fit_2d(
    exp: &Experiment2d,
    model: &Model,
    run: &RunDir,
    device: &Device,
    (noise, data_rng): (&mut SeededRng, &mut SeededRng),
    test_set: Option<&Tensor>,
    started: &Instant,
) -> Result<Vec<(f64, f64)>> {
    let columns = ["step", "loss", "beta", "monitor", "test_nll", "time_s"];
    let mut metrics = MetricsWriter::create(&run.file("metrics.csv")?, &columns)?;
    let steps = exp.train.steps.get();
    let batch = exp.train.batch_size.get();
    let mut optimizer: Option<Optimizer> = None;
    let mut progress = Progress::new("train", steps as u64, "steps");
    let mut curve = Vec::new();
    for step in 1..=steps {
        let beta = beta_at(step, exp.train.beta_warmup_steps);
        // Batch statistics (BatchNorm) while training; running averages for the test NLL.
        model.stack().set_training(true);
        let step_loss = match exp.target {
            Target2d::Energy(target) => {
                let eps = model
                    .dist
                    .base()
                    .sample(batch, 1.0, noise, DType::F32, device)?;
                energy_loss(model, target, &eps, beta, exp.train.wall)?
            }
            Target2d::Samples(toy) => {
                let x = points_tensor(&toy.sample(batch, data_rng), device)?;
                density_loss(model, &x)?
            }
        };
        // Created after the first forward so data-dependent initialisations (ActNorm) exist.
        let opt = match optimizer.as_mut() {
            Some(o) => o,
            None => optimizer.insert(Optimizer::new(model.store.vars(), exp.optimizer.clone())?),
        };
        let loss_value = mean_f64(&step_loss.loss)?;
        if !loss_value.is_finite() {
            return Err(RunnerError::NonFinite {
                what: format!("loss at step {step}"),
                step,
            });
        }
        opt.step(&backward_with_sink(&step_loss.loss)?)?;
        progress.set(step as u64, &format!("loss {loss_value:.4}"));
        model.stack().set_training(false);
        if step % exp.train.log_every.get() == 0 || step == steps {
            let test_nll = match test_set {
                Some(t) => mean_f64(&model.dist.log_prob(t, Conditioning::none())?.neg()?)?,
                None => f64::NAN,
            };
            let elapsed = started.elapsed().as_secs_f64();
            metrics.row(&[
                step as f64,
                loss_value,
                beta,
                step_loss.monitor,
                test_nll,
                elapsed,
            ])?;
            curve.push((step as f64, step_loss.monitor));
        }
    }
    progress.finish();
    Ok(curve)
}
