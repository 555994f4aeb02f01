//! The small networks inside flows: linear layers with PyTorch's initialisation, MLPs.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::staircase::Staircase;

/// Hidden-layer nonlinearity of a conditioner network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `x` for `x > 0`, `exp(x) − 1` otherwise.
    Elu,
}

impl Activation {
    /// Applies the nonlinearity elementwise.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Relu => x.relu()?,
            Self::Tanh => x.tanh()?,
            Self::Elu => x.elu(1.0)?,
        })
    }
}

/// `y = x Wᵀ + b`, `(B, in) → (B, out)`, optionally with a fixed 0/1 mask on `W` (MADE).
///
/// Initialised like PyTorch's `nn.Linear` (uniform ±1/√in for weight and bias), not like
/// `candle_nn::linear`, whose spread is about 2.45× larger.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
    masking: Masking,
}

/// How a layer's weight is masked.
#[derive(Debug, Clone)]
enum Masking {
    /// No mask.
    None,
    /// `W ⊙ M` on every use (the product is part of each use's graph); on the CPU, a nested
    /// (MADE) mask also comes as its staircase plan, so that products skip its zeros.
    PerUse {
        mask: Tensor,
        plan: Option<Arc<Staircase>>,
    },
    /// The weight holds `W ⊙ M` already (see [`Linear::with_mask_applied`]).
    Applied,
}

impl Linear {
    /// A dense layer with tensors `weight` `(out, in)` and `bias` `(out,)` under `vb`.
    pub fn new(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        let bound = 1.0 / (inputs.max(1) as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((outputs, inputs), "weight", init)?;
        let bias = vb.get_with_hints(outputs, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            masking: Masking::None,
        })
    }

    /// A layer whose weight is multiplied by `mask` `(out, in)` on every use.
    pub fn masked(vb: VarBuilder, mask: Tensor) -> Result<Self> {
        let (outputs, inputs) = mask.dims2()?;
        let mut layer = Self::new(vb, inputs, outputs)?;
        let plan = match mask.device().is_cpu() {
            true => {
                let values = mask.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                Staircase::from_mask(&values, outputs, inputs).map(Arc::new)
            }
            false => None,
        };
        let mask = mask.to_dtype(layer.weight.dtype())?;
        layer.masking = Masking::PerUse { mask, plan };
        Ok(layer)
    }

    /// This layer with its mask multiplied into the weight once: for many uses in one graph
    /// (an autoregressive inverse's `D` passes), where a product per use would keep `D`
    /// masked copies of the weight alive. Gradients still reach the weight; the outputs are
    /// the same numbers as the masked layer's.
    pub fn with_mask_applied(&self) -> Result<Self> {
        Ok(match &self.masking {
            Masking::PerUse { mask, .. } => Self {
                weight: (&self.weight * mask)?,
                bias: self.bias.clone(),
                masking: Masking::Applied,
            },
            _ => self.clone(),
        })
    }

    /// The weight as used: `W ⊙ M` for a masked layer (a product node in this use's graph, so
    /// gradients reach `W` through the mask), `W` otherwise.
    fn effective_weight(&self) -> Result<Tensor> {
        Ok(match &self.masking {
            Masking::PerUse { mask, .. } => (&self.weight * mask)?,
            _ => self.weight.clone(),
        })
    }

    /// `(B, in) → (B, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, false)
    }

    /// `relu(x Wᵀ + b)`, `(B, in) → (B, out)`, as one fused node where possible.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }

    /// Masked layers run the fused kernel too, the mask applied inside it: MADE's wide layers
    /// are most of a MAF's time, and a masked copy of the weight as a graph node of its own
    /// costs several passes over it per step (product, its gradient, candle's accumulation).
    fn forward_with(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        if crate::fused_linear::applicable(x, &self.weight) {
            return Ok(match &self.masking {
                Masking::PerUse {
                    plan: Some(plan), ..
                } => {
                    crate::fused_linear::staircase_linear(x, &self.weight, plan, &self.bias, relu)?
                }
                Masking::PerUse { mask, .. } => {
                    crate::fused_linear::masked_linear(x, &self.weight, mask, &self.bias, relu)?
                }
                _ => crate::fused_linear::linear(x, &self.weight, &self.bias, relu)?,
            });
        }
        let weight = self.effective_weight()?;
        let y = x.matmul(&weight.t()?)?.broadcast_add(&self.bias)?;
        Ok(if relu { y.relu()? } else { y })
    }
}

/// A multilayer perceptron `in → hidden… → out`, nonlinearity between layers, linear output.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// Layers named `vb.fc0`, `vb.fc1`, ….
    pub fn new(
        vb: VarBuilder,
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
    ) -> Result<Self> {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(outputs);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(vb.pp(format!("fc{i}")), w[0], w[1]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, activation })
    }

    /// `(B, in) → (B, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let hidden = i + 1 < self.layers.len();
            h = match self.activation {
                Activation::Relu if hidden => layer.forward_relu(&h)?,
                activation if hidden => activation.apply(&layer.forward(&h)?)?,
                _ => layer.forward(&h)?,
            };
        }
        Ok(h)
    }
}

/// `bound · tanh(x / bound)`: identity near 0, smoothly limited to (−bound, bound).
pub fn soft_clamp(x: &Tensor, bound: f64) -> Result<Tensor> {
    Ok(x.affine(1.0 / bound, 0.0)?.tanh()?.affine(bound, 0.0)?)
}
