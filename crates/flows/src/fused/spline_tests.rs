//! The fused spline against the composition of candle ops it replaces, in value and gradient,
//! in both directions: inputs in the tails, far outside, exactly at knots and at `±B`;
//! parameters shared by all rows (`R = 1`) or one row each; moderate and extreme (±1e4).

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;

use super::spline::{rq_spline, Direction, Knots};
use crate::layers::spline::RqSpline;
use flowvae_nn::{seeded, standard_normal, SeededRng, Stream};

const SPLINES: [RqSpline; 2] = [
    RqSpline {
        bins: 6,
        bound: 3.0,
        min_bin_width: 1e-3,
        min_bin_height: 1e-3,
        min_derivative: 1e-3,
    },
    RqSpline {
        bins: 3,
        bound: 1.5,
        min_bin_width: 0.05,
        min_bin_height: 0.01,
        min_derivative: 0.2,
    },
];

const DIRECTIONS: [Direction; 2] = [Direction::Forward, Direction::Inverse];

/// Parameters `(rows, d, 3K−1)` in f64, N(0, scale²), a tenth pinned to ±1e4 when `extreme`.
fn parameters(rng: &mut SeededRng, spline: &RqSpline, shape: (usize, usize), scale: f64) -> Tensor {
    let (rows, d) = shape;
    let p = spline.params_per_dim();
    let normal = standard_normal(rng, rows * d * p, DType::F64, &Device::Cpu).unwrap();
    let values: Vec<f64> = normal
        .to_vec1::<f64>()
        .unwrap()
        .into_iter()
        .map(|z| match rng.random::<f64>() {
            u if scale > 1.0 && u < 0.05 => -1e4,
            u if scale > 1.0 && u > 0.95 => 1e4,
            _ => z * scale,
        })
        .collect();
    Tensor::from_vec(values, (rows, d, p), &Device::Cpu).unwrap()
}

/// Inputs `(n, d)` for `raw` `(R, d, 3K−1)`: some at `±1e6`, the rest spread over
/// `[−1.5B, 1.5B]`, and with `exact`, a quarter exactly at a knot of the element's spline
/// (x knots forward, y knots inverse, the ends included) and some at `±B`, except `B` for the
/// inverse (see [`inverse_at_the_top_end_keeps_its_gradient`]).
fn inputs(
    rng: &mut SeededRng,
    spline: &RqSpline,
    raw: &Tensor,
    n: usize,
    (dir, exact): (Direction, bool),
) -> Tensor {
    let (rows, d, _) = raw.dims3().unwrap();
    let raw: Vec<f64> = raw.flatten_all().unwrap().to_vec1().unwrap();
    let p = spline.params_per_dim();
    let b = spline.bound;
    let mut knots = Knots::new(*spline);
    let mut values = Vec::with_capacity(n * d);
    for r in 0..n {
        for j in 0..d {
            let e = (if rows == 1 { 0 } else { r }) * d + j;
            knots.fill(&raw[e * p..(e + 1) * p]);
            let edges = match dir {
                Direction::Forward => &knots.xs,
                Direction::Inverse => &knots.ys,
            };
            let top = usize::from(dir == Direction::Forward);
            let sign = if rng.random::<bool>() && top == 1 {
                1.0
            } else {
                -1.0
            };
            values.push(match rng.random::<f64>() {
                u if exact && u < 0.25 => edges[rng.random_range(0..edges.len() - 1 + top)],
                u if exact && u < 0.3 => sign * b,
                u if u < 0.35 => sign * 1e6,
                _ => rng.random_range(-1.5 * b..1.5 * b),
            });
        }
    }
    Tensor::from_vec(values, (n, d), &Device::Cpu).unwrap()
}

/// `[out, log-det, ∂L/∂v, ∂L/∂raw]` with `L = Σ out·a + Σ log-det·b`, fused or composed.
fn evaluate(
    spline: &RqSpline,
    dir: Direction,
    (v, raw): (&Tensor, &Tensor),
    (a, b): (&Tensor, &Tensor),
    fused: bool,
) -> [Tensor; 4] {
    let (v, raw) = (Var::from_tensor(v).unwrap(), Var::from_tensor(raw).unwrap());
    let (out, log_det) = match (fused, dir) {
        (true, _) => rq_spline(spline, &v, &raw, dir).unwrap(),
        (false, Direction::Forward) => spline.composed_forward(&v, &raw).unwrap(),
        (false, Direction::Inverse) => spline.composed_inverse(&v, &raw).unwrap(),
    };
    assert!(
        out.is_contiguous() && log_det.is_contiguous(),
        "as the composition's"
    );
    let weighted = |t: &Tensor, w: &Tensor| (t * w.to_dtype(t.dtype()).unwrap()).unwrap();
    let loss =
        (weighted(&out, a).sum_all().unwrap() + weighted(&log_det, b).sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let g_v = grads.get(&v).unwrap().clone();
    let g_raw = grads.get(&raw).unwrap().clone();
    [out, log_det, g_v, g_raw].map(|t| t.to_dtype(DType::F64).unwrap())
}

/// `max |a − b| / (1 + |b|)`, and whether every value of `a` is finite.
fn relative_diff(a: &Tensor, b: &Tensor) -> (f64, bool) {
    let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
    let diff = a
        .iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max);
    (diff, a.iter().all(|v| v.is_finite()))
}

/// How the fused op is compared: its dtype, the composition's, and whether inputs sit exactly
/// at knots and at `±B`.
#[derive(Debug, Clone, Copy)]
struct Setup {
    dtype: DType,
    reference: DType,
    exact: bool,
}

impl Setup {
    /// With inputs exactly at knots and at `±B`.
    const fn exact(dtype: DType, reference: DType) -> Self {
        Self {
            dtype,
            reference,
            exact: true,
        }
    }
}

/// The worst relative differences `[out, log-det, ∂v, ∂raw]` of the fused op against the
/// composition over seeded cases with parameters at `scale`: both splines, both directions,
/// `R = 1` and `R = N`.
fn worst(setup: Setup, scale: f64, seed: u64) -> [f64; 4] {
    let mut rng = seeded(seed, Stream::Scratch("fused spline"));
    let mut worst = [0.0f64; 4];
    let (n, d) = (40, 5);
    for spline in &SPLINES {
        for dir in DIRECTIONS {
            for rows in [1, n] {
                let raw = parameters(&mut rng, spline, (rows, d), scale)
                    .to_dtype(setup.dtype)
                    .unwrap();
                let raw64 = raw.to_dtype(DType::F64).unwrap();
                let v = inputs(&mut rng, spline, &raw64, n, (dir, setup.exact));
                let v = v.to_dtype(setup.dtype).unwrap();
                let a = standard_normal(&mut rng, (n, d), DType::F64, &Device::Cpu).unwrap();
                let b = standard_normal(&mut rng, (n, d), DType::F64, &Device::Cpu).unwrap();
                let fused = evaluate(spline, dir, (&v, &raw), (&a, &b), true);
                let to = |t: &Tensor| t.to_dtype(setup.reference).unwrap();
                let composed = evaluate(spline, dir, (&to(&v), &to(&raw)), (&a, &b), false);
                for (w, (f, c)) in worst.iter_mut().zip(fused.iter().zip(&composed)) {
                    let (diff, finite) = relative_diff(f, c);
                    assert!(
                        finite,
                        "{setup:?} {dir:?} R = {rows} scale {scale}: not finite"
                    );
                    *w = w.max(diff);
                }
            }
        }
    }
    worst
}

const NAMES: [&str; 4] = [
    "value",
    "log-det",
    "gradient of the input",
    "gradient of raw",
];

/// Checks `worst` against `tolerance` for each `(seed, scale)`.
fn check(setup: Setup, seeds: &[(u64, f64)], tolerance: f64) {
    for &(seed, scale) in seeds {
        let worst = worst(setup, scale, seed);
        eprintln!("{setup:?} scale {scale}: worst relative differences {worst:?}");
        for (name, diff) in NAMES.iter().zip(worst) {
            assert!(
                diff < tolerance,
                "{setup:?} scale {scale}: {name} differs by {diff:e}"
            );
        }
    }
}

/// In f64 the fused op equals the composition to 1e-9 (relative), at knots, at `±B`, in the
/// tails and with parameters at ±1e4, in both directions and for shared parameter rows.
#[test]
fn fused_spline_matches_the_composition_in_f64() {
    let setup = Setup::exact(DType::F64, DType::F64);
    check(setup, &[(0, 0.5), (1, 3.0), (2, 1e4)], 1e-9);
}

/// In f32 the fused op computes in f64 from the f32 inputs, so it matches the f64 composition
/// on those inputs to f32 rounding (of the outputs and of the incoming gradients, which the
/// input's gradient can magnify where its two terms cancel), with parameters up to ±1e4; and
/// it matches the f32 composition loosely (that one rounds every intermediate to f32, and can
/// pick the other bin at a knot).
#[test]
fn fused_spline_in_f32_matches_the_composition() {
    let setup = Setup::exact(DType::F32, DType::F64);
    check(setup, &[(3, 0.5), (4, 3.0), (5, 1e4)], 1e-4);
    let loose = Setup {
        exact: false,
        ..Setup::exact(DType::F32, DType::F32)
    };
    check(loose, &[(6, 0.5), (7, 1.0)], 1e-3);
}

/// The inverse at `y = B` exactly, where the root rounds to either side of 1 and the
/// composition's select cuts its gradient when it lands above. The exact gradient follows from
/// `g(B) = B` for every `θ` and `g'(B) = 1`: `x = B`, `dx/dy = 1`, `dx/dθ = 0`, and the log-det
/// `−ℓ(x)` has `d/dy = −ℓ_x(B)`, `d/dθ = −ℓ_θ(B)`: the gradients of `Σ a x − b ℓ(x)` through the
/// composed forward at `x = B`, where `ξ = 1` exactly.
#[test]
fn inverse_at_the_top_end_keeps_its_gradient() {
    let mut rng = seeded(8, Stream::Scratch("fused spline top end"));
    let (n, d) = (30, 4);
    for spline in &SPLINES {
        for scale in [0.5, 3.0, 1e4] {
            let raw = Var::from_tensor(&parameters(&mut rng, spline, (n, d), scale)).unwrap();
            let top = Var::from_tensor(
                &(Tensor::ones((n, d), DType::F64, &Device::Cpu).unwrap() * spline.bound).unwrap(),
            )
            .unwrap();
            let a = standard_normal(&mut rng, (n, d), DType::F64, &Device::Cpu).unwrap();
            let b = standard_normal(&mut rng, (n, d), DType::F64, &Device::Cpu).unwrap();
            let fused = evaluate(spline, Direction::Inverse, (&top, &raw), (&a, &b), true);
            let (_, log_det) = spline.composed_forward(&top, &raw).unwrap();
            let loss = ((&*top * &a).unwrap().sum_all().unwrap()
                - (&log_det * &b).unwrap().sum_all().unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            let expected = [
                top.as_tensor().clone(),
                log_det.neg().unwrap(),
                grads.get(&top).unwrap().clone(),
                grads.get(&raw).unwrap().clone(),
            ];
            // The root at `B` is exact to rounding, which a steep last bin magnifies in `ℓ`
            // (the round trip's own bound at ±1e4 in the spline's property tests).
            let tolerance = if scale < 1.0 { 1e-9 } else { 1e-4 };
            for (name, (f, e)) in NAMES.iter().zip(fused.iter().zip(&expected)) {
                let (diff, finite) = relative_diff(f, e);
                assert!(
                    finite && diff < tolerance,
                    "scale {scale}: {name} differs by {diff:e}"
                );
            }
        }
    }
}
