//! The decoder and its likelihood: `log p(x|z)` summed over pixels, `(B,)`.

use crate::error::Result;
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use flowvae_flows::LOG_2PI;
use flowvae_nn::bce_with_logits_sum;
use flowvae_nn::Linear;

use crate::config::{ConvConfig, DecoderConfig, Likelihood};
use crate::conv::ConvDecoder;
use crate::dense::DenseStack;

/// What maps `z` to the decoder's raw output `(B, D_x)`.
#[derive(Debug)]
enum DecoderBody {
    Dense(DenseStack, Linear),
    Conv(ConvDecoder),
}

/// A network `z → D_x` (MLP or gated transposed convolutions) read as Bernoulli logits or
/// Gaussian means.
#[derive(Debug)]
pub struct Decoder {
    body: DecoderBody,
    likelihood: Likelihood,
    /// Gaussian: learned per-pixel `log σ`, `(1, D_x)`.
    log_scale: Option<Tensor>,
}

impl Decoder {
    /// A decoder under `vb` (`decoder.fc0.weight`, `decoder.out.weight`, `decoder.log_scale`).
    pub fn new(
        vb: VarBuilder,
        config: &DecoderConfig,
        latent: usize,
        output_dim: usize,
    ) -> Result<Self> {
        let body = DenseStack::new(&vb, latent, &config.hidden, config.activation, config.gated)?;
        let out = Linear::new(vb.pp("out"), body.output_width(), output_dim)?;
        Self::with_body(vb, DecoderBody::Dense(body, out), config, output_dim)
    }

    /// A gated convolutional decoder for square images.
    pub fn gated_conv(
        vb: VarBuilder,
        config: &DecoderConfig,
        conv: &ConvConfig,
        latent: usize,
        output_dim: usize,
    ) -> Result<Self> {
        let body = DecoderBody::Conv(ConvDecoder::new(&vb, conv, latent, output_dim)?);
        Self::with_body(vb, body, config, output_dim)
    }

    fn with_body(
        vb: VarBuilder,
        body: DecoderBody,
        config: &DecoderConfig,
        output_dim: usize,
    ) -> Result<Self> {
        let log_scale = match config.likelihood {
            Likelihood::Gaussian => {
                Some(vb.get_with_hints((1, output_dim), "log_scale", Init::Const(-1.0))?)
            }
            Likelihood::Bernoulli => None,
        };
        Ok(Self {
            body,
            likelihood: config.likelihood,
            log_scale,
        })
    }

    /// The decoder's raw output `(B, D_x)`: logits (Bernoulli) or means (Gaussian).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        match &self.body {
            DecoderBody::Dense(body, out) => Ok(out.forward(&body.forward(z)?)?),
            DecoderBody::Conv(conv) => conv.forward(z),
        }
    }

    /// `log p(x|z)` summed over pixels: `x (B, D_x)`, `z (B, z) → (B,)`.
    pub fn log_prob(&self, x: &Tensor, z: &Tensor) -> Result<Tensor> {
        let out = self.forward(z)?;
        match (self.likelihood, &self.log_scale) {
            (Likelihood::Gaussian, Some(log_scale)) => {
                let inv_var = log_scale.affine(-2.0, 0.0)?.exp()?;
                let sq = (x - &out)?.sqr()?.broadcast_mul(&inv_var)?;
                let per_pixel = (sq * -0.5)?
                    .broadcast_sub(log_scale)?
                    .affine(1.0, -0.5 * LOG_2PI)?;
                Ok(per_pixel.sum(1)?)
            }
            _ => Ok(bce_with_logits_sum(&out, x)?.neg()?),
        }
    }

    /// The mean image `E[x|z]` `(B, D_x)` in [0, 1] for Bernoulli, the mean for Gaussian.
    pub fn mean(&self, z: &Tensor) -> Result<Tensor> {
        let out = self.forward(z)?;
        match self.likelihood {
            Likelihood::Bernoulli => Ok(candle_nn::ops::sigmoid(&out)?),
            Likelihood::Gaussian => Ok(out),
        }
    }
}
