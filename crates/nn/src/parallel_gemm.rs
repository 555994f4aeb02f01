//! Matrix products of the fused dense layer, through `gemm` on flowvae's own worker threads.
//!
//! candle's thread count covers every op: its element-wise ops on small tensors lose more to
//! synchronisation than they gain, while the large matmuls of an MLP scale well with threads
//! (measurements in `results/bench/README.md`). The binary therefore runs candle's ops on one
//! thread and only these products use [`workers`] threads.

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use gemm::Parallelism;

/// Worker threads for large products: the installed runtime's
/// ([`crate::runtime::Runtime::workers`]), fixed at the first call.
pub fn workers() -> usize {
    static WORKERS: OnceLock<usize> = OnceLock::new();
    *WORKERS.get_or_init(|| crate::runtime::Runtime::current().workers())
}

/// The pool the products run on, built once; `None` with a single worker.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = workers();
        (n > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("flowvae-gemm-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
    })
    .as_ref()
}

/// Runs `f` on one of the pool's threads (or right here with a single worker). Run a whole
/// training loop this way: a product started from inside the pool splits its work with the
/// thread that asked, instead of putting it to sleep and waking two others for every matmul.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Below this many multiply-adds a product runs on the calling thread alone.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// A matrix read from a slice with row and column strides (in elements, non-negative).
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Elements from one row to the next.
    pub row_stride: usize,
    /// Elements from one column to the next.
    pub col_stride: usize,
}

impl<'a, T> Strided<'a, T> {
    /// A row-major contiguous `(rows, cols)` matrix.
    pub fn row_major(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major contiguous `(rows, cols)` matrix, read as `(cols, rows)`.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Whether a `(rows, cols)` matrix with these strides lies inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = (rows - 1)
            .checked_mul(self.row_stride)
            .zip((cols - 1).checked_mul(self.col_stride))
            .and_then(|(a, b)| a.checked_add(b));
        last.is_some_and(|last| last < self.data.len())
    }
}

/// `A · B` as a new row-major `(m, n)` vector, for `A` `(m, k)` and `B` `(k, n)`. Panics if a
/// matrix does not fit its slice (a bug in the caller, never a data error).
pub fn matmul<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: Strided<'_, T>,
    b: Strided<'_, T>,
) -> Vec<T> {
    matmul_with(m, k, n, a, b, true)
}

/// [`matmul`] on the calling thread alone, for products that are already one of several
/// tasks spread over the pool (the blocks of a masked product).
pub(crate) fn matmul_serial<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: Strided<'_, T>,
    b: Strided<'_, T>,
) -> Vec<T> {
    matmul_with(m, k, n, a, b, false)
}

fn matmul_with<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    may_split: bool,
) -> Vec<T> {
    assert!(
        a.fits(m, k) && b.fits(k, n),
        "matmul: operand out of bounds"
    );
    if m == 0 || n == 0 || k == 0 {
        return vec![T::default(); m * n];
    }
    // Left uninitialised: gemm writes every element, so zeroing first would be wasted work.
    let mut dst: Vec<T> = Vec::with_capacity(m * n);
    let large = may_split && m.saturating_mul(k).saturating_mul(n) >= PARALLEL_MIN_MACS;
    let run = |dst: &mut [MaybeUninit<T>], parallelism: Parallelism| {
        let dst_ptr = dst.as_mut_ptr().cast::<T>();
        let to_isize = |v: usize| v as isize;
        #[allow(unsafe_code)]
        // SAFETY: `fits` checked above that every element gemm reads through these pointers and
        // strides lies inside `a.data` and `b.data`; `dst` is m·n elements of spare capacity,
        // written row-major (column stride 1, row stride n). With `read_dst` false gemm only
        // writes `dst`, and nothing else touches it while gemm runs.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst_ptr,
                1,
                to_isize(n),
                false,
                a.data.as_ptr(),
                to_isize(a.col_stride),
                to_isize(a.row_stride),
                b.data.as_ptr(),
                to_isize(b.col_stride),
                to_isize(b.row_stride),
                T::default(),
                T::ONE,
                false,
                false,
                false,
                parallelism,
            )
        }
    };
    let spare = &mut dst.spare_capacity_mut()[..m * n];
    match pool().filter(|_| large) {
        Some(pool) => pool.install(|| run(spare, Parallelism::Rayon(pool.current_num_threads()))),
        None => run(spare, Parallelism::None),
    }
    #[allow(unsafe_code)]
    // SAFETY: gemm has written all m·n elements (m, n, k > 0, `read_dst` false).
    unsafe {
        dst.set_len(m * n)
    };
    dst
}

/// The element types [`matmul`] takes (those gemm has kernels for that we use).
pub trait Element:
    Copy + Default + Send + Sync + 'static + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self>
{
    /// The multiplicative identity.
    const ONE: Self;
}

impl Element for f32 {
    const ONE: Self = 1.0;
}

impl Element for f64 {
    const ONE: Self = 1.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_the_naive_loop_for_plain_and_transposed_operands() {
        // Large enough (k·m·n ≥ 2²⁰) for the parallel path, and a small one for the serial path.
        for (m, k, n) in [(3, 5, 4), (64, 160, 128)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
            let want = naive(m, k, n, &a, &b);
            let got = matmul(
                m,
                k,
                n,
                Strided::row_major(&a, k),
                Strided::row_major(&b, n),
            );
            assert_eq!(got, want);
            // Aᵀ stored as (k, m) row-major, read transposed, gives the same product.
            let a_t: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let got = matmul(
                m,
                k,
                n,
                Strided::transposed(&a_t, m),
                Strided::row_major(&b, n),
            );
            assert_eq!(got, want);
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn an_operand_too_short_for_its_shape_is_refused() {
        let a = vec![1.0f32; 5];
        matmul(
            2,
            3,
            1,
            Strided::row_major(&a, 3),
            Strided::row_major(&a, 1),
        );
    }
}
