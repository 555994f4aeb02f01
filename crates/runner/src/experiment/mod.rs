//! The experiment file: one YAML per experiment, sections validated as they are parsed.

pub(crate) mod density;
pub(crate) mod overrides;
pub(crate) mod vae;
pub(crate) mod yaml;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use flowvae_data::{Energy2d, Toy2d};
use flowvae_flows::MAX_WIDTH;
use flowvae_flows::{BaseSpec, FlowSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::experiment::density::ExperimentDensity;
use crate::experiment::overrides::{apply, Override};
use crate::experiment::vae::ExperimentVae;
use flowvae_train::OptimizerConfig;

/// What a 2-D experiment fits its flow to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target2d {
    /// An unnormalised density `exp(−U)`, fitted by reverse KL (Rezende & Mohamed, Fig. 3).
    Energy(Energy2d),
    /// Samples of a toy distribution, fitted by maximum likelihood (density estimation).
    Samples(Toy2d),
}

const fn nz(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => NonZeroUsize::MIN,
    }
}
fn default_steps() -> NonZeroUsize {
    nz(5000)
}
fn default_batch() -> NonZeroUsize {
    nz(256)
}
fn default_log_every() -> NonZeroUsize {
    nz(100)
}
fn default_wall() -> Option<f64> {
    Some(4.0)
}
fn default_test_samples() -> NonZeroUsize {
    nz(5000)
}

/// The `train:` section of a 2-D experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Train2d {
    /// Optimizer steps.
    #[serde(default = "default_steps")]
    pub steps: NonZeroUsize,
    /// Samples per step (noise draws for energies, data draws for density estimation).
    #[serde(default = "default_batch")]
    pub batch_size: NonZeroUsize,
    /// Energy targets: β rises linearly from 0.01 to 1 over this many steps (0: β = 1).
    #[serde(default)]
    pub beta_warmup_steps: usize,
    /// Steps between rows of `metrics.csv`.
    #[serde(default = "default_log_every")]
    pub log_every: NonZeroUsize,
    /// Energy targets: a quadratic wall `½ Σ_i (max(|z_i| − a, 0) / 0.25)²` is added to `U`
    /// outside `[−a, a]²` (U2–U4 are not normalisable on ℝ² without it); `null` removes it.
    #[serde(default = "default_wall")]
    pub wall: Option<f64>,
    /// Density estimation: size of the held-out set whose NLL is logged.
    #[serde(default = "default_test_samples")]
    pub test_samples: NonZeroUsize,
}

impl Default for Train2d {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            batch_size: default_batch(),
            beta_warmup_steps: 0,
            wall: default_wall(),
            log_every: default_log_every(),
            test_samples: default_test_samples(),
        }
    }
}

fn default_grid() -> NonZeroUsize {
    nz(200)
}
fn default_plot_samples() -> NonZeroUsize {
    nz(5000)
}

/// The `plot:` section: resolution of the density images and size of the scatter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plot2d {
    #[serde(default = "default_grid")]
    pub grid: NonZeroUsize,
    #[serde(default = "default_plot_samples")]
    pub samples: NonZeroUsize,
    /// `[x_min, x_max, y_min, y_max]`; default: the target's usual extent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent: Option<[f64; 4]>,
}

impl Default for Plot2d {
    fn default() -> Self {
        Self {
            grid: default_grid(),
            samples: default_plot_samples(),
            extent: None,
        }
    }
}

/// A 2-D flow experiment: `flowvae run experiments/u1_planar_k32.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment2d {
    /// Name of the experiment; runs go to `results/<name>/<run-id>/`.
    pub name: String,
    /// Seeds weights, noise and data: same seed, same numbers.
    #[serde(default)]
    pub seed: u64,
    pub target: Target2d,
    /// The flow stack, applied in order in the sampling direction.
    pub flow: Vec<FlowSpec>,
    /// The base density (`standard`, `diagonal`, `mixture: {components: K}`); default the
    /// standard normal, left out of resolved configs.
    #[serde(default, skip_serializing_if = "BaseSpec::is_standard")]
    pub base: BaseSpec,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub train: Train2d,
    #[serde(default)]
    pub plot: Plot2d,
}

/// Any experiment file; which kind is decided by its sections: `density:` for a density
/// model, `target:` for a 2-D flow experiment, `data:` without either for a Flow-VAE.
#[derive(Debug, Clone, PartialEq)]
pub enum Experiment {
    /// A 2-D density: a target (samples or an energy) and a flow stack.
    TwoD(Experiment2d),
    /// A Flow-VAE, or several variants compared.
    Vae(ExperimentVae),
    /// A flow density on real data of any dimension.
    Density(ExperimentDensity),
}

impl Experiment {
    /// Reads, parses and validates an experiment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunnerError::io(path, "cannot read the experiment file", e))?;
        Self::parse(path, &text)
    }

    /// Reads an experiment file and applies `--set` overrides before parsing, so that they
    /// are validated like the file itself.
    pub fn load_with(path: &Path, overrides: &[Override]) -> Result<Self> {
        if overrides.is_empty() {
            return Self::load(path);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunnerError::io(path, "cannot read the experiment file", e))?;
        let mut doc: serde_yaml::Value = yaml::parse(path, &text)?;
        apply(&mut doc, overrides)?;
        let merged = serde_yaml::to_string(&doc).unwrap_or_default();
        Self::parse(path, &merged).map_err(|e| match e {
            RunnerError::Config { file, message, .. } => {
                let sets: Vec<&str> = overrides.iter().map(|o| o.text.as_str()).collect();
                RunnerError::Config {
                    file,
                    location: None,
                    message: format!("{message} (with --set {})", sets.join(" --set ")),
                }
            }
            other => other,
        })
    }

    /// Parses experiment text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let value: serde_yaml::Value = yaml::parse(path, text)?;
        let has = |key: &str| value.get(key).is_some();
        if has("density") {
            let exp: ExperimentDensity = yaml::parse(path, text)?;
            density::validate(path, text, &exp)?;
            return Ok(Self::Density(exp));
        }
        if has("data") && !has("target") {
            let exp: ExperimentVae = yaml::parse(path, text)?;
            validate_vae(path, text, &exp)?;
            return Ok(Self::Vae(exp));
        }
        if !has("target") {
            return Err(RunnerError::Config {
                file: path.to_path_buf(),
                location: None,
                message: "expected a `data:` section (Flow-VAE, or a density model with a \
                          `density:` section) or a `target:` section (2-D flow)"
                    .into(),
            });
        }
        let exp: Experiment2d = yaml::parse(path, text)?;
        validate_2d(path, text, &exp)?;
        Ok(Self::TwoD(exp))
    }

    /// The experiment's name.
    pub fn name(&self) -> &str {
        match self {
            Self::TwoD(e) => &e.name,
            Self::Vae(e) => &e.name,
            Self::Density(e) => &e.name,
        }
    }

    /// The resolved configuration (every default filled in) as YAML.
    pub fn to_yaml(&self) -> String {
        match self {
            Self::TwoD(e) => yaml::to_string(e),
            Self::Vae(e) => yaml::to_string(e),
            Self::Density(e) => yaml::to_string(e),
        }
    }
}

/// An error about `field`, located in the text by its key when possible.
pub(crate) fn config_error(path: &Path, text: &str, field: &str, message: String) -> RunnerError {
    RunnerError::Config {
        file: PathBuf::from(path),
        location: yaml::locate_field(text, field).map(|l| (l, 1)),
        message: format!("{field}: {message}"),
    }
}

pub(crate) fn check_folder_name(path: &Path, text: &str, field: &str, name: &str) -> Result<()> {
    match flowvae_train::plain_name_problem(name) {
        Some(message) => Err(config_error(path, text, field, message)),
        None => Ok(()),
    }
}

fn check_stack(path: &Path, text: &str, prefix: &str, flow: &[FlowSpec], dim: usize) -> Result<()> {
    for (i, spec) in flow.iter().enumerate() {
        if let Err(flowvae_flows::FlowError::InvalidConfig { field, message }) =
            spec.validate(&format!("{prefix}flow[{i}]"), dim)
        {
            return Err(config_error(path, text, &field, message));
        }
    }
    Ok(())
}

fn validate_vae(path: &Path, text: &str, exp: &ExperimentVae) -> Result<()> {
    check_folder_name(path, text, "name", &exp.name)?;
    let latent = exp.model.latent;
    if latent == 0 || latent > MAX_WIDTH {
        return Err(config_error(
            path,
            text,
            "latent",
            format!("must be between 1 and {MAX_WIDTH}, got {latent}"),
        ));
    }
    let mut widths = exp
        .model
        .encoder
        .hidden
        .iter()
        .chain(&exp.model.decoder.hidden);
    if widths.any(|&w| w == 0 || w > MAX_WIDTH) {
        let message = format!("hidden widths must be between 1 and {MAX_WIDTH}");
        return Err(config_error(path, text, "hidden", message));
    }
    check_stack(path, text, "", &exp.flow, latent)?;
    if let Some((field, message)) = exp.objective.problem() {
        return Err(config_error(
            path,
            text,
            &format!("objective.{field}"),
            message,
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, v) in exp.variants.iter().enumerate() {
        check_folder_name(path, text, &format!("variants[{i}].name"), &v.name)?;
        if !seen.insert(v.name.clone()) {
            let message = format!("variant `{}` is listed twice", v.name);
            return Err(config_error(path, text, "name", message));
        }
        check_stack(path, text, &format!("variants[{i}]."), &v.flow, latent)?;
        if let Some((field, message)) = v.objective.as_ref().and_then(|o| o.problem()) {
            let field = format!("variants[{i}].objective.{field}");
            return Err(config_error(path, text, &field, message));
        }
    }
    Ok(())
}

fn validate_2d(path: &Path, text: &str, exp: &Experiment2d) -> Result<()> {
    let config_error = |field: &str, message: String| config_error(path, text, field, message);
    check_folder_name(path, text, "name", &exp.name)?;
    if exp.flow.is_empty() {
        return Err(config_error(
            "flow",
            "the stack is empty; list at least one flow".into(),
        ));
    }
    check_stack(path, text, "", &exp.flow, 2)?;
    if let Some([x0, x1, y0, y1]) = exp.plot.extent {
        if !(x0 < x1 && y0 < y1) {
            return Err(config_error(
                "extent",
                "expected [x_min, x_max, y_min, y_max]".into(),
            ));
        }
    }
    Ok(())
}
