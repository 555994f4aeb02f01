//! `flowvae bench agree`: the same Flow-VAE, parameters and batch on two devices (the CPU and
//! a GPU), compared term by term — the check that the GPU path computes what the CPU path does.
//!
//! For each posterior (planar, Sylvester, affine coupling, IAF) the reference model is built
//! on the CPU; the other device's model is built with another seed and then given the
//! reference's parameters through a safetensors file, so the comparison also covers moving
//! trained weights between devices. `x` and `ε` are drawn on the host from our seeded streams
//! and copied, as training does. Compared per sample, in f32: the draw `z_K`, `log q_K(z_K|x)`
//! (which holds the flow's log-determinants), `log p(x|z_K)` and `−ELBO`.

use candle_core::{DType, Device, Tensor};
use flowvae_data::Dataset;
use flowvae_nn::{seeded, standard_normal};
use serde::Serialize;

use super::bench::{bench_model, bench_stack};
use crate::error::{Result, RunnerError};
use crate::run::device::describe_device;

/// The posteriors compared, as YAML stacks.
pub const AGREEMENT_STACKS: [(&str, &str); 4] = [
    ("planar", "[{planar: {k: 16}}]"),
    (
        "sylvester_orthogonal",
        "[{sylvester_orthogonal: {k: 4, m: 32}}]",
    ),
    (
        "affine_coupling",
        "[{affine_coupling: {k: 4, hidden: [128], context: 64}}]",
    ),
    ("iaf", "[{iaf: {k: 2, hidden: [320, 320], context: 64}}]"),
];

/// Images in the compared batch.
const BATCH: usize = 100;

/// The largest disagreement of one posterior, each `max |a − b| / max(1, |a|)` over the batch.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// The posterior's name.
    pub flow: String,
    /// The two devices, e.g. `cpu` and `cuda:0 (NVIDIA H200)`.
    pub devices: (String, String),
    /// The draw `z_K`.
    pub z: f64,
    /// `log q_K(z_K|x)`, log-determinants included.
    pub log_q: f64,
    /// `log p(x|z_K)`.
    pub log_px_z: f64,
    /// `−ELBO` per image.
    pub neg_elbo: f64,
}

impl Agreement {
    /// The largest of the four errors.
    pub fn worst(&self) -> f64 {
        [self.z, self.log_q, self.log_px_z, self.neg_elbo]
            .into_iter()
            .fold(0.0, f64::max)
    }
}

/// `max |a − b| / max(1, |a|)`, elementwise over two tensors of one shape.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a: Vec<f64> = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let b: Vec<f64> = b
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    Ok(a.iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0.0, f64::max))
}

/// Compares every posterior of [`AGREEMENT_STACKS`] on the CPU and on `other`, on the first
/// 100 images of `data` (flattened, in `[0, 1]`).
pub fn device_agreement(data: &Dataset, other: &Device, seed: u64) -> Result<Vec<Agreement>> {
    if data.n < BATCH {
        return Err(RunnerError::Config {
            file: "--data".into(),
            location: None,
            message: format!("needs at least {BATCH} images, got {}", data.n),
        });
    }
    let cpu = Device::Cpu;
    let x = Tensor::from_slice(&data.images[..BATCH * data.dim], (BATCH, data.dim), &cpu)?;
    let folder =
        tempfile::tempdir().map_err(|e| RunnerError::io("a temp folder", "cannot create", e))?;
    let mut rows = Vec::new();
    for (name, yaml) in AGREEMENT_STACKS {
        let stack = bench_stack(0, Some(yaml))?;
        let (reference_store, reference) = bench_model(&stack, seed, &cpu)?;
        let (other_store, model) = bench_model(&stack, seed.wrapping_add(1), other)?;
        let weights = folder.path().join(format!("{name}.safetensors"));
        flowvae_train::write_atomic(&weights, &reference_store.to_safetensors_bytes()?)?;
        other_store.load_into(&weights)?;
        let mut noise = seeded(seed, flowvae_nn::Stream::BenchNoise);
        let eps = standard_normal(&mut noise, (BATCH, reference.latent()), DType::F32, &cpu)?;
        let want = reference.terms(&x, &reference.encode(&x)?, &eps)?;
        let (x_other, eps_other) = (x.to_device(other)?, eps.to_device(other)?);
        let got = model.terms(&x_other, &model.encode(&x_other)?, &eps_other)?;
        let neg_elbo =
            |t: &flowvae_vae::SampleTerms| -> Result<Tensor> { Ok((t.kl()? - &t.log_px_z)?) };
        rows.push(Agreement {
            flow: name.into(),
            devices: (describe_device(&cpu), describe_device(other)),
            z: relative_error(&want.z, &got.z)?,
            log_q: relative_error(&want.log_qz, &got.log_qz)?,
            log_px_z: relative_error(&want.log_px_z, &got.log_px_z)?,
            neg_elbo: relative_error(&neg_elbo(&want)?, &neg_elbo(&got)?)?,
        });
    }
    Ok(rows)
}
