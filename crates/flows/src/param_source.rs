//! Where a flow layer's parameters come from: its own trainable tensors, or the encoder.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::Result;
use crate::flow::{amortized_params, shared_amortized_params, Conditioning};

/// One named block of a layer's parameter vector, e.g. `("u", D)`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    /// Name of the global tensor, e.g. `u`.
    pub name: &'static str,
    /// Number of columns.
    pub width: usize,
    /// Initial value spread of the global version (ignored when amortized).
    pub init: Init,
}

impl Block {
    /// A block initialised N(0, std²).
    pub fn normal(name: &'static str, width: usize, std: f64) -> Self {
        let init = Init::Randn {
            mean: 0.0,
            stdev: std,
        };
        Self { name, width, init }
    }

    /// A block initialised to a constant.
    pub fn constant(name: &'static str, width: usize, value: f64) -> Self {
        Self {
            name,
            width,
            init: Init::Const(value),
        }
    }
}

/// A layer's flat parameter vector, `(rows, P)` with rows = 1 (global) or B (amortized).
///
/// Writing each flow once against this flat vector, with broadcasting over the rows, is what
/// lets every flow be global or amortized with the same code.
#[derive(Debug, Clone)]
pub enum ParamSource {
    /// Trainable tensors of shape `(1, width)`, one per block, concatenated on use.
    Global(Vec<Tensor>),
    /// Read from `cond.params`, `(B, P)`.
    Amortized(usize),
}

impl ParamSource {
    /// Creates the source; global blocks become trainable tensors named after the block.
    pub fn new(vb: &VarBuilder, amortized: bool, blocks: &[Block]) -> Result<Self> {
        let width = blocks.iter().map(|b| b.width).sum();
        if amortized {
            return Ok(Self::Amortized(width));
        }
        let tensors = blocks
            .iter()
            .map(|b| vb.get_with_hints((1, b.width), b.name, b.init))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self::Global(tensors))
    }

    /// The width `P` this layer reads from `cond.params` (0 when global).
    pub fn amortized_width(&self) -> usize {
        match self {
            Self::Global(_) => 0,
            Self::Amortized(width) => *width,
        }
    }

    /// The parameter rows for an input of `rows` rows: `(1, P)` when global, `(rows, P)` when
    /// amortized.
    pub fn resolve(&self, cond: &Conditioning<'_>, flow: &str, rows: usize) -> Result<Tensor> {
        match self {
            Self::Global(tensors) => Ok(Tensor::cat(tensors, 1)?),
            Self::Amortized(width) => amortized_params(cond, flow, *width, rows),
        }
    }

    /// Like [`ParamSource::resolve`], but amortized parameters keep the `R` rows they came
    /// with, each shared by `rows / R` consecutive input rows (see [`Conditioning`]).
    pub fn resolve_shared(
        &self,
        cond: &Conditioning<'_>,
        flow: &str,
        rows: usize,
    ) -> Result<Tensor> {
        match self {
            Self::Global(tensors) => Ok(Tensor::cat(tensors, 1)?),
            Self::Amortized(width) => {
                Ok(shared_amortized_params(cond, flow, *width, rows)?.clone())
            }
        }
    }
}

/// Splits `(rows, P)` parameters into consecutive column blocks of the given widths.
pub fn split_columns(params: &Tensor, widths: &[usize]) -> Result<Vec<Tensor>> {
    Ok(flowvae_nn::split_columns(params, widths)?)
}
