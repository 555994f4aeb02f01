//! Switches for the fused CPU kernels (planar stack, dense layer, BCE with logits, in-place
//! Adam, column split of amortized parameters).
//!
//! All are on by default. `FLOWVAE_UNFUSED` turns some off for A/B measurements and
//! debugging: a comma-separated list of `planar`, `linear`, `bce`, `adam`, `split`, or `all`. It
//! is read once.

use std::sync::OnceLock;

fn disabled() -> &'static Vec<String> {
    static DISABLED: OnceLock<Vec<String>> = OnceLock::new();
    DISABLED.get_or_init(|| {
        std::env::var("FLOWVAE_UNFUSED")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Whether the fused kernel `name` (`planar`, `linear`, `bce`, `adam`, `split`) may be used.
pub fn enabled(name: &str) -> bool {
    !disabled().iter().any(|d| d == name || d == "all")
}
