//! Row sums of the stable BCE with logits as one candle custom op with its own backward (CPU).
//!
//! `Σ_j max(l, 0) − l·t + log(1 + exp(−|l|))` per row, the formula of
//! [`crate::stable::bce_with_logits`], without its eleven intermediate `(B, N)` tensors;
//! the backward is `(σ(l) − t)·g` for the logits and `−l·g` for the targets. In f32 the
//! loops use [`crate::fast_math`] and run vectorized ([`crate::simd`]); f64 keeps libm.

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use crate::fast_math;
use crate::fused::enabled;
use crate::simd;
use crate::stable::bce_with_logits;

/// `logits`, `targets` `(B, N)` → `Σ_j bce(l_bj, t_bj)`, `(B,)`; fused on the CPU for f32 /
/// f64, the composition of plain ops elsewhere.
pub fn bce_with_logits_sum(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let fusable = enabled(crate::runtime::FusedOp::Bce)
        && logits.device().is_cpu()
        && matches!(logits.dtype(), DType::F32 | DType::F64)
        && logits.dtype() == targets.dtype()
        && logits.shape() == targets.shape()
        && logits.rank() == 2;
    if !fusable {
        return bce_with_logits(logits, targets)?.sum(1);
    }
    logits
        .contiguous()?
        .apply_op2(&targets.contiguous()?, BceSum)
}

#[derive(Debug, Clone, Copy)]
struct BceSum;

/// `d(Σ bce)/dl` or `d(Σ bce)/dt`, scaled per row by `g`.
#[derive(Debug, Clone, Copy)]
struct BceGrad {
    wrt_logits: bool,
}

fn slice<'a, T: WithDType>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => bail!("fused bce: non-contiguous input"),
    }
}

/// `Σ_j bce(l_j, x_j)` of one row: 16 f32 lanes (vectorized), the lanes summed in f64.
#[inline(always)]
fn bce_row_f32(l: &[f32], x: &[f32]) -> f32 {
    // Plain `for` loops: iterator adaptors such as `sum` may stay out-of-line and so miss the
    // vector instruction set this runs under (see `crate::simd`).
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let (l_chunks, x_chunks) = (l.chunks_exact(LANES), x.chunks_exact(LANES));
    let mut total = 0f64;
    for (&l, &x) in l_chunks.remainder().iter().zip(x_chunks.remainder()) {
        total += fast_math::bce_with_logits(l, x) as f64;
    }
    for (l, x) in l_chunks.zip(x_chunks) {
        for ((acc, &l), &x) in lanes.iter_mut().zip(l).zip(x) {
            *acc += fast_math::bce_with_logits(l, x);
        }
    }
    for v in lanes {
        total += v as f64;
    }
    total as f32
}

/// `Σ_j bce(l_j, x_j)` of one row, accumulated in f64 (the reference-precision path).
fn bce_row_f64(l: &[f64], x: &[f64]) -> f64 {
    l.iter()
        .zip(x)
        .map(|(&l, &x)| l.max(0.0) - l * x + (-l.abs()).exp().ln_1p())
        .sum()
}

/// Below this many elements the row sums run on the calling thread.
const PAR_MIN: usize = 1 << 18;

/// Rows per parallel task when the input is large.
const ROWS_PER_TASK: usize = 256;

/// `f` over the rows of width `n` of `l` and `x`; large inputs (the NLL estimator's chunks of
/// 10⁴ rows) are spread over the current rayon pool — flowvae's worker pool, as for the dense
/// layers' products — since candle's own thread count is 1 in the binary.
fn rows_par<T: Sync, U: Send, F>(l: &[T], x: &[T], n: usize, f: F) -> Vec<U>
where
    // A generic (not a fn pointer) so that the row kernel inlines into the vectorized loop.
    F: Fn(&[T], &[T]) -> U + Sync + Copy,
{
    use rayon::prelude::*;
    let serial = |l: &[T], x: &[T]| -> Vec<U> {
        simd::dispatch(
            #[inline(always)]
            || {
                let mut out = Vec::with_capacity(l.len() / n.max(1));
                for (l, x) in l.chunks_exact(n).zip(x.chunks_exact(n)) {
                    out.push(f(l, x));
                }
                out
            },
        )
    };
    if l.len() < PAR_MIN || rayon::current_num_threads() < 2 || n == 0 {
        return serial(l, x);
    }
    let per = ROWS_PER_TASK * n;
    let parts: Vec<Vec<U>> = l
        .par_chunks(per)
        .zip(x.par_chunks(per))
        .map(|(l, x)| serial(l, x))
        .collect();
    parts.into_iter().flatten().collect()
}

/// `(σ(l) − t)·g` (or `−l·g` for the targets) per element, `g` one value per row of width `n`.
fn bce_grad_f32(wrt_logits: bool, l: &[f32], x: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; l.len()];
    simd::dispatch(
        #[inline(always)]
        || {
            let rows = out.chunks_exact_mut(n).zip(l.chunks_exact(n));
            for ((out, l), (x, &g)) in rows.zip(x.chunks_exact(n).zip(g)) {
                if wrt_logits {
                    for ((o, &l), &x) in out.iter_mut().zip(l).zip(x) {
                        *o = (fast_math::sigmoid(l) - x) * g;
                    }
                } else {
                    for (o, &l) in out.iter_mut().zip(l) {
                        *o = -l * g;
                    }
                }
            }
        },
    );
    out
}

/// The f64 twin of [`bce_grad_f32`] with libm's `exp`.
fn bce_grad_f64(wrt_logits: bool, l: &[f64], x: &[f64], g: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(l.len());
    for ((l, x), &g) in l.chunks_exact(n).zip(x.chunks_exact(n)).zip(g) {
        if wrt_logits {
            out.extend(l.iter().zip(x).map(|(&l, &x)| {
                let s = if l >= 0.0 {
                    1.0 / (1.0 + (-l).exp())
                } else {
                    let e = l.exp();
                    e / (1.0 + e)
                };
                (s - x) * g
            }));
        } else {
            out.extend(l.iter().map(|&l| -l * g));
        }
    }
    out
}

impl CustomOp2 for BceSum {
    fn name(&self) -> &'static str {
        "fused-bce-with-logits-sum"
    }

    #[allow(clippy::redundant_closure)] // the closure inlines; the fn item did not
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, n) = l1.shape().dims2()?;
        let out = match (s1, s2) {
            (CpuStorage::F32(l), CpuStorage::F32(x)) => {
                let (l, x) = (slice(l, l1)?, slice(x, l2)?);
                CpuStorage::F32(rows_par(
                    l,
                    x,
                    n,
                    #[inline(always)]
                    |l, x| bce_row_f32(l, x),
                ))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x)) => {
                CpuStorage::F64(rows_par(slice(l, l1)?, slice(x, l2)?, n, bce_row_f64))
            }
            _ => bail!("{}: f32 or f64 inputs of one dtype expected", self.name()),
        };
        Ok((out, Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let of = |wrt_logits| -> Result<Tensor> {
            logits.apply_op3_no_bwd(targets, &grad, &BceGrad { wrt_logits })
        };
        let grad_logits = of(true)?;
        let grad_targets = if targets.track_op() {
            Some(of(false)?)
        } else {
            None
        };
        Ok((Some(grad_logits), grad_targets))
    }
}

impl CustomOp3 for BceGrad {
    fn name(&self) -> &'static str {
        "fused-bce-with-logits-sum-grad"
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
        let (_, n) = l1.shape().dims2()?;
        let w = self.wrt_logits;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(l), CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (l, x, g) = (slice(l, l1)?, slice(x, l2)?, slice(g, l3)?);
                CpuStorage::F32(bce_grad_f32(w, l, x, g, n))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (l, x, g) = (slice(l, l1)?, slice(x, l2)?, slice(g, l3)?);
                CpuStorage::F64(bce_grad_f64(w, l, x, g, n))
            }
            _ => bail!("{}: f32 or f64 inputs of one dtype expected", self.name()),
        };
        Ok((out, l1.shape().clone()))
    }
}
