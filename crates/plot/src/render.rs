//! Writing a chart: the format by extension, rendering onto a PNG or SVG backend (or into an
//! SVG string for inlining in a page), and the temporary-file-then-rename that makes every
//! plot appear whole or not at all.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{fonts, PlotError};
/// Output file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Svg,
}

impl Format {
    /// Format named by the extension of `path` (case-insensitive), if it is `.png` or `.svg`.
    pub(crate) fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Self::Png),
            "svg" => Some(Self::Svg),
            _ => None,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }
}

/// The temporary sibling a plot for `path` is rendered into before the final rename.
pub(crate) fn tmp_path(path: &Path, format: Format) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot".to_string());
    path.with_file_name(format!("{name}.tmp.{}", format.ext()))
}

/// Runs `write` on the temporary path for `path`, then renames the result into place.
/// On any failure the temporary file is removed and `path` is left untouched.
pub(crate) fn write_atomically(
    path: &Path,
    format: Format,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), PlotError> {
    let tmp = tmp_path(path, format);
    if let Err(message) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlotError::Draw {
            path: path.to_path_buf(),
            message,
        });
    }
    // Best effort: flush the data before the rename makes it visible.
    if let Ok(f) = std::fs::File::open(&tmp) {
        let _ = f.sync_all();
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PlotError::Io {
            path: path.to_path_buf(),
            step: "renaming the temporary file into place",
            source,
        }
    })
}

/// Result type of backend-generic drawing code.
pub(crate) type DrawResult<DB> =
    Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart that can draw itself on any plotters backend (PNG or SVG).
pub(crate) trait Chart {
    /// Draws the whole chart onto `root`, which has already been filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Renders `chart` at `size` pixels to `path` (PNG or SVG by extension), atomically.
pub(crate) fn render(path: &Path, size: (u32, u32), chart: &impl Chart) -> Result<(), PlotError> {
    let format = Format::from_path(path).ok_or_else(|| PlotError::UnsupportedFormat {
        path: path.to_path_buf(),
        expected: ".png or .svg",
    })?;
    register_font(path)?;
    write_atomically(path, format, |tmp| match format {
        Format::Png => {
            let root = BitMapBackend::new(tmp, size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            chart.draw(&root).map_err(err)?;
            root.present().map_err(err)
        }
        Format::Svg => {
            let text = draw_svg(size, chart)?;
            std::fs::write(tmp, text).map_err(|e| e.to_string())
        }
    })
}

/// Renders `chart` at `size` pixels into an SVG document held in memory; `name` only labels
/// errors.
fn render_svg(name: &str, size: (u32, u32), chart: &impl Chart) -> Result<String, PlotError> {
    let path = Path::new(name);
    register_font(path)?;
    draw_svg(size, chart).map_err(|message| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    })
}

fn register_font(path: &Path) -> Result<(), PlotError> {
    fonts::ensure_registered().map_err(|message| PlotError::Font {
        path: path.to_path_buf(),
        message,
    })
}

fn draw_svg(size: (u32, u32), chart: &impl Chart) -> Result<String, String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(text)
}

/// A chart description that is checked and laid out (its size found) before it is drawn.
pub(crate) trait Layout {
    /// What is drawn.
    type Drawing: Chart;
    /// Checks the input (errors name `path`) and returns what to draw, at which size.
    fn layout(&self, path: &Path) -> Result<(Self::Drawing, (u32, u32)), PlotError>;
}

/// Lays `chart` out and writes it to `path` (PNG or SVG by extension), atomically.
pub(crate) fn write_chart(chart: &impl Layout, path: &Path) -> Result<(), PlotError> {
    let (drawing, size) = chart.layout(path)?;
    render(path, size, &drawing)
}

/// Lays `chart` out and renders it as an SVG document; `name` labels errors.
pub(crate) fn svg_chart(chart: &impl Layout, name: &str) -> Result<String, PlotError> {
    let (drawing, size) = chart.layout(Path::new(name))?;
    render_svg(name, size, &drawing)
}

/// Message of a drawing error.
fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}
