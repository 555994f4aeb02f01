//! The part of a Sylvester layer between its two products with `Q`, and its log-det, as one
//! candle custom op with its own backward (CPU).
//!
//! For an input row `zq = zᵀQ` `(M)` and its parameter row `[full (M·M), a₁ (M), a₂ (M),
//! b (M)]` (the layout of [`crate::layers::sylvester`]), with `d₁ = tanh a₁`, `d₂ = tanh a₂`,
//! `R = triu(full, 1) + diag(d₁)` and `R̃ = triu(fullᵀ, 1) + diag(d₂)`:
//! `h = tanh(R̃ zq + b)`, output `R h` `(M)` and `Σᵢ log|1 + (1 − hᵢ²) d₁ᵢ d₂ᵢ|`.
//!
//! Unfused, this is two masks, a transpose, two batched `(1, M)·(M, M)` products (one tiny
//! gemm call per row) and a dozen element-wise ops per layer, with as many gradient buffers
//! backwards; here it is one pass over each row forwards and one backwards, which reads
//! `full` directly and never builds `R` or `R̃`. Arithmetic is in f64 whatever the dtype.
//! Parameter rows may be shared by `k` consecutive input rows (the importance-sampled NLL):
//! their gradients are summed over those rows.
//!
//! The unfused composition in [`crate::layers::sylvester`] stays the path on other devices and with
//! `FLOWVAE_UNFUSED=sylvester`; `tests/fused_ops.rs` checks this op against the explicit
//! matrices.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_core::{Device, WithDType};

use flowvae_nn::kernels::{enabled, for_rows, run_f32_or_f64, to_f64, Kernel};

/// Whether the fused op may run for `zq` and `params` (CPU, f32 or f64, one dtype).
pub fn applicable(zq: &Tensor, params: &Tensor) -> bool {
    enabled(flowvae_nn::FusedOp::Sylvester)
        && matches!(zq.device(), Device::Cpu)
        && params.device().is_cpu()
        && matches!(zq.dtype(), DType::F32 | DType::F64)
        && zq.dtype() == params.dtype()
}

/// `zq` `(rows, k, M)` and `params` `(rows, M·M + 3M)` → `(R h` `(rows, k, M)`,
/// `log|det J|` `(rows·k,))`.
pub fn sylvester_core(zq: &Tensor, params: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, k, m) = zq.dims3()?;
    let (param_rows, width) = params.dims2()?;
    if param_rows != rows || width != m * m + 3 * m {
        bail!(
            "fused sylvester: zq {:?} and params {:?} disagree",
            zq.dims(),
            params.dims()
        );
    }
    let flat = zq.reshape((rows * k, m))?.contiguous()?;
    let op = SylvesterCore { m, rows };
    let out = flat.apply_op2(&params.contiguous()?, op)?;
    Ok((
        out.narrow(1, 0, m)?.reshape((rows, k, m))?,
        out.narrow(1, m, 1)?.squeeze(1)?,
    ))
}

/// Forward op on `zq` `(n, M)` and params `(rows, P)`, `rows` dividing `n`: output `(n, M + 1)`.
#[derive(Debug, Clone, Copy)]
struct SylvesterCore {
    m: usize,
    /// Parameter rows.
    rows: usize,
}

/// Backward op on `zq`, params and the output's gradient: `(rows, k·M + P)`, each parameter
/// row's `k` input-row gradients then its parameter gradient.
#[derive(Debug, Clone, Copy)]
struct SylvesterCoreGrad {
    m: usize,
    rows: usize,
}

/// One parameter row in f64, with the diagonals through tanh.
struct Params<'a> {
    m: usize,
    full: &'a [f64],
    d1: Vec<f64>,
    d2: Vec<f64>,
    b: &'a [f64],
}

impl<'a> Params<'a> {
    #[inline(always)]
    fn new(p: &'a [f64], m: usize) -> Self {
        let (full, rest) = p.split_at(m * m);
        Self {
            m,
            full,
            d1: rest[..m].iter().map(|a| a.tanh()).collect(),
            d2: rest[m..2 * m].iter().map(|a| a.tanh()).collect(),
            b: &rest[2 * m..3 * m],
        }
    }

    /// `h = tanh(R̃ zq + b)` into `h`.
    #[inline(always)]
    fn hidden(&self, zq: &[f64], h: &mut [f64]) {
        let m = self.m;
        for i in 0..m {
            h[i] = self.d2[i] * zq[i] + self.b[i];
        }
        // (R̃ zq)ᵢ takes fullⱼᵢ zqⱼ for j > i: row j of full, columns below j.
        for j in 1..m {
            let zj = zq[j];
            for (hi, f) in h[..j].iter_mut().zip(&self.full[j * m..j * m + j]) {
                *hi += f * zj;
            }
        }
        for hi in h.iter_mut() {
            *hi = hi.tanh();
        }
    }

    /// `(R h)ᵢ = d₁ᵢ hᵢ + Σ_{j>i} fullᵢⱼ hⱼ`.
    #[inline(always)]
    fn apply_r(&self, h: &[f64], out: &mut [f64]) {
        let m = self.m;
        for i in 0..m {
            let row = &self.full[i * m + i + 1..(i + 1) * m];
            out[i] =
                self.d1[i] * h[i] + row.iter().zip(&h[i + 1..]).map(|(f, h)| f * h).sum::<f64>();
        }
    }

    #[inline(always)]
    fn log_det(&self, h: &[f64]) -> f64 {
        (0..self.m)
            .map(|i| {
                (1.0 + (1.0 - h[i] * h[i]) * self.d1[i] * self.d2[i])
                    .abs()
                    .ln()
            })
            .sum()
    }
}

/// Input rows in runs of up to 64 that share a parameter row (contiguous in `zq` and in the
/// output): a run converts its parameters and puts them through tanh once, which costs more
/// than a row's products, and many runs keep the rows spread over the threads when a few
/// parameter rows serve thousands of samples (the NLL).
fn forward_impl<T: WithDType>(zq: &[T], p: &[T], m: usize, rows: usize) -> Vec<T> {
    let n = zq.len() / m;
    let (k, width) = (n / rows, m * m + 3 * m);
    let run = (1..=k.min(64)).rev().find(|c| k % c == 0).unwrap_or(1);
    for_rows(
        n / run,
        run * (m + 1),
        #[inline(always)]
        |unit, out| {
            let row = unit * run / k;
            let pr = to_f64(&p[row * width..(row + 1) * width]);
            let params = Params::new(&pr, m);
            let (mut h, mut rh) = (vec![0.0; m], vec![0.0; m]);
            for (j, out) in out.chunks_exact_mut(m + 1).enumerate() {
                let r = unit * run + j;
                let z = to_f64(&zq[r * m..(r + 1) * m]);
                params.hidden(&z, &mut h);
                params.apply_r(&h, &mut rh);
                let log_det = params.log_det(&h);
                for (o, &v) in out.iter_mut().zip(rh.iter().chain([&log_det])) {
                    *o = T::from_f64(v);
                }
            }
        },
    )
}

/// The gradients of one parameter row (`full`, `d₁`, `d₂` as after the tanh, `b`), summed over
/// the input rows that share it.
struct RowGrads<'a> {
    full: &'a mut [f64],
    d1: &'a mut [f64],
    d2: &'a mut [f64],
    b: &'a mut [f64],
}

#[inline(always)]
fn row_backward(
    params: &Params,
    z: &[f64],
    g_rh: &[f64],
    g_log_det: f64,
    g_zq: &mut [f64],
    grads: &mut RowGrads,
) {
    let m = params.m;
    let mut h = vec![0.0; m];
    params.hidden(z, &mut h);
    // Through R h: gh_j = d₁ⱼ g_rhⱼ + Σ_{i<j} g_rhᵢ fullᵢⱼ.
    let mut gh: Vec<f64> = (0..m).map(|j| params.d1[j] * g_rh[j]).collect();
    for i in 0..m {
        grads.d1[i] += g_rh[i] * h[i];
        let (gi, range) = (g_rh[i], i * m + i + 1..(i + 1) * m);
        for ((ghj, f), (gf, hj)) in gh[i + 1..]
            .iter_mut()
            .zip(&params.full[range.clone()])
            .zip(grads.full[range].iter_mut().zip(&h[i + 1..]))
        {
            *ghj += gi * f;
            *gf += gi * hj;
        }
    }
    // Through Σ log|1 + (1 − h²) d₁ d₂| and the tanh of the hidden layer.
    let mut g_pre = vec![0.0; m];
    for i in 0..m {
        let (c, dh) = (params.d1[i] * params.d2[i], 1.0 - h[i] * h[i]);
        let s = 1.0 + dh * c;
        let gc = g_log_det * dh / s;
        grads.d1[i] += gc * params.d2[i];
        grads.d2[i] += gc * params.d1[i];
        g_pre[i] = (gh[i] - g_log_det * 2.0 * h[i] * c / s) * dh;
        grads.b[i] += g_pre[i];
        grads.d2[i] += g_pre[i] * z[i];
    }
    // Through R̃ zq: g_zqⱼ = d₂ⱼ g_preⱼ + Σ_{i<j} g_preᵢ fullⱼᵢ.
    for j in 0..m {
        let range = j * m..j * m + j;
        let along: f64 = params.full[range.clone()]
            .iter()
            .zip(&g_pre[..j])
            .map(|(f, g)| f * g)
            .sum();
        g_zq[j] = params.d2[j] * g_pre[j] + along;
        for (gf, gp) in grads.full[range].iter_mut().zip(&g_pre[..j]) {
            *gf += gp * z[j];
        }
    }
}

fn backward_impl<T: WithDType>(zq: &[T], p: &[T], g: &[T], m: usize, rows: usize) -> Vec<T> {
    let n = zq.len() / m;
    let (k, width) = (n / rows, m * m + 3 * m);
    for_rows(
        rows,
        k * m + width,
        #[inline(always)]
        |row, out| {
            let pr = to_f64(&p[row * width..(row + 1) * width]);
            let params = Params::new(&pr, m);
            let mut gp = vec![0.0; width];
            let (g_full, rest) = gp.split_at_mut(m * m);
            let (g_d1, rest) = rest.split_at_mut(m);
            let (g_d2, g_b) = rest.split_at_mut(m);
            let mut grads = RowGrads {
                full: g_full,
                d1: g_d1,
                d2: g_d2,
                b: g_b,
            };
            let mut g_zq = vec![0.0; k * m];
            for j in 0..k {
                let r = row * k + j;
                let z = to_f64(&zq[r * m..(r + 1) * m]);
                let gr = to_f64(&g[r * (m + 1)..(r + 1) * (m + 1)]);
                let g_row = &mut g_zq[j * m..(j + 1) * m];
                row_backward(&params, &z, &gr[..m], gr[m], g_row, &mut grads);
            }
            // d = tanh a: the diagonals' gradients reach the raw parameters through 1 − d².
            for i in 0..m {
                gp[m * m + i] *= 1.0 - params.d1[i] * params.d1[i];
                gp[m * m + m + i] *= 1.0 - params.d2[i] * params.d2[i];
            }
            for (o, &v) in out.iter_mut().zip(g_zq.iter().chain(&gp)) {
                *o = T::from_f64(v);
            }
        },
    )
}

impl Kernel for SylvesterCore {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        forward_impl(inputs[0], inputs[1], self.m, self.rows)
    }
}

impl Kernel for SylvesterCoreGrad {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        backward_impl(inputs[0], inputs[1], inputs[2], self.m, self.rows)
    }
}

impl CustomOp2 for SylvesterCore {
    fn name(&self) -> &'static str {
        "fused-sylvester-core"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2)], self)?;
        Ok((out, Shape::from((l1.shape().dims()[0], self.m + 1))))
    }

    fn bwd(
        &self,
        zq: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let m = self.m;
        let (n, (rows, width)) = (zq.dim(0)?, params.dims2()?);
        let k = n / rows;
        let op = SylvesterCoreGrad { m, rows };
        let both = zq.apply_op3_no_bwd(params, &grad.contiguous()?, &op)?;
        Ok((
            Some(both.narrow(1, 0, k * m)?.reshape((n, m))?),
            Some(both.narrow(1, k * m, width)?),
        ))
    }
}

impl CustomOp3 for SylvesterCoreGrad {
    fn name(&self) -> &'static str {
        "fused-sylvester-core-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, width) = (l1.shape().dims()[0], l2.shape().dims()[1]);
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2), (s3, l3)], self)?;
        let k = n / self.rows;
        Ok((out, Shape::from((self.rows, k * self.m + width))))
    }
}
