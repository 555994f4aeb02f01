use super::*;

/// A MADE mask `(out, in)`: output `o` sees input `i` when `deg(i) ≤ deg(o)` (`<` if strict).
fn made_mask(out_degrees: &[usize], in_degrees: &[usize], strict: bool) -> Vec<f64> {
    out_degrees
        .iter()
        .flat_map(|&o| {
            in_degrees
                .iter()
                .map(move |&i| f64::from(u8::from(if strict { o > i } else { o >= i })))
        })
        .collect()
}

/// The two masks of a one-hidden-layer MADE over `dim` inputs with `hidden` units (degrees
/// cycling through `1..dim−1`) and two outputs per input: `(hidden, dim)` and `(2 dim, hidden)`.
fn made_masks(dim: usize, hidden: usize) -> [(Vec<f64>, usize, usize); 2] {
    let inputs: Vec<usize> = (1..=dim).collect();
    let units: Vec<usize> = (0..hidden).map(|k| k % (dim - 1) + 1).collect();
    let outputs: Vec<usize> = inputs.iter().chain(&inputs).copied().collect();
    [
        (made_mask(&units, &inputs, false), hidden, dim),
        (made_mask(&outputs, &units, true), 2 * dim, hidden),
    ]
}

fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 - 1001.0) / 500.0)
        .collect()
}

fn naive(
    m: usize,
    k: usize,
    n: usize,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a(i, p) * b(p, j)).sum();
        }
    }
    c
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "{what}: relative error {worst}");
}

#[test]
fn staircase_products_equal_the_dense_masked_products() {
    let batch = 37;
    for (mask, rows, cols) in made_masks(300, 400) {
        let plan = Staircase::from_mask(&mask, rows, cols).expect("a MADE mask is a staircase");
        let w = values(rows * cols, 1);
        let x = values(batch * cols, 2);
        let g = values(batch * rows, 3);
        let wm: Vec<f64> = w.iter().zip(&mask).map(|(w, m)| w * m).collect();
        // The weight is read through a transposed view of its transpose (a strided layout).
        let w_t: Vec<f64> = (0..rows * cols)
            .map(|i| w[(i % rows) * cols + i / rows])
            .collect();
        let w_view = Strided::transposed(&w_t, rows);
        let masked = plan.masked_weight(w_view);
        let x_view = Strided::row_major(&x, cols);
        let g_view = Strided::row_major(&g, rows);

        let want = naive(
            batch,
            cols,
            rows,
            |b, c| x[b * cols + c],
            |c, r| wm[r * cols + c],
        );
        assert_close(&plan.forward(x_view, batch, &masked), &want, "x (W ⊙ M)ᵀ");
        let want = naive(
            batch,
            rows,
            cols,
            |b, r| g[b * rows + r],
            |r, c| wm[r * cols + c],
        );
        assert_close(&plan.grad_input(g_view, batch, &masked), &want, "g (W ⊙ M)");
        let want: Vec<f64> = naive(
            rows,
            batch,
            cols,
            |r, b| g[b * rows + r],
            |b, c| x[b * cols + c],
        )
        .iter()
        .zip(&mask)
        .map(|(v, m)| v * m)
        .collect();
        assert_close(
            &plan.grad_weight(g_view, x_view, batch),
            &want,
            "(gᵀ x) ⊙ M",
        );
    }
}

#[test]
fn masks_that_are_not_staircases_or_would_not_pay_keep_the_dense_kernel() {
    let [(mask, rows, cols), _] = made_masks(300, 400);
    assert!(Staircase::from_mask(&mask, rows, cols).is_some());
    let mut crossed = mask.clone();
    // Row 0 (degree 1) gains input 5, which row 1 (degree 2) lacks: no longer nested.
    crossed[5] = 1.0;
    assert!(Staircase::from_mask(&crossed, rows, cols).is_none());
    let mut scaled = mask.clone();
    scaled[0] = 0.5;
    assert!(Staircase::from_mask(&scaled, rows, cols).is_none());
    assert!(Staircase::from_mask(&vec![1.0; rows * cols], rows, cols).is_none());
    let [(small, rows, cols), _] = made_masks(20, 40);
    assert!(Staircase::from_mask(&small, rows, cols).is_none());
    // A hidden-to-hidden layer over 64 latent dimensions: 320 units, degrees cycling through
    // 1..63, so five runs of 63 and one of 5 on either side: pieces too small to pay.
    let units: Vec<usize> = (0..320).map(|k| k % 63 + 1).collect();
    let short_runs = made_mask(&units, &units, false);
    assert!(Staircase::from_mask(&short_runs, 320, 320).is_none());
}
