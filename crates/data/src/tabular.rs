//! A user's own data: rows of real numbers from a CSV file or a NumPy `.npy` array.
//!
//! Both readers refuse what would silently corrupt a density estimate (a non-numeric cell,
//! ragged rows, NaN or ±∞, a constant column that standardization would divide by zero, an
//! `.npy` in Fortran order or of an unsupported dtype) with the file, the place and what was
//! expected. Rows come back as a [`Dataset`] of height 1 whose values are not restricted to
//! `[0, 1]`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Location, Result};

/// `data.source.csv`: a CSV file of numbers, one row per example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    /// The file.
    pub path: PathBuf,
    /// The columns to keep, by header name (or by 0-based index when there is no header);
    /// absent: every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Whether the first line names the columns (default true).
    #[serde(default = "yes")]
    pub header: bool,
}

fn yes() -> bool {
    true
}

/// The most values a tabular file may hold (a typo in a path to a huge file is refused
/// before it exhausts memory).
pub const MAX_VALUES: usize = 1 << 30;

/// Reads the CSV `source` into `(n, d)` rows, with the names of the kept columns.
pub fn load_csv(source: &CsvSource) -> Result<(Dataset, Vec<String>)> {
    let path = &source.path;
    let text = std::fs::read_to_string(path).map_err(|cause| DataError::Io {
        path: path.clone(),
        cause,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let width_of = |line: &str| line.split(',').count();
    let (names, first_data) = if source.header {
        let Some((_, head)) = lines.next() else {
            return Err(empty(path));
        };
        let names: Vec<String> = head.split(',').map(|s| s.trim().to_string()).collect();
        (names, None)
    } else {
        let first = lines.next().ok_or_else(|| empty(path))?;
        let names = (0..width_of(first.1)).map(|i| i.to_string()).collect();
        (names, Some(first))
    };
    let keep = kept_columns(path, &names, source.columns.as_deref())?;
    let mut values = Vec::new();
    let mut rows = 0;
    for (index, line) in first_data.into_iter().chain(lines) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != names.len() {
            return Err(DataError::WrongSize {
                path: path.clone(),
                location: Location::Line(index + 1),
                found: format!("{} columns", cells.len()),
                expected: format!("{} columns, as the first line", names.len()),
            });
        }
        for &c in &keep {
            values.push(parse_cell(path, cells[c], index + 1, c, &names[c])?);
        }
        rows += 1;
        if values.len() > MAX_VALUES {
            return Err(too_many(path));
        }
    }
    if rows == 0 {
        return Err(empty(path));
    }
    let kept: Vec<String> = keep.iter().map(|&c| names[c].clone()).collect();
    let data = table(path, values, rows, kept.len())?;
    Ok((data, kept))
}

fn empty(path: &Path) -> DataError {
    DataError::Empty {
        path: path.to_path_buf(),
        expected: "rows of comma-separated numbers",
    }
}

fn too_many(path: &Path) -> DataError {
    DataError::WrongSize {
        path: path.to_path_buf(),
        location: Location::Field("rows"),
        found: format!("more than {MAX_VALUES} values"),
        expected: format!("at most {MAX_VALUES}"),
    }
}

/// The indices of the columns to keep: all, or those named (by header name or index).
fn kept_columns(path: &Path, names: &[String], wanted: Option<&[String]>) -> Result<Vec<usize>> {
    let Some(wanted) = wanted else {
        return Ok((0..names.len()).collect());
    };
    if wanted.is_empty() {
        return Err(DataError::Setting {
            field: "data.source.csv.columns".into(),
            message: "is empty; list at least one column, or leave it out for all".into(),
        });
    }
    wanted
        .iter()
        .map(|w| {
            names
                .iter()
                .position(|n| n == w)
                .ok_or_else(|| DataError::Setting {
                    field: "data.source.csv.columns".into(),
                    message: format!(
                        "`{w}` is not a column of {}; it has {}",
                        path.display(),
                        names.join(", ")
                    ),
                })
        })
        .collect()
}

fn parse_cell(path: &Path, cell: &str, line: usize, column: usize, name: &str) -> Result<f32> {
    let location = Location::LineValue {
        line,
        value: column + 1,
    };
    let expected = format!("a number in column `{name}`");
    Ok(crate::read::parse_number(path, cell.trim().as_bytes(), location, &expected)? as f32)
}

/// `(rows, width)` values as a dataset of height 1, after refusing constant columns.
fn table(path: &Path, values: Vec<f32>, rows: usize, width: usize) -> Result<Dataset> {
    if let Some(column) = (0..width).find(|&c| {
        let first = values[c];
        (0..rows).all(|r| values[r * width + c] == first)
    }) {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            location: Location::Index(column),
            message: format!(
                "column {} is constant ({}): it carries no density and would be divided by a \
                 zero spread; drop it (`columns:`)",
                column + 1,
                values[column]
            ),
        });
    }
    let name = path
        .file_name()
        .map_or("table".into(), |s| s.to_string_lossy().into_owned());
    Ok(Dataset {
        images: values,
        labels: Vec::new(),
        n: rows,
        dim: width,
        height: 1,
        width,
        name,
    })
}

/// Reads a 2-D `.npy` array of little-endian `f4` or `f8` in C order: `(n, d)` rows.
pub fn load_npy(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|cause| DataError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let header = NpyHeader::parse(path, &bytes)?;
    let (rows, width) = header.shape;
    let count = rows.checked_mul(width).filter(|&c| c <= MAX_VALUES);
    let count = count.ok_or_else(|| too_many(path))?;
    let size = if header.f64 { 8 } else { 4 };
    let payload = &bytes[header.data_offset..];
    if payload.len() < count * size {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "array data",
            offset: header.data_offset as u64,
            expected: (count * size) as u64,
            available: payload.len() as u64,
            decompressed: false,
        });
    }
    let mut values = Vec::with_capacity(count);
    for (i, chunk) in payload.chunks_exact(size).take(count).enumerate() {
        let value = match chunk.try_into() {
            Ok(b) if header.f64 => f64::from_le_bytes(b),
            _ => f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as f64,
        };
        if !value.is_finite() {
            let location = Location::Index(i);
            let path = path.to_path_buf();
            return Err(DataError::NonFinite {
                path,
                location,
                value,
            });
        }
        values.push(value as f32);
    }
    if rows == 0 {
        return Err(empty(path));
    }
    table(path, values, rows, width)
}

/// The parts of an `.npy` header this reader accepts.
struct NpyHeader {
    f64: bool,
    shape: (usize, usize),
    data_offset: usize,
}

impl NpyHeader {
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |message: String| DataError::Parse {
            path: path.to_path_buf(),
            location: Location::Field("header"),
            message,
        };
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad(
                "not an .npy file (expected the magic \\x93NUMPY)".into()
            ));
        }
        let (length, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => {
                let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
                (l as usize, 12)
            }
            v => return Err(bad(format!("format version {v} is not 1, 2 or 3"))),
        };
        let text = bytes
            .get(start..start + length)
            .ok_or_else(|| bad("the header is cut off".into()))?;
        let text = String::from_utf8_lossy(text);
        let f64 = match quoted_value(&text, "descr").as_deref() {
            Some("<f8") | Some("=f8") => true,
            Some("<f4") | Some("=f4") => false,
            other => {
                let found = other.unwrap_or("none");
                return Err(bad(format!(
                    "dtype {found}; expected float32 or float64 (<f4, <f8)"
                )));
            }
        };
        if !text.contains("'fortran_order': False") {
            return Err(bad(
                "Fortran order; expected C order (np.ascontiguousarray before np.save)".into(),
            ));
        }
        let shape = shape_of(&text).ok_or_else(|| bad("no `shape` in the header".into()))?;
        let shape = match shape[..] {
            [n, d] => (n, d),
            _ => {
                return Err(bad(format!(
                    "shape {shape:?}; expected 2 dimensions (rows, columns)"
                )))
            }
        };
        Ok(Self {
            f64,
            shape,
            data_offset: start + length,
        })
    }
}

/// The quoted value of `'key': '...'` in an `.npy` header dictionary.
fn quoted_value(header: &str, key: &str) -> Option<String> {
    let rest = &header[header.find(&format!("'{key}'"))? + key.len() + 2..];
    let rest = &rest[rest.find('\'')? + 1..];
    Some(rest[..rest.find('\'')?].to_string())
}

/// The `shape` tuple of an `.npy` header.
fn shape_of(header: &str) -> Option<Vec<usize>> {
    let rest = &header[header.find("'shape'")?..];
    let inner = &rest[rest.find('(')? + 1..rest.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests;
