//! Differences against a baseline as points with error bars around a zero line. Bars from 0
//! would hide 1-nat differences between models scoring 97 nats; a horizontal layout gives
//! every label its own row, so long model names never overlap.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::legend::text_width;
use super::{fmt_num, font, svg_chart, write_chart, Chart, DrawResult, Layout, PlotError};

const WIDTH: u32 = 960;
const ROW: u32 = 30;
const FRAME: u32 = 120;
const LABEL_FONT: f64 = 15.0;
/// The column right of the data area that holds each row's value.
const VALUES: u32 = 150;
/// An interval that excludes zero.
const CLEAR: RGBColor = RGBColor(31, 119, 180);
/// An interval that contains zero.
const UNCLEAR: RGBColor = RGBColor(140, 140, 140);

/// One model's difference to the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPoint {
    /// The model.
    pub label: String,
    /// The difference.
    pub delta: f64,
    /// Half-width of the error bar, if known (drawn as `delta ± error`).
    pub error: Option<f64>,
}

/// A dot plot of differences, sorted from the lowest at the top, with a zero line. Points
/// whose error bar excludes zero are drawn in colour, the others in grey.
#[derive(Debug, Clone, Copy)]
pub struct DeltaChart<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Description of the x axis (what Δ is and what the bars are).
    pub x_label: &'a str,
    /// The differences, in any order.
    pub points: &'a [DeltaPoint],
}

impl DeltaChart<'_> {
    /// Writes the chart to `path` (PNG or SVG by extension), atomically.
    pub fn write(&self, path: &Path) -> Result<(), PlotError> {
        write_chart(self, path)
    }

    /// The chart as an SVG document, for inlining in a page.
    pub fn svg(&self) -> Result<String, PlotError> {
        svg_chart(self, self.title)
    }
}

impl Layout for DeltaChart<'_> {
    type Drawing = Drawing;

    fn layout(&self, path: &Path) -> Result<(Drawing, (u32, u32)), PlotError> {
        if let Some(p) = self
            .points
            .iter()
            .find(|p| p.error.is_some_and(|e| e.is_nan() || e < 0.0))
        {
            return Err(PlotError::input(
                path,
                format!("{:?}: error bar {:?} must be >= 0", p.label, p.error),
            ));
        }
        let mut points: Vec<DeltaPoint> = self
            .points
            .iter()
            .filter(|p| p.delta.is_finite())
            .cloned()
            .collect();
        if points.is_empty() {
            return Err(PlotError::input(path, "no finite difference"));
        }
        points.sort_by(|a, b| a.delta.total_cmp(&b.delta));
        let reach = |p: &DeltaPoint| p.error.filter(|e| e.is_finite()).unwrap_or(0.0);
        let lo = points
            .iter()
            .map(|p| p.delta - reach(p))
            .fold(0.0, f64::min);
        let hi = points
            .iter()
            .map(|p| p.delta + reach(p))
            .fold(0.0, f64::max);
        let span = (hi - lo).max(1e-9);
        let drawing = Drawing {
            title: self.title.to_string(),
            x_label: self.x_label.to_string(),
            x: (lo - 0.06 * span, hi + 0.06 * span),
            label_width: points
                .iter()
                .map(|p| text_width(&p.label, LABEL_FONT))
                .max()
                .unwrap_or(0)
                + 20,
            points,
        };
        let size = drawing.size();
        Ok((drawing, size))
    }
}

pub(crate) struct Drawing {
    title: String,
    x_label: String,
    points: Vec<DeltaPoint>,
    x: (f64, f64),
    label_width: u32,
}

impl Drawing {
    fn size(&self) -> (u32, u32) {
        let width = WIDTH.max(self.label_width + VALUES + 400);
        (width, FRAME + ROW * self.points.len() as u32)
    }
}

impl Chart for Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.points.len();
        let (plot, values) = root.split_horizontally(root.dim_in_pixel().0 - VALUES);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, font(20.0))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(self.label_width)
            .build_cartesian_2d(self.x.0..self.x.1, -0.6..n as f64 - 0.4)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            // Ticks are sums of float steps: one a rounding error away from 0 reads `0`.
            .x_label_formatter(&|v| {
                let tiny = 1e-9 * (self.x.1 - self.x.0).abs();
                fmt_num(if v.abs() < tiny { 0.0 } else { *v })
            })
            .x_label_style(font(13.0))
            .x_desc(self.x_label.as_str())
            .axis_desc_style(font(14.0))
            .max_light_lines(4)
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(220, 220, 220))
            .draw()?;
        let top = n as f64 - 0.4;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, -0.6), (0.0, top)],
            BLACK.mix(0.7).stroke_width(2),
        )))?;
        for (i, p) in self.points.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let e = p.error.filter(|e| e.is_finite() && *e > 0.0);
            let clear = e.is_some_and(|e| p.delta - e > 0.0 || p.delta + e < 0.0);
            let color = if clear { CLEAR } else { UNCLEAR };
            if let Some(e) = e {
                let whisker = color.stroke_width(2);
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(p.delta - e, y), (p.delta + e, y)],
                    whisker,
                )))?;
                let cap = |x: f64| {
                    EmptyElement::at((x, y)) + PathElement::new(vec![(0, -6), (0, 6)], whisker)
                };
                chart.draw_series([cap(p.delta - e), cap(p.delta + e)])?;
            }
            chart.draw_series(std::iter::once(Circle::new(
                (p.delta, y),
                5,
                color.filled(),
            )))?;
            let text = match e {
                Some(e) => format!("{:+.2} ± {:.2}", p.delta, e),
                None => format!("{:+.2}", p.delta),
            };
            // Row labels are placed by hand, as tick positions chosen by plotters need not
            // fall on the rows; values get a column of their own, as beside the points they
            // would cross the zero line and the error bars.
            let (px, py) = chart.backend_coord(&(self.x.0, y));
            let at = |area: &DrawingArea<DB, Shift>, x: i32| {
                let (bx, by) = area.get_base_pixel();
                (x - bx, py - by)
            };
            let style = TextStyle::from(font(LABEL_FONT)).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(p.label.clone(), at(root, px - 10), style))?;
            let style = TextStyle::from(font(13.0)).pos(Pos::new(HPos::Left, VPos::Center));
            let x = values.get_base_pixel().0 + 8;
            values.draw(&Text::new(text, at(&values, x), style))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, png_size};
    use super::*;

    fn points() -> Vec<DeltaPoint> {
        let p = |label: &str, delta: f64, error: Option<f64>| DeltaPoint {
            label: label.into(),
            delta,
            error,
        };
        vec![
            p("sylvester_householder", -0.99, Some(0.1)),
            p("sylvester_orthogonal", -1.45, Some(0.5)),
            p("sylvester_triangular", 0.2, Some(0.4)),
            p("radial_k16", 0.78, None),
            p("broken", f64::NAN, None),
        ]
    }

    #[test]
    fn sorted_rows_one_per_finite_point() {
        let dir = tempfile::tempdir().unwrap();
        let chart = DeltaChart {
            title: "Δ test NLL vs vae",
            x_label: "nats",
            points: &points(),
        };
        let path = dir.path().join("delta.png");
        chart.write(&path).unwrap();
        assert_plot_file(&path, 3_000);
        assert_eq!(png_size(&path).1, FRAME + 4 * ROW);
        let svg = chart.svg().unwrap();
        let at = |s: &str| svg.find(s).unwrap_or_else(|| panic!("{s} missing"));
        // Lowest first: orthogonal above Householder above triangular.
        assert!(at("sylvester_orthogonal") < at("sylvester_householder"));
        assert!(at("sylvester_householder") < at("sylvester_triangular"));
        assert!(!svg.contains("broken"));
        assert!(svg.contains("-1.45 ± 0.50"), "value labels");
    }

    /// The digits study's differences, whose axis has a tick a rounding error from 0: it
    /// reads `0`, not `-1.1e-16`.
    #[test]
    fn a_tick_at_zero_reads_zero() {
        let study = [
            (-0.30, 0.20),
            (-0.29, 0.06),
            (-0.25, 0.23),
            (-0.24, 0.11),
            (-0.24, 0.21),
            (-0.24, 0.23),
            (-0.23, 0.22),
            (-0.21, 0.11),
            (-0.21, 0.12),
            (-0.18, 0.23),
            (-0.15, 0.16),
            (-0.12, 0.13),
            (0.01, 0.15),
            (0.07, 0.40),
        ];
        let points: Vec<DeltaPoint> = study
            .iter()
            .enumerate()
            .map(|(i, &(delta, se))| DeltaPoint {
                label: format!("m{i}"),
                delta,
                error: Some(se),
            })
            .collect();
        let chart = DeltaChart {
            title: "t",
            x_label: "x",
            points: &points,
        };
        let svg = chart.svg().unwrap();
        assert!(!svg.contains("e-1"), "a tick in scientific notation");
        assert!(svg.contains(">\n0\n</text>"), "no tick reads 0");
    }

    #[test]
    fn bad_input_names_the_file() {
        let bad = [DeltaPoint {
            label: "a".into(),
            delta: 1.0,
            error: Some(-1.0),
        }];
        let chart = DeltaChart {
            title: "t",
            x_label: "x",
            points: &bad,
        };
        assert!(chart
            .write(Path::new("/tmp/bad.png"))
            .unwrap_err()
            .to_string()
            .contains("bad.png"));
        let none = DeltaChart {
            title: "t",
            x_label: "x",
            points: &[],
        };
        assert!(none.svg().is_err());
    }
}
