//! Fused CPU ops against the compositions they replace: values and gradients, in f64.

use candle_core::{DType, Device, Tensor, Var};
use flowvae_nn::bce_with_logits;
use flowvae_nn::bce_with_logits_sum;
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
#[test]
fn fused_bce_matches_the_stable_formula_in_values_and_gradients() {
    let mut rng = seeded(5, flowvae_nn::Stream::Scratch("fused-bce"));
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
    let mut rng = seeded(6, flowvae_nn::Stream::Scratch("fused-linear"));
    let normal = |rng: &mut flowvae_nn::SeededRng, shape: (usize, usize)| {
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
        let fused = flowvae_nn::linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), relu).unwrap();
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
    let mut rng = seeded(7, flowvae_nn::Stream::Scratch("fused-bce-large"));
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
    let mut rng = seeded(8, flowvae_nn::Stream::Scratch("fused-bce-f32"));
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
    let mut rng = seeded(9, flowvae_nn::Stream::Scratch("grad-sink"));
    let normal = |rng: &mut flowvae_nn::SeededRng, shape: (usize, usize)| {
        Var::from_tensor(&standard_normal(rng, shape, DType::F64, &Device::Cpu).unwrap()).unwrap()
    };
    let x = normal(&mut rng, (5, 4));
    let w = normal(&mut rng, (4, 4));
    let b =
        Var::from_tensor(&standard_normal(&mut rng, 4, DType::F64, &Device::Cpu).unwrap()).unwrap();
    let loss = || {
        let linear = flowvae_nn::linear;
        let h = linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), true).unwrap();
        let y = linear(&h, w.as_tensor(), b.as_tensor(), false).unwrap();
        let plain = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        (y.sqr().unwrap().sum_all().unwrap() + plain).unwrap()
    };
    let reference = loss().backward().unwrap();
    let sunk = flowvae_nn::backward_with_sink(&loss()).unwrap();
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
    use flowvae_nn::split_columns;
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

/// The gradients of `Σ y ⊙ r` with respect to `vars`.
fn gradients(y: &Tensor, r: &Tensor, vars: &[&Var]) -> Vec<Tensor> {
    let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
    vars.iter()
        .map(|v| grads.get(v.as_tensor()).unwrap().clone())
        .collect()
}

#[test]
fn masked_fused_linear_matches_the_composition_in_values_and_gradients() {
    // (3, 7, 4): the serial loops; (40, 300, 260): weights above the parallel chunk size. The
    // weight is also read through a transposed view (a strided layout).
    let mut rng = seeded(9, flowvae_nn::Stream::Scratch("masked-linear"));
    for (rows, inputs, outputs) in [(3, 7, 4), (40, 300, 260)] {
        let mut normal = |shape: (usize, usize)| {
            standard_normal(&mut rng, shape, DType::F64, &Device::Cpu).unwrap()
        };
        let x = Var::from_tensor(&normal((rows, inputs))).unwrap();
        let w = Var::from_tensor(&normal((outputs, inputs))).unwrap();
        let w_t = Var::from_tensor(&w.as_tensor().t().unwrap().contiguous().unwrap()).unwrap();
        let b = Var::from_tensor(&normal((1, outputs)).flatten_all().unwrap()).unwrap();
        let mask = normal((outputs, inputs))
            .ge(0.3)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let r = normal((rows, outputs));
        for relu in [false, true] {
            let masked = (w.as_tensor() * &mask).unwrap();
            let plain = x
                .as_tensor()
                .matmul(&masked.t().unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            let plain = if relu { plain.relu().unwrap() } else { plain };
            let fused =
                flowvae_nn::masked_linear(x.as_tensor(), w.as_tensor(), &mask, b.as_tensor(), relu)
                    .unwrap();
            assert!(max_diff(&plain, &fused) < 1e-10, "values (relu {relu})");
            let want = gradients(&plain, &r, &[&x, &w, &b]);
            // A second backward over the same graph forms the masked weight again.
            for _ in 0..2 {
                let got = gradients(&fused, &r, &[&x, &w, &b]);
                for (name, (g0, g1)) in ["x", "W", "b"].iter().zip(want.iter().zip(&got)) {
                    let diff = max_diff(g0, g1);
                    assert!(diff < 1e-10, "∂{name} differs by {diff} (relu {relu})");
                }
            }
            let strided = w_t.as_tensor().t().unwrap();
            let via_view =
                flowvae_nn::masked_linear(x.as_tensor(), &strided, &mask, b.as_tensor(), relu)
                    .unwrap();
            assert!(
                max_diff(&plain, &via_view) < 1e-10,
                "strided weight (relu {relu})"
            );
            let got = gradients(&via_view, &r, &[&w_t]);
            assert!(max_diff(&want[1].t().unwrap(), &got[0]) < 1e-10);
        }
    }
}
