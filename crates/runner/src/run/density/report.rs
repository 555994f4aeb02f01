//! The end of a density run: test log-likelihoods with their standard errors, samples, the
//! learning curve and `summary.json`; and reading a finished run back for the commands.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device};
use flowvae_flows::{Conditioning, ParamStore, Stream};
use flowvae_nn::seeded;
use flowvae_plot::{image_grid, line_chart, Series};
use flowvae_train::read_metrics;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::condition::FittedCondition;
use super::fit::Fitted;
use super::preprocess::{Prepared, Record};
use super::{log_likelihoods, mean, DensityModel, Job};
use crate::error::{Result, RunnerError};
use crate::experiment::density::ExperimentDensity;
use crate::experiment::Experiment;
use crate::run::summary::{RunSummary, Versions};

/// Test results of a density run (per example, nats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityTest {
    /// Mean log-likelihood per test example: in the logit space for images (as the MAF
    /// paper's tables), in the data's units for tables.
    pub log_likelihood: f64,
    /// Standard error of that mean over the test examples.
    pub log_likelihood_se: f64,
    /// Images: bits per dimension of the dequantized pixels on `[0, L)` (L grey levels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits_per_dim: Option<f64>,
    /// Images: the mean log-likelihood on `[0, L)^D`, nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_likelihood_pixels: Option<f64>,
    /// Test examples.
    pub examples: usize,
    /// With `data.exclude_classes`: the AUROC of `−log p(x)` telling the test rows of the
    /// left-out classes from the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_auroc: Option<f64>,
}

/// `summary.json` of a density run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensitySummary {
    /// The experiment's name.
    pub experiment: String,
    /// Dimension, base, preprocessing and data, in words.
    pub density: BTreeMap<String, Value>,
    /// The flow stack, in words.
    pub flow: String,
    /// Trainable scalars (flow and base).
    pub parameters: usize,
    /// The experiment's seed.
    pub seed: u64,
    /// Epochs trained, and the epoch whose weights were kept.
    pub epochs: usize,
    /// The epoch of the best validation log-likelihood (its weights were evaluated).
    pub best_epoch: usize,
    /// Test results.
    pub test: DensityTest,
    /// Seconds of training (validation included).
    pub train_seconds: f64,
    /// CPU seconds of training and evaluation, summed over every process that worked on the
    /// run (resumes included); `null` for a run resumed from a checkpoint without that record.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The binary that wrote the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
    /// Entries this version does not know.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Test log-likelihoods, samples, curve and summary.
pub(super) fn finish(
    job: &Job<'_>,
    fitted: &Fitted,
    cpu_at_start: Option<f64>,
) -> Result<DensitySummary> {
    let test = test_metrics(job)?;
    plots(job)?;
    let (exp, splits) = (job.exp, job.splits);
    let described = |v: String| Value::String(v);
    let mut density = BTreeMap::from([
        ("dim".to_string(), Value::from(splits.train.dim)),
        (
            "base".into(),
            described(format!("{:?}", exp.density.base).to_lowercase()),
        ),
        ("preprocess".into(), described(job.prepared.describe())),
        (
            "data".into(),
            described(flowvae_data::describe_source(&exp.data.source)),
        ),
        ("split_seed".into(), Value::from(exp.data.split_seed)),
        ("train_rows".into(), Value::from(splits.train.n)),
        ("val_rows".into(), Value::from(splits.val.n)),
    ]);
    if let Some(c) = job.contexts {
        density.insert("condition".into(), described(c.fitted.describe()));
    }
    if !exp.data.exclude_classes.is_empty() {
        let classes = &exp.data.exclude_classes;
        density.insert("excluded_classes".into(), Value::from(classes.clone()));
    }
    let summary = DensitySummary {
        experiment: exp.name.clone(),
        density,
        flow: crate::report::labels::stack_label(&exp.flow),
        parameters: job.model.store.num_scalars(),
        seed: exp.seed,
        epochs: fitted.epochs,
        best_epoch: fitted.best_epoch,
        test,
        train_seconds: fitted.train_seconds,
        // Across interruptions: the checkpoint's record plus this process's share.
        cpu_seconds: cpu_at_start
            .zip(flowvae_train::process_cpu_seconds())
            .zip(fitted.cpu_before)
            .map(|((start, now), before)| before + now - start),
        versions: Some(Versions::current()),
        // The device it trained on (`cpu` or `cuda:N`), beside the Flow-VAE summary's field.
        other: BTreeMap::from([(
            "device".to_string(),
            described(crate::run::device::describe_device(job.device)),
        )]),
    };
    RunSummary::Density(summary.clone()).write(job.run.path())?;
    Ok(summary)
}

/// The test log-likelihoods (logit space for images, data units for tables) with their
/// standard error, and for images the pixel-space nats and bits per dimension on `[0, L)`.
fn test_metrics(job: &Job<'_>) -> Result<DensityTest> {
    let held_out = (job.exp.data.split_seed, Stream::Test);
    let (test, batch) = (&job.splits.test, job.exp.eval_batch.get());
    let rows = (test, job.contexts.map(|c| (c, "test")));
    let (ll, prep) = log_likelihoods(job.model, job.prepared, rows, held_out, batch, job.device)?;
    let n = ll.len();
    let data_space: Vec<f64> = ll.iter().zip(&prep).map(|(a, b)| a + b).collect();
    let reported = match job.prepared {
        Prepared::Logit { .. } => &ll,
        _ => &data_space,
    };
    let average = mean(reported);
    let squares: f64 = reported.iter().map(|v| (v - average).powi(2)).sum();
    let variance = squares / (n.max(2) - 1) as f64;
    let dim = test.dim as f64;
    let excluded = &job.exp.data.exclude_classes;
    let anomalous: Vec<bool> = test.labels.iter().map(|l| excluded.contains(l)).collect();
    let anomaly_auroc = match excluded.is_empty() {
        true => None,
        false => super::anomaly::auroc(reported, &anomalous),
    };
    let pixels = job
        .prepared
        .levels()
        .map(|levels| mean(&data_space) - dim * (levels as f64).ln());
    Ok(DensityTest {
        log_likelihood: average,
        log_likelihood_se: (variance / n as f64).sqrt(),
        bits_per_dim: pixels.map(|ll| -ll / (dim * std::f64::consts::LN_2)),
        log_likelihood_pixels: pixels,
        examples: n,
        anomaly_auroc,
    })
}

/// The learning curve and 64 samples (an image grid, or `samples.csv` for tables).
fn plots(job: &Job<'_>) -> Result<()> {
    let Job {
        exp,
        model,
        prepared,
        splits,
        run,
        ..
    } = *job;
    let device = job.device;
    let (_, rows) = read_metrics(&run.path().join("metrics.csv"))?;
    let curve = |column: usize| rows.iter().map(|r| (r[0], r[column])).collect();
    let series = [
        Series {
            name: "validation log-likelihood".into(),
            points: curve(2),
        },
        Series {
            name: "−train NLL (flow space)".into(),
            points: curve(1)
                .into_iter()
                .map(|(e, v): (f64, f64)| (e, -v))
                .collect(),
        },
    ];
    line_chart(
        &run.file("plots/curve.png")?,
        &exp.name,
        "epoch",
        "nats per example",
        &series,
    )?;
    // A conditional model draws a row of 8 per class, or one per test row's context.
    let (n, context, caption) = match job.contexts {
        Some(c) => {
            let (context, what) = c.sample_contexts(device)?;
            (context.dim(0)?, Some(context), what)
        }
        None => (64, None, "64 samples".to_string()),
    };
    let mut rng = seeded(exp.seed, Stream::PriorSamples);
    let (z, _) = model.dist.sample(
        n,
        &mut rng,
        DType::F32,
        device,
        Conditioning::context(context.as_ref()),
    )?;
    let x = prepared.to_data(&z)?;
    let train = &splits.train;
    if prepared.levels().is_some() {
        let images: Vec<Vec<f32>> = x.to_vec2()?;
        let caption = format!("{}: {caption}", exp.name);
        image_grid(
            &run.file("plots/samples.png")?,
            &images,
            (train.height, train.width),
            8,
            4,
            &caption,
        )?;
    } else {
        let mut columns = crate::tools::transform::header("x", train.dim);
        let mut blocks = vec![x.to_vec2::<f32>()?];
        // Column-conditioned samples carry the condition they were drawn at, in data units.
        let given = job.contexts.zip(context.as_ref());
        if let Some((names, values)) = given
            .map(|(c, t)| c.fitted.in_data_units(t))
            .transpose()?
            .flatten()
        {
            columns.extend(names);
            blocks.push(values);
        }
        crate::tools::transform::write_rows(&run.file("samples.csv")?, &columns, &blocks)?;
    }
    Ok(())
}

/// A finished density run read back: its experiment, preprocessing and best weights.
pub struct TrainedDensity {
    /// The experiment as run.
    pub experiment: ExperimentDensity,
    /// The fitted preprocessing.
    pub prepared: Prepared,
    /// The fitted condition of a conditional density.
    pub condition: Option<FittedCondition>,
    /// The model with the kept weights.
    pub model: DensityModel,
}

/// Reads `config.yaml`, `preprocess.json` and `checkpoints/best.safetensors` of `dir`.
pub fn load_trained(dir: &Path, device: &Device) -> Result<TrainedDensity> {
    let Experiment::Density(experiment) = Experiment::load(&dir.join("config.yaml"))? else {
        return Err(RunnerError::Config {
            file: dir.join("config.yaml"),
            location: None,
            message: "not a density run (no `density:` section)".into(),
        });
    };
    let path = dir.join("preprocess.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RunnerError::io(&path, "cannot read the run's preprocessing", e))?;
    let record: Record = serde_json::from_str(&text).map_err(|e| RunnerError::Config {
        file: path.clone(),
        location: Some((e.line(), e.column())),
        message: format!("not a preprocessing record: {e}"),
    })?;
    let weights = dir.join("checkpoints/best.safetensors");
    let store = ParamStore::from_safetensors(&weights, DType::F32, device)?;
    let width = record.condition.as_ref().map_or(0, |c| c.width());
    let model = DensityModel::build(&experiment, (record.dim, width), store, device)?;
    Ok(TrainedDensity {
        experiment,
        prepared: record.preprocess,
        condition: record.condition,
        model,
    })
}
