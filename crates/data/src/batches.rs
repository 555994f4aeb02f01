//! Rows of a data set as `(B, D)` tensors, binarized afresh per epoch when asked.

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::binarize::{binarize_dynamic, dynamic_rng, Binarization};
use crate::dataset::Dataset;
use crate::error::Result;

/// Turns rows of a data set into `(B, D)` batches, binarizing afresh when asked.
#[derive(Debug)]
pub struct BatchMaker {
    dynamic: Option<ChaCha8Rng>,
    buffer: Vec<f32>,
}

impl BatchMaker {
    /// For training in `epoch`: dynamic binarization draws from `(seed, epoch)`.
    pub fn for_training(binarization: Binarization, seed: u64, epoch: usize) -> Self {
        Self {
            dynamic: binarization
                .is_dynamic()
                .then(|| dynamic_rng(seed, epoch as u64)),
            buffer: Vec::new(),
        }
    }

    /// For evaluation: rows as they are.
    pub fn plain() -> Self {
        Self {
            dynamic: None,
            buffer: Vec::new(),
        }
    }

    /// The rows `idx` of `data` as a `(B, D)` f32 tensor.
    pub fn batch(&mut self, data: &Dataset, idx: &[usize], device: &Device) -> Result<Tensor> {
        data.gather_into(idx, &mut self.buffer);
        if let Some(rng) = self.dynamic.as_mut() {
            binarize_dynamic(&mut self.buffer, rng);
        }
        Ok(Tensor::from_slice(
            &self.buffer,
            (idx.len(), data.dim),
            device,
        )?)
    }
}
