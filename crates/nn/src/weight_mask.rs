//! The fixed 0/1 weight masks of MADE layers inside the fused dense layer: `W ⊙ M` and
//! `∂W ⊙ M`, spread over the current rayon pool (flowvae's worker pool in training), and the
//! masked weight a forward pass keeps for its backward.

use std::sync::Mutex;

use candle_core::{bail, CpuStorage, Device, Layout, Result, Storage, Tensor, WithDType};
use rayon::prelude::*;

use crate::parallel_gemm::Element;

/// Elements per task of the parallel loops; smaller arrays stay on the calling thread.
const CHUNK: usize = 1 << 16;

/// `out[i] = a[i] · b[i]` over equal-length slices, in parallel for large ones.
fn multiply_into<T: Element>(out: &mut [T], a: &[T], b: &[T]) {
    let serial = |out: &mut [T], a: &[T], b: &[T]| {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a * b;
        }
    };
    if out.len() <= CHUNK || rayon::current_num_threads() < 2 {
        return serial(out, a, b);
    }
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|((out, a), b)| serial(out, a, b));
}

/// `W ⊙ M` as a row-major vector, for a weight `w` in any layout and a contiguous mask.
pub(crate) fn masked_weight<T: Element>(w: &[T], lw: &Layout, mask: &[T]) -> Result<Vec<T>> {
    let (rows, cols) = lw.shape().dims2()?;
    let mut out = vec![T::default(); rows * cols];
    if mask.len() != out.len() {
        bail!(
            "fused linear: mask of {} for a ({rows}, {cols}) weight",
            mask.len()
        );
    }
    match lw.contiguous_offsets() {
        Some((start, end)) => multiply_into(&mut out, &w[start..end], mask),
        None => {
            let (row_stride, col_stride) = (lw.stride()[0], lw.stride()[1]);
            let w = &w[lw.start_offset()..];
            for (r, (out, mask)) in out
                .chunks_exact_mut(cols)
                .zip(mask.chunks_exact(cols))
                .enumerate()
            {
                for (c, (o, &m)) in out.iter_mut().zip(mask).enumerate() {
                    *o = w[r * row_stride + c * col_stride] * m;
                }
            }
        }
    }
    Ok(out)
}

/// `g ← g ⊙ M` in place.
pub(crate) fn mask_in_place<T: Element>(g: &mut [T], mask: &[T]) {
    let serial = |g: &mut [T], m: &[T]| {
        for (g, &m) in g.iter_mut().zip(m) {
            *g = *g * m;
        }
    };
    if g.len() <= CHUNK || rayon::current_num_threads() < 2 {
        return serial(g, mask);
    }
    g.par_chunks_mut(CHUNK)
        .zip(mask.par_chunks(CHUNK))
        .for_each(|(g, m)| serial(g, m));
}

/// The elements of a contiguous CPU `mask` of dtype `T`, handed to `f`.
pub(crate) fn with_mask<T: WithDType, R>(
    mask: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = mask.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(cpu), Some((0, end))) => f(&cpu.as_slice::<T>()?[..end]),
        _ => bail!("fused linear: the mask must be a contiguous CPU tensor"),
    }
}

/// The masked weight `W ⊙ M` one forward pass formed, kept for its backward's `∂x = g (W ⊙ M)`
/// (taken once; a second backward over the same graph forms it again).
#[derive(Default)]
pub(crate) struct Stash(Mutex<Option<CpuStorage>>);

impl Stash {
    pub(crate) fn keep(&self, weight: CpuStorage) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(weight);
        }
    }

    /// The kept weight as a `(out, in)` tensor, if there is one.
    pub(crate) fn take(&self, shape: (usize, usize)) -> Result<Option<Tensor>> {
        let kept = self.0.lock().ok().and_then(|mut slot| slot.take());
        Ok(match kept {
            Some(CpuStorage::F32(v)) => Some(Tensor::from_vec(v, shape, &Device::Cpu)?),
            Some(CpuStorage::F64(v)) => Some(Tensor::from_vec(v, shape, &Device::Cpu)?),
            _ => None,
        })
    }
}
