//! Larochelle's statically binarized MNIST in `.amat` text files.
//!
//! One 28×28 image per line: 784 whitespace-separated values, `0`/`1` (floats such as `0.0`
//! are accepted, any value in `[0, 1]`). No labels. The standard files are
//! `binarized_mnist_train.amat` (50,000), `binarized_mnist_valid.amat` (10,000) and
//! `binarized_mnist_test.amat` (10,000); gzipped copies are read as well.

use std::path::Path;

use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Location, Result};
use crate::read::{decode, find_first, parse_number, read_file, text_lines, FileBytes};

/// Side of an `.amat` image in pixels.
pub const AMAT_SIDE: usize = 28;
/// Values per `.amat` line (28 × 28).
pub const AMAT_DIM: usize = AMAT_SIDE * AMAT_SIDE;

/// What an `.amat` value should look like, for error messages.
const EXPECTED_VALUE: &str = "0 or 1 (or a float in [0, 1])";

/// Reads one `.amat` file into an unlabelled `(n, 784)` data set called `name`.
///
/// Errors name the file and line: wrong number of values, a non-numeric token, NaN/Inf, a
/// value outside `[0, 1]`, or no images at all.
pub fn load_amat(path: &Path, name: impl Into<String>) -> Result<Dataset> {
    amat(read_file(path)?, name.into())
}

/// [`load_amat`] on the bytes of a file (raw or gzipped) already in memory; `path` only
/// names the file in errors.
pub fn load_amat_from_bytes(
    path: &Path,
    bytes: Vec<u8>,
    name: impl Into<String>,
) -> Result<Dataset> {
    amat(decode(path, bytes)?, name.into())
}

fn amat(f: FileBytes, name: String) -> Result<Dataset> {
    let path = f.path.as_path();
    let mut images = Vec::with_capacity(f.bytes.len() / 2);
    for (line_no, line) in text_lines(&f.bytes) {
        let start = images.len();
        for (k, token) in line
            .split(u8::is_ascii_whitespace)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let location = Location::LineValue {
                line: line_no,
                value: k + 1,
            };
            let value = parse_number(path, token, location, EXPECTED_VALUE)?;
            if !(0.0..=1.0).contains(&value) {
                return Err(DataError::OutOfRange {
                    path: path.to_path_buf(),
                    location,
                    value,
                    expected: "[0, 1]",
                });
            }
            images.push(value as f32);
        }
        let got = images.len() - start;
        if got != AMAT_DIM {
            return Err(DataError::WrongSize {
                path: path.to_path_buf(),
                location: Location::Line(line_no),
                found: format!("{got} values"),
                expected: format!("{AMAT_DIM} values"),
            });
        }
    }
    if images.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            expected: "lines of 784 binary pixel values",
        });
    }
    let n = images.len() / AMAT_DIM;
    Ok(Dataset {
        images,
        labels: Vec::new(),
        n,
        dim: AMAT_DIM,
        height: AMAT_SIDE,
        width: AMAT_SIDE,
        name,
    })
}

/// Reads `binarized_mnist_{train,valid,test}.amat` (or `.amat.gz`) from `dir` as the
/// train/val/test splits, named `binarized_mnist/train`, `…/val`, `…/test`.
pub fn load_binarized_mnist(dir: &Path) -> Result<Splits> {
    let load = |part: &str, role: &str| {
        let base = format!("binarized_mnist_{part}.amat");
        let path = find_first(dir, &[base.clone(), format!("{base}.gz")])?;
        load_amat(&path, format!("binarized_mnist/{role}"))
    };
    Ok(Splits {
        train: load("train", "train")?,
        val: load("valid", "val")?,
        test: load("test", "test")?,
    })
}
