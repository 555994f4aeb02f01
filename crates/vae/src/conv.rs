//! Gated convolutional encoder and decoder bodies (van den Berg et al., 2018, after
//! Tomczak & Welling): every layer is `conv_a(x) ⊙ σ(conv_g(x))`.
//!
//! For square images of side `S` divisible by 4 (28 for MNIST, 8 for the digits): the encoder
//! maps `(B, S·S)` to `(B, features)` through strides 1, 2, 1, 2, 1 and a final `S/4` kernel;
//! the decoder maps `z` back through transposed convolutions to `(B, S·S)` logits.

use crate::error::{Result, VaeError};
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::config::ConvConfig;

/// Geometry of one (transposed) convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Transposed only: extra rows/columns on one side of the output.
    output_padding: usize,
}

const fn geo(kernel: usize, stride: usize, padding: usize, output_padding: usize) -> Geometry {
    Geometry {
        kernel,
        stride,
        padding,
        output_padding,
    }
}

/// A gated (transposed) 2-D convolution.
#[derive(Debug, Clone)]
struct GatedConv {
    value: (Tensor, Tensor),
    gate: (Tensor, Tensor),
    geometry: Geometry,
    transposed: bool,
}

impl GatedConv {
    fn new(
        vb: VarBuilder,
        inputs: usize,
        outputs: usize,
        geometry: Geometry,
        transposed: bool,
    ) -> Result<Self> {
        let k = geometry.kernel;
        let fan_in = (if transposed { outputs } else { inputs }) * k * k;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let shape = if transposed {
            (inputs, outputs, k, k)
        } else {
            (outputs, inputs, k, k)
        };
        let pair = |name: &str| -> Result<(Tensor, Tensor)> {
            let vb = vb.pp(name);
            Ok((
                vb.get_with_hints(shape, "weight", init)?,
                vb.get_with_hints(outputs, "bias", init)?,
            ))
        };
        Ok(Self {
            value: pair("value")?,
            gate: pair("gate")?,
            geometry,
            transposed,
        })
    }

    fn apply(&self, x: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Result<Tensor> {
        let g = self.geometry;
        let y = if self.transposed {
            x.conv_transpose2d(weight, g.padding, g.output_padding, g.stride, 1)?
        } else {
            x.conv2d(weight, g.padding, g.stride, 1, 1)?
        };
        Ok(y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?)?)
    }

    /// `(B, C_in, H, W) → (B, C_out, H', W')`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let value = self.apply(x, &self.value)?;
        let gate = candle_nn::ops::sigmoid(&self.apply(x, &self.gate)?)?;
        Ok((value * gate)?)
    }
}

fn side_of(dim: usize) -> Result<usize> {
    let side = (dim as f64).sqrt().round() as usize;
    if side * side != dim || !side.is_multiple_of(4) || side == 0 {
        return Err(VaeError::InvalidConfig {
            field: "model.architecture".into(),
            message: format!(
                "gated_conv needs square images with a side divisible by 4, got {dim} pixels"
            ),
        });
    }
    Ok(side)
}

/// `(B, S·S) → (B, features)`.
#[derive(Debug, Clone)]
pub struct ConvEncoder {
    layers: Vec<GatedConv>,
    side: usize,
    features: usize,
}

impl ConvEncoder {
    pub fn new(vb: &VarBuilder, config: &ConvConfig, input_dim: usize) -> Result<Self> {
        let side = side_of(input_dim)?;
        let c = config.channels;
        let plan = [
            (1, c, geo(7, 1, 3, 0)),
            (c, c, geo(5, 2, 2, 0)),
            (c, 2 * c, geo(5, 1, 2, 0)),
            (2 * c, 2 * c, geo(5, 2, 2, 0)),
            (2 * c, 2 * c, geo(5, 1, 2, 0)),
            (2 * c, config.features, geo(side / 4, 1, 0, 0)),
        ];
        let layers = plan
            .iter()
            .enumerate()
            .map(|(i, &(i_c, o_c, g))| {
                GatedConv::new(vb.pp(format!("conv{i}")), i_c, o_c, g, false)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            side,
            features: config.features,
        })
    }

    /// Width of the output.
    pub fn output_width(&self) -> usize {
        self.features
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let mut h = x.reshape((b, 1, self.side, self.side))?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h.reshape((b, self.features))?)
    }
}

/// `(B, z) → (B, S·S)` logits (or means).
#[derive(Debug, Clone)]
pub struct ConvDecoder {
    layers: Vec<GatedConv>,
    out: (Tensor, Tensor),
    latent: usize,
}

impl ConvDecoder {
    pub fn new(
        vb: &VarBuilder,
        config: &ConvConfig,
        latent: usize,
        output_dim: usize,
    ) -> Result<Self> {
        let side = side_of(output_dim)?;
        let c = config.channels;
        let plan = [
            (latent, 2 * c, geo(side / 4, 1, 0, 0), true),
            (2 * c, 2 * c, geo(5, 1, 2, 0), true),
            (2 * c, c, geo(5, 2, 2, 1), true),
            (c, c, geo(5, 1, 2, 0), true),
            (c, c, geo(5, 2, 2, 1), true),
            (c, c, geo(7, 1, 3, 0), false),
        ];
        let layers = plan
            .iter()
            .enumerate()
            .map(|(i, &(i_c, o_c, g, t))| GatedConv::new(vb.pp(format!("conv{i}")), i_c, o_c, g, t))
            .collect::<Result<Vec<_>>>()?;
        let bound = 1.0 / (c as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let out = (
            vb.pp("out").get_with_hints((1, c, 1, 1), "weight", init)?,
            vb.pp("out").get_with_hints(1, "bias", init)?,
        );
        Ok(Self {
            layers,
            out,
            latent,
        })
    }

    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let b = z.dim(0)?;
        let mut h = z.reshape((b, self.latent, 1, 1))?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        let logits = h
            .conv2d(&self.out.0, 0, 1, 1, 1)?
            .broadcast_add(&self.out.1.reshape((1, 1, 1, 1))?)?;
        Ok(logits.flatten_from(1)?)
    }
}
