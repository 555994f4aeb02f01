//! The spline flows: coupling (`rq_coupling`), autoregressive (`rq_iaf`, and inverted
//! `rq_maf`) and element-wise with global or amortized knots (`rq_spline`).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::{per_coordinate, RqSpline};
use crate::error::Result;
use crate::flow::{context_of, Conditioning, Flow};
use crate::layers::autoregressive::{invert_by_passes, PassGraph};
use crate::layers::conditioner::MaskedConditioner;
use crate::layers::made::Made;
use crate::param_source::{Block, ParamSource};
use flowvae_nn::Activation;

/// Coupling with a spline: `y = m ⊙ x + (1 − m) ⊙ g_θ(x)`, `θ = net(x_c [, context])` with
/// `x_c` the coordinates where `m = 1` and `g` an element-wise [`RqSpline`]. Closed-form
/// inverse in one pass.
#[derive(Debug)]
pub struct SplineCoupling {
    conditioner: MaskedConditioner,
    spline: RqSpline,
}

impl SplineCoupling {
    /// A coupling layer; `parity` 0 keeps even coordinates fixed, 1 keeps odd ones.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        net: (&[usize], Activation),
        parity: usize,
        spline: RqSpline,
        context_dim: usize,
    ) -> Result<Self> {
        spline.validate("rq_coupling")?;
        let (hidden, activation) = net;
        let conditioner = MaskedConditioner::new(
            vb,
            "rq_coupling",
            dim,
            hidden,
            activation,
            parity,
            context_dim,
            spline.params_per_dim(),
        )?;
        Ok(Self {
            conditioner,
            spline,
        })
    }

    /// Applies the spline in `direction` to the free coordinates of `x`.
    fn apply(
        &self,
        x: &Tensor,
        cond: &Conditioning<'_>,
        direction: fn(&RqSpline, &Tensor, &Tensor) -> Result<(Tensor, Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let split = self.conditioner.split(x, cond)?;
        let raw = per_coordinate(&split.params, self.conditioner.moving_dim())?;
        let (moved, log_det) = direction(&self.spline, &split.moving, &raw)?;
        let y = self.conditioner.merge(&split.conditioning, &moved)?;
        Ok((y, log_det.sum(1)?))
    }
}

impl Flow for SplineCoupling {
    fn name(&self) -> String {
        "rq_coupling".into()
    }
    fn dim(&self) -> usize {
        self.conditioner.dim()
    }
    fn context_dim(&self) -> usize {
        self.conditioner.context_dim()
    }
    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.apply(x, &cond, RqSpline::forward)
    }
    fn is_invertible(&self) -> bool {
        true
    }
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.apply(y, &cond, RqSpline::inverse)
    }
}

/// `y_i = g_θᵢ(x_i)` with `θ_i` from a [`Made`] on `x_<i` (and a context): one network pass
/// forward (IAF-style fast sampling), `D` passes back. [`crate::Inverted`] of it is the
/// spline MAF (`rq_maf`), fast in the density direction.
#[derive(Debug)]
pub struct AutoregressiveSpline {
    made: Made,
    context_dim: usize,
    spline: RqSpline,
    passes: PassGraph,
}

impl AutoregressiveSpline {
    /// A layer autoregressive in the natural coordinate order.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        net: (&[usize], Activation),
        spline: RqSpline,
        context_dim: usize,
    ) -> Result<Self> {
        spline.validate("rq_iaf")?;
        let (hidden, activation) = net;
        let outputs = spline.params_per_dim();
        let made = Made::new(vb.pp("made"), dim, hidden, outputs, context_dim, activation)?;
        Ok(Self {
            made,
            context_dim,
            spline,
            passes: PassGraph::default(),
        })
    }

    /// The spline parameters `(B, D, 3K−1)` at `x`, from `made` (this layer's network, masks
    /// applied or not).
    fn raw(&self, made: &Made, x: &Tensor, cond: &Conditioning<'_>) -> Result<Tensor> {
        let context = context_of(cond, "rq_iaf", self.context_dim, x.dim(0)?)?;
        per_coordinate(&made.forward(x, context.as_ref())?, made.dim())
    }
}

impl Flow for AutoregressiveSpline {
    fn name(&self) -> String {
        "rq_iaf".into()
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
        let (y, log_det) = self.spline.forward(x, &self.raw(&self.made, x, &cond)?)?;
        Ok((y, log_det.sum(1)?))
    }
    fn is_invertible(&self) -> bool {
        true
    }
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let made = self.made.with_masks_applied()?;
        invert_by_passes(self.dim(), y, &self.passes, |x| {
            let (x, log_det) = self.spline.inverse(y, &self.raw(&made, x, &cond)?)?;
            Ok((x, log_det.sum(1)?))
        })
    }
}

/// An element-wise spline per coordinate whose knots are learned globals or, amortized, read
/// per sample from `cond.params` (`D · (3K−1)` columns, block `j` holding parameter `j` of
/// every coordinate). Zero parameters give the identity.
#[derive(Debug)]
pub struct ElementwiseSpline {
    dim: usize,
    spline: RqSpline,
    params: ParamSource,
}

impl ElementwiseSpline {
    /// The layer on dimension `dim`.
    pub fn new(vb: VarBuilder, dim: usize, spline: RqSpline, amortized: bool) -> Result<Self> {
        spline.validate("rq_spline")?;
        let width = dim * spline.params_per_dim();
        let params = ParamSource::new(&vb, amortized, &[Block::constant("knots", width, 0.0)])?;
        Ok(Self {
            dim,
            spline,
            params,
        })
    }

    fn raw(&self, x: &Tensor, cond: &Conditioning<'_>) -> Result<Tensor> {
        let rows = self.params.resolve(cond, "rq_spline", x.dim(0)?)?;
        per_coordinate(&rows, self.dim)
    }
}

impl Flow for ElementwiseSpline {
    fn name(&self) -> String {
        "rq_spline".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.params.amortized_width()
    }
    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (y, log_det) = self.spline.forward(x, &self.raw(x, &cond)?)?;
        Ok((y, log_det.sum(1)?))
    }
    fn is_invertible(&self) -> bool {
        true
    }
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let (x, log_det) = self.spline.inverse(y, &self.raw(y, &cond)?)?;
        Ok((x, log_det.sum(1)?))
    }
}
