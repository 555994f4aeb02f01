//! `metrics.csv`: one row per logged step or epoch, flushed as written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// A CSV file with a fixed header; each row is flushed so a crash loses no logged row. The
/// rows are also kept in memory ([`MetricsWriter::rows_text`]) so that checkpoints carry them
/// and a resumed run can repair a damaged file.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    columns: Vec<String>,
    out: BufWriter<File>,
    rows: Vec<String>,
}

impl MetricsWriter {
    /// Creates `path` with the given header.
    pub fn create(path: &Path, columns: &[&str]) -> Result<Self> {
        let file = File::create(path).map_err(|e| TrainError::io(path, "cannot create", e))?;
        let mut writer = Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            out: BufWriter::new(file),
            rows: Vec::new(),
        };
        let header = columns.join(",");
        writer.write_line(&header)?;
        Ok(writer)
    }

    /// Reopens `path` to continue a run whose checkpoint recorded `rows` (its rows so far, one
    /// per line): the file is rewritten as the header and exactly those rows, which drops rows
    /// written after the checkpoint and restores rows lost from a truncated or deleted file.
    /// Returns the writer and whether the file had to be repaired (it lacked or changed rows
    /// the checkpoint has).
    pub fn resume(path: &Path, columns: &[&str], rows: &str) -> Result<(Self, bool)> {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let header = columns.join(",");
        let rows: Vec<String> = rows.lines().map(str::to_string).collect();
        let mut body = std::iter::once(&header)
            .chain(&rows)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        body.push('\n');
        let repaired = !old.starts_with(&body);
        crate::run_dir::write_atomic(path, body.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, "cannot reopen", e))?;
        let writer = Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            out: BufWriter::new(file),
            rows,
        };
        Ok((writer, repaired))
    }

    /// Every row written so far (without the header), one per line.
    pub fn rows_text(&self) -> String {
        self.rows.join("\n")
    }

    /// The number of rows written so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row has been written.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| TrainError::io(&self.path, "cannot write metrics", e))
    }

    /// Appends a row; values are written with full precision so reruns compare exactly.
    pub fn row(&mut self, values: &[f64]) -> Result<()> {
        assert_eq!(values.len(), self.columns.len(), "metrics row width");
        let line: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        let line = line.join(",");
        self.write_line(&line)?;
        self.rows.push(line);
        Ok(())
    }
}

/// Reads a metrics file back: header and rows of numbers.
pub fn read_metrics(path: &Path) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, "cannot read", e))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    Ok((header, rows))
}
