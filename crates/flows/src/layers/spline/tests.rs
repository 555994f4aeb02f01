//! The spline's own property tests: the conformance battery checks the layers built on it;
//! these push the element-wise map to the places where spline implementations break.

use candle_core::{DType, Device, Tensor, Var};

use super::RqSpline;
use flowvae_nn::{seeded, standard_normal, uniform, SeededRng, Stream};

const SPLINE: RqSpline = RqSpline {
    bins: 6,
    bound: 3.0,
    min_bin_width: 1e-3,
    min_bin_height: 1e-3,
    min_derivative: 1e-3,
};

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn all_finite(t: &Tensor) -> bool {
    let values: Vec<f64> = t
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    values.iter().all(|v| v.is_finite())
}

/// Unconstrained parameters `(n, d, 3K−1)` at `scale`, with a tenth of them pinned to ±1e4.
fn raw_parameters(rng: &mut SeededRng, n: usize, d: usize, scale: f64, dtype: DType) -> Tensor {
    let shape = (n, d, SPLINE.params_per_dim());
    let raw = (standard_normal(rng, shape, DType::F64, &Device::Cpu).unwrap() * scale).unwrap();
    let pick = uniform(rng, shape, 0.0, 1.0, DType::F64, &Device::Cpu).unwrap();
    let extreme = (pick.ge(0.95).unwrap().to_dtype(DType::F64).unwrap()
        - pick.lt(0.05).unwrap().to_dtype(DType::F64).unwrap())
    .unwrap();
    let raw = pick
        .ge(0.95)
        .unwrap()
        .maximum(&pick.lt(0.05).unwrap())
        .unwrap()
        .where_cond(&(extreme * 1e4).unwrap(), &raw)
        .unwrap();
    raw.to_dtype(dtype).unwrap()
}

/// Unconstrained parameters `(n, d, 3K−1)`, N(0, scale²), in f64.
fn moderate_parameters(rng: &mut SeededRng, n: usize, d: usize, scale: f64) -> Tensor {
    let shape = (n, d, SPLINE.params_per_dim());
    (standard_normal(rng, shape, DType::F64, &Device::Cpu).unwrap() * scale).unwrap()
}

/// Inputs `(n, d)`: in range, in the tails, far outside, and exactly at the knots of `raw`
/// and at `±B`.
fn inputs(rng: &mut SeededRng, raw: &Tensor, dtype: DType) -> Tensor {
    let (n, d, _) = raw.dims3().unwrap();
    let b = SPLINE.bound;
    let spread = uniform(rng, (n, d), -1.5 * b, 1.5 * b, DType::F64, &Device::Cpu).unwrap();
    let knots = SPLINE.knots(&raw.to_dtype(DType::F64).unwrap()).unwrap().xs;
    let knot_at = knots.narrow(2, 2, 1).unwrap().squeeze(2).unwrap();
    let far = (spread.sign().unwrap() * 1e6).unwrap();
    let edge = (spread.sign().unwrap() * b).unwrap();
    let which = uniform(rng, (n, d), 0.0, 4.0, DType::F64, &Device::Cpu).unwrap();
    let x = which
        .lt(1.0)
        .unwrap()
        .where_cond(&knot_at, &spread)
        .unwrap();
    let x = which.ge(3.8).unwrap().where_cond(&far, &x).unwrap();
    let x = which
        .ge(3.6)
        .unwrap()
        .mul(&which.lt(3.8).unwrap())
        .unwrap()
        .where_cond(&edge, &x)
        .unwrap();
    x.to_dtype(dtype).unwrap()
}

#[test]
fn zero_parameters_give_the_identity_inside_and_outside() {
    let x = Tensor::new(&[[-7.0f64, -3.0, -1.2, 0.0, 2.9, 3.0, 40.0]], &Device::Cpu).unwrap();
    let raw = Tensor::zeros((1, 7, SPLINE.params_per_dim()), DType::F64, &Device::Cpu).unwrap();
    let (y, log_det) = SPLINE.forward(&x, &raw).unwrap();
    assert!(max_abs(&(&y - &x).unwrap()) < 1e-12, "{y}");
    assert!(max_abs(&log_det) < 1e-12, "{log_det}");
}

/// Worst errors of a round trip through the spline.
#[derive(Debug)]
struct RoundTrip {
    /// `max |x' − x| / (1 + |x|)` with `x' = f⁻¹(f(x))`.
    forward_error: f64,
    /// `max |f(x') − y| / (1 + |y|)`: the inverse's backward error.
    residual: f64,
    /// `max |log f'(x) + log (f⁻¹)'(y)|`.
    log_det_sum: f64,
    finite: bool,
    cases: usize,
}

fn round_trip(raw: &Tensor, x: &Tensor) -> RoundTrip {
    let (y, forward_log_det) = SPLINE.forward(x, raw).unwrap();
    let (back, inverse_log_det) = SPLINE.inverse(&y, raw).unwrap();
    let (again, _) = SPLINE.forward(&back, raw).unwrap();
    let relative = |a: &Tensor, b: &Tensor| {
        let scale = b.abs().unwrap().affine(1.0, 1.0).unwrap();
        max_abs(&((a - b).unwrap() / scale).unwrap())
    };
    RoundTrip {
        forward_error: relative(&back, x),
        residual: relative(&again, &y),
        log_det_sum: max_abs(&(&forward_log_det + &inverse_log_det).unwrap()),
        finite: [&y, &forward_log_det, &back, &inverse_log_det]
            .iter()
            .all(|t| all_finite(t)),
        cases: x.elem_count(),
    }
}

/// Thousands of seeded cases with moderate parameters: in f64 round trips and log-dets exact
/// to rounding; in f32 the inverse is backward stable (`f(f⁻¹(y)) = y` to rounding), and
/// exact while slopes stay moderate. (At scale 3 a bin's slope can reach 1e-6, where f32
/// cannot tell the points of a 0.1-wide interval apart; only the residual is asked there.)
#[test]
fn moderate_parameters_round_trip_to_rounding() {
    let mut rng = seeded(0, Stream::Scratch("spline moderate"));
    for dtype in [DType::F64, DType::F32] {
        for scale in [0.1, 1.0, 3.0] {
            let raw = moderate_parameters(&mut rng, 1000, 4, scale)
                .to_dtype(dtype)
                .unwrap();
            let trip = round_trip(&raw, &inputs(&mut rng, &raw, dtype));
            assert!(trip.finite && trip.cases == 4000, "{trip:?}");
            let (forward, residual) = match dtype {
                DType::F64 => (1e-9, 1e-14),
                _ if scale <= 1.0 => (1e-3, 1e-5),
                _ => (f64::INFINITY, 1e-5),
            };
            assert!(
                trip.forward_error < forward
                    && trip.log_det_sum < forward
                    && trip.residual < residual,
                "{dtype:?} scale {scale}: {trip:?}"
            );
        }
    }
}

/// Thousands of seeded cases per scale with a tenth of the parameters at ±1e4, in f64 and
/// f32: everything stays finite. In f64 the inverse is backward stable (`f(f⁻¹(y)) = y` to
/// the rounding the slopes magnify) and forward errors stay within what the conditioning
/// costs: where a knot's derivative is ~1e-3 the inverse behaves like a square root. In f32
/// such splines are not numerically injective (slopes from 1e-8 to 1e4 in one bin), so only
/// finiteness is asked there.
#[test]
fn extreme_parameters_stay_finite_and_round_trip_in_f64() {
    let mut rng = seeded(0, Stream::Scratch("spline property"));
    let mut cases = 0;
    for dtype in [DType::F64, DType::F32] {
        for scale in [0.1, 1.0, 10.0, 1e4] {
            let raw = raw_parameters(&mut rng, 500, 4, scale, dtype);
            let trip = round_trip(&raw, &inputs(&mut rng, &raw, dtype));
            assert!(trip.finite, "{dtype:?} scale {scale}: not finite");
            let bounded =
                trip.residual < 1e-9 && trip.forward_error < 1e-5 && trip.log_det_sum < 1e-4;
            assert!(dtype == DType::F32 || bounded, "scale {scale}: {trip:?}");
            cases += trip.cases;
        }
    }
    assert!(cases >= 16_000, "{cases}");
}

/// `log y'(x)` equals the log of autograd's derivative, at random points, at the knots and at
/// the bound, and the gradients with respect to the parameters are finite even at ±1e4.
#[test]
fn log_det_matches_the_autograd_derivative_and_gradients_stay_finite() {
    let mut rng = seeded(1, Stream::Scratch("spline derivative"));
    for scale in [1.0, 1e4] {
        let raw = Var::from_tensor(&raw_parameters(&mut rng, 200, 3, scale, DType::F64)).unwrap();
        let x = Var::from_tensor(&inputs(&mut rng, raw.as_tensor(), DType::F64)).unwrap();
        let (y, log_det) = SPLINE.forward(x.as_tensor(), raw.as_tensor()).unwrap();
        assert!(finite_gradient(&y, &log_det, &raw), "scale {scale}");
        let derivative = y.sum_all().unwrap().backward().unwrap();
        let derivative = derivative.get(x.as_tensor()).unwrap();
        let error = max_abs(&(derivative.log().unwrap() - &log_det).unwrap());
        // At ±1e4 derivatives span 1e-3..1e4 within a bin: autograd's rounding grows with it.
        let tolerance = if scale > 1.0 { 1e-6 } else { 1e-9 };
        assert!(error < tolerance, "scale {scale}: log-det error {error:e}");

        let (back, inverse_log_det) = SPLINE.inverse(&y.detach(), raw.as_tensor()).unwrap();
        assert!(
            finite_gradient(&back, &inverse_log_det, &raw),
            "scale {scale}"
        );
    }
}

/// Whether the gradient of `Σ out + Σ log_det` with respect to `raw` is finite everywhere.
fn finite_gradient(out: &Tensor, log_det: &Tensor, raw: &Var) -> bool {
    let loss = (out.sum_all().unwrap() + log_det.sum_all().unwrap()).unwrap();
    all_finite(loss.backward().unwrap().get(raw.as_tensor()).unwrap())
}

#[test]
fn the_spline_is_increasing_and_maps_the_interval_onto_itself() {
    let mut rng = seeded(2, Stream::Scratch("spline monotone"));
    let raw = raw_parameters(&mut rng, 1, 5, 3.0, DType::F64);
    let grid: Vec<f64> = (0..=2000).map(|i| -3.0 + 6.0 * i as f64 / 2000.0).collect();
    let x = Tensor::from_vec(grid.clone(), (2001, 1), &Device::Cpu)
        .unwrap()
        .broadcast_as((2001, 5))
        .unwrap()
        .contiguous()
        .unwrap();
    let (y, _) = SPLINE.forward(&x, &raw).unwrap();
    let y: Vec<Vec<f64>> = y.to_vec2().unwrap();
    for coordinate in 0..5 {
        assert!((y[0][coordinate] + 3.0).abs() < 1e-14);
        assert!((y[2000][coordinate] - 3.0).abs() < 1e-14);
        assert!(y.windows(2).all(|w| w[1][coordinate] > w[0][coordinate]));
    }
}

#[test]
fn bad_settings_name_the_field() {
    for (spline, field) in [
        (RqSpline { bins: 1, ..SPLINE }, "s.bins"),
        (
            RqSpline {
                bound: 0.0,
                ..SPLINE
            },
            "s.bound",
        ),
        (
            RqSpline {
                bound: f64::NAN,
                ..SPLINE
            },
            "s.bound",
        ),
        (
            RqSpline {
                min_bin_width: 0.1,
                ..SPLINE
            },
            "s.min_bin_width",
        ),
        (
            RqSpline {
                min_bin_height: -1.0,
                ..SPLINE
            },
            "s.min_bin_height",
        ),
        (
            RqSpline {
                min_derivative: 1.0,
                ..SPLINE
            },
            "s.min_derivative",
        ),
    ] {
        let err = spline.validate("s").unwrap_err().to_string();
        assert!(err.starts_with(field), "{err}");
    }
    assert!(SPLINE.validate("s").is_ok());
}
