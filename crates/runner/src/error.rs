//! Typed errors of the runner: each names the file, the field or the run it is about.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, running or reporting an experiment.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A YAML file that does not describe a valid experiment.
    #[error("{}{}: {message}", file.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Config {
        /// The file (or the flag, for command-line values).
        file: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        message: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Training produced a non-finite value.
    #[error("non-finite {what}")]
    NonFinite {
        /// The value and where it appeared.
        what: String,
        /// Optimizer step, or 0 where not meaningful.
        step: usize,
    },
    /// A flow stack failed.
    #[error(transparent)]
    Flow(#[from] flowvae_flows::FlowError),
    /// Training, a checkpoint or a run folder failed.
    #[error(transparent)]
    Train(#[from] flowvae_train::TrainError),
    /// A layer, the parameter store or a checked file failed.
    #[error(transparent)]
    Nn(#[from] flowvae_nn::NnError),
    /// Building or evaluating a Flow-VAE failed.
    #[error(transparent)]
    Vae(#[from] flowvae_vae::VaeError),
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] flowvae_data::DataError),
    /// Writing a plot failed.
    #[error(transparent)]
    Plot(#[from] flowvae_plot::PlotError),
    /// A tensor operation failed inside candle.
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
