//! Training checkpoints: model parameters under their own names (plain safetensors, readable
//! from Python), optimizer moments under `optimizer.first.<name>` / `optimizer.second.<name>`,
//! and the loop's state plus a checksum in the safetensors metadata. Written atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use flowvae_flows::ParamStore;

use crate::error::{Result, RunnerError};
use crate::optim::Optimizer;
use crate::run_dir::write_atomic;

const FORMAT: &str = "flowvae-checkpoint-1";
const FIRST: &str = "optimizer.first.";
const SECOND: &str = "optimizer.second.";

/// Where the training loop stood when the checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopState {
    /// Epochs completed; training resumes at this epoch.
    pub epochs_done: usize,
    pub optimizer_steps: usize,
    pub best_val: f64,
    pub best_epoch: usize,
    /// Training wall time so far, seconds.
    pub elapsed: f64,
    /// Factor applied to the configured learning rate by NaN rollbacks (1 without).
    pub lr_scale: f64,
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Checkpoint {
    pub params: BTreeMap<String, Tensor>,
    pub first: BTreeMap<String, Tensor>,
    pub second: BTreeMap<String, Tensor>,
    pub state: LoopState,
}

/// FNV-1a over names and tensor bytes in name order: detects a damaged file.
fn checksum(tensors: &BTreeMap<String, Tensor>) -> Result<String> {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, t) in tensors {
        eat(name.as_bytes());
        let values: Vec<f32> = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        for v in values {
            eat(&v.to_le_bytes());
        }
    }
    Ok(format!("{hash:016x}"))
}

/// Writes model, optimizer and loop state to `path` atomically.
pub fn save(
    path: &Path,
    store: &ParamStore,
    optimizer: Option<&Optimizer>,
    state: &LoopState,
) -> Result<()> {
    let mut tensors = store.tensors()?;
    if let Some(opt) = optimizer {
        let (first, second) = opt.state();
        for ((name, _), (m, v)) in store.named_vars().iter().zip(first.iter().zip(second)) {
            tensors.insert(format!("{FIRST}{name}"), m.clone());
            tensors.insert(format!("{SECOND}{name}"), v.clone());
        }
    }
    let metadata: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("epochs_done", state.epochs_done.to_string()),
        ("optimizer_steps", state.optimizer_steps.to_string()),
        ("best_val", state.best_val.to_string()),
        ("best_epoch", state.best_epoch.to_string()),
        ("elapsed", state.elapsed.to_string()),
        ("lr_scale", state.lr_scale.to_string()),
        ("checksum", checksum(&tensors)?),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = safetensors::serialize(tensors.iter(), Some(metadata)).map_err(|e| {
        RunnerError::Config {
            file: path.to_path_buf(),
            location: None,
            message: format!("cannot serialise the checkpoint: {e}"),
        }
    })?;
    write_atomic(path, &bytes)
}

/// Reads a checkpoint written by [`save`], verifying its format and checksum.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bad = |message: String| RunnerError::Config {
        file: path.to_path_buf(),
        location: None,
        message,
    };
    let bytes =
        std::fs::read(path).map_err(|e| RunnerError::io(path, "cannot read the checkpoint", e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not a flowvae training checkpoint (expected format {FORMAT})"
        )));
    }
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
    let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| bad(format!("unreadable tensors: {e}")))?
        .into_iter()
        .collect();
    let expected = field("checksum")?;
    let found = checksum(&tensors)?;
    if found != expected {
        return Err(bad(format!(
            "checksum mismatch (file says {expected}, data gives {found}): the file is damaged"
        )));
    }
    let state = LoopState {
        epochs_done: number("epochs_done")? as usize,
        optimizer_steps: number("optimizer_steps")? as usize,
        best_val: number("best_val")?,
        best_epoch: number("best_epoch")? as usize,
        elapsed: number("elapsed")?,
        lr_scale: number("lr_scale").unwrap_or(1.0),
    };
    let mut checkpoint = Checkpoint {
        params: BTreeMap::new(),
        first: BTreeMap::new(),
        second: BTreeMap::new(),
        state,
    };
    for (name, t) in tensors {
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
                    map.get(n).cloned().ok_or_else(|| RunnerError::Config {
                        file: path.to_path_buf(),
                        location: None,
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
