//! Training checkpoints: model parameters under their own names (plain safetensors, readable
//! from Python), optimizer moments under `optimizer.first.<name>` / `optimizer.second.<name>`,
//! and the loop's state in the safetensors metadata, with one checksum over all of it. Written
//! atomically.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use flowvae_flows::ParamStore;
use flowvae_nn::{parse_checked, serialize_checked};

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::run_dir::write_atomic;

/// The format of `last.safetensors`; version 2 checksums the loop state too.
pub const FORMAT: &str = "flowvae-checkpoint-2";
const LEGACY_FORMAT: &str = "flowvae-checkpoint-1";
const FIRST: &str = "optimizer.first.";
const SECOND: &str = "optimizer.second.";

/// Where the training loop stood when the checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopState {
    /// Epochs completed; training resumes at this epoch.
    pub epochs_done: usize,
    /// Optimizer steps taken (the bias correction of Adam depends on it).
    pub optimizer_steps: usize,
    /// Best validation loss so far (early stopping).
    pub best_val: f64,
    /// Epoch of the best validation loss.
    pub best_epoch: usize,
    /// Training wall time so far, seconds.
    pub elapsed: f64,
    /// Factor applied to the configured learning rate by NaN rollbacks (1 without).
    pub lr_scale: f64,
    /// Training CPU time so far, seconds, across interruptions; `None` when the run resumed
    /// from a checkpoint written before this was recorded.
    pub cpu_seconds: Option<f64>,
}

impl LoopState {
    /// Before the first epoch: nothing done, no best yet.
    pub fn start() -> Self {
        Self {
            epochs_done: 0,
            optimizer_steps: 0,
            best_val: f64::INFINITY,
            best_epoch: 0,
            elapsed: 0.0,
            lr_scale: 1.0,
            cpu_seconds: Some(0.0),
        }
    }
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// The model's parameters by name.
    pub params: BTreeMap<String, Tensor>,
    /// The optimizer's first moments by parameter name.
    pub first: BTreeMap<String, Tensor>,
    /// The optimizer's second moments (or infinity norms) by parameter name.
    pub second: BTreeMap<String, Tensor>,
    /// Where the loop stood.
    pub state: LoopState,
    /// The rows of `metrics.csv` up to this checkpoint, one per line (no header).
    pub metrics: String,
}

/// Writes model, optimizer and loop state to `path` atomically; the checksum covers the
/// tensors and the loop state ([`flowvae_nn::serialize_checked`]).
pub fn save(
    path: &Path,
    store: &ParamStore,
    optimizer: Option<&Optimizer>,
    state: &LoopState,
    metrics_rows: &str,
) -> Result<()> {
    write_atomic(
        path,
        &to_bytes(path, store, optimizer, state, metrics_rows)?,
    )
}

/// The bytes [`save`] writes to `path` (named in errors): a snapshot, so that a later
/// optimizer step cannot change them while they are written in the background.
pub fn to_bytes(
    path: &Path,
    store: &ParamStore,
    optimizer: Option<&Optimizer>,
    state: &LoopState,
    metrics_rows: &str,
) -> Result<Vec<u8>> {
    let mut tensors = store.tensors()?;
    if let Some(opt) = optimizer {
        let (first, second) = opt.state();
        for ((name, _), (m, v)) in store.named_vars().iter().zip(first.iter().zip(second)) {
            tensors.insert(format!("{FIRST}{name}"), m.clone());
            tensors.insert(format!("{SECOND}{name}"), v.clone());
        }
    }
    let cpu = state.cpu_seconds.map(|s| ("cpu_seconds", s.to_string()));
    let metadata: BTreeMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("epochs_done", state.epochs_done.to_string()),
        ("optimizer_steps", state.optimizer_steps.to_string()),
        ("best_val", state.best_val.to_string()),
        ("best_epoch", state.best_epoch.to_string()),
        ("elapsed", state.elapsed.to_string()),
        ("lr_scale", state.lr_scale.to_string()),
        ("metrics", metrics_rows.to_string()),
    ]
    .into_iter()
    .chain(cpu)
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    serialize_checked(&tensors, metadata).map_err(|e| TrainError::File {
        file: path.to_path_buf(),
        message: format!("cannot serialise the checkpoint: {e}"),
    })
}

/// Reads a checkpoint written by [`save`], verifying its format and checksum (which covers
/// the loop state as well as the tensors).
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bad = |message: String| TrainError::File {
        file: path.to_path_buf(),
        message,
    };
    let bytes =
        std::fs::read(path).map_err(|e| TrainError::io(path, "cannot read the checkpoint", e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let format = header.metadata().as_ref().and_then(|m| m.get("format"));
    if format.map(String::as_str) == Some(LEGACY_FORMAT) {
        return Err(bad(format!(
            "written by an older flowvae ({LEGACY_FORMAT}), whose checksum does not cover the \
             loop state; upgrade it with `python3 scripts/check_safetensors.py FILE --rewrite \
             FILE` or continue it with that version"
        )));
    }
    let file = parse_checked(path, &bytes, device)?;
    let info = file.metadata;
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not a flowvae training checkpoint (expected format {FORMAT})"
        )));
    }
    let state = read_loop_state(&info, bad)?;
    let metrics = match info.get("metrics") {
        Some(rows) => rows.clone(),
        None => legacy_metrics(path, state.epochs_done).map_err(bad)?,
    };
    let recorded = metrics.lines().count();
    if recorded != state.epochs_done {
        return Err(bad(format!(
            "records {recorded} rows of metrics for {} epochs done",
            state.epochs_done
        )));
    }
    let mut checkpoint = Checkpoint {
        params: BTreeMap::new(),
        first: BTreeMap::new(),
        second: BTreeMap::new(),
        state,
        metrics,
    };
    for (name, t) in file.tensors {
        if let Some(n) = name.strip_prefix(FIRST) {
            checkpoint.first.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix(SECOND) {
            checkpoint.second.insert(n.to_string(), t);
        } else {
            checkpoint.params.insert(name, t);
        }
    }
    Ok(checkpoint)
}

/// The loop state from a checkpoint's metadata `info`; `bad` makes the error for the file.
fn read_loop_state(
    info: &BTreeMap<String, String>,
    bad: impl Fn(String) -> TrainError,
) -> Result<LoopState> {
    let field = |key: &str| -> Result<String> {
        info.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("metadata lacks `{key}`")))
    };
    let number = |key: &str| -> Result<f64> {
        field(key)?
            .parse::<f64>()
            .map_err(|_| bad(format!("metadata `{key}` is not a number")))
    };
    let count = |key: &str| -> Result<usize> {
        field(key)?
            .parse::<usize>()
            .map_err(|_| bad(format!("metadata `{key}` is not a whole number")))
    };
    Ok(LoopState {
        epochs_done: count("epochs_done")?,
        optimizer_steps: count("optimizer_steps")?,
        best_val: number("best_val")?,
        best_epoch: count("best_epoch")?,
        elapsed: number("elapsed")?,
        lr_scale: number("lr_scale")?,
        // Absent from checkpoints written before it was recorded.
        cpu_seconds: match info.contains_key("cpu_seconds") {
            true => Some(number("cpu_seconds")?),
            false => None,
        },
    })
}

/// The metrics rows of a checkpoint upgraded from format 1 (which did not carry them): the
/// rows of the epochs done in the run's `metrics.csv` (`<run>/checkpoints/last.safetensors` →
/// `<run>/metrics.csv`), or an error when any is missing.
fn legacy_metrics(last: &Path, epochs_done: usize) -> std::result::Result<String, String> {
    let csv = last
        .parent()
        .and_then(Path::parent)
        .map(|run| run.join("metrics.csv"));
    let text = csv
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|l| {
            let epoch = l.split(',').next().and_then(|e| e.parse::<f64>().ok());
            epoch.is_some_and(|e| e < epochs_done as f64)
        })
        .collect();
    if rows.len() == epochs_done {
        Ok(rows.join("\n"))
    } else {
        Err(format!(
            "carries no metrics rows (upgraded from {LEGACY_FORMAT}) and metrics.csv holds {} of \
             its {epochs_done} epochs: the run cannot continue without a gap",
            rows.len()
        ))
    }
}

impl Checkpoint {
    /// Restores the optimizer's moments (in the store's sorted order) and step count.
    pub fn restore_optimizer(
        &self,
        optimizer: &mut Optimizer,
        store: &ParamStore,
        path: &Path,
    ) -> Result<()> {
        let names: Vec<String> = store.named_vars().into_iter().map(|(n, _)| n).collect();
        let pick = |map: &BTreeMap<String, Tensor>| -> Result<Vec<Tensor>> {
            names
                .iter()
                .map(|n| {
                    map.get(n).cloned().ok_or_else(|| TrainError::File {
                        file: path.to_path_buf(),
                        message: format!("no optimizer state for `{n}`"),
                    })
                })
                .collect()
        };
        if self.first.is_empty() {
            return Ok(());
        }
        optimizer.restore(
            pick(&self.first)?,
            pick(&self.second)?,
            self.state.optimizer_steps,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint upgraded from format 1: loop state but no metrics rows.
    fn upgraded(run: &Path, epochs_done: usize) -> std::path::PathBuf {
        let w = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        let tensors: BTreeMap<String, Tensor> = [("w".to_string(), w)].into();
        let meta: BTreeMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("epochs_done", epochs_done.to_string()),
            ("optimizer_steps", "6".into()),
            ("best_val", "1.5".into()),
            ("best_epoch", "1".into()),
            ("elapsed", "0.5".into()),
            ("lr_scale", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let path = run.join("checkpoints/last.safetensors");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serialize_checked(&tensors, meta).unwrap()).unwrap();
        path
    }

    #[test]
    fn training_cpu_time_is_kept_and_unknown_for_checkpoints_that_predate_it() {
        let run = tempfile::tempdir().unwrap();
        let path = upgraded(run.path(), 2);
        std::fs::write(run.path().join("metrics.csv"), "epoch,x\n0,1\n1,2\n").unwrap();
        let old = load(&path, &Device::Cpu).unwrap();
        assert_eq!(old.state.cpu_seconds, None);
        let store = ParamStore::from_tensors(old.params, candle_core::DType::F32).unwrap();
        let state = LoopState {
            cpu_seconds: Some(12.5),
            ..old.state
        };
        let bytes = to_bytes(&path, &store, None, &state, "0,1\n1,2").unwrap();
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(load(&path, &Device::Cpu).unwrap().state, state);
    }

    #[test]
    fn an_upgraded_checkpoint_takes_its_rows_from_metrics_csv_or_refuses_a_gap() {
        let run = tempfile::tempdir().unwrap();
        let path = upgraded(run.path(), 2);
        std::fs::write(run.path().join("metrics.csv"), "epoch,x\n0,1\n1,2\n2,3\n").unwrap();
        let ck = load(&path, &Device::Cpu).unwrap();
        assert_eq!(ck.metrics, "0,1\n1,2");
        std::fs::write(run.path().join("metrics.csv"), "epoch,x\n0,1\n").unwrap();
        let err = load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("holds 1 of its 2 epochs"), "{err}");
    }
}
