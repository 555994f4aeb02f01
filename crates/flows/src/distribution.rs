//! A flow distribution: a base density (standard normal by default) pushed through a flow.

use candle_core::Tensor;

use crate::bases::Base;
use crate::conditional_base::ConditionalBase;
use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use flowvae_nn::SeededRng;

/// `p(x) = p₀(f⁻¹(x)) |det ∂f⁻¹/∂x|` for a flow `f` in the sampling direction and a base
/// density `p₀` (`N(0, I)` unless given). A conditional density `p(x | c)` reads the context
/// `c` from [`Conditioning::context`] in its layers and, when the base is conditional, in the
/// base.
#[derive(Debug)]
pub struct FlowDistribution {
    flow: Box<dyn Flow>,
    base: ConditionalBase,
}

impl FlowDistribution {
    /// Wraps a flow whose `forward` maps standard-normal samples to data.
    pub fn new(flow: Box<dyn Flow>) -> Self {
        let base = ConditionalBase::unconditional(Base::Standard(flow.dim()));
        Self { flow, base }
    }

    /// Wraps a flow whose `forward` maps samples of `base` to data.
    pub fn with_base(flow: Box<dyn Flow>, base: Base) -> Self {
        Self::with_conditional_base(flow, ConditionalBase::unconditional(base))
    }

    /// Wraps a flow whose `forward` maps samples of a base conditioned on the context to data.
    pub fn with_conditional_base(flow: Box<dyn Flow>, base: ConditionalBase) -> Self {
        Self { flow, base }
    }

    /// The base density (its unconditional part).
    pub fn base(&self) -> &Base {
        self.base.base()
    }

    /// Width of the context the flow or the base reads (0: an unconditional density).
    pub fn context_dim(&self) -> usize {
        self.flow.context_dim().max(self.base.context_dim())
    }

    /// The flow.
    pub fn flow(&self) -> &dyn Flow {
        self.flow.as_ref()
    }

    /// `log p(x)` for `x` `(B, D)`, by the change of variables through the inverse: `(B,)`.
    ///
    /// With no layers the density is the standard normal's:
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use flowvae_flows::{Composed, Conditioning, FlowDistribution};
    ///
    /// let dist = FlowDistribution::new(Box::new(Composed::new(2, Vec::new())?));
    /// let x = Tensor::new(&[[0.0f64, 0.0]], &Device::Cpu)?;
    /// let log_p: Vec<f64> = dist.log_prob(&x, Conditioning::none())?.to_vec1()?;
    /// assert!((log_p[0] + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_prob(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<Tensor> {
        let (z, log_det) = self.flow.inverse(x, cond)?;
        Ok((self.base.log_prob(&z, cond.context)? + log_det)?)
    }

    /// Pushes base draws `eps` `(B, D)` (samples of the base) forward:
    /// `(x (B, D), log p(x) (B,))`.
    pub fn transform_noise(
        &self,
        eps: &Tensor,
        cond: Conditioning<'_>,
    ) -> Result<(Tensor, Tensor)> {
        let (x, log_det) = self.flow.forward(eps, cond)?;
        Ok((x, (self.base.log_prob(eps, cond.context)? - log_det)?))
    }

    /// Draws `n` samples with their log-density, noise from the seeded `rng`.
    pub fn sample(
        &self,
        n: usize,
        rng: &mut SeededRng,
        dtype: candle_core::DType,
        device: &candle_core::Device,
        cond: Conditioning<'_>,
    ) -> Result<(Tensor, Tensor)> {
        self.sample_at(n, 1.0, rng, dtype, device, cond)
    }

    /// `n` samples at `temperature` (the base's scales times `T`; `T < 1` gives typical
    /// samples) and their log-density under the distribution itself (`T = 1`).
    pub fn sample_at(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut SeededRng,
        dtype: candle_core::DType,
        device: &candle_core::Device,
        cond: Conditioning<'_>,
    ) -> Result<(Tensor, Tensor)> {
        let eps = self
            .base
            .sample(n, temperature, rng, (dtype, device), cond.context)?;
        self.transform_noise(&eps, cond)
    }
}
