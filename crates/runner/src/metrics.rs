//! `metrics.csv`: one row per logged step or epoch, flushed as written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, RunnerError};

/// A CSV file with a fixed header; each row is flushed so a crash loses no logged row.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    columns: Vec<String>,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Creates `path` with the given header.
    pub fn create(path: &Path, columns: &[&str]) -> Result<Self> {
        let file = File::create(path).map_err(|e| RunnerError::io(path, "cannot create", e))?;
        let mut writer = Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            out: BufWriter::new(file),
        };
        let header = columns.join(",");
        writer.write_line(&header)?;
        Ok(writer)
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| RunnerError::io(&self.path, "cannot write metrics", e))
    }

    /// Appends a row; values are written with full precision so reruns compare exactly.
    pub fn row(&mut self, values: &[f64]) -> Result<()> {
        assert_eq!(values.len(), self.columns.len(), "metrics row width");
        let line: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        self.write_line(&line.join(","))
    }
}

/// Reads a metrics file back: header and rows of numbers.
pub fn read_metrics(path: &Path) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let text =
        std::fs::read_to_string(path).map_err(|e| RunnerError::io(path, "cannot read", e))?;
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
