//! Typed errors of the flows crate.

/// Everything that can go wrong while building or applying a flow.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// `inverse` was called on a flow that has no inverse.
    #[error("flow `{0}` has no inverse")]
    NotInvertible(String),
    /// The conditioning handed to a flow does not fit what the flow expects.
    #[error("flow `{flow}`: {message}")]
    Conditioning {
        /// The flow's name.
        flow: String,
        /// What does not fit.
        message: String,
    },
    /// A flow configuration value is out of range.
    #[error("{field}: {message}")]
    InvalidConfig {
        /// Path of the value, e.g. `flow[2].planar.k`.
        field: String,
        /// What was expected.
        message: String,
    },
    /// Reading or writing a parameter file failed.
    #[error("{path}: {message}")]
    Params {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The parameter store, a layer or a checked file failed.
    #[error(transparent)]
    Nn(#[from] flowvae_nn::NnError),
}

/// Result type of the flows crate.
pub type Result<T> = std::result::Result<T, FlowError>;
