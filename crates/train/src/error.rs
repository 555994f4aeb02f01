//! Typed errors of the training crate: each names the file, the run or the value it is about.

use std::path::PathBuf;

/// Everything that can go wrong while training, checkpointing or writing a run folder.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file (checkpoint, run folder, name) that is not what it must be.
    #[error("{}: {message}", file.display())]
    File {
        /// The file or folder.
        file: PathBuf,
        /// What was expected.
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
    /// The run folder exists already (runs are never overwritten unless asked).
    #[error("{}: the run folder exists already; choose another --run-id or pass --force", .0.display())]
    RunExists(PathBuf),
    /// `--force` was asked to replace a folder that is not a flowvae run folder.
    #[error("{}: not a flowvae run folder (no config.yaml, or a link); --force replaces only run folders, so nothing was deleted", .0.display())]
    NotARun(PathBuf),
    /// Another process holds the run folder.
    #[error("{}: locked by another flowvae process ({holder}); remove the lock file only if that process is gone", path.display())]
    Locked {
        /// The run folder.
        path: PathBuf,
        /// The lock file's content (the holder's process id).
        holder: String,
    },
    /// Training produced a non-finite value.
    #[error("non-finite {what}")]
    NonFinite {
        /// The value and where it appeared.
        what: String,
        /// Optimizer step, or 0 where not meaningful.
        step: usize,
    },
    /// The parameter store, a layer or a checked file failed.
    #[error(transparent)]
    Nn(#[from] flowvae_nn::NnError),
    /// Building or evaluating the model failed.
    #[error(transparent)]
    Vae(#[from] flowvae_vae::VaeError),
    /// Loading the data failed.
    #[error(transparent)]
    Data(#[from] flowvae_data::DataError),
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl TrainError {
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

/// Result type of the training crate.
pub type Result<T> = std::result::Result<T, TrainError>;
