//! Typed errors of the runner: each names the file, the field or the run it is about.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, running or reporting an experiment.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A YAML file that does not describe a valid experiment.
    #[error("{}{}: {message}", file.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Config {
        file: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {message}", path.display())]
    Io {
        path: PathBuf,
        message: String,
        source: std::io::Error,
    },
    /// Training produced a non-finite value.
    #[error("non-finite {what}")]
    NonFinite {
        what: String,
        /// Optimizer step, or 0 where not meaningful.
        step: usize,
    },
    #[error(transparent)]
    Flow(#[from] flowvae_flows::FlowError),
    #[error(transparent)]
    Train(#[from] flowvae_train::TrainError),
    #[error(transparent)]
    Nn(#[from] flowvae_nn::NnError),
    #[error(transparent)]
    Vae(#[from] flowvae_vae::VaeError),
    #[error(transparent)]
    Data(#[from] flowvae_data::DataError),
    #[error(transparent)]
    Plot(#[from] flowvae_plot::PlotError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl RunnerError {
    /// An I/O error about `path`.
    pub fn io(
        path: impl Into<PathBuf>,
        message: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            message: message.into(),
            source,
        }
    }
}

/// Result type of the runner.
pub type Result<T> = std::result::Result<T, RunnerError>;
