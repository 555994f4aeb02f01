//! The NaN/Inf guard of training: finds the term or parameter that went non-finite and
//! applies the configured policy (stop, skip the batch, or roll back and lower the rate).

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use flowvae_flows::ParamStore;
use flowvae_vae::BoundTerms;

use crate::error::{Result, TrainError};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::run_dir::RunDir;
use crate::values::Positive;
use serde::{Deserialize, Serialize};

fn is_finite(t: &Tensor) -> Result<bool> {
    let total: f64 = t.abs()?.sum_all()?.to_dtype(DType::F64)?.to_scalar()?;
    Ok(total.is_finite())
}

/// The reaction to a non-finite loss or gradient. Every case is logged with the epoch, the
/// batch and the term or parameter; the last good checkpoint is never touched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NanPolicy {
    /// Stop the run with an error.
    #[default]
    Stop,
    /// Skip the update of the offending batch, at most `max` times in the run.
    Skip {
        /// Most batches skipped in the run.
        max: usize,
    },
    /// Go back to the last checkpoint, multiply the learning rate by `lr_factor`, and redo
    /// the epoch; at most `max` times in the run.
    Rollback {
        /// Factor on the learning rate at each rollback, in (0, 1].
        lr_factor: f64,
        /// Most rollbacks in the run.
        max: usize,
    },
}

/// Which term of the bound is not finite: `reconstruction`, `KL` or the objective itself.
pub fn non_finite_term(terms: &BoundTerms) -> Result<&'static str> {
    Ok(if !is_finite(&terms.reconstruction)? {
        "reconstruction term -log p(x|z_K)"
    } else if !is_finite(&terms.kl)? {
        "KL term log q_K(z_K|x) - log p(z_K)"
    } else {
        "bound"
    })
}

/// The first parameter (by name) whose gradient is not finite.
pub fn non_finite_parameter(store: &ParamStore, grads: &GradStore) -> Result<String> {
    for (name, var) in store.named_vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            if !is_finite(g)? {
                return Ok(name);
            }
        }
    }
    Ok("an unnamed tensor".into())
}

/// What the loop does after a non-finite value that the policy tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Skip this batch's update.
    Skip,
    /// Restore the last checkpoint and redo the epoch at a lower rate.
    Rollback,
}

/// Counts incidents and decides, per the policy.
#[derive(Debug)]
pub struct NanGuard {
    policy: NanPolicy,
    incidents: usize,
    /// Current factor on the configured learning rate.
    pub lr_scale: f64,
}

impl NanGuard {
    /// A guard applying `policy`, with the learning-rate factor of earlier rollbacks.
    pub fn new(policy: &NanPolicy, lr_scale: f64) -> Self {
        Self {
            policy: policy.clone(),
            incidents: 0,
            lr_scale,
        }
    }

    /// An optimizer at the current learning rate.
    pub fn optimizer(&self, vars: Vec<Var>, config: &OptimizerConfig) -> Result<Optimizer> {
        let mut config = config.clone();
        let lr = config.lr.get() * self.lr_scale;
        config.lr = Positive::try_from(lr).map_err(|message| TrainError::NonFinite {
            what: format!("learning rate after rollbacks: {message}"),
            step: 0,
        })?;
        Optimizer::new(vars, config)
    }

    /// Logs `what` and returns the reaction, or the error that stops the run.
    pub fn react(&mut self, what: &str, run: &RunDir) -> Result<Reaction> {
        self.incidents += 1;
        let stop = |detail: &str| {
            run.log(&format!("{what}: {detail}"));
            Err(TrainError::NonFinite {
                what: format!(
                    "{what}; {detail}; checkpoints/last.safetensors is the last good state"
                ),
                step: 0,
            })
        };
        match self.policy {
            NanPolicy::Stop => stop("stopping (train.nan_policy: stop)"),
            NanPolicy::Skip { max } if self.incidents <= max => {
                run.log(&format!(
                    "{what}: batch skipped ({} of at most {max})",
                    self.incidents
                ));
                tracing::warn!("{what}: batch skipped");
                Ok(Reaction::Skip)
            }
            NanPolicy::Rollback { lr_factor, max } if self.incidents <= max => {
                self.lr_scale *= lr_factor;
                run.log(&format!(
                    "{what}: rolled back to the last checkpoint, learning rate x{}",
                    self.lr_scale
                ));
                tracing::warn!("{what}: rolling back, learning rate x{}", self.lr_scale);
                Ok(Reaction::Rollback)
            }
            _ => stop(&format!(
                "more than the policy's {} incidents allow",
                self.incidents - 1
            )),
        }
    }
}
