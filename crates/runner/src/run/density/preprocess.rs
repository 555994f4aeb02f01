//! The map between the data and the flow's input: dequantization and logit for images,
//! standardization for tables. Fitted on the training split, saved as `preprocess.json` in
//! the run (the commands that read a finished run need it), and counted in every reported
//! log-likelihood through its log-determinant.

use candle_core::{DType, Device, Tensor};
use flowvae_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::experiment::density::Preprocess;

/// `preprocess.json` of a density run: the data's dimension and the fitted preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Dimension of a data row.
    pub dim: usize,
    /// The preprocessing fitted on the training split.
    pub preprocess: Prepared,
    /// The condition of a conditional density, fitted on the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<super::condition::FittedCondition>,
}

/// A fitted preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Prepared {
    /// Grey level `v = round(x (L − 1))` of `L`, dequantized to `u = (v + noise) / L`, then
    /// `z = logit(λ + (1 − 2λ) u)`.
    Logit {
        /// λ of the logit.
        lambda: f64,
        /// Grey levels `L` of the source.
        levels: u32,
    },
    /// `z = (x − mean) / std` per column, with the training split's statistics.
    Standardize {
        /// Column means.
        mean: Vec<f64>,
        /// Column standard deviations (> 0: constant columns are refused on reading).
        std: Vec<f64>,
    },
    /// `z = x`.
    Identity,
}

impl Prepared {
    /// Fits `choice` on the training split; `levels` are the source's grey levels (images).
    pub fn fit(choice: Preprocess, train: &Dataset, levels: Option<u32>) -> Result<Self> {
        Ok(match choice {
            Preprocess::Logit { lambda } => Self::Logit {
                lambda,
                levels: levels.ok_or_else(|| RunnerError::Config {
                    file: "density.preprocess".into(),
                    location: None,
                    message: "logit needs an image source with known grey levels".into(),
                })?,
            },
            Preprocess::Standardize => {
                let (n, d) = (train.n as f64, train.dim);
                let mut mean = vec![0.0; d];
                let mut square = vec![0.0; d];
                for i in 0..train.n {
                    for (j, &v) in train.row(i).iter().enumerate() {
                        mean[j] += v as f64 / n;
                        square[j] += (v as f64) * (v as f64) / n;
                    }
                }
                let std = (0..d)
                    .map(|j| (square[j] - mean[j] * mean[j]).max(0.0).sqrt().max(1e-12))
                    .collect();
                Self::Standardize { mean, std }
            }
            Preprocess::None => Self::Identity,
        })
    }

    /// Data rows `(B, D)` → the flow's input `(B, D)` and `log|det ∂z/∂x|` `(B,)` (for images
    /// `x` is the dequantized `u ∈ (0, 1)`). `noise` `(B, D)` in `[0, 1)` dequantizes images.
    pub fn to_flow(&self, x: &Tensor, noise: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let rows = x.dim(0)?;
        match self {
            Self::Logit { lambda, levels } => {
                let top = (*levels - 1) as f64;
                let grey = x.affine(top, 0.0)?.round()?;
                let noise = match noise {
                    Some(n) => n.clone(),
                    None => grey.ones_like()?.affine(0.5, 0.0)?,
                };
                let u = (grey + noise)?.affine(1.0 / *levels as f64, 0.0)?;
                let s = u.affine(1.0 - 2.0 * lambda, *lambda)?;
                let (log_s, log_rest) = (s.log()?, s.affine(-1.0, 1.0)?.log()?);
                let z = (&log_s - &log_rest)?;
                let per_dim = ((log_s + log_rest)?.neg()? + (1.0 - 2.0 * lambda).ln())?;
                Ok((z, per_dim.sum(1)?))
            }
            Self::Standardize { mean, std } => {
                let (mean, std) = (row(mean, x)?, row(std, x)?);
                let z = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
                let log_det = std.log()?.sum_all()?.neg()?.broadcast_as(rows)?;
                Ok((z, log_det))
            }
            Self::Identity => Ok((x.clone(), Tensor::zeros(rows, x.dtype(), x.device())?)),
        }
    }

    /// The flow's output `(B, D)` → data rows: grey levels in `[0, 1]` for images (the
    /// dequantization noise floored away), the table's units otherwise.
    pub fn to_data(&self, z: &Tensor) -> Result<Tensor> {
        match self {
            Self::Logit { lambda, levels } => {
                let s = candle_nn::ops::sigmoid(z)?;
                let u = s.affine(1.0 / (1.0 - 2.0 * lambda), -lambda / (1.0 - 2.0 * lambda))?;
                let top = (*levels - 1) as f64;
                let grey = u.affine(*levels as f64, 0.0)?.floor()?.clamp(0.0, top)?;
                Ok(grey.affine(1.0 / top, 0.0)?)
            }
            Self::Standardize { mean, std } => Ok(z
                .broadcast_mul(&row(std, z)?)?
                .broadcast_add(&row(mean, z)?)?),
            Self::Identity => Ok(z.clone()),
        }
    }

    /// The grey levels of an image preprocessing.
    pub fn levels(&self) -> Option<u32> {
        match self {
            Self::Logit { levels, .. } => Some(*levels),
            _ => None,
        }
    }

    /// A short description for summaries, e.g. `logit (λ = 1e-6, 256 levels)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Logit { lambda, levels } => {
                format!("dequantize + logit (lambda = {lambda:e}, {levels} levels)")
            }
            Self::Standardize { .. } => "standardize (training statistics)".into(),
            Self::Identity => "none".into(),
        }
    }
}

/// `values` as a `(1, D)` row in `like`'s dtype and device.
fn row(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let t = Tensor::from_slice(values, (1, values.len()), &Device::Cpu)?;
    Ok(t.to_dtype(like.dtype())?.to_device(like.device())?)
}

/// Dequantization noise `(rows, dim)` in `[0, 1)` from `rng`.
pub fn noise(
    rng: &mut flowvae_nn::SeededRng,
    rows: usize,
    dim: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    Ok(flowvae_nn::uniform(
        rng,
        (rows, dim),
        0.0,
        1.0,
        dtype,
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log|det|` against a central difference of the element-wise map, and the way back.
    #[test]
    fn log_dets_match_the_derivative_and_data_come_back() {
        let dev = Device::Cpu;
        // Grey levels k / 16 of 17 (and, for the table, any numbers).
        let x = Tensor::new(&[[3.0f64, 8.0, 15.0], [0.0, 16.0, 5.0]], &dev)
            .unwrap()
            .affine(1.0 / 16.0, 0.0)
            .unwrap();
        let standardize = Prepared::Standardize {
            mean: vec![0.1, -2.0, 0.5],
            std: vec![0.5, 3.0, 0.25],
        };
        let logit = Prepared::Logit {
            lambda: 0.05,
            levels: 17,
        };
        for prepared in [standardize, logit] {
            let noise = x.affine(0.0, 0.3).unwrap();
            let (z, log_det) = prepared.to_flow(&x, Some(&noise)).unwrap();
            // Numerical Jacobian of u → z (images: u is the dequantized point, moved by the noise).
            let h = 1e-6;
            let scale = match prepared {
                Prepared::Logit { levels, .. } => levels as f64,
                _ => 1.0,
            };
            let (plus, _) = prepared
                .to_flow(&x, Some(&noise.affine(1.0, h * scale).unwrap()))
                .unwrap();
            let (plus, z) = match prepared {
                Prepared::Logit { .. } => (plus, z.clone()),
                _ => (
                    prepared
                        .to_flow(&x.affine(1.0, h).unwrap(), None)
                        .unwrap()
                        .0,
                    z.clone(),
                ),
            };
            let numeric = ((plus - &z).unwrap() / h)
                .unwrap()
                .log()
                .unwrap()
                .sum(1)
                .unwrap();
            let gap: f64 = (numeric - &log_det)
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(gap < 1e-4, "{prepared:?}: log-det off by {gap}");
            let back = prepared.to_data(&z).unwrap();
            let error: f64 = (back - &x)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(error < 1e-9, "{prepared:?}: data come back off by {error}");
        }
    }
}
