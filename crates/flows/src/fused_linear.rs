//! `y = act(x Wᵀ + b)` (act: identity or ReLU) as one graph node with its own backward (CPU).
//!
//! Unfused, a dense layer is four nodes — `Wᵀ`, matmul, broadcast add, ReLU — and candle's
//! backward allocates, zeroes and adds a gradient buffer for each of their inputs, the `W`-sized
//! ones twice. Here the product `x Wᵀ` runs as a plain (strided, copy-free) matmul outside the
//! graph; bias and ReLU are applied in one pass that also creates the node; the backward is
//! `g' = g ⊙ 1[y > 0]`, `∂x = g' W` (only when `x` needs it), `∂W = g'ᵀ x`, `∂b = Σ_rows g'`.

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor,
};

use crate::fused::enabled;

/// Whether [`linear`] runs fused for `x` `(B, in)` and `weight` `(out, in)`.
pub fn applicable(x: &Tensor, weight: &Tensor) -> bool {
    enabled("linear")
        && x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.dtype() == weight.dtype()
        && x.rank() == 2
}

/// `act(x Wᵀ + b)`: `x` `(B, in)`, `weight` `(out, in)`, `bias` `(out,)` → `(B, out)`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    let product = x.detach().matmul(&weight.detach().t()?)?;
    let (_, out) = product.dims2()?;
    if bias.elem_count() != out {
        bail!(
            "fused linear: bias of {} for {out} outputs",
            bias.elem_count()
        );
    }
    x.apply_op3(weight, bias, BiasAct { product, relu })
}

/// Forward node: reads the precomputed product, adds the bias, applies the activation.
struct BiasAct {
    /// `x Wᵀ`, `(B, out)`, outside the graph.
    product: Tensor,
    relu: bool,
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("fused linear: non-contiguous {what}"),
    }
}

macro_rules! bias_act {
    ($p:expr, $b:expr, $relu:expr) => {{
        let n = $b.len();
        let mut out = Vec::with_capacity($p.len());
        for row in $p.chunks_exact(n) {
            if $relu {
                out.extend(row.iter().zip($b).map(|(&v, &b)| (v + b).max(0.0)));
            } else {
                out.extend(row.iter().zip($b).map(|(&v, &b)| v + b));
            }
        }
        out
    }};
}

impl CustomOp3 for BiasAct {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let product = self.product.contiguous()?;
        let (storage, layout) = product.storage_and_layout();
        let out = match (&*storage, s3) {
            (Storage::Cpu(CpuStorage::F32(p)), CpuStorage::F32(b)) => {
                let (p, b) = (
                    contiguous(p, layout, "product")?,
                    contiguous(b, l3, "bias")?,
                );
                CpuStorage::F32(bias_act!(p, b, self.relu))
            }
            (Storage::Cpu(CpuStorage::F64(p)), CpuStorage::F64(b)) => {
                let (p, b) = (
                    contiguous(p, layout, "product")?,
                    contiguous(b, l3, "bias")?,
                );
                CpuStorage::F64(bias_act!(p, b, self.relu))
            }
            _ => bail!("fused linear: f32 or f64 CPU tensors of one dtype expected"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = if self.relu {
            res.apply_op2_no_bwd(&grad.contiguous()?, &ReluMask)?
        } else {
            grad.clone()
        };
        let x_grad = if x.track_op() {
            Some(g.matmul(&weight.detach())?)
        } else {
            None
        };
        let w_grad = g.t()?.matmul(&x.detach())?;
        let b_grad = g.sum(0)?;
        Ok((x_grad, Some(w_grad), Some(b_grad)))
    }
}

/// `g ⊙ 1[y > 0]` from `y` and `g`, one pass.
struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "fused-linear-relu-mask"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => {
                let (y, g) = (contiguous(y, l1, "output")?, contiguous(g, l2, "gradient")?);
                let v = y.iter().zip(g);
                CpuStorage::F32(v.map(|(&y, &g)| if y > 0.0 { g } else { 0.0 }).collect())
            }
            (CpuStorage::F64(y), CpuStorage::F64(g)) => {
                let (y, g) = (contiguous(y, l1, "output")?, contiguous(g, l2, "gradient")?);
                let v = y.iter().zip(g);
                CpuStorage::F64(v.map(|(&y, &g)| if y > 0.0 { g } else { 0.0 }).collect())
            }
            _ => bail!("fused linear: f32 or f64 tensors of one dtype expected"),
        };
        Ok((out, l1.shape().clone()))
    }
}
