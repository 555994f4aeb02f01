//! Elementwise bijections: affine, leaky ReLU, sigmoid (logit as its inverse), exp (log).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use flowvae_nn::log_sigmoid;

/// A fixed elementwise map applied to every coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElementwiseMap {
    /// `y = x` for `x ≥ 0`, `slope · x` otherwise (`slope > 0`).
    LeakyRelu {
        /// Slope on the negative half-line, > 0.
        slope: f64,
    },
    /// `y = σ(x)`, onto (0, 1); its inverse is the logit.
    Sigmoid,
    /// `y = exp(x)`, onto (0, ∞); its inverse is the log.
    Exp,
}

/// A parameter-free elementwise flow on `(B, D)`.
#[derive(Debug)]
pub struct Elementwise {
    dim: usize,
    map: ElementwiseMap,
}

impl Elementwise {
    /// The map on dimension `D`; a leaky-ReLU slope must be positive.
    pub fn new(dim: usize, map: ElementwiseMap) -> Result<Self> {
        if let ElementwiseMap::LeakyRelu { slope } = map {
            if !(slope > 0.0 && slope.is_finite()) {
                return Err(FlowError::InvalidConfig {
                    field: "leaky_relu.slope".into(),
                    message: format!("must be a positive number, got {slope}"),
                });
            }
        }
        Ok(Self { dim, map })
    }
}

impl Flow for Elementwise {
    fn name(&self) -> String {
        match self.map {
            ElementwiseMap::LeakyRelu { .. } => "leaky_relu".into(),
            ElementwiseMap::Sigmoid => "sigmoid".into(),
            ElementwiseMap::Exp => "exp".into(),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }

    fn forward(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        match self.map {
            ElementwiseMap::LeakyRelu { slope } => {
                let negative = x.lt(0.0)?;
                let y = negative.where_cond(&(x * slope)?, x)?;
                let log_det = (negative.to_dtype(x.dtype())?.sum(1)? * slope.ln())?;
                Ok((y, log_det))
            }
            ElementwiseMap::Sigmoid => {
                let log_det = (log_sigmoid(x)? + log_sigmoid(&x.neg()?)?)?.sum(1)?;
                Ok((candle_nn::ops::sigmoid(x)?, log_det))
            }
            ElementwiseMap::Exp => Ok((x.exp()?, x.sum(1)?)),
        }
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        match self.map {
            ElementwiseMap::LeakyRelu { slope } => {
                let negative = y.lt(0.0)?;
                let x = negative.where_cond(&(y / slope)?, y)?;
                let log_det = (negative.to_dtype(y.dtype())?.sum(1)? * (-slope.ln()))?;
                Ok((x, log_det))
            }
            ElementwiseMap::Sigmoid => {
                let (log_y, log_1my) = (y.log()?, y.affine(-1.0, 1.0)?.log()?);
                let x = (&log_y - &log_1my)?;
                Ok((x, (log_y + log_1my)?.sum(1)?.neg()?))
            }
            ElementwiseMap::Exp => {
                let x = y.log()?;
                let log_det = x.sum(1)?.neg()?;
                Ok((x, log_det))
            }
        }
    }
}

/// `y = x ⊙ exp(log_scale) + shift` with learned global `(1, D)` parameters, initially identity.
#[derive(Debug)]
pub struct ElementwiseAffine {
    dim: usize,
    log_scale: Tensor,
    shift: Tensor,
}

impl ElementwiseAffine {
    /// An affine layer under `vb` with tensors `log_scale` and `shift`.
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            dim,
            log_scale: vb.get_with_hints((1, dim), "log_scale", Init::Const(0.0))?,
            shift: vb.get_with_hints((1, dim), "shift", Init::Const(0.0))?,
        })
    }
}

impl Flow for ElementwiseAffine {
    fn name(&self) -> String {
        "affine".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn forward(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let y = x
            .broadcast_mul(&self.log_scale.exp()?)?
            .broadcast_add(&self.shift)?;
        let log_det = self.log_scale.sum_all()?.broadcast_as(x.dim(0)?)?;
        Ok((y, log_det))
    }
    fn is_invertible(&self) -> bool {
        true
    }
    fn inverse(&self, y: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let x = y
            .broadcast_sub(&self.shift)?
            .broadcast_mul(&self.log_scale.neg()?.exp()?)?;
        let log_det = self.log_scale.sum_all()?.neg()?.broadcast_as(y.dim(0)?)?;
        Ok((x, log_det))
    }
}
