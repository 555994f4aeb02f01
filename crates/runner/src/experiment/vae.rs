//! The experiment file of a Flow-VAE: data, model, flow stack (or variants to compare),
//! objective, optimizer, training and evaluation.

use std::num::NonZeroUsize;

use flowvae_data::DataConfig;
use flowvae_flows::FlowSpec;
use flowvae_vae::ModelConfig;
use serde::{Deserialize, Serialize};

use flowvae_train::OptimizerConfig;
use flowvae_train::VaeSections;
use flowvae_train::{ObjectiveConfig, TrainVae};

const fn nz(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
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
    /// Replaces `model.prior` for this model (a flow on the prior, on the posterior, or both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<flowvae_vae::PriorSpec>,
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
    /// The sections training reads, borrowed from this experiment.
    pub fn sections(&self) -> VaeSections<'_> {
        VaeSections {
            data: &self.data,
            model: &self.model,
            flow: &self.flow,
            objective: &self.objective,
            optimizer: &self.optimizer,
            train: &self.train,
            seed: self.seed,
        }
    }

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
                if let Some(prior) = &v.prior {
                    single.model.prior = prior.clone();
                }
                (v.name.clone(), single)
            })
            .collect()
    }
}
