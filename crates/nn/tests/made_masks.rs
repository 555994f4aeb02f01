//! Masked dense layers with MADE-sized masks (large and nested, so the products run by the
//! mask's sorted staircase and skip its zeros) against `x (W ⊙ M)ᵀ + b` composed from candle's
//! ops: values and the gradients of every input, in f64.

use candle_core::{DType, Device, Tensor, Var};
use flowvae_nn::{seeded, standard_normal, Linear, ParamStore, Stream};

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

/// Output `o` sees input `i` when `deg(i) ≤ deg(o)` (`<` if strict), as a `(out, in)` tensor.
fn made_mask(out_degrees: &[usize], in_degrees: &[usize], strict: bool) -> Tensor {
    let values: Vec<f64> = out_degrees
        .iter()
        .flat_map(|&o| {
            in_degrees
                .iter()
                .map(move |&i| f64::from(u8::from(if strict { o > i } else { o >= i })))
        })
        .collect();
    Tensor::from_vec(values, (out_degrees.len(), in_degrees.len()), &Device::Cpu).unwrap()
}

#[test]
fn made_layers_skip_their_masked_zeros_without_changing_values_or_gradients() {
    let (dim, hidden, batch) = (300, 400, 23);
    let inputs: Vec<usize> = (1..=dim).collect();
    let units: Vec<usize> = (0..hidden).map(|k| k % (dim - 1) + 1).collect();
    let outputs: Vec<usize> = inputs.iter().chain(&inputs).copied().collect();
    let masks = [
        ("hidden", made_mask(&units, &inputs, false)),
        ("output", made_mask(&outputs, &units, true)),
    ];
    let mut rng = seeded(3, Stream::Scratch("made-masks"));
    for (name, mask) in masks {
        let store = ParamStore::new(7);
        let layer =
            Linear::masked(store.var_builder(DType::F64, &Device::Cpu), mask.clone()).unwrap();
        let (w, b) = (store.var("weight").unwrap(), store.var("bias").unwrap());
        let (out, inp) = mask.dims2().unwrap();
        let x = Var::from_tensor(
            &standard_normal(&mut rng, (batch, inp), DType::F64, &Device::Cpu).unwrap(),
        )
        .unwrap();
        let r = standard_normal(&mut rng, (batch, out), DType::F64, &Device::Cpu).unwrap();
        for relu in [false, true] {
            let masked = (w.as_tensor() * &mask).unwrap();
            let plain = x
                .as_tensor()
                .matmul(&masked.t().unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            let plain = if relu { plain.relu().unwrap() } else { plain };
            let fast = match relu {
                true => layer.forward_relu(x.as_tensor()).unwrap(),
                false => layer.forward(x.as_tensor()).unwrap(),
            };
            let diff = max_diff(&plain, &fast);
            assert!(diff < 1e-10, "{name} values differ by {diff} (relu {relu})");
            let want = (&plain * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            // The second backward over the same graph no longer has the forward's kept weight.
            for pass in 0..2 {
                let got = (&fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
                for (what, var) in [("x", &x), ("W", &w), ("b", &b)] {
                    let diff = max_diff(
                        want.get(var.as_tensor()).unwrap(),
                        got.get(var.as_tensor()).unwrap(),
                    );
                    assert!(
                        diff < 1e-10,
                        "{name}: ∂{what} differs by {diff} (relu {relu}, pass {pass})"
                    );
                }
            }
        }
    }
}
