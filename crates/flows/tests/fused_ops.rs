//! Fused CPU ops against the unfused compositions they replace: values and gradients, f64.

use candle_core::{DType, Device, Tensor, Var};
use flowvae_flows::fused_planar::planar_stack;
use flowvae_flows::planar::Planar;
use flowvae_flows::{Conditioning, Flow, ParamStore};
use flowvae_nn::fused_bce::bce_with_logits_sum;
use flowvae_nn::rng::{seeded, standard_normal};
use flowvae_nn::stable::bce_with_logits;

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
    let mut rng = seeded(3, "fused-planar");
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
    let mut rng = seeded(4, "fused-planar-f32");
    let z = standard_normal(&mut rng, (3, 4), DType::F32, &Device::Cpu).unwrap();
    let p = standard_normal(&mut rng, (3, 2 * 9), DType::F32, &Device::Cpu).unwrap();
    let (y, ld) = planar_stack(&z, &p).unwrap();
    assert_eq!((y.dims(), ld.dims()), (&[3usize, 4][..], &[3usize][..]));
    assert_eq!(y.dtype(), DType::F32);
}

#[test]
fn fused_bce_matches_the_stable_formula_in_values_and_gradients() {
    let mut rng = seeded(5, "fused-bce");
    let raw =
        (standard_normal(&mut rng, (6, 9), DType::F64, &Device::Cpu).unwrap() * 20.0).unwrap();
    let logits = Var::from_tensor(&raw).unwrap();
    let targets = Var::from_tensor(
        &standard_normal(&mut rng, (6, 9), DType::F64, &Device::Cpu)
            .unwrap()
            .ge(0.0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap(),
    )
    .unwrap();
    let r = standard_normal(&mut rng, 6, DType::F64, &Device::Cpu).unwrap();
    let reference = bce_with_logits(logits.as_tensor(), targets.as_tensor())
        .unwrap()
        .sum(1)
        .unwrap();
    let fused = bce_with_logits_sum(logits.as_tensor(), targets.as_tensor()).unwrap();
    assert!(max_diff(&reference, &fused) < 1e-10);
    let g0 = (&reference * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g1 = (&fused * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for var in [&logits, &targets] {
        let diff = max_diff(
            g0.get(var.as_tensor()).unwrap(),
            g1.get(var.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-12, "gradient differs by {diff}");
    }
}

#[test]
fn fused_linear_matches_the_composition_in_values_and_gradients() {
    let mut rng = seeded(6, "fused-linear");
    let normal = |rng: &mut flowvae_flows::SeededRng, shape: (usize, usize)| {
        Var::from_tensor(&standard_normal(rng, shape, DType::F64, &Device::Cpu).unwrap()).unwrap()
    };
    let x = normal(&mut rng, (5, 7));
    let w = normal(&mut rng, (4, 7));
    let b =
        Var::from_tensor(&standard_normal(&mut rng, 4, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let r = standard_normal(&mut rng, (5, 4), DType::F64, &Device::Cpu).unwrap();
    for relu in [false, true] {
        let plain = x
            .as_tensor()
            .matmul(&w.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let plain = if relu { plain.relu().unwrap() } else { plain };
        let fused =
            flowvae_nn::fused_linear::linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), relu)
                .unwrap();
        assert!(
            max_diff(&plain, &fused) < 1e-12,
            "values differ (relu {relu})"
        );
        let g0 = (&plain * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g1 = (&fused * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&x, &w, &b] {
            let diff = max_diff(
                g0.get(var.as_tensor()).unwrap(),
                g1.get(var.as_tensor()).unwrap(),
            );
            assert!(diff < 1e-12, "gradient differs by {diff} (relu {relu})");
        }
    }
}

#[test]
fn fused_bce_splits_large_inputs_over_threads_without_changing_values() {
    let mut rng = seeded(7, "fused-bce-large");
    let logits =
        (standard_normal(&mut rng, (300, 1000), DType::F64, &Device::Cpu).unwrap() * 5.0).unwrap();
    let targets = standard_normal(&mut rng, (300, 1000), DType::F64, &Device::Cpu)
        .unwrap()
        .ge(0.0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let reference = bce_with_logits(&logits, &targets).unwrap().sum(1).unwrap();
    let fused = bce_with_logits_sum(&logits, &targets).unwrap();
    assert_eq!(fused.dims(), &[300]);
    assert!(max_diff(&reference, &fused) < 1e-9);
}

#[test]
fn fused_bce_in_f32_matches_the_f64_formula_in_values_and_gradients() {
    // Width 37 exercises the 16-lane loop and its tail; logits up to ±60 reach both branches.
    let mut rng = seeded(8, "fused-bce-f32");
    let logits64 =
        (standard_normal(&mut rng, (8, 37), DType::F64, &Device::Cpu).unwrap() * 20.0).unwrap();
    let targets64 = standard_normal(&mut rng, (8, 37), DType::F64, &Device::Cpu)
        .unwrap()
        .ge(0.0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let reference = bce_with_logits(&logits64, &targets64)
        .unwrap()
        .sum(1)
        .unwrap();
    let logits = Var::from_tensor(&logits64.to_dtype(DType::F32).unwrap()).unwrap();
    let targets = targets64.to_dtype(DType::F32).unwrap();
    let fused = bce_with_logits_sum(logits.as_tensor(), &targets).unwrap();
    assert_eq!(fused.dtype(), DType::F32);
    let fused64 = fused.to_dtype(DType::F64).unwrap();
    let scale = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(max_diff(&reference, &fused64) < 1e-6 * scale);
    let grads = fused.sum_all().unwrap().backward().unwrap();
    let got = grads
        .get(logits.as_tensor())
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let want = (candle_nn::ops::sigmoid(&logits64).unwrap() - &targets64).unwrap();
    assert!(max_diff(&got, &want) < 1e-6);
}

#[test]
fn the_gradient_sink_gives_the_same_gradients_as_candles_backward() {
    // The weight is used by two fused layers and by a plain op, so the sink must sum its own
    // deposits and then add what candle accumulated.
    let mut rng = seeded(9, "grad-sink");
    let normal = |rng: &mut flowvae_flows::SeededRng, shape: (usize, usize)| {
        Var::from_tensor(&standard_normal(rng, shape, DType::F64, &Device::Cpu).unwrap()).unwrap()
    };
    let x = normal(&mut rng, (5, 4));
    let w = normal(&mut rng, (4, 4));
    let b =
        Var::from_tensor(&standard_normal(&mut rng, 4, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let loss = || {
        let linear = flowvae_nn::fused_linear::linear;
        let h = linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), true).unwrap();
        let y = linear(&h, w.as_tensor(), b.as_tensor(), false).unwrap();
        let plain = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        (y.sqr().unwrap().sum_all().unwrap() + plain).unwrap()
    };
    let reference = loss().backward().unwrap();
    let sunk = flowvae_nn::grad_sink::backward(&loss()).unwrap();
    for var in [&x, &w, &b] {
        let diff = max_diff(
            reference.get(var.as_tensor()).unwrap(),
            sunk.get(var.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-12, "gradient differs by {diff}");
    }
}

/// `split_columns` against `narrow`: the same blocks, and the same gradient for the whole
/// tensor, including a zero-width block, a block the loss never uses and columns left over.
#[test]
fn split_columns_gives_the_values_and_gradients_of_narrow() {
    use flowvae_nn::fused_split::split_columns;
    for dtype in [DType::F32, DType::F64] {
        let init = Tensor::randn(0f32, 1f32, (5, 10), &Device::Cpu).unwrap();
        let params = Var::from_tensor(&init.to_dtype(dtype).unwrap()).unwrap();
        let widths = [2, 0, 3, 3, 1]; // 9 of 10 columns
        let loss_of = |parts: &[Tensor]| {
            let squared = parts[2].sqr().unwrap().sum_all().unwrap();
            let scaled = (&parts[0] * 3.0).unwrap().sum_all().unwrap();
            let cubed = parts[4].powf(3.0).unwrap().sum_all().unwrap();
            ((squared + scaled).unwrap() + cubed).unwrap() // parts[3] unused
        };
        let fused = split_columns(params.as_tensor(), &widths).unwrap();
        let mut offset = 0;
        let narrowed: Vec<Tensor> = widths
            .iter()
            .map(|&w| {
                offset += w;
                params.as_tensor().narrow(1, offset - w, w).unwrap()
            })
            .collect();
        for (a, b) in fused.iter().zip(&narrowed) {
            assert_eq!(a.dims(), b.dims());
            if a.elem_count() > 0 {
                let (a, b) = (
                    a.to_dtype(DType::F64).unwrap(),
                    b.to_dtype(DType::F64).unwrap(),
                );
                assert_eq!(max_diff(&a, &b), 0.0);
            }
        }
        let grad_of = |parts: &[Tensor]| {
            let grads = loss_of(parts).backward().unwrap();
            grads
                .get(params.as_tensor())
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
        };
        let (fused_grad, narrow_grad) = (grad_of(&fused), grad_of(&narrowed));
        assert_eq!(fused_grad.dims(), &[5, 10]);
        assert!(max_diff(&narrow_grad, &narrow_grad.zeros_like().unwrap()) > 0.1);
        assert_eq!(max_diff(&fused_grad, &narrow_grad), 0.0, "{dtype:?}");
        // A second backward pass over the same graph gives the same gradient again.
        assert_eq!(max_diff(&grad_of(&fused), &narrow_grad), 0.0);
    }
}

/// The Sylvester core `(zq, [full, a₁, a₂, b]) → (R h, log|det J|)` against the explicit
/// matrices of van den Berg et al.: `R = triu(full, 1) + diag(tanh a₁)`, `R̃ = triu(fullᵀ, 1) +
/// diag(tanh a₂)`, `h = tanh(R̃ zq + b)`; values and gradients in f64, with one input row per
/// parameter row (training) and several (the NLL's shared rows).
#[test]
fn fused_sylvester_core_matches_the_explicit_matrices_in_values_and_gradients() {
    use flowvae_flows::fused_sylvester::sylvester_core;
    let (rows, m) = (5, 6);
    let dev = &Device::Cpu;
    // 130 input rows per parameter row run as five runs of 26 in the forward kernel.
    for k in [1, 3, 130] {
        let mut rng = seeded(k as u64, "fused-sylvester");
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
