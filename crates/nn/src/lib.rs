//! # flowvae-nn
//!
//! The neural-network toolkit under flowvae's flows and VAEs, with nothing flow-specific in
//! it: a seeded parameter store ([`ParamStore`]) and seeded random streams, dense layers and
//! MLPs, numerically stable functions, checksummed safetensors files, and the CPU kernel
//! toolkit (fused dense layer, whose MADE-masked products skip the blocks their masks zero,
//! BCE, column split, the gemm worker pool, SIMD dispatch, fast math, the gradient sink) with
//! the [`Runtime`] that says how many threads they use and which are on.
//!
//! Key design decision: every random number comes from our own seeded streams (candle's CPU
//! generator cannot be seeded), and every fused kernel has an unfused fallback on candle's
//! ops that the tests compare it with, so speed never changes what is computed.
#![warn(missing_docs)]

mod checked_file;
mod dense;
mod error;
mod fast_math;
mod fused;
mod fused_bce;
mod fused_linear;
mod fused_linear_grad;
mod fused_split;
mod grad_sink;
mod parallel_gemm;
mod params;
mod rng;
mod runtime;
mod simd;
mod small_gemm;
mod stable;
mod staircase;
mod units;
mod weight_mask;

pub use checked_file::{parse_checked, read_checked, serialize_checked, CheckedFile, CHECKSUM_KEY};
pub use dense::{soft_clamp, Activation, Linear, Mlp};
pub use error::{NnError, Result};
pub use fused_bce::bce_with_logits_sum;
pub use fused_linear::{linear, masked_linear};
pub use fused_split::split_columns;
pub use grad_sink::backward as backward_with_sink;
pub use parallel_gemm::{install as with_worker_pool, workers};
pub use params::{read_safetensors, ParamStore, PARAMS_FORMAT};
pub use rng::{permutation, seeded, standard_normal, uniform, SeededRng, Stream};
pub use runtime::{FusedOp, Runtime};
pub use stable::{bce_with_logits, log1p_exp, log_sigmoid, logaddexp, logsumexp, softplus};
pub use units::human_bytes;

/// Building blocks for fused CPU kernels (candle custom ops) written on top of this crate:
/// row loops over f32/f64 storage, run-time SIMD dispatch, small matrix products, fast
/// scalar maths, the gradient sink's deposit and the gemm worker pool's matmul.
pub mod kernels {
    pub use crate::fast_math::{
        bce_with_logits as bce_with_logits_f32, exp_nonpositive, log1p_unit, sigmoid,
    };
    pub use crate::fused::{enabled, for_rows, run_f32_or_f64, slice, to_f64, Kernel};
    pub use crate::grad_sink::deposit;
    pub use crate::parallel_gemm::{matmul, Element, Strided};
    pub use crate::simd::dispatch;
    pub use crate::small_gemm::{add_q_times, at_b};
}
