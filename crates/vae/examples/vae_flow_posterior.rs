//! Train a small VAE whose posterior q(z|x) is an amortized flow, in your own loop: the
//! embedded UCI digits, dynamic binarization, planar layers whose parameters come from the
//! encoder, the ELBO with KL warm-up, then the test log-likelihood by importance sampling.
//!
//!     cargo run --release -p flowvae-vae --example vae_flow_posterior

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use flowvae_flows::{seeded, FlowSpec, ParamStore};
use flowvae_nn::standard_normal;
use flowvae_vae::{bound_terms, log_likelihood, warmup_beta, Bound, FlowVae, ModelConfig};
use rand::Rng;

/// Trains for `epochs` epochs and returns the mean test `log p(x)` in nats (S = 100).
pub fn train(epochs: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let splits = flowvae_data::digits_splits(0)?;
    let (train, test) = (&splits.train, &splits.test);
    let config = ModelConfig {
        latent: 4,
        ..ModelConfig::default()
    };
    let flow: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(
        serde_yaml::Deserializer::from_str("- planar: {k: 4}\n"),
    )?;
    let store = ParamStore::new(0);
    let model = FlowVae::new(&store, &config, &flow, train.dim, 0, DType::F32, &device)?;
    let params = ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut adam = AdamW::new(store.vars(), params)?;
    let mut rng = seeded(0, flowvae_flows::Stream::Scratch("example"));
    for epoch in 0..epochs {
        let beta = warmup_beta(epoch, 5, 0.0);
        for rows in (0..train.n).collect::<Vec<_>>().chunks(100) {
            // Dynamic binarization: a fresh Bernoulli draw of every pixel in every epoch.
            let pixels: Vec<f32> = rows
                .iter()
                .flat_map(|&r| train.row(r).to_vec())
                .map(|p| f32::from(rng.random::<f32>() < p))
                .collect();
            let x = Tensor::from_vec(pixels, (rows.len(), train.dim), &device)?;
            let eps = standard_normal(&mut rng, (rows.len(), config.latent), DType::F32, &device)?;
            let terms = bound_terms(&model, &x, &eps, Bound::Elbo, 1, beta)?;
            adam.backward_step(&terms.objective.mean_all()?.neg()?)?;
        }
    }
    let x = test.batch_tensor(&(0..test.n).collect::<Vec<_>>(), &device)?;
    let x = x.ge(0.5)?.to_dtype(DType::F32)?;
    let log_p = log_likelihood(
        &model,
        &x,
        100,
        100,
        &mut seeded(0, flowvae_flows::Stream::Scratch("nll")),
    )?;
    Ok(log_p.iter().sum::<f64>() / log_p.len() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log_p = train(20)?;
    println!("test log p(x) {log_p:.2} nats (S = 100, thresholded test digits)");
    Ok(())
}
