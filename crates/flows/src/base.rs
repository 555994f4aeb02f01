//! Base densities: the standard normal and a diagonal Gaussian with per-sample parameters.

use candle_core::Tensor;

use crate::error::Result;

/// `log(2π)`.
pub const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// `log N(z; 0, I)` summed over the last dimension: `(B, D) → (B,)`.
pub fn standard_normal_log_prob(z: &Tensor) -> Result<Tensor> {
    let d = z.dim(1)? as f64;
    Ok(z.sqr()?.sum(1)?.affine(-0.5, -0.5 * d * LOG_2PI)?)
}

/// `q_0(z|x) = N(μ, diag(exp(log σ²)))`, parameters `(B, D)` each.
#[derive(Debug, Clone)]
pub struct DiagGaussian {
    /// Means μ, `(B, D)`.
    pub mu: Tensor,
    /// Log-variances log σ², `(B, D)`.
    pub log_var: Tensor,
}

impl DiagGaussian {
    /// From mean and log-variance, both `(B, D)`.
    pub fn new(mu: Tensor, log_var: Tensor) -> Self {
        Self { mu, log_var }
    }

    /// Reparameterised draw `μ + σ ⊙ ε` for `ε ~ N(0, I)` given as `(B, D)`.
    pub fn rsample(&self, eps: &Tensor) -> Result<Tensor> {
        let std = (&self.log_var * 0.5)?.exp()?;
        Ok((&self.mu + (std * eps)?)?)
    }

    /// `log q_0(z)` summed over dimensions: `(B, D) → (B,)`.
    pub fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let d = z.dim(1)? as f64;
        let sq = ((z - &self.mu)?.sqr()? * (self.log_var.neg()?.exp())?)?;
        Ok((sq + &self.log_var)?
            .sum(1)?
            .affine(-0.5, -0.5 * d * LOG_2PI)?)
    }

    /// `log q_0` at the reparameterised draw, simplified: only ε and log σ² enter.
    pub fn log_prob_of_rsample(&self, eps: &Tensor) -> Result<Tensor> {
        let d = eps.dim(1)? as f64;
        Ok((eps.sqr()? + &self.log_var)?
            .sum(1)?
            .affine(-0.5, -0.5 * d * LOG_2PI)?)
    }

    /// `KL(q_0 ‖ N(0, I))` in closed form, `(B,)`.
    pub fn kl_to_standard_normal(&self) -> Result<Tensor> {
        let terms = ((self.mu.sqr()? + self.log_var.exp()?)? - &self.log_var)?;
        Ok(terms.affine(1.0, -1.0)?.sum(1)?.affine(0.5, 0.0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn diag_gaussian_log_prob_matches_closed_form() {
        let dev = Device::Cpu;
        let mu = Tensor::new(&[[0.5f64, -1.0]], &dev).unwrap();
        let log_var = Tensor::new(&[[0.2f64, -0.7]], &dev).unwrap();
        let q = DiagGaussian::new(mu, log_var);
        let z = Tensor::new(&[[1.0f64, 0.3]], &dev).unwrap();
        let got: f64 = q.log_prob(&z).unwrap().to_vec1::<f64>().unwrap()[0];
        let mut want = 0.0;
        for (z, m, lv) in [(1.0f64, 0.5f64, 0.2f64), (0.3, -1.0, -0.7)] {
            want += -0.5 * (LOG_2PI + lv + (z - m).powi(2) / lv.exp());
        }
        assert!((got - want).abs() < 1e-12);
        let eps = ((&z - &q.mu).unwrap() / (&q.log_var * 0.5).unwrap().exp().unwrap()).unwrap();
        let via_eps: f64 = q
            .log_prob_of_rsample(&eps)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        assert!((via_eps - want).abs() < 1e-12);
        let std_normal: f64 = standard_normal_log_prob(&z)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        assert!((std_normal - (-LOG_2PI - 0.5 * (1.0 + 0.09))).abs() < 1e-12);
    }
}
