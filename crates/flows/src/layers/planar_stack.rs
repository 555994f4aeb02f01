//! `K` amortized planar layers as one flow, run as a single fused op on the CPU.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::composed::Composed;
use crate::error::Result;
use crate::flow::{expand_rows, shared_amortized_params, Conditioning, Flow};
use crate::fused::planar::{applicable, planar_stack};
use crate::layers::planar::Planar;

/// `K` amortized [`Planar`] layers on dimension `D`, reading `K(2D + 1)` parameters per row
/// (layer `k`'s `[u, w, b]` at columns `k(2D+1)…`, as [`Composed`] would slice them).
///
/// The sampling direction runs as one fused op with its own backward where it can (CPU,
/// f32/f64, the `planar` fused op on); elsewhere, and for the inverse, it is the plain
/// composition of its layers, which stays the reference.
#[derive(Debug)]
pub struct PlanarStack {
    layers: Composed,
}

impl PlanarStack {
    /// `k ≥ 1` amortized planar layers; `vb` only names them (they own no tensors).
    pub fn new(vb: VarBuilder, dim: usize, k: usize) -> Result<Self> {
        let layers = (0..k)
            .map(|j| Ok(Box::new(Planar::new(vb.pp(j), dim, true)?) as Box<dyn Flow>))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers: Composed::new(dim, layers)?,
        })
    }

    /// The number of planar layers `K`.
    pub fn len(&self) -> usize {
        self.layers.layers().len()
    }

    /// Whether the stack has no layer (never true for one built by [`PlanarStack::new`] with
    /// `k ≥ 1`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Flow for PlanarStack {
    fn name(&self) -> String {
        format!("planar_stack(k={})", self.len())
    }
    fn dim(&self) -> usize {
        self.layers.dim()
    }
    fn num_amortized_params(&self) -> usize {
        self.layers.num_amortized_params()
    }

    fn forward(&self, z: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let rows = z.dim(0)?;
        let shared =
            shared_amortized_params(&cond, &self.name(), self.num_amortized_params(), rows)?;
        let params = expand_rows(shared, rows)?;
        if applicable(z, &params) {
            return Ok(planar_stack(z, &params)?);
        }
        self.layers.forward(z, cond)
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.layers.inverse(y, cond)
    }
}
