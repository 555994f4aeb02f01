//! IDX files (MNIST, Fashion-MNIST), raw or gzipped.
//!
//! An IDX file is a big-endian header — magic `0x0000_08NN` (type u8, `NN` dimensions), then
//! one `u32` per dimension — followed by the data. Images are `(n, rows, cols)` u8, labels
//! `(n,)` u8. Gzipped files are recognised by their content (`1f 8b`), not by their name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Location, Result};
use crate::read::{decode, find_first, read_file, FileBytes};
use crate::rng::{derived_rng, permutation, Stream};

/// Magic number of an IDX file of u8 images, `(n, rows, cols)`.
pub const IDX_U8_IMAGES: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels, `(n,)`.
pub const IDX_U8_LABELS: u32 = 0x0000_0801;

/// Which IDX data set a folder holds; only the names of the resulting data sets depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MnistKind {
    /// LeCun's MNIST digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
}

impl MnistKind {
    /// The data set name used in logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion_mnist",
        }
    }
}

/// How the validation set is carved out of the IDX training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationSplit {
    /// The last `n` training images (the usual 50k/10k split of MNIST's 60k).
    Last(usize),
    /// `size` training images chosen at random with `seed`; the rest keep their order.
    Random {
        /// Number of validation images.
        size: usize,
        /// Seed of the choice.
        seed: u64,
    },
}

impl Default for ValidationSplit {
    /// The last 10,000 images, the convention for 60k-image training sets.
    fn default() -> Self {
        Self::Last(10_000)
    }
}

/// The parsed header and payload of one IDX file.
struct Idx<'a> {
    dims: Vec<usize>,
    data: &'a [u8],
}

fn truncated(f: &FileBytes, what: &'static str, offset: usize, expected: usize) -> DataError {
    DataError::Truncated {
        path: f.path.clone(),
        what,
        offset: offset as u64,
        expected: expected as u64,
        available: f.bytes.len().saturating_sub(offset) as u64,
        decompressed: f.gzipped,
    }
}

/// Checks magic, header and length of `f` against `magic`; `what` describes its content.
fn parse<'a>(f: &'a FileBytes, magic: u32, what: &'static str) -> Result<Idx<'a>> {
    let b = &f.bytes;
    if b.is_empty() {
        return Err(DataError::Empty {
            path: f.path.clone(),
            expected: what,
        });
    }
    if b.len() < 4 {
        return Err(truncated(f, "IDX magic number", 0, 4));
    }
    let found = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if found != magic {
        return Err(DataError::WrongMagic {
            path: f.path.clone(),
            found,
            expected: magic,
            what,
        });
    }
    let ndims = usize::from(b[3]);
    let header = 4 + 4 * ndims;
    if b.len() < header {
        return Err(truncated(f, "IDX dimensions", 4, 4 * ndims));
    }
    let dims: Vec<usize> = b[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let payload = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::WrongSize {
            path: f.path.clone(),
            location: Location::Offset(4),
            found: format!("dimensions {dims:?}"),
            expected: "dimensions whose product fits in memory".into(),
        })?;
    let body = &b[header..];
    if body.len() < payload {
        return Err(truncated(f, what, header, payload));
    }
    if body.len() > payload {
        return Err(DataError::WrongSize {
            path: f.path.clone(),
            location: Location::Offset((header + payload) as u64),
            found: format!("{} bytes", b.len()),
            expected: format!("{} bytes for dimensions {dims:?}", header + payload),
        });
    }
    Ok(Idx { dims, data: body })
}

/// Images of an IDX u8 images file: `(n, rows, cols, pixels)`, pixels `(n, rows·cols)` in
/// `[0, 1]` (u8 / 255).
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<f32>)> {
    idx_images(read_file(path)?)
}

/// [`read_idx_images`] on the bytes of a file (raw or gzipped) already in memory; `path`
/// only names the file in errors.
pub fn read_idx_images_from_bytes(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(usize, usize, usize, Vec<f32>)> {
    idx_images(decode(path, bytes)?)
}

fn idx_images(f: FileBytes) -> Result<(usize, usize, usize, Vec<f32>)> {
    let idx = parse(&f, IDX_U8_IMAGES, "IDX u8 images")?;
    let (n, rows, cols) = (idx.dims[0], idx.dims[1], idx.dims[2]);
    if rows * cols == 0 {
        return Err(DataError::WrongSize {
            path: f.path.clone(),
            location: Location::Offset(8),
            found: format!("images of {rows}x{cols} pixels"),
            expected: "at least one pixel per image".into(),
        });
    }
    let pixels = idx.data.iter().map(|&v| f32::from(v) / 255.0).collect();
    Ok((n, rows, cols, pixels))
}

/// Labels of an IDX u8 labels file, shape `(n,)`.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    idx_labels(read_file(path)?)
}

/// [`read_idx_labels`] on the bytes of a file (raw or gzipped) already in memory; `path`
/// only names the file in errors.
pub fn read_idx_labels_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    idx_labels(decode(path, bytes)?)
}

fn idx_labels(f: FileBytes) -> Result<Vec<u8>> {
    let idx = parse(&f, IDX_U8_LABELS, "IDX u8 labels")?;
    Ok(idx.data.to_vec())
}

/// An images file and its labels file as one data set named after the images file.
///
/// Errors if either file is bad or their counts differ.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<Dataset> {
    let (n, rows, cols, pixels) = read_idx_images(images)?;
    let labs = read_idx_labels(labels)?;
    if labs.len() != n {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: n,
            n_labels: labs.len(),
        });
    }
    let name = images.file_name().map_or_else(
        || images.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    Ok(Dataset {
        images: pixels,
        labels: labs,
        n,
        dim: rows * cols,
        height: rows,
        width: cols,
        name,
    })
}

/// Accepted file names for `{prefix}-{part}-idx{ndim}-ubyte`, preferred first: the standard
/// dash form and the dotted form some mirrors use, each raw or `.gz`.
fn candidates(prefix: &str, part: &str, ndim: u8) -> Vec<String> {
    let dash = format!("{prefix}-{part}-idx{ndim}-ubyte");
    let dot = format!("{prefix}-{part}.idx{ndim}-ubyte");
    vec![
        dash.clone(),
        format!("{dash}.gz"),
        dot.clone(),
        format!("{dot}.gz"),
    ]
}

/// Paths of the images and labels files for `prefix` (`train` or `t10k`) in `dir`.
fn find_pair(dir: &Path, prefix: &str) -> Result<(PathBuf, PathBuf)> {
    Ok((
        find_first(dir, &candidates(prefix, "images", 3))?,
        find_first(dir, &candidates(prefix, "labels", 1))?,
    ))
}

/// Reads `train-*` and `t10k-*` IDX files (raw or `.gz`) from `dir` and carves a validation
/// set out of the training set as `val` says. Data sets are named `{kind}/train`, `…/val`,
/// `…/test`.
pub fn load_mnist_dir(dir: &Path, kind: MnistKind, val: ValidationSplit) -> Result<Splits> {
    let (tr_img, tr_lab) = find_pair(dir, "train")?;
    let (te_img, te_lab) = find_pair(dir, "t10k")?;
    let full = load_idx_pair(&tr_img, &tr_lab)?;
    let mut test = load_idx_pair(&te_img, &te_lab)?;
    if (test.height, test.width) != (full.height, full.width) {
        return Err(DataError::ImageSizeMismatch {
            first: tr_img,
            first_height: full.height,
            first_width: full.width,
            second: te_img,
            second_height: test.height,
            second_width: test.width,
        });
    }
    let name = kind.name();
    let (n_val, val_idx): (usize, Vec<usize>) = match val {
        ValidationSplit::Last(k) => (k, (full.n.saturating_sub(k)..full.n).collect()),
        ValidationSplit::Random { size, seed } => {
            let perm = permutation(full.n, &mut derived_rng(seed, Stream::Split, 0));
            let mut v = perm[..size.min(full.n)].to_vec();
            v.sort_unstable();
            (size, v)
        }
    };
    if n_val >= full.n {
        return Err(DataError::Split {
            dataset: full.name.clone(),
            n: full.n,
            requested: vec![full.n.saturating_sub(n_val), n_val],
            reason: "the validation set leaves no training data",
        });
    }
    let mut in_val = vec![false; full.n];
    for &i in &val_idx {
        in_val[i] = true;
    }
    let train_idx: Vec<usize> = (0..full.n).filter(|&i| !in_val[i]).collect();
    test.name = format!("{name}/test");
    Ok(Splits {
        train: full.subset_named(&train_idx, format!("{name}/train")),
        val: full.subset_named(&val_idx, format!("{name}/val")),
        test,
    })
}
