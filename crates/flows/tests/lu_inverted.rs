//! `lu_linear: {inverted: true}` is the same layer with its directions swapped: on the same
//! parameters its sampling direction is the plain layer's density direction and vice versa,
//! log-determinants included.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{build_stack, perturb_parameters, Conditioning, Flow, FlowSpec, ParamStore};
use flowvae_flows::{Composed, StackOptions};
use flowvae_nn::{seeded, standard_normal};

fn stack(yaml: &str) -> (ParamStore, Composed) {
    let de = serde_yaml::Deserializer::from_str(yaml);
    let specs: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap();
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F64, &Device::Cpu).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: 11,
    };
    let stack = build_stack(&specs, 6, &store, vb, options).unwrap();
    perturb_parameters(&store, 4, 0.3).unwrap();
    (store, stack)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn inverted_lu_swaps_the_directions_on_the_same_parameters() {
    let (_plain_store, plain) = stack("- lu_linear: {seed: 3}");
    let (_store, inverted) = stack("- lu_linear: {seed: 3, inverted: true}");
    let x = standard_normal(
        &mut seeded(1, flowvae_nn::Stream::Scratch("lu")),
        (5, 6),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let none = Conditioning::none;
    let (a, log_a) = inverted.forward(&x, none()).unwrap();
    let (b, log_b) = plain.inverse(&x, none()).unwrap();
    assert!(max_diff(&a, &b) < 1e-12 && max_diff(&log_a, &log_b) < 1e-12);
    let (c, log_c) = inverted.inverse(&x, none()).unwrap();
    let (d, log_d) = plain.forward(&x, none()).unwrap();
    assert!(max_diff(&c, &d) < 1e-12 && max_diff(&log_c, &log_d) < 1e-12);
    // Not the identity: the two directions differ.
    assert!(max_diff(&a, &d) > 1e-3);
}
