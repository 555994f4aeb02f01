//! In-place CPU kernels of [`super::Optimizer::step`]: each moment and each parameter is
//! updated in one pass over its own storage, with no temporary tensors.
//!
//! They work on contiguous f32 / f64 CPU tensors of equal shape; [`fusable`] says when the
//! optimizer may use them (otherwise it falls back to plain tensor ops, e.g. on a GPU).

use candle_core::{bail, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

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
        match $self.moment {
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
        }
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
                let (m, g) = (&mut m[r1], &g[r2]);
                moment_kernel!(f32, self, m, g)
            }
            (CpuStorage::F64(m), CpuStorage::F64(g)) => {
                let (m, g) = (&mut m[r1], &g[r2]);
                moment_kernel!(f64, self, m, g)
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
        match $self.second_scale {
            Some(scale) => {
                let scale = scale as $t;
                it.for_each(|((p, &m), &v)| {
                    *p = keep * *p - (m * step) / ((v * scale).sqrt() + eps);
                })
            }
            None => it.for_each(|((p, &m), &u)| *p = keep * *p - (m * step) / (u + eps)),
        }
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
                let (p, m, v) = (&mut p[r1], &m[r2], &v[r3]);
                param_kernel!(f32, self, p, m, v)
            }
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                let (p, m, v) = (&mut p[r1], &m[r2], &v[r3]);
                param_kernel!(f64, self, p, m, v)
            }
            _ => bail!("{name}: f32 or f64 tensors of one dtype expected"),
        }
        Ok(())
    }
}

/// `Σ x²` in f32 lanes (vectorizable) per block of 4096, blocks summed in f64.
fn sum_squares_f32(v: &[f32]) -> f64 {
    v.chunks(4096)
        .map(|block| {
            let mut lanes = [0f32; 16];
            let chunks = block.chunks_exact(16);
            let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
            for c in chunks {
                lanes.iter_mut().zip(c).for_each(|(a, x)| *a += x * x);
            }
            (lanes.iter().sum::<f32>() + tail) as f64
        })
        .sum()
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
