//! LU-decomposed linear flow: Glow's invertible 1×1 convolution (Kingma & Dhariwal, 2018)
//! for vectors, `y = W x` with `W = P L U`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use flowvae_nn::{permutation, seeded, Stream};

/// `y = W x`, `W = P L U` on dimension `D`: `P` a fixed random permutation, `L` unit lower
/// triangular, `U` upper triangular with diagonal `exp(log s)`; `log|det W| = Σ log s`.
///
/// Parameters (global): `lower` and `upper` `(D, D)` (only their strict triangles are used)
/// and `log_scale` `(1, D)`, all zero at initialisation, so the layer starts as `P`.
/// The diagonal is positive: `W` cannot reach a singular matrix continuously, so no sign is
/// needed. The inverse is exact and differentiable: a unit triangular `I + N` has
/// `N^D = 0`, so `(I + N)⁻¹ = Π_j (I + (−N)^{2^j})` over `2^j < D`, `⌈log₂ D⌉` products.
#[derive(Debug)]
pub struct LuLinear {
    dim: usize,
    /// `(D, D)` permutation matrix `P`.
    perm: Tensor,
    lower: Tensor,
    upper: Tensor,
    log_scale: Tensor,
    eye: Tensor,
    /// `(D, D)`: ones strictly below the diagonal.
    below: Tensor,
    /// `(D, D)`: ones strictly above the diagonal.
    above: Tensor,
}

/// `(D, D)` matrix with ones where `keep(row, column)`.
fn mask(
    dim: usize,
    dtype: DType,
    device: &Device,
    keep: fn(usize, usize) -> bool,
) -> Result<Tensor> {
    let values: Vec<f64> = (0..dim * dim)
        .map(|i| if keep(i / dim, i % dim) { 1.0 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(values, (dim, dim), device)?.to_dtype(dtype)?)
}

impl LuLinear {
    /// An LU linear layer; `seed` draws the permutation.
    pub fn new(vb: VarBuilder, dim: usize, seed: u64) -> Result<Self> {
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let order = permutation(&mut seeded(seed, Stream::Permutation), dim);
        let keep_order: Vec<f64> = (0..dim * dim)
            .map(|i| if order[i / dim] == i % dim { 1.0 } else { 0.0 })
            .collect();
        let perm = Tensor::from_vec(keep_order, (dim, dim), &device)?.to_dtype(dtype)?;
        Ok(Self {
            dim,
            perm,
            lower: vb.get_with_hints((dim, dim), "lower", Init::Const(0.0))?,
            upper: vb.get_with_hints((dim, dim), "upper", Init::Const(0.0))?,
            log_scale: vb.get_with_hints((1, dim), "log_scale", Init::Const(0.0))?,
            eye: Tensor::eye(dim, dtype, &device)?,
            below: mask(dim, dtype, &device, |r, c| r > c)?,
            above: mask(dim, dtype, &device, |r, c| r < c)?,
        })
    }

    /// `L` (unit lower) and `U` (upper, diagonal `exp(log s)`), each `(D, D)`.
    fn factors(&self) -> Result<(Tensor, Tensor)> {
        let lower = (&self.eye + self.lower.mul(&self.below)?)?;
        let diagonal = self.eye.broadcast_mul(&self.log_scale.exp()?)?;
        let upper = (self.upper.mul(&self.above)? + diagonal)?;
        Ok((lower, upper))
    }

    /// `(I + n)⁻¹` for a nilpotent `n` (`n^D = 0`).
    fn unit_inverse(&self, n: &Tensor) -> Result<Tensor> {
        let mut power = n.neg()?;
        let mut inverse = (&self.eye + &power)?;
        let mut reach = 2;
        while reach < self.dim {
            power = power.matmul(&power)?;
            inverse = inverse.matmul(&(&self.eye + &power)?)?;
            reach *= 2;
        }
        Ok(inverse)
    }

    /// `log|det W|` repeated for `rows` inputs, `(rows,)`.
    fn log_det(&self, rows: usize) -> Result<Tensor> {
        Ok(self.log_scale.sum_all()?.broadcast_as(rows)?.contiguous()?)
    }
}

impl Flow for LuLinear {
    fn name(&self) -> String {
        "lu_linear".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }

    /// Rows as row vectors: `y = x Wᵀ = x Uᵀ Lᵀ Pᵀ`.
    fn forward(&self, x: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (lower, upper) = self.factors()?;
        let y = x
            .matmul(&upper.t()?)?
            .matmul(&lower.t()?)?
            .matmul(&self.perm.t()?)?;
        Ok((y, self.log_det(x.dim(0)?)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    /// `x = y W⁻ᵀ = y P L⁻ᵀ U⁻ᵀ`, with `U⁻¹ = (I + diag(1/s) S)⁻¹ diag(1/s)`.
    fn inverse(&self, y: &Tensor, _cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let lower_inverse = self.unit_inverse(&self.lower.mul(&self.below)?)?;
        let inverse_scale = self.log_scale.neg()?.exp()?.t()?; // (D, 1): 1/s per row
        let scaled_upper = self.upper.mul(&self.above)?.broadcast_mul(&inverse_scale)?;
        let upper_inverse = self
            .unit_inverse(&scaled_upper)?
            .broadcast_mul(&inverse_scale.t()?)?;
        let x = y
            .matmul(&self.perm)?
            .matmul(&lower_inverse.t()?)?
            .matmul(&upper_inverse.t()?)?;
        Ok((x, self.log_det(y.dim(0)?)?.neg()?))
    }
}
