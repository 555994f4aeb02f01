//! Switches for the fused CPU kernels (planar stack, Sylvester core, Björck iteration, dense
//! layer, BCE with logits, in-place Adam, column split of amortized parameters,
//! rational-quadratic spline), and the row helpers the per-row kernels share.
//!
//! All are on by default; [`crate::runtime::Runtime::unfused`] turns some off for A/B
//! measurements and debugging.

use candle_core::{bail, CpuStorage, Layout, Result, WithDType};

use crate::runtime::{FusedOp, Runtime};
use crate::simd;

/// Whether the fused kernel `op` may be used (the installed [`Runtime`] decides).
pub fn enabled(op: FusedOp) -> bool {
    Runtime::current().fused(op)
}

/// The contiguous part of a storage slice that `l` describes; an error names the op otherwise.
pub fn slice<'a, T: WithDType>(s: &'a [T], l: &Layout, name: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => bail!("{name}: non-contiguous input"),
    }
}

/// A copy in f64: the kernels compute in f64 whatever the dtype.
pub fn to_f64<T: WithDType>(s: &[T]) -> Vec<f64> {
    s.iter().map(|v| v.to_f64()).collect()
}

/// Rows per parallel task: each row is a whole stack of layers, so a few dozen rows make a task.
const ROWS_PER_TASK: usize = 16;

/// `kernel(row, out_row)` for every row, each output row `width` wide, rows spread over the
/// current rayon pool (flowvae's worker pool in training); rows are independent, so the
/// numbers do not depend on how they are spread.
pub fn for_rows<T: WithDType>(
    rows: usize,
    width: usize,
    kernel: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut out = vec![T::zero(); rows * width];
    if width == 0 {
        return out;
    }
    let task = |(i, block): (usize, &mut [T])| {
        simd::dispatch(
            #[inline(always)]
            || {
                for (j, row) in block.chunks_exact_mut(width).enumerate() {
                    kernel(i * ROWS_PER_TASK + j, row);
                }
            },
        )
    };
    let blocks = out.par_chunks_mut(ROWS_PER_TASK * width).enumerate();
    if rows > ROWS_PER_TASK && rayon::current_num_threads() > 1 {
        blocks.for_each(task);
    } else {
        out.chunks_mut(ROWS_PER_TASK * width)
            .enumerate()
            .for_each(task);
    }
    out
}

/// A per-row kernel generic over the float type, so one [`run_f32_or_f64`] call serves f32
/// and f64 storages.
pub trait Kernel {
    /// The output from the contiguous inputs, all of one dtype.
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T>;
}

/// Runs `kernel` on the contiguous data of `inputs` (storage, layout), which must be all f32
/// or all f64; an error names the op `name` otherwise.
pub fn run_f32_or_f64(
    name: &str,
    inputs: &[(&CpuStorage, &Layout)],
    kernel: &impl Kernel,
) -> Result<CpuStorage> {
    let f32s: Option<Vec<&[f32]>> = inputs
        .iter()
        .map(|(s, l)| match s {
            CpuStorage::F32(v) => Some(slice(v, l, name)),
            _ => None,
        })
        .collect::<Option<Result<_>>>()
        .transpose()?;
    if let Some(f32s) = f32s {
        return Ok(CpuStorage::F32(kernel.run(&f32s)));
    }
    let f64s: Option<Vec<&[f64]>> = inputs
        .iter()
        .map(|(s, l)| match s {
            CpuStorage::F64(v) => Some(slice(v, l, name)),
            _ => None,
        })
        .collect::<Option<Result<_>>>()
        .transpose()?;
    match f64s {
        Some(f64s) => Ok(CpuStorage::F64(kernel.run(&f64s))),
        None => bail!("{name}: f32 or f64 inputs of one dtype expected"),
    }
}
