//! # flowvae-flows
//!
//! Normalizing flows on [candle](https://github.com/huggingface/candle) with log-determinants
//! verified against brute-force Jacobians. This crate knows nothing of VAEs: it provides
//! bijections on `(batch, dim)` tensors, a base density, a flow distribution, and the tools to
//! check a stack.
//!
//! ## Conventions
//! - [`Flow::forward`] is the **sampling** direction `z₀ → z_K`; [`Flow::inverse`] the density
//!   direction. Both return the mapped `(B, D)` tensor and `log|det J|` of the applied map,
//!   `(B,)`.
//! - Parameters are global (trainable tensors in a [`ParamStore`]) or **amortized**: read per
//!   sample from [`Conditioning::params`] `(B, P)`, where `P = num_amortized_params()`.
//!   [`Composed`] slices `P` among its layers in order. Flows with their own networks (coupling,
//!   MAF, IAF) may also read a context `(B, C)`.
//! - Randomness is seeded and ours (`flowvae_nn::rng`): candle's CPU generator cannot be seeded.
//!
//! Compared with a design in which each flow owns an `amortized` and a `global` code path,
//! every flow here is written once against a flat parameter row ([`param_source`]) that
//! broadcasts over the batch; global parameters are a `(1, P)` row.

pub mod actnorm;
pub mod autoregressive;
pub mod base;
pub mod check;
pub mod composed;
pub mod config;
pub mod coupling;
pub mod distribution;
pub mod elementwise;
pub mod error;
pub mod flow;
pub mod fused_bjorck;
pub mod fused_planar;
pub mod fused_sylvester;
pub mod made;
pub mod param_source;
pub mod permutation;
pub mod planar;
pub mod radial;
pub mod sylvester;
mod sylvester_q;

pub use base::{standard_normal_log_prob, DiagGaussian};
pub use composed::{Composed, Inverted};
pub use config::{build_stack, FlowSpec, StackOptions};
pub use distribution::FlowDistribution;
pub use error::{FlowError, Result};
pub use flow::{expand_rows, Conditioning, Flow};
pub use flowvae_nn::{seeded, FusedOp, ParamStore, Runtime, SeededRng};
