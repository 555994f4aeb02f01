//! Chains of flows and flows run backwards.

use candle_core::Tensor;

use crate::error::{FlowError, Result};
use crate::flow::{Conditioning, Flow};
use crate::param_source::split_columns;

/// `f_K ∘ … ∘ f_1`: applies its layers in order in `forward`, in reverse in `inverse`.
///
/// Log-dets add up; `cond.params` is sliced among the layers in order, each taking its
/// [`Flow::num_amortized_params`] columns; every layer sees the same context.
#[derive(Debug)]
pub struct Composed {
    layers: Vec<Box<dyn Flow>>,
    dim: usize,
}

impl Composed {
    /// Chains `layers` (applied first to last in the sampling direction).
    pub fn new(dim: usize, layers: Vec<Box<dyn Flow>>) -> Result<Self> {
        if let Some(bad) = layers.iter().find(|l| l.dim() != dim) {
            return Err(FlowError::InvalidConfig {
                field: bad.name(),
                message: format!("acts on dimension {}, the stack on {dim}", bad.dim()),
            });
        }
        let widths: Vec<usize> = layers
            .iter()
            .map(|l| l.context_dim())
            .filter(|&c| c > 0)
            .collect();
        if widths.windows(2).any(|w| w[0] != w[1]) {
            return Err(FlowError::InvalidConfig {
                field: "context".into(),
                message: format!("layers disagree on the context width: {widths:?}"),
            });
        }
        Ok(Self { layers, dim })
    }

    /// The layers, in sampling order.
    pub fn layers(&self) -> &[Box<dyn Flow>] {
        &self.layers
    }

    /// Where each layer's share of `cond.params` starts, in layer order.
    pub fn param_offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.layers.len());
        let mut offset = 0;
        for layer in &self.layers {
            offsets.push(offset);
            offset += layer.num_amortized_params();
        }
        offsets
    }

    fn run(&self, x: &Tensor, cond: Conditioning<'_>, backwards: bool) -> Result<(Tensor, Tensor)> {
        if let [only] = self.layers.as_slice() {
            // A chain of one is that layer (it takes all of `cond.params`).
            return if backwards {
                only.inverse(x, cond)
            } else {
                only.forward(x, cond)
            };
        }
        let widths: Vec<usize> = self
            .layers
            .iter()
            .map(|l| l.num_amortized_params())
            .collect();
        let slices = match cond.params {
            Some(p) => Some(split_columns(p, &widths)?),
            None => None,
        };
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        if backwards {
            order.reverse();
        }
        let mut x = x.clone();
        let mut total = Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?;
        for i in order {
            let layer = &self.layers[i];
            let sliced = slices.as_ref().filter(|_| widths[i] > 0).map(|s| &s[i]);
            let layer_cond = Conditioning {
                params: sliced,
                context: cond.context,
            };
            let (y, log_det) = if backwards {
                layer.inverse(&x, layer_cond)?
            } else {
                layer.forward(&x, layer_cond)?
            };
            x = y;
            total = (total + log_det)?;
        }
        Ok((x, total))
    }
}

impl Flow for Composed {
    fn name(&self) -> String {
        let names: Vec<String> = self.layers.iter().map(|l| l.name()).collect();
        format!("composed[{}]", names.join(", "))
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn num_amortized_params(&self) -> usize {
        self.layers.iter().map(|l| l.num_amortized_params()).sum()
    }
    fn context_dim(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.context_dim())
            .max()
            .unwrap_or(0)
    }
    fn set_training(&self, training: bool) {
        for layer in &self.layers {
            layer.set_training(training);
        }
    }
    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        if self.num_amortized_params() > 0 {
            let (name, width, rows) = (self.name(), self.num_amortized_params(), x.dim(0)?);
            crate::flow::shared_amortized_params(&cond, &name, width, rows)?;
        }
        self.run(x, cond, false)
    }
    fn prepare_amortized(&self, params: &Tensor) -> Result<Tensor> {
        let widths: Vec<usize> = self
            .layers
            .iter()
            .map(|l| l.num_amortized_params())
            .collect();
        let slices = split_columns(params, &widths)?;
        let mut parts = Vec::with_capacity(self.layers.len());
        for ((layer, slice), width) in self.layers.iter().zip(&slices).zip(widths) {
            if width > 0 {
                parts.push(layer.prepare_amortized(slice)?);
            }
        }
        if parts.is_empty() {
            return Ok(params.clone());
        }
        Ok(Tensor::cat(&parts, 1)?)
    }
    fn is_invertible(&self) -> bool {
        self.layers.iter().all(|l| l.is_invertible())
    }
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        if let Some(bad) = self.layers.iter().find(|l| !l.is_invertible()) {
            return Err(FlowError::NotInvertible(bad.name()));
        }
        self.run(y, cond, true)
    }
}

/// A flow run backwards: `forward` is the inner flow's `inverse` and vice versa.
///
/// IAF is the inverse of MAF in this sense; a density-fast flow can serve as a fast sampler.
#[derive(Debug)]
pub struct Inverted {
    inner: Box<dyn Flow>,
}

impl Inverted {
    /// Wraps `inner`; its `inverse` becomes the sampling direction.
    pub fn new(inner: Box<dyn Flow>) -> Self {
        Self { inner }
    }

    /// The wrapped flow.
    pub fn inner(&self) -> &dyn Flow {
        self.inner.as_ref()
    }
}

impl Flow for Inverted {
    fn name(&self) -> String {
        format!("inverted({})", self.inner.name())
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn num_amortized_params(&self) -> usize {
        self.inner.num_amortized_params()
    }
    fn context_dim(&self) -> usize {
        self.inner.context_dim()
    }
    fn forward(&self, x: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.inner.inverse(x, cond)
    }
    fn prepare_amortized(&self, params: &Tensor) -> Result<Tensor> {
        self.inner.prepare_amortized(params)
    }
    fn set_training(&self, training: bool) {
        self.inner.set_training(training);
    }
    fn is_invertible(&self) -> bool {
        // Running backwards needs the inner inverse; running forwards again needs nothing.
        self.inner.is_invertible()
    }
    fn inverse(&self, y: &Tensor, cond: Conditioning<'_>) -> Result<(Tensor, Tensor)> {
        self.inner.forward(y, cond)
    }
}
