//! # flowvae-nn
//!
//! The neural-network toolkit under flowvae's flows and VAEs, with nothing flow-specific in
//! it: a seeded parameter store ([`ParamStore`]) and seeded random streams, dense layers and
//! MLPs, numerically stable functions, checksummed safetensors files, and the CPU kernel
//! toolkit (fused dense layer, BCE, column split, the gemm worker pool, SIMD dispatch, fast
//! math, the gradient sink) with the [`Runtime`] that says how many threads they use and which
//! are on.
//!
//! Key design decision: every random number comes from our own seeded streams (candle's CPU
//! generator cannot be seeded), and every fused kernel has an unfused fallback on candle's
//! ops that the tests compare it with, so speed never changes what is computed.
#![warn(missing_docs)]

pub mod checked_file;
pub mod dense;
pub mod error;
pub mod fast_math;
pub mod fused;
pub mod fused_bce;
pub mod fused_linear;
pub mod fused_split;
pub mod grad_sink;
pub mod parallel_gemm;
pub mod params;
pub mod rng;
pub mod runtime;
pub mod simd;
pub mod small_gemm;
pub mod stable;
pub mod units;

pub use error::{NnError, Result};
pub use params::{ParamStore, PARAMS_FORMAT};
pub use rng::{seeded, standard_normal, SeededRng};
pub use runtime::{FusedOp, Runtime};
pub use units::human_bytes;
