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
//! - Randomness is seeded and ours ([`seeded`]): candle's CPU generator cannot be seeded.
//!
//! Compared with a design in which each flow owns an `amortized` and a `global` code path,
//! every flow here is written once against a flat parameter row ([`ParamSource`]) that
//! broadcasts over the batch; global parameters are a `(1, P)` row. That is the key design
//! decision: a new flow gets global, amortized and batched-posterior use from one `forward`.
//!
//! ## Where things are
//! The [`Flow`] trait and [`Composed`]/[`Inverted`]; the layers (`layers/`, one family per
//! file); [`FlowSpec`] (the YAML form of a stack, with [`FlowSpec::build`] per entry and
//! [`build_stack`]); the base densities and [`FlowDistribution`]; the check API
//! ([`check_flow`], [`check_composed`]); and private CPU kernels (`fused/`) behind the layers.

#![warn(missing_docs)]

mod base;
mod bases;
mod check;
mod composed;
mod conditional_base;
mod distribution;
mod error;
mod flow;
mod fused;
mod layers;
mod param_source;
mod spec;

pub use base::{standard_normal_log_prob, DiagGaussian, LOG_2PI};
pub use bases::{Base, BaseSpec};
pub use check::{
    brute_force_log_det, check_composed, check_flow, log_abs_det, perturb_parameters, CheckReport,
};
pub use composed::{Composed, Inverted};
pub use conditional_base::ConditionalBase;
pub use distribution::FlowDistribution;
pub use error::{FlowError, Result};
pub use flow::{expand_rows, Conditioning, Flow};
pub use flowvae_nn::{seeded, FusedOp, ParamStore, Runtime, SeededRng, Stream};
pub use layers::actnorm::ActNorm;
pub use layers::additive_coupling::AdditiveCoupling;
pub use layers::autoregressive::AutoregressiveAffine;
pub use layers::batch_norm::BatchNorm;
pub use layers::coupling::AffineCoupling;
pub use layers::elementwise::{Elementwise, ElementwiseAffine, ElementwiseMap};
pub use layers::householder::Householder;
pub use layers::lu_linear::LuLinear;
pub use layers::made::Made;
pub use layers::permutation::Permutation;
pub use layers::planar::Planar;
pub use layers::planar_stack::PlanarStack;
pub use layers::radial::Radial;
pub use layers::spline::layers::{AutoregressiveSpline, ElementwiseSpline, SplineCoupling};
pub use layers::spline::{RqSpline, MAX_BINS};
pub use layers::sylvester::{Sylvester, SylvesterKind};
pub use param_source::{split_columns, Block, ParamSource};
pub use spec::{
    build_stack, AdditiveSpec, BatchNormSpec, ElementSplineSpec, FlowSpec, HouseholderSpec,
    LayerSite, LeakyReluSpec, LuSpec, NetSpec, NoSettings, OrthogonalSpec, PermuteSpec, RepeatSpec,
    SplineSpec, StackOptions, MAX_LAYERS, MAX_WIDTH,
};
