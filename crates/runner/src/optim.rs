//! Adam and Adamax over a [`ParamStore`], with state we own (so it can be checkpointed) and
//! no weight decay unless asked: candle's AdamW defaults to decay 0.01 and hides its moments.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::values::{Positive, UnitInterval};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// Adam with the infinity norm (Kingma & Ba, §7.1), as in the Sylvester-flows protocol.
    Adamax,
}

fn default_lr() -> Positive {
    Positive::new_const(1e-3)
}
fn default_beta1() -> UnitInterval {
    UnitInterval::new_const(0.9)
}
fn default_beta2() -> UnitInterval {
    UnitInterval::new_const(0.999)
}
fn default_eps() -> Positive {
    Positive::new_const(1e-8)
}

/// The `optimizer:` section of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    #[serde(default)]
    pub kind: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: Positive,
    #[serde(default = "default_beta1")]
    pub beta1: UnitInterval,
    #[serde(default = "default_beta2")]
    pub beta2: UnitInterval,
    #[serde(default = "default_eps")]
    pub eps: Positive,
    /// Decoupled weight decay (AdamW); 0 by default.
    #[serde(default)]
    pub weight_decay: f64,
    /// Rescale gradients whose global L2 norm exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<Positive>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr: default_lr(),
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
            grad_clip: None,
        }
    }
}

/// The optimizer: moments per variable, in the (sorted) order of the variables given.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<Var>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: usize,
}

impl Optimizer {
    /// An optimizer over `vars` (take them from `ParamStore::vars`, sorted by name).
    pub fn new(vars: Vec<Var>, config: OptimizerConfig) -> Result<Self> {
        let first = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let second = first.clone();
        Ok(Self {
            config,
            vars,
            first,
            second,
            step: 0,
        })
    }

    /// Number of updates taken.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// The moment tensors by name suffix, for checkpoints: `(first, second)` per variable.
    pub fn state(&self) -> (&[Tensor], &[Tensor]) {
        (&self.first, &self.second)
    }

    /// Restores moments and the step count saved by [`Optimizer::state`].
    pub fn restore(&mut self, first: Vec<Tensor>, second: Vec<Tensor>, step: usize) {
        self.first = first;
        self.second = second;
        self.step = step;
    }

    /// Global L2 norm of the gradients of our variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0.0;
        for var in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                total += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(total.sqrt())
    }

    /// One update from `grads`; refuses non-finite gradients, leaving parameters untouched.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let norm = self.grad_norm(grads)?;
        if !norm.is_finite() {
            return Err(RunnerError::NonFinite {
                what: "gradient".into(),
                step: self.step,
            });
        }
        let clip = match self.config.grad_clip {
            Some(max) if norm > max.get() => max.get() / norm,
            _ => 1.0,
        };
        self.step += 1;
        let (b1, b2) = (self.config.beta1.get(), self.config.beta2.get());
        let lr = self.config.lr.get();
        let eps = self.config.eps.get();
        let t = self.step as i32;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = if clip < 1.0 { (g * clip)? } else { g.clone() };
            let m = ((&self.first[i] * b1)? + (&g * (1.0 - b1))?)?;
            let m_hat_scale = lr / (1.0 - b1.powi(t));
            let update = match self.config.kind {
                OptimizerKind::Adam => {
                    let v = ((&self.second[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                    let denom = (v.affine(1.0 / (1.0 - b2.powi(t)), 0.0)?.sqrt()? + eps)?;
                    self.second[i] = v;
                    ((&m * m_hat_scale)? / denom)?
                }
                OptimizerKind::Adamax => {
                    let u = (&self.second[i] * b2)?.maximum(&g.abs()?)?;
                    let denom = (&u + eps)?;
                    self.second[i] = u;
                    ((&m * m_hat_scale)? / denom)?
                }
            };
            self.first[i] = m;
            let mut next = (var.as_tensor() - update)?;
            if self.config.weight_decay > 0.0 {
                next = (next - (var.as_tensor() * (lr * self.config.weight_decay))?)?;
            }
            var.set(&next)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn adam_and_adamax_minimise_a_quadratic() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamax] {
            let x = Var::from_tensor(&Tensor::new(&[3.0f64, -2.0], &Device::Cpu).unwrap()).unwrap();
            let config = OptimizerConfig {
                kind,
                lr: Positive::new_const(0.05),
                ..Default::default()
            };
            let mut opt = Optimizer::new(vec![x.clone()], config).unwrap();
            for _ in 0..500 {
                let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            let v: Vec<f64> = x.to_vec1().unwrap();
            assert!(v.iter().all(|v| v.abs() < 0.05), "{kind:?}: {v:?}");
            assert_eq!(x.dtype(), DType::F64);
        }
    }

    #[test]
    fn first_adam_step_moves_each_coordinate_by_lr() {
        let x = Var::from_tensor(&Tensor::new(&[1.0f64, 1.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(vec![x.clone()], OptimizerConfig::default()).unwrap();
        let loss = (x.as_tensor() * &Tensor::new(&[2.0f64, -0.5], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let v: Vec<f64> = x.to_vec1().unwrap();
        assert!(
            (v[0] - 0.999).abs() < 1e-9 && (v[1] - 1.001).abs() < 1e-9,
            "{v:?}"
        );
    }

    #[test]
    fn non_finite_gradient_leaves_parameters_untouched() {
        let x = Var::from_tensor(&Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        let mut opt = Optimizer::new(vec![x.clone()], OptimizerConfig::default()).unwrap();
        let bad = (x.as_tensor() * f64::NAN).unwrap().sum_all().unwrap();
        assert!(opt.step(&bad.backward().unwrap()).is_err());
        assert_eq!(x.to_vec1::<f64>().unwrap(), vec![1.0]);
    }
}
