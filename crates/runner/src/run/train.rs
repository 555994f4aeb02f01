//! Training a Flow-VAE of an experiment: the experiment's sections handed to
//! [`flowvae_train::Trainer`], on flowvae's worker pool.

use candle_core::Device;
use flowvae_train::{RunDir, Trained, Trainer};

use crate::error::Result;
use crate::experiment::vae::ExperimentVae;

/// Trains `exp` into `run` (metrics and checkpoints) and leaves the best parameters loaded.
/// With `resume`, continues from `checkpoints/last.safetensors` when it exists, and ends with
/// the same metrics and parameters as an uninterrupted run.
pub fn train(exp: &ExperimentVae, run: &RunDir, device: &Device, resume: bool) -> Result<Trained> {
    // On flowvae's worker pool, so the dense layers' products split over the workers.
    flowvae_nn::with_worker_pool(|| Ok(Trainer::start(exp.sections(), run, device, resume)?.fit()?))
}
