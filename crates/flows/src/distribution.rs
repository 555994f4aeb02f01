//! A flow distribution: a standard-normal base pushed through a flow.

use candle_core::Tensor;

use crate::base::standard_normal_log_prob;
use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use flowvae_nn::{standard_normal, SeededRng};

/// `p(x) = N(f⁻¹(x); 0, I) |det ∂f⁻¹/∂x|` for a flow `f` in the sampling direction.
#[derive(Debug)]
pub struct FlowDistribution {
    flow: Box<dyn Flow>,
}

impl FlowDistribution {
    /// Wraps a flow whose `forward` maps base samples to data.
    pub fn new(flow: Box<dyn Flow>) -> Self {
        Self { flow }
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
        Ok((standard_normal_log_prob(&z)? + log_det)?)
    }

    /// Pushes base draws `eps` `(B, D)` forward: `(x (B, D), log p(x) (B,))`.
    pub fn transform_noise(
        &self,
        eps: &Tensor,
        cond: Conditioning<'_>,
    ) -> Result<(Tensor, Tensor)> {
        let (x, log_det) = self.flow.forward(eps, cond)?;
        Ok((x, (standard_normal_log_prob(eps)? - log_det)?))
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
        let eps = standard_normal(rng, (n, self.flow.dim()), dtype, device)?;
        self.transform_noise(&eps, cond)
    }
}
