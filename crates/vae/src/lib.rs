//! # flowvae-vae
//!
//! Variational autoencoders whose approximate posterior is any stack of flows from
//! `flowvae-flows`: `q_K(z_K|x)` with `log q_K = log q₀ − Σ_k log|det J_k|`.
//!
//! - [`FlowVae`]: MLP (optionally gated) encoder whose heads are sized by the flow stack's
//!   amortized-parameter and context widths, the flow, and a decoder with a Bernoulli or
//!   Gaussian likelihood.
//! - [`objective`]: the ELBO (with `log p(z_K)`, not `p(z₀)`) with β warm-up, and the
//!   K-sample importance-weighted bound.
//! - [`nll`]: the importance-sampled test log-likelihood (S = 5000 in papers), encoder once
//!   per image, samples in chunks, f64 accumulation.

pub mod config;
pub mod conv;
pub mod decoder;
pub mod dense;
pub mod encoder;
pub mod model;
pub mod nll;
pub mod objective;

pub use config::{Architecture, ConvConfig, DecoderConfig, EncoderConfig, Likelihood, ModelConfig};
pub use model::{FlowVae, SampleTerms};
pub use nll::log_likelihood;
pub use objective::{bound_terms, warmup_beta, Bound, BoundTerms};
