//! A seeded parameter store: the `VarBuilder` backend that owns every trainable tensor.
//!
//! `VarMap` initialises through candle's unseedable RNG and lists variables in hash order;
//! [`ParamStore`] draws initial values from a [`SeededRng`], keeps names sorted, and can be
//! pre-filled from a safetensors file so that a model built on it starts from saved values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::checked_file::{read_checked, serialize_checked};
use crate::error::{NnError, Result};
use crate::rng::{seeded, standard_normal, uniform, SeededRng};
use crate::units::human_bytes;

#[derive(Debug)]
struct Inner {
    vars: Mutex<BTreeMap<String, Var>>,
    rng: Mutex<SeededRng>,
    /// Names whose values came from a file, not from initialisation.
    loaded: Mutex<BTreeSet<String>>,
    /// Names a model asked for through a `VarBuilder`.
    requested: Mutex<BTreeSet<String>>,
    /// Bytes the parameters may take in all ([`ParamStore::with_memory_limit`]).
    limit: AtomicU64,
    /// The first parameter refused for want of memory.
    refused: Mutex<Option<String>>,
}

/// The format entry of parameter files' metadata (`best.safetensors`, 2-D models).
pub const PARAMS_FORMAT: &str = "flowvae-params-1";

/// Owner of all trainable tensors of a model, by dotted name (`flow.0.planar.u`).
#[derive(Debug, Clone)]
pub struct ParamStore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of a map we never leave
    // half-written; keep going with the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ParamStore {
    /// An empty store whose new tensors are initialised from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                vars: Mutex::new(BTreeMap::new()),
                rng: Mutex::new(seeded(seed, crate::Stream::ParamInit)),
                loaded: Mutex::new(BTreeSet::new()),
                requested: Mutex::new(BTreeSet::new()),
                limit: AtomicU64::new(u64::MAX),
                refused: Mutex::new(None),
            }),
        }
    }

    /// A store pre-filled from a safetensors file; a model built on it starts from those values.
    pub fn from_safetensors(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::from_tensors(read_safetensors(path, device)?, dtype)
    }

    /// A store pre-filled with `tensors`; a model built on it starts from those values.
    pub fn from_tensors(tensors: BTreeMap<String, Tensor>, dtype: DType) -> Result<Self> {
        let store = Self::new(0);
        let mut vars = lock(&store.inner.vars);
        let mut loaded = lock(&store.inner.loaded);
        for (name, tensor) in tensors {
            vars.insert(name.clone(), Var::from_tensor(&tensor.to_dtype(dtype)?)?);
            loaded.insert(name);
        }
        drop((vars, loaded));
        Ok(store)
    }

    /// After building a model on a pre-filled store: every loaded tensor was asked for and
    /// nothing had to be initialised, i.e. the file matches the model's architecture.
    pub fn check_complete(&self, source: &str) -> Result<()> {
        let loaded = lock(&self.inner.loaded).clone();
        let requested = lock(&self.inner.requested).clone();
        let err = |message: String| NnError::Params {
            path: source.to_string(),
            message,
        };
        if let Some(missing) = requested.iter().find(|n| !loaded.contains(*n)) {
            return Err(err(format!(
                "has no tensor `{missing}` that the model needs (another architecture?)"
            )));
        }
        if let Some(extra) = loaded.iter().find(|n| !requested.contains(*n)) {
            return Err(err(format!(
                "holds tensor `{extra}` that the model does not have (another architecture?)"
            )));
        }
        Ok(())
    }

    /// A `VarBuilder` whose `get` creates (seeded) or returns tensors of this store.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// The variable called `name`, if it exists.
    pub fn var(&self, name: &str) -> Option<Var> {
        lock(&self.inner.vars).get(name).cloned()
    }

    /// Whether `name` was filled from a file rather than initialised.
    pub fn was_loaded(&self, name: &str) -> bool {
        lock(&self.inner.loaded).contains(name)
    }

    /// All variables, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        lock(&self.inner.vars)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// All variables sorted by name, the order optimizers and checkpoints use.
    pub fn vars(&self) -> Vec<Var> {
        lock(&self.inner.vars).values().cloned().collect()
    }

    /// Total number of scalar parameters.
    pub fn num_scalars(&self) -> usize {
        lock(&self.inner.vars)
            .values()
            .map(|v| v.elem_count())
            .sum()
    }

    /// Snapshot of all tensors by name (detached copies share no storage with the variables).
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        lock(&self.inner.vars)
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?.detach())))
            .collect()
    }

    /// Writes every tensor to `path` as checked safetensors ([`crate::serialize_checked`]; the
    /// caller makes the write atomic).
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_safetensors_bytes()?).map_err(|e| NnError::Params {
            path: path.display().to_string(),
            message: format!("cannot write safetensors: {e}"),
        })
    }

    /// Every tensor as a safetensors file in memory, names sorted, with the format
    /// [`PARAMS_FORMAT`] and a checksum in its metadata (for atomic writes).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let metadata = [("format".to_string(), PARAMS_FORMAT.to_string())].into();
        serialize_checked(&self.tensors()?, metadata)
    }

    /// Refuses new parameters that would bring the store's total past `bytes`, before their
    /// memory is allocated: an absurd size in a config fails with the parameter's name.
    pub fn with_memory_limit(self, bytes: u64) -> Self {
        self.inner.limit.store(bytes, Ordering::Relaxed);
        self
    }

    /// The name of the first parameter refused by the memory limit, if any.
    pub fn refused(&self) -> Option<String> {
        lock(&self.inner.refused).clone()
    }

    /// Bytes the parameters take now.
    pub fn bytes_used(&self) -> u64 {
        lock(&self.inner.vars)
            .values()
            .map(|v| (v.elem_count() * v.dtype().size_in_bytes()) as u64)
            .sum()
    }

    /// Fails when a new `shape` of `dtype` would exceed the memory limit.
    fn check_room(&self, name: &str, shape: &Shape, dtype: DType) -> candle_core::Result<()> {
        let limit = self.inner.limit.load(Ordering::Relaxed);
        let bytes = shape
            .dims()
            .iter()
            .try_fold(dtype.size_in_bytes() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            })
            .unwrap_or(u64::MAX);
        let total = self.bytes_used().saturating_add(bytes);
        if total > limit {
            lock(&self.inner.refused).get_or_insert_with(|| name.to_string());
            candle_core::bail!(
                "parameter `{name}` of shape {:?} needs {}, which brings the parameters to {} \
                 against a limit of {}",
                shape.dims(),
                human_bytes(bytes),
                human_bytes(total),
                human_bytes(limit)
            );
        }
        Ok(())
    }

    /// Overwrites every existing variable from `path`; the file must hold exactly these names
    /// with these shapes, so a checkpoint of another architecture is refused, not half-loaded.
    pub fn load_into(&self, path: &Path) -> Result<()> {
        let shown = path.display().to_string();
        let vars = lock(&self.inner.vars);
        let device = match vars.values().next() {
            Some(v) => v.device().clone(),
            None => Device::Cpu,
        };
        let tensors = read_safetensors(path, &device)?;
        check_same_layout(&shown, &vars, &tensors)?;
        for (name, var) in vars.iter() {
            var.set(&tensors[name].to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    fn init_tensor(&self, shape: &Shape, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut rng = lock(&self.inner.rng);
        let t = match init {
            Init::Const(v) => Tensor::full(v, shape, dev)?.to_dtype(dtype)?,
            Init::Randn { mean, stdev } => {
                (standard_normal(&mut rng, shape, dtype, dev)? * stdev)?.affine(1.0, mean)?
            }
            Init::Uniform { lo, up } => uniform(&mut rng, shape, lo, up, dtype, dev)?,
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = match fan {
                    FanInOut::FanIn | FanInOut::FanOut => fan.for_shape(shape),
                };
                let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => {
                        (standard_normal(&mut rng, shape, dtype, dev)? * std)?
                    }
                    NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        uniform(&mut rng, shape, -bound, bound, dtype, dev)?
                    }
                }
            }
        };
        Ok(t)
    }
}

/// All tensors of a parameter file written by [`ParamStore::save`], by name, after its
/// checksum is verified.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    Ok(read_checked(path, device)?.tensors)
}

fn check_same_layout(
    path: &str,
    vars: &BTreeMap<String, Var>,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<()> {
    let err = |message: String| NnError::Params {
        path: path.to_string(),
        message,
    };
    for (name, var) in vars {
        let t = tensors.get(name).ok_or_else(|| {
            err(format!(
                "tensor `{name}` is missing (another architecture?)"
            ))
        })?;
        if t.shape() != var.shape() {
            return Err(err(format!(
                "tensor `{name}` has shape {:?}, the model expects {:?}",
                t.dims(),
                var.dims()
            )));
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !vars.contains_key(*k)) {
        return Err(err(format!(
            "tensor `{extra}` is not part of this model (another architecture?)"
        )));
    }
    Ok(())
}

impl SimpleBackend for ParamStore {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        lock(&self.inner.requested).insert(name.to_string());
        if self.var(name).is_none() {
            self.check_room(name, &s, dtype)?;
        }
        if let Some(var) = self.var(name) {
            if var.shape() != &s {
                candle_core::bail!(
                    "parameter `{name}` has shape {:?}, the model expects {:?}",
                    var.dims(),
                    s.dims()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let t = self
            .init_tensor(&s, h, dtype, dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let var = Var::from_tensor(&t)?;
        lock(&self.inner.vars).insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.var(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("parameter `{name}` does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        lock(&self.inner.vars).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_init_and_sorted_names() {
        let build = |seed| {
            let store = ParamStore::new(seed);
            let vb = store.var_builder(DType::F32, &Device::Cpu);
            vb.get_with_hints(
                (3, 2),
                "zeta",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )
            .unwrap();
            vb.get_with_hints(4, "alpha", Init::Uniform { lo: -1.0, up: 1.0 })
                .unwrap();
            store
        };
        let (a, b, c) = (build(1), build(1), build(2));
        let names: Vec<String> = a.named_vars().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        let flat = |s: &ParamStore| -> Vec<f32> {
            let ts: Vec<Tensor> = s.vars().iter().map(|v| v.flatten_all().unwrap()).collect();
            Tensor::cat(&ts, 0).unwrap().to_vec1().unwrap()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
    }

    #[test]
    fn load_into_refuses_another_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        let a = ParamStore::new(1);
        a.var_builder(DType::F32, &Device::Cpu).get(3, "w").unwrap();
        a.save(&path).unwrap();
        let b = ParamStore::new(2);
        b.var_builder(DType::F32, &Device::Cpu).get(4, "w").unwrap();
        let err = b.load_into(&path).unwrap_err().to_string();
        assert!(
            err.contains("p.safetensors") && err.contains("shape"),
            "{err}"
        );
        let c = ParamStore::new(3);
        c.var_builder(DType::F32, &Device::Cpu).get(3, "w").unwrap();
        c.load_into(&path).unwrap();
        assert_eq!(
            c.vars()[0].to_vec1::<f32>().unwrap(),
            a.vars()[0].to_vec1::<f32>().unwrap()
        );
    }
}
