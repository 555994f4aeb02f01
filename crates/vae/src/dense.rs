//! Dense layers of encoders and decoders: plain `act(W x + b)` or gated `act(W x) ⊙ σ(V x)`.

use crate::error::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use flowvae_nn::{Activation, Linear};

/// One hidden layer, `(B, in) → (B, out)`.
#[derive(Debug, Clone)]
pub struct Dense {
    linear: Linear,
    gate: Option<Linear>,
    activation: Activation,
}

impl Dense {
    /// A layer named `vb` (`vb.weight`, `vb.bias`, and `vb.gate.*` when gated).
    pub fn new(
        vb: VarBuilder,
        inputs: usize,
        outputs: usize,
        activation: Activation,
        gated: bool,
    ) -> Result<Self> {
        let gate = if gated {
            Some(Linear::new(vb.pp("gate"), inputs, outputs)?)
        } else {
            None
        };
        Ok(Self {
            linear: Linear::new(vb, inputs, outputs)?,
            gate,
            activation,
        })
    }

    /// `(B, in) → (B, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = match self.activation {
            Activation::Relu => self.linear.forward_relu(x)?,
            act => act.apply(&self.linear.forward(x)?)?,
        };
        match &self.gate {
            Some(gate) => Ok((h * candle_nn::ops::sigmoid(&gate.forward(x)?)?)?),
            None => Ok(h),
        }
    }
}

/// A stack of [`Dense`] layers named `fc0`, `fc1`, …; returns the input when empty.
#[derive(Debug, Clone)]
pub struct DenseStack {
    layers: Vec<Dense>,
    output_width: usize,
}

impl DenseStack {
    /// `inputs → hidden[0] → … → hidden[n−1]`.
    pub fn new(
        vb: &VarBuilder,
        inputs: usize,
        hidden: &[usize],
        activation: Activation,
        gated: bool,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut width = inputs;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Dense::new(
                vb.pp(format!("fc{i}")),
                width,
                h,
                activation,
                gated,
            )?);
            width = h;
        }
        Ok(Self {
            layers,
            output_width: width,
        })
    }

    /// Width of the output.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// `(B, in) → (B, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }
}
