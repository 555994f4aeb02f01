//! The encoder: `x (B, D_x) → q₀(z|x)` plus the flow's per-sample parameters and context.

use crate::error::Result;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use flowvae_flows::DiagGaussian;
use flowvae_nn::Linear;

use crate::config::EncoderConfig;
use crate::conv::ConvEncoder;
use crate::dense::DenseStack;

/// What the encoder gives the posterior for a batch.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `q₀(z|x)`, parameters `(B, z)`.
    pub q0: DiagGaussian,
    /// `(B, P)` per-sample flow parameters, when the flow has amortized layers.
    pub flow_params: Option<Tensor>,
    /// `(B, C)` context for flows with their own networks (IAF's `h`).
    pub context: Option<Tensor>,
}

/// The part of an encoder before its heads: `(B, D_x) → (B, H)`.
#[derive(Debug)]
pub(crate) enum EncoderBody {
    Dense(DenseStack),
    Conv(ConvEncoder),
}

impl EncoderBody {
    fn output_width(&self) -> usize {
        match self {
            Self::Dense(d) => d.output_width(),
            Self::Conv(c) => c.output_width(),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(d) => d.forward(x),
            Self::Conv(c) => c.forward(x),
        }
    }
}

/// A body (MLP or gated convolutions) with heads sized by the flow stack: μ, log σ² `(z)`,
/// flow parameters `(P)`, context `(C)`.
#[derive(Debug)]
pub struct Encoder {
    body: EncoderBody,
    mu: Linear,
    log_var: Linear,
    flow_params: Option<Linear>,
    context: Option<Linear>,
}

impl Encoder {
    /// An encoder under `vb` (`encoder.fc0.weight`, `encoder.mu.weight`, …).
    pub fn new(
        vb: VarBuilder,
        config: &EncoderConfig,
        input_dim: usize,
        latent: usize,
        flow_params: usize,
        context: usize,
    ) -> Result<Self> {
        let body = EncoderBody::Dense(DenseStack::new(
            &vb,
            input_dim,
            &config.hidden,
            config.activation,
            config.gated,
        )?);
        Self::with_body(vb, body, latent, flow_params, context)
    }

    /// An encoder on a given body (see [`crate::conv::ConvEncoder`] for the gated one).
    pub(crate) fn with_body(
        vb: VarBuilder,
        body: EncoderBody,
        latent: usize,
        flow_params: usize,
        context: usize,
    ) -> Result<Self> {
        let h = body.output_width();
        let head = |name: &str, width: usize| -> Result<Option<Linear>> {
            if width == 0 {
                Ok(None)
            } else {
                Ok(Some(Linear::new(vb.pp(name), h, width)?))
            }
        };
        Ok(Self {
            mu: Linear::new(vb.pp("mu"), h, latent)?,
            log_var: Linear::new(vb.pp("log_var"), h, latent)?,
            flow_params: head("flow_params", flow_params)?,
            context: head("context", context)?,
            body,
        })
    }

    /// `(B, D_x) →` [`EncoderOutput`].
    pub fn forward(&self, x: &Tensor) -> Result<EncoderOutput> {
        let h = self.body.forward(x)?;
        let optional = |head: &Option<Linear>| head.as_ref().map(|l| l.forward(&h)).transpose();
        Ok(EncoderOutput {
            q0: DiagGaussian::new(self.mu.forward(&h)?, self.log_var.forward(&h)?),
            flow_params: optional(&self.flow_params)?,
            context: optional(&self.context)?,
        })
    }
}

impl EncoderOutput {
    /// For `k` posterior samples per data point: `q₀`'s rows repeated `k` times in place
    /// (`(B, z) → (B·k, z)`, row `b` at `b·k .. b·k+k`). The flow's parameters and context
    /// keep their `B` rows, each shared by the `k` samples of its data point (the flows'
    /// [`flowvae_flows::Conditioning`] contract), so costly per-point flow work is not repeated.
    pub fn repeat_rows(&self, k: usize) -> Result<Self> {
        if k == 1 {
            return Ok(self.clone());
        }
        Ok(Self {
            q0: DiagGaussian::new(
                repeat_rows(&self.q0.mu, k)?,
                repeat_rows(&self.q0.log_var, k)?,
            ),
            flow_params: self.flow_params.clone(),
            context: self.context.clone(),
        })
    }
}

/// `(B, W) → (B·k, W)`, each row repeated `k` times consecutively.
pub fn repeat_rows(t: &Tensor, k: usize) -> Result<Tensor> {
    Ok(flowvae_flows::expand_rows(t, t.dim(0)? * k)?)
}
