//! Legends drawn in their own column beside the data area: a legend inside the plot covers
//! the curves it explains, and with a dozen entries it runs off the bottom.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{font, DrawResult};

const FONT_SIZE: f64 = 13.0;
/// Vertical distance between entries, pixels.
const ROW: i32 = 20;
/// Length of the colour sample, pixels.
const SAMPLE: i32 = 22;

/// Width in pixels of a legend column for `names` (colour sample, gap, longest name, margin).
pub(crate) fn legend_width<'a>(names: impl Iterator<Item = &'a str>) -> u32 {
    let text = names.map(|n| text_width(n, FONT_SIZE)).max().unwrap_or(0);
    (SAMPLE as u32 + 14 + text + 12).min(360)
}

/// Width in pixels of `text` in the embedded font at `size` (an estimate when the font cannot
/// lay it out).
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    font(size)
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.62) as u32)
}

/// Splits `root` into the data area and a legend column on the right, `width` pixels wide.
pub(crate) fn split_off_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    width: u32,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let total = root.dim_in_pixel().0;
    root.split_horizontally(total.saturating_sub(width))
}

/// Draws `entries` (name, colour, line width) top-down from `top` pixels in `area`.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(&str, RGBColor)],
    top: i32,
) -> DrawResult<DB> {
    for (k, (name, color)) in entries.iter().enumerate() {
        let y = top + k as i32 * ROW;
        area.draw(&PathElement::new(
            vec![(4, y), (4 + SAMPLE, y)],
            color.stroke_width(3),
        ))?;
        let style = font(FONT_SIZE).color(&BLACK);
        area.draw(&Text::new(name.to_string(), (SAMPLE + 12, y - 7), style))?;
    }
    Ok(())
}
