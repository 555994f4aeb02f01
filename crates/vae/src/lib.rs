//! # flowvae-vae
//!
//! Variational autoencoders whose approximate posterior is any stack of flows from
//! `flowvae-flows`: `q_K(z_K|x)` with `log q_K = log q₀ − Σ_k log|det J_k|`.
//!
//! - [`FlowVae`]: MLP (optionally gated) encoder whose heads are sized by the flow stack's
//!   amortized-parameter and context widths, the flow, and a decoder with a Bernoulli or
//!   Gaussian likelihood.
//! - [`Prior`]: `p(z)`, the standard normal, a learned mixture, the VampPrior or a flow.
//! - [`bound_terms`]: the ELBO (with `log p(z_K)`, not `p(z₀)`) with β warm-up, and the
//!   K-sample importance-weighted bound.
//! - [`log_likelihood`]: the importance-sampled test log-likelihood (S = 5000 in papers), encoder once
//!   per image, samples in chunks, f64 accumulation.

//!
//! Key design decision: the model never special-cases a flow. The encoder's heads are sized
//! from the stack's `num_amortized_params()` and `context_dim()`, so any stack that passes the
//! flows crate's check API works as a posterior, amortized or global, unchanged.
#![warn(missing_docs)]

mod config;
mod conv;
mod decoder;
mod dense;
mod encoder;
mod error;
mod model;
mod nll;
mod objective;
mod prior;

pub use config::{
    Activation, Architecture, ConvConfig, DecoderConfig, EncoderConfig, Likelihood, ModelConfig,
};
pub use decoder::Decoder;
pub use encoder::{repeat_rows, Encoder, EncoderOutput};
pub use error::{Result, VaeError};
pub use model::{FlowVae, SampleTerms};
pub use nll::{log_likelihood, log_likelihood_replicated, LogSumExp};
pub use objective::{bound_terms, warmup_beta, with_free_bits, Bound, BoundTerms};
pub use prior::{Prior, PriorSpec, MAX_COMPONENTS};
