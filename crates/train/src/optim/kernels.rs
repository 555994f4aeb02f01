//! In-place CPU kernels of [`super::Optimizer::step`]: each moment and each parameter is
//! updated in one pass over its own storage, with no temporary tensors.
//!
//! They work on contiguous f32 / f64 CPU tensors of equal shape; [`fusable`] says when the
//! optimizer may use them (otherwise it falls back to plain tensor ops, e.g. on a GPU).

use candle_core::{bail, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use flowvae_nn::kernels as simd;
use rayon::prelude::*;

/// Whether `t` can be updated by the kernels here.
pub(super) fn fusable(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64) && t.is_contiguous()
}

/// The contiguous range of `layout` in its storage.
fn range(layout: &Layout, what: &str) -> Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => bail!("{what}: not contiguous"),
    }
}

/// Tensors at least this long are updated in chunks spread over the current rayon pool
/// (flowvae's worker pool during training; see `flowvae_nn::with_worker_pool`).
const PARALLEL_MIN: usize = 1 << 16;
const CHUNK: usize = 1 << 14;

/// `f` over matching chunks of `a` and `b`, in parallel when long. Element-wise kernels give
/// the same numbers however the chunks fall.
fn chunked2<A: Send, B: Sync>(a: &mut [A], b: &[B], f: impl Fn(&mut [A], &[B]) + Sync) {
    if a.len() < PARALLEL_MIN || rayon::current_num_threads() < 2 {
        return f(a, b);
    }
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| f(a, b));
}

/// [`chunked2`] with a second read-only slice.
fn chunked3<A: Send, B: Sync, C: Sync>(
    a: &mut [A],
    b: &[B],
    c: &[C],
    f: impl Fn(&mut [A], &[B], &[C]) + Sync,
) {
    if a.len() < PARALLEL_MIN || rayon::current_num_threads() < 2 {
        return f(a, b, c);
    }
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK).zip(c.par_chunks(CHUNK)))
        .for_each(|(a, (b, c))| f(a, b, c));
}

/// Which moment a [`MomentUpdate`] keeps.
#[derive(Debug, Clone, Copy)]
pub(super) enum Moment {
    /// `m ← β m + (1 − β) c g`.
    Mean,
    /// `v ← β v + (1 − β) (c g)²`.
    Square,
    /// `u ← max(β u, |c g|)` (Adamax).
    Max,
}

/// Updates a moment tensor in place from the gradient `g` scaled by the clip factor `c`.
#[derive(Debug, Clone, Copy)]
pub(super) struct MomentUpdate {
    pub moment: Moment,
    pub beta: f64,
    pub clip: f64,
}

macro_rules! moment_kernel {
    ($t:ty, $self:ident, $m:ident, $g:ident) => {{
        let (beta, rest, clip) = ($self.beta as $t, (1.0 - $self.beta) as $t, $self.clip as $t);
        simd::dispatch(
            #[inline(always)]
            || match $self.moment {
                Moment::Mean => $m
                    .iter_mut()
                    .zip($g)
                    .for_each(|(m, &g)| *m = beta * *m + rest * (clip * g)),
                Moment::Square => $m.iter_mut().zip($g).for_each(|(m, &g)| {
                    let g = clip * g;
                    *m = beta * *m + rest * (g * g)
                }),
                Moment::Max => $m
                    .iter_mut()
                    .zip($g)
                    .for_each(|(m, &g)| *m = (beta * *m).max((clip * g).abs())),
            },
        )
    }};
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "flowvae-adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (r1, r2) = (range(l1, self.name())?, range(l2, self.name())?);
        match (s1, s2) {
            (CpuStorage::F32(m), CpuStorage::F32(g)) => {
                chunked2(&mut m[r1], &g[r2], |m, g| moment_kernel!(f32, self, m, g))
            }
            (CpuStorage::F64(m), CpuStorage::F64(g)) => {
                chunked2(&mut m[r1], &g[r2], |m, g| moment_kernel!(f64, self, m, g))
            }
            _ => bail!("{}: f32 or f64 tensors of one dtype expected", self.name()),
        }
        Ok(())
    }
}

/// `p ← p − step · m / (√(v · second_scale) + eps) − decay · p`, in place.
///
/// Adam: `step = lr / (1 − β₁ᵗ)`, `second_scale = 1 / (1 − β₂ᵗ)`; Adamax: `second_scale` is
/// `None` and the denominator is `u + eps`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ParamUpdate {
    pub step: f64,
    pub second_scale: Option<f64>,
    pub eps: f64,
    /// `lr · weight_decay` (0: none).
    pub decay: f64,
}

macro_rules! param_kernel {
    ($t:ty, $self:ident, $p:ident, $m:ident, $v:ident) => {{
        let (step, eps, keep) = ($self.step as $t, $self.eps as $t, (1.0 - $self.decay) as $t);
        let it = $p.iter_mut().zip($m).zip($v);
        simd::dispatch(
            #[inline(always)]
            || match $self.second_scale {
                Some(scale) => {
                    let scale = scale as $t;
                    for ((p, &m), &v) in it {
                        *p = keep * *p - (m * step) / ((v * scale).sqrt() + eps);
                    }
                }
                None => {
                    for ((p, &m), &u) in it {
                        *p = keep * *p - (m * step) / (u + eps);
                    }
                }
            },
        )
    }};
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "flowvae-adam-param"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let name = self.name();
        let (r1, r2, r3) = (range(l1, name)?, range(l2, name)?, range(l3, name)?);
        match (s1, s2, s3) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                chunked3(&mut p[r1], &m[r2], &v[r3], |p, m, v| {
                    param_kernel!(f32, self, p, m, v)
                })
            }
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                chunked3(&mut p[r1], &m[r2], &v[r3], |p, m, v| {
                    param_kernel!(f64, self, p, m, v)
                })
            }
            _ => bail!("{name}: f32 or f64 tensors of one dtype expected"),
        }
        Ok(())
    }
}

/// `Σ x²` in f32 lanes (vectorizable) per block of 4096, blocks summed in f64.
fn sum_squares_f32(v: &[f32]) -> f64 {
    const BLOCK: usize = 4096;
    let block_sum = |block: &[f32]| {
        simd::dispatch(
            #[inline(always)]
            || sum_squares_block(block),
        )
    };
    // Partial sums per fixed block, added in order: the same number on any thread count.
    let partials: Vec<f64> = if v.len() >= PARALLEL_MIN && rayon::current_num_threads() > 1 {
        v.par_chunks(BLOCK).map(block_sum).collect()
    } else {
        v.chunks(BLOCK).map(block_sum).collect()
    };
    partials.iter().sum()
}

/// `Σ x²` of one block in 16 f32 lanes; `for` loops rather than iterator sums, which may stay
/// out-of-line and so miss the vector instructions (see `simd::dispatch`).
#[inline(always)]
fn sum_squares_block(block: &[f32]) -> f64 {
    let mut lanes = [0f32; 16];
    let chunks = block.chunks_exact(16);
    let mut block_sum = 0f32;
    for x in chunks.remainder() {
        block_sum += x * x;
    }
    for c in chunks {
        for (a, x) in lanes.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    for lane in lanes {
        block_sum += lane;
    }
    block_sum as f64
}

/// `Σ g²` of a contiguous f32 / f64 CPU tensor read straight from its storage, in f64;
/// `None` for any other tensor.
pub(super) fn sum_squares(g: &Tensor) -> Option<f64> {
    if !fusable(g) {
        return None;
    }
    let (storage, layout) = g.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        candle_core::Storage::Cpu(CpuStorage::F32(v)) => Some(sum_squares_f32(&v[start..end])),
        candle_core::Storage::Cpu(CpuStorage::F64(v)) => {
            Some(v[start..end].iter().map(|&x| x * x).sum())
        }
        _ => None,
    }
}
