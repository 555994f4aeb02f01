//! Runs a CPU kernel compiled for the widest vector instruction set the machine has.
//!
//! The workspace builds for the portable x86-64 baseline (SSE2), so plain loops vectorize
//! four lanes wide and `sqrt`/division-heavy kernels such as Adam's are bound by that. [`dispatch`]
//! compiles the closure's body once more inside `pulp`'s AVX2+FMA and AVX-512 functions and
//! picks one at run time by CPU detection, so binaries stay portable. Elsewhere it just calls `f`.

/// Calls `f`, compiled for AVX-512 or AVX2+FMA when the CPU has them.
///
/// Mark the closure `#[inline(always)]` (`dispatch(#[inline(always)] || ...)`) and the helpers
/// it calls too: the body is only compiled with those features where it is inlined, and the
/// compiler will not inline a large body that has three callers (one per instruction set).
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
