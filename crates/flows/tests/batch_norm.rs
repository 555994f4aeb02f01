//! BatchNorm's two modes (the conformance battery checks it in evaluation mode, where it is a
//! fixed bijection): batch statistics and exact round trips in training, running averages
//! that follow the data, and both kept by save/load.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{
    build_stack, Composed, Conditioning, Flow, FlowSpec, ParamStore, StackOptions,
};
use flowvae_nn::{seeded, standard_normal, Stream};

fn stack(store: &ParamStore, yaml: &str) -> Composed {
    let specs: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(
        serde_yaml::Deserializer::from_str(yaml),
    )
    .unwrap();
    let vb = store.var_builder(DType::F64, &Device::Cpu).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: 0,
    };
    build_stack(&specs, 3, store, vb, options).unwrap()
}

/// A batch `(n, 3)` with coordinate means (2, −1, 0.5) and standard deviations (3, 0.5, 1).
fn data(seed: u64, n: usize) -> Tensor {
    let noise = standard_normal(
        &mut seeded(seed, Stream::Scratch("bn")),
        (n, 3),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let scale = Tensor::new(&[[3.0f64, 0.5, 1.0]], &Device::Cpu).unwrap();
    let mean = Tensor::new(&[[2.0f64, -1.0, 0.5]], &Device::Cpu).unwrap();
    noise
        .broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&mean)
        .unwrap()
}

fn column_moments(t: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let mean = t.mean_keepdim(0).unwrap();
    let var = t
        .broadcast_sub(&mean)
        .unwrap()
        .sqr()
        .unwrap()
        .mean(0)
        .unwrap();
    (
        mean.squeeze(0).unwrap().to_vec1().unwrap(),
        var.to_vec1().unwrap(),
    )
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    d.max(0).unwrap().to_scalar().unwrap()
}

#[test]
fn training_mode_normalizes_each_batch_and_round_trips_it_exactly() {
    let store = ParamStore::new(0);
    let flow = stack(&store, "- batch_norm: {}");
    let x = data(1, 256);
    flow.set_training(true);
    let (z, density_log_det) = flow.inverse(&x, Conditioning::none()).unwrap();
    let (mean, var) = column_moments(&z);
    for c in 0..3 {
        assert!(
            mean[c].abs() < 1e-12 && (var[c] - 1.0).abs() < 1e-4,
            "{mean:?} {var:?}"
        );
    }
    let (back, sampling_log_det) = flow.forward(&z, Conditioning::none()).unwrap();
    assert!(max_diff(&back, &x) < 1e-12);
    let sum = (density_log_det + sampling_log_det).unwrap();
    assert!(max_diff(&sum, &sum.zeros_like().unwrap()) < 1e-12);
}

#[test]
fn running_averages_follow_the_data_and_evaluation_uses_them() {
    let store = ParamStore::new(0);
    let flow = stack(
        &store,
        "- affine_coupling: {hidden: [8]}\n- batch_norm: {momentum: 0.2}",
    );
    // The stack is in sampling order: BatchNorm is the first layer the data meet.
    let first = data(2, 512);
    // The stack passes the mode down: in evaluation mode (the default) the running averages
    // (0, 1) leave the first coordinate's mean of 2 in place.
    let (z_eval, _) = flow.inverse(&first, Conditioning::none()).unwrap();
    let running_mean = |store: &ParamStore| -> Vec<f64> {
        let var = store.var("flow.1.batch_norm.running_mean").unwrap();
        var.as_tensor().squeeze(0).unwrap().to_vec1().unwrap()
    };
    assert_eq!(
        running_mean(&store),
        vec![0.0; 3],
        "evaluation must not move them"
    );
    flow.set_training(true);
    flow.inverse(&first, Conditioning::none()).unwrap();
    let (batch_mean, _) = column_moments(&first);
    for (r, m) in running_mean(&store).iter().zip(&batch_mean) {
        assert!((r - 0.2 * m).abs() < 1e-12, "one step of momentum 0.2");
    }
    for seed in 3..60 {
        flow.inverse(&data(seed, 512), Conditioning::none())
            .unwrap();
    }
    let x = data(99, 512);
    let (z_train, _) = flow.inverse(&x, Conditioning::none()).unwrap();
    flow.set_training(false);
    let (z_eval_after, eval_log_det) = flow.inverse(&x, Conditioning::none()).unwrap();
    assert!(
        max_diff(&z_train, &z_eval_after) < 0.2,
        "running averages near the batch's"
    );
    assert!(
        max_diff(&z_eval, &z_eval_after) > 1.0,
        "training moved the averages"
    );
    let (back, sampling_log_det) = flow.forward(&z_eval_after, Conditioning::none()).unwrap();
    assert!(max_diff(&back, &x) < 1e-10);
    let sum = (eval_log_det + sampling_log_det).unwrap();
    assert!(max_diff(&sum, &sum.zeros_like().unwrap()) < 1e-10);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    store.save(&path).unwrap();
    let loaded = ParamStore::from_safetensors(&path, DType::F64, &Device::Cpu).unwrap();
    let again = stack(
        &loaded,
        "- affine_coupling: {hidden: [8]}\n- batch_norm: {momentum: 0.2}",
    );
    let (z_loaded, _) = again.inverse(&x, Conditioning::none()).unwrap();
    assert_eq!(max_diff(&z_loaded, &z_eval_after), 0.0);
}

#[test]
fn bad_momentum_names_the_field() {
    let specs: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(
        serde_yaml::Deserializer::from_str("- planar: {}\n- batch_norm: {momentum: 0}"),
    )
    .unwrap();
    let err = specs[1].validate("flow[1]", 3).unwrap_err().to_string();
    assert!(err.starts_with("flow[1].batch_norm.momentum"), "{err}");
}
