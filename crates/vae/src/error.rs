//! Typed errors of the VAE crate.

use flowvae_flows::FlowError;
use flowvae_nn::NnError;

/// Everything that can go wrong while building or evaluating a Flow-VAE.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The posterior's flow stack failed.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// A layer, the parameter store or a fused op failed.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A model setting does not fit the data or is out of range.
    #[error("{field}: {message}")]
    InvalidConfig {
        /// Path of the setting, e.g. `model.conv`.
        field: String,
        /// What was expected.
        message: String,
    },
}

/// Result type of the VAE crate.
pub type Result<T> = std::result::Result<T, VaeError>;
