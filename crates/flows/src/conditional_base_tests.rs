use super::*;
use crate::bases::BaseSpec;
use crate::{perturb_parameters, ParamStore, LOG_2PI};
use flowvae_nn::{seeded, Stream};

const DIM: usize = 3;
const CONTEXT: usize = 2;

/// A conditional base of `spec` with every parameter, the context map included, perturbed.
fn conditional(spec: &BaseSpec) -> (ParamStore, ConditionalBase) {
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F64, &Device::Cpu).pp("base");
    let base = Base::new(spec, vb.clone(), DIM).unwrap();
    let conditional = ConditionalBase::new(base, vb, CONTEXT).unwrap();
    perturb_parameters(&store, 5, 0.4).unwrap();
    (store, conditional)
}

fn matrix(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2().unwrap()
}

fn points() -> (Tensor, Tensor) {
    let z = Tensor::new(&[[0.3f64, -1.0, 2.0], [0.0, 0.5, -0.25]], &Device::Cpu).unwrap();
    let c = Tensor::new(&[[1.0f64, 0.0], [-0.5, 2.0]], &Device::Cpu).unwrap();
    (z, c)
}

/// `shift_p(c) = Σ_j c_j W[j, p]`, in f64 loops.
fn shift(c: &[f64], w: &[Vec<f64>], p: usize) -> f64 {
    c.iter().zip(w).map(|(cj, row)| cj * row[p]).sum()
}

fn log_normal(z: f64, mean: f64, log_std: f64) -> f64 {
    let s = (z - mean) / log_std.exp();
    -0.5 * s * s - log_std - 0.5 * LOG_2PI
}

fn assert_close(got: &Tensor, want: &[f64]) {
    let got: Vec<f64> = got.to_vec1().unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn the_conditional_diagonal_matches_the_direct_formula() {
    let (_store, base) = conditional(&BaseSpec::Diagonal);
    let Base::Diagonal { mean, log_std } = base.base() else {
        panic!("not diagonal");
    };
    let (mean, log_std) = (&matrix(mean)[0], &matrix(log_std)[0]);
    let w = matrix(base.weight.as_ref().unwrap());
    let (z, c) = points();
    let (zs, cs) = (matrix(&z), matrix(&c));
    let want: Vec<f64> = (0..2)
        .map(|i| {
            (0..DIM)
                .map(|d| {
                    let m = mean[d] + shift(&cs[i], &w, d);
                    let s = log_std[d] + shift(&cs[i], &w, DIM + d);
                    log_normal(zs[i][d], m, s)
                })
                .sum()
        })
        .collect();
    assert_close(&base.log_prob(&z, Some(&c)).unwrap(), &want);
}

#[test]
fn the_conditional_mixture_matches_the_direct_formula() {
    let k = 3;
    let (_store, base) = conditional(&BaseSpec::Mixture { components: k });
    let Base::Mixture {
        logits,
        means,
        log_stds,
    } = base.base()
    else {
        panic!("not a mixture");
    };
    let (logits, means, log_stds) = (&matrix(logits)[0], matrix(means), matrix(log_stds));
    let w = matrix(base.weight.as_ref().unwrap());
    let (z, c) = points();
    let (zs, cs) = (matrix(&z), matrix(&c));
    let want: Vec<f64> = (0..2)
        .map(|i| {
            let l: Vec<f64> = (0..k).map(|j| logits[j] + shift(&cs[i], &w, j)).collect();
            let norm = l.iter().map(|v| v.exp()).sum::<f64>().ln();
            let density: f64 = (0..k)
                .map(|j| {
                    let log_component: f64 = (0..DIM)
                        .map(|d| {
                            let m = means[j][d] + shift(&cs[i], &w, k + j * DIM + d);
                            log_normal(zs[i][d], m, log_stds[j][d])
                        })
                        .sum();
                    (l[j] - norm + log_component).exp()
                })
                .sum();
            density.ln()
        })
        .collect();
    assert_close(&base.log_prob(&z, Some(&c)).unwrap(), &want);
}

/// Draws given a context have the mean that context gives the base.
#[test]
fn conditional_samples_follow_their_context() {
    let (_store, base) = conditional(&BaseSpec::Diagonal);
    let n = 20_000;
    let c = Tensor::new(&[[2.0f64, -1.0]], &Device::Cpu).unwrap();
    let mut rng = seeded(2, Stream::Scratch("conditional base"));
    let draws = base
        .sample(n, 1.0, &mut rng, (DType::F64, &Device::Cpu), Some(&c))
        .unwrap();
    let Base::Diagonal { mean, .. } = base.base() else {
        panic!("not diagonal");
    };
    let w = matrix(base.weight.as_ref().unwrap());
    let got: Vec<f64> = draws.mean(0).unwrap().to_vec1().unwrap();
    for (d, g) in got.iter().enumerate() {
        let want = matrix(mean)[0][d] + shift(&[2.0, -1.0], &w, d);
        assert!((g - want).abs() < 0.05, "{got:?}: dim {d} wants {want}");
    }
}

#[test]
fn a_missing_or_misshapen_context_is_an_error() {
    let (_store, base) = conditional(&BaseSpec::Mixture { components: 2 });
    let (z, _) = points();
    let err = base.log_prob(&z, None).unwrap_err().to_string();
    assert!(err.contains("needs a context of width 2"), "{err}");
    let wide = Tensor::zeros((2, 5), DType::F64, &Device::Cpu).unwrap();
    let err = base.log_prob(&z, Some(&wide)).unwrap_err().to_string();
    assert!(err.contains("got (2, 5)"), "{err}");
}

/// At initialisation the map is zero: the conditional base is the unconditional one.
#[test]
fn a_fresh_conditional_base_is_the_unconditional_one() {
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F64, &Device::Cpu);
    let spec = BaseSpec::Mixture { components: 2 };
    let base = ConditionalBase::new(Base::new(&spec, vb.clone(), DIM).unwrap(), vb, CONTEXT);
    let base = base.unwrap();
    let (z, c) = points();
    let gap = (base.log_prob(&z, Some(&c)).unwrap() - base.base().log_prob(&z).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(gap, 0.0);
}
