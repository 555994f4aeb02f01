//! How flowvae uses the CPU cores: candle's ops on one thread, the large matrix products on
//! flowvae's own worker pool.
//!
//! candle splits every matmul and element-wise op over its thread pool. On the small batches of
//! a Flow-VAE the element-wise ops lose more to synchronisation than they gain: on 2 cores a
//! training step got *slower* with candle's second thread. The large products of the dense
//! layers do scale, so those run through `gemm` on a pool of [`workers`] threads
//! (`flowvae_nn::with_worker_pool`), and the training loop runs on that pool so that a product
//! shares its work with the thread that asked for it. Adam and the planar stack spread their
//! chunks and rows over the same pool.
//!
//! The number of workers comes from the installed [`flowvae_flows::Runtime`] (the binary sets
//! it from `FLOWVAE_THREADS`; default: the available cores), and the binary pins candle's own
//! pool to one thread. Every parallel kernel splits work so that the numbers do not depend on
//! the count.

pub use flowvae_nn::workers;
