//! Batch normalization as a flow (as in MAF, Papamakarios et al., 2017; RealNVP).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::{Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use flowvae_nn::ParamStore;

/// Density direction (data `x` → `z`): `z = (x − μ) / √(v + ε) ⊙ exp(γ) + β`, with
/// `log|det| = Σ (γ − ½ log(v + ε))`; the sampling direction is its exact inverse.
///
/// The statistics `(μ, v)` are per coordinate and measured on the **data side**, the input of
/// the density direction:
/// - in **training** mode ([`Flow::set_training`]), the density direction uses the batch's
///   own mean and (biased) variance, with gradients through them as in MAF, and moves the
///   running averages by `momentum`; the sampling direction uses the statistics of the last
///   training batch (the running averages before any), so that a round trip on that batch is
///   exact. The per-sample log-det treats the batch statistics as constants, the usual
///   convention: the map of one sample is then a diagonal affine map.
/// - in **evaluation** mode (the default of a new layer), both directions use the running
///   averages, so the flow is a fixed bijection with an exact per-sample log-det.
///
/// The running mean and log-variance are stored with the parameters (so checkpoints keep
/// them) and receive no gradient in training mode.
#[derive(Debug)]
pub struct BatchNorm {
    dim: usize,
    log_scale: Tensor,
    shift: Tensor,
    running_mean: Var,
    running_log_var: Var,
    momentum: f64,
    training: AtomicBool,
    last_batch: Mutex<Option<(Tensor, Tensor)>>,
}

const EPS: f64 = 1e-5;

impl BatchNorm {
    /// A layer on dimension `dim`; `store` is the store behind `vb` (the running averages
    /// are updated in place). `momentum` in (0, 1] is the weight of each new batch.
    pub fn new(vb: VarBuilder, store: &ParamStore, dim: usize, momentum: f64) -> Result<Self> {
        if !(momentum > 0.0 && momentum <= 1.0) {
            return Err(FlowError::InvalidConfig {
                field: "batch_norm.momentum".into(),
                message: format!("must be in (0, 1], got {momentum}"),
            });
        }
        let log_scale = vb.get_with_hints((1, dim), "log_scale", Init::Const(0.0))?;
        let shift = vb.get_with_hints((1, dim), "shift", Init::Const(0.0))?;
        vb.get_with_hints((1, dim), "running_mean", Init::Const(0.0))?;
        vb.get_with_hints((1, dim), "running_log_var", Init::Const(0.0))?;
        let prefix = vb.prefix();
        let fetch = |leaf: &str| {
            let path = if prefix.is_empty() {
                leaf.to_string()
            } else {
                format!("{prefix}.{leaf}")
            };
            store.var(&path).ok_or_else(|| FlowError::Params {
                path,
                message: "BatchNorm needs a VarBuilder backed by the given ParamStore".into(),
            })
        };
        Ok(Self {
            dim,
            log_scale,
            shift,
            running_mean: fetch("running_mean")?,
            running_log_var: fetch("running_log_var")?,
            momentum,
            training: AtomicBool::new(false),
            last_batch: Mutex::new(None),
        })
    }

    fn training(&self) -> bool {
        self.training.load(Ordering::Acquire)
    }

    fn running(&self) -> Result<(Tensor, Tensor)> {
        let var = self.running_log_var.as_tensor().exp()?;
        Ok((self.running_mean.as_tensor().clone(), var))
    }

    /// Mean and variance of the data-side batch `x` `(B, D)`, each `(1, D)`; records them as
    /// the last batch and moves the running averages.
    fn batch_statistics(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mean = x.mean_keepdim(0)?;
        let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
        let m = self.momentum;
        let (old_mean, old_var) = self.running()?;
        let new_mean = ((old_mean * (1.0 - m))? + (mean.detach() * m)?)?;
        let new_var = ((old_var * (1.0 - m))? + (var.detach() * m)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_log_var.set(&new_var.log()?)?;
        let mut last = self.last_batch.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((mean.detach(), var.detach()));
        Ok((mean, var))
    }

    /// `log √(v + ε) − γ` per coordinate `(1, D)`: the log of the sampling direction's scale.
    fn log_sampling_scale(&self, var: &Tensor) -> Result<Tensor> {
        Ok(((var + EPS)?.log()? * 0.5)?.broadcast_sub(&self.log_scale)?)
    }

    fn log_det(log_scale: &Tensor, rows: usize) -> Result<Tensor> {
        Ok(log_scale.sum_all()?.broadcast_as(rows)?)
    }
}

impl Flow for BatchNorm {
    fn name(&self) -> String {
        "batch_norm".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Release);
    }

    fn forward(&self, z: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let last = match self.training() {
            true => self
                .last_batch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            false => None,
        };
        let (mean, var) = match last {
            Some(stats) => stats,
            None => self.running()?,
        };
        let log_scale = self.log_sampling_scale(&var)?;
        let x = z
            .broadcast_sub(&self.shift)?
            .broadcast_mul(&log_scale.exp()?)?
            .broadcast_add(&mean)?;
        Ok((x, Self::log_det(&log_scale, z.dim(0)?)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (mean, var) = match self.training() {
            true => self.batch_statistics(x)?,
            false => self.running()?,
        };
        let log_scale = self.log_sampling_scale(&var)?;
        let z = x
            .broadcast_sub(&mean)?
            .broadcast_mul(&log_scale.neg()?.exp()?)?
            .broadcast_add(&self.shift)?;
        Ok((z, Self::log_det(&log_scale, x.dim(0)?)?.neg()?))
    }
}
