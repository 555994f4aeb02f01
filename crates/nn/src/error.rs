//! Typed errors of the nn crate.

/// What can go wrong in the parameter store, the layers and checked files.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a parameter file failed, or it does not fit the model.
    #[error("{path}: {message}")]
    Params {
        /// The file (or `<memory>`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Result type of the nn crate.
pub type Result<T> = std::result::Result<T, NnError>;
