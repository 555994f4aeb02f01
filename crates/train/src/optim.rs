//! Adam and Adamax over a [`ParamStore`], with state we own (so it can be checkpointed) and
//! no weight decay unless asked: candle's AdamW defaults to decay 0.01 and hides its moments.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::values::{Positive, UnitInterval};

mod kernels;
use kernels::{Moment, MomentUpdate, ParamUpdate};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba, 2015).
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
    /// Adam or Adamax.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: Positive,
    /// Decay of the first moment.
    #[serde(default = "default_beta1")]
    pub beta1: UnitInterval,
    /// Decay of the second moment (or infinity norm).
    #[serde(default = "default_beta2")]
    pub beta2: UnitInterval,
    /// Added to the denominator for stability.
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
    /// Whether every moment tensor has storage of its own, so it may be updated in place
    /// (false after [`Optimizer::restore`] until the next step copies them).
    owned: bool,
}

impl Optimizer {
    /// An optimizer over `vars` (take them from `ParamStore::vars`, sorted by name).
    pub fn new(vars: Vec<Var>, config: OptimizerConfig) -> Result<Self> {
        let first = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Separate zeros: the moments are updated in place, so they must not share storage.
        let second = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config,
            vars,
            first,
            second,
            step: 0,
            owned: true,
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
        self.owned = false;
    }

    /// Global L2 norm of the gradients of our variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0.0;
        let fused = flowvae_nn::kernels::enabled(flowvae_nn::FusedOp::Adam);
        for var in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                if let Some(sum) = kernels::sum_squares(g).filter(|_| fused) {
                    total += sum;
                    continue;
                }
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
            return Err(TrainError::NonFinite {
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
        if !self.owned {
            for m in self.first.iter_mut().chain(self.second.iter_mut()) {
                *m = m.contiguous()?.copy()?;
            }
            self.owned = true;
        }
        let m_hat_scale = lr / (1.0 - b1.powi(t));
        let fused = ParamUpdate {
            step: m_hat_scale,
            second_scale: match self.config.kind {
                OptimizerKind::Adam => Some(1.0 / (1.0 - b2.powi(t))),
                OptimizerKind::Adamax => None,
            },
            eps,
            decay: lr * self.config.weight_decay.max(0.0),
        };
        let second_moment = match self.config.kind {
            OptimizerKind::Adam => Moment::Square,
            OptimizerKind::Adamax => Moment::Max,
        };
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor();
            let same = |t: &Tensor| t.shape() == p.shape() && t.dtype() == p.dtype();
            if flowvae_nn::kernels::enabled(flowvae_nn::FusedOp::Adam)
                && [p, g, &self.first[i], &self.second[i]]
                    .iter()
                    .all(|t| kernels::fusable(t) && same(t))
            {
                // In place, one pass per tensor and no temporaries (CPU, f32 / f64).
                let moment = |moment, beta| MomentUpdate { moment, beta, clip };
                self.first[i].inplace_op2(g, &moment(Moment::Mean, b1))?;
                self.second[i].inplace_op2(g, &moment(second_moment, b2))?;
                p.inplace_op3(&self.first[i], &self.second[i], &fused)?;
                continue;
            }
            let g = if clip < 1.0 { (g * clip)? } else { g.clone() };
            let m = ((&self.first[i] * b1)? + (&g * (1.0 - b1))?)?;
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

    /// The in-place kernels against the textbook update written out in f64, with clipping
    /// and weight decay, and after a restore (moments copied before being updated).
    #[test]
    fn in_place_updates_match_the_textbook_formulas() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Adamax] {
            let start = [0.5f64, -1.5, 2.0];
            let x = Var::from_tensor(&Tensor::new(&start, &Device::Cpu).unwrap()).unwrap();
            let config = OptimizerConfig {
                kind,
                lr: Positive::new_const(0.1),
                weight_decay: 0.01,
                grad_clip: Some(Positive::new_const(1.0)),
                ..Default::default()
            };
            let mut opt = Optimizer::new(vec![x.clone()], config).unwrap();
            let (mut p, mut m, mut v) = (start.to_vec(), [0.0; 3], [0.0; 3]);
            let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 0.1, 1e-8);
            for t in 1..=5 {
                if t == 3 {
                    let (f, s) = opt.state();
                    let (f, s) = (f.to_vec(), s.to_vec());
                    opt.restore(f, s, 2);
                }
                let loss = x.as_tensor().powf(3.0).unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
                let g: Vec<f64> = p.iter().map(|p| 3.0 * p * p).collect();
                let norm = g.iter().map(|g| g * g).sum::<f64>().sqrt();
                let clip = if norm > 1.0 { 1.0 / norm } else { 1.0 };
                for j in 0..3 {
                    let g = g[j] * clip;
                    m[j] = b1 * m[j] + (1.0 - b1) * g;
                    let denom = if kind == OptimizerKind::Adam {
                        v[j] = b2 * v[j] + (1.0 - b2) * g * g;
                        (v[j] / (1.0 - b2.powi(t))).sqrt() + eps
                    } else {
                        v[j] = (b2 * v[j]).max(g.abs());
                        v[j] + eps
                    };
                    let update = m[j] * lr / (1.0 - b1.powi(t)) / denom;
                    p[j] = p[j] - update - p[j] * lr * 0.01;
                }
                let got: Vec<f64> = x.to_vec1().unwrap();
                for (a, b) in got.iter().zip(&p) {
                    assert!((a - b).abs() < 1e-12, "{kind:?} step {t}: {got:?} vs {p:?}");
                }
            }
        }
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
