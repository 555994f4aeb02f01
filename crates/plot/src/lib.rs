//! # flowvae-plot
//!
//! Plots for experiment run folders: density heatmaps, sample scatters, learning curves (also
//! aggregated over seeds), differences against a baseline and image grids. The only crate
//! that uses plotters; it knows nothing of flows or VAEs and takes plain numbers.
//!
//! Key design decision: a plot is either written whole or not at all, and looks the same on
//! every machine.
//! Everything renders with [plotters] and an embedded DejaVu Sans font
//! (`assets/DejaVuSans.ttf`, registered once per process), so no system fonts are needed.
//! Every file is written atomically: the plot is rendered into a temporary sibling file
//! (`<name>.tmp.<ext>` in the same folder — the image encoder picks the format from the last
//! extension, so a bare `<name>.tmp` cannot be used) and then renamed over `path`, so a crash
//! never leaves a half-written plot behind. Output folders are not created; the caller owns the
//! directory layout.
//!
//! Chart functions pick the format from the extension of `path` (`.png` or `.svg`);
//! [`image_grid`] writes PNG only. [`BandChart`] and [`DeltaChart`] also render to an SVG
//! string, for pages that inline their plots.
#![warn(missing_docs)]

mod band;
mod colormap;
mod delta;
mod density;
mod fonts;
mod image_grid;
mod legend;
mod line;
mod render;
mod scatter;
mod thumbnail;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

#[cfg(test)]
pub(crate) use render::tmp_path;
pub(crate) use render::{
    render, svg_chart, write_atomically, write_chart, Chart, DrawResult, Format, Layout,
};

pub use band::{Band, BandChart, BandPoint, MAX_OVERLAID};
pub use colormap::viridis;
pub use delta::{DeltaChart, DeltaPoint};
pub use density::{density_side_by_side, Grid2d};
pub use image_grid::image_grid;
pub use line::{line_chart, robust_range, Series};
pub use scatter::scatter;
pub use thumbnail::png_thumbnail;

/// Why a plot could not be written. Every variant names the requested output path.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The data handed to the plot function cannot be drawn (wrong lengths, empty, bad ranges).
    #[error("cannot plot {}: invalid input: {message}", .path.display())]
    InvalidInput {
        /// Requested output path.
        path: PathBuf,
        /// What is wrong with the input.
        message: String,
    },
    /// The file extension does not name a supported format.
    #[error("cannot plot {}: unsupported file extension (expected {expected})", .path.display())]
    UnsupportedFormat {
        /// Requested output path.
        path: PathBuf,
        /// The extensions this plot accepts.
        expected: &'static str,
    },
    /// The embedded font could not be registered with plotters.
    #[error("cannot plot {}: registering the embedded font failed: {message}", .path.display())]
    Font {
        /// Requested output path.
        path: PathBuf,
        /// Reason reported by the font loader.
        message: String,
    },
    /// Drawing or encoding the plot failed (this includes an unwritable output location).
    #[error("drawing plot {} failed: {message}", .path.display())]
    Draw {
        /// Requested output path.
        path: PathBuf,
        /// Error reported by the drawing backend.
        message: String,
    },
    /// Moving the finished temporary file into place failed.
    #[error("writing plot {} failed ({step}): {source}", .path.display())]
    Io {
        /// Requested output path.
        path: PathBuf,
        /// Which step failed.
        step: &'static str,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl PlotError {
    /// Shorthand for [`PlotError::InvalidInput`].
    pub(crate) fn input(path: &Path, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The font used for all text.
pub(crate) fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(fonts::FAMILY), size, FontStyle::Normal)
}

/// Compact tick/label text for a number: no float noise, scientific notation when very large
/// or very small.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    // Four significant digits, trailing zeros trimmed.
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// Checks that a plot range is finite and non-empty.
pub(crate) fn check_range(path: &Path, what: &str, r: (f64, f64)) -> Result<(), PlotError> {
    if r.0.is_finite() && r.1.is_finite() && r.0 < r.1 {
        Ok(())
    } else {
        Err(PlotError::input(
            path,
            format!("{what} {:?} must be finite with min < max", r),
        ))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::Path;

    /// Asserts `path` holds a plausible PNG or SVG (by extension) of at least `min_len` bytes
    /// and that no temporary sibling was left behind.
    pub(crate) fn assert_plot_file(path: &Path, min_len: usize) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.len() >= min_len,
            "{} only {} bytes",
            path.display(),
            bytes.len()
        );
        match path.extension().and_then(|e| e.to_str()) {
            Some("png") => assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n"),
            Some("svg") => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.contains("<svg"), "no <svg tag");
                assert!(text.contains("</svg>"), "truncated svg");
            }
            other => panic!("unexpected extension {other:?}"),
        }
        let dir = path.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().contains(".tmp."),
                "left over {name:?}"
            );
        }
    }

    /// Width and height from a PNG's IHDR chunk.
    pub(crate) fn png_size(path: &Path) -> (u32, u32) {
        let b = std::fs::read(path).unwrap();
        let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        (be(16), be(20))
    }

    /// A path whose parent is a regular file, so nothing can be written there (even as root).
    pub(crate) fn unwritable(dir: &Path, name: &str) -> std::path::PathBuf {
        let blocker = dir.join("not_a_dir");
        std::fs::write(&blocker, b"x").unwrap();
        blocker.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_tmp_path() {
        assert_eq!(Format::from_path(Path::new("a/b.PNG")), Some(Format::Png));
        assert_eq!(Format::from_path(Path::new("b.svg")), Some(Format::Svg));
        assert_eq!(Format::from_path(Path::new("b.pdf")), None);
        assert_eq!(Format::from_path(Path::new("b")), None);
        let t = tmp_path(Path::new("/x/run/curve.png"), Format::Png);
        assert_eq!(t, Path::new("/x/run/curve.png.tmp.png"));
    }

    #[test]
    fn number_formatting() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(-123.456), "-123.5");
        assert_eq!(fmt_num(0.1 + 0.2), "0.3");
        assert_eq!(fmt_num(2.5e-5), "2.5e-5");
        assert_eq!(fmt_num(1.5e6), "1.5e6");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let err = write_atomically(&path, Format::Png, |tmp| {
            std::fs::write(tmp, b"partial").unwrap();
            Err("boom".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("p.png") && err.to_string().contains("boom"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unsupported_extension_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.pdf");
        let s = Series {
            name: "a".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
        };
        let err = line_chart(&path, "t", "x", "y", &[s]).unwrap_err();
        assert!(matches!(err, PlotError::UnsupportedFormat { .. }));
        assert!(err.to_string().contains("curve.pdf"));
    }
}
