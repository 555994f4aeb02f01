//! Amortized parameters (an encoder's output) and shared conditioning rows give the same map
//! as the equivalent global or repeated inputs.

use super::*;

#[test]
fn prepared_amortized_parameters_give_the_same_map_and_gradients() {
    let max_diff = |a: &Tensor, b: &Tensor| -> f64 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar().unwrap()
    };
    let mut changed = Vec::new();
    for case in cases() {
        let (built, x) = prepared(&case, 3, 12);
        let Some(raw) = built.params.as_ref() else {
            continue;
        };
        let raw = Var::from_tensor(raw).unwrap();
        let run = |params: &Tensor| {
            let cond = Conditioning {
                params: Some(params),
                context: built.context.as_ref(),
            };
            let (y, log_det) = built.stack.forward(&x, cond).unwrap();
            let loss = (y.sum_all().unwrap() + log_det.sum_all().unwrap()).unwrap();
            let grad = loss
                .backward()
                .unwrap()
                .get(raw.as_tensor())
                .unwrap()
                .clone();
            (y, log_det, grad)
        };
        let ready = built.stack.prepare_amortized(raw.as_tensor()).unwrap();
        if max_diff(&ready, raw.as_tensor()) > 1e-3 {
            changed.push(case.yaml);
        }
        let (y0, ld0, g0) = run(raw.as_tensor());
        let (y1, ld1, g1) = run(&ready);
        assert!(max_diff(&y0, &y1) < 1e-10, "{}: output moved", case.yaml);
        assert!(max_diff(&ld0, &ld1) < 1e-10, "{}: log-det moved", case.yaml);
        assert!(max_diff(&g0, &g1) < 1e-8, "{}: gradient moved", case.yaml);
    }
    // Not vacuous: the Sylvester-orthogonal cases do replace their raw Q.
    assert!(
        changed.iter().any(|c| c.contains("sylvester_orthogonal")),
        "{changed:?}"
    );
}

/// Conditioning rows shared by `k` consecutive input rows give what repeating them gives.
#[test]
fn shared_conditioning_rows_equal_repeated_rows() {
    let k = 3;
    for case in cases() {
        let (built, _) = prepared(&case, 3, 13);
        if built.params.is_none() && built.context.is_none() {
            continue;
        }
        let x = inputs(
            case.domain,
            &mut seeded(13, flowvae_flows::Stream::Scratch("x")),
            5 * k,
            3,
        );
        let repeat = |t: &Tensor| flowvae_flows::expand_rows(t, 5 * k).unwrap();
        let (params, context) = (
            built.params.as_ref().map(repeat),
            built.context.as_ref().map(repeat),
        );
        let repeated = Conditioning {
            params: params.as_ref(),
            context: context.as_ref(),
        };
        let (y0, ld0) = built.stack.forward(&x, repeated).unwrap();
        let (y1, ld1) = built.stack.forward(&x, built.cond()).unwrap();
        let diff = |a: &Tensor, b: &Tensor| -> f64 {
            let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
            d.max(0).unwrap().to_scalar().unwrap()
        };
        assert!(
            diff(&y0, &y1) < 1e-12 && diff(&ld0, &ld1) < 1e-12,
            "{}",
            case.yaml
        );
    }
    let (built, _) = prepared(
        &real("- sylvester_triangular: {k: 1, amortized: true}"),
        3,
        13,
    );
    let x = inputs(
        Domain::Real,
        &mut seeded(13, flowvae_flows::Stream::Scratch("x")),
        7,
        3,
    );
    let err = built
        .stack
        .forward(&x, built.cond())
        .unwrap_err()
        .to_string();
    assert!(err.contains("must divide the batch of 7"), "{err}");
}
