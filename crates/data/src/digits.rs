//! The UCI optical handwritten digits, embedded in the binary (no files, no downloads).
//!
//! 1,797 images of 8×8 pixels with integer values 0–16 (scaled to `[0, 1]` by /16) and labels
//! 0–9: the copy scikit-learn ships as `sklearn/datasets/data/digits.csv.gz` (Alpaydin &
//! Kaynak, UCI ML repository, CC BY 4.0; see `assets/README.md`). Each CSV row holds the 64
//! pixels in row-major order, then the label.

use std::path::Path;

use crate::dataset::{Dataset, Splits};
use crate::error::{DataError, Location, Result};
use crate::read::{decode, parse_number, read_file, text_lines};

/// The gzipped CSV embedded in the crate.
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../assets/digits.csv.gz");
/// Number of embedded images.
pub const DIGITS_N: usize = 1797;
/// Side of a digits image in pixels.
pub const DIGITS_SIDE: usize = 8;
/// Largest pixel value in the raw data (pixels are divided by it).
pub const DIGITS_MAX: f64 = 16.0;
/// Validation and test set sizes of [`digits_splits`] (the training set gets the other 1,397).
pub const DIGITS_HELD_OUT: usize = 200;

/// The name used for the embedded file in error messages.
const EMBEDDED_PATH: &str = "<embedded>/digits.csv.gz";

/// The embedded digits: `(1797, 64)` pixels in `[0, 1]`, labels 0–9, in file order.
pub fn load_digits() -> Result<Dataset> {
    let f = decode(Path::new(EMBEDDED_PATH), DIGITS_CSV_GZ.to_vec())?;
    parse_digits_csv(Path::new(EMBEDDED_PATH), &f.bytes)
}

/// A digits CSV from disk (raw or gzipped), e.g. the one in a system scikit-learn install.
pub fn load_digits_csv(path: &Path) -> Result<Dataset> {
    let f = read_file(path)?;
    parse_digits_csv(path, &f.bytes)
}

/// The embedded digits shuffled with `seed` and split 1,397 / 200 / 200 into train / val /
/// test, named `digits/train`, `digits/val`, `digits/test`.
pub fn digits_splits(seed: u64) -> Result<Splits> {
    Splits::from_shuffled(&load_digits()?, DIGITS_HELD_OUT, DIGITS_HELD_OUT, seed)
}

/// Parses CSV rows of 64 pixels (0–16) and a label (0–9); `path` names the source in errors.
fn parse_digits_csv(path: &Path, bytes: &[u8]) -> Result<Dataset> {
    const DIM: usize = DIGITS_SIDE * DIGITS_SIDE;
    let mut images = Vec::with_capacity(DIGITS_N * DIM);
    let mut labels = Vec::with_capacity(DIGITS_N);
    for (line_no, line) in text_lines(bytes) {
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if fields.len() != DIM + 1 {
            return Err(DataError::WrongSize {
                path: path.to_path_buf(),
                location: Location::Line(line_no),
                found: format!("{} comma-separated values", fields.len()),
                expected: format!("{} (64 pixels, then the label)", DIM + 1),
            });
        }
        for (k, field) in fields.iter().enumerate() {
            let location = Location::LineValue {
                line: line_no,
                value: k + 1,
            };
            let (max, expected) = if k < DIM {
                (DIGITS_MAX, "an integer in [0, 16]")
            } else {
                (9.0, "a label in 0..=9")
            };
            let v = parse_number(path, field, location, expected)?;
            if !(0.0..=max).contains(&v) || (k == DIM && v.fract() != 0.0) {
                return Err(DataError::OutOfRange {
                    path: path.to_path_buf(),
                    location,
                    value: v,
                    expected,
                });
            }
            if k < DIM {
                images.push((v / DIGITS_MAX) as f32);
            } else {
                labels.push(v as u8);
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            expected: "CSV rows of 64 pixels and a label",
        });
    }
    Ok(Dataset {
        images,
        n: labels.len(),
        labels,
        dim: DIM,
        height: DIGITS_SIDE,
        width: DIGITS_SIDE,
        name: "digits".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_have_the_documented_shape_and_range() {
        let d = load_digits().unwrap();
        assert_eq!((d.n, d.dim, d.height, d.width), (DIGITS_N, 64, 8, 8));
        assert_eq!(d.images.len(), DIGITS_N * 64);
        assert_eq!(d.labels.len(), DIGITS_N);
        assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(d.images.contains(&1.0), "no pixel reached 16/16");
        let mut counts = [0usize; 10];
        for &l in &d.labels {
            counts[usize::from(l)] += 1;
        }
        // Every class has roughly a tenth of the images (174..=183 in this copy).
        assert!(
            counts.iter().all(|&c| (170..=190).contains(&c)),
            "{counts:?}"
        );
        // First row of the file: 0,0,5,13,9,1,0,0,… label 0.
        assert_eq!(&d.row(0)[..4], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]);
        assert_eq!(d.labels[0], 0);
    }

    #[test]
    fn digits_splits_are_deterministic_disjoint_and_sized() {
        let a = digits_splits(0).unwrap();
        let b = digits_splits(0).unwrap();
        let c = digits_splits(1).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.train.images, c.train.images);
        assert_eq!((a.train.n, a.val.n, a.test.n), (1397, 200, 200));
        // Together the three parts hold every image exactly once (compare as multisets).
        let full = load_digits().unwrap();
        let key = |d: &Dataset, i: usize| {
            let mut k: Vec<u8> = d.row(i).iter().map(|v| (v * 16.0) as u8).collect();
            k.push(d.labels[i]);
            k
        };
        let mut all: Vec<Vec<u8>> = a
            .iter()
            .flat_map(|(_, s)| (0..s.n).map(move |i| key(s, i)))
            .collect();
        let mut orig: Vec<Vec<u8>> = (0..full.n).map(|i| key(&full, i)).collect();
        all.sort();
        orig.sort();
        assert_eq!(all, orig);
    }

    #[test]
    fn bad_digits_rows_are_reported_with_line_and_value() {
        let p = Path::new("d.csv");
        let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
        let e = parse_digits_csv(p, format!("{}{}", row("3"), row("10")).as_bytes());
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("d.csv") && msg.contains("line 2, value 65"),
            "{msg}"
        );
        let e = parse_digits_csv(p, b"1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("line 1: got 3 comma-separated values"), "{e}");
        assert!(matches!(
            parse_digits_csv(p, b"\n"),
            Err(DataError::Empty { .. })
        ));
    }
}
