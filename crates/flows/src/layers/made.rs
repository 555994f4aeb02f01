//! MADE (Germain et al., 2015): a masked MLP whose output `i` sees only inputs `< i`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{FlowError, Result};
use flowvae_nn::{Activation, Linear};

/// `(B, D) [+ context (B, C)] → (B, D · outputs_per_dim)`, autoregressive in the natural order.
///
/// Output block `k` (columns `k·D .. (k+1)·D`) at coordinate `i` depends only on `x_<i`; the
/// context enters the first hidden layer unmasked. Hidden degrees cycle through `1..D−1`.
#[derive(Debug)]
pub struct Made {
    dim: usize,
    outputs_per_dim: usize,
    hidden: Vec<Linear>,
    context: Option<Linear>,
    output: Linear,
    activation: Activation,
}

fn mask(
    out_degrees: &[usize],
    in_degrees: &[usize],
    strict: bool,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let values: Vec<f64> = out_degrees
        .iter()
        .flat_map(|&o| {
            in_degrees.iter().map(move |&i| {
                let connected = if strict { o > i } else { o >= i };
                if connected {
                    1.0
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(values, (out_degrees.len(), in_degrees.len()), dev)?.to_dtype(dtype)?)
}

impl Made {
    /// A MADE with the given hidden widths (at least one layer).
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: &[usize],
        outputs_per_dim: usize,
        context_dim: usize,
        activation: Activation,
    ) -> Result<Self> {
        if hidden.is_empty() || hidden.contains(&0) {
            return Err(FlowError::InvalidConfig {
                field: "hidden".into(),
                message: format!("needs at least one non-empty hidden layer, got {hidden:?}"),
            });
        }
        let (dtype, dev) = (vb.dtype(), vb.device().clone());
        let input_degrees: Vec<usize> = (1..=dim).collect();
        let cycle = dim.saturating_sub(1).max(1);
        let mut previous = input_degrees.clone();
        let mut layers = Vec::with_capacity(hidden.len());
        for (l, &width) in hidden.iter().enumerate() {
            let degrees: Vec<usize> = (0..width).map(|k| k % cycle + 1).collect();
            let m = mask(&degrees, &previous, false, dtype, &dev)?;
            layers.push(Linear::masked(vb.pp(format!("fc{l}")), m)?);
            previous = degrees;
        }
        let output_degrees: Vec<usize> = (0..outputs_per_dim)
            .flat_map(|_| input_degrees.iter().copied())
            .collect();
        let out_mask = mask(&output_degrees, &previous, true, dtype, &dev)?;
        let output = Linear::masked(vb.pp("out"), out_mask)?;
        let context = match context_dim {
            0 => None,
            c => Some(Linear::new(vb.pp("context"), c, hidden[0])?),
        };
        Ok(Self {
            dim,
            outputs_per_dim,
            hidden: layers,
            context,
            output,
            activation,
        })
    }

    /// `(B, D)` and optional `(B, C)` context → `(B, D · outputs_per_dim)`.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let mut h = x.clone();
        for (l, layer) in self.hidden.iter().enumerate() {
            h = match (l, &self.context, context) {
                (0, Some(ctx_layer), Some(ctx)) => {
                    let pre = (layer.forward(&h)? + ctx_layer.forward(ctx)?)?;
                    self.activation.apply(&pre)?
                }
                _ if self.activation == Activation::Relu => layer.forward_relu(&h)?,
                _ => self.activation.apply(&layer.forward(&h)?)?,
            };
        }
        Ok(self.output.forward(&h)?)
    }

    /// This network with every mask multiplied into its weight once, for the `D` passes of
    /// an autoregressive inverse (same outputs, gradients to the same weights, one masked
    /// copy of each weight in the graph instead of `D`).
    pub fn with_masks_applied(&self) -> Result<Self> {
        Ok(Self {
            dim: self.dim,
            outputs_per_dim: self.outputs_per_dim,
            hidden: self
                .hidden
                .iter()
                .map(Linear::with_mask_applied)
                .collect::<std::result::Result<_, _>>()?,
            context: self.context.clone(),
            output: self.output.with_mask_applied()?,
            activation: self.activation,
        })
    }

    /// The dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How many `D`-wide output blocks the network produces.
    pub fn outputs_per_dim(&self) -> usize {
        self.outputs_per_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{perturb_parameters, ParamStore};
    use flowvae_nn::{seeded, standard_normal, Stream};

    /// The masks multiplied in once give the same outputs, bit for bit, and the same
    /// gradients as the masks applied on every use.
    #[test]
    fn masks_applied_once_change_no_number() {
        let store = ParamStore::new(0);
        let vb = store.var_builder(DType::F32, &Device::Cpu);
        let made = Made::new(vb, 5, &[12, 9], 2, 3, Activation::Relu).unwrap();
        perturb_parameters(&store, 1, 0.5).unwrap();
        let mut rng = seeded(0, Stream::Scratch("made"));
        let x = standard_normal(&mut rng, (4, 5), DType::F32, &Device::Cpu).unwrap();
        let c = standard_normal(&mut rng, (4, 3), DType::F32, &Device::Cpu).unwrap();
        let applied = made.with_masks_applied().unwrap();
        let (a, b) = (
            made.forward(&x, Some(&c)).unwrap(),
            applied.forward(&x, Some(&c)).unwrap(),
        );
        let (va, vb): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (a.to_vec2().unwrap(), b.to_vec2().unwrap());
        assert_eq!(va, vb);
        let (ga, gb) = (
            a.sqr().unwrap().sum_all().unwrap().backward().unwrap(),
            b.sqr().unwrap().sum_all().unwrap().backward().unwrap(),
        );
        for (name, var) in store.named_vars() {
            let (x, y) = (ga.get(&var).unwrap(), gb.get(&var).unwrap());
            let (x, y): (Vec<f32>, Vec<f32>) = (
                x.flatten_all().unwrap().to_vec1().unwrap(),
                y.flatten_all().unwrap().to_vec1().unwrap(),
            );
            assert_eq!(x, y, "{name}");
        }
    }
}
