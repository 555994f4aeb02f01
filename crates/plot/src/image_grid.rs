//! Grids of small grayscale images (VAE samples and reconstructions).

use std::path::Path;

use plotters::prelude::*;

use super::{font, write_atomically, Format, PlotError};

/// Grey level of the 1-pixel separators and of unused cells in the last row.
const SEPARATOR: u8 = 128;

/// Height in pixels of the caption band above a grid.
const CAPTION_H: usize = 26;

/// Writes `images` (each `height * width` row-major values in [0, 1], 1 = white) as a PNG grid
/// with `cols` columns (fewer if there are fewer images), each image pixel drawn as a
/// `scale × scale` block, white on black, with 1-pixel grey separators around every cell, under
/// a band with `caption` (none when empty). Values are clamped to [0, 1]; NaN is drawn black.
pub fn image_grid(
    path: &Path,
    images: &[Vec<f32>],
    (height, width): (usize, usize),
    cols: usize,
    scale: usize,
    caption: &str,
) -> Result<(), PlotError> {
    if Format::from_path(path) != Some(Format::Png) {
        return Err(PlotError::UnsupportedFormat {
            path: path.to_path_buf(),
            expected: ".png",
        });
    }
    check_images(path, images, (height, width), cols, scale)?;
    let cols = cols.min(images.len());
    let rows = images.len().div_ceil(cols);
    let (cell_w, cell_h) = (width * scale + 1, height * scale + 1);
    let band = if caption.is_empty() { 0 } else { CAPTION_H };
    let (w, h) = (cols * cell_w + 1, rows * cell_h + 1 + band);
    let too_big = || PlotError::input(path, format!("grid of {w}x{h} pixels is too large"));
    let size = (
        u32::try_from(w).map_err(|_| too_big())?,
        u32::try_from(h).map_err(|_| too_big())?,
    );
    if w.saturating_mul(h) > 200_000_000 {
        return Err(too_big());
    }

    let mut rgb = vec![SEPARATOR; w * h * 3];
    rgb[..w * band * 3].fill(255);
    for (k, img) in images.iter().enumerate() {
        let (x0, y0) = ((k % cols) * cell_w + 1, (k / cols) * cell_h + 1 + band);
        for (py, row) in img.chunks_exact(width).enumerate() {
            for (px, &v) in row.iter().enumerate() {
                let g = if v.is_nan() {
                    0
                } else {
                    (v.clamp(0.0, 1.0) * 255.0).round() as u8
                };
                for sy in 0..scale {
                    let start = ((y0 + py * scale + sy) * w + x0 + px * scale) * 3;
                    rgb[start..start + 3 * scale].fill(g);
                }
            }
        }
    }
    write_atomically(path, Format::Png, |tmp| {
        let mut backend = BitMapBackend::new(tmp, size);
        backend
            .blit_bitmap((0, 0), size, &rgb)
            .map_err(|e| e.to_string())?;
        if band > 0 {
            super::fonts::ensure_registered()?;
            let style = TextStyle::from(font(16.0)).color(&BLACK);
            backend
                .draw_text(caption, &style, (6, 4))
                .map_err(|e| e.to_string())?;
        }
        backend.present().map_err(|e| e.to_string())
    })
}

/// The errors of [`image_grid`] for empty or mis-shaped input.
fn check_images(
    path: &Path,
    images: &[Vec<f32>],
    (height, width): (usize, usize),
    cols: usize,
    scale: usize,
) -> Result<(), PlotError> {
    if images.is_empty() || height == 0 || width == 0 || cols == 0 || scale == 0 {
        return Err(PlotError::input(
            path,
            format!(
                "need images, height, width, cols and scale > 0 (got {} images, {height}x{width}, \
                 cols {cols}, scale {scale})",
                images.len()
            ),
        ));
    }
    match images
        .iter()
        .enumerate()
        .find(|(_, img)| img.len() != height * width)
    {
        Some((k, img)) => Err(PlotError::input(
            path,
            format!(
                "image {k} has {} values, expected {height}x{width}",
                img.len()
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_plot_file, png_size, unwritable};
    use super::*;

    /// A crude "digit": a ring whose radius depends on `k`.
    fn blob(k: usize) -> Vec<f32> {
        (0..28 * 28)
            .map(|p| {
                let (y, x) = ((p / 28) as f32 - 13.5, (p % 28) as f32 - 13.5);
                let r = (x * x + y * y).sqrt();
                (1.0 - (r - 5.0 - k as f32 % 6.0).abs() / 2.0).max(0.0)
            })
            .collect()
    }

    #[test]
    fn writes_grid_with_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.png");
        let images: Vec<Vec<f32>> = (0..10).map(blob).collect();
        image_grid(&path, &images, (28, 28), 4, 3, "").unwrap();
        assert_plot_file(&path, 2_000);
        // 4 columns, 3 rows of 28*3 px cells plus separators.
        assert_eq!(png_size(&path), (4 * 85 + 1, 3 * 85 + 1));
        // Fewer images than columns: the grid narrows.
        image_grid(&path, &images[..2], (28, 28), 8, 1, "").unwrap();
        assert_eq!(png_size(&path), (2 * 29 + 1, 29 + 1));
        // A caption adds a band above the grid.
        image_grid(&path, &images, (28, 28), 4, 3, "prior samples").unwrap();
        assert_eq!(png_size(&path), (4 * 85 + 1, 3 * 85 + 1 + CAPTION_H as u32));
    }

    #[test]
    fn rejects_bad_input_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let err = image_grid(&path, &[vec![0.0; 5]], (2, 2), 1, 1, "").unwrap_err();
        assert!(err.to_string().contains("g.png") && err.to_string().contains("image 0"));
        assert!(image_grid(&path, &[], (2, 2), 1, 1, "").is_err());
        assert!(image_grid(&path, &[vec![0.0; 4]], (2, 2), 0, 1, "").is_err());
        let svg = dir.path().join("g.svg");
        assert!(matches!(
            image_grid(&svg, &[vec![0.0; 4]], (2, 2), 1, 1, ""),
            Err(PlotError::UnsupportedFormat { .. })
        ));
        let path = unwritable(dir.path(), "g.png");
        let err = image_grid(&path, &[vec![0.5; 4]], (2, 2), 1, 2, "").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
