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
    /// A floor under the KL term of the ELBO (`free_bits: {nats: λ}`), none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bits: Option<FreeBits>,
}

/// `objective.free_bits`: free bits (Kingma et al., 2016) with one group, the whole latent.
///
/// Training maximises `E[log p(x|z)] − β max(λ, KL̄)` with `KL̄` the batch's mean KL term
/// (`log q_K(z_K|x) − log p(z_K)`): below `λ` nats the KL costs nothing more, so the encoder
/// is not pushed to switch latent units off. One group, because with a flow posterior or a
/// learned prior the KL term does not split by dimension. Reported bounds and NLLs are the
/// plain ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeBits {
    /// `λ`, nats per data point (all latent dimensions together).
    pub nats: f64,
}

impl ObjectiveConfig {
    /// Why this section cannot train, as `(field, message)`, or `None`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let free_bits = self.free_bits?;
        if !(free_bits.nats.is_finite() && free_bits.nats >= 0.0) {
            let message = format!("must be a finite number ≥ 0, got {}", free_bits.nats);
            return Some(("free_bits.nats", message));
        }
        if self.bound != Bound::Elbo {
            let message = "applies to the ELBO (bound: elbo); the importance-weighted bound has \
                           no separate KL term to put a floor under"
                .to_string();
            return Some(("free_bits", message));
        }
        None
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            bound: Bound::Elbo,
            samples: one(),
            warmup_epochs: 0,
            beta_start: 0.0,
            free_bits: None,
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
