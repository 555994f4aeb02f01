//! Line charts (learning and loss curves) with a robustly fitted y range.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{draw_legend, legend_width, split_off_legend};
use super::{fmt_num, font, render, Chart, DrawResult, PlotError};

/// One named curve of `(x, y)` points, drawn in the given order. Non-finite points break the
/// line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Points in drawing order, e.g. `(epoch, loss)`.
    pub points: Vec<(f64, f64)>,
}

/// matplotlib's "tab10" palette, cycled for more series.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const SIZE: (u32, u32) = (1000, 560);
/// Series with at most this many points also get point markers.
const MARKER_MAX_POINTS: usize = 60;

/// Writes a line chart of `series` (PNG or SVG by the extension of `path`) with a legend in a
/// column to the right of the data area.
///
/// The x range covers all finite points. The y range comes from [`robust_range`], so a few
/// huge early values (first epochs of a learning curve) do not flatten the rest; lines are
/// clipped at the plot edge and a note in the top-left corner says how many points are not
/// shown.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    if series.is_empty() {
        return Err(PlotError::input(path, "no series"));
    }
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let ys: Vec<f64> = finite().map(|p| p.1).collect();
    let y_range =
        robust_range(&ys).ok_or_else(|| PlotError::input(path, "no series has a finite point"))?;
    let (mut x0, mut x1) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    if x1 - x0 <= f64::EPSILON * x0.abs().max(1.0) {
        let pad = (x0.abs() * 0.05).max(0.5);
        (x0, x1) = (x0 - pad, x1 + pad);
    }
    let total: usize = series.iter().map(|s| s.points.len()).sum();
    let outside = ys
        .iter()
        .filter(|&&y| y < y_range.0 || y > y_range.1)
        .count();
    let chart = Lines {
        title,
        x_label,
        y_label,
        series,
        rect: ((x0, x1), y_range),
        outside,
        non_finite: total - ys.len(),
    };
    render(path, SIZE, &chart)
}

/// A display range for `values`: ignores non-finite values and outliers beyond Tukey's far
/// fences (3 × IQR outside the quartiles), then adds a 6 % margin on both sides (or a small
/// fixed pad when all inliers are equal). `None` when no value is finite.
pub fn robust_range(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (q1, q3) = (quantile(&v, 0.25), quantile(&v, 0.75));
    let iqr = q3 - q1;
    let (fence_lo, fence_hi) = (q1 - 3.0 * iqr, q3 + 3.0 * iqr);
    // The median is always inside the fences, so both searches succeed.
    let lo = *v.iter().find(|&&x| x >= fence_lo)?;
    let hi = *v.iter().rev().find(|&&x| x <= fence_hi)?;
    let span = hi - lo;
    let pad = if span > 1e-12 * lo.abs().max(hi.abs()).max(1e-300) {
        0.06 * span
    } else if lo != 0.0 {
        0.05 * lo.abs()
    } else {
        1.0
    };
    Some((lo - pad, hi + pad))
}

/// Linearly interpolated quantile of sorted, non-empty data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * (pos - i as f64)
}

pub(crate) type Rect = ((f64, f64), (f64, f64));

/// Liang–Barsky: the parameter interval `[t0, t1]` of segment `a → b` inside `rect`.
fn clip_segment(a: (f64, f64), b: (f64, f64), rect: Rect) -> Option<(f64, f64)> {
    let ((x0, x1), (y0, y1)) = rect;
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else {
            t1 = t1.min(q / p);
        }
    }
    (t0 <= t1).then_some((t0, t1))
}

/// Splits a polyline into the pieces visible inside `rect`, breaking at non-finite points
/// and wherever the line leaves the rectangle.
pub(crate) fn visible_pieces(points: &[(f64, f64)], rect: Rect) -> Vec<Vec<(f64, f64)>> {
    let mut pieces = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let ok = |p: (f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut flush = |cur: &mut Vec<(f64, f64)>| {
        if cur.len() >= 2 {
            pieces.push(std::mem::take(cur));
        }
        cur.clear();
    };
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let clipped = if ok(a) && ok(b) {
            clip_segment(a, b, rect)
        } else {
            None
        };
        let Some((t0, t1)) = clipped else {
            flush(&mut cur);
            continue;
        };
        let at = |t: f64| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        if t0 > 0.0 || cur.is_empty() {
            flush(&mut cur);
            cur.push(at(t0));
        }
        cur.push(at(t1));
        if t1 < 1.0 {
            flush(&mut cur);
        }
    }
    flush(&mut cur);
    pieces
}

struct Lines<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    rect: Rect,
    outside: usize,
    non_finite: usize,
}

impl Chart for Lines<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let ((x0, x1), (y0, y1)) = self.rect;
        let names = self.series.iter().map(|s| s.name.as_str());
        let (plot, legend) = split_off_legend(root, legend_width(names));
        let mut chart = ChartBuilder::on(&plot)
            .caption(self.title, font(22.0))
            .margin(16)
            .x_label_area_size(46)
            .y_label_area_size(78)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style(font(15.0))
            .label_style(font(13.0))
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .max_light_lines(4)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        for (k, s) in self.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let stroke = color.stroke_width(2);
            chart.draw_series(
                visible_pieces(&s.points, self.rect)
                    .into_iter()
                    .map(|piece| PathElement::new(piece, stroke)),
            )?;
            if s.points.len() <= MARKER_MAX_POINTS {
                let inside = |p: &&(f64, f64)| (x0..=x1).contains(&p.0) && (y0..=y1).contains(&p.1);
                chart.draw_series(
                    s.points
                        .iter()
                        .filter(inside)
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )?;
            }
        }
        let entries: Vec<(&str, RGBColor)> = (self.series.iter().enumerate())
            .map(|(k, s)| (s.name.as_str(), PALETTE[k % PALETTE.len()]))
            .collect();
        draw_legend(&legend, &entries, 60)?;
        let mut notes = Vec::new();
        if self.outside > 0 {
            notes.push(format!("{} outside the y range", self.outside));
        }
        if self.non_finite > 0 {
            notes.push(format!("{} non-finite", self.non_finite));
        }
        if !notes.is_empty() {
            let note = format!("points not shown: {}", notes.join(", "));
            let style = font(12.0).color(&RGBColor(110, 110, 110));
            root.draw(&Text::new(note, (8, 6), style))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, unwritable};
    use super::*;

    fn curves() -> Vec<Series> {
        let run = |name: &str, scale: f64, off: f64| Series {
            name: name.to_string(),
            points: (0..40)
                .map(|e| (e as f64, off + scale * 5000.0 / (1.0 + (e * e * e) as f64)))
                .collect(),
        };
        let mut val = run("run A val", 1.1, 95.0);
        val.points[7].1 = f64::NAN;
        vec![
            run("run A train", 1.0, 90.0),
            val,
            run("run B train", 0.8, 100.0),
        ]
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["curve.png", "curve.svg"] {
            let path = dir.path().join(name);
            line_chart(&path, "learning curves", "epoch", "−ELBO", &curves()).unwrap();
            assert_plot_file(&path, 5_000);
        }
        let svg = std::fs::read_to_string(dir.path().join("curve.svg")).unwrap();
        assert!(svg.contains("run B train") && svg.contains("−ELBO"));
    }

    #[test]
    fn single_point_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let one = Series {
            name: "one epoch".into(),
            points: vec![(1.0, 3.0)],
        };
        let path = dir.path().join("one.png");
        line_chart(&path, "t", "x", "y", std::slice::from_ref(&one)).unwrap();
        assert_plot_file(&path, 1_000);
        let nan = Series {
            name: "nan".into(),
            points: vec![(0.0, f64::NAN)],
        };
        let err = line_chart(&dir.path().join("nan.png"), "t", "x", "y", &[nan]).unwrap_err();
        assert!(err.to_string().contains("nan.png"), "{err}");
        let path = unwritable(dir.path(), "l.svg");
        let err = line_chart(&path, "t", "x", "y", &[one]).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn robust_range_ignores_nan_and_outliers() {
        let mut v = vec![f64::NAN, 1e6, f64::INFINITY, 5e4, f64::NEG_INFINITY];
        v.extend((0..50).map(|k| 100.0 - 0.1 * k as f64));
        let (lo, hi) = robust_range(&v).unwrap();
        assert!(lo < 95.1 && lo > 94.0, "{lo}");
        assert!(hi > 100.0 && hi < 101.0, "{hi}");
        // Without outliers the full extent plus margin is kept.
        let (lo, hi) = robust_range(&[0.0, 10.0, 5.0]).unwrap();
        assert!((lo + 0.6).abs() < 1e-12 && (hi - 10.6).abs() < 1e-12);
        assert_eq!(robust_range(&[f64::NAN]), None);
        assert_eq!(robust_range(&[]), None);
        let (lo, hi) = robust_range(&[2.0, 2.0]).unwrap();
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = robust_range(&[0.0]).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
    }

    #[test]
    fn clipping_splits_lines() {
        let rect = ((0.0, 10.0), (0.0, 1.0));
        let pts = [
            (0.0, 0.5),
            (1.0, 0.5),
            (2.0, 5.0),
            (3.0, 0.5),
            (4.0, f64::NAN),
            (5.0, 0.2),
        ];
        let pieces = visible_pieces(&pts, rect);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].len(), 3);
        let exit = pieces[0][2];
        assert!((exit.1 - 1.0).abs() < 1e-12 && exit.0 > 1.0 && exit.0 < 2.0);
        assert!((pieces[1][0].1 - 1.0).abs() < 1e-12);
        assert_eq!(pieces[1].last(), Some(&(3.0, 0.5)));
        assert_eq!(clip_segment((0.0, 2.0), (5.0, 3.0), rect), None);
    }
}
