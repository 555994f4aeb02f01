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

    /// Reopens `path` to continue a run: keeps the header and the rows whose first column
    /// (epoch) is below `first_new`, drops later ones (written after the last checkpoint).
    pub fn resume(path: &Path, columns: &[&str], first_new: f64) -> Result<Self> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let header = columns.join(",");
        let mut kept = vec![header.clone()];
        for line in text.lines().skip(1) {
            let epoch = line.split(',').next().and_then(|v| v.parse::<f64>().ok());
            if matches!(epoch, Some(e) if e < first_new) {
                kept.push(line.to_string());
            }
        }
        let mut body = kept.join("\n");
        body.push('\n');
        crate::run_dir::write_atomic(path, body.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| RunnerError::io(path, "cannot reopen", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            out: BufWriter::new(file),
        })
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
