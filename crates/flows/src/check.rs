//! Brute-force verification of flows: log-det against the autograd Jacobian, round trips.
//!
//! Used by the conformance tests and by `flowvae check`, so researchers can verify their own
//! stacks with the same code. Run it in f64: f32 cannot resolve errors of 1e-6.

use candle_core::{DType, Tensor, Var};

use crate::composed::Composed;
use crate::error::Result;
use crate::flow::{Conditioning, Flow};
use flowvae_nn::ParamStore;
use flowvae_nn::{seeded, standard_normal};

/// `log|det A|` of a row-major `n × n` matrix by LU with partial pivoting.
pub fn log_abs_det(matrix: &[f64], n: usize) -> f64 {
    let mut a = matrix.to_vec();
    let mut log_det = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        if a[pivot * n + col] == 0.0 {
            return f64::NEG_INFINITY;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
        }
        let p = a[col * n + col];
        log_det += p.abs().ln();
        for row in col + 1..n {
            let factor = a[row * n + col] / p;
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
        }
    }
    log_det
}

/// Per-sample `log|det ∂f(x)/∂x|` of `flow.forward` from the full Jacobian, one backward pass
/// per output coordinate. `x` is `(B, D)`; returns `B` values.
pub fn brute_force_log_det(
    flow: &dyn Flow,
    x: &Tensor,
    cond: Conditioning<'_>,
) -> Result<Vec<f64>> {
    let (b, d) = x.dims2()?;
    let input = Var::from_tensor(&x.detach())?;
    let (y, _) = flow.forward(input.as_tensor(), cond)?;
    let mut jacobians = vec![0.0; b * d * d];
    for out in 0..d {
        let grads = y.narrow(1, out, 1)?.sum_all()?.backward()?;
        let row: Vec<Vec<f64>> = match grads.get(input.as_tensor()) {
            Some(g) => g.to_dtype(DType::F64)?.to_vec2()?,
            None => vec![vec![0.0; d]; b],
        };
        for (sample, values) in row.iter().enumerate() {
            let start = sample * d * d + out * d;
            jacobians[start..start + d].copy_from_slice(values);
        }
    }
    Ok(jacobians
        .chunks(d * d)
        .map(|jac| log_abs_det(jac, d))
        .collect())
}

/// Adds seeded Gaussian noise to every parameter of `store`: moves flows away from their
/// near-identity initialisation so that a check sees a non-trivial map. The spread is `std`
/// divided by √(fan-in) for matrices (last dimension), so that wide conditioner networks stay
/// in a sane regime while small parameter rows move by about `std`.
pub fn perturb_parameters(store: &ParamStore, seed: u64, std: f64) -> Result<()> {
    let mut rng = seeded(seed, flowvae_nn::Stream::Perturb);
    for var in store.vars() {
        let dims = var.dims();
        let fan_in = match dims {
            [rows, cols] if *rows > 1 => *cols,
            _ => 1,
        };
        let scaled = std / (fan_in as f64).sqrt();
        let noise = standard_normal(&mut rng, var.shape(), var.dtype(), var.device())?;
        var.set(&(var.as_tensor() + (noise * scaled)?)?)?;
    }
    Ok(())
}

/// What [`check_flow`] measured on one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The flow's name.
    pub name: String,
    /// `max_b |log-det reported − log-det of the brute-force Jacobian|`.
    pub log_det_error: f64,
    /// `max |x − f⁻¹(f(x))|`, when the flow is invertible.
    pub round_trip_error: Option<f64>,
    /// `max_b |log-det forward + log-det inverse|`, when the flow is invertible.
    pub log_det_sum_error: Option<f64>,
}

impl CheckReport {
    /// The largest of the measured errors.
    pub fn worst(&self) -> f64 {
        [
            Some(self.log_det_error),
            self.round_trip_error,
            self.log_det_sum_error,
        ]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar()?)
}

/// Checks one flow at `x` `(B, D)`: log-det against brute force, and the round trip.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use flowvae_flows::check_flow;
/// use flowvae_flows::{Elementwise, ElementwiseMap};
/// use flowvae_flows::Conditioning;
///
/// let flow = Elementwise::new(3, ElementwiseMap::Sigmoid)?;
/// let x = Tensor::new(&[[0.1f64, -0.4, 1.2], [2.0, 0.0, -3.0]], &Device::Cpu)?;
/// let report = check_flow(&flow, &x, Conditioning::none())?;
/// assert!(report.log_det_error < 1e-6 && report.round_trip_error.unwrap() < 1e-9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_flow(flow: &dyn Flow, x: &Tensor, cond: Conditioning<'_>) -> Result<CheckReport> {
    let (y, log_det) = flow.forward(x, cond)?;
    let brute = brute_force_log_det(flow, x, cond)?;
    let reported: Vec<f64> = log_det.to_dtype(DType::F64)?.to_vec1()?;
    let log_det_error = reported
        .iter()
        .zip(&brute)
        .map(|(r, b)| {
            if r.is_finite() && b.is_finite() {
                (r - b).abs()
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max);
    let (round_trip_error, log_det_sum_error) = if flow.is_invertible() {
        let (x_back, inverse_log_det) = flow.inverse(&y, cond)?;
        let sum = (&log_det + &inverse_log_det)?
            .abs()?
            .max(0)?
            .to_dtype(DType::F64)?;
        (Some(max_abs_diff(x, &x_back)?), Some(sum.to_scalar()?))
    } else {
        (None, None)
    };
    Ok(CheckReport {
        name: flow.name(),
        log_det_error,
        round_trip_error,
        log_det_sum_error,
    })
}

/// Checks every layer of a stack at the point it sees in the chain, then the whole stack.
/// Returns one report per layer followed by the report of the stack (named `stack`).
pub fn check_composed(
    stack: &Composed,
    x: &Tensor,
    cond: Conditioning<'_>,
) -> Result<Vec<CheckReport>> {
    let mut reports = Vec::with_capacity(stack.layers().len() + 1);
    let mut h = x.clone();
    for (layer, offset) in stack.layers().iter().zip(stack.param_offsets()) {
        let width = layer.num_amortized_params();
        let params = match cond.params {
            Some(p) if width > 0 => Some(p.narrow(1, offset, width)?),
            _ => None,
        };
        let layer_cond = Conditioning {
            params: params.as_ref(),
            context: cond.context,
        };
        reports.push(check_flow(layer.as_ref(), &h, layer_cond)?);
        h = layer.forward(&h, layer_cond)?.0.detach();
    }
    let mut total = check_flow(stack, x, cond)?;
    total.name = "stack".into();
    reports.push(total);
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_abs_det_of_known_matrices() {
        assert!((log_abs_det(&[2.0, 0.0, 0.0, 3.0], 2) - 6f64.ln()).abs() < 1e-14);
        // Needs pivoting: [[0, 1], [1, 0]] has det −1.
        assert!(log_abs_det(&[0.0, 1.0, 1.0, 0.0], 2).abs() < 1e-14);
        let m = [4.0, 3.0, 2.0, 1.0, 3.0, 5.0, 2.0, 7.0, 1.0];
        let det: f64 = 4.0 * (3.0 * 1.0 - 5.0 * 7.0) - 3.0 * (1.0 * 1.0 - 5.0 * 2.0)
            + 2.0 * (1.0 * 7.0 - 3.0 * 2.0);
        assert!((log_abs_det(&m, 3) - det.abs().ln()).abs() < 1e-12);
        assert_eq!(log_abs_det(&[1.0, 2.0, 2.0, 4.0], 2), f64::NEG_INFINITY);
    }
}
