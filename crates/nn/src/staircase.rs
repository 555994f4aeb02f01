//! MADE's masked products without the multiplications by zero.
//!
//! A MADE mask connects output `o` to input `i` when `deg(i) ≤ deg(o)` (or `<`). MADE numbers
//! its units in runs of increasing degree (inputs `1..D`, hidden degrees cycling through
//! `1..D−1`, one run per output block), so in its natural layout the mask splits into a few
//! row runs × column runs, and inside each pair row `r` uses a prefix of the column run, a
//! prefix that grows along the row run: a staircase. Cut into blocks of [`BLOCK`] rows (for
//! `x (W ⊙ M)ᵀ` and `∂W`) or columns (for `∂x`), each block is a few dense products over only
//! the prefixes it touches: for a MADE layer about half of the full product, which a dense
//! kernel (and PyTorch) computes in full.
//!
//! Everything stays in the weight's own layout: `W ⊙ M` is formed by copying each row's
//! prefixes (no mask to read, no permutation), and the blocks' outputs are contiguous ranges.
//! The plan is read off the mask once, when the layer is built; the blocks run as independent
//! tasks on the worker pool, each writing its own output, so the numbers do not depend on the
//! thread count.

use std::ops::Range;

use rayon::prelude::*;

use candle_core::WithDType;

use crate::fused::for_rows;
use crate::parallel_gemm::{self, matmul_serial, Element, Strided};

/// Rows (columns) per block: small enough that a block wastes little on the staircase's
/// steps, large enough for an efficient product.
const BLOCK: usize = 64;

/// Masks with fewer entries keep the dense masked kernel (the plan would not pay).
const MIN_ENTRIES: usize = 1 << 16;

/// Masks denser than this keep the dense masked kernel.
const MAX_DENSITY: f64 = 0.8;

/// Row and column runs must average at least this many rows (columns): with short runs
/// (many cycles of hidden degrees, as in a MADE over a small latent) the products split into
/// pieces too small to beat one dense product.
const MIN_MEAN_RUN: usize = 2 * BLOCK;

/// A nested 0/1 mask `(rows, cols)` as row runs × column runs of staircases.
#[derive(Debug)]
pub(crate) struct Staircase {
    rows: usize,
    cols: usize,
    row_runs: Vec<Range<usize>>,
    col_runs: Vec<Range<usize>>,
    /// `used[r · col_runs + j]`: row `r` uses the first `used` columns of column run `j`.
    used: Vec<usize>,
    /// Blocks of at most [`BLOCK`] rows, each inside one row run.
    row_blocks: Vec<Range<usize>>,
    /// Blocks of at most [`BLOCK`] columns, each inside one column run, with that run's index.
    col_blocks: Vec<(Range<usize>, usize)>,
}

/// `f(block)` for every block, spread over the worker pool when it has several threads.
fn map_blocks<R: Send>(blocks: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if parallel_gemm::workers() > 1 {
        parallel_gemm::install(|| (0..blocks).into_par_iter().map(&f).collect())
    } else {
        (0..blocks).map(f).collect()
    }
}

/// `[0, n)` cut before every index where `starts_anew(i)` holds.
fn runs(n: usize, starts_anew: impl Fn(usize) -> bool) -> Vec<Range<usize>> {
    let mut cuts: Vec<usize> = (1..n).filter(|&i| starts_anew(i)).collect();
    cuts.insert(0, 0);
    cuts.push(n);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// `range` in consecutive pieces of at most [`BLOCK`].
fn blocks_of(range: &Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    range
        .clone()
        .step_by(BLOCK)
        .map(move |start| start..(start + BLOCK).min(range.end))
}

/// `m` with its rows offset by `rows` and its columns by `cols`.
fn offset<'a, T>(m: &Strided<'a, T>, rows: usize, cols: usize) -> Strided<'a, T> {
    Strided {
        data: &m.data[rows * m.row_stride + cols * m.col_stride..],
        ..*m
    }
}

/// The transpose of `m`.
fn transpose<'a, T>(m: &Strided<'a, T>) -> Strided<'a, T> {
    Strided {
        data: m.data,
        row_stride: m.col_stride,
        col_stride: m.row_stride,
    }
}

/// `acc += part`, elementwise.
fn add_into<T: Element>(acc: &mut [T], part: &[T]) {
    for (a, &p) in acc.iter_mut().zip(part) {
        *a = *a + p;
    }
}

impl Staircase {
    /// The plan for a row-major `(rows, cols)` mask, or `None` when the mask holds values
    /// other than 0 and 1, is not a few runs of staircases, or is too small or too dense for
    /// skipping its zeros to pay.
    pub(crate) fn from_mask(mask: &[f64], rows: usize, cols: usize) -> Option<Self> {
        let entries = rows.checked_mul(cols)?;
        if entries < MIN_ENTRIES || mask.len() != entries {
            return None;
        }
        if mask.iter().any(|&m| m != 0.0 && m != 1.0) {
            return None;
        }
        if mask.iter().filter(|&&m| m == 1.0).count() as f64 > MAX_DENSITY * entries as f64 {
            return None;
        }
        let mut col_count = vec![0usize; cols];
        for row in mask.chunks_exact(cols) {
            for (count, &m) in col_count.iter_mut().zip(row) {
                *count += usize::from(m == 1.0);
            }
        }
        // Along a column run, each column is used by no more rows than the one before it.
        let col_runs = runs(cols, |c| col_count[c] > col_count[c - 1]);
        let mut used = Vec::with_capacity(rows * col_runs.len());
        for row in mask.chunks_exact(cols) {
            for run in &col_runs {
                let part = &row[run.clone()];
                let prefix = part.iter().take_while(|&&m| m == 1.0).count();
                if part[prefix..].contains(&1.0) {
                    return None;
                }
                used.push(prefix);
            }
        }
        let n = col_runs.len();
        // Along a row run, each row uses at least what the row before it uses.
        let row_runs = runs(rows, |r| {
            (0..n).any(|j| used[r * n + j] < used[(r - 1) * n + j])
        });
        if cols < MIN_MEAN_RUN * col_runs.len() || rows < MIN_MEAN_RUN * row_runs.len() {
            return None;
        }
        let row_blocks = row_runs.iter().flat_map(blocks_of).collect();
        let col_blocks = col_runs
            .iter()
            .enumerate()
            .flat_map(|(j, run)| blocks_of(run).map(move |b| (b, j)))
            .collect();
        Some(Self {
            rows,
            cols,
            row_runs,
            col_runs,
            used,
            row_blocks,
            col_blocks,
        })
    }

    /// The mask's shape `(rows, cols)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// How many columns of column run `j` row `r` uses.
    fn used(&self, r: usize, j: usize) -> usize {
        self.used[r * self.col_runs.len() + j]
    }

    /// `W ⊙ M`, row-major `(rows, cols)`, for `W` read through `w`.
    pub(crate) fn masked_weight<T: Element + WithDType>(&self, w: Strided<'_, T>) -> Vec<T> {
        for_rows(self.rows, self.cols, |r, row: &mut [T]| {
            for (j, run) in self.col_runs.iter().enumerate() {
                let cols = run.start..run.start + self.used(r, j);
                if w.col_stride == 1 {
                    let start = r * w.row_stride;
                    row[cols.clone()]
                        .copy_from_slice(&w.data[start + cols.start..start + cols.end]);
                } else {
                    for c in cols {
                        row[c] = w.data[r * w.row_stride + c * w.col_stride];
                    }
                }
            }
        })
    }

    /// Forward: `x (W ⊙ M)ᵀ` `(B, rows)` for `x` `(B, cols)` and [`Self::masked_weight`].
    pub(crate) fn forward<T: Element + WithDType>(
        &self,
        x: Strided<'_, T>,
        batch: usize,
        masked: &[T],
    ) -> Vec<T> {
        let w = Strided::row_major(masked, self.cols);
        // Each block as `W_b xᵀ` `(block rows, B)`, with `xᵀ` copied row-major once: gemm packs
        // both operands with contiguous reads this way (`x` is packed again for every block).
        let x_t_copy = for_rows(self.cols, batch, |c, row: &mut [T]| {
            for (b, v) in row.iter_mut().enumerate() {
                *v = x.data[b * x.row_stride + c * x.col_stride];
            }
        });
        let x_t = Strided::row_major(&x_t_copy, batch);
        let parts = map_blocks(self.row_blocks.len(), |b| {
            let rows = &self.row_blocks[b];
            let mut sum: Option<Vec<T>> = None;
            for (j, run) in self.col_runs.iter().enumerate() {
                let used = self.used(rows.end - 1, j);
                let w_block = offset(&w, rows.start, run.start);
                let part =
                    matmul_serial(rows.len(), used, batch, w_block, offset(&x_t, run.start, 0));
                match &mut sum {
                    None => sum = Some(part),
                    Some(acc) => add_into(acc, &part),
                }
            }
            sum.unwrap_or_default()
        });
        for_rows(batch, self.rows, |b, row: &mut [T]| {
            for (rows, part) in self.row_blocks.iter().zip(&parts) {
                for (v, &p) in row[rows.clone()]
                    .iter_mut()
                    .zip(part.iter().skip(b).step_by(batch))
                {
                    *v = p;
                }
            }
        })
    }

    /// Backward to the input: `g (W ⊙ M)` `(B, cols)` for `g` `(B, rows)` and
    /// [`Self::masked_weight`].
    pub(crate) fn grad_input<T: Element + WithDType>(
        &self,
        g: Strided<'_, T>,
        batch: usize,
        masked: &[T],
    ) -> Vec<T> {
        let w = Strided::row_major(masked, self.cols);
        let parts = map_blocks(self.col_blocks.len(), |b| {
            let (cols, j) = &self.col_blocks[b];
            let mut sum = vec![T::default(); batch * cols.len()];
            for run in &self.row_runs {
                // The rows of this run that use column `cols.start` (and so any of `cols`).
                let skipped = run
                    .clone()
                    .take_while(|&r| self.used(r, *j) + self.col_runs[*j].start <= cols.start)
                    .count();
                let first = run.start + skipped;
                if first == run.end {
                    continue;
                }
                let part = matmul_serial(
                    batch,
                    run.end - first,
                    cols.len(),
                    offset(&g, 0, first),
                    offset(&w, first, cols.start),
                );
                add_into(&mut sum, &part);
            }
            sum
        });
        for_rows(batch, self.cols, |b, row: &mut [T]| {
            for ((cols, _), part) in self.col_blocks.iter().zip(&parts) {
                row[cols.clone()].copy_from_slice(&part[b * cols.len()..(b + 1) * cols.len()]);
            }
        })
    }

    /// Backward to the weight: `(gᵀ x) ⊙ M` `(rows, cols)` for `g` `(B, rows)` and `x`
    /// `(B, cols)`.
    pub(crate) fn grad_weight<T: Element + WithDType>(
        &self,
        g: Strided<'_, T>,
        x: Strided<'_, T>,
        batch: usize,
    ) -> Vec<T> {
        // parts[b][j]: `g_bᵀ x` over the columns of run `j` that block `b`'s last row uses.
        let parts = map_blocks(self.row_blocks.len(), |b| {
            let rows = &self.row_blocks[b];
            let g_t = transpose(&offset(&g, 0, rows.start));
            let run_part = |(j, run): (usize, &Range<usize>)| {
                let used = self.used(rows.end - 1, j);
                matmul_serial(rows.len(), batch, used, g_t, offset(&x, 0, run.start))
            };
            self.col_runs
                .iter()
                .enumerate()
                .map(run_part)
                .collect::<Vec<_>>()
        });
        let block_of = |r: usize| self.row_blocks.partition_point(|rows| rows.end <= r);
        for_rows(self.rows, self.cols, |r, row: &mut [T]| {
            let b = block_of(r);
            let i = r - self.row_blocks[b].start;
            for (j, run) in self.col_runs.iter().enumerate() {
                let (width, used) = (self.used(self.row_blocks[b].end - 1, j), self.used(r, j));
                row[run.start..run.start + used]
                    .copy_from_slice(&parts[b][j][i * width..i * width + used]);
            }
        })
    }
}

#[cfg(test)]
#[path = "staircase_tests.rs"]
mod tests;
