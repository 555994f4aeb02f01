//! The [`Flow`] trait: a bijection on `(batch, dim)` with its log-determinant.

use std::fmt::Debug;

use candle_core::Tensor;

use crate::error::{FlowError, Result};

/// What a batch of a flow is conditioned on. Each tensor has `B` rows, one per input row, or
/// `B / k` rows, each shared by `k` consecutive input rows: the `k` posterior samples of one
/// data point. Sharing gives the same result as repeating the rows; flows with costly
/// per-row parameters (Sylvester) then do that work once per shared row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditioning<'a> {
    /// `(B, P)`: per-sample flow parameters, e.g. from an encoder head (amortized flows).
    pub params: Option<&'a Tensor>,
    /// `(B, C)`: context for the flow's own networks (IAF's `h`, a conditional coupling).
    pub context: Option<&'a Tensor>,
}

impl<'a> Conditioning<'a> {
    /// No parameters, no context: an unconditional flow with global parameters.
    pub fn none() -> Self {
        Self::default()
    }

    /// A context only (or nothing): a conditional density's condition, `(B, C)`.
    pub fn context(context: Option<&'a Tensor>) -> Self {
        Self {
            params: None,
            context,
        }
    }

    /// Per-sample parameters only.
    pub fn params(params: &'a Tensor) -> Self {
        Self {
            params: Some(params),
            context: None,
        }
    }
}

/// A bijection on `(B, D)` tensors with its log-determinant per sample.
///
/// Direction convention: `forward` is the *sampling* direction `z_0 → z_K` (the hot path of a
/// posterior flow); `inverse` is the *density* direction `x → z_0`. Both return the mapped
/// tensor `(B, D)` and `log|det J|` of the map they applied, shape `(B,)`, so that
/// `forward` and `inverse` log-dets of the same points sum to zero.
///
/// Parameters are either global (trainable tensors of the flow) or amortized: a flow that
/// reports `num_amortized_params() = P > 0` reads its parameters from `cond.params`, `(B, P)`.
///
/// An amortized planar layer on ℝ² driven by per-sample parameters, there and back:
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use flowvae_flows::{Conditioning, Flow, ParamStore, Planar};
///
/// let store = ParamStore::new(0);
/// let planar = Planar::new(store.var_builder(DType::F64, &Device::Cpu), 2, true)?;
/// assert_eq!(planar.num_amortized_params(), 5); // u (2), w (2), b (1)
/// let z = Tensor::new(&[[0.5f64, -1.0], [2.0, 0.25]], &Device::Cpu)?;
/// // One parameter row per sample: u, w, b.
/// let params = Tensor::new(&[[1.0f64, 0.5, 0.3, -0.2, 0.1], [0.2, 0.4, 1.0, 0.0, -0.5]], &Device::Cpu)?;
/// let (y, log_det) = planar.forward(&z, Conditioning::params(&params))?;
/// let (back, log_det_inverse) = planar.inverse(&y, Conditioning::params(&params))?;
/// let gap: f64 = (back - &z)?.abs()?.max_all()?.to_scalar()?;
/// let sum: f64 = (log_det + log_det_inverse)?.abs()?.max_all()?.to_scalar()?;
/// assert!(gap < 1e-9 && sum < 1e-9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Flow: Debug + Send + Sync {
    /// Short name used in messages and reports (`planar`, `affine_coupling`, …).
    fn name(&self) -> String;

    /// The dimension `D` this flow acts on.
    fn dim(&self) -> usize;

    /// Width `P` of the per-sample parameters this flow reads from `cond.params`.
    fn num_amortized_params(&self) -> usize {
        0
    }

    /// Width `C` of the context this flow reads from `cond.context` (0: none).
    fn context_dim(&self) -> usize {
        0
    }

    /// Sampling direction: `(B, D) → ((B, D), log|det J| (B,))`.
    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)>;

    /// The per-data-point work on amortized parameters `(B, P) → (B, P)` that all posterior
    /// samples of a data point share (Sylvester's orthogonalisation of `Q`), done once before
    /// the rows are repeated for `S` samples. `forward` accepts the result in place of the raw
    /// parameters and gives the same output (and it still accepts raw ones); the default
    /// returns them unchanged.
    fn prepare_amortized(&self, params: &Tensor) -> Result<Tensor> {
        Ok(params.clone())
    }

    /// Switches between training mode (layers with batch statistics use the batch's own) and
    /// evaluation mode (they use running averages); a no-op for every other layer. Stacks
    /// pass it to their layers. Trainers call it around training steps.
    fn set_training(&self, training: bool) {
        let _ = training;
    }

    /// Whether [`Flow::inverse`] is available.
    fn is_invertible(&self) -> bool {
        false
    }

    /// Density direction: `(B, D) → ((B, D), log|det J⁻¹| (B,))`.
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let _ = (y, cond);
        Err(FlowError::NotInvertible(self.name()))
    }
}

/// The `(R, W)` conditioning tensor `what` (parameters or context) of `flow`, checked against
/// the width `W` and against `rows`, the batch of the input: `R` must divide it.
fn checked_conditioning<'a>(
    tensor: Option<&'a Tensor>,
    flow: &str,
    what: &str,
    width: usize,
    rows: usize,
) -> Result<&'a Tensor> {
    let error = |message: String| FlowError::Conditioning {
        flow: flow.to_string(),
        message,
    };
    let tensor = tensor.ok_or_else(|| error(format!("needs {what} of width {width}, got none")))?;
    let (got_rows, got) = tensor.dims2()?;
    if got != width {
        return Err(error(format!("expects {what} of width {width}, got {got}")));
    }
    if got_rows == 0 || !rows.is_multiple_of(got_rows) {
        return Err(error(format!(
            "{what} has {got_rows} rows, which must divide the batch of {rows}"
        )));
    }
    Ok(tensor)
}

/// The amortized parameters as handed over, `(R, P)` with `R` dividing `rows`: row `r` serves
/// input rows `r·k .. r·k+k`, `k = rows / R` (flows that exploit the sharing read this).
pub(crate) fn shared_amortized_params<'a>(
    cond: &Conditioning<'a>,
    flow: &str,
    width: usize,
    rows: usize,
) -> Result<&'a Tensor> {
    checked_conditioning(cond.params, flow, "parameters", width, rows)
}

/// The amortized parameters with one row per input row, `(rows, P)`.
pub(crate) fn amortized_params(
    cond: &Conditioning<'_>,
    flow: &str,
    width: usize,
    rows: usize,
) -> Result<Tensor> {
    expand_rows(shared_amortized_params(cond, flow, width, rows)?, rows)
}

/// The `(rows, C)` context of a flow with context width `C` (`None` when `C = 0`).
pub(crate) fn context_of(
    cond: &Conditioning<'_>,
    flow: &str,
    width: usize,
    rows: usize,
) -> Result<Option<Tensor>> {
    if width == 0 {
        return Ok(None);
    }
    let context = checked_conditioning(cond.context, flow, "a context", width, rows)?;
    Ok(Some(expand_rows(context, rows)?))
}

/// The log-det `(B,)` of a volume-preserving map applied to `x` `(B, D)`: zeros.
pub(crate) fn zero_log_det(x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?)
}

/// `(R, W) → (rows, W)`, each row repeated `rows / R` times consecutively (`R` divides `rows`).
pub fn expand_rows(t: &Tensor, rows: usize) -> Result<Tensor> {
    let (r, w) = t.dims2()?;
    if r == rows {
        return Ok(t.clone());
    }
    Ok(t.unsqueeze(1)?
        .broadcast_as((r, rows / r, w))?
        .reshape((rows, w))?)
}
