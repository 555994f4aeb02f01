//! Density heatmaps on a regular 2-D grid, several panels side by side ("target | learned").

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{check_range, colormap::viridis, fmt_num, font, render, Chart, DrawResult, PlotError};

/// Values of a function on a regular `nx × ny` grid of cells covering `x_range × y_range`.
///
/// `values` is row-major with `ny` rows of `nx` entries: `values[j * nx + i]` belongs to the
/// cell in column `i` (x index, left to right) and row `j` (y index, from `y_range.0`
/// upwards), and is the function's value at that cell's centre.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid2d {
    /// `(x_min, x_max)` covered by the grid.
    pub x_range: (f64, f64),
    /// `(y_min, y_max)` covered by the grid.
    pub y_range: (f64, f64),
    /// Number of cells along x.
    pub nx: usize,
    /// Number of cells along y.
    pub ny: usize,
    /// `ny * nx` values, row-major, row 0 at `y_min`.
    pub values: Vec<f64>,
}

impl Grid2d {
    /// A grid of zeros; fill `values` later, e.g. from a batched model evaluated at
    /// [`Grid2d::cell_centers`].
    pub fn new(x_range: (f64, f64), y_range: (f64, f64), nx: usize, ny: usize) -> Self {
        Self {
            x_range,
            y_range,
            nx,
            ny,
            values: vec![0.0; nx * ny],
        }
    }

    /// Evaluates `f(x, y)` at every cell centre.
    pub fn evaluate(
        x_range: (f64, f64),
        y_range: (f64, f64),
        nx: usize,
        ny: usize,
        f: impl Fn(f64, f64) -> f64,
    ) -> Self {
        let mut grid = Self::new(x_range, y_range, nx, ny);
        grid.values = grid.cell_centers().iter().map(|p| f(p[0], p[1])).collect();
        grid
    }

    /// Width and height of one cell.
    pub fn cell_size(&self) -> (f64, f64) {
        (
            (self.x_range.1 - self.x_range.0) / self.nx as f64,
            (self.y_range.1 - self.y_range.0) / self.ny as f64,
        )
    }

    /// The `ny * nx` cell centres `[x, y]`, in the same row-major order as `values`.
    pub fn cell_centers(&self) -> Vec<[f64; 2]> {
        let (dx, dy) = self.cell_size();
        (0..self.ny)
            .flat_map(|j| {
                (0..self.nx).map(move |i| {
                    [
                        self.x_range.0 + (i as f64 + 0.5) * dx,
                        self.y_range.0 + (j as f64 + 0.5) * dy,
                    ]
                })
            })
            .collect()
    }

    /// Largest finite value, if any.
    fn max_finite(&self) -> Option<f64> {
        self.values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }

    fn validate(&self, path: &Path, title: &str) -> Result<(), PlotError> {
        check_range(path, &format!("panel {title:?}: x_range"), self.x_range)?;
        check_range(path, &format!("panel {title:?}: y_range"), self.y_range)?;
        if self.nx == 0 || self.ny == 0 {
            return Err(PlotError::input(
                path,
                format!("panel {title:?}: empty grid"),
            ));
        }
        if self.values.len() != self.nx * self.ny {
            return Err(PlotError::input(
                path,
                format!(
                    "panel {title:?}: {} values for a {}x{} grid",
                    self.values.len(),
                    self.nx,
                    self.ny
                ),
            ));
        }
        Ok(())
    }
}

/// Colour for non-finite cells.
const MISSING: RGBColor = RGBColor(128, 128, 128);
const PANEL_W: u32 = 560;
const COLORBAR_W: u32 = 95;
const PANEL_H: u32 = 520;

/// Writes heatmaps of `panels` side by side (PNG, or SVG by extension), each with its own
/// viridis colour scale from 0 to its largest finite value and a colour bar. Values are
/// densities (≥ 0; negatives are shown as 0, non-finite values in grey).
pub fn density_side_by_side(path: &Path, panels: &[(&str, &Grid2d)]) -> Result<(), PlotError> {
    if panels.is_empty() {
        return Err(PlotError::input(path, "no panels"));
    }
    for (title, grid) in panels {
        grid.validate(path, title)?;
    }
    let size = (PANEL_W * panels.len() as u32, PANEL_H);
    render(path, size, &Density { panels })
}

struct Density<'a> {
    panels: &'a [(&'a str, &'a Grid2d)],
}

impl Chart for Density<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let areas = root.split_evenly((1, self.panels.len()));
        for ((title, grid), area) in self.panels.iter().zip(&areas) {
            draw_panel(area, title, grid)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    grid: &Grid2d,
) -> DrawResult<DB> {
    let (main, bar) = area.split_horizontally(PANEL_W - COLORBAR_W);
    let (x0, x1) = grid.x_range;
    let (y0, y1) = grid.y_range;
    let mut chart = ChartBuilder::on(&main)
        .caption(title, font(22.0))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(62)
        .build_cartesian_2d(x0..x1, y0..y1)?;

    let vmax = grid.max_finite().filter(|&m| m > 0.0);
    let (dx, dy) = grid.cell_size();
    let nx = grid.nx;
    chart.draw_series(grid.values.iter().enumerate().map(|(k, &v)| {
        let (i, j) = ((k % nx) as f64, (k / nx) as f64);
        let color = if v.is_finite() {
            let (r, g, b) = viridis(vmax.map_or(0.0, |m| v / m));
            RGBColor(r, g, b)
        } else {
            MISSING
        };
        let corner = |a: f64, b: f64| (x0 + a * dx, y0 + b * dy);
        Rectangle::new([corner(i, j), corner(i + 1.0, j + 1.0)], color.filled())
    }))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc("z₁")
        .y_desc("z₂")
        .axis_desc_style(font(16.0))
        .label_style(font(13.0))
        .draw()?;

    // Colour bar aligned with the heatmap's plotting area.
    let (_, plot_y) = chart.plotting_area().get_pixel_range();
    let (_, bar_y) = bar.get_pixel_range();
    let top = (plot_y.start - bar_y.start).max(0);
    let bottom = (bar_y.end - plot_y.end).max(0);
    let top_value = vmax.unwrap_or(1.0);
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(6)
        .margin_right(4)
        .right_y_label_area_size(62)
        .build_cartesian_2d(0.0..1.0, 0.0..top_value)?;
    const STEPS: usize = 128;
    cb.draw_series((0..STEPS).map(|s| {
        let (lo, hi) = (s as f64 / STEPS as f64, (s + 1) as f64 / STEPS as f64);
        let (r, g, b) = viridis((lo + hi) / 2.0);
        Rectangle::new(
            [(0.0, lo * top_value), (1.0, hi * top_value)],
            RGBColor(r, g, b).filled(),
        )
    }))?;
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .set_tick_mark_size(LabelAreaPosition::Right, 5)
        .y_labels(6)
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style(font(12.0))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, png_size, unwritable};
    use super::*;

    fn two_moons_like(x: f64, y: f64) -> f64 {
        let r = (x * x + y * y).sqrt();
        (-(r - 2.0).powi(2) / 0.1).exp() * (1.0 + 0.5 * (3.0 * x).sin())
    }

    #[test]
    fn grid_layout_is_row_major_from_bottom() {
        let g = Grid2d::evaluate((0.0, 4.0), (-1.0, 1.0), 4, 2, |x, y| 10.0 * y + x);
        assert_eq!(g.values.len(), 8);
        let c = g.cell_centers();
        assert_eq!(c[0], [0.5, -0.5]);
        assert_eq!(c[3], [3.5, -0.5]);
        assert_eq!(c[4], [0.5, 0.5]);
        // row j = 1, column i = 2
        assert_eq!(g.values[4 + 2], 10.0 * 0.5 + 2.5);
        assert_eq!(g.cell_size(), (1.0, 1.0));
    }

    #[test]
    fn writes_side_by_side_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("density.png");
        let target = Grid2d::evaluate((-3.0, 3.0), (-3.0, 3.0), 80, 80, two_moons_like);
        let mut learned = Grid2d::evaluate((-3.0, 3.0), (-3.0, 3.0), 80, 80, |x, y| {
            0.02 * (-(x * x + y * y) / 4.0).exp()
        });
        learned.values[0] = f64::NAN;
        density_side_by_side(&path, &[("target", &target), ("learned", &learned)]).unwrap();
        assert_plot_file(&path, 10_000);
        assert_eq!(png_size(&path), (2 * PANEL_W, PANEL_H));
    }

    #[test]
    fn all_zero_grid_still_renders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zero.png");
        let g = Grid2d::new((0.0, 1.0), (0.0, 1.0), 5, 5);
        density_side_by_side(&path, &[("zeros", &g)]).unwrap();
        assert_plot_file(&path, 1_000);
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let mut g = Grid2d::new((0.0, 1.0), (0.0, 1.0), 3, 3);
        g.values.pop();
        let err = density_side_by_side(&path, &[("p", &g)]).unwrap_err();
        assert!(err.to_string().contains("bad.png") && err.to_string().contains("8 values"));
        let g = Grid2d::new((1.0, 1.0), (0.0, 1.0), 3, 3);
        assert!(density_side_by_side(&path, &[("p", &g)]).is_err());
        assert!(density_side_by_side(&path, &[]).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn unwritable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = unwritable(dir.path(), "d.png");
        let g = Grid2d::evaluate((0.0, 1.0), (0.0, 1.0), 4, 4, |x, y| x + y);
        let err = density_side_by_side(&path, &[("p", &g)]).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
