//! The data of a density run: the splits, the context rows of a conditional density (one-hot
//! labels, or CSV columns standardized with the training split's statistics) and the classes
//! left out of training for an anomaly study. The fitted condition is recorded in
//! `preprocess.json`, so the commands on a finished run encode contexts as training did.

use candle_core::{Device, Tensor};
use flowvae_data::{load_unbinarized, CsvSource, DataSource, Dataset, Splits};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunnerError};
use crate::experiment::density::{Condition, DensityData};

/// Column names and rows of values, `(n, C)`.
pub type NamedColumns = (Vec<String>, Vec<Vec<f32>>);

/// A condition fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FittedCondition {
    /// One-hot class labels `0..classes`.
    Labels {
        /// Number of classes (one more than the largest label in the data).
        classes: usize,
    },
    /// CSV columns, `(c − mean) / std` with the training split's statistics.
    Columns {
        /// The columns, in the order of the context.
        names: Vec<String>,
        /// Their training means.
        mean: Vec<f64>,
        /// Their training standard deviations.
        std: Vec<f64>,
    },
}

impl FittedCondition {
    /// Width `C` of the context rows.
    pub fn width(&self) -> usize {
        match self {
            Self::Labels { classes } => *classes,
            Self::Columns { names, .. } => names.len(),
        }
    }

    /// Numbers per row that give a condition in a file: a class, or the condition columns.
    pub fn raw_width(&self) -> usize {
        match self {
            Self::Labels { .. } => 1,
            Self::Columns { names, .. } => names.len(),
        }
    }

    /// The names of the columns that give a condition in a file: `label`, or the condition
    /// columns' own.
    pub fn raw_names(&self) -> Vec<String> {
        match self {
            Self::Labels { .. } => vec!["label".into()],
            Self::Columns { names, .. } => names.clone(),
        }
    }

    /// The context rows `(n, C)` as the columns a file gives them in ([`Self::raw_names`]): the
    /// class of each one-hot row, or the condition columns in the data's units.
    pub fn raw_columns(&self, context: &Tensor) -> Result<NamedColumns> {
        if let Some(columns) = self.in_data_units(context)? {
            return Ok(columns);
        }
        let classes: Vec<u32> = context.argmax(1)?.to_vec1()?;
        let rows = classes.into_iter().map(|c| vec![c as f32]).collect();
        Ok((self.raw_names(), rows))
    }

    /// For a column condition, its names and the context rows `(n, C)` back in the data's
    /// units; `None` for labels.
    pub fn in_data_units(&self, context: &Tensor) -> Result<Option<NamedColumns>> {
        let Self::Columns { names, mean, std } = self else {
            return Ok(None);
        };
        let rows: Vec<Vec<f32>> = context.to_vec2()?;
        let raw = rows
            .iter()
            .map(|r| {
                let unit = |(j, v): (usize, &f32)| (*v as f64 * std[j] + mean[j]) as f32;
                r.iter().enumerate().map(unit).collect()
            })
            .collect();
        Ok(Some((names.clone(), raw)))
    }

    /// In words, for summaries.
    pub fn describe(&self) -> String {
        match self {
            Self::Labels { classes } => format!("class labels (one-hot, {classes} classes)"),
            Self::Columns { names, .. } => format!("columns {}", names.join(", ")),
        }
    }

    /// The context row of a `--context` value: a class (`3`) or the condition columns' values
    /// (`0.5,1.2`), in the data's units.
    pub fn parse(&self, text: &str) -> Result<Vec<f32>> {
        let bad = |message: String| RunnerError::Config {
            file: "--context".into(),
            location: None,
            message,
        };
        match self {
            Self::Labels { classes } => {
                let class = text.trim().parse::<usize>().ok().filter(|c| c < classes);
                let class = class.ok_or_else(|| {
                    bad(format!(
                        "`{text}` is not a class the run was trained on (0 to {})",
                        classes - 1
                    ))
                })?;
                Ok(one_hot(*classes, [class]))
            }
            Self::Columns { names, mean, std } => {
                let values: Vec<f64> = text
                    .split(',')
                    .map(|v| v.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect::<Option<_>>()
                    .filter(|v: &Vec<f64>| v.len() == names.len())
                    .ok_or_else(|| {
                        bad(format!(
                            "`{text}`: expected {} finite numbers separated by commas, the values \
                             of {}",
                            names.len(),
                            names.join(", ")
                        ))
                    })?;
                Ok(standardize(&values, mean, std))
            }
        }
    }
}

fn one_hot(classes: usize, labels: impl IntoIterator<Item = usize>) -> Vec<f32> {
    let mut rows = Vec::new();
    for label in labels {
        let start = rows.len();
        rows.resize(start + classes, 0.0);
        rows[start + label] = 1.0;
    }
    rows
}

fn standardize(values: &[f64], mean: &[f64], std: &[f64]) -> Vec<f32> {
    let width = mean.len();
    let column = |i: usize| i % width;
    let standardized = |(i, v): (usize, &f64)| ((v - mean[column(i)]) / std[column(i)]) as f32;
    values.iter().enumerate().map(standardized).collect()
}

/// The context rows of the three splits, `(n, C)` each, row-major.
#[derive(Debug, Clone)]
pub struct Contexts {
    /// How the context was fitted.
    pub fitted: FittedCondition,
    train: Vec<f32>,
    val: Vec<f32>,
    test: Vec<f32>,
}

impl Contexts {
    /// The context rows `idx` of `split` (`train`, `val` or `test`) as a `(idx.len(), C)`
    /// tensor.
    pub fn rows(&self, split: &str, idx: &[usize], device: &Device) -> Result<Tensor> {
        let width = self.fitted.width();
        let values = match split {
            "train" => &self.train,
            "val" => &self.val,
            _ => &self.test,
        };
        let mut gathered = Vec::with_capacity(idx.len() * width);
        for &i in idx {
            gathered.extend_from_slice(&values[i * width..(i + 1) * width]);
        }
        Ok(Tensor::from_vec(gathered, (idx.len(), width), device)?)
    }

    /// The contexts of the samples a run draws at its end, `(n, C)`, and a caption: eight of
    /// each class (one grid row per class), or one per context of the first 64 test rows.
    pub fn sample_contexts(&self, device: &Device) -> Result<(Tensor, String)> {
        match &self.fitted {
            FittedCondition::Labels { classes } => {
                let rows = one_hot(*classes, (0..8 * classes).map(|i| i / 8));
                let caption = format!("rows: classes 0-{}", classes - 1);
                Ok((
                    Tensor::from_vec(rows, (8 * classes, *classes), device)?,
                    caption,
                ))
            }
            FittedCondition::Columns { .. } => {
                let n = (self.test.len() / self.fitted.width()).min(64);
                let caption = format!("{n} samples given the first test rows' conditions");
                Ok((
                    self.rows("test", &(0..n).collect::<Vec<_>>(), device)?,
                    caption,
                ))
            }
        }
    }
}

/// The splits of a density run and, for a conditional one, their contexts.
pub struct LoadedData {
    /// Train / val / test of the modelled rows.
    pub splits: Splits,
    /// The contexts (conditional densities only).
    pub contexts: Option<Contexts>,
}

/// Loads the data of `data`: the condition columns kept apart from the modelled ones, the
/// excluded classes dropped from training and validation.
pub fn load(data: &DensityData) -> Result<LoadedData> {
    let (seed, subset) = (data.split_seed, data.subset.as_ref());
    let (mut splits, contexts) = match (&data.condition, &data.source) {
        (Some(Condition::Columns(names)), DataSource::Csv(csv)) => {
            let (modelled, condition) = column_sources(csv, names)?;
            let splits = load_unbinarized(&DataSource::Csv(modelled), seed, subset)?;
            let condition = load_unbinarized(&DataSource::Csv(condition), seed, subset)?;
            (splits, Some(column_contexts(names, &condition)))
        }
        (Some(Condition::Labels), source) => {
            let splits = load_unbinarized(source, seed, subset)?;
            let contexts = label_contexts(&splits)?;
            (splits, Some(contexts))
        }
        (_, source) => (load_unbinarized(source, seed, subset)?, None),
    };
    let contexts = match data.exclude_classes.is_empty() {
        true => contexts,
        false => exclude(&mut splits, contexts, &data.exclude_classes)?,
    };
    Ok(LoadedData { splits, contexts })
}

fn condition_error(field: &str, message: String) -> RunnerError {
    RunnerError::Config {
        file: format!("data.{field}").into(),
        location: None,
        message,
    }
}

/// The CSV source of the modelled columns (the user's `columns`, or every column but the
/// condition's) and the source of the condition columns.
fn column_sources(csv: &CsvSource, names: &[String]) -> Result<(CsvSource, CsvSource)> {
    let every = CsvSource {
        columns: None,
        ..csv.clone()
    };
    let (_, all) = flowvae_data::load_csv(&every)?;
    let path = csv.path.display();
    if let Some(missing) = names.iter().find(|n| !all.contains(n)) {
        let message = format!(
            "`{missing}` is not a column of {path}; it has {}",
            all.join(", ")
        );
        return Err(condition_error("condition.columns", message));
    }
    let modelled: Vec<String> = match &csv.columns {
        Some(columns) => columns.clone(),
        None => all.iter().filter(|c| !names.contains(c)).cloned().collect(),
    };
    if let Some(both) = modelled.iter().find(|c| names.contains(c)) {
        let message = format!("`{both}` is both modelled (source.csv.columns) and a condition");
        return Err(condition_error("condition.columns", message));
    }
    if modelled.is_empty() {
        let message = format!("every column of {path} is a condition; nothing is left to model");
        return Err(condition_error("condition.columns", message));
    }
    let with = |columns: Vec<String>| CsvSource {
        columns: Some(columns),
        ..csv.clone()
    };
    Ok((with(modelled), with(names.to_vec())))
}

/// Standardized condition columns; constant columns were refused when the table was read.
fn column_contexts(names: &[String], condition: &Splits) -> Contexts {
    let train = &condition.train;
    let width = train.dim;
    let n = train.n.max(1) as f64;
    let mut mean = vec![0.0; width];
    let mut square = vec![0.0; width];
    for (i, &v) in train.images.iter().enumerate() {
        mean[i % width] += v as f64 / n;
        square[i % width] += (v as f64).powi(2) / n;
    }
    let std: Vec<f64> = (0..width)
        .map(|j| (square[j] - mean[j] * mean[j]).max(0.0).sqrt().max(1e-12))
        .collect();
    let encode = |d: &Dataset| {
        let values: Vec<f64> = d.images.iter().map(|&v| v as f64).collect();
        standardize(&values, &mean, &std)
    };
    Contexts {
        train: encode(&condition.train),
        val: encode(&condition.val),
        test: encode(&condition.test),
        fitted: FittedCondition::Columns {
            names: names.to_vec(),
            mean,
            std,
        },
    }
}

/// One-hot labels over the classes that occur in any split.
fn label_contexts(splits: &Splits) -> Result<Contexts> {
    if let Some((_, d)) = splits.iter().find(|(_, d)| !d.has_labels()) {
        let message = format!("`{}` has no class labels to condition on", d.name);
        return Err(condition_error("condition", message));
    }
    let classes = 1 + splits
        .iter()
        .flat_map(|(_, d)| d.labels.iter().copied())
        .max()
        .unwrap_or(0) as usize;
    let encode = |d: &Dataset| one_hot(classes, d.labels.iter().map(|&l| l as usize));
    Ok(Contexts {
        train: encode(&splits.train),
        val: encode(&splits.val),
        test: encode(&splits.test),
        fitted: FittedCondition::Labels { classes },
    })
}

/// Drops the rows of `classes` from training and validation (and their contexts).
fn exclude(
    splits: &mut Splits,
    contexts: Option<Contexts>,
    classes: &[u8],
) -> Result<Option<Contexts>> {
    if !splits.train.has_labels() {
        let message = format!("`{}` has no class labels", splits.train.name);
        return Err(condition_error("exclude_classes", message));
    }
    if let Some(c) = classes.iter().find(|c| !splits.train.labels.contains(c)) {
        let message = format!("class {c} does not occur in `{}`", splits.train.name);
        return Err(condition_error("exclude_classes", message));
    }
    let kept = |d: &Dataset| -> Vec<usize> {
        (0..d.n)
            .filter(|&i| !classes.contains(&d.labels[i]))
            .collect()
    };
    let (train_rows, val_rows) = (kept(&splits.train), kept(&splits.val));
    if train_rows.is_empty() || val_rows.is_empty() {
        let message = "no training or validation rows are left".to_string();
        return Err(condition_error("exclude_classes", message));
    }
    splits.train = splits.train.subset(&train_rows);
    splits.val = splits.val.subset(&val_rows);
    Ok(contexts.map(|c| {
        let width = c.fitted.width();
        let pick = |values: &[f32], rows: &[usize]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        Contexts {
            train: pick(&c.train, &train_rows),
            val: pick(&c.val, &val_rows),
            ..c
        }
    }))
}
