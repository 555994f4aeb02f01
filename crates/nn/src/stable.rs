//! Numerically stable elementwise functions, the single home of these formulas.
//!
//! candle has no softplus or log-sigmoid and its BCE takes `sigmoid` then `log`, which
//! overflows for large logits. Everything here stays finite for |x| up to the dtype's range.

use candle_core::{Result, Tensor};

/// `log(1 + exp(-|x|))`, the part every stable formula below shares; in (0, ln 2].
fn log1p_exp_neg_abs(x: &Tensor) -> Result<Tensor> {
    x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()
}

/// `softplus(x) = log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + log1p_exp_neg_abs(x)?
}

/// `log1p_exp(x) = log(1 + exp(x))`, an alias of [`softplus`] under the name used in papers.
pub fn log1p_exp(x: &Tensor) -> Result<Tensor> {
    softplus(x)
}

/// `log σ(x) = -softplus(-x) = min(x, 0) - log(1 + exp(-|x|))`.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    x.minimum(0.0)? - log1p_exp_neg_abs(x)?
}

/// Binary cross-entropy with logits, elementwise: `max(l, 0) - l·t + log(1 + exp(-|l|))`.
///
/// Equals `-[t log σ(l) + (1 - t) log(1 - σ(l))]` for targets `t` in [0, 1].
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    (logits.relu()? - (logits * targets)?)? + log1p_exp_neg_abs(logits)?
}

/// `log Σ_j exp(x_j)` along `dim` (the dimension is removed), shifted by the maximum.
pub fn logsumexp(x: &Tensor, dim: usize) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    // A row of -inf would make the shift produce NaN; clamp the shift to a finite value.
    let max = max.clamp(-1e30, f64::INFINITY)?;
    let sum = x.broadcast_sub(&max)?.exp()?.sum_keepdim(dim)?;
    (sum.log()? + max)?.squeeze(dim)
}

/// Stable `log(exp(a) + exp(b))`, elementwise.
pub fn logaddexp(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let max = a.maximum(b)?;
    let min = a.minimum(b)?;
    max.clone() + (min - max)?.exp()?.affine(1.0, 1.0)?.log()?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn grid() -> Vec<f64> {
        vec![-50.0, -20.0, -3.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 20.0, 50.0]
    }

    fn apply(f: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f64> {
        let x = Tensor::new(grid(), &Device::Cpu).unwrap();
        f(&x).unwrap().to_vec1().unwrap()
    }

    fn close(got: &[f64], want: impl Fn(f64) -> f64) {
        for (g, x) in got.iter().zip(grid()) {
            let w = want(x);
            assert!(g.is_finite(), "non-finite at {x}");
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "x={x}: got {g}, want {w}"
            );
        }
    }

    // Closed forms written independently of the implementation, each correct for its sign.
    fn softplus_ref(x: f64) -> f64 {
        if x > 0.0 {
            x + (-x).exp().ln_1p()
        } else {
            x.exp().ln_1p()
        }
    }

    #[test]
    fn softplus_matches_f64_closed_form() {
        close(&apply(softplus), softplus_ref);
        close(&apply(log1p_exp), softplus_ref);
    }

    #[test]
    fn log_sigmoid_matches_f64_closed_form() {
        close(&apply(log_sigmoid), |x| -softplus_ref(-x));
    }

    #[test]
    fn bce_with_logits_matches_f64_closed_form() {
        for t in [0.0, 0.3, 1.0] {
            let got = apply(|l| {
                let targets = Tensor::full(t, l.shape(), l.device())?;
                bce_with_logits(l, &targets)
            });
            close(&got, |l| t * softplus_ref(-l) + (1.0 - t) * softplus_ref(l));
        }
    }

    #[test]
    fn logsumexp_matches_f64_and_survives_large_values() {
        let rows = [
            [-50.0, 50.0, 3.0],
            [1000.0, 1000.0, -1000.0],
            [-1e3, -1e3, -1e3],
        ];
        let x = Tensor::new(&rows, &Device::Cpu).unwrap();
        let got: Vec<f64> = logsumexp(&x, 1).unwrap().to_vec1().unwrap();
        for (row, g) in rows.iter().zip(got) {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let want = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            assert!(
                (g - want).abs() < 1e-12 * (1.0 + want.abs()),
                "{g} vs {want}"
            );
        }
    }

    #[test]
    fn logaddexp_is_symmetric_and_stable() {
        let a = Tensor::new(&[50.0f64, -50.0, 0.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[-50.0f64, -50.0, 0.0], &Device::Cpu).unwrap();
        let got: Vec<f64> = logaddexp(&a, &b).unwrap().to_vec1().unwrap();
        let want = [50.0 + (-100f64).exp().ln_1p(), -50.0 + 2f64.ln(), 2f64.ln()];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
    }

    #[test]
    fn stable_ops_work_in_f32() {
        let x = Tensor::new(&[-80f32, 80.0], &Device::Cpu).unwrap();
        let sp: Vec<f32> = softplus(&x).unwrap().to_vec1().unwrap();
        assert!(sp[0] >= 0.0 && sp[0] < 1e-30 && (sp[1] - 80.0).abs() < 1e-5);
        assert_eq!(x.dtype(), DType::F32);
    }
}
