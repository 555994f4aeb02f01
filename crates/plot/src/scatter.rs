//! Scatter plots of 2-D samples.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{check_range, fmt_num, font, render, Chart, DrawResult, PlotError};

/// Dot colour (matplotlib's default blue).
const DOT: RGBColor = RGBColor(31, 119, 180);
const SIZE: (u32, u32) = (640, 640);

/// Writes a scatter plot of `points` (PNG, or SVG by extension) over the fixed window
/// `x_range × y_range`. Dots are small and semi-transparent; their opacity shrinks as the
/// number of points grows so dense regions stay readable. Points outside the window or with
/// non-finite coordinates are not drawn; their count is noted in the top-left corner.
pub fn scatter(
    path: &Path,
    title: &str,
    points: &[[f64; 2]],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> Result<(), PlotError> {
    check_range(path, "x_range", x_range)?;
    check_range(path, "y_range", y_range)?;
    let inside = |p: &&[f64; 2]| {
        (x_range.0..=x_range.1).contains(&p[0]) && (y_range.0..=y_range.1).contains(&p[1])
    };
    let visible: Vec<[f64; 2]> = points.iter().filter(inside).copied().collect();
    let chart = Scatter {
        title,
        hidden: points.len() - visible.len(),
        points: visible,
        x_range,
        y_range,
    };
    render(path, SIZE, &chart)
}

struct Scatter<'a> {
    title: &'a str,
    points: Vec<[f64; 2]>,
    hidden: usize,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

/// Dot opacity for `n` points: 0.35 at 2000 points, more for fewer, less for more.
fn alpha_for(n: usize) -> f64 {
    (0.35 * (2000.0 / n.max(1) as f64).sqrt()).clamp(0.04, 0.7)
}

impl Chart for Scatter<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(22.0))
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(
                self.x_range.0..self.x_range.1,
                self.y_range.0..self.y_range.1,
            )?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style(font(13.0))
            .max_light_lines(4)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let style = DOT.mix(alpha_for(self.points.len())).filled();
        chart.draw_series(
            self.points
                .iter()
                .map(|p| Circle::new((p[0], p[1]), 2, style)),
        )?;
        if self.hidden > 0 {
            let note = format!("{} point(s) outside the window", self.hidden);
            root.draw(&Text::new(
                note,
                (8, 6),
                font(12.0).color(&RGBColor(110, 110, 110)),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, png_size, unwritable};
    use super::*;

    /// Deterministic ring-shaped samples without an RNG dependency.
    fn ring(n: usize) -> Vec<[f64; 2]> {
        (0..n)
            .map(|k| {
                let t = k as f64 * 2.399_963;
                let r = 2.0 + 0.3 * ((k * 7919 % 1000) as f64 / 1000.0 - 0.5);
                [r * t.cos(), r * t.sin()]
            })
            .collect()
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let mut pts = ring(2000);
        pts.push([f64::NAN, 0.0]);
        pts.push([10.0, 0.0]);
        let png = dir.path().join("samples.png");
        scatter(&png, "flow samples", &pts, (-3.0, 3.0), (-3.0, 3.0)).unwrap();
        assert_plot_file(&png, 10_000);
        assert_eq!(png_size(&png), SIZE);
        let svg = dir.path().join("samples.svg");
        scatter(&svg, "flow samples", &pts, (-3.0, 3.0), (-3.0, 3.0)).unwrap();
        assert_plot_file(&svg, 10_000);
    }

    #[test]
    fn empty_points_render_axes() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("empty.png");
        scatter(&png, "none", &[], (0.0, 1.0), (0.0, 1.0)).unwrap();
        assert_plot_file(&png, 1_000);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.png");
        let err = scatter(&bad, "t", &[], (1.0, 0.0), (0.0, 1.0)).unwrap_err();
        assert!(err.to_string().contains("bad.png"), "{err}");
        let path = unwritable(dir.path(), "s.png");
        let err = scatter(&path, "t", &ring(10), (-3.0, 3.0), (-3.0, 3.0)).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn alpha_scales_with_count() {
        assert!((alpha_for(2000) - 0.35).abs() < 1e-12);
        assert!(alpha_for(100) > alpha_for(2000));
        assert!(alpha_for(1_000_000) >= 0.04);
    }
}
