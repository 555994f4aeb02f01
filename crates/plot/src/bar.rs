//! Bar charts with optional ± error bars (e.g. final test −ELBO per run).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{fmt_num, font, render, Chart, DrawResult, PlotError};

const SIZE: (u32, u32) = (800, 500);
const BAR: RGBColor = RGBColor(31, 119, 180);
/// Fraction of a slot the bar covers.
const BAR_WIDTH: f64 = 0.7;

/// Writes a bar chart (PNG or SVG by the extension of `path`): one bar per `(label, value,
/// error)` from a zero baseline, an error bar of ± `error` when given, and the value printed
/// above each bar. Non-finite values draw no bar and are marked "n/a".
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(String, f64, Option<f64>)],
) -> Result<(), PlotError> {
    if bars.is_empty() {
        return Err(PlotError::input(path, "no bars"));
    }
    if let Some((label, _, e)) = bars
        .iter()
        .find(|(_, _, e)| e.is_some_and(|e| e.is_nan() || e < 0.0))
    {
        return Err(PlotError::input(
            path,
            format!("bar {label:?}: error {e:?} must be >= 0"),
        ));
    }
    let chart = Bars {
        title,
        y_label,
        bars,
        y_range: y_range(bars),
    };
    render(path, SIZE, &chart)
}

/// y range containing zero, every finite bar and its error bar, with headroom for the value
/// labels.
fn y_range(bars: &[(String, f64, Option<f64>)]) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (_, v, e) in bars.iter().filter(|b| b.1.is_finite()) {
        let e = e.filter(|e| e.is_finite()).unwrap_or(0.0);
        lo = lo.min(v - e);
        hi = hi.max(v + e);
    }
    if hi - lo <= 0.0 {
        return (0.0, 1.0);
    }
    let pad = 0.12 * (hi - lo);
    (
        if lo < 0.0 { lo - pad } else { 0.0 },
        if hi > 0.0 { hi + pad } else { 0.0 },
    )
}

struct Bars<'a> {
    title: &'a str,
    y_label: &'a str,
    bars: &'a [(String, f64, Option<f64>)],
    y_range: (f64, f64),
}

impl Chart for Bars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.bars.len();
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(22.0))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(78)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, self.y_range.0..self.y_range.1)?;
        // Shrink long labels so they fit their slot.
        let slot_px = chart.plotting_area().dim_in_pixel().0 as f64 / n as f64;
        let longest = self
            .bars
            .iter()
            .map(|b| b.0.chars().count())
            .max()
            .unwrap_or(1);
        let label_size = (slot_px / (0.62 * longest.max(1) as f64)).clamp(8.0, 14.0);
        let label_of = |x: &f64| {
            let i = x.round();
            let exact = (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n;
            if exact {
                self.bars[i as usize].0.clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .x_label_style(font(label_size))
            .y_label_formatter(&|v| fmt_num(*v))
            .y_label_style(font(13.0))
            .y_desc(self.y_label)
            .axis_desc_style(font(15.0))
            .max_light_lines(4)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;

        let half = BAR_WIDTH / 2.0;
        let finite = || {
            self.bars
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1.is_finite())
                .map(|(i, b)| (i as f64, b.1, b.2.filter(|e| e.is_finite())))
        };
        chart.draw_series(
            finite()
                .map(|(x, v, _)| Rectangle::new([(x - half, 0.0), (x + half, v)], BAR.filled())),
        )?;
        let whisker = BLACK.stroke_width(2);
        for (x, v, e) in finite() {
            let Some(e) = e.filter(|&e| e > 0.0) else {
                continue;
            };
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, v - e), (x, v + e)],
                whisker,
            )))?;
            let cap = |y: f64| {
                EmptyElement::at((x, y)) + PathElement::new(vec![(-7, 0), (7, 0)], whisker)
            };
            chart.draw_series([cap(v - e), cap(v + e)])?;
        }
        let value_size = label_size.min(13.0);
        let annotations = self.bars.iter().enumerate().map(|(i, (_, v, e))| {
            let reach = e.filter(|e| e.is_finite()).unwrap_or(0.0);
            let (text, y, dy, vpos) = if !v.is_finite() {
                ("n/a".to_string(), 0.0, -4, VPos::Bottom)
            } else if *v >= 0.0 {
                (fmt_num(*v), v + reach, -4, VPos::Bottom)
            } else {
                (fmt_num(*v), v - reach, 10, VPos::Top)
            };
            let style = TextStyle::from(font(value_size)).pos(Pos::new(HPos::Center, vpos));
            EmptyElement::at((i as f64, y)) + Text::new(text, (0, dy), style)
        });
        chart.draw_series(annotations)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, unwritable};
    use super::*;

    fn bars() -> Vec<(String, f64, Option<f64>)> {
        vec![
            ("planar-8".into(), 92.4, Some(1.3)),
            ("radial-8".into(), 93.1, Some(0.7)),
            ("realnvp-4".into(), 88.0, None),
            ("maf-5".into(), 86.75, Some(2.0)),
            ("iaf-5".into(), f64::NAN, None),
        ]
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["bars.png", "bars.svg"] {
            let path = dir.path().join(name);
            bar_chart(&path, "test −ELBO", "nats", &bars()).unwrap();
            assert_plot_file(&path, 3_000);
        }
        let svg = std::fs::read_to_string(dir.path().join("bars.svg")).unwrap();
        assert!(svg.contains("realnvp-4") && svg.contains("n/a"));
    }

    #[test]
    fn range_covers_zero_and_errors() {
        let (lo, hi) = y_range(&bars());
        assert_eq!(lo, 0.0);
        assert!(hi > 93.8);
        let neg = vec![
            ("a".to_string(), -2.0, Some(1.0)),
            ("b".to_string(), 1.0, None),
        ];
        let (lo, hi) = y_range(&neg);
        assert!(lo < -3.0 && hi > 1.0);
        assert_eq!(y_range(&[("z".to_string(), f64::NAN, None)]), (0.0, 1.0));
    }

    #[test]
    fn negative_values_render() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("neg.png");
        let neg = vec![
            ("a".to_string(), -2.0, Some(0.5)),
            ("b".to_string(), 1.0, None),
        ];
        bar_chart(&path, "signed", "Δ", &neg).unwrap();
        assert_plot_file(&path, 2_000);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.png");
        let err = bar_chart(&path, "t", "y", &[]).unwrap_err();
        assert!(err.to_string().contains("e.png"));
        let bad = vec![("a".to_string(), 1.0, Some(-1.0))];
        assert!(bar_chart(&path, "t", "y", &bad).is_err());
        let path = unwritable(dir.path(), "b.png");
        let err = bar_chart(&path, "t", "y", &bars()).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
