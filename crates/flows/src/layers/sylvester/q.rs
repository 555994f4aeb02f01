//! How the `D × M` matrix `Q` of a Sylvester layer is made: iterative orthogonalisation of a
//! free matrix, Householder reflections (as matrices, or applied to row vectors without
//! forming `Q`), and the permutations of the triangular kind.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// `(1, D, D)` identity or reversal permutation.
pub(crate) fn permutation_matrix(
    d: usize,
    reversed: bool,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let values: Vec<f64> = (0..d * d)
        .map(|i| {
            let (row, col) = (i / d, i % d);
            let target = if reversed { d - 1 - row } else { row };
            if col == target {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, (1, d, d), dev)?.to_dtype(dtype)?)
}

/// Iterative orthogonalisation `Q ← Q (I + ½(I − QᵀQ)) = 1.5 Q − ½ Q (QᵀQ)` (Björck and
/// Bowie), converging quadratically once close, until `max|QᵀQ − I|` is below the dtype's
/// tolerance (checked every other step) or 100 steps. `Q` is first divided by
/// `√(max row sum of |QᵀQ|) ≥ σ_max`, so every singular value starts in (0, 1], as close to 1
/// as that bound allows (the Frobenius norm used before left them ~3× smaller, which cost
/// about three more steps); the limit, the orthonormal polar factor, is the same. A `Q`
/// already within tolerance (one from [`crate::Flow::prepare_amortized`]) is returned as it is, at
/// the cost of one `QᵀQ`. On the CPU each matrix runs on its own in one fused op
/// ([`crate::fused::bjorck`]).
pub(crate) fn orthogonalize(q: &Tensor, eye_m: &Tensor) -> Result<Tensor> {
    if crate::fused::bjorck::applicable(q) {
        return Ok(crate::fused::bjorck::orthogonalize_fused(q)?);
    }
    orthogonalize_batched(q, eye_m)
}

/// The batched candle form of [`orthogonalize`]: one gemm call per matrix and step, all
/// matrices stopped at the step the worst one needs.
pub(crate) fn orthogonalize_batched(q: &Tensor, eye_m: &Tensor) -> Result<Tensor> {
    let tol = if q.dtype() == DType::F64 { 1e-13 } else { 1e-6 };
    let gram = |q: &Tensor| -> Result<Tensor> { Ok(q.transpose(1, 2)?.matmul(q)?) };
    let defect = |gram: &Tensor| worst_entry(&gram.broadcast_sub(eye_m)?);
    let mut g = gram(q)?;
    if defect(&g)? < tol {
        return Ok(q.clone());
    }
    let bound = g.abs()?.sum_keepdim(2)?.max_keepdim(1)?; // (rows, 1, 1), ≥ σ_max²
    let mut q = q.broadcast_div(&bound.sqrt()?)?;
    g = g.broadcast_div(&bound)?;
    for step in 0..100 {
        if step % 2 == 0 && defect(&g)? < tol {
            break;
        }
        q = (q.affine(1.5, 0.0)? - q.matmul(&g)?.affine(0.5, 0.0)?)?;
        g = gram(&q)?;
    }
    Ok(q)
}

/// `max |a_ij|` over a batch of matrices `(rows, M, M)`.
fn worst_entry(a: &Tensor) -> Result<f64> {
    Ok(a.abs()?
        .max_keepdim(1)?
        .max_keepdim(2)?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar()?)
}

/// The `R` unit vectors `u_i = v_i / ‖v_i‖` of the raw Householder block `(rows, R·D)`, each
/// `(rows, D)`.
pub(crate) fn unit_reflections(raw: &Tensor, reflections: usize, d: usize) -> Result<Vec<Tensor>> {
    let rows = raw.dim(0)?;
    let vs = raw.reshape((rows, reflections, d))?;
    (0..reflections)
        .map(|i| {
            let v = vs.narrow(1, i, 1)?.squeeze(1)?;
            let norm = v.sqr()?.sum_keepdim(1)?.sqrt()?;
            Ok(v.broadcast_div(&norm)?)
        })
        .collect()
}

/// `x Q` for `Q = H_1 ⋯ H_R`, `H_i = I − 2 u_i u_iᵀ`, row by row (`x` and every `u_i` are
/// `(n, D)`), without forming `Q`; `reverse` applies `x Qᵀ = x H_R ⋯ H_1`.
pub(crate) fn reflect(x: &Tensor, units: &[Tensor], reverse: bool) -> Result<Tensor> {
    let mut x = x.clone();
    let mut apply = |u: &Tensor| -> Result<()> {
        let along = (&x * u)?.sum_keepdim(1)?; // (n, 1)
        x = (&x - u.broadcast_mul(&(along * 2.0)?)?)?;
        Ok(())
    };
    if reverse {
        units.iter().rev().try_for_each(&mut apply)?;
    } else {
        units.iter().try_for_each(&mut apply)?;
    }
    Ok(x)
}
