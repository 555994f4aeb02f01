//! Model settings read from an experiment's `model:` section.

use serde::{Deserialize, Serialize};

pub use flowvae_nn::Activation;

use crate::prior::PriorSpec;

fn default_encoder_hidden() -> Vec<usize> {
    vec![512, 256]
}
fn default_decoder_hidden() -> Vec<usize> {
    vec![256, 512]
}

/// The encoder network `x → h → (μ, log σ², flow parameters, context)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Hidden widths of the MLP body.
    #[serde(default = "default_encoder_hidden")]
    pub hidden: Vec<usize>,
    /// Non-linearity of the hidden layers.
    #[serde(default)]
    pub activation: Activation,
    /// Gated dense layers `act(W x) ⊙ σ(V x)` (the Sylvester paper's gated units), not plain.
    #[serde(default)]
    pub gated: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            hidden: default_encoder_hidden(),
            activation: Activation::Relu,
            gated: false,
        }
    }
}

/// How pixels are modelled given the decoder's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Likelihood {
    /// Binary pixels: Bernoulli with logits, in the stable BCE-with-logits form.
    #[default]
    Bernoulli,
    /// Grayscale pixels: a Gaussian with the decoder's mean and a learned per-pixel scale.
    Gaussian,
}

/// The decoder network `z → logits` (or means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Hidden widths of the MLP body.
    #[serde(default = "default_decoder_hidden")]
    pub hidden: Vec<usize>,
    /// Non-linearity of the hidden layers.
    #[serde(default)]
    pub activation: Activation,
    /// Gated dense layers `act(W x) ⊙ σ(V x)`, not plain.
    #[serde(default)]
    pub gated: bool,
    /// How pixels are modelled given the decoder's output.
    #[serde(default)]
    pub likelihood: Likelihood,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            hidden: default_decoder_hidden(),
            activation: Activation::Relu,
            gated: false,
            likelihood: Likelihood::Bernoulli,
        }
    }
}

/// The network family of encoder and decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Dense layers, sized by `encoder.hidden` and `decoder.hidden`.
    #[default]
    Mlp,
    /// Gated convolutions of the Sylvester-flows paper, sized by `conv`.
    GatedConv,
}

fn default_channels() -> usize {
    32
}
fn default_features() -> usize {
    256
}

/// Sizes of the gated convolutional networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvConfig {
    /// Base channel count `c`: layers use c, c, 2c, 2c, 2c (32 in the paper).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Width of the encoder's output features (256 in the paper).
    #[serde(default = "default_features")]
    pub features: usize,
}

impl Default for ConvConfig {
    fn default() -> Self {
        Self {
            channels: default_channels(),
            features: default_features(),
        }
    }
}

fn default_latent() -> usize {
    40
}

/// The `model:` section: latent size, encoder and decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Dimension of z.
    #[serde(default = "default_latent")]
    pub latent: usize,
    /// MLP or gated convolutional encoder and decoder.
    #[serde(default)]
    pub architecture: Architecture,
    /// Sizes of the gated convolutional networks (`architecture: gated_conv`).
    #[serde(default)]
    pub conv: ConvConfig,
    /// The encoder network `x → (μ, log σ², flow parameters, context)`.
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// The decoder network `z → logits` (or means).
    #[serde(default)]
    pub decoder: DecoderConfig,
    /// The prior `p(z)`; default the standard normal, left out of resolved configs.
    #[serde(default, skip_serializing_if = "PriorSpec::is_standard")]
    pub prior: PriorSpec,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            latent: default_latent(),
            architecture: Architecture::Mlp,
            conv: ConvConfig::default(),
            encoder: EncoderConfig::default(),
            decoder: DecoderConfig::default(),
            prior: PriorSpec::StandardNormal,
        }
    }
}
