//! `flowvae transform`: pushes data through a trained model and writes the codes to CSV.
//! For a Flow-VAE, `z₀` (the encoder's Gaussian) and `z_K` (after the flow); for a 2-D
//! density-estimation run, the base-space point `z = f⁻¹(x)` and the round trip `f(z)`.

use std::fmt::Write as _;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use flowvae_flows::Conditioning;
use flowvae_nn::{seeded, standard_normal};

use crate::error::{Result, RunnerError};
use crate::experiment::{Experiment, Experiment2d, Target2d};
use crate::run::eval::load_run;
use flowvae_data::{load_splits, split_by_name};
use flowvae_train::write_atomic;

/// Which rows to transform.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// A CSV file of numbers, one data point per row (no header, or a header of names).
    Csv(&'a Path),
    /// A split of the run's own data: `train`, `val` or `test`.
    Split(&'a str),
}

/// Reads a CSV of numbers with `width` columns, each inside `range` when one is given (pixel
/// intensities in `[0, 1]`); errors name the file, line and column.
pub fn read_csv(path: &Path, width: usize, range: Option<(f32, f32)>) -> Result<Vec<f32>> {
    parse_csv(path, &read_text(path)?, width, range)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| RunnerError::io(path, "cannot read", e))
}

/// [`read_csv`] on the text of `path`, already read.
fn parse_csv(path: &Path, text: &str, width: usize, range: Option<(f32, f32)>) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: std::result::Result<Vec<f32>, _> =
            fields.iter().map(|f| f.parse::<f32>()).collect();
        let bad = |message: String| RunnerError::Config {
            file: path.into(),
            location: Some((i + 1, 1)),
            message,
        };
        match parsed {
            Ok(row) if row.len() == width => {
                if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                    return Err(bad(format!("non-finite value {v}")));
                }
                if let Some((lo, hi)) = range {
                    if let Some(c) = row.iter().position(|v| !(lo..=hi).contains(v)) {
                        return Err(RunnerError::Config {
                            file: path.into(),
                            location: Some((i + 1, c + 1)),
                            message: format!(
                                "value {} in column {} is outside [{lo}, {hi}]: the model was \
                                 trained on pixel intensities in that range",
                                row[c],
                                c + 1
                            ),
                        });
                    }
                }
                values.extend(row);
            }
            Ok(row) => return Err(bad(format!("{} values, expected {width}", row.len()))),
            Err(_) if i == 0 => continue, // a header
            Err(e) => return Err(bad(format!("not a number: {e}"))),
        }
    }
    if values.is_empty() {
        return Err(RunnerError::Config {
            file: path.into(),
            location: None,
            message: "no data rows".into(),
        });
    }
    Ok(values)
}

/// Reads the columns named `wanted`, in that order, from a CSV whose header names its
/// columns (others, such as a `log_likelihood` column, are skipped); a CSV without a header
/// must have exactly those columns. Errors name the file and the missing column.
pub fn read_columns(path: &Path, wanted: &[String]) -> Result<Vec<f32>> {
    columns_of(path, &read_text(path)?, wanted)
}

/// [`read_columns`] on the text of `path`, already read.
fn columns_of(path: &Path, text: &str, wanted: &[String]) -> Result<Vec<f32>> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let names: Option<Vec<&str>> = first
        .filter(|l| l.split(',').any(|f| f.trim().parse::<f32>().is_err()))
        .map(|l| l.split(',').map(str::trim).collect());
    let Some(names) = names else {
        return parse_csv(path, text, wanted.len(), None);
    };
    let picked = wanted
        .iter()
        .map(|w| names.iter().position(|n| n == w))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| RunnerError::Config {
            file: path.into(),
            location: Some((1, 1)),
            message: format!(
                "the header needs the columns {} (found {})",
                wanted.join(","),
                names.join(",")
            ),
        })?;
    let all = parse_csv(path, text, names.len(), None)?;
    Ok(all
        .chunks(names.len())
        .flat_map(|row| picked.iter().map(|&c| row[c]))
        .collect())
}

/// The rows of a CSV, `wanted.len()` values each, read once: by name when the header names
/// every column of `wanted` (other columns, such as the `label` that `flowvae rows` writes,
/// are skipped), else by position (no header, or one of other names, and exactly that many
/// columns). Each value is checked against `range`; errors name the file, row and column.
pub fn read_rows(path: &Path, wanted: &[String], range: Option<(f32, f32)>) -> Result<Vec<f32>> {
    let text = read_text(path)?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let names: Vec<&str> = first.map_or(Vec::new(), |l| l.split(',').map(str::trim).collect());
    if !wanted.iter().all(|w| names.contains(&w.as_str())) {
        return parse_csv(path, &text, wanted.len(), range);
    }
    let values = columns_of(path, &text, wanted)?;
    if let Some((lo, hi)) = range {
        if let Some(i) = values.iter().position(|v| !(lo..=hi).contains(v)) {
            let (row, column) = (i / wanted.len(), &wanted[i % wanted.len()]);
            return Err(RunnerError::Config {
                file: path.into(),
                location: None,
                message: format!(
                    "value {} in column {column} of data row {} is outside [{lo}, {hi}]: the \
                     model was trained on pixel intensities in that range",
                    values[i],
                    row + 1
                ),
            });
        }
    }
    Ok(values)
}

pub(crate) fn header(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

pub(crate) fn write_rows(
    out: &Path,
    columns: &[String],
    blocks: &[Vec<Vec<f32>>],
) -> Result<usize> {
    let mut text = columns.join(",");
    text.push('\n');
    let rows = blocks.first().map_or(0, Vec::len);
    for r in 0..rows {
        let cells: Vec<String> = blocks
            .iter()
            .flat_map(|b| b[r].iter().map(|v| v.to_string()))
            .collect();
        let _ = writeln!(text, "{}", cells.join(","));
    }
    write_atomic(out, text.as_bytes())?;
    Ok(rows)
}

/// Transforms `input` with the model of `run` and writes `out`; returns the number of rows.
/// `sample` draws `z₀` from q₀ (seeded) instead of taking its mean.
pub fn transform(
    run: &Path,
    input: Input<'_>,
    out: &Path,
    sample: bool,
    seed: u64,
    device: &Device,
) -> Result<usize> {
    let config = run.join("config.yaml");
    match Experiment::load(&config)? {
        Experiment::Density(_) => {
            crate::tools::density::transform(run, (input, None), out, false, device)
        }
        Experiment::Vae(_) => transform_vae(run, input, out, sample.then_some(seed), device),
        Experiment::TwoD(exp) => {
            let Target2d::Samples(toy) = exp.target else {
                return Err(RunnerError::Config { file: config, location: None, message: "an energy-fitting run has no data to transform; use a density-estimation run".into() });
            };
            let values: Vec<f32> = match input {
                Input::Csv(path) => read_csv(path, 2, None)?,
                Input::Split(_) => toy
                    .sample(1000, &mut seeded(seed, flowvae_nn::Stream::Transform))
                    .iter()
                    .flat_map(|p| [p[0] as f32, p[1] as f32])
                    .collect(),
            };
            transform_2d(run, &exp, values, out, device)
        }
    }
}

/// A Flow-VAE's rows: `z₀` (the mean of q₀, or a draw seeded by `sample_seed`), `z_K` and
/// `log q(z_K|x)` per input row (`(n, 784)`-like, values in [0, 1]).
fn transform_vae(
    run: &Path,
    input: Input<'_>,
    out: &Path,
    sample_seed: Option<u64>,
    device: &Device,
) -> Result<usize> {
    let loaded = load_run(run, device)?;
    let dim = loaded.model.input_dim();
    let (values, n) = match input {
        Input::Csv(path) => {
            let v = read_csv(path, dim, Some((0.0, 1.0)))?;
            let n = v.len() / dim;
            (v, n)
        }
        Input::Split(name) => {
            let ds = split_by_name(load_splits(&loaded.exp.data)?, name)?;
            (ds.images, ds.n)
        }
    };
    let x = Tensor::from_vec(values, (n, dim), device)?;
    let model = &loaded.model;
    let enc = model.encode(&x)?;
    let eps = match sample_seed {
        Some(seed) => standard_normal(
            &mut seeded(seed, flowvae_nn::Stream::Transform),
            (n, model.latent()),
            DType::F32,
            device,
        )?,
        None => enc.q0.mu.zeros_like()?,
    };
    let z0 = enc.q0.rsample(&eps)?;
    let (zk, log_q) = model.posterior_sample(&enc, &eps)?;
    let z = model.latent();
    let mut columns = header("z0_", z);
    columns.extend(header("zK_", z));
    columns.push("log_q".into());
    let log_q: Vec<Vec<f32>> = log_q.unsqueeze(1)?.to_vec2()?;
    write_rows(out, &columns, &[z0.to_vec2()?, zk.to_vec2()?, log_q])
}

/// A 2-D density run's rows: `x`, `z = f⁻¹(x)` (the normalizing direction), `f(z)` back and
/// `log p(x)`, for `values` holding the points row-major (`(n, 2)`).
fn transform_2d(
    run: &Path,
    exp: &Experiment2d,
    values: Vec<f32>,
    out: &Path,
    device: &Device,
) -> Result<usize> {
    let dist = crate::run::two_d::load_distribution(
        exp,
        &run.join("checkpoints/final.safetensors"),
        device,
    )?;
    let n = values.len() / 2;
    let x = Tensor::from_vec(values, (n, 2), device)?;
    let (z, _) = dist.flow().inverse(&x, Conditioning::none())?;
    let (back, _) = dist.flow().forward(&z, Conditioning::none())?;
    let log_p: Vec<Vec<f32>> = dist
        .log_prob(&x, Conditioning::none())?
        .unsqueeze(1)?
        .to_vec2()?;
    let columns: Vec<String> = ["x0", "x1", "z0", "z1", "x0_back", "x1_back", "log_p"]
        .map(String::from)
        .to_vec();
    write_rows(
        out,
        &columns,
        &[x.to_vec2()?, z.to_vec2()?, back.to_vec2()?, log_p],
    )
}
