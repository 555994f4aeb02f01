//! Coupling networks read only the conditioning half and predict parameters only for the
//! moving half. Runs trained before that held full-width networks (all `D` coordinates in,
//! with the moving ones zeroed; parameters for all `D` out); their weights must still load
//! and compute the same function, whatever the weights that never trained hold.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{build_stack, perturb_parameters, Composed, Conditioning, Flow, FlowSpec};
use flowvae_flows::{ParamStore, StackOptions};
use flowvae_nn::{seeded, standard_normal, uniform, SeededRng, Stream};

const DIM: usize = 5;
const CONTEXT: usize = 2;

fn specs(yaml: &str) -> Vec<FlowSpec> {
    let de = serde_yaml::Deserializer::from_str(yaml);
    serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap()
}

fn stack_on(store: &ParamStore, yaml: &str) -> Composed {
    let vb = store.var_builder(DType::F64, &Device::Cpu).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: 11,
    };
    build_stack(&specs(yaml), DIM, store, vb, options).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    d.max(0).unwrap().to_scalar().unwrap()
}

fn junk(rng: &mut SeededRng, shape: &[usize]) -> Tensor {
    uniform(rng, shape, -2.0, 2.0, DType::F64, &Device::Cpu).unwrap()
}

/// Coordinates that condition in coupling layer `j` (parity `j % 2`) and those that move.
fn halves(j: usize) -> (Vec<usize>, Vec<usize>) {
    (0..DIM).partition(|i| (i + j).is_multiple_of(2))
}

/// The full-width layout of a half-width layer's weights: what it holds at the places the
/// half-width network reads or writes, junk everywhere else. `last` is the output layer's
/// index (`fcL`).
fn widen(name: &str, t: &Tensor, last: usize, rng: &mut SeededRng) -> Tensor {
    let parts: Vec<&str> = name.split('.').collect();
    let net = parts.iter().position(|p| *p == "net").unwrap();
    let (conditioning, moving) = halves(parts[net - 1].parse().unwrap());
    let layer = parts[net + 1];
    if layer == "fc0" && parts[net + 2] == "weight" {
        // Columns: the conditioning coordinates, then the context.
        let rows = t.dim(0).unwrap();
        let mut wide = junk(rng, &[rows, DIM + CONTEXT]);
        for (c, &i) in conditioning.iter().enumerate() {
            wide = wide
                .slice_assign(&[0..rows, i..i + 1], &t.narrow(1, c, 1).unwrap())
                .unwrap();
        }
        let context = t.narrow(1, conditioning.len(), CONTEXT).unwrap();
        return wide
            .slice_assign(&[0..rows, DIM..DIM + CONTEXT], &context)
            .unwrap();
    }
    if layer != format!("fc{last}") {
        return t.clone();
    }
    // Rows: P blocks of the moving coordinates' outputs.
    let per_dim = t.dim(0).unwrap() / moving.len();
    let mut shape = t.dims().to_vec();
    shape[0] = per_dim * DIM;
    let mut wide = junk(rng, &shape);
    for p in 0..per_dim {
        for (m, &i) in moving.iter().enumerate() {
            let row = t.narrow(0, p * moving.len() + m, 1).unwrap();
            let row_range = p * DIM + i..p * DIM + i + 1;
            let ranges: Vec<_> = std::iter::once(row_range)
                .chain(shape[1..].iter().map(|&n| 0..n))
                .collect();
            wide = wide.slice_assign(&ranges, &row).unwrap();
        }
    }
    wide
}

#[test]
fn full_width_weights_load_and_compute_what_the_half_width_network_computes() {
    for yaml in [
        "- affine_coupling: {k: 2, hidden: [7], context: 2}",
        "- additive_coupling: {k: 2, hidden: [7, 6], context: 2}",
        "- rq_coupling: {k: 2, hidden: [7], context: 2, bins: 4}",
    ] {
        let half_store = ParamStore::new(0);
        let half = stack_on(&half_store, yaml);
        perturb_parameters(&half_store, 4, 0.3).unwrap();
        let last = if yaml.contains("[7, 6]") { 2 } else { 1 };
        let mut rng = seeded(5, Stream::Scratch("widen"));
        let wide: BTreeMap<String, Tensor> = half_store
            .named_vars()
            .into_iter()
            .map(|(name, var)| {
                let t = widen(&name, var.as_tensor(), last, &mut rng);
                (name, t)
            })
            .collect();
        let full_store = ParamStore::from_tensors(wide, DType::F64).unwrap();
        let full = stack_on(&full_store, yaml);
        // The full layout was recognised: its first layers read all D coordinates + context.
        let first = full_store
            .named_vars()
            .into_iter()
            .find(|(n, _)| n.ends_with("fc0.weight"));
        assert_eq!(first.unwrap().1.dims()[1], DIM + CONTEXT, "{yaml}");
        assert!(
            half_store.num_scalars() < full_store.num_scalars(),
            "{yaml}"
        );

        let mut data = seeded(1, Stream::Scratch("x"));
        let x = standard_normal(&mut data, (6, DIM), DType::F64, &Device::Cpu).unwrap();
        let x = (x * 0.5).unwrap();
        let c = standard_normal(&mut data, (6, CONTEXT), DType::F64, &Device::Cpu).unwrap();
        let cond = || Conditioning::context(Some(&c));
        let (y_half, log_half) = half.forward(&x, cond()).unwrap();
        let (y_full, log_full) = full.forward(&x, cond()).unwrap();
        assert!(max_diff(&y_half, &y_full) < 1e-12, "{yaml}");
        assert!(max_diff(&log_half, &log_full) < 1e-12, "{yaml}");
        assert!(
            max_diff(&y_half, &x) > 1e-3,
            "{yaml}: the layer moved nothing"
        );
        let (back, log_back) = full.inverse(&y_full, cond()).unwrap();
        assert!(max_diff(&back, &x) < 1e-9, "{yaml}");
        assert!(
            max_diff(
                &(log_back + log_full).unwrap(),
                &(&x * 0.0).unwrap().sum(1).unwrap()
            ) < 1e-9
        );
    }
}

/// `P · D_m` outputs from `D_c` inputs: at D = 784 this halves the network (nflows' size).
#[test]
fn a_new_coupling_network_reads_one_half_and_predicts_the_other() {
    let store = ParamStore::new(0);
    stack_on(&store, "- affine_coupling: {k: 2, hidden: [16]}");
    let mut shapes: Vec<(String, Vec<usize>)> = store
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect();
    shapes.retain(|(n, _)| n.ends_with("weight"));
    let dims: Vec<Vec<usize>> = shapes.into_iter().map(|(_, d)| d).collect();
    // Layer 0 conditions on the 3 even coordinates and moves 2; layer 1 the other way round.
    assert_eq!(dims, [vec![16, 3], vec![4, 16], vec![16, 2], vec![6, 16]]);
}
