//! Free bits: above the floor the objective is the ELBO's; below it the KL term passes no
//! gradient, so only the reconstruction moves the parameters.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{FlowSpec, ParamStore};
use flowvae_nn::{seeded, standard_normal, Stream};
use flowvae_vae::{bound_terms, with_free_bits, Bound, BoundTerms};
use flowvae_vae::{DecoderConfig, EncoderConfig, FlowVae, ModelConfig};

fn model() -> (ParamStore, FlowVae) {
    let store = ParamStore::new(3);
    let config = ModelConfig {
        latent: 3,
        encoder: EncoderConfig {
            hidden: vec![8],
            ..Default::default()
        },
        decoder: DecoderConfig {
            hidden: vec![8],
            ..Default::default()
        },
        ..Default::default()
    };
    let de = serde_yaml::Deserializer::from_str("- planar: {k: 2}");
    let flow: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap();
    let model = FlowVae::new(&store, &config, &flow, 6, 3, DType::F64, &Device::Cpu).unwrap();
    (store, model)
}

fn terms(model: &FlowVae) -> BoundTerms {
    let mut rng = seeded(1, Stream::Scratch("free-bits"));
    let x = standard_normal(&mut rng, (5, 6), DType::F64, &Device::Cpu).unwrap();
    let x = x.ge(0.0).unwrap().to_dtype(DType::F64).unwrap();
    let eps = standard_normal(&mut rng, (5, 3), DType::F64, &Device::Cpu).unwrap();
    bound_terms(model, &x, &eps, Bound::Elbo, 1, 0.7).unwrap()
}

/// The gradients of `−mean(objective)` for every parameter, flattened in the store's order.
fn gradients(store: &ParamStore, objective: &Tensor) -> Vec<f64> {
    let grads = objective
        .mean_all()
        .unwrap()
        .neg()
        .unwrap()
        .backward()
        .unwrap();
    let mut all = Vec::new();
    for var in store.vars() {
        match grads.get(var.as_tensor()) {
            Some(g) => all.extend(g.flatten_all().unwrap().to_vec1::<f64>().unwrap()),
            None => all.extend(std::iter::repeat_n(0.0, var.elem_count())),
        }
    }
    all
}

fn max_gap(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn below_the_floor_only_the_reconstruction_trains_and_above_it_the_elbo_does() {
    let (store, model) = model();
    let t = terms(&model);
    let mean_kl: f64 = t.kl.mean_all().unwrap().to_scalar().unwrap();
    assert!(
        mean_kl > 0.05,
        "the test needs a KL term to floor, got {mean_kl}"
    );

    // Above the floor: the ELBO objective itself, values and gradients.
    let above = with_free_bits(&t, mean_kl * 0.5, 0.7).unwrap();
    let gap = (&above - &t.objective)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap();
    assert!(gap.to_scalar::<f64>().unwrap() < 1e-12);
    let elbo = gradients(&store, &t.objective);
    assert!(max_gap(&gradients(&store, &above), &elbo) < 1e-12);

    // Below: −recon − β λ; the gradients are those of the reconstruction alone.
    let floor = mean_kl * 2.0;
    let below = with_free_bits(&t, floor, 0.7).unwrap();
    let expected = t
        .reconstruction
        .neg()
        .unwrap()
        .affine(1.0, -0.7 * floor)
        .unwrap();
    let gap = (&below - &expected).unwrap().abs().unwrap().max(0).unwrap();
    assert!(gap.to_scalar::<f64>().unwrap() < 1e-12);
    let reconstruction = gradients(&store, &t.reconstruction.neg().unwrap());
    let floored = gradients(&store, &below);
    assert!(max_gap(&floored, &reconstruction) < 1e-12);
    // And that differs from the ELBO's: the KL term did carry gradient.
    assert!(max_gap(&floored, &elbo) > 1e-6);
}
