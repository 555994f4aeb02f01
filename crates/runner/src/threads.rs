//! How flowvae uses the CPU cores: candle's ops on one thread, the large matrix products on
//! flowvae's own worker pool.
//!
//! candle splits every matmul and element-wise op over its thread pool. On the small batches of
//! a Flow-VAE the element-wise ops lose more to synchronisation than they gain: on 2 cores a
//! training step got *slower* with candle's second thread. The large products of the dense
//! layers do scale, so those run through `gemm` on a pool of [`workers`] threads
//! (`flowvae_flows::parallel_gemm`), and the training loop runs on that pool so that a product
//! shares its work with the thread that asked for it. Adam and the planar stack spread their
//! chunks and rows over the same pool.
//!
//! `FLOWVAE_THREADS` sets the number of workers (default: the available cores). Every parallel
//! kernel splits work so that the numbers do not depend on it.

pub use flowvae_flows::parallel_gemm::workers;

/// Sets candle's own thread count (`RAYON_NUM_THREADS`) to 1 unless the user set it, and
/// returns the number of workers. Call it first thing in `main`, while the process has one
/// thread: changing the environment of a multi-threaded process is racy. Pinning the count
/// also stops candle 0.11 from re-reading `/proc/cpuinfo` on every matmul.
pub fn configure() -> usize {
    let set_by_user = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .is_some_and(|n| n > 0);
    if !set_by_user {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    workers()
}
