//! The experiment file of a density model: a flow fitted by maximum likelihood to a data set
//! of any dimension (images or a user's table), told apart by its `density:` section.

use std::num::NonZeroUsize;
use std::path::Path;

use flowvae_data::{DataSource, SubsetSizes};
use flowvae_flows::{BaseSpec, FlowSpec};
use serde::{Deserialize, Serialize};

use flowvae_train::{OptimizerConfig, TrainVae};

use super::config_error;
use crate::error::Result;

/// How data are mapped before the flow sees them; recorded in the run and inverted for
/// samples. Every Jacobian is counted in the reported log-likelihoods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Preprocess {
    /// Images: uniform dequantization of the grey levels, then `logit(λ + (1 − 2λ) u)`
    /// (the RealNVP / MAF protocol).
    Logit {
        /// λ keeps the logit finite at 0 and 1 (MAF on MNIST: 1e-6).
        lambda: f64,
    },
    /// Tables: each column standardized with the training split's mean and spread.
    Standardize,
    /// The values as they are.
    None,
}

/// The `density:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DensitySection {
    /// The base density (`standard`, `diagonal`, `mixture: {components: K}`).
    #[serde(default)]
    pub base: BaseSpec,
    /// Default: `logit: {lambda: 1e-6}` for images, `standardize` for tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocess>,
}

/// `data.condition`: what a conditional density `p(x | c)` is conditioned on. The context
/// reaches every layer that can read one (couplings, MAF, the spline flows) and, for a
/// `diagonal` or `mixture` base, the base's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The class labels of an image set (digits, MNIST, Fashion-MNIST), one-hot.
    Labels,
    /// Columns of the CSV, by header name: left out of the modelled rows, standardized with
    /// the training split's statistics.
    Columns(Vec<String>),
}

/// The `data:` section of a density experiment: no binarization (the grey levels are the
/// data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DensityData {
    /// Where the data come from: an image source or `csv: {path, columns, header}` /
    /// `npy: {path}`.
    pub source: DataSource,
    /// Seed of the split (and of the held-out sets' dequantization noise).
    #[serde(default)]
    pub split_seed: u64,
    /// Fixed random sub-samples of the splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetSizes>,
    /// A conditional density: `labels` or `columns: [names]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Classes left out of training and validation (the test keeps them): the anomaly set.
    /// The summary then gives the AUROC of the test log-likelihood separating them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_classes: Vec<u8>,
}

fn default_eval_batch() -> NonZeroUsize {
    NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN)
}

/// `flowvae run experiments/density_digits_maf.yaml`: a flow density on real data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentDensity {
    /// Name of the experiment; runs go to `results/<name>/<run-id>/`.
    pub name: String,
    /// Seeds the weights, the batch order and the dequantization noise of training.
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: DensityData,
    /// Base density and preprocessing.
    pub density: DensitySection,
    /// The flow stack, in the sampling direction (base → data); its dimension is the data's.
    pub flow: Vec<FlowSpec>,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Epochs, batch size, early stopping on the validation log-likelihood (`patience`).
    #[serde(default)]
    pub train: TrainVae,
    /// Rows evaluated at once for validation and test.
    #[serde(default = "default_eval_batch")]
    pub eval_batch: NonZeroUsize,
}

impl ExperimentDensity {
    /// The preprocessing: the one configured, or the default for the source.
    pub fn preprocess(&self) -> Preprocess {
        self.density
            .preprocess
            .unwrap_or(if self.data.source.is_tabular() {
                Preprocess::Standardize
            } else {
                Preprocess::Logit { lambda: 1e-6 }
            })
    }
}

/// Checks what serde cannot, naming the field: a non-empty stack, λ in (0, ½), `logit` only
/// for images.
pub(super) fn validate(path: &Path, text: &str, exp: &ExperimentDensity) -> Result<()> {
    let error = |field: &str, message: String| config_error(path, text, field, message);
    super::check_folder_name(path, text, "name", &exp.name)?;
    if exp.flow.is_empty() {
        let message = "the stack is empty; list at least one flow (the base alone is `affine`)";
        return Err(error("flow", message.into()));
    }
    if let BaseSpec::Mixture { components: 0 } = exp.density.base {
        return Err(error("components", "must be at least 1".into()));
    }
    validate_condition(&exp.data).map_or(Ok(()), |(field, m)| Err(error(field, m)))?;
    match exp.preprocess() {
        Preprocess::Logit { lambda } if !(lambda > 0.0 && lambda < 0.5) => Err(error(
            "lambda",
            format!("must be in (0, 0.5), got {lambda}"),
        )),
        Preprocess::Logit { .. } if exp.data.source.is_tabular() => Err(error(
            "preprocess",
            "logit dequantizes grey levels; a table takes `standardize` or `none`".into(),
        )),
        _ => Ok(()),
    }
}

/// The condition and the excluded classes against the source: labels and classes need an
/// image set, columns a CSV. Returns the offending field and why.
fn validate_condition(data: &DensityData) -> Option<(&'static str, String)> {
    let tabular = data.source.is_tabular();
    let csv = matches!(data.source, DataSource::Csv(_));
    match &data.condition {
        Some(Condition::Labels) if tabular => {
            return Some((
                "condition",
                "`labels` conditions on an image set's classes; a CSV names `columns: [..]`".into(),
            ))
        }
        Some(Condition::Columns(_)) if !csv => {
            return Some((
                "condition",
                "`columns` names columns of a CSV source; an image set takes `labels`".into(),
            ))
        }
        Some(Condition::Columns(names)) if names.is_empty() => {
            return Some(("columns", "name at least one column".into()))
        }
        _ => {}
    }
    (tabular && !data.exclude_classes.is_empty()).then(|| {
        let message = "classes are labels of an image set; this source is a table".into();
        ("exclude_classes", message)
    })
}
