//! Row sums of the stable BCE with logits as one candle custom op with its own backward (CPU).
//!
//! `Σ_j max(l, 0) − l·t + log(1 + exp(−|l|))` per row, the formula of
//! [`crate::stable::bce_with_logits`], without its eleven intermediate `(B, N)` tensors;
//! the backward is `(σ(l) − t)·g` for the logits and `−l·g` for the targets.

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use crate::fused::enabled;
use crate::stable::bce_with_logits;

/// `logits`, `targets` `(B, N)` → `Σ_j bce(l_bj, t_bj)`, `(B,)`; fused on the CPU for f32 /
/// f64, the composition of plain ops elsewhere.
pub fn bce_with_logits_sum(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let fusable = enabled("bce")
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

macro_rules! bce_row {
    ($name:ident, $t:ty) => {
        /// `Σ_j bce(l_j, x_j)` of one row, accumulated in f64.
        fn $name(l: &[$t], x: &[$t]) -> $t {
            let mut acc = 0.0f64;
            for (&l, &x) in l.iter().zip(x) {
                let v: $t = l.max(0.0) - l * x + (-l.abs()).exp().ln_1p();
                acc += v as f64;
            }
            acc as $t
        }
    };
}
bce_row!(bce_row_f32, f32);
bce_row!(bce_row_f64, f64);

/// Below this many elements the row sums run on the calling thread.
const PAR_MIN: usize = 1 << 18;

/// `f` over the rows of width `n` of `l` and `x`, split over candle's thread count when large
/// (the NLL estimator's chunks of 10⁴ rows spend most of their non-matmul time here).
fn rows_par<T: Sync, U: Send>(l: &[T], x: &[T], n: usize, f: fn(&[T], &[T]) -> U) -> Vec<U> {
    let rows = l.len() / n.max(1);
    let threads = if l.len() >= PAR_MIN {
        candle_core::utils::get_num_threads().clamp(1, rows.max(1))
    } else {
        1
    };
    let serial = |l: &[T], x: &[T]| -> Vec<U> {
        l.chunks_exact(n)
            .zip(x.chunks_exact(n))
            .map(|(l, x)| f(l, x))
            .collect()
    };
    if threads <= 1 {
        return serial(l, x);
    }
    let per = rows.div_ceil(threads) * n;
    std::thread::scope(|scope| {
        let handles: Vec<_> = l
            .chunks(per)
            .zip(x.chunks(per))
            .map(|(l, x)| scope.spawn(move || serial(l, x)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bce worker panicked"))
            .collect()
    })
}

macro_rules! bce_grad {
    ($t:ty, $wrt_logits:expr, $l:expr, $x:expr, $g:expr, $n:expr) => {{
        let mut out = Vec::<$t>::with_capacity($l.len());
        for ((l, x), &g) in $l.chunks_exact($n).zip($x.chunks_exact($n)).zip($g) {
            if $wrt_logits {
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
    }};
}

impl CustomOp2 for BceSum {
    fn name(&self) -> &'static str {
        "fused-bce-with-logits-sum"
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
            (CpuStorage::F32(l), CpuStorage::F32(x)) => {
                CpuStorage::F32(rows_par(slice(l, l1)?, slice(x, l2)?, n, bce_row_f32))
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
                CpuStorage::F32(bce_grad!(f32, w, l, x, g, n))
            }
            (CpuStorage::F64(l), CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (l, x, g) = (slice(l, l1)?, slice(x, l2)?, slice(g, l3)?);
                CpuStorage::F64(bce_grad!(f64, w, l, x, g, n))
            }
            _ => bail!("{}: f32 or f64 inputs of one dtype expected", self.name()),
        };
        Ok((out, l1.shape().clone()))
    }
}
