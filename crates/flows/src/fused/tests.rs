//! The fused flow kernels against the unfused compositions they replace: values and
//! gradients, in f64.

use candle_core::{DType, Device, Tensor, Var};

use super::planar::planar_stack;
use super::sylvester::sylvester_core;
use crate::{Conditioning, Flow, ParamStore, Planar};
use flowvae_nn::{seeded, standard_normal};

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}
/// `K` amortized planar layers applied one by one, as `Composed` does without fusion.
fn unfused(z: &Tensor, params: &Tensor, k: usize) -> (Tensor, Tensor) {
    let d = z.dim(1).unwrap();
    let store = ParamStore::new(0);
    let layer = Planar::new(store.var_builder(DType::F64, &Device::Cpu), d, true).unwrap();
    let mut z = z.clone();
    let mut total = Tensor::zeros(z.dim(0).unwrap(), DType::F64, &Device::Cpu).unwrap();
    for i in 0..k {
        let p = params.narrow(1, i * (2 * d + 1), 2 * d + 1).unwrap();
        let (y, ld) = layer.forward(&z, Conditioning::params(&p)).unwrap();
        z = y;
        total = (total + ld).unwrap();
    }
    (z, total)
}

#[test]
fn fused_planar_stack_matches_the_composition_in_values_and_gradients() {
    let (b, d, k) = (7, 5, 4);
    let mut rng = seeded(3, flowvae_nn::Stream::Scratch("fused-planar"));
    let z = Var::from_tensor(&standard_normal(&mut rng, (b, d), DType::F64, &Device::Cpu).unwrap())
        .unwrap();
    // Spread 1.5: large enough that wᵀu < −1 for some rows (the û correction matters).
    let raw = (standard_normal(&mut rng, (b, k * (2 * d + 1)), DType::F64, &Device::Cpu).unwrap()
        * 1.5)
        .unwrap();
    let params = Var::from_tensor(&raw).unwrap();
    let rz = standard_normal(&mut rng, (b, d), DType::F64, &Device::Cpu).unwrap();
    let rl = standard_normal(&mut rng, b, DType::F64, &Device::Cpu).unwrap();
    let loss = |(y, ld): (Tensor, Tensor)| -> (Tensor, Tensor, Tensor) {
        let l = ((&y * &rz).unwrap().sum_all().unwrap() + (&ld * &rl).unwrap().sum_all().unwrap())
            .unwrap();
        (y, ld, l)
    };
    let (y0, ld0, l0) = loss(unfused(z.as_tensor(), params.as_tensor(), k));
    let (y1, ld1, l1) = loss(planar_stack(z.as_tensor(), params.as_tensor()).unwrap());
    assert!(max_diff(&y0, &y1) < 1e-12, "z_K differs");
    assert!(max_diff(&ld0, &ld1) < 1e-12, "log-det differs");
    let (g0, g1) = (l0.backward().unwrap(), l1.backward().unwrap());
    for (name, var) in [("z", &z), ("params", &params)] {
        let a = g0.get(var.as_tensor()).unwrap();
        let b = g1.get(var.as_tensor()).unwrap();
        let diff = max_diff(a, b);
        assert!(diff < 1e-10, "gradient of {name} differs by {diff}");
    }
}

#[test]
fn fused_planar_stack_runs_in_f32() {
    let mut rng = seeded(4, flowvae_nn::Stream::Scratch("fused-planar-f32"));
    let z = standard_normal(&mut rng, (3, 4), DType::F32, &Device::Cpu).unwrap();
    let p = standard_normal(&mut rng, (3, 2 * 9), DType::F32, &Device::Cpu).unwrap();
    let (y, ld) = planar_stack(&z, &p).unwrap();
    assert_eq!((y.dims(), ld.dims()), (&[3usize, 4][..], &[3usize][..]));
    assert_eq!(y.dtype(), DType::F32);
}

/// The Sylvester core `(zq, [full, a₁, a₂, b]) → (R h, log|det J|)` against the explicit
/// matrices of van den Berg et al.: `R = triu(full, 1) + diag(tanh a₁)`, `R̃ = triu(fullᵀ, 1) +
/// diag(tanh a₂)`, `h = tanh(R̃ zq + b)`; values and gradients in f64, with one input row per
/// parameter row (training) and several (the NLL's shared rows).
#[test]
fn fused_sylvester_core_matches_the_explicit_matrices_in_values_and_gradients() {
    let (rows, m) = (5, 6);
    let dev = &Device::Cpu;
    // 130 input rows per parameter row run as five runs of 26 in the forward kernel.
    for k in [1, 3, 130] {
        let mut rng = seeded(k as u64, flowvae_nn::Stream::Scratch("fused-sylvester"));
        let normal = |rng: &mut _, shape: &[usize]| {
            Var::from_tensor(&standard_normal(rng, shape, DType::F64, dev).unwrap()).unwrap()
        };
        let zq = normal(&mut rng, &[rows, k, m]);
        let params = normal(&mut rng, &[rows, m * m + 3 * m]);
        let weight_rh = standard_normal(&mut rng, (rows, k, m), DType::F64, dev).unwrap();
        let weight_ld = standard_normal(&mut rng, rows * k, DType::F64, dev).unwrap();
        let explicit = |zq: &Tensor, p: &Tensor| -> (Tensor, Tensor) {
            let full = p
                .narrow(1, 0, m * m)
                .unwrap()
                .reshape((rows, m, m))
                .unwrap();
            let d1 = p.narrow(1, m * m, m).unwrap().tanh().unwrap();
            let d2 = p.narrow(1, m * m + m, m).unwrap().tanh().unwrap();
            let b = p.narrow(1, m * m + 2 * m, m).unwrap().unsqueeze(1).unwrap();
            let upper: Vec<f64> = (0..m * m)
                .map(|i| if i % m > i / m { 1.0 } else { 0.0 })
                .collect();
            let upper = Tensor::from_vec(upper, (m, m), dev).unwrap();
            let eye = Tensor::eye(m, DType::F64, dev).unwrap();
            let diag = |d: &Tensor| eye.broadcast_mul(&d.unsqueeze(1).unwrap()).unwrap();
            let r = (full.broadcast_mul(&upper).unwrap() + diag(&d1)).unwrap();
            let full_t = full.transpose(1, 2).unwrap().contiguous().unwrap();
            let r_tilde = (full_t.broadcast_mul(&upper).unwrap() + diag(&d2)).unwrap();
            let transposed = |a: &Tensor| a.transpose(1, 2).unwrap().contiguous().unwrap();
            let h = zq
                .matmul(&transposed(&r_tilde))
                .unwrap()
                .broadcast_add(&b)
                .unwrap()
                .tanh()
                .unwrap();
            let rh = h.matmul(&transposed(&r)).unwrap();
            let c = (d1 * d2).unwrap().unsqueeze(1).unwrap();
            let log_det = (h.sqr().unwrap().affine(-1.0, 1.0).unwrap())
                .broadcast_mul(&c)
                .unwrap()
                .affine(1.0, 1.0)
                .unwrap()
                .abs()
                .unwrap()
                .log()
                .unwrap()
                .sum(2)
                .unwrap()
                .reshape(rows * k)
                .unwrap();
            (rh, log_det)
        };
        let loss = |(rh, ld): &(Tensor, Tensor)| {
            ((rh * &weight_rh).unwrap().sum_all().unwrap()
                + (ld * &weight_ld).unwrap().sum_all().unwrap())
            .unwrap()
        };
        let reference = explicit(zq.as_tensor(), params.as_tensor());
        let fused = sylvester_core(zq.as_tensor(), params.as_tensor()).unwrap();
        assert!(
            max_diff(&reference.0, &fused.0) < 1e-12,
            "R h differs, k = {k}"
        );
        assert!(
            max_diff(&reference.1, &fused.1) < 1e-12,
            "log-det differs, k = {k}"
        );
        let (g0, g1) = (
            loss(&reference).backward().unwrap(),
            loss(&fused).backward().unwrap(),
        );
        for (var, name) in [(&zq, "zq"), (&params, "params")] {
            let (a, b) = (g0.get(var).unwrap(), g1.get(var).unwrap());
            assert!(max_diff(a, b) < 1e-10, "grad of {name} differs, k = {k}");
        }
    }
}
