//! `summary.json`: the typed record of a finished run, written and read through one type.
//!
//! Fields are declared in alphabetical order so that files read exactly as the ones written
//! before this type existed (those came from a sorted JSON map). Fields that older versions
//! did not write are optional (left out when absent), and entries this version does not know
//! are kept in `other`, so reading and rewriting a summary (as `flowvae eval` does) never
//! drops anything. Numbers are parsed exactly (serde_json's `float_roundtrip`), so a value
//! read back is the value written, bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RunnerError};
use crate::run::density::DensitySummary;
use flowvae_train::write_atomic;

/// Crate versions and the git revision of the binary that wrote a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// candle's minor version.
    #[serde(rename = "candle-core")]
    pub candle_core: String,
    /// flowvae's version.
    pub flowvae: String,
    /// Git revision (`+dirty` when the tree had changes); `None` outside a checkout.
    pub git: Option<String>,
}

impl Versions {
    /// The versions of this binary.
    pub fn current() -> Self {
        let revision = Some(env!("FLOWVAE_BUILD_REVISION")).filter(|r| !r.is_empty());
        Self {
            candle_core: "0.11".into(),
            flowvae: env!("CARGO_PKG_VERSION").into(),
            git: revision.map(str::to_string),
        }
    }
}

/// Test-set results of a Flow-VAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMetrics {
    /// Latent units with `Cov_x(μ_u(x)) > 0.01` (Burda et al., 2016), of the encoder's `q₀`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_units: Option<usize>,
    /// `E_x KL(q₀(z_u|x) ‖ N(0, 1))` per latent unit, nats (the encoder's Gaussian, before
    /// any flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_per_dim: Option<Vec<f64>>,
    /// Number of test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<usize>,
    /// Mean KL term, nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Mean −ELBO, nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neg_elbo: Option<f64>,
    /// Importance-sampled negative log-likelihood, nats.
    pub nll: f64,
    /// Importance samples `S` per image.
    pub nll_samples: usize,
    /// Mean reconstruction term, nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recon: Option<f64>,
    /// Entries this version does not know.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `summary.json` of one trained Flow-VAE model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeSummary {
    /// The device it trained on: `cpu` or `cuda:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Epoch of the best validation −ELBO (its parameters are the ones evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// CPU seconds of this run, training and evaluation, across interruptions (null for a run
    /// resumed from a checkpoint written before flowvae recorded training CPU time).
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The data set and its binarization, in words.
    #[serde(default)]
    pub data: String,
    /// Epochs trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Seconds spent on the test evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_seconds: Option<f64>,
    /// The experiment's name.
    pub experiment: String,
    /// The posterior flow, in words.
    #[serde(default)]
    pub flow: String,
    /// The model's name (the variant, or the experiment).
    pub model: String,
    /// The bound trained on, in words.
    #[serde(default)]
    pub objective: String,
    /// Number of trainable scalars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<usize>,
    /// The experiment's seed.
    pub seed: u64,
    /// Test-set results.
    pub test: TestMetrics,
    /// Worker threads of the matrix products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Seconds spent training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// The binary that wrote the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
    /// Entries this version does not know.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `summary.json` of a 2-D density run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoDSummary {
    /// The experiment's name.
    pub experiment: String,
    /// Final metrics (test NLL, the density's normalisation, …) by name.
    #[serde(rename = "final")]
    pub final_metrics: BTreeMap<String, Value>,
    /// The flow stack, in words.
    pub flow: String,
    /// Number of trainable scalars.
    pub parameters: usize,
    /// The experiment's seed.
    pub seed: u64,
    /// Optimizer steps.
    pub steps: usize,
    /// Worker threads of the matrix products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// The binary that wrote the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
    /// Seconds from start to end, plots included.
    pub wall_seconds: f64,
    /// Entries this version does not know.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `summary.json` of a comparison: the models are in sub-folders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSummary {
    /// The comparison table's file name.
    pub comparison: String,
    /// The experiment's name.
    pub experiment: String,
    /// The models' names (sub-folders), baseline first.
    pub models: Vec<String>,
    /// The binary that wrote the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
}

/// Any run folder's `summary.json`.
// One value per run folder read, never held in bulk: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RunSummary {
    /// One trained Flow-VAE.
    Vae(VaeSummary),
    /// A 2-D density run.
    TwoD(TwoDSummary),
    /// A comparison of several Flow-VAEs.
    Comparison(ComparisonSummary),
    /// A density model.
    Density(DensitySummary),
}

impl RunSummary {
    /// Reads `<dir>/summary.json`; the kind is told by its keys (`comparison`, `test`, `final`).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| RunnerError::io(&path, "not a finished run (no summary)", e))?;
        Self::parse(&path, &text)
    }

    /// Parses the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |location: Option<(usize, usize)>, message: String| RunnerError::Config {
            file: path.to_path_buf(),
            location,
            message,
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| bad(Some((e.line(), e.column())), format!("not valid JSON: {e}")))?;
        let has = |key: &str| value.get(key).is_some();
        let typed = |what: &str| -> Result<Self> {
            let parsed = match what {
                "comparison" => serde_path_to_error::deserialize(&value).map(Self::Comparison),
                "vae" => serde_path_to_error::deserialize(&value).map(Self::Vae),
                "density" => serde_path_to_error::deserialize(&value).map(Self::Density),
                _ => serde_path_to_error::deserialize(&value).map(Self::TwoD),
            };
            parsed.map_err(|e| {
                bad(
                    None,
                    format!("a {what} summary: {}: {}", e.path(), e.inner()),
                )
            })
        };
        if has("comparison") {
            typed("comparison")
        } else if has("density") {
            typed("density")
        } else if has("test") {
            typed("vae")
        } else if has("final") {
            typed("2-D")
        } else {
            Err(bad(
                None,
                "not a flowvae summary: expected a `test`, `final` or `comparison` entry".into(),
            ))
        }
    }

    /// Writes the summary to `<dir>/summary.json` (atomically).
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let value = match self {
            Self::Vae(s) => serde_json::to_value(s),
            Self::TwoD(s) => serde_json::to_value(s),
            Self::Comparison(s) => serde_json::to_value(s),
            Self::Density(s) => serde_json::to_value(s),
        };
        let text = value
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| RunnerError::Config {
                file: dir.join("summary.json"),
                location: None,
                message: format!("cannot serialise the summary: {e}"),
            })?;
        let path = dir.join("summary.json");
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// The Flow-VAE summary, if this is one.
    pub fn vae(&self) -> Option<&VaeSummary> {
        match self {
            Self::Vae(s) => Some(s),
            _ => None,
        }
    }

    /// The seed of the run (`None` for a comparison, whose models each have their own).
    pub fn seed(&self) -> Option<u64> {
        match self {
            Self::Vae(s) => Some(s.seed),
            Self::TwoD(s) => Some(s.seed),
            Self::Density(s) => Some(s.seed),
            Self::Comparison(_) => None,
        }
    }

    /// The experiment's name.
    pub fn experiment(&self) -> &str {
        match self {
            Self::Vae(s) => &s.experiment,
            Self::TwoD(s) => &s.experiment,
            Self::Density(s) => &s.experiment,
            Self::Comparison(s) => &s.experiment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_text(summary: &RunSummary) -> String {
        let dir = tempfile::tempdir().unwrap();
        summary.write(dir.path()).unwrap();
        std::fs::read_to_string(dir.path().join("summary.json")).unwrap()
    }

    /// Summaries written before this type existed read back and rewrite to the same text.
    #[test]
    fn committed_summaries_round_trip_to_the_same_text() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/quickstart/reference");
        for (dir, kind) in [("vae", "vae"), ("planar_k8", "vae"), ("", "comparison")] {
            let path = root.join(dir).join("summary.json");
            let text = std::fs::read_to_string(&path).unwrap();
            let summary = RunSummary::parse(&path, &text).unwrap();
            match (kind, &summary) {
                ("vae", RunSummary::Vae(s)) => assert_eq!(s.test.nll_samples, 5000),
                ("comparison", RunSummary::Comparison(s)) => assert_eq!(s.models.len(), 3),
                _ => panic!("{} read as {summary:?}", path.display()),
            }
            assert_eq!(to_text(&summary), text, "{}", path.display());
        }
    }

    /// An old summary without the newer fields, with an entry this version does not know:
    /// read, changed and rewritten, it keeps that entry.
    #[test]
    fn unknown_entries_survive_a_rewrite() {
        let old = r#"{"experiment": "e", "model": "m", "seed": 3, "note": "mine",
            "test": {"nll": 90.5, "nll_samples": 100, "extra": [1, 2]}}"#;
        let RunSummary::Vae(mut s) = RunSummary::parse(Path::new("s.json"), old).unwrap() else {
            panic!("not a VAE summary");
        };
        assert_eq!((s.seed, s.epochs, s.cpu_seconds), (3, None, None));
        s.test.nll = 89.0;
        let text = to_text(&RunSummary::Vae(s));
        assert!(text.contains("\"note\": \"mine\""), "{text}");
        assert!(text.contains("\"extra\": ["), "{text}");
        assert!(text.contains("\"nll\": 89.0"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_summary_is_refused_with_its_name() {
        let path = Path::new("runs/a/summary.json");
        for (text, expected) in [
            ("{not json", "not valid JSON"),
            ("{\"foo\": 1}", "expected a `test`, `final` or `comparison` entry"),
            (
                "{\"experiment\": \"e\", \"model\": \"m\", \"seed\": 1, \"test\": {\"nll\": \"x\"}}",
                "test.nll",
            ),
        ] {
            let err = RunSummary::parse(path, text).unwrap_err().to_string();
            assert!(err.starts_with("runs/a/summary.json"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }
}
