//! The commands on a finished density run: `logprob` (per-row log-density, the anomaly
//! score), `transform` (rows to the base space, Gaussianized features, and back with
//! `--inverse`) and `sample` (CSV rows or an image grid).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use flowvae_data::split_by_name;
use flowvae_flows::{Conditioning, Stream};
use flowvae_nn::seeded;

use super::transform::{header, read_columns, read_csv, read_rows, write_rows, Input};
use crate::error::{Result, RunnerError};
use crate::experiment::Experiment;
use crate::run::density::condition;
use crate::run::density::condition::FittedCondition;
use crate::run::density::preprocess::Prepared;
use crate::run::density::{load_trained, TrainedDensity};

/// The rows of `input` as `(n, D)`: a CSV of the trained width (grey levels in `[0, 1]` for
/// images) or a split of the run's own data; with the contexts `(n, C)` of a conditional run:
/// `--context` for every row, or else a split's own, or in a file each row's condition after
/// its data values.
fn rows(
    trained: &TrainedDensity,
    input: Input<'_>,
    context: Option<&str>,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let dim = trained.model.dist.flow().dim();
    let (values, n, own) = match (input, &trained.condition) {
        (Input::Csv(path), Some(fitted)) if context.is_none() => {
            let (values, contexts) = conditioned_rows(trained, fitted, path)?;
            let (n, width) = (values.len() / dim, fitted.width());
            (
                values,
                n,
                Some(Tensor::from_vec(contexts, (n, width), device)?),
            )
        }
        (Input::Csv(path), _) => {
            let range = trained.prepared.levels().map(|_| (0.0, 1.0));
            // By name when the header has the columns `flowvae rows` writes (x0, x1, …),
            // so that its `label` column is skipped; else by position.
            let values = read_rows(path, &header("x", dim), range)?;
            let n = values.len() / dim;
            (values, n, None)
        }
        (Input::Split(name), _) => {
            let data = condition::load(&trained.experiment.data)?;
            let split = split_by_name(data.splits, name)?;
            let all: Vec<usize> = (0..split.n).collect();
            let own = data
                .contexts
                .map(|c| c.rows(name, &all, device))
                .transpose()?;
            (split.images, split.n, own)
        }
    };
    let x = Tensor::from_vec(values, (n, dim), device)?;
    let context = match context {
        Some(text) => Some(repeated_context(trained, text, n, device)?),
        None => own,
    };
    Ok((x, context))
}

/// The rows of a file for a conditional run: each row's `D` data values followed by its
/// condition (a class, or the condition columns' values); returns the data rows and the
/// encoded contexts.
fn conditioned_rows(
    trained: &TrainedDensity,
    fitted: &FittedCondition,
    path: &Path,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let width = trained.model.dist.flow().dim() + fitted.raw_width();
    let values = read_csv(path, width, None)?;
    let pixels = trained.prepared.levels().is_some();
    split_conditions(trained, fitted, path, &values, pixels)
}

/// Rows of `D` values each followed by a condition (read from `path`) as the values and the
/// encoded contexts; with `pixels`, values outside `[0, 1]` are refused.
fn split_conditions(
    trained: &TrainedDensity,
    fitted: &FittedCondition,
    path: &Path,
    values: &[f32],
    pixels: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let dim = trained.model.dist.flow().dim();
    let width = dim + fitted.raw_width();
    let (mut rows, mut contexts) = (Vec::new(), Vec::new());
    for (i, row) in values.chunks(width).enumerate() {
        let bad = |message: String| RunnerError::Config {
            file: path.to_path_buf(),
            location: None,
            message: format!("data row {}: {message}", i + 1),
        };
        let (x, condition) = row.split_at(dim);
        if let Some(v) = x.iter().find(|v| pixels && !(0.0..=1.0).contains(*v)) {
            return Err(bad(format!("pixel value {v} is outside [0, 1]")));
        }
        let text: Vec<String> = condition.iter().map(f32::to_string).collect();
        let context = fitted.parse(&text.join(",")).map_err(|e| match e {
            RunnerError::Config { message, .. } => bad(message),
            other => other,
        })?;
        rows.extend_from_slice(x);
        contexts.extend(context);
    }
    Ok((rows, contexts))
}

fn context_error(message: &str) -> RunnerError {
    RunnerError::Config {
        file: "--context".into(),
        location: None,
        message: message.into(),
    }
}

/// `n` rows of the `--context` value: required by a conditional run, refused otherwise.
fn given_context(
    trained: &TrainedDensity,
    context: Option<&str>,
    n: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    match context {
        Some(text) => Ok(Some(repeated_context(trained, text, n, device)?)),
        None if trained.condition.is_some() => Err(context_error(
            "this run is a conditional density: give --context",
        )),
        None => Ok(None),
    }
}

/// The `--context` value as `n` identical context rows `(n, C)`.
fn repeated_context(
    trained: &TrainedDensity,
    text: &str,
    n: usize,
    device: &Device,
) -> Result<Tensor> {
    let Some(fitted) = &trained.condition else {
        return Err(context_error(
            "this run is not conditional (its experiment has no `data.condition`)",
        ));
    };
    let row = fitted.parse(text)?;
    let width = row.len();
    Ok(Tensor::from_vec(row, (1, width), device)?.repeat((n, 1))?)
}

/// Per-row log-likelihood as the summary reports it (logit space for images, data units for
/// tables) and the base-space point, for data rows `x` and their contexts. Images are
/// dequantized at the middle of each grey level, so that scores are deterministic.
fn score(
    trained: &TrainedDensity,
    x: &Tensor,
    context: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (z, prep_log_det) = trained.prepared.to_flow(x, None)?;
    let flow = trained.model.dist.flow();
    flow.set_training(false);
    let (base_point, _) = flow.inverse(&z, Conditioning::context(context))?;
    let ll = trained.model.log_prob(&z, context)?;
    let ll = match trained.prepared {
        Prepared::Logit { .. } => ll,
        _ => (ll + prep_log_det)?,
    };
    Ok((ll, base_point))
}

/// `flowvae logprob <run> --input F [--context C] --output scores.csv`: one log-likelihood
/// per row.
pub fn logprob(
    run: &Path,
    input: Input<'_>,
    context: Option<&str>,
    out: &Path,
    device: &Device,
) -> Result<usize> {
    let trained = load_trained(run, device)?;
    let (x, context) = rows(&trained, input, context, device)?;
    let (ll, _) = score(&trained, &x, context.as_ref())?;
    let ll: Vec<Vec<f32>> = ll.unsqueeze(1)?.to_vec2()?;
    write_rows(out, &["log_likelihood".to_string()], &[ll])
}

/// `flowvae transform <run>`: rows to the base space (`z = f⁻¹(prep(x))`, Gaussianized
/// features) with their log-likelihood, or with `inverse` base-space rows back to data.
pub fn transform(
    run: &Path,
    (input, context): (Input<'_>, Option<&str>),
    out: &Path,
    inverse: bool,
    device: &Device,
) -> Result<usize> {
    let trained = load_trained(run, device)?;
    let dim = trained.model.dist.flow().dim();
    if inverse {
        let Input::Csv(path) = input else {
            return Err(RunnerError::Config {
                file: run.to_path_buf(),
                location: None,
                message: "--inverse maps base-space rows back: give them with --input".into(),
            });
        };
        let (z, context) = base_rows(&trained, path, context, device)?;
        let flow = trained.model.dist.flow();
        flow.set_training(false);
        let (y, _) = flow.forward(&z, Conditioning::context(context.as_ref()))?;
        let x: Vec<Vec<f32>> = trained.prepared.to_data(&y)?.to_vec2()?;
        return write_rows(out, &header("x", dim), &[x]);
    }
    let (x, context) = rows(&trained, input, context, device)?;
    let (ll, z) = score(&trained, &x, context.as_ref())?;
    let mut columns = header("z", dim);
    let mut blocks = vec![z.to_vec2()?];
    // Each row's condition goes along, so that `--inverse` can map the file straight back.
    if let (Some(fitted), Some(context)) = (&trained.condition, &context) {
        let (names, raw) = fitted.raw_columns(context)?;
        columns.extend(names);
        blocks.push(raw);
    }
    columns.push("log_likelihood".into());
    blocks.push(ll.unsqueeze(1)?.to_vec2()?);
    write_rows(out, &columns, &blocks)
}

/// The base-space rows `(n, D)` of an `--inverse` input and their contexts: the columns
/// `z0…z{D−1}` (by name when the file has a header, as `transform` writes it, so its
/// `log_likelihood` column is skipped), and for a conditional run without `--context` each
/// row's condition after them (`label`, or the condition columns).
fn base_rows(
    trained: &TrainedDensity,
    path: &Path,
    context: Option<&str>,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let dim = trained.model.dist.flow().dim();
    let mut wanted = header("z", dim);
    let Some(fitted) = trained.condition.as_ref().filter(|_| context.is_none()) else {
        let values = read_columns(path, &wanted)?;
        let n = values.len() / dim;
        let z = Tensor::from_vec(values, (n, dim), device)?;
        return Ok((z, given_context(trained, context, n, device)?));
    };
    wanted.extend(fitted.raw_names());
    let values = read_columns(path, &wanted)?;
    let (values, contexts) = split_conditions(trained, fitted, path, &values, false)?;
    let n = values.len() / dim;
    let width = fitted.width();
    Ok((
        Tensor::from_vec(values, (n, dim), device)?,
        Some(Tensor::from_vec(contexts, (n, width), device)?),
    ))
}

/// `flowvae sample <run> -n N --temperature T [--context C]`: rows drawn from the model (given
/// the condition `C` for a conditional one), in data space.
pub fn sample(
    run: &Path,
    (n, temperature, seed): (usize, f64, u64),
    context: Option<&str>,
    device: &Device,
) -> Result<(Tensor, TrainedDensity)> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(RunnerError::Config {
            file: "--temperature".into(),
            location: None,
            message: format!("must be positive, got {temperature}"),
        });
    }
    let trained = load_trained(run, device)?;
    let context = given_context(&trained, context, n, device)?;
    let mut rng = seeded(seed, Stream::PriorSamples);
    let dist = &trained.model.dist;
    dist.flow().set_training(false);
    let (y, _) = dist.sample_at(
        n,
        temperature,
        &mut rng,
        DType::F32,
        device,
        Conditioning::context(context.as_ref()),
    )?;
    let x = trained.prepared.to_data(&y)?;
    Ok((x, trained))
}

/// `flowvae rows <run> --split S --output F.csv`: the rows of a split of a density run's
/// data as the run reads them (grey levels in `[0, 1]` for images), followed by the condition
/// columns of a column-conditioned run, or else a `label` column when the data have classes:
/// the exact split, to train another library on, or to score with `logprob`.
pub fn export_split(run: &Path, split: &str, out: &Path) -> Result<usize> {
    let Experiment::Density(experiment) = Experiment::load(&run.join("config.yaml"))? else {
        return Err(RunnerError::Config {
            file: run.join("config.yaml"),
            location: None,
            message: "not a density run (no `density:` section)".into(),
        });
    };
    let data = condition::load(&experiment.data)?;
    let rows = split_by_name(data.splits, split)?;
    let values: Vec<Vec<f32>> = rows.images.chunks(rows.dim).map(<[f32]>::to_vec).collect();
    let mut columns = header("x", rows.dim);
    let mut blocks = vec![values];
    let all: Vec<usize> = (0..rows.n).collect();
    let context = data
        .contexts
        .as_ref()
        .map(|c| c.rows(split, &all, &Device::Cpu));
    let conditions = match (data.contexts.as_ref(), context.transpose()?) {
        (Some(c), Some(t)) => c.fitted.in_data_units(&t)?,
        _ => None,
    };
    if let Some((names, raw)) = conditions {
        // Column conditions, in the data's units, where a file's condition goes.
        columns.extend(names);
        blocks.push(raw);
    } else if rows.has_labels() {
        columns.push("label".into());
        blocks.push(rows.labels.iter().map(|&l| vec![f32::from(l)]).collect());
    }
    write_rows(out, &columns, &blocks)
}

/// Whether `run` is a density run (its `config.yaml` has a `density:` section).
pub fn is_density_run(run: &Path) -> bool {
    std::fs::read_to_string(run.join("config.yaml"))
        .is_ok_and(|text| text.lines().any(|l| l.starts_with("density:")))
}

/// Draws `n` rows from the density run `run` at `temperature` and writes them to `out`: an
/// image grid (`.png`, image runs) or rows of numbers (`.csv`).
pub fn sample_to_file(
    run: &Path,
    (n, temperature, seed): (usize, f64, u64),
    context: Option<&str>,
    out: &Path,
    device: &Device,
) -> Result<()> {
    let (x, trained) = sample(run, (n, temperature, seed), context, device)?;
    let png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let dim = x.dim(1)?;
    match (png, &trained.prepared) {
        (true, Prepared::Logit { .. }) => {
            let data = &trained.experiment.data;
            let splits = flowvae_data::load_unbinarized(&data.source, data.split_seed, None)?;
            let (h, w) = (splits.test.height, splits.test.width);
            let images: Vec<Vec<f32>> = x.to_vec2()?;
            let cols = (n as f64).sqrt().ceil() as usize;
            let caption = format!("{n} samples (T = {temperature}, seed {seed})");
            let scale = (64 / w.max(1)).clamp(1, 8);
            flowvae_plot::image_grid(out, &images, (h, w), cols.max(1), scale, &caption)?;
            Ok(())
        }
        (true, _) => Err(RunnerError::Config {
            file: out.to_path_buf(),
            location: None,
            message: "this run models a table, not images: write its samples to a .csv".into(),
        }),
        (false, _) => {
            write_rows(out, &header("x", dim), &[x.to_vec2()?])?;
            Ok(())
        }
    }
}
