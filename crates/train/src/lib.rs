//! # flowvae-train
//!
//! Training Flow-VAEs in run folders: the [`Trainer`] (epochs, KL warm-up, validation,
//! early stopping, rollback) fed only the config sections it needs ([`VaeSections`]), and the
//! machinery under it and under every other run: optimizers (Adam, Adamax, with a fused CPU
//! update), checkpoints with their loop state, the NaN/Inf policy, run folders (locked,
//! atomic writes, plain names) and `metrics.csv`.
//!
//! Key design decision: nothing a user trained is lost or overwritten without being asked.
//! Every file is written to a temporary sibling and renamed; checkpoints carry a checksum and
//! the loop state, so a resumed run continues bit-identically; `--force` replaces only folders
//! that are run folders; a non-finite value never touches the last good checkpoint.
#![warn(missing_docs)]

mod background_write;
mod checkpoint;
mod config;
mod cpu_time;
mod diagnostics;
mod error;
mod faults;
mod metrics;
mod names;
mod nan_guard;
mod optim;
mod progress;
mod run_dir;
mod trainer;
mod values;

pub use background_write::BackgroundWriter;
pub use checkpoint::{
    load as load_checkpoint, save as save_checkpoint, to_bytes as checkpoint_bytes, Checkpoint,
    LoopState, FORMAT as CHECKPOINT_FORMAT,
};
pub use config::{FreeBits, ObjectiveConfig, TrainVae};
pub use cpu_time::process_cpu_seconds;
pub use diagnostics::{latent_diagnostics, LatentDiagnostics, ACTIVE_UNIT_THRESHOLD};
pub use error::{Result, TrainError};
pub use faults::{install as install_faults, nan_at as fault_nan_at, Faults};
pub use metrics::{read_metrics, MetricsWriter};
pub use names::{check_plain_name, is_run_folder, plain_name_problem, MAX_NAME_BYTES};
pub use nan_guard::{non_finite_parameter, non_finite_term, NanGuard, NanPolicy, Reaction};
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind};
pub use progress::Progress;
pub use run_dir::{timestamp_id, write_atomic, RunDir};
pub use trainer::{build_model, evaluate_elbo, Averages, Trained, Trainer, VaeSections, METRICS};
pub use values::{Positive, UnitInterval};
