//! Base distributions of a flow distribution: the standard normal, a learnable diagonal
//! Gaussian, and a learnable Gaussian mixture (MAF's MoG base).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::base::{standard_normal_log_prob, LOG_2PI};
use crate::error::{FlowError, Result};
use flowvae_nn::{logsumexp, standard_normal, SeededRng};

/// The `base:` of a flow distribution in YAML (`standard`, `diagonal`, or
/// `mixture: {components: K}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BaseSpec {
    /// `N(0, I)`, no parameters.
    #[default]
    Standard,
    /// `N(μ, diag σ²)` with learned `μ` and `log σ`.
    Diagonal,
    /// `Σ_k w_k N(μ_k, diag σ_k²)` with learned weights (softmax of logits), means and scales.
    Mixture {
        /// Number of components `K ≥ 1`.
        components: usize,
    },
}

impl BaseSpec {
    /// Whether this is the standard normal (the default, left out of resolved configs).
    pub fn is_standard(&self) -> bool {
        matches!(self, Self::Standard)
    }
}

/// A base density on ℝ^D; learned parameters live under the `VarBuilder` it was built with.
#[derive(Debug)]
pub enum Base {
    /// `N(0, I)` on dimension `D`.
    Standard(usize),
    /// Mean and log-scale, each `(1, D)`.
    Diagonal {
        /// `μ`, `(1, D)`.
        mean: Tensor,
        /// `log σ`, `(1, D)`.
        log_std: Tensor,
    },
    /// Logits `(1, K)`, means and log-scales `(K, D)`.
    Mixture {
        /// Unnormalised log-weights, `(1, K)`.
        logits: Tensor,
        /// Component means, `(K, D)`.
        means: Tensor,
        /// Component log-scales, `(K, D)`.
        log_stds: Tensor,
    },
}

impl Base {
    /// The base `spec` on dimension `dim`; a mixture's means start N(0, 1) so that the
    /// components differ, everything else at the standard normal.
    pub fn new(spec: &BaseSpec, vb: VarBuilder, dim: usize) -> Result<Self> {
        let zero = Init::Const(0.0);
        Ok(match spec {
            BaseSpec::Standard => Self::Standard(dim),
            BaseSpec::Diagonal => Self::Diagonal {
                mean: vb.get_with_hints((1, dim), "mean", zero)?,
                log_std: vb.get_with_hints((1, dim), "log_std", zero)?,
            },
            BaseSpec::Mixture { components: 0 } => {
                return Err(FlowError::InvalidConfig {
                    field: "base.mixture.components".into(),
                    message: "must be at least 1".into(),
                })
            }
            &BaseSpec::Mixture { components: k } => Self::Mixture {
                logits: vb.get_with_hints((1, k), "logits", zero)?,
                means: vb.get_with_hints(
                    (k, dim),
                    "means",
                    Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                )?,
                log_stds: vb.get_with_hints((k, dim), "log_stds", zero)?,
            },
        })
    }

    /// `log p(z)` for `z` `(B, D)`: `(B,)`.
    pub fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        match self {
            Self::Standard(_) => standard_normal_log_prob(z),
            Self::Diagonal { mean, log_std } => diagonal_log_prob(z, mean, log_std),
            Self::Mixture {
                logits,
                means,
                log_stds,
            } => {
                let (rows, k) = (z.dim(0)?, means.dim(0)?);
                let repeated = z.unsqueeze(1)?.broadcast_as((rows, k, z.dim(1)?))?;
                let per_component = diagonal_log_prob_3d(&repeated, means, log_stds)?; // (B, K)
                let log_weights = logits.broadcast_sub(&logsumexp(logits, 1)?.unsqueeze(1)?)?;
                Ok(logsumexp(&per_component.broadcast_add(&log_weights)?, 1)?)
            }
        }
    }

    /// `n` draws at `temperature` `T` (each scale multiplied by `T`; 1: the density itself),
    /// `(n, D)`, noise from `rng`.
    pub fn sample(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut SeededRng,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        match self {
            Self::Standard(dim) => {
                let eps = standard_normal(rng, (n, *dim), dtype, device)?;
                // At T = 1 the draws themselves, untouched by an extra op.
                match temperature == 1.0 {
                    true => Ok(eps),
                    false => Ok((eps * temperature)?),
                }
            }
            Self::Diagonal { mean, log_std } => {
                let eps = standard_normal(rng, (n, mean.dim(1)?), dtype, device)?;
                let scaled = eps
                    .broadcast_mul(&log_std.exp()?)?
                    .affine(temperature, 0.0)?;
                Ok(scaled.broadcast_add(mean)?)
            }
            Self::Mixture {
                logits,
                means,
                log_stds,
            } => {
                let chosen = draw_components(logits, n, rng, device)?;
                let mean = means.index_select(&chosen, 0)?;
                let std = log_stds.index_select(&chosen, 0)?.exp()?;
                let eps = standard_normal(rng, (n, means.dim(1)?), dtype, device)?;
                Ok((mean + (eps * std)?.affine(temperature, 0.0)?)?)
            }
        }
    }
}

/// `Σ_d log N(z_d; μ_d, σ_d²)` over the last dimension.
pub(crate) fn diagonal_log_prob(z: &Tensor, mean: &Tensor, log_std: &Tensor) -> Result<Tensor> {
    let d = z.dim(D::Minus1)? as f64;
    let standardized = z
        .broadcast_sub(mean)?
        .broadcast_mul(&log_std.neg()?.exp()?)?;
    let quadratic = standardized.sqr()?.sum(D::Minus1)?;
    let log_scale = log_std.sum(D::Minus1)?;
    Ok(quadratic
        .affine(-0.5, -0.5 * d * LOG_2PI)?
        .broadcast_sub(&log_scale)?)
}

/// The diagonal log-density of `z` `(B, K, D)` under each of `K` components: `(B, K)`.
fn diagonal_log_prob_3d(z: &Tensor, means: &Tensor, log_stds: &Tensor) -> Result<Tensor> {
    diagonal_log_prob(z, &means.unsqueeze(0)?, &log_stds.unsqueeze(0)?)
}

/// `n` component indices drawn from `softmax(logits)`, as a `u32` tensor.
fn draw_components(
    logits: &Tensor,
    n: usize,
    rng: &mut SeededRng,
    device: &Device,
) -> Result<Tensor> {
    let logits: Vec<f64> = logits.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let chosen: Vec<u32> = (0..n).map(|_| draw_index(&logits, rng)).collect();
    Ok(Tensor::from_vec(chosen, n, device)?)
}

/// One index drawn from `softmax(logits)` (`logits` non-empty).
pub(crate) fn draw_index(logits: &[f64], rng: &mut SeededRng) -> u32 {
    let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    let last = weights.len() - 1;
    weights
        .iter()
        .position(|&w| {
            u -= w;
            u < 0.0
        })
        .unwrap_or(last) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{perturb_parameters, DiagGaussian, ParamStore};
    use flowvae_nn::{seeded, Stream};

    fn base(spec: &BaseSpec, dim: usize) -> (ParamStore, Base) {
        let store = ParamStore::new(0);
        let base = Base::new(
            spec,
            store.var_builder(DType::F64, &Device::Cpu).pp("base"),
            dim,
        );
        perturb_parameters(&store, 3, 0.5).unwrap();
        (store, base.unwrap())
    }

    /// The mixture's density integrates to 1 on a grid that holds its mass.
    #[test]
    fn a_mixture_integrates_to_one() {
        let (_store, mixture) = base(&BaseSpec::Mixture { components: 3 }, 2);
        let (n, half) = (300, 9.0);
        let step = 2.0 * half / n as f64;
        let points: Vec<f64> = (0..n * n)
            .flat_map(|i| {
                let at = |j: usize| -half + (j as f64 + 0.5) * step;
                [at(i / n), at(i % n)]
            })
            .collect();
        let grid = Tensor::from_vec(points, (n * n, 2), &Device::Cpu).unwrap();
        let density = mixture.log_prob(&grid).unwrap().exp().unwrap();
        let mass: f64 = density.sum_all().unwrap().to_scalar::<f64>().unwrap() * step * step;
        assert!((mass - 1.0).abs() < 1e-3, "mass {mass}");
    }

    /// The mixture's `log_prob` (the VAE's MoG prior too) is `log Σ_k w_k N(z; μ_k, σ_k²)`
    /// written out in plain f64, with `w = softmax(logits)`.
    #[test]
    fn a_mixtures_log_prob_is_the_direct_formula() {
        let (_store, mixture) = base(&BaseSpec::Mixture { components: 3 }, 2);
        let Base::Mixture {
            logits,
            means,
            log_stds,
        } = &mixture
        else {
            panic!("not a mixture");
        };
        let logits: Vec<f64> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let (means, log_stds): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
            (means.to_vec2().unwrap(), log_stds.to_vec2().unwrap());
        let points = [[0.3, -1.2], [2.5, 0.1], [-4.0, 3.0]];
        let z = Tensor::new(&points, &Device::Cpu).unwrap();
        let got: Vec<f64> = mixture.log_prob(&z).unwrap().to_vec1().unwrap();
        let norm: f64 = logits.iter().map(|l| l.exp()).sum();
        for (row, got) in points.iter().zip(&got) {
            let density: f64 = (0..3)
                .map(|k| {
                    let log_normal: f64 = (0..2)
                        .map(|d| {
                            let u = (row[d] - means[k][d]) / log_stds[k][d].exp();
                            -0.5 * (2.0 * std::f64::consts::PI).ln() - log_stds[k][d] - 0.5 * u * u
                        })
                        .sum();
                    logits[k].exp() / norm * log_normal.exp()
                })
                .sum();
            assert!(
                (got - density.ln()).abs() < 1e-12,
                "{got} vs {}",
                density.ln()
            );
        }
    }

    /// Samples' mean is the weighted mean of the components; a lower temperature shrinks
    /// the spread around each component.
    #[test]
    fn mixture_samples_have_the_mixtures_mean() {
        let (_store, mixture) = base(&BaseSpec::Mixture { components: 3 }, 2);
        let Base::Mixture { logits, means, .. } = &mixture else {
            panic!("not a mixture");
        };
        let weights = candle_nn::ops::softmax(logits, 1).unwrap();
        let expected: Vec<f64> = weights
            .matmul(means)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut rng = seeded(1, Stream::Scratch("mixture"));
        let draws = mixture
            .sample(40_000, 1.0, &mut rng, DType::F64, &Device::Cpu)
            .unwrap();
        let mean: Vec<f64> = draws.mean(0).unwrap().to_vec1().unwrap();
        for (got, want) in mean.iter().zip(&expected) {
            assert!((got - want).abs() < 0.03, "{mean:?} vs {expected:?}");
        }
    }

    #[test]
    fn the_diagonal_base_is_a_diagonal_gaussian() {
        let (_store, diagonal) = base(&BaseSpec::Diagonal, 3);
        let Base::Diagonal { mean, log_std } = &diagonal else {
            panic!("not diagonal");
        };
        let z = Tensor::new(&[[0.3f64, -1.0, 2.0], [0.0, 0.5, -0.25]], &Device::Cpu).unwrap();
        let reference = DiagGaussian::new(
            mean.broadcast_as((2, 3)).unwrap().contiguous().unwrap(),
            (log_std * 2.0)
                .unwrap()
                .broadcast_as((2, 3))
                .unwrap()
                .contiguous()
                .unwrap(),
        );
        let gap = (diagonal.log_prob(&z).unwrap() - reference.log_prob(&z).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(gap < 1e-12, "{gap}");
    }

    #[test]
    fn a_mixture_without_components_names_the_field() {
        let store = ParamStore::new(0);
        let vb = store.var_builder(DType::F64, &Device::Cpu);
        let err = Base::new(&BaseSpec::Mixture { components: 0 }, vb, 2).unwrap_err();
        assert!(
            err.to_string().starts_with("base.mixture.components"),
            "{err}"
        );
    }
}
