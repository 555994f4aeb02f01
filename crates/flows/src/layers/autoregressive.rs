//! Autoregressive affine flows: IAF (Kingma et al., 2016) and, run backwards, MAF
//! (Papamakarios et al., 2017).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::flow::{context_of, zero_log_det, Conditioning, Flow};
use crate::layers::made::Made;
use flowvae_nn::{soft_clamp, Activation};

/// `y_i = x_i exp(s_i(x_<i)) + μ_i(x_<i)` with `(μ, s)` from a [`Made`] on the *input*.
///
/// Its forward is one network pass (fast); the inverse needs `D` passes. As a posterior flow
/// in the sampling direction this is IAF; [`crate::Inverted`] of it is MAF, whose density
/// direction is the fast one. The log-scale is soft-clamped to `(−scale_bound, scale_bound)`.
#[derive(Debug)]
pub struct AutoregressiveAffine {
    made: Made,
    context_dim: usize,
    scale_bound: f64,
    passes: PassGraph,
}

impl AutoregressiveAffine {
    /// A layer autoregressive in the natural coordinate order.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: &[usize],
        activation: Activation,
        scale_bound: f64,
        context_dim: usize,
    ) -> Result<Self> {
        let made = Made::new(vb.pp("made"), dim, hidden, 2, context_dim, activation)?;
        Ok(Self {
            made,
            context_dim,
            scale_bound,
            passes: PassGraph::default(),
        })
    }

    /// `(μ, s)` at `x`, each `(B, D)`, from `made` (this layer's network, masks applied or
    /// not).
    fn shift_scale(
        &self,
        made: &Made,
        x: &Tensor,
        cond: &Conditioning<'_>,
    ) -> Result<(Tensor, Tensor)> {
        let context = context_of(cond, "iaf", self.context_dim, x.dim(0)?)?;
        let out = made.forward(x, context.as_ref())?;
        let d = self.made.dim();
        let mu = out.narrow(1, 0, d)?;
        let s = soft_clamp(&out.narrow(1, d, d)?, self.scale_bound)?;
        Ok((mu, s))
    }
}

impl Flow for AutoregressiveAffine {
    fn name(&self) -> String {
        "iaf".into()
    }
    fn dim(&self) -> usize {
        self.made.dim()
    }
    fn context_dim(&self) -> usize {
        self.context_dim
    }

    fn set_training(&self, training: bool) {
        self.passes.set_training(training);
    }

    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (mu, s) = self.shift_scale(&self.made, x, &cond)?;
        let y = ((x * s.exp()?)? + mu)?;
        Ok((y, s.sum(1)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let made = self.made.with_masks_applied()?;
        invert_by_passes(self.dim(), y, &self.passes, |x| {
            let (mu, s) = self.shift_scale(&made, x, &cond)?;
            let x = ((y - mu)? * s.neg()?.exp()?)?;
            Ok((x, s.sum(1)?.neg()?))
        })
    }
}

/// Inverts an autoregressive map of `y` `(B, D)` by `dim` passes of `pass`, which takes an
/// estimate of `x` to the next one and the inverse log-det `(B,)` at it. After pass `i` the
/// first `i + 1` coordinates are exact; the last pass sees `x_<D` exactly, so its log-det is
/// the one of the returned point.
pub(crate) fn invert_by_passes(
    dim: usize,
    y: &Tensor,
    graph: &PassGraph,
    mut pass: impl FnMut(&Tensor) -> Result<(Tensor, Tensor)>,
) -> Result<(Tensor, Tensor)> {
    let keep = graph.keep();
    let mut x = y.zeros_like()?;
    let mut log_det = zero_log_det(y)?;
    for _ in 0..dim {
        (x, log_det) = pass(&x)?;
        if !keep {
            (x, log_det) = (x.detach(), log_det.detach());
        }
    }
    Ok((x, log_det))
}

/// Whether an autoregressive inverse keeps the graph of its `D` passes. Gradients through the
/// inverse need it (the exact gradient runs through every pass), so it is kept by default: a
/// VAE's MAF posterior and a 2-D fit of an IAF train through it. In evaluation mode
/// ([`Flow::set_training`]`(false)`) the passes are detached: the same numbers, without `D`
/// passes' activations kept alive (gigabytes for 784 pixels).
#[derive(Debug)]
pub(crate) struct PassGraph(AtomicBool);

impl Default for PassGraph {
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl PassGraph {
    /// Keeps the graph in training mode, drops it in evaluation mode.
    pub(crate) fn set_training(&self, training: bool) {
        self.0.store(training, Ordering::Release);
    }

    fn keep(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{perturb_parameters, ParamStore};
    use candle_core::{DType, Device};
    use flowvae_nn::{seeded, standard_normal, Stream};

    /// Evaluation mode gives the same inverse with no graph behind it; training mode keeps
    /// the graph, so gradients reach the network through all `D` passes.
    #[test]
    fn evaluation_mode_drops_the_graph_of_the_passes_and_nothing_else() {
        let store = ParamStore::new(0);
        let vb = store.var_builder(DType::F32, &Device::Cpu);
        let layer = AutoregressiveAffine::new(vb, 4, &[8], Activation::Relu, 3.0, 0).unwrap();
        perturb_parameters(&store, 1, 0.5).unwrap();
        let mut rng = seeded(0, Stream::Scratch("passes"));
        let y = standard_normal(&mut rng, (3, 4), DType::F32, &Device::Cpu).unwrap();
        let inverse = |training: bool| {
            layer.set_training(training);
            let (x, log_det) = layer.inverse(&y, Conditioning::none()).unwrap();
            let loss = (x.sqr().unwrap().sum_all().unwrap() + log_det.sum_all().unwrap()).unwrap();
            let grads = loss.backward().unwrap();
            let reached = store
                .named_vars()
                .iter()
                .filter(|(_, v)| grads.get(v).is_some())
                .count();
            (loss.to_scalar::<f32>().unwrap(), reached)
        };
        let (kept, reached_kept) = inverse(true);
        let (dropped, reached_dropped) = inverse(false);
        assert_eq!(kept, dropped);
        assert_eq!(reached_kept, store.named_vars().len());
        assert_eq!(reached_dropped, 0);
    }
}
