//! `flowvae check`: build the stack a YAML file describes with random parameters and compare
//! every layer's log-det with the brute-force Jacobian, in f64.

use std::path::Path;

use candle_core::{DType, Device};
use flowvae_flows::{build_stack, Conditioning, Flow, FlowSpec, ParamStore, StackOptions};
use flowvae_flows::{check_composed, perturb_parameters, CheckReport};
use flowvae_nn::{seeded, standard_normal};

use crate::error::{Result, RunnerError};
use crate::experiment::yaml;
use crate::experiment::Experiment;

/// Settings of a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Dimension to build the stack on; default: the experiment's (2 for 2-D), else 4.
    pub dim: Option<usize>,
    /// Random points per check.
    pub batch: usize,
    /// Seed of the parameters and points.
    pub seed: u64,
    /// Build planar / radial / Sylvester layers amortized (random per-sample parameters).
    pub amortized: bool,
    /// Errors above this fail the check.
    pub tolerance: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            dim: None,
            batch: 8,
            seed: 0,
            amortized: false,
            tolerance: 1e-6,
        }
    }
}

/// The result of a check: one report per layer, then the whole stack.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Which stack of the file: `flow`, or the variant's name.
    pub stack: String,
    pub dim: usize,
    pub reports: Vec<CheckReport>,
    pub tolerance: f64,
}

impl CheckOutcome {
    /// Whether every error is below the tolerance.
    pub fn passed(&self) -> bool {
        self.reports.iter().all(|r| r.worst() <= self.tolerance)
    }

    /// A plain-text table, one line per layer.
    pub fn table(&self) -> String {
        let fmt = |v: Option<f64>| {
            v.map(|v| format!("{v:.2e}"))
                .unwrap_or_else(|| "n/a".into())
        };
        let mut out = format!(
            "{:<4} {:<28} {:>14} {:>14} {:>14}  {}\n",
            "#", "layer", "log-det err", "round trip", "ld fwd+inv", "ok"
        );
        for (i, r) in self.reports.iter().enumerate() {
            let index = if i + 1 == self.reports.len() {
                "all".to_string()
            } else {
                i.to_string()
            };
            out.push_str(&format!(
                "{:<4} {:<28} {:>14} {:>14} {:>14}  {}\n",
                index,
                r.name,
                fmt(Some(r.log_det_error)),
                fmt(r.round_trip_error),
                fmt(r.log_det_sum_error),
                if r.worst() <= self.tolerance {
                    "yes"
                } else {
                    "NO"
                }
            ));
        }
        out
    }
}

/// A flow stack with the name it has in its file (`flow`, or a variant's name).
pub type NamedStack = (String, Vec<FlowSpec>);

/// The stacks of a file: a stack file (a YAML list of flows) gives one; an experiment gives
/// its `flow:` section, or one stack per variant. Also the experiment's dimension.
pub fn read_stacks(path: &Path) -> Result<(Vec<NamedStack>, Option<usize>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::RunnerError::io(path, "cannot read the YAML file", e))?;
    let value: serde_yaml::Value = yaml::parse(path, &text)?;
    if value.is_sequence() {
        return Ok((vec![("flow".into(), yaml::parse(path, &text)?)], None));
    }
    match Experiment::parse(path, &text)? {
        Experiment::TwoD(e) => Ok((vec![("flow".into(), e.flow)], Some(2))),
        Experiment::Density(e) => Ok((vec![("flow".into(), e.flow)], None)),
        Experiment::Vae(e) if e.variants.is_empty() => {
            Ok((vec![("flow".into(), e.flow)], Some(e.model.latent)))
        }
        Experiment::Vae(e) => {
            let stacks = e.variants.into_iter().map(|v| (v.name, v.flow)).collect();
            Ok((stacks, Some(e.model.latent)))
        }
    }
}

/// Runs the check on every stack of `path` (see [`read_stacks`]).
pub fn check_file(path: &Path, options: &CheckOptions) -> Result<Vec<CheckOutcome>> {
    let (stacks, experiment_dim) = read_stacks(path)?;
    let dim = options.dim.or(experiment_dim).unwrap_or(4);
    stacks
        .into_iter()
        .map(|(name, specs)| check_stack(name, &specs, dim, options))
        .collect()
}

/// The largest dimension `check` builds a stack on: it forms a `dim × dim` Jacobian per
/// point, by one backward pass per output dimension.
pub const MAX_CHECK_DIM: usize = 1024;

/// Checks one stack on dimension `dim`.
pub fn check_stack(
    name: String,
    specs: &[FlowSpec],
    dim: usize,
    options: &CheckOptions,
) -> Result<CheckOutcome> {
    if dim == 0 || dim > MAX_CHECK_DIM {
        return Err(RunnerError::Config {
            file: "--dim".into(),
            location: None,
            message: format!(
                "dimension {dim}: check works on 1 to {MAX_CHECK_DIM} dimensions (it forms a \
                 dim × dim Jacobian per point); pass a smaller --dim"
            ),
        });
    }
    let device = Device::Cpu;
    let store = ParamStore::new(options.seed);
    let vb = store.var_builder(DType::F64, &device).pp("flow");
    let stack_options = StackOptions {
        amortized_default: options.amortized,
        seed: options.seed,
    };
    let stack = build_stack(specs, dim, &store, vb, stack_options)?;
    let mut rng = seeded(options.seed, flowvae_nn::Stream::Check);
    let b = options.batch.max(1);
    let x = standard_normal(&mut rng, (b, dim), DType::F64, &device)?;
    let p = stack.num_amortized_params();
    let params = match p {
        0 => None,
        p => Some((standard_normal(&mut rng, (b, p), DType::F64, &device)? * 0.7)?),
    };
    let c = stack.context_dim();
    let context = match c {
        0 => None,
        c => Some(standard_normal(&mut rng, (b, c), DType::F64, &device)?),
    };
    let cond = Conditioning {
        params: params.as_ref(),
        context: context.as_ref(),
    };
    // One pass first so data-dependent initialisations (ActNorm) happen before perturbing.
    stack.forward(&x, cond)?;
    perturb_parameters(&store, options.seed, 0.3)?;
    let reports = check_composed(&stack, &x, cond)?;
    Ok(CheckOutcome {
        stack: name,
        dim,
        reports,
        tolerance: options.tolerance,
    })
}
