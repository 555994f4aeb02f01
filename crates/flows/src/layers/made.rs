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
            h = layer.forward(&h)?;
            if let (0, Some(ctx_layer), Some(ctx)) = (l, &self.context, context) {
                h = (h + ctx_layer.forward(ctx)?)?;
            }
            h = self.activation.apply(&h)?;
        }
        Ok(self.output.forward(&h)?)
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
