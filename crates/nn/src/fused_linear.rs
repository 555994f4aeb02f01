//! `y = act(x Wᵀ + b)` (act: identity or ReLU) as one graph node with its own backward (CPU).
//!
//! Unfused, a dense layer is four nodes — `Wᵀ`, matmul, broadcast add, ReLU — and candle's
//! backward allocates, zeroes and adds a gradient buffer for each of their inputs, the `W`-sized
//! ones twice. Here the product `x Wᵀ` runs as a plain (strided, copy-free) matmul outside the
//! graph; bias and ReLU are applied in one pass that also creates the node; the backward is
//! `g' = g ⊙ 1[y > 0]`, `∂x = g' W` (only when `x` needs it), `∂W = g'ᵀ x`, `∂b = Σ_rows g'`.
//! A weight mask (MADE) is applied inside the node; a MADE-shaped one runs by its staircase
//! plan (`staircase`), whose products skip the blocks the mask zeroes.

use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};

use std::sync::Arc;

use crate::fused::enabled;
use crate::fused_linear_grad::{MaskAndColumnSums, Product, Which};
use crate::grad_sink;
use crate::parallel_gemm::{matmul, Element, Strided};
use crate::simd;
use crate::staircase::Staircase;
use crate::weight_mask::{masked_weight, with_mask, Stash};

/// Whether [`linear`] runs fused for `x` `(B, in)` and `weight` `(out, in)`.
pub fn applicable(x: &Tensor, weight: &Tensor) -> bool {
    enabled(crate::runtime::FusedOp::Linear)
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.dtype() == weight.dtype()
        && x.rank() == 2
}

/// `x` `(B, in)`, `weight` `(out, in)` and `bias` `(out,)`, or an error that gives the shapes.
fn check_shapes(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<()> {
    let (_, x_in) = x.dims2()?;
    let (out, w_in) = weight.dims2()?;
    if x_in != w_in || bias.elem_count() != out {
        bail!(
            "fused linear: x (_, {x_in}), weight ({out}, {w_in}), bias of {}",
            bias.elem_count()
        );
    }
    Ok(())
}

/// `act(x Wᵀ + b)`: `x` `(B, in)`, `weight` `(out, in)`, `bias` `(out,)` → `(B, out)`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    check_shapes(x, weight, bias)?;
    x.apply_op3(
        weight,
        bias,
        BiasAct {
            relu,
            mask: None,
            stash: Stash::default(),
        },
    )
}

/// `act(x (W ⊙ M)ᵀ + b)` with a fixed 0/1 `mask` `(out, in)` (MADE): the same node as
/// [`linear`], the product `W ⊙ M` formed inside it, so that a step's graph holds no masked
/// copy of the weight and `W` receives `(∂ of W ⊙ M) ⊙ M` directly.
pub fn masked_linear(
    x: &Tensor,
    weight: &Tensor,
    mask: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    if mask.shape() != weight.shape() || mask.dtype() != weight.dtype() {
        bail!(
            "fused linear: mask {:?} {:?} for weight {:?} {:?}",
            mask.shape(),
            mask.dtype(),
            weight.shape(),
            weight.dtype()
        );
    }
    check_shapes(x, weight, bias)?;
    let mask = Some(WeightMask::Dense(mask.contiguous()?));
    let stash = Stash::default();
    x.apply_op3(weight, bias, BiasAct { relu, mask, stash })
}

/// [`masked_linear`] for a mask given by its [`Staircase`] plan: only the products' blocks
/// that the mask does not zero are computed.
pub(crate) fn staircase_linear(
    x: &Tensor,
    weight: &Tensor,
    plan: &Arc<Staircase>,
    bias: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    if weight.dims2()? != plan.shape() {
        bail!(
            "fused linear: mask plan {:?} for weight {:?}",
            plan.shape(),
            weight.shape()
        );
    }
    check_shapes(x, weight, bias)?;
    let mask = Some(WeightMask::Staircase(Arc::clone(plan)));
    let stash = Stash::default();
    x.apply_op3(weight, bias, BiasAct { relu, mask, stash })
}

/// A layer's fixed 0/1 weight mask, as the kernels use it.
#[derive(Clone)]
pub(crate) enum WeightMask {
    /// A contiguous mask of the weight's shape and dtype, multiplied in entry by entry.
    Dense(Tensor),
    /// A MADE mask by its staircase plan: products skip the blocks it zeroes.
    Staircase(Arc<Staircase>),
}

/// Forward node: `x Wᵀ` (or `x (W ⊙ M)ᵀ`) by [`matmul`], then the bias and activation in one
/// pass.
struct BiasAct {
    relu: bool,
    mask: Option<WeightMask>,
    /// With a mask: the forward's `W ⊙ M`, for the backward.
    stash: Stash,
}

/// The `(rows, cols)` matrix a rank-2 layout describes inside its storage.
pub(crate) fn strided<'a, T>(v: &'a [T], l: &Layout) -> Result<(usize, usize, Strided<'a, T>)> {
    let (rows, cols) = l.shape().dims2()?;
    let stride = l.stride();
    Ok((
        rows,
        cols,
        Strided {
            data: &v[l.start_offset()..],
            row_stride: stride[0],
            col_stride: stride[1],
        },
    ))
}

/// `x Wᵀ` for `x` `(B, in)` and `W` `(out, in)` in any rank-2 layouts, row-major `(B, out)`.
fn product_xwt<T: Element>(x: &[T], lx: &Layout, w: &[T], lw: &Layout) -> Result<Vec<T>> {
    let (rows, k, x) = strided(x, lx)?;
    let (out, _, w) = strided(w, lw)?;
    let wt = Strided {
        data: w.data,
        row_stride: w.col_stride,
        col_stride: w.row_stride,
    };
    Ok(matmul(rows, k, out, x, wt))
}

pub(crate) fn contiguous<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("fused linear: non-contiguous {what}"),
    }
}

macro_rules! bias_act {
    ($p:expr, $b:expr, $relu:expr) => {{
        let n = $b.len();
        let mut out = Vec::with_capacity($p.len());
        simd::dispatch(
            #[inline(always)]
            || {
                out.resize($p.len(), 0.0);
                for (o, row) in out.chunks_exact_mut(n).zip($p.chunks_exact(n)) {
                    for ((o, &v), &b) in o.iter_mut().zip(row).zip($b) {
                        *o = if $relu { (v + b).max(0.0) } else { v + b };
                    }
                }
            },
        );
        out
    }};
}

impl BiasAct {
    /// `x Wᵀ`, or `x (W ⊙ M)ᵀ` keeping `W ⊙ M` for the backward.
    fn product<T: Element + WithDType>(
        &self,
        x: &[T],
        lx: &Layout,
        w: &[T],
        lw: &Layout,
    ) -> Result<Vec<T>> {
        let (w, p) = match &self.mask {
            None => return product_xwt(x, lx, w, lw),
            Some(WeightMask::Dense(mask)) => {
                let w = with_mask(mask, |m: &[T]| masked_weight(w, lw, m))?;
                let p = product_xwt(x, lx, &w, &Layout::contiguous(lw.shape()))?;
                (w, p)
            }
            Some(WeightMask::Staircase(plan)) => {
                let w = plan.masked_weight(strided(w, lw)?.2);
                let (batch, _, x) = strided(x, lx)?;
                let p = plan.forward(x, batch, &w);
                (w, p)
            }
        };
        self.stash.keep(T::to_cpu_storage_owned(w));
        Ok(p)
    }
}

impl CustomOp3 for BiasAct {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, _) = l1.shape().dims2()?;
        let (out_dim, _) = l2.shape().dims2()?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let p = self.product(x, l1, w, l2)?;
                let b = contiguous(b, l3, "bias")?;
                CpuStorage::F32(bias_act!(&p[..], b, self.relu))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let p = self.product(x, l1, w, l2)?;
                let b = contiguous(b, l3, "bias")?;
                CpuStorage::F64(bias_act!(&p[..], b, self.relu))
            }
            _ => bail!("fused linear: f32 or f64 CPU tensors of one dtype expected"),
        };
        Ok((out, Shape::from((rows, out_dim))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // One pass gives the masked gradient and, in an extra last row, its column sums (candle's
        // `sum(0)` walks the batch with a stride, which is slow for these shapes).
        let (rows, out) = grad.dims2()?;
        let masked = res.apply_op2_no_bwd(&grad.contiguous()?, &MaskAndColumnSums(self.relu))?;
        let g = masked.narrow(0, 0, rows)?;
        let b_grad = masked.narrow(0, rows, 1)?.reshape(out)?;
        let product = |which| Product {
            which,
            mask: self.mask.clone(),
            prepared: false,
        };
        let kept = match self.mask {
            Some(_) => self.stash.take(weight.dims2()?)?,
            None => None,
        };
        let x_grad = match (x.track_op(), kept) {
            (false, _) => None,
            (true, Some(masked)) => {
                let kept_weight = Product {
                    which: Which::GradInput,
                    mask: self.mask.clone(),
                    prepared: true,
                };
                Some(g.apply_op2_no_bwd(&masked, &kept_weight)?)
            }
            (true, None) => Some(g.apply_op2_no_bwd(&weight.detach(), &product(Which::GradInput))?),
        };
        let w_grad = g.apply_op2_no_bwd(&x.detach(), &product(Which::GradWeight))?;
        // Inside `grad_sink::backward` the parameters' gradients skip candle's zero-and-add.
        let w_grad = grad_sink::deposit(weight, w_grad)?;
        let b_grad = grad_sink::deposit(bias, b_grad)?;
        Ok((x_grad, w_grad, b_grad))
    }
}
