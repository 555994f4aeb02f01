//! Splitting `(B, W)` parameters into column blocks with a backward pass that builds the
//! gradient of the whole `(B, W)` once (CPU).
//!
//! candle's `narrow` is a free view forwards, but backwards each block becomes a zero-padded
//! `(B, W)` gradient (two `zeros`, a `cat`) added into the running total: O(blocks · B · W).
//! The amortized Sylvester stack (4 layers of 5 blocks, each layer a slice of a `(B, 6880)`
//! head) spent more time there than in all its matrix products.
//!
//! Here every block is a [`Block`] op of `(params, anchor)`, where `anchor = Anchor(params)`
//! is a `(1,)` tensor whose only job is to be processed after every block and before `params`
//! in candle's reverse topological order. A block's backward writes its columns into a buffer
//! shared with the anchor and hands the anchor a zero; the anchor's backward hands `params`
//! the filled buffer, one `(B, W)` tensor in all. Blocks that do not reach the loss are never
//! visited and leave zeros, as their gradient is.
//!
//! Forward-only tensors (no gradient tracked), other devices and dtypes, and
//! `FLOWVAE_UNFUSED=split` take the plain `narrow` path; `tests/fused_ops.rs` compares the two.

use std::sync::{Arc, Mutex};

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType,
};

use crate::fused::enabled;

/// The column blocks of `params` `(B, W)` with the given widths (summing to at most `W`),
/// each `(B, width)`, left to right.
pub fn split_columns(params: &Tensor, widths: &[usize]) -> Result<Vec<Tensor>> {
    let fused = enabled(crate::runtime::FusedOp::Split)
        && params.track_op()
        && params.device().is_cpu()
        && matches!(params.dtype(), DType::F32 | DType::F64)
        && params.rank() == 2
        && widths.len() > 1;
    if !fused {
        let mut offset = 0;
        return widths
            .iter()
            .map(|&w| {
                let part = params.narrow(1, offset, w);
                offset += w;
                part
            })
            .collect();
    }
    let (rows, width) = params.dims2()?;
    if widths.iter().sum::<usize>() > width {
        bail!("split_columns: widths {widths:?} exceed the {width} columns");
    }
    let params = params.contiguous()?;
    let buffer = Arc::new(Mutex::new(None));
    let anchor = params.apply_op1(Anchor {
        rows,
        width,
        buffer: buffer.clone(),
    })?;
    let mut start = 0;
    let mut parts = Vec::with_capacity(widths.len());
    for &len in widths {
        parts.push(params.apply_op2(
            &anchor,
            Block {
                start,
                len,
                width,
                buffer: buffer.clone(),
            },
        )?);
        start += len;
    }
    Ok(parts)
}

/// The gradient of the whole parameter tensor, filled block by block.
#[derive(Debug)]
enum GradBuffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

type Shared = Arc<Mutex<Option<GradBuffer>>>;

fn lock(buffer: &Shared) -> Result<std::sync::MutexGuard<'_, Option<GradBuffer>>> {
    buffer
        .lock()
        .map_err(|_| candle_core::Error::Msg("split_columns: poisoned gradient buffer".into()))
}

/// `params (B, W) → (1,)` zero; backwards, the assembled `(B, W)` gradient.
#[derive(Debug)]
struct Anchor {
    rows: usize,
    width: usize,
    buffer: Shared,
}

impl CustomOp1 for Anchor {
    fn name(&self) -> &'static str {
        "split-columns-anchor"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, _layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(vec![0.0]),
            CpuStorage::F64(_) => CpuStorage::F64(vec![0.0]),
            _ => bail!("{}: f32 or f64 expected", self.name()),
        };
        Ok((out, Shape::from(1)))
    }

    fn bwd(&self, params: &Tensor, _res: &Tensor, _grad: &Tensor) -> Result<Option<Tensor>> {
        let shape = (self.rows, self.width);
        let filled = lock(&self.buffer)?.take();
        Ok(Some(match filled {
            Some(GradBuffer::F32(g)) => Tensor::from_vec(g, shape, params.device())?,
            Some(GradBuffer::F64(g)) => Tensor::from_vec(g, shape, params.device())?,
            None => Tensor::zeros(shape, params.dtype(), params.device())?,
        }))
    }
}

/// `(params (B, W), anchor) → params[:, start .. start + len]`.
#[derive(Debug)]
struct Block {
    start: usize,
    len: usize,
    width: usize,
    buffer: Shared,
}

fn copy_block<T: WithDType>(src: &[T], layout: &Layout, block: &Block) -> Result<Vec<T>> {
    let Some((from, to)) = layout.contiguous_offsets() else {
        bail!("split_columns: parameters must be contiguous");
    };
    let src = &src[from..to];
    let mut out = Vec::with_capacity(src.len() / block.width * block.len);
    for row in src.chunks_exact(block.width) {
        out.extend_from_slice(&row[block.start..block.start + block.len]);
    }
    Ok(out)
}

fn scatter_block<T: WithDType>(total: &mut [T], grad: &[T], block: &Block) {
    for (row, g) in total
        .chunks_exact_mut(block.width)
        .zip(grad.chunks_exact(block.len.max(1)))
    {
        row[block.start..block.start + block.len].copy_from_slice(g);
    }
}

impl CustomOp2 for Block {
    fn name(&self) -> &'static str {
        "split-columns-block"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, _) = l1.shape().dims2()?;
        let out = match s1 {
            CpuStorage::F32(p) => CpuStorage::F32(copy_block(p, l1, self)?),
            CpuStorage::F64(p) => CpuStorage::F64(copy_block(p, l1, self)?),
            _ => bail!("{}: f32 or f64 expected", self.name()),
        };
        Ok((out, Shape::from((rows, self.len))))
    }

    fn bwd(
        &self,
        params: &Tensor,
        anchor: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if self.len > 0 {
            let rows = params.dim(0)?;
            let size = rows * self.width;
            let grad = grad.flatten_all()?;
            let mut guard = lock(&self.buffer)?;
            match params.dtype() {
                DType::F32 => {
                    let total = guard.get_or_insert_with(|| GradBuffer::F32(vec![0.0; size]));
                    let GradBuffer::F32(total) = total else {
                        bail!("{}: mixed dtypes", self.name())
                    };
                    scatter_block(total, &grad.to_vec1::<f32>()?, self);
                }
                _ => {
                    let total = guard.get_or_insert_with(|| GradBuffer::F64(vec![0.0; size]));
                    let GradBuffer::F64(total) = total else {
                        bail!("{}: mixed dtypes", self.name())
                    };
                    scatter_block(total, &grad.to_vec1::<f64>()?, self);
                }
            }
        }
        Ok((None, Some(anchor.zeros_like()?)))
    }
}
