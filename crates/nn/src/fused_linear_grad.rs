//! The backward products of the fused dense layer (`∂x`, `∂W`) and the pass that masks the
//! output gradient by the ReLU and sums its columns (`∂b`).

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, WithDType};

use crate::fused_linear::{contiguous, strided, WeightMask};
use crate::parallel_gemm::{matmul, Element, Strided};
use crate::simd;
use crate::weight_mask::{mask_in_place, masked_weight, with_mask};

/// The backward products from the masked gradient `g` `(B, out)`: `g W` (with `W` `(out, in)`)
/// or `gᵀ x` (with `x` `(B, in)`). With a weight mask `M`, `W` reads as `W ⊙ M` and the
/// weight's gradient comes out multiplied by `M`.
pub(crate) struct Product {
    pub(crate) which: Which,
    pub(crate) mask: Option<WeightMask>,
    /// Whether `other` is the forward's kept weight (`W ⊙ M`) rather
    /// than `W` itself.
    pub(crate) prepared: bool,
}

pub(crate) enum Which {
    /// `∂x = g W`.
    GradInput,
    /// `∂W = gᵀ x`.
    GradWeight,
}

fn backward_product<T: Element + WithDType>(
    op: &Product,
    g: &[T],
    lg: &Layout,
    other: &[T],
    lo: &Layout,
) -> Result<(Vec<T>, Shape)> {
    let (rows, out, g) = strided(g, lg)?;
    let (o_rows, o_cols, o) = strided(other, lo)?;
    Ok(match (&op.which, &op.mask) {
        (Which::GradInput, None) => (matmul(rows, out, o_cols, g, o), Shape::from((rows, o_cols))),
        (Which::GradInput, Some(WeightMask::Dense(_))) if op.prepared => {
            (matmul(rows, out, o_cols, g, o), Shape::from((rows, o_cols)))
        }
        (Which::GradInput, Some(WeightMask::Staircase(plan))) => {
            let grad = if op.prepared {
                plan.grad_input(g, rows, contiguous(other, lo, "kept weight")?)
            } else {
                plan.grad_input(g, rows, &plan.masked_weight(o))
            };
            (grad, Shape::from((rows, o_cols)))
        }
        (Which::GradWeight, Some(WeightMask::Staircase(plan))) => {
            (plan.grad_weight(g, o, rows), Shape::from((out, o_cols)))
        }
        (Which::GradInput, Some(WeightMask::Dense(mask))) => {
            let w = with_mask(mask, |m: &[T]| masked_weight(other, lo, m))?;
            let w = Strided::row_major(&w, o_cols);
            (matmul(rows, out, o_cols, g, w), Shape::from((rows, o_cols)))
        }
        (Which::GradWeight, mask) => {
            let gt = Strided {
                data: g.data,
                row_stride: g.col_stride,
                col_stride: g.row_stride,
            };
            let mut product = matmul(out, o_rows, o_cols, gt, o);
            if let Some(WeightMask::Dense(mask)) = mask {
                with_mask(mask, |m: &[T]| {
                    mask_in_place(&mut product, m);
                    Ok(())
                })?;
            }
            (product, Shape::from((out, o_cols)))
        }
    })
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "fused-linear-grad-product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok(match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(o)) => {
                let (v, shape) = backward_product(self, g, l1, o, l2)?;
                (CpuStorage::F32(v), shape)
            }
            (CpuStorage::F64(g), CpuStorage::F64(o)) => {
                let (v, shape) = backward_product(self, g, l1, o, l2)?;
                (CpuStorage::F64(v), shape)
            }
            _ => bail!("fused linear: f32 or f64 tensors of one dtype expected"),
        })
    }
}

/// From `y` and `g`, both `(B, N)`: `(B + 1, N)` holding `g ⊙ 1[y > 0]` (or `g` itself when the
/// flag is off) in its first `B` rows and that matrix's column sums in the last.
pub(crate) struct MaskAndColumnSums(pub(crate) bool);

macro_rules! mask_and_sum {
    ($t:ty, $y:expr, $g:expr, $n:expr, $relu:expr) => {{
        let (y, g, n, relu): (&[$t], &[$t], usize, bool) = ($y, $g, $n, $relu);
        let mut out = vec![0 as $t; g.len() + n];
        simd::dispatch(
            #[inline(always)]
            || {
                let (rows, sums) = out.split_at_mut(g.len());
                for ((row, y), g) in rows
                    .chunks_exact_mut(n)
                    .zip(y.chunks_exact(n))
                    .zip(g.chunks_exact(n))
                {
                    for (((o, s), &y), &g) in row.iter_mut().zip(sums.iter_mut()).zip(y).zip(g) {
                        let v = if !relu || y > 0.0 { g } else { 0.0 };
                        *o = v;
                        *s += v;
                    }
                }
            },
        );
        out
    }};
}

impl CustomOp2 for MaskAndColumnSums {
    fn name(&self) -> &'static str {
        "fused-linear-grad-mask-and-sums"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, n) = l1.shape().dims2()?;
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => {
                let (y, g) = (contiguous(y, l1, "output")?, contiguous(g, l2, "gradient")?);
                CpuStorage::F32(mask_and_sum!(f32, y, g, n, self.0))
            }
            (CpuStorage::F64(y), CpuStorage::F64(g)) => {
                let (y, g) = (contiguous(y, l1, "output")?, contiguous(g, l2, "gradient")?);
                CpuStorage::F64(mask_and_sum!(f64, y, g, n, self.0))
            }
            _ => bail!("fused linear: f32 or f64 tensors of one dtype expected"),
        };
        Ok((out, Shape::from((rows + 1, n))))
    }
}
