//! Density runs: a flow fitted by maximum likelihood to a data set of any dimension, with early
//! stopping on the validation log-likelihood, the best weights kept, and test log-likelihoods
//! in the spaces the papers report (`report.rs`).

mod anomaly;
pub(crate) mod condition;
pub(crate) mod preprocess;
mod report;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use condition::Contexts;
use flowvae_data::{Batcher, Dataset, Splits};
use flowvae_flows::{
    build_stack, Base, ConditionalBase, Conditioning, Flow, FlowDistribution, FlowSpec, ParamStore,
    StackOptions, Stream,
};
use flowvae_nn::{backward_with_sink, seeded};
use flowvae_train::{write_atomic, MetricsWriter, Optimizer, Progress, RunDir};

use crate::error::{Result, RunnerError};
use crate::experiment::density::ExperimentDensity;
use preprocess::Prepared;
pub use report::{load_trained, DensitySummary, DensityTest, TrainedDensity};

/// A density model: the flow and base on a parameter store.
pub struct DensityModel {
    /// The parameters (flow under `flow`, base under `base`).
    pub store: ParamStore,
    /// The flow distribution.
    pub dist: FlowDistribution,
}

impl DensityModel {
    /// Builds the model of `exp` on dimension `dim` over `store` (fresh or loaded); a
    /// conditional density reads a context of width `context` (0: none).
    pub fn build(
        exp: &ExperimentDensity,
        (dim, context): (usize, usize),
        store: ParamStore,
        device: &Device,
    ) -> Result<Self> {
        let vb = store.var_builder(DType::F32, device);
        let options = StackOptions {
            amortized_default: false,
            seed: exp.seed,
        };
        let specs = conditioned_specs(&exp.flow, context)?;
        let stack = build_stack(&specs, dim, &store, vb.pp("flow"), options)?;
        if !stack.is_invertible() || stack.num_amortized_params() > 0 {
            return Err(config(
                "flow",
                format!(
                "a density model needs an invertible stack with global parameters, but {} is not",
                stack.name()
            ),
            ));
        }
        let base = Base::new(&exp.density.base, vb.pp("base"), dim)?;
        let base = ConditionalBase::new(base, vb.pp("base"), context)?;
        if context > 0 && stack.context_dim() == 0 && base.context_dim() == 0 {
            return Err(config(
                "data.condition",
                "nothing reads the condition: add a layer \
                that reads a context (affine_coupling, additive_coupling, maf, rq_coupling, \
                rq_maf) or a `diagonal` or `mixture` base"
                    .into(),
            ));
        }
        let dist = FlowDistribution::with_conditional_base(Box::new(stack), base);
        Ok(Self { store, dist })
    }

    /// Per-row `log p(z | c)` `(B,)` of flow-space rows `z` and their contexts `(B, C)`
    /// (conditional densities), in evaluation mode.
    pub fn log_prob(&self, z: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        self.dist.flow().set_training(false);
        Ok(self.dist.log_prob(z, conditioned(context))?)
    }
}

/// The conditioning of a density model: a context or nothing.
pub(crate) fn conditioned(context: Option<&Tensor>) -> Conditioning<'_> {
    Conditioning {
        params: None,
        context,
    }
}

fn config(field: &str, message: String) -> RunnerError {
    RunnerError::Config {
        file: field.into(),
        location: None,
        message,
    }
}

/// `specs` with every layer that can read a context reading one of width `context`; a width
/// set in the file must agree.
fn conditioned_specs(specs: &[FlowSpec], context: usize) -> Result<Vec<FlowSpec>> {
    let mut specs = specs.to_vec();
    for (i, spec) in specs.iter_mut().enumerate() {
        let kind = spec.kind();
        match spec.context_mut() {
            Some(width) if context > 0 && *width == 0 => *width = context,
            Some(width) if *width != context => {
                let message = match context {
                    0 => "this run has no `data.condition` to read".to_string(),
                    _ => format!("the condition gives a context of width {context}; leave it out"),
                };
                let field = format!("flow[{i}].{kind}.context");
                return Err(config(&field, format!("{} given, but {message}", *width)));
            }
            _ => {}
        }
    }
    Ok(specs)
}

/// Per-row log-likelihoods of `data` in flow space and the preprocessing's log-det, each
/// `n` values; the held-out noise is drawn from `stream` of `noise_seed`. A conditional
/// model reads the contexts of the split named by `context`.
pub(crate) fn log_likelihoods(
    model: &DensityModel,
    prepared: &Prepared,
    (data, context): (&Dataset, Option<(&Contexts, &str)>),
    (noise_seed, stream): (u64, Stream),
    batch: usize,
    device: &Device,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut rng = seeded(noise_seed, stream);
    let (mut flow_ll, mut prep_ld) = (Vec::with_capacity(data.n), Vec::with_capacity(data.n));
    let indices: Vec<usize> = (0..data.n).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let x = data.batch_tensor(chunk, device)?;
        let noise = preprocess::noise(&mut rng, chunk.len(), data.dim, DType::F32, device)?;
        let (z, log_det) = prepared.to_flow(&x, Some(&noise))?;
        let c = context
            .map(|(c, split)| c.rows(split, chunk, device))
            .transpose()?;
        let ll = model.log_prob(&z, c.as_ref())?;
        flow_ll.extend(ll.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        prep_ld.extend(log_det.to_dtype(DType::F64)?.to_vec1::<f64>()?);
    }
    Ok((flow_ll, prep_ld))
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Trains and reports a density experiment into `run`.
pub fn run_density(
    exp: &ExperimentDensity,
    run: &RunDir,
    device: &Device,
) -> Result<DensitySummary> {
    let started = Instant::now();
    let data = &exp.data;
    let condition::LoadedData { splits, contexts } = condition::load(data)?;
    let prepared = Prepared::fit(exp.preprocess(), &splits.train, data.source.levels())?;
    let record = preprocess::Record {
        dim: splits.train.dim,
        preprocess: prepared.clone(),
        condition: contexts.as_ref().map(|c| c.fitted.clone()),
    };
    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
    write_atomic(&run.file("preprocess.json")?, text.as_bytes())?;
    let width = contexts.as_ref().map_or(0, |c| c.fitted.width());
    let dims = (splits.train.dim, width);
    let model = DensityModel::build(exp, dims, ParamStore::new(exp.seed), device)?;
    let best_path = run.file("checkpoints/best.safetensors")?;
    let job = Job {
        exp,
        model: &model,
        prepared: &prepared,
        splits: &splits,
        contexts: contexts.as_ref(),
        run,
        device,
    };
    let (epochs, best_epoch) = fit(&job)?;
    model.store.load_into(&best_path)?;
    let train_seconds = started.elapsed().as_secs_f64();
    report::finish(&job, (epochs, best_epoch, train_seconds))
}

/// What the stages of a density run share.
struct Job<'a> {
    exp: &'a ExperimentDensity,
    model: &'a DensityModel,
    prepared: &'a Prepared,
    splits: &'a Splits,
    contexts: Option<&'a Contexts>,
    run: &'a RunDir,
    device: &'a Device,
}

impl Job<'_> {
    /// The contexts `(B, C)` of rows `idx` of `split`, for a conditional density.
    fn context(&self, split: &str, idx: &[usize]) -> Result<Option<Tensor>> {
        self.contexts
            .map(|c| c.rows(split, idx, self.device))
            .transpose()
    }
}

/// The epochs: returns the epochs trained and the best epoch (whose weights are in
/// `checkpoints/best.safetensors`).
fn fit(job: &Job<'_>) -> Result<(usize, usize)> {
    let (exp, model, prepared, splits, run, device) = (
        job.exp,
        job.model,
        job.prepared,
        job.splits,
        job.run,
        job.device,
    );
    let columns = ["epoch", "train_nll", "val_log_likelihood", "time_s"];
    let mut metrics = MetricsWriter::create(&run.file("metrics.csv")?, &columns)?;
    let train = &splits.train;
    let batcher = Batcher::new(train.n, exp.train.batch_size.get(), exp.seed);
    let epochs = exp.train.epochs.get();
    let mut optimizer: Option<Optimizer> = None;
    let (mut best, mut best_epoch) = (f64::NEG_INFINITY, 0);
    let mut progress = Progress::new("train", epochs as u64, "epochs");
    let started = Instant::now();
    let mut done = 0;
    for epoch in 1..=epochs {
        let mut noise_rng = seeded(exp.seed, Stream::EpochNoise(epoch));
        let mut losses = Vec::new();
        for batch in batcher.epoch(epoch as u64) {
            let x = train.batch_tensor(&batch, device)?;
            let noise =
                preprocess::noise(&mut noise_rng, batch.len(), train.dim, DType::F32, device)?;
            let (z, _) = prepared.to_flow(&x, Some(&noise))?;
            let context = job.context("train", &batch)?;
            model.dist.flow().set_training(true);
            let nll = model
                .dist
                .log_prob(&z, conditioned(context.as_ref()))?
                .mean_all()?
                .neg()?;
            let value = nll.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(RunnerError::NonFinite {
                    what: format!("training NLL in epoch {epoch}"),
                    step: epoch,
                });
            }
            // Created after the first forward so data-dependent initialisations exist.
            let opt = match optimizer.as_mut() {
                Some(o) => o,
                None => {
                    optimizer.insert(Optimizer::new(model.store.vars(), exp.optimizer.clone())?)
                }
            };
            opt.step(&backward_with_sink(&nll)?)?;
            losses.push(value);
        }
        let held_out = (exp.data.split_seed, Stream::Validation);
        let batch = exp.eval_batch.get();
        let val_rows = (&splits.val, job.contexts.map(|c| (c, "val")));
        let (ll, prep) = log_likelihoods(model, prepared, val_rows, held_out, batch, device)?;
        // On the scale the summary reports: logit space for images, data units for tables.
        let val = match prepared {
            Prepared::Logit { .. } => mean(&ll),
            _ => mean(&ll) + mean(&prep),
        };
        if !val.is_finite() {
            return Err(RunnerError::NonFinite {
                what: format!("validation log-likelihood in epoch {epoch}"),
                step: epoch,
            });
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics.row(&[epoch as f64, mean(&losses), val, elapsed])?;
        progress.set(epoch as u64, &format!("val log-likelihood {val:.3}"));
        done = epoch;
        if val > best {
            (best, best_epoch) = (val, epoch);
            write_atomic(
                &run.file("checkpoints/best.safetensors")?,
                &model.store.to_safetensors_bytes()?,
            )?;
        }
        if exp
            .train
            .patience
            .is_some_and(|p| epoch - best_epoch >= p.get())
        {
            tracing::info!("early stop at epoch {epoch}: best {best:.3} at epoch {best_epoch}");
            break;
        }
    }
    progress.finish();
    Ok((done, best_epoch))
}
