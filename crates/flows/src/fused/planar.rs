//! A stack of `K` amortized planar layers as one candle custom op with its own backward (CPU).
//!
//! Per row, layer `k` reads `[u (D), w (D), b (1)]` at columns `k(2D+1)…` of the parameters,
//! exactly as [`crate::Composed`] slices them for [`crate::layers::planar::Planar`]; it applies
//! `û = u + (m(wᵀu) − wᵀu) w/‖w‖²`, `m(a) = −1 + softplus(a)`, `z ← z + û tanh(wᵀz + b)` and
//! adds `log|1 + (1 − tanh²) wᵀû|` with `wᵀû = m`. Arithmetic is in f64 whatever the dtype.
//!
//! The unfused composition of [`crate::layers::planar::Planar`] layers stays the reference and the
//! path on other devices; `tests/fused_ops.rs` checks values and gradients against it.

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use flowvae_nn::kernels::{enabled, for_rows, run_f32_or_f64, to_f64, Kernel};

/// Whether the fused stack may run for `z` `(B, D)` and `params` `(B, K(2D+1))`.
pub fn applicable(z: &Tensor, params: &Tensor) -> bool {
    enabled(flowvae_nn::FusedOp::Planar)
        && z.device().is_cpu()
        && params.device().is_cpu()
        && matches!(z.dtype(), DType::F32 | DType::F64)
        && z.dtype() == params.dtype()
        && z.rank() == 2
        && params.rank() == 2
        && z.dims()[0] == params.dims()[0]
}

/// `z₀` `(B, D)`, `params` `(B, K(2D+1))` → `(z_K (B, D), Σ_k log|det J_k| (B,))`.
pub fn planar_stack(z: &Tensor, params: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, d) = z.dims2()?;
    let (pb, p) = params.dims2()?;
    if pb != b || p % (2 * d + 1) != 0 {
        bail!(
            "fused planar: z {:?} and params {:?} disagree",
            z.dims(),
            params.dims()
        );
    }
    let out = z
        .contiguous()?
        .apply_op2(&params.contiguous()?, PlanarStack { d })?;
    Ok((out.narrow(1, 0, d)?, out.narrow(1, d, 1)?.squeeze(1)?))
}

/// Forward op: output `(B, D + 1)`, `z_K` then the summed log-det.
#[derive(Debug, Clone, Copy)]
struct PlanarStack {
    d: usize,
}

/// Backward op: inputs `z₀`, params, grad of the output; output `(B, D + P)`.
#[derive(Debug, Clone, Copy)]
struct PlanarStackGrad {
    d: usize,
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `aᵀb` in 8 independent lanes, which the compiler vectorizes (one running sum would not be).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0f64; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut total = 0.0;
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        total += x * y;
    }
    for (a, b) in a_chunks.zip(b_chunks) {
        for (s, (x, y)) in lanes.iter_mut().zip(a.iter().zip(b)) {
            *s += x * y;
        }
    }
    for lane in lanes {
        total += lane;
    }
    total
}

/// One layer's derived quantities for a row.
struct Layer {
    /// `(m − wᵀu)/‖w‖²`.
    c: f64,
    wu: f64,
    wn: f64,
    m: f64,
}

#[inline(always)]
fn layer(u: &[f64], w: &[f64]) -> Layer {
    let wu = dot(w, u);
    let wn = dot(w, w);
    let m = softplus(wu) - 1.0;
    Layer {
        c: (m - wu) / wn,
        wu,
        wn,
        m,
    }
}

/// Runs one row forward; `zs` receives `z₀ … z_{K−1}` (K·D) when given. Returns the log-det.
#[inline(always)]
fn row_forward(z: &mut [f64], p: &[f64], d: usize, mut zs: Option<&mut [f64]>) -> f64 {
    let mut log_det = 0.0;
    for (k, block) in p.chunks_exact(2 * d + 1).enumerate() {
        if let Some(zs) = zs.as_deref_mut() {
            zs[k * d..(k + 1) * d].copy_from_slice(z);
        }
        let (u, w, b) = (&block[..d], &block[d..2 * d], block[2 * d]);
        let l = layer(u, w);
        let h = (dot(w, z) + b).tanh();
        for (z, (u, w)) in z.iter_mut().zip(u.iter().zip(w)) {
            *z += (u + l.c * w) * h;
        }
        log_det += (1.0 + (1.0 - h * h) * l.m).abs().ln();
    }
    log_det
}

/// Backward of one row: `gz` (D) in: grad of `z_K`, out: grad of `z₀`; `gp` (P) out.
#[inline(always)]
fn row_backward(z0: &[f64], p: &[f64], d: usize, gz: &mut [f64], gl: f64, gp: &mut [f64]) {
    let k_layers = p.len() / (2 * d + 1);
    let mut zs = vec![0.0; k_layers * d];
    let mut z = z0.to_vec();
    row_forward(&mut z, p, d, Some(&mut zs));
    let mut u_hat = vec![0.0; d];
    for k in (0..k_layers).rev() {
        let block = &p[k * (2 * d + 1)..(k + 1) * (2 * d + 1)];
        let (u, w, b) = (&block[..d], &block[d..2 * d], block[2 * d]);
        let z = &zs[k * d..(k + 1) * d];
        let l = layer(u, w);
        for (uh, (u, w)) in u_hat.iter_mut().zip(u.iter().zip(w)) {
            *uh = u + l.c * w;
        }
        let h = (dot(w, z) + b).tanh();
        let dh = 1.0 - h * h;
        let s = 1.0 + dh * l.m;
        let gh = dot(gz, &u_hat) + gl * (-2.0 * h * l.m) / s;
        let ga = gh * dh;
        // û = u + c w, c = (m − wᵀu)/‖w‖², m = softplus(wᵀu) − 1; grad of û is gz·h.
        let gc = h * dot(gz, w);
        let gm = gl * dh / s + gc / l.wn;
        let gwu = gm * sigmoid(l.wu) - gc / l.wn;
        let gwn = -gc * l.c / l.wn;
        let g = &mut gp[k * (2 * d + 1)..(k + 1) * (2 * d + 1)];
        for i in 0..d {
            let guh = gz[i] * h;
            g[i] = guh + gwu * w[i];
            g[d + i] = l.c * guh + ga * z[i] + gwu * u[i] + 2.0 * gwn * w[i];
        }
        g[2 * d] = ga;
        for (gz, w) in gz.iter_mut().zip(w) {
            *gz += ga * w;
        }
    }
}

fn forward_impl<T: WithDType>(z: &[T], p: &[T], d: usize) -> Vec<T> {
    let rows = z.len() / d;
    let width = p.len() / rows.max(1);
    for_rows(
        rows,
        d + 1,
        #[inline(always)]
        |r, out| {
            let mut zr = to_f64(&z[r * d..(r + 1) * d]);
            let pr = to_f64(&p[r * width..(r + 1) * width]);
            let log_det = row_forward(&mut zr, &pr, d, None);
            for (o, &v) in out.iter_mut().zip(zr.iter().chain([&log_det])) {
                *o = T::from_f64(v);
            }
        },
    )
}

fn backward_impl<T: WithDType>(z: &[T], p: &[T], g: &[T], d: usize) -> Vec<T> {
    let rows = z.len() / d;
    let width = p.len() / rows.max(1);
    for_rows(
        rows,
        d + width,
        #[inline(always)]
        |r, out| {
            let z0 = to_f64(&z[r * d..(r + 1) * d]);
            let pr = to_f64(&p[r * width..(r + 1) * width]);
            let gr = &g[r * (d + 1)..(r + 1) * (d + 1)];
            let mut gz = to_f64(&gr[..d]);
            let mut gp = vec![0.0; width];
            row_backward(&z0, &pr, d, &mut gz, gr[d].to_f64(), &mut gp);
            for (o, &v) in out.iter_mut().zip(gz.iter().chain(&gp)) {
                *o = T::from_f64(v);
            }
        },
    )
}

impl Kernel for PlanarStack {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        forward_impl(inputs[0], inputs[1], self.d)
    }
}

impl Kernel for PlanarStackGrad {
    fn run<T: WithDType>(&self, inputs: &[&[T]]) -> Vec<T> {
        backward_impl(inputs[0], inputs[1], inputs[2], self.d)
    }
}

impl CustomOp2 for PlanarStack {
    fn name(&self) -> &'static str {
        "fused-planar-stack"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2)], self)?;
        Ok((out, Shape::from((l1.shape().dims()[0], self.d + 1))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = z.apply_op3_no_bwd(params, &grad, &PlanarStackGrad { d: self.d })?;
        let p = params.dim(1)?;
        Ok((
            Some(both.narrow(1, 0, self.d)?),
            Some(both.narrow(1, self.d, p)?),
        ))
    }
}

impl CustomOp3 for PlanarStackGrad {
    fn name(&self) -> &'static str {
        "fused-planar-stack-grad"
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
        let (rows, p) = (l1.shape().dims()[0], l2.shape().dims()[1]);
        let out = run_f32_or_f64(self.name(), &[(s1, l1), (s2, l2), (s3, l3)], self)?;
        Ok((out, Shape::from((rows, self.d + p))))
    }
}
