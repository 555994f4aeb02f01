//! The flow conformance battery: every flow kind, global and amortized, and mixed
//! stacks pass the same checks, in f64.

use candle_core::{DType, Device, Tensor, Var};
use flowvae_flows::{
    build_stack, Composed, Conditioning, Flow, FlowDistribution, FlowSpec, Inverted, ParamStore,
    StackOptions,
};
use flowvae_flows::{check_composed, check_flow, perturb_parameters};
use flowvae_nn::{seeded, standard_normal, uniform, SeededRng};

const TOL: f64 = 1e-6;

mod amortized;
mod integral;

/// Which inputs a flow accepts.
#[derive(Clone, Copy, Debug)]
enum Domain {
    Real,
    UnitInterval,
    Positive,
}

struct Case {
    yaml: &'static str,
    /// Where inputs of the sampling direction live.
    domain: Domain,
    /// Where outputs live: the grid of the density integral.
    support: Domain,
}

const fn real(yaml: &'static str) -> Case {
    Case {
        yaml,
        domain: Domain::Real,
        support: Domain::Real,
    }
}

/// One entry per flow kind and parameterisation; the log-det check runs each at D = 2, 3, 17.
fn cases() -> Vec<Case> {
    vec![
        real("- planar: {k: 2, amortized: false}"),
        real("- planar: {k: 2, amortized: true}"),
        real("- radial: {k: 2, amortized: false}"),
        real("- radial: {k: 2, amortized: true}"),
        real("- sylvester_orthogonal: {k: 2, m: 2, amortized: false}"),
        real("- sylvester_orthogonal: {k: 2, amortized: true}"),
        real("- sylvester_householder: {k: 2, reflections: 2, amortized: false}"),
        real("- sylvester_householder: {k: 2, reflections: 3, amortized: true}"),
        real("- sylvester_triangular: {k: 2, amortized: false}"),
        real("- sylvester_triangular: {k: 3, amortized: true}"),
        real("- affine_coupling: {k: 2, hidden: [8]}"),
        real("- affine_coupling: {k: 2, hidden: [8, 8], activation: tanh, context: 2}"),
        real("- additive_coupling: {k: 2, hidden: [8]}"),
        real("- additive_coupling: {k: 3, hidden: [8], context: 2, scale: true}"),
        real("- lu_linear: {}"),
        real("- lu_linear: {inverted: true, seed: 3}"),
        real("- householder: {k: 2, amortized: false}"),
        real("- householder: {k: 3, amortized: true}"),
        real("- lu_linear: {seed: 5}\n- affine_coupling: {k: 1, hidden: [8]}\n- lu_linear: {}"),
        real("- maf: {k: 2, hidden: [8]}"),
        real("- iaf: {k: 2, hidden: [8], activation: elu, context: 2}"),
        real("- rq_coupling: {k: 2, hidden: [8], bins: 4}"),
        real("- rq_coupling: {k: 2, hidden: [8], activation: tanh, context: 2, bound: 1.0}"),
        real("- rq_maf: {k: 2, hidden: [8], bins: 5}"),
        real("- rq_iaf: {k: 2, hidden: [8], bins: 4, context: 2}"),
        real("- rq_iaf: {k: 1, hidden: [8], bound: 1.5}"),
        real("- rq_spline: {k: 2, bins: 4, amortized: false}"),
        real("- rq_spline: {k: 1, bins: 3, bound: 2.0, amortized: true}"),
        real("- act_norm: {}"),
        real("- batch_norm: {}"),
        real("- batch_norm: {momentum: 0.5}\n- rq_maf: {k: 1, hidden: [8]}\n- batch_norm: {}"),
        real("- affine:"),
        real("- leaky_relu: {slope: 0.3}"),
        Case { yaml: "- sigmoid: {}", domain: Domain::Real, support: Domain::UnitInterval },
        Case { yaml: "- logit: {}", domain: Domain::UnitInterval, support: Domain::Real },
        Case { yaml: "- exp: {}", domain: Domain::Real, support: Domain::Positive },
        Case { yaml: "- log: {}", domain: Domain::Positive, support: Domain::Real },
        real("- reverse: {}"),
        real("- permute: {seed: 3}"),
        // The mixed stacks of the issue: planar + coupling + Sylvester + ActNorm, and more.
        real("- planar: {k: 2}\n- affine_coupling: {k: 2, hidden: [8]}\n- sylvester_orthogonal: {k: 1}\n- act_norm: {}"),
        real("- act_norm: {}\n- maf: {k: 2, hidden: [8]}\n- permute: {}\n- affine_coupling: {k: 2, hidden: [8]}\n- radial: {k: 1}\n- planar: {k: 1}"),
    ]
}

struct Built {
    store: ParamStore,
    stack: Composed,
    params: Option<Tensor>,
    context: Option<Tensor>,
}

impl Built {
    fn cond(&self) -> Conditioning<'_> {
        Conditioning {
            params: self.params.as_ref(),
            context: self.context.as_ref(),
        }
    }
}

fn specs(yaml: &str) -> Vec<FlowSpec> {
    // Flow stacks are lists of single-key maps (`- planar: {k: 2}`), YAML's usual enum form.
    let de = serde_yaml::Deserializer::from_str(yaml);
    serde_yaml::with::singleton_map_recursive::deserialize(de)
        .unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn build_on(store: ParamStore, yaml: &str, dim: usize, batch: usize, seed: u64) -> Built {
    let dev = Device::Cpu;
    let vb = store.var_builder(DType::F64, &dev).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: 11,
    };
    let stack = build_stack(&specs(yaml), dim, &store, vb, options).unwrap();
    let mut rng = seeded(seed, flowvae_flows::Stream::Scratch("conditioning"));
    let p = stack.num_amortized_params();
    let params = (p > 0)
        .then(|| (standard_normal(&mut rng, (batch, p), DType::F64, &dev).unwrap() * 0.7).unwrap());
    let c = stack.context_dim();
    let context = (c > 0).then(|| standard_normal(&mut rng, (batch, c), DType::F64, &dev).unwrap());
    Built {
        store,
        stack,
        params,
        context,
    }
}

fn inputs(domain: Domain, rng: &mut SeededRng, batch: usize, dim: usize) -> Tensor {
    let dev = Device::Cpu;
    match domain {
        Domain::Real => standard_normal(rng, (batch, dim), DType::F64, &dev).unwrap(),
        Domain::UnitInterval => uniform(rng, (batch, dim), 0.05, 0.95, DType::F64, &dev).unwrap(),
        Domain::Positive => standard_normal(rng, (batch, dim), DType::F64, &dev)
            .unwrap()
            .exp()
            .unwrap(),
    }
}

/// Initial values are near the identity for several flows; move every parameter away from
/// them so the checks see a non-trivial map. Runs one forward first so ActNorm initialises.
fn perturb(built: &Built, x: &Tensor, seed: u64) {
    built.stack.forward(x, built.cond()).unwrap();
    perturb_parameters(&built.store, seed, 0.3).unwrap();
}

fn prepared(case: &Case, dim: usize, seed: u64) -> (Built, Tensor) {
    let batch = 5;
    let built = build_on(ParamStore::new(seed), case.yaml, dim, batch, seed);
    let x = inputs(
        case.domain,
        &mut seeded(seed, flowvae_flows::Stream::Scratch("x")),
        batch,
        dim,
    );
    perturb(&built, &x, seed);
    (built, x)
}

#[test]
fn log_det_matches_brute_force_jacobian_and_inverse_round_trips() {
    for case in cases() {
        for dim in [2, 3, 17] {
            let (built, x) = prepared(&case, dim, 1);
            let reports = check_composed(&built.stack, &x, built.cond()).unwrap();
            for r in &reports {
                assert!(
                    r.log_det_error < TOL,
                    "{} (D={dim}) layer {}: log-det error {:e}",
                    case.yaml,
                    r.name,
                    r.log_det_error
                );
                if let Some(e) = r.round_trip_error {
                    assert!(e < TOL, "{} layer {}: round trip {e:e}", case.yaml, r.name);
                }
                if let Some(e) = r.log_det_sum_error {
                    assert!(
                        e < TOL,
                        "{} layer {}: forward+inverse log-det {e:e}",
                        case.yaml,
                        r.name
                    );
                }
            }
            let stack = reports.last().unwrap();
            assert_eq!(
                stack.round_trip_error.is_some(),
                built.stack.is_invertible()
            );
        }
    }
}

#[test]
fn the_battery_catches_a_wrong_log_det() {
    /// Planar with the log-det of a wrong sign: the check must notice.
    #[derive(Debug)]
    struct Broken(Box<dyn Flow>);
    impl Flow for Broken {
        fn name(&self) -> String {
            "broken".into()
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn forward(
            &self,
            x: &Tensor,
            c: Conditioning<'_>,
        ) -> flowvae_flows::Result<(Tensor, Tensor)> {
            let (y, ld) = self.0.forward(x, c)?;
            Ok((y, ld.neg()?))
        }
    }
    let (built, x) = prepared(&real("- planar: {k: 1}"), 3, 2);
    let broken = Broken(Box::new(built.stack));
    let report = check_flow(&broken, &x, Conditioning::none()).unwrap();
    assert!(report.log_det_error > 1e-3, "{report:?}");
}

#[test]
fn composition_sums_log_dets_and_double_inversion_is_identity() {
    let (built, x) = prepared(
        &real(
            "- affine_coupling: {k: 1, hidden: [8]}\n- radial: {k: 1}\n- maf: {k: 1, hidden: [8]}",
        ),
        3,
        3,
    );
    let (y, total) = built.stack.forward(&x, built.cond()).unwrap();
    let mut h = x.clone();
    let mut parts = Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap();
    for layer in built.stack.layers() {
        let (next, ld) = layer.forward(&h, Conditioning::none()).unwrap();
        parts = (parts + ld).unwrap();
        h = next;
    }
    let diff = |a: &Tensor, b: &Tensor| -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(diff(&total, &parts) < 1e-12);
    assert!(diff(&y, &h) < 1e-12);

    let (other, _) = prepared(&real("- affine_coupling: {k: 2, hidden: [8]}"), 3, 4);
    let twice = Inverted::new(Box::new(Inverted::new(Box::new(other.stack))));
    let (built_again, _) = prepared(&real("- affine_coupling: {k: 2, hidden: [8]}"), 3, 4);
    let (a, la) = twice.forward(&x, Conditioning::none()).unwrap();
    let (b, lb) = built_again.stack.forward(&x, Conditioning::none()).unwrap();
    assert_eq!(diff(&a, &b), 0.0);
    assert_eq!(diff(&la, &lb), 0.0);
    let once = Inverted::new(Box::new(built_again.stack));
    let (back, lback) = once.forward(&a, Conditioning::none()).unwrap();
    assert!(
        diff(&back, &x) < 1e-9
            && diff(
                &(lback + la).unwrap(),
                &Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap()
            ) < 1e-9
    );
}

#[test]
fn every_parameter_and_amortized_input_receives_a_gradient() {
    for case in cases() {
        let (built, x) = prepared(&case, 3, 5);
        let params = built.params.as_ref().map(|p| Var::from_tensor(p).unwrap());
        let context = built.context.as_ref().map(|c| Var::from_tensor(c).unwrap());
        let cond = Conditioning {
            params: params.as_ref().map(|v| v.as_tensor()),
            context: context.as_ref().map(|v| v.as_tensor()),
        };
        let weights = standard_normal(
            &mut seeded(5, flowvae_flows::Stream::Scratch("w")),
            x.shape(),
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        let (y, log_det) = built.stack.forward(&x, cond).unwrap();
        let loss =
            ((y * weights).unwrap().sum_all().unwrap() + log_det.sum_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let named = built.store.named_vars();
        let amortized = params
            .iter()
            .map(|v| ("<amortized params>".to_string(), v.clone()));
        let ctx = context.iter().map(|v| ("<context>".to_string(), v.clone()));
        for (name, var) in named.into_iter().chain(amortized).chain(ctx) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", case.yaml));
            let norm: f64 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{}: gradient of {name} is {norm}",
                case.yaml
            );
        }
    }
}

/// `prepare_amortized` (done once per data point before `S` samples share the parameters)
/// must not change the map, its log-det or the gradients reaching the raw parameters.
#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in cases().iter().enumerate() {
        let (built, x) = prepared(case, 3, 6);
        let path = dir.path().join(format!("{i}.safetensors"));
        built.store.save(&path).unwrap();
        let loaded = ParamStore::from_safetensors(&path, DType::F64, &Device::Cpu).unwrap();
        let mut again = build_on(loaded, case.yaml, 3, 5, 6);
        again.params = built.params.clone();
        again.context = built.context.clone();
        let (a, la) = built.stack.forward(&x, built.cond()).unwrap();
        let (b, lb) = again.stack.forward(&x, again.cond()).unwrap();
        let a: Vec<Vec<f64>> = a.to_vec2().unwrap();
        let b: Vec<Vec<f64>> = b.to_vec2().unwrap();
        assert_eq!(a, b, "{}", case.yaml);
        assert_eq!(
            la.to_vec1::<f64>().unwrap(),
            lb.to_vec1::<f64>().unwrap(),
            "{}",
            case.yaml
        );
    }
}

#[test]
fn same_seed_gives_bit_identical_outputs() {
    for case in cases() {
        let run = |seed| {
            let (built, x) = prepared(&case, 3, seed);
            let (y, ld) = built.stack.forward(&x, built.cond()).unwrap();
            (y.to_vec2::<f64>().unwrap(), ld.to_vec1::<f64>().unwrap())
        };
        assert_eq!(run(8), run(8), "{}", case.yaml);
    }
}
