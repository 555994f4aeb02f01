//! The Flow-VAE: `x → q₀(z₀|x) → flow → z_K → p(x|z_K)`.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{
    build_stack, Composed, Conditioning, Flow, FlowSpec, ParamStore, StackOptions,
};

use crate::config::{Architecture, ModelConfig};
use crate::conv::ConvEncoder;
use crate::decoder::Decoder;
use crate::encoder::{Encoder, EncoderBody, EncoderOutput};
use crate::error::{Result, VaeError};
use crate::prior::Prior;
use flowvae_nn::SeededRng;

/// Per-sample terms of one posterior draw, each `(N,)` for `N` rows of `(x, ε)`.
#[derive(Debug, Clone)]
pub struct SampleTerms {
    /// `log p(x|z_K)`.
    pub log_px_z: Tensor,
    /// `log p(z_K)` under the standard-normal prior.
    pub log_pz: Tensor,
    /// `log q_K(z_K|x) = log q₀(z₀|x) − Σ_k log|det J_k|`.
    pub log_qz: Tensor,
    /// The draw `z_K` `(N, z)`.
    pub z: Tensor,
}

impl SampleTerms {
    /// `log p(x, z_K) − log q_K(z_K|x)`, the log importance weight, `(N,)`.
    pub fn log_weight(&self) -> Result<Tensor> {
        Ok(((&self.log_px_z + &self.log_pz)? - &self.log_qz)?)
    }

    /// The Monte-Carlo KL term `log q_K(z_K|x) − log p(z_K)`, `(N,)`.
    pub fn kl(&self) -> Result<Tensor> {
        Ok((&self.log_qz - &self.log_pz)?)
    }
}

/// Encoder, posterior flow and decoder, all parameters in one [`ParamStore`] under
/// `encoder.*`, `flow.*`, `decoder.*`.
#[derive(Debug)]
pub struct FlowVae {
    /// `x → q₀(z₀|x)`, the flow's amortized parameters and context.
    pub encoder: Encoder,
    /// The posterior flow `z₀ → z_K` (sampling direction).
    pub flow: Composed,
    /// `z_K → p(x|z_K)`.
    pub decoder: Decoder,
    /// `p(z)`.
    pub prior: Prior,
    latent: usize,
    dtype: DType,
    input_dim: usize,
}

/// A posterior flow runs in the sampling direction only, where BatchNorm has no data-side
/// batch to measure: refused with the way out, rather than silently acting as a fixed affine.
fn refuse_batch_statistics(flow: &[FlowSpec]) -> Result<()> {
    match flow
        .iter()
        .position(|s| matches!(s, FlowSpec::BatchNorm(_)))
    {
        Some(i) => Err(VaeError::InvalidConfig {
            field: format!("flow[{i}].batch_norm"),
            message: "BatchNorm takes its statistics in the density direction, and a VAE \
                      posterior runs in the sampling direction only; use act_norm there"
                .into(),
        }),
        None => Ok(()),
    }
}

impl FlowVae {
    /// Builds the model on `store`; the encoder's heads are sized by the stack's amortized
    /// parameter and context widths, so any stack works as the posterior flow.
    pub fn new(
        store: &ParamStore,
        config: &ModelConfig,
        flow: &[FlowSpec],
        input_dim: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        refuse_batch_statistics(flow)?;
        let vb = store.var_builder(dtype, device);
        let options = StackOptions {
            amortized_default: true,
            seed,
        };
        let stack = build_stack(flow, config.latent, store, vb.pp("flow"), options)?;
        let (p, c) = (stack.num_amortized_params(), stack.context_dim());
        let (encoder, decoder) = match config.architecture {
            Architecture::Mlp => (
                Encoder::new(
                    vb.pp("encoder"),
                    &config.encoder,
                    input_dim,
                    config.latent,
                    p,
                    c,
                )?,
                Decoder::new(vb.pp("decoder"), &config.decoder, config.latent, input_dim)?,
            ),
            Architecture::GatedConv => {
                let vb_enc = vb.pp("encoder");
                let body = EncoderBody::Conv(ConvEncoder::new(&vb_enc, &config.conv, input_dim)?);
                (
                    Encoder::with_body(vb_enc, body, config.latent, p, c)?,
                    Decoder::gated_conv(
                        vb.pp("decoder"),
                        &config.decoder,
                        &config.conv,
                        config.latent,
                        input_dim,
                    )?,
                )
            }
        };
        let prior = Prior::new(&config.prior, store, &vb, (config.latent, input_dim), seed)?;
        Ok(Self {
            encoder,
            flow: stack,
            decoder,
            prior,
            latent: config.latent,
            dtype,
            input_dim,
        })
    }

    /// Dimension of z.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Dimension of x.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The encoder's output for `x` `(B, D_x)` with the flow's amortized parameters prepared
    /// once per data point ([`Flow::prepare_amortized`]), ready to be repeated for several
    /// posterior samples.
    pub fn encode(&self, x: &Tensor) -> Result<EncoderOutput> {
        let mut enc = self.encoder.forward(x)?;
        if let Some(params) = &enc.flow_params {
            enc.flow_params = Some(self.flow.prepare_amortized(params)?);
        }
        Ok(enc)
    }

    /// Pushes `ε` `(N, z)` through `q₀` and the flow: `(z_K, log q_K(z_K|x))`. `enc.q0` must have
    /// `N` rows; the flow's parameters `N` or a divisor (see [`EncoderOutput::repeat_rows`]).
    pub fn posterior_sample(&self, enc: &EncoderOutput, eps: &Tensor) -> Result<(Tensor, Tensor)> {
        let z0 = enc.q0.rsample(eps)?;
        let log_q0 = enc.q0.log_prob_of_rsample(eps)?;
        let cond = Conditioning {
            params: enc.flow_params.as_ref(),
            context: enc.context.as_ref(),
        };
        let (zk, log_det) = self.flow.forward(&z0, cond)?;
        Ok((zk, (log_q0 - log_det)?))
    }

    /// All terms for `x` `(N, D_x)` with its encoder output and noise `ε` `(N, z)`.
    pub fn terms(&self, x: &Tensor, enc: &EncoderOutput, eps: &Tensor) -> Result<SampleTerms> {
        let (z, log_qz) = self.posterior_sample(enc, eps)?;
        let log_pz = self.prior.log_prob(&z, &self.encoder)?;
        let log_px_z = self.decoder.log_prob(x, &z)?;
        Ok(SampleTerms {
            log_px_z,
            log_pz,
            log_qz,
            z,
        })
    }

    /// `n` draws from the prior, `(n, z)`.
    pub fn sample_prior(&self, n: usize, rng: &mut SeededRng, device: &Device) -> Result<Tensor> {
        let shape = (n, self.latent, self.dtype);
        self.prior.sample(shape, rng, &self.encoder, device)
    }

    /// Reconstructions: decoder means at the posterior mean path (ε = 0), `(B, D_x)`.
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let enc = self.encode(x)?;
        let eps = enc.q0.mu.zeros_like()?;
        let (z, _) = self.posterior_sample(&enc, &eps)?;
        self.decoder.mean(&z)
    }
}
