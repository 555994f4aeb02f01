//! The gated convolutional encoder/decoder at small size: shapes, gradients, and learning.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{FlowSpec, ParamStore};
use flowvae_nn::{seeded, standard_normal, uniform};
use flowvae_vae::{bound_terms, Bound};
use flowvae_vae::{Architecture, ConvConfig, FlowVae, ModelConfig};

fn model(side: usize, flow: Vec<FlowSpec>) -> (ParamStore, FlowVae) {
    let store = ParamStore::new(1);
    let config = ModelConfig {
        latent: 4,
        architecture: Architecture::GatedConv,
        conv: ConvConfig {
            channels: 4,
            features: 16,
        },
        ..Default::default()
    };
    let model = FlowVae::new(
        &store,
        &config,
        &flow,
        side * side,
        1,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    (store, model)
}

fn images(n: usize, side: usize) -> Tensor {
    let u = uniform(
        &mut seeded(2, flowvae_flows::Stream::Scratch("x")),
        (n, side * side),
        0.0,
        1.0,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    u.ge(0.7).unwrap().to_dtype(DType::F32).unwrap()
}

#[test]
fn shapes_for_digits_and_mnist_sizes() {
    for side in [8, 28] {
        let (_, model) = model(side, Vec::new());
        let x = images(3, side);
        let enc = model.encoder.forward(&x).unwrap();
        assert_eq!(enc.q0.mu.dims(), &[3, 4]);
        let logits = model.decoder.forward(&enc.q0.mu).unwrap();
        assert_eq!(logits.dims(), &[3, side * side], "side {side}");
    }
}

#[test]
fn non_square_images_are_refused() {
    let store = ParamStore::new(1);
    let config = ModelConfig {
        architecture: Architecture::GatedConv,
        ..Default::default()
    };
    let err = FlowVae::new(&store, &config, &[], 60, 1, DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("square"), "{err}");
}

#[test]
fn every_parameter_learns_and_the_bound_improves() {
    let flow: Vec<FlowSpec> = vec![serde_yaml::from_str("!planar {k: 2}").unwrap()];
    let (store, model) = model(8, flow);
    let x = images(16, 8);
    let loss_at = |seed: u64| -> Tensor {
        let eps = standard_normal(
            &mut seeded(seed, flowvae_flows::Stream::Scratch("eps")),
            (16, 4),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        bound_terms(&model, &x, &eps, Bound::Elbo, 1, 1.0)
            .unwrap()
            .objective
            .mean_all()
            .unwrap()
            .neg()
            .unwrap()
    };
    let first: f32 = loss_at(0).to_scalar().unwrap();
    for step in 0..60 {
        let grads = loss_at(step).backward().unwrap();
        for (name, var) in store.named_vars() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            var.set(&(var.as_tensor() - (g * 0.05).unwrap()).unwrap())
                .unwrap();
        }
    }
    let last: f32 = loss_at(0).to_scalar().unwrap();
    assert!(last < first - 1.0, "-ELBO {first} -> {last}");
}
