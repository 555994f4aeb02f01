//! Householder flow (Tomczak & Welling, 2016): a volume-preserving VAE posterior made of
//! reflections `z ← (I − 2 u uᵀ) z`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::sylvester::q::{reflect, unit_reflections};
use crate::error::Result;
use crate::flow::{expand_rows, zero_log_det, Conditioning, Flow};
use crate::param_source::{Block, ParamSource};

/// One Householder reflection on dimension `D`, `u = v / ‖v‖` with `v` global or amortized
/// (`P = D`): orthogonal, so `log|det J| = 0`, and its own inverse.
///
/// Tomczak & Welling compute each `v` from the previous one with a linear layer; here every
/// `v` of a stack comes from the encoder directly (or is learned, when global), which spans
/// the same family of posteriors.
#[derive(Debug)]
pub struct Householder {
    dim: usize,
    source: ParamSource,
}

impl Householder {
    /// A reflection; the global `v` is drawn N(0, 1) so that its norm is far from 0.
    pub fn new(vb: VarBuilder, dim: usize, amortized: bool) -> Result<Self> {
        let source = ParamSource::new(&vb, amortized, &[Block::normal("v", dim, 1.0)])?;
        Ok(Self { dim, source })
    }

    fn units(&self, cond: &Conditioning<'_>, rows: usize) -> Result<Vec<Tensor>> {
        let raw = expand_rows(&self.source.resolve(cond, "householder", rows)?, rows)?;
        unit_reflections(&raw, 1, self.dim)
    }
}

impl Flow for Householder {
    fn name(&self) -> String {
        "householder".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.source.amortized_width()
    }

    fn forward(&self, z: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let units = self.units(&cond, z.dim(0)?)?;
        Ok((reflect(z, &units, false)?, zero_log_det(z)?))
    }

    fn is_invertible(&self) -> bool {
        true
    }

    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        let units = self.units(&cond, y.dim(0)?)?;
        Ok((reflect(y, &units, true)?, zero_log_det(y)?))
    }
}
