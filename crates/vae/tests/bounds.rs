//! The VAE's estimators against quantities known in closed form.
#![allow(clippy::needless_range_loop)] // explicit indices mirror the matrix formulas

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{Flow, FlowSpec, ParamStore};
use flowvae_nn::{seeded, standard_normal};
use flowvae_vae::{bound_terms, Bound};
use flowvae_vae::{log_likelihood, DecoderConfig, EncoderConfig, FlowVae, Likelihood, ModelConfig};

fn specs(yaml: &str) -> Vec<FlowSpec> {
    let de = serde_yaml::Deserializer::from_str(yaml);
    serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap()
}

fn small_model(flow: &str, likelihood: Likelihood, seed: u64) -> (ParamStore, FlowVae) {
    let store = ParamStore::new(seed);
    let config = ModelConfig {
        latent: 3,
        encoder: EncoderConfig {
            hidden: vec![16],
            ..Default::default()
        },
        decoder: DecoderConfig {
            hidden: vec![16],
            likelihood,
            ..Default::default()
        },
        ..Default::default()
    };
    let model = FlowVae::new(
        &store,
        &config,
        &specs(flow),
        6,
        seed,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    (store, model)
}

fn data(seed: u64, n: usize) -> Tensor {
    let u = flowvae_nn::uniform(
        &mut seeded(seed, flowvae_flows::Stream::Scratch("x")),
        (n, 6),
        0.0,
        1.0,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    u.ge(0.5).unwrap().to_dtype(DType::F64).unwrap()
}

fn mean(t: &Tensor) -> f64 {
    t.mean_all().unwrap().to_scalar().unwrap()
}

#[test]
fn with_no_flow_the_elbo_matches_the_analytic_kl_elbo() {
    let (_, model) = small_model("[]", Likelihood::Bernoulli, 1);
    let x = data(1, 4);
    let k = 20_000;
    let eps = standard_normal(
        &mut seeded(2, flowvae_flows::Stream::Scratch("eps")),
        (4 * k, 3),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let terms = bound_terms(&model, &x, &eps, Bound::Elbo, k, 1.0).unwrap();
    let enc = model.encoder.forward(&x).unwrap();
    let analytic_kl = enc.q0.kl_to_standard_normal().unwrap();
    let mc: Vec<f64> = terms.kl.to_vec1().unwrap();
    let exact: Vec<f64> = analytic_kl.to_vec1().unwrap();
    for (m, e) in mc.iter().zip(&exact) {
        // The MC KL's std over 20k draws is well under 0.02 for this small posterior.
        assert!((m - e).abs() < 0.03, "MC KL {m} vs analytic {e}");
    }
    let neg_elbo: Vec<f64> = terms.neg_elbo.to_vec1().unwrap();
    let recon: Vec<f64> = terms.reconstruction.to_vec1().unwrap();
    for ((ne, r), e) in neg_elbo.iter().zip(&recon).zip(&exact) {
        assert!((ne - (r + e)).abs() < 0.03);
    }
}

#[test]
fn the_importance_weighted_bound_is_tighter_and_grows_with_k() {
    let (_, model) = small_model("- planar: {k: 2}", Likelihood::Bernoulli, 3);
    let x = data(3, 8);
    let bound_for = |k: usize| -> f64 {
        let reps = 400;
        let xr = flowvae_vae::repeat_rows(&x, reps).unwrap();
        let eps = standard_normal(
            &mut seeded(k as u64, flowvae_flows::Stream::Scratch("eps")),
            (8 * reps * k, 3),
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        mean(
            &bound_terms(&model, &xr, &eps, Bound::ImportanceWeighted, k, 1.0)
                .unwrap()
                .objective,
        )
    };
    let elbo = {
        let eps = standard_normal(
            &mut seeded(9, flowvae_flows::Stream::Scratch("eps")),
            (8 * 4000, 3),
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        -mean(
            &bound_terms(&model, &x, &eps, Bound::Elbo, 4000, 1.0)
                .unwrap()
                .neg_elbo,
        )
    };
    let (iw1, iw5, iw50) = (bound_for(1), bound_for(5), bound_for(50));
    assert!(
        (iw1 - elbo).abs() < 0.05,
        "IW with K=1 is the ELBO: {iw1} vs {elbo}"
    );
    assert!(
        iw5 > elbo + 0.01 && iw50 > iw5 + 0.01,
        "ELBO {elbo}, IW5 {iw5}, IW50 {iw50}"
    );
}

/// Sets a variable of the store to the given row-major values.
fn set(store: &ParamStore, name: &str, values: &[f64]) {
    let var = store.var(name).unwrap_or_else(|| panic!("no {name}"));
    let t = Tensor::from_vec(values.to_vec(), var.shape(), var.device()).unwrap();
    var.set(&t).unwrap();
}

#[test]
fn the_nll_estimator_recovers_a_linear_gaussian_log_likelihood() {
    // p(z) = N(0, I₂), p(x|z) = N(Wz + b, diag σ²): log p(x) = log N(x; b, WWᵀ + diag σ²).
    let store = ParamStore::new(0);
    let config = ModelConfig {
        latent: 2,
        encoder: EncoderConfig {
            hidden: vec![],
            ..Default::default()
        },
        decoder: DecoderConfig {
            hidden: vec![],
            likelihood: Likelihood::Gaussian,
            ..Default::default()
        },
        ..Default::default()
    };
    let model = FlowVae::new(&store, &config, &[], 3, 0, DType::F64, &Device::Cpu).unwrap();
    let w = [[1.0, 0.5], [-0.3, 0.8], [0.2, -1.1]];
    let b = [0.1, -0.2, 0.3];
    let sigma = [0.5, 0.7, 0.6];
    set(&store, "decoder.out.weight", &w.concat());
    set(&store, "decoder.out.bias", &b);
    set(&store, "decoder.log_scale", &sigma.map(f64::ln));
    // Exact posterior precision P = I + Wᵀ D⁻¹ W; the proposal uses its mean and a wider
    // diagonal variance, so the estimator has work to do.
    let mut p = [[1.0, 0.0], [0.0, 1.0]];
    for i in 0..2 {
        for j in 0..2 {
            p[i][j] += (0..3)
                .map(|r| w[r][i] * w[r][j] / sigma[r].powi(2))
                .sum::<f64>();
        }
    }
    let det = p[0][0] * p[1][1] - p[0][1] * p[1][0];
    let cov = [
        [p[1][1] / det, -p[0][1] / det],
        [-p[1][0] / det, p[0][0] / det],
    ];
    let mut gain = [[0.0; 3]; 2]; // Σ Wᵀ D⁻¹
    for i in 0..2 {
        for r in 0..3 {
            gain[i][r] = (0..2).map(|j| cov[i][j] * w[r][j]).sum::<f64>() / sigma[r].powi(2);
        }
    }
    let gain_b: Vec<f64> = (0..2)
        .map(|i| -(0..3).map(|r| gain[i][r] * b[r]).sum::<f64>())
        .collect();
    set(&store, "encoder.mu.weight", &gain.concat());
    set(&store, "encoder.mu.bias", &gain_b);
    set(&store, "encoder.log_var.weight", &[0.0; 6]);
    set(
        &store,
        "encoder.log_var.bias",
        &[cov[0][0].ln() + 0.4, cov[1][1].ln() + 0.4],
    );

    let xs = [[0.3, -0.5, 1.2], [1.5, 0.7, -0.9], [-2.0, 0.1, 0.4]];
    let x = Tensor::new(&xs, &Device::Cpu).unwrap();
    let estimates = log_likelihood(
        &model,
        &x,
        5000,
        1000,
        &mut seeded(4, flowvae_flows::Stream::Scratch("nll")),
    )
    .unwrap();
    for (xi, est) in xs.iter().zip(&estimates) {
        let exact = linear_gaussian_log_density(xi, &w, &b, &sigma);
        assert!(
            (est - exact).abs() < 0.05,
            "x = {xi:?}: estimate {est}, exact {exact}"
        );
    }
}

/// `log N(x; b, WWᵀ + diag σ²)` for 3-D x, by explicit 3×3 algebra.
fn linear_gaussian_log_density(
    x: &[f64; 3],
    w: &[[f64; 2]; 3],
    b: &[f64; 3],
    sigma: &[f64; 3],
) -> f64 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] =
                w[i][0] * w[j][0] + w[i][1] * w[j][1] + if i == j { sigma[i].powi(2) } else { 0.0 };
        }
    }
    let det = c[0][0] * (c[1][1] * c[2][2] - c[1][2] * c[2][1])
        - c[0][1] * (c[1][0] * c[2][2] - c[1][2] * c[2][0])
        + c[0][2] * (c[1][0] * c[2][1] - c[1][1] * c[2][0]);
    let mut inv = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            let (r1, r2) = ((j + 1) % 3, (j + 2) % 3);
            let (c1, c2) = ((i + 1) % 3, (i + 2) % 3);
            inv[i][j] = (c[r1][c1] * c[r2][c2] - c[r1][c2] * c[r2][c1]) / det;
        }
    }
    let d: Vec<f64> = (0..3).map(|i| x[i] - b[i]).collect();
    let quad: f64 = (0..3)
        .map(|i| (0..3).map(|j| d[i] * inv[i][j] * d[j]).sum::<f64>())
        .sum();
    -0.5 * (3.0 * (2.0 * std::f64::consts::PI).ln() + det.ln() + quad)
}

#[test]
fn the_encoder_heads_fit_any_stack() {
    let flow = "- planar: {k: 8}\n- affine_coupling: {k: 4, hidden: [8], context: 5}\n- iaf: {k: 1, hidden: [8], context: 5}";
    let (store, model) = small_model(flow, Likelihood::Bernoulli, 5);
    assert_eq!(model.flow.num_amortized_params(), 8 * (2 * 3 + 1));
    assert_eq!(model.flow.context_dim(), 5);
    let x = data(5, 4);
    let eps = standard_normal(
        &mut seeded(5, flowvae_flows::Stream::Scratch("eps")),
        (4 * 2, 3),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let terms = bound_terms(&model, &x, &eps, Bound::Elbo, 2, 0.5).unwrap();
    let loss = terms.objective.neg().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in store.named_vars() {
        assert!(
            grads.get(var.as_tensor()).is_some(),
            "no gradient reaches {name}"
        );
    }
    assert!(
        store.var("encoder.flow_params.weight").is_some()
            && store.var("encoder.context.weight").is_some()
    );
}

#[test]
fn encoding_once_per_image_equals_replicating_the_image() {
    // Encoding once shares each image's flow parameters and context among its samples (the
    // flows' shared-row path); replicating runs every row on its own copy.
    let stacks = [
        "- planar: {k: 2}",
        "- radial: {k: 2}",
        "- sylvester_orthogonal: {k: 2, m: 2}",
        "- sylvester_householder: {k: 2, reflections: 2}",
        "- sylvester_triangular: {k: 2}",
        "- iaf: {k: 2, hidden: [6], context: 4}",
        "- affine_coupling: {k: 2, hidden: [6], context: 4}\n- planar: {k: 1}",
    ];
    for stack in stacks {
        let (_, model) = small_model(stack, Likelihood::Bernoulli, 7);
        let x = data(7, 3);
        let once = log_likelihood(
            &model,
            &x,
            60,
            25,
            &mut seeded(1, flowvae_flows::Stream::Scratch("nll")),
        )
        .unwrap();
        let replicated = flowvae_vae::log_likelihood_replicated(
            &model,
            &x,
            60,
            25,
            &mut seeded(1, flowvae_flows::Stream::Scratch("nll")),
        )
        .unwrap();
        for (a, b) in once.iter().zip(&replicated) {
            assert!((a - b).abs() < 1e-9, "{stack}: {a} vs {b}");
        }
    }
}
