//! Smaller copies of PNG plots, for pages that embed many of them.

use std::io::Cursor;
use std::path::Path;

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ImageEncoder};

use super::PlotError;

/// The PNG at `path` as PNG bytes at most `max_width` pixels wide (aspect kept, reduced by a
/// whole factor so that the grid lines of an image grid stay sharp); the file's own bytes
/// when it is narrow enough already.
pub fn png_thumbnail(path: &Path, max_width: u32) -> Result<Vec<u8>, PlotError> {
    let io = |step, source| PlotError::Io {
        path: path.to_path_buf(),
        step,
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| io("reading the image", e))?;
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| PlotError::input(path, format!("not a readable PNG: {e}")))?;
    let (w, h) = (image.width(), image.height());
    if w <= max_width.max(1) {
        return Ok(bytes);
    }
    let factor = w.div_ceil(max_width.max(1));
    let small = image.resize_exact(w / factor, (h / factor).max(1), FilterType::Triangle);
    // Image grids are grey: one channel instead of three is a third of the bytes.
    let rgb = small.to_rgb8();
    let grey = rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]);
    let small = if grey {
        DynamicImage::ImageLuma8(small.to_luma8())
    } else {
        DynamicImage::ImageRgb8(rgb)
    };
    let mut out = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, PngFilter::Adaptive)
        .write_image(
            small.as_bytes(),
            small.width(),
            small.height(),
            small.color(),
        )
        .map_err(|e| PlotError::input(path, format!("cannot encode the thumbnail: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_images_shrink_by_a_whole_factor_and_narrow_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let images = vec![vec![0.5f32; 64]; 16];
        crate::image_grid(&path, &images, (8, 8), 4, 10, "").unwrap();
        // 4 cells of 81 px and a border: 325 px wide.
        let small = png_thumbnail(&path, 120).unwrap();
        let decoded = image::load_from_memory(&small).unwrap();
        assert_eq!(decoded.width(), 325 / 3);
        assert_eq!(
            png_thumbnail(&path, 400).unwrap(),
            std::fs::read(&path).unwrap()
        );
        let text = dir.path().join("x.png");
        std::fs::write(&text, b"not a png").unwrap();
        let err = png_thumbnail(&text, 100).unwrap_err().to_string();
        assert!(err.contains("x.png") && err.contains("PNG"), "{err}");
    }
}
