//! The sections of an experiment file that training reads: `objective:` and `train:`.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::nan_guard::NanPolicy;
use flowvae_vae::Bound;

const fn nz(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
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
    /// β at the start of the warm-up.
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
    /// Most epochs trained.
    #[serde(default = "default_epochs")]
    pub epochs: NonZeroUsize,
    /// Images per optimizer step.
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
