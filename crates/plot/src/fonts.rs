//! The embedded font: DejaVu Sans (redistributable), registered with plotters' `ab_glyph`
//! text renderer once per process so that plots need no system fonts.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

/// Family name the font is registered under; plotters' default label font also uses it.
pub(crate) const FAMILY: &str = "sans-serif";

/// DejaVu Sans, shipped in `crates/plot/assets`.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Outcome of the one registration attempt.
static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the embedded font (exactly once per process) and reports whether that worked.
/// Must be called before anything draws text.
pub(crate) fn ensure_registered() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "DejaVuSans.ttf is not a valid font".to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_registers_and_lays_out_text() {
        ensure_registered().unwrap();
        ensure_registered().unwrap();
        let font = super::super::font(20.0);
        let (w, h) = font.box_size("−ELBO per epoch").unwrap();
        assert!(w > 50 && h > 5, "{w}x{h}");
    }
}
