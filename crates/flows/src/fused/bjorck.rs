//! The Björck orthogonalisation of the orthogonal Sylvester flow as one candle custom op with
//! its own backward (CPU): each `D × M` matrix is iterated on its own, in cache, with its own
//! stopping step.
//!
//! Per matrix `X` (the raw block): if `max|XᵀX − I|` is below the tolerance (1e-6 for f32,
//! 1e-13 for f64) `X` is returned as it is; otherwise `Q₀ = X / s`, `s = √(max row sum of
//! |XᵀX|)`, and `Q ← 1.5 Q − ½ Q (QᵀQ)` until `max|QᵀQ − I|` is below the tolerance (checked
//! every other step) or 100 steps. This is the map of the batched candle form
//! (`sylvester_q::orthogonalize_batched`, the path elsewhere and with `FLOWVAE_UNFUSED=bjorck`),
//! which stops all matrices at the step the worst one needs.
//!
//! Backwards, the iterates are recomputed per matrix and the gradient is taken back through
//! each step, `∂L/∂Q = 1.5 G − ½ (G A + Q (GᵀQ + QᵀG))` with `A = QᵀQ` and `G = ∂L/∂Q_next`,
//! then through the scaling by `s`. Unrolled, as autograd differentiates the iteration, not
//! the implicit derivative of its limit. Arithmetic is in the tensor's dtype, with register-
//! blocked products (the compiler keeps a 4 × 32 block of sums in vector registers).

use candle_core::WithDType;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use flowvae_nn::kernels::{add_q_times, at_b};
use flowvae_nn::kernels::{enabled, for_rows, run_f32_or_f64, to_f64, Kernel};

/// Whether the fused op may run for `raw` (CPU, f32 or f64).
pub fn applicable(raw: &Tensor) -> bool {
    enabled(flowvae_nn::FusedOp::Bjorck)
        && raw.device().is_cpu()
        && matches!(raw.dtype(), DType::F32 | DType::F64)
}

/// `raw` `(rows, D, M)` → `(rows, D, M)` with orthonormal columns.
pub fn orthogonalize_fused(raw: &Tensor) -> Result<Tensor> {
    let (_, d, m) = raw.dims3()?;
    if m > d {
        bail!("fused Björck: M = {m} columns exceed D = {d}");
    }
    raw.contiguous()?.apply_op1(Bjorck {
        d,
        m,
        max_steps: MAX_STEPS,
    })
}

const MAX_STEPS: usize = 100;

/// Forward op on `(rows, D, M)`.
#[derive(Debug, Clone, Copy)]
struct Bjorck {
    d: usize,
    m: usize,
    /// 100; fewer in a test, to reach the scale's gradient, which vanishes at convergence.
    max_steps: usize,
}

/// Backward op on the raw matrices and the output's gradient.
#[derive(Debug, Clone, Copy)]
struct BjorckGrad {
    d: usize,
    m: usize,
    max_steps: usize,
}

/// `max |gram − I|`.
#[inline(always)]
fn defect<T: WithDType>(gram: &[T], m: usize) -> f64 {
    let mut worst = 0.0f64;
    for (i, row) in gram.chunks_exact(m).enumerate() {
        for (j, g) in row.iter().enumerate() {
            let v = (g.to_f64() - if i == j { 1.0 } else { 0.0 }).abs();
            worst = if v > worst { v } else { worst };
        }
    }
    worst
}

/// The forward iterates of one matrix: `Q₀ … Q_T` (each `D·M`, `Q_T` the result), the scale
/// `s` and the row `i*` of the largest row sum (for the scale's gradient); `None` for a matrix
/// already orthonormal within the dtype's tolerance.
struct Iterates<T> {
    qs: Vec<Vec<T>>,
    /// `Q_tᵀQ_t` for `t = 1 … T−1`, as the forward step used it (kept only for the backward,
    /// which would otherwise compute each again). `Q₀`'s is not kept: the forward scaled the
    /// raw gram instead, equal only up to rounding, and the backward computes it from `Q₀`.
    grams: Vec<Vec<T>>,
    scale: f64,
    argmax_row: usize,
}

#[inline(always)]
fn iterate<T: WithDType>(raw: &[T], m: usize, max_steps: usize, keep: bool) -> Option<Iterates<T>> {
    let tol = tolerance::<T>();
    let mut gram = vec![T::zero(); m * m];
    at_b(raw, raw, m, &mut gram);
    if defect(&gram, m) < tol {
        return None;
    }
    let (argmax_row, bound) = gram
        .chunks_exact(m)
        .map(|row| row.iter().map(|g| g.to_f64().abs()).sum::<f64>())
        .enumerate()
        .fold(
            (0, f64::MIN),
            |best, (i, s)| if s > best.1 { (i, s) } else { best },
        );
    let scale = bound.sqrt();
    let (inv_scale, inv_bound) = (T::from_f64(1.0 / scale), T::from_f64(1.0 / bound));
    let mut q: Vec<T> = raw.iter().map(|&x| x * inv_scale).collect();
    gram.iter_mut().for_each(|g| *g *= inv_bound);
    let (three_halves, minus_half) = (T::from_f64(1.5), T::from_f64(-0.5));
    let (mut qs, mut grams) = (Vec::new(), Vec::new());
    for step in 0..max_steps {
        if step % 2 == 0 && defect(&gram, m) < tol {
            break;
        }
        let mut next: Vec<T> = q.iter().map(|&x| three_halves * x).collect();
        add_q_times(minus_half, &q, &gram, m, &mut next);
        if keep {
            if step > 0 {
                grams.push(gram.clone());
            }
            qs.push(std::mem::replace(&mut q, next));
        } else {
            q = next;
        }
        at_b(&q, &q, m, &mut gram);
    }
    qs.push(q);
    Some(Iterates {
        qs,
        grams,
        scale,
        argmax_row,
    })
}

fn tolerance<T: WithDType>() -> f64 {
    if T::DTYPE == DType::F64 {
        1e-13
    } else {
        1e-6
    }
}

fn forward_impl<T: WithDType>(raw: &[T], op: &Bjorck) -> Vec<T> {
    let (d, m) = (op.d, op.m);
    let matrices = raw.len() / (d * m);
    for_rows(
        matrices,
        d * m,
        #[inline(always)]
        |i, out| {
            let x = &raw[i * d * m..(i + 1) * d * m];
            match iterate(x, m, op.max_steps, false) {
                Some(it) => out.copy_from_slice(it.qs.last().expect("one iterate at least")),
                None => out.copy_from_slice(x),
            }
        },
    )
}

fn backward_impl<T: WithDType>(raw: &[T], grad: &[T], op: &BjorckGrad) -> Vec<T> {
    let (d, m) = (op.d, op.m);
    let matrices = raw.len() / (d * m);
    for_rows(
        matrices,
        d * m,
        #[inline(always)]
        |i, out| {
            let span = i * d * m..(i + 1) * d * m;
            let x = &raw[span.clone()];
            let Some(it) = iterate(x, m, op.max_steps, true) else {
                out.copy_from_slice(&grad[span]);
                return;
            };
            let mut g = grad[span].to_vec();
            let mut sym = vec![T::zero(); m * m];
            let (three_halves, minus_half) = (T::from_f64(1.5), T::from_f64(-0.5));
            let mut gram_0 = vec![T::zero(); m * m];
            at_b(&it.qs[0], &it.qs[0], m, &mut gram_0);
            let grams: Vec<&[T]> = std::iter::once(&gram_0)
                .chain(&it.grams)
                .map(Vec::as_slice)
                .collect();
            let steps = &it.qs[..it.qs.len() - 1]; // Q₀ … Q_{T−1}, one gram each
            for (q, a) in steps.iter().zip(grams).rev() {
                at_b(&g, q, m, &mut sym); // GᵀQ; QᵀG is its transpose
                for r in 0..m {
                    for c in r..m {
                        let s = sym[r * m + c] + sym[c * m + r];
                        sym[r * m + c] = s;
                        sym[c * m + r] = s;
                    }
                }
                let mut previous: Vec<T> = g.iter().map(|&v| three_halves * v).collect();
                add_q_times(minus_half, &g, a, m, &mut previous);
                add_q_times(minus_half, q, &sym, m, &mut previous);
                g = previous;
            }
            // Q₀ = X / s with s = √(Σⱼ |(XᵀX)_{i*j}|): ∂s/∂X = X (E + Eᵀ) / (2s), where E holds
            // the signs of row i* of XᵀX and zeros elsewhere. In f64: one pass, not hot.
            let (x, mut g) = (to_f64(x), to_f64(&g));
            let (s, star) = (it.scale, it.argmax_row);
            let along: f64 = g.iter().zip(&x).map(|(g, x)| g * x).sum::<f64>() / (s * s);
            let mut gram_row = vec![0.0; m];
            for row in x.chunks_exact(m) {
                for (acc, v) in gram_row.iter_mut().zip(row) {
                    *acc += row[star] * v;
                }
            }
            let signs: Vec<f64> = gram_row.iter().map(|v| v.signum()).collect();
            let factor = along / (2.0 * s);
            for (gr, xr) in g.chunks_exact_mut(m).zip(x.chunks_exact(m)) {
                let toward_signs: f64 = xr.iter().zip(&signs).map(|(x, e)| x * e).sum();
                // (X E)_{dk} = X_{d i*} e_k and (X Eᵀ)_{dk} = δ_{k i*} Σⱼ X_{dj} e_j.
                for (v, e) in gr.iter_mut().zip(&signs) {
                    *v = *v / s - factor * xr[star] * e;
                }
                gr[star] -= factor * toward_signs;
            }
            for (o, v) in out.iter_mut().zip(g) {
                *o = T::from_f64(v);
            }
        },
    )
}

impl Kernel for Bjorck {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        forward_impl(inputs[0], self)
    }
}

impl Kernel for BjorckGrad {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        backward_impl(inputs[0], inputs[1], self)
    }
}

impl CustomOp1 for Bjorck {
    fn name(&self) -> &'static str {
        "fused-bjorck"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = run_f32_or_f64(self.name(), &[(s, l)], self)?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, raw: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = BjorckGrad {
            d: self.d,
            m: self.m,
            max_steps: self.max_steps,
        };
        Ok(Some(raw.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

impl CustomOp2 for BjorckGrad {
    fn name(&self) -> &'static str {
        "fused-bjorck-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2)], self)?;
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::sylvester::q::orthogonalize_batched;
    use candle_core::{Device, Var};
    use flowvae_nn::{seeded, standard_normal};

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
            .unwrap()
    }

    /// Values and gradients of the batched candle form, in f64: exactly for one matrix (the
    /// same steps), to the tolerance's order for several (each stops at its own step); with
    /// and without the register-blocked products.
    #[test]
    fn the_fused_iteration_matches_the_batched_form_in_values_and_gradients() {
        let dev = &Device::Cpu;
        // 38 × 32: the register blocks of 4 rows × 32 columns and 2 rows left over.
        for (rows, d, m, tol) in [(1, 7, 4, 1e-11), (6, 7, 4, 1e-8), (3, 38, 32, 1e-8)] {
            let eye = Tensor::eye(m, DType::F64, dev).unwrap();
            let mut rng = seeded(rows as u64, flowvae_nn::Stream::Scratch("fused-bjorck"));
            let raw = standard_normal(&mut rng, (rows, d, m), DType::F64, dev).unwrap();
            let raw = Var::from_tensor(&raw).unwrap();
            let weights = standard_normal(&mut rng, (rows, d, m), DType::F64, dev).unwrap();
            let fused = orthogonalize_fused(raw.as_tensor()).unwrap();
            let batched = orthogonalize_batched(raw.as_tensor(), &eye).unwrap();
            assert!(max_diff(&fused, &batched) < tol, "values, {rows} rows");
            let gram = fused.transpose(1, 2).unwrap().matmul(&fused).unwrap();
            assert!(
                max_diff(
                    &gram,
                    &eye.unsqueeze(0).unwrap().repeat((rows, 1, 1)).unwrap()
                ) < 1e-12
            );
            let grad = |q: &Tensor| {
                let loss = (q * &weights).unwrap().sum_all().unwrap();
                loss.backward().unwrap().get(&raw).unwrap().clone()
            };
            let (g_fused, g_batched) = (grad(&fused), grad(&batched));
            assert!(
                max_diff(&g_fused, &g_batched) < tol,
                "gradients, {rows} rows"
            );
        }
    }

    /// The backward against central differences of the forward, stopped after 3 steps, far
    /// from convergence, where the scale's gradient is not negligible.
    #[test]
    fn the_gradient_of_a_truncated_iteration_matches_finite_differences() {
        let (d, m) = (5, 3);
        let dev = &Device::Cpu;
        let mut rng = seeded(9, flowvae_nn::Stream::Scratch("fused-bjorck-fd"));
        let raw = standard_normal(&mut rng, (1, d, m), DType::F64, dev).unwrap();
        let weights = standard_normal(&mut rng, (1, d, m), DType::F64, dev).unwrap();
        let op = Bjorck { d, m, max_steps: 3 };
        let loss = |x: &Tensor| -> f64 {
            let q = x.apply_op1(op).unwrap();
            (q * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let var = Var::from_tensor(&raw).unwrap();
        let q = var.as_tensor().apply_op1(op).unwrap();
        let grads = (q * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let analytic: Vec<f64> = grads
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let values: Vec<f64> = raw.flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-6;
        for (k, &g) in analytic.iter().enumerate() {
            let shifted = |delta: f64| {
                let mut v = values.clone();
                v[k] += delta;
                loss(&Tensor::from_vec(v, (1, d, m), dev).unwrap())
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!((numeric - g).abs() < 1e-6, "entry {k}: {numeric} vs {g}");
        }
    }

    /// A matrix already orthonormal passes through unchanged, and so does its gradient.
    #[test]
    fn an_orthonormal_input_is_returned_as_it_is() {
        let dev = &Device::Cpu;
        let eye = Tensor::eye(3, DType::F64, dev).unwrap();
        let q = Var::from_tensor(
            &Tensor::cat(
                &[&eye, &eye.narrow(0, 0, 1).unwrap().zeros_like().unwrap()],
                0,
            )
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
        )
        .unwrap();
        let out = orthogonalize_fused(q.as_tensor()).unwrap();
        assert_eq!(max_diff(&out, q.as_tensor()), 0.0);
        let weights = Tensor::arange(0f64, 12.0, dev)
            .unwrap()
            .reshape((1, 4, 3))
            .unwrap();
        let grads = (&out * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(max_diff(grads.get(&q).unwrap(), &weights), 0.0);
    }
}
