//! Learning curves aggregated over seeds: per model a mean line inside a min–max band, all
//! in one panel up to [`MAX_OVERLAID`] models and as small multiples beyond, where a dozen
//! overlaid bands could not be told apart.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{draw_legend, legend_width, split_off_legend};
use super::line::{robust_range, visible_pieces, Rect, PALETTE};
use super::{fmt_num, font, svg_chart, write_chart, Chart, DrawResult, Layout, PlotError};

/// More models than this are drawn as small multiples, one panel per model.
pub const MAX_OVERLAID: usize = 8;
const OVERLAID_SIZE: (u32, u32) = (1000, 560);
const PANEL: (u32, u32) = (300, 230);
const COLUMNS: usize = 4;
const TITLE_BAND: u32 = 50;
/// The y range is fitted to the curves after this fraction of the x range: the first
/// epochs of a learning curve are far above the rest and would flatten the differences.
const SETTLED_FROM: f64 = 0.2;
const CONTEXT: RGBColor = RGBColor(200, 200, 200);

/// One x of an aggregated curve: the mean over seeds and the lowest and highest seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    /// E.g. the epoch.
    pub x: f64,
    /// Mean over the seeds.
    pub mean: f64,
    /// Lowest value over the seeds.
    pub lo: f64,
    /// Highest value over the seeds.
    pub hi: f64,
}

/// One model's aggregated curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Legend entry or panel title.
    pub name: String,
    /// Points in x order.
    pub points: Vec<BandPoint>,
}

/// Aggregated learning curves, written as a file or returned as SVG text.
#[derive(Debug, Clone, Copy)]
pub struct BandChart<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// x axis description.
    pub x_label: &'a str,
    /// y axis description.
    pub y_label: &'a str,
    /// One band per model.
    pub bands: &'a [Band],
}

impl BandChart<'_> {
    /// Writes the chart to `path` (PNG or SVG by extension), atomically.
    pub fn write(&self, path: &Path) -> Result<(), PlotError> {
        write_chart(self, path)
    }

    /// The chart as an SVG document, for inlining in a page.
    pub fn svg(&self) -> Result<String, PlotError> {
        svg_chart(self, self.title)
    }
}

impl<'a> Layout for BandChart<'a> {
    type Drawing = Drawing<'a>;

    fn layout(&self, path: &Path) -> Result<(Drawing<'a>, (u32, u32)), PlotError> {
        let finite = || {
            self.bands.iter().flat_map(|b| &b.points).filter(|p| {
                p.x.is_finite() && p.mean.is_finite() && p.lo.is_finite() && p.hi.is_finite()
            })
        };
        let (mut x0, mut x1) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.x), b.max(p.x))
        });
        if x0 > x1 {
            return Err(PlotError::input(path, "no band has a finite point"));
        }
        if x1 - x0 <= f64::EPSILON * x0.abs().max(1.0) {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        let settled = x0 + SETTLED_FROM * (x1 - x0);
        let ys: Vec<f64> = finite()
            .filter(|p| p.x >= settled)
            .flat_map(|p| [p.lo, p.hi])
            .collect();
        let y = robust_range(&ys).ok_or_else(|| PlotError::input(path, "no finite value"))?;
        let drawing = Drawing {
            chart: *self,
            rect: ((x0, x1), y),
        };
        let size = drawing.size();
        Ok((drawing, size))
    }
}

pub(crate) struct Drawing<'a> {
    chart: BandChart<'a>,
    rect: Rect,
}

impl Drawing<'_> {
    fn multiples(&self) -> bool {
        self.chart.bands.len() > MAX_OVERLAID
    }

    fn size(&self) -> (u32, u32) {
        if self.multiples() {
            let rows = self.chart.bands.len().div_ceil(COLUMNS) as u32;
            (PANEL.0 * COLUMNS as u32, TITLE_BAND + rows * PANEL.1)
        } else {
            OVERLAID_SIZE
        }
    }

    /// Draws `bands[k]` (with its band) and the means of `context` in grey on `area`.
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: Option<&str>,
        shown: &[usize],
        context: &[usize],
    ) -> DrawResult<DB> {
        let ((x0, x1), (y0, y1)) = self.rect;
        let small = caption.is_some();
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(if small { 6 } else { 16 })
            .x_label_area_size(if small { 22 } else { 46 })
            .y_label_area_size(if small { 44 } else { 78 });
        if let Some(caption) = caption {
            builder.caption(caption, font(14.0));
        }
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        let mut mesh = chart.configure_mesh();
        mesh.label_style(font(if small { 10.0 } else { 13.0 }))
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .x_labels(if small { 5 } else { 10 })
            .y_labels(if small { 5 } else { 10 })
            .max_light_lines(if small { 1 } else { 4 })
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215));
        if !small {
            mesh.x_desc(self.chart.x_label)
                .y_desc(self.chart.y_label)
                .axis_desc_style(font(15.0));
        }
        mesh.draw()?;
        for &k in context {
            let mean: Vec<(f64, f64)> = self.chart.bands[k]
                .points
                .iter()
                .map(|p| (p.x, p.mean))
                .collect();
            chart.draw_series(
                visible_pieces(&mean, self.rect)
                    .into_iter()
                    .map(|piece| PathElement::new(piece, CONTEXT.stroke_width(1))),
            )?;
        }
        for &k in shown {
            let color = PALETTE[k % PALETTE.len()];
            let points = &self.chart.bands[k].points;
            let clamp = |v: f64| v.clamp(y0, y1);
            let finite = points
                .iter()
                .filter(|p| p.lo.is_finite() && p.hi.is_finite());
            let mut outline: Vec<(f64, f64)> = finite.clone().map(|p| (p.x, clamp(p.hi))).collect();
            outline.extend(finite.rev().map(|p| (p.x, clamp(p.lo))));
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.22).filled(),
            )))?;
            let mean: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.mean)).collect();
            chart.draw_series(
                visible_pieces(&mean, self.rect)
                    .into_iter()
                    .map(|piece| PathElement::new(piece, color.stroke_width(2))),
            )?;
        }
        Ok(())
    }
}

impl Chart for Drawing<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let bands = self.chart.bands;
        let all: Vec<usize> = (0..bands.len()).collect();
        let note = format!(
            "y axis fitted to the last {:.0}% of the x range; lines: mean over seeds, bands: min–max",
            100.0 * (1.0 - SETTLED_FROM)
        );
        let note_style = font(12.0).color(&RGBColor(110, 110, 110));
        if !self.multiples() {
            let names = bands.iter().map(|b| b.name.as_str());
            let (plot, legend) = split_off_legend(root, legend_width(names));
            let plot = plot.titled(self.chart.title, font(22.0))?;
            self.panel(&plot, None, &all, &[])?;
            let entries: Vec<(&str, RGBColor)> = (bands.iter().enumerate())
                .map(|(k, b)| (b.name.as_str(), PALETTE[k % PALETTE.len()]))
                .collect();
            draw_legend(&legend, &entries, 60)?;
            let bottom = root.dim_in_pixel().1 as i32 - 16;
            return root.draw(&Text::new(note, (8, bottom), note_style));
        }
        let title = format!(
            "{} ({}) by {}",
            self.chart.title, self.chart.y_label, self.chart.x_label
        );
        let (head, grid) = root.split_vertically(TITLE_BAND);
        head.draw(&Text::new(title, (10, 6), font(20.0).color(&BLACK)))?;
        head.draw(&Text::new(note, (10, 32), note_style))?;
        let rows = bands.len().div_ceil(COLUMNS);
        for (k, panel) in grid
            .split_evenly((rows, COLUMNS))
            .iter()
            .enumerate()
            .take(bands.len())
        {
            let context: Vec<usize> = all.iter().copied().filter(|&j| j != k).collect();
            self.panel(panel, Some(&bands[k].name), &[k], &context)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, png_size};
    use super::*;

    fn bands(n: usize) -> Vec<Band> {
        (0..n)
            .map(|k| Band {
                name: format!("model_{k}"),
                points: (0..50)
                    .map(|e| {
                        let mean = 100.0 + k as f64 * 0.3 + 400.0 / (1.0 + e as f64);
                        BandPoint {
                            x: e as f64,
                            mean,
                            lo: mean - 0.5,
                            hi: mean + 0.7,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn overlaid_up_to_eight_models_and_panels_beyond() {
        let dir = tempfile::tempdir().unwrap();
        for (n, expected_height) in [(3, OVERLAID_SIZE.1), (13, TITLE_BAND + 4 * PANEL.1)] {
            let bands = bands(n);
            let chart = BandChart {
                title: "validation",
                x_label: "epoch",
                y_label: "nats",
                bands: &bands,
            };
            let path = dir.path().join(format!("b{n}.png"));
            chart.write(&path).unwrap();
            assert_plot_file(&path, 5_000);
            assert_eq!(png_size(&path).1, expected_height);
            let svg = chart.svg().unwrap();
            assert!(svg.contains("model_2") && svg.contains("<polygon"), "{n}");
        }
    }

    #[test]
    fn the_y_range_ignores_the_first_epochs() {
        let bands = bands(2);
        let chart = BandChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            bands: &bands,
        };
        let ((_, _), (_, hi)) = chart.layout(Path::new("t.png")).unwrap().0.rect;
        // Epoch 0 is at 500; from epoch 10 on the curves are below 137.
        assert!(hi < 140.0, "{hi}");
    }

    #[test]
    fn no_finite_point_is_an_error_naming_the_file() {
        let nan = [Band {
            name: "a".into(),
            points: vec![BandPoint {
                x: 0.0,
                mean: f64::NAN,
                lo: 0.0,
                hi: 0.0,
            }],
        }];
        let chart = BandChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            bands: &nan,
        };
        let err = chart.write(Path::new("/tmp/nan.png")).unwrap_err();
        assert!(err.to_string().contains("nan.png"), "{err}");
    }
}
