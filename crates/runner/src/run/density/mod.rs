//! Density runs: a flow fitted by maximum likelihood to a data set of any dimension, with early
//! stopping on the validation log-likelihood, the best weights kept, and test log-likelihoods
//! in the spaces the papers report (`report.rs`).

mod anomaly;
pub(crate) mod condition;
mod fit;
pub(crate) mod preprocess;
mod report;

use candle_core::{DType, Device, Tensor};
use condition::Contexts;
use flowvae_data::{Dataset, Splits};
use flowvae_flows::{
    build_stack, Base, ConditionalBase, Conditioning, Flow, FlowDistribution, FlowSpec, ParamStore,
    StackOptions, Stream,
};
use flowvae_nn::seeded;
use flowvae_train::{write_atomic, RunDir};

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
        Ok(self.dist.log_prob(z, Conditioning::context(context))?)
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

/// Trains and reports a density experiment into `run`; with `resume`, continues from the
/// run's last checkpoint when there is one.
pub fn run_density(
    exp: &ExperimentDensity,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<DensitySummary> {
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
    let (store, resumed) = fit::start(exp, run.path(), resume, device)?;
    let model = DensityModel::build(exp, dims, store, device)?;
    if resumed.is_some() {
        model.store.check_complete("checkpoints/last.safetensors")?;
    }
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
    // On the worker pool, so that each large product splits its work with this thread
    // instead of waking the pool's threads for every matmul (see `flowvae_nn::workers`).
    flowvae_nn::with_worker_pool(|| {
        let cpu_at_start = flowvae_train::process_cpu_seconds();
        let fitted = fit::fit(&job, resumed)?;
        model.store.load_into(&best_path)?;
        report::finish(&job, &fitted, cpu_at_start)
    })
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
