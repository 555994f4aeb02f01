//! Products of the small matrices of one Björck step (`(D, M)` and `(M, M)`, row-major) with
//! the sums of a 4 × 32 block held in vector registers: faster, for these sizes, than one
//! general gemm call per matrix. Compiled inside the caller's instruction-set dispatch
//! (`#[inline(always)]` throughout); sizes that are not multiples of the block take a plain
//! loop.

use candle_core::WithDType;

/// Columns per register block: 32 f32 are two AVX-512 registers (32 f64 four); four rows at a
/// time give eight independent sums, enough to keep both FMA units busy.
const BLOCK: usize = 32;
/// Rows per register block.
const ROWS: usize = 4;

/// `[Σ_r x(r)[k] · data[row(r)..][..BLOCK] for k < ROWS]` over `r < len`.
#[inline(always)]
fn block_sums<T: WithDType>(
    len: usize,
    x: impl Fn(usize) -> [T; ROWS],
    row: impl Fn(usize) -> usize,
    data: &[T],
) -> [[T; BLOCK]; ROWS] {
    // Four named accumulators, not an array of them: LLVM keeps these in registers.
    let zero = [T::zero(); BLOCK];
    let (mut acc0, mut acc1, mut acc2, mut acc3) = (zero, zero, zero, zero);
    for r in 0..len {
        let [x0, x1, x2, x3] = x(r);
        let start = row(r);
        let values: &[T; BLOCK] = data[start..start + BLOCK].try_into().expect("a full block");
        for l in 0..BLOCK {
            acc0[l] += x0 * values[l];
            acc1[l] += x1 * values[l];
            acc2[l] += x2 * values[l];
            acc3[l] += x3 * values[l];
        }
    }
    [acc0, acc1, acc2, acc3]
}

/// `aᵀ b` `(M, M)` of two `(D, M)` row-major matrices into `out`.
#[inline(always)]
pub fn at_b<T: WithDType>(a: &[T], b: &[T], m: usize, out: &mut [T]) {
    let d = a.len() / m;
    let blocked = if m.is_multiple_of(BLOCK) {
        m - m % ROWS
    } else {
        0
    };
    for i in (0..blocked).step_by(ROWS) {
        for start in (0..m).step_by(BLOCK) {
            let sums = block_sums(
                d,
                |r| std::array::from_fn(|k| a[r * m + i + k]),
                |r| r * m + start,
                b,
            );
            for (k, sum) in sums.iter().enumerate() {
                out[(i + k) * m + start..(i + k) * m + start + BLOCK].copy_from_slice(sum);
            }
        }
    }
    for i in blocked..m {
        for j in 0..m {
            let mut sum = T::zero();
            for r in 0..d {
                sum += a[r * m + i] * b[r * m + j];
            }
            out[i * m + j] = sum;
        }
    }
}

/// `out += alpha · q a`, `q` `(D, M)`, `a` `(M, M)`.
#[inline(always)]
pub fn add_q_times<T: WithDType>(alpha: T, q: &[T], a: &[T], m: usize, out: &mut [T]) {
    let d = q.len() / m;
    let blocked = if m.is_multiple_of(BLOCK) {
        d - d % ROWS
    } else {
        0
    };
    for r in (0..blocked).step_by(ROWS) {
        for start in (0..m).step_by(BLOCK) {
            let sums = block_sums(
                m,
                |i| std::array::from_fn(|k| q[(r + k) * m + i]),
                |i| i * m + start,
                a,
            );
            for (k, sum) in sums.iter().enumerate() {
                let span = (r + k) * m + start..(r + k) * m + start + BLOCK;
                for (o, &v) in out[span].iter_mut().zip(sum) {
                    *o += alpha * v;
                }
            }
        }
    }
    for r in blocked..d {
        for j in 0..m {
            let mut sum = T::zero();
            for i in 0..m {
                sum += q[r * m + i] * a[i * m + j];
            }
            out[r * m + j] += alpha * sum;
        }
    }
}
