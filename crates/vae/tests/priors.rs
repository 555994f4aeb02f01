//! The priors of `model.prior`: parsed from YAML, `log p(z)` against direct formulas, gradients
//! into their parameters through the ELBO, draws, and bad settings named before training.

use candle_core::{DType, Device, Tensor};
use flowvae_flows::{DiagGaussian, FlowSpec, ParamStore};
use flowvae_nn::{seeded, standard_normal, Stream};
use flowvae_vae::{DecoderConfig, EncoderConfig, FlowVae, ModelConfig, Prior, PriorSpec, VaeError};

fn prior(yaml: &str) -> PriorSpec {
    let de = serde_yaml::Deserializer::from_str(yaml);
    serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap()
}

fn model(prior: PriorSpec, seed: u64) -> Result<(ParamStore, FlowVae), VaeError> {
    let store = ParamStore::new(seed);
    let config = ModelConfig {
        latent: 3,
        encoder: EncoderConfig {
            hidden: vec![16],
            ..Default::default()
        },
        decoder: DecoderConfig {
            hidden: vec![16],
            ..Default::default()
        },
        prior,
        ..Default::default()
    };
    let flow: Vec<FlowSpec> = Vec::new();
    let model = FlowVae::new(&store, &config, &flow, 6, seed, DType::F64, &Device::Cpu)?;
    Ok((store, model))
}

fn points(n: usize) -> Tensor {
    let mut rng = seeded(3, Stream::Scratch("z"));
    standard_normal(&mut rng, (n, 3), DType::F64, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().abs().unwrap();
    d.max(0).unwrap().to_scalar().unwrap()
}

#[test]
fn every_yaml_form_parses() {
    assert_eq!(prior("standard_normal"), PriorSpec::StandardNormal);
    assert_eq!(
        prior("{mixture: {components: 10}}"),
        PriorSpec::Mixture { components: 10 }
    );
    assert_eq!(
        prior("{vamp: {pseudo_inputs: 500}}"),
        PriorSpec::Vamp { pseudo_inputs: 500 }
    );
    let PriorSpec::Flow(stack) = prior("{flow: [{maf: {k: 2, hidden: [8]}}, {act_norm: {}}]}")
    else {
        panic!("a flow prior");
    };
    assert_eq!(stack.len(), 2);
}

/// The VampPrior is the mean of the encoder's Gaussians at its pseudo-inputs.
#[test]
fn vamp_log_prob_is_the_mean_of_the_encoders_gaussians() {
    let (store, model) = model(PriorSpec::Vamp { pseudo_inputs: 2 }, 1).unwrap();
    let z = points(7);
    let got = model.prior.log_prob(&z, &model.encoder).unwrap();
    let inputs = store.var("prior.pseudo_inputs").unwrap();
    let q = model.encoder.forward(inputs.as_tensor()).unwrap().q0;
    let component = |k: usize| {
        let g = DiagGaussian::new(
            q.mu.narrow(0, k, 1).unwrap().broadcast_as((7, 3)).unwrap(),
            q.log_var
                .narrow(0, k, 1)
                .unwrap()
                .broadcast_as((7, 3))
                .unwrap(),
        );
        g.log_prob(&z).unwrap().exp().unwrap()
    };
    let expected = ((component(0) + component(1)).unwrap() * 0.5)
        .unwrap()
        .log()
        .unwrap();
    assert!(max_diff(&got, &expected) < 1e-12);
}

/// Every prior's parameters get a gradient from the ELBO, and its draws are finite.
#[test]
fn prior_parameters_learn_through_the_elbo_and_draws_are_finite() {
    for (spec, name) in [
        (prior("{mixture: {components: 3}}"), "prior.mixture"),
        (prior("{vamp: {pseudo_inputs: 4}}"), "prior.pseudo_inputs"),
        (prior("{flow: [{maf: {k: 2, hidden: [8]}}]}"), "prior.flow"),
    ] {
        let (store, model) = model(spec, 2).unwrap();
        let x = flowvae_nn::uniform(
            &mut seeded(2, Stream::Scratch("x")),
            (5, 6),
            0.0,
            1.0,
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        let enc = model.encode(&x).unwrap();
        let eps = points(5);
        let terms = model.terms(&x, &enc, &eps).unwrap();
        let grads = terms
            .log_weight()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let prior_vars: Vec<_> = store
            .named_vars()
            .into_iter()
            .filter(|(n, _)| n.starts_with(name))
            .collect();
        assert!(!prior_vars.is_empty(), "{name}: no parameters");
        for (n, var) in prior_vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{n}: no gradient"));
            let norm: f64 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{n}: gradient {norm}");
        }
        let mut rng = seeded(4, Stream::PriorSamples);
        let z = model.sample_prior(9, &mut rng, &Device::Cpu).unwrap();
        assert_eq!(z.dims(), &[9, 3]);
        let z: Vec<Vec<f64>> = z.to_vec2().unwrap();
        assert!(z.iter().flatten().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn bad_priors_name_the_field() {
    for (yaml, field) in [
        (
            "{mixture: {components: 0}}",
            "model.prior.mixture.components",
        ),
        (
            "{vamp: {pseudo_inputs: 0}}",
            "model.prior.vamp.pseudo_inputs",
        ),
        ("{flow: []}", "model.prior.flow"),
        (
            "{flow: [{iaf: {k: 1, hidden: [8], context: 4}}]}",
            "model.prior.flow",
        ),
        (
            "{flow: [{planar: {k: 2, amortized: true}}]}",
            "model.prior.flow",
        ),
        (
            "{flow: [{sylvester_orthogonal: {k: 1, amortized: false}}]}",
            "model.prior.flow",
        ),
        ("{flow: [{planar: {k: 0}}]}", "model.prior.flow[0].planar.k"),
    ] {
        let err = model(prior(yaml), 0).unwrap_err().to_string();
        assert!(err.starts_with(field), "{yaml}: {err}");
    }
    // A standard prior is the standard normal density.
    let (_, standard) = model(PriorSpec::StandardNormal, 0).unwrap();
    let z = points(4);
    let log_p = standard.prior.log_prob(&z, &standard.encoder).unwrap();
    let expected = flowvae_flows::standard_normal_log_prob(&z).unwrap();
    assert_eq!(max_diff(&log_p, &expected), 0.0);
    assert!(matches!(standard.prior, Prior::Standard));
}
