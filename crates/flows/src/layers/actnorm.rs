//! ActNorm (Kingma & Dhariwal, 2018): a per-coordinate affine map with data-dependent init.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use flowvae_nn::ParamStore;

/// `y = x ⊙ exp(log_scale) + bias`, global parameters `(1, D)` each.
///
/// On the first call, in whichever direction, the parameters are set so that this call's
/// output has zero mean and unit variance per coordinate over the batch. A layer whose
/// parameters were loaded from a file is already initialised.
#[derive(Debug)]
pub struct ActNorm {
    dim: usize,
    log_scale: Var,
    bias: Var,
    initialized: AtomicBool,
}

const EPS: f64 = 1e-6;

impl ActNorm {
    /// An ActNorm layer; `store` is the store behind `vb`, needed to reset values in place.
    pub fn new(vb: VarBuilder, store: &ParamStore, dim: usize) -> Result<Self> {
        let prefix = vb.prefix();
        let name = |leaf: &str| {
            if prefix.is_empty() {
                leaf.to_string()
            } else {
                format!("{prefix}.{leaf}")
            }
        };
        let loaded = store.was_loaded(&name("log_scale"));
        vb.get_with_hints((1, dim), "log_scale", Init::Const(0.0))?;
        vb.get_with_hints((1, dim), "bias", Init::Const(0.0))?;
        let fetch = |leaf: &str| {
            store.var(&name(leaf)).ok_or_else(|| FlowError::Params {
                path: name(leaf),
                message: "ActNorm needs a VarBuilder backed by the given ParamStore".into(),
            })
        };
        Ok(Self {
            dim,
            log_scale: fetch("log_scale")?,
            bias: fetch("bias")?,
            initialized: AtomicBool::new(loaded),
        })
    }

    /// Per-coordinate mean and standard deviation of a `(B, D)` batch, detached.
    fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = x.detach();
        let mean = x.mean_keepdim(0)?;
        let std = x
            .broadcast_sub(&mean)?
            .sqr()?
            .mean_keepdim(0)?
            .sqrt()?
            .affine(1.0, EPS)?;
        Ok((mean, std))
    }

    fn claim_initialization(&self) -> bool {
        self.initialized
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Flow for ActNorm {
    fn name(&self) -> String {
        "act_norm".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }

    fn forward(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        if self.claim_initialization() {
            let (mean, std) = Self::moments(x)?;
            let log_scale = std.log()?.neg()?;
            self.bias.set(&(mean.neg()? * log_scale.exp()?)?)?;
            self.log_scale.set(&log_scale)?;
        }
        let y = x
            .broadcast_mul(&self.log_scale.exp()?)?
            .broadcast_add(self.bias.as_tensor())?;
        let log_det = self.log_scale.sum_all()?.broadcast_as(x.dim(0)?)?;
        Ok((y, log_det))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        if self.claim_initialization() {
            let (mean, std) = Self::moments(y)?;
            self.bias.set(&mean)?;
            self.log_scale.set(&std.log()?)?;
        }
        let x = y
            .broadcast_sub(self.bias.as_tensor())?
            .broadcast_mul(&self.log_scale.neg()?.exp()?)?;
        let log_det = self.log_scale.sum_all()?.neg()?.broadcast_as(y.dim(0)?)?;
        Ok((x, log_det))
    }
}
